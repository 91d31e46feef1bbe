//! Convolution geometry and the channel shuffle, shared by the trainer, the unit
//! models and the RTL's register programmer: [`ConvGeom`] (a validated conv or dense
//! layer shape, weights in the layout `[out_c][in_c / G][k][k]`, and
//! [`ConvGeom::for_each_tap`], the one definition of which taps contribute) and
//! [`shuffle_perm`] (ShuffleNet's channel shuffle).
//!
//! A dense layer is a 1×1 convolution over a 1×1 map whose channels are the flattened
//! input, so [`ConvGeom`] serves both.

use crate::GoldenError;

/// Shape of one convolution (or dense) layer, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel size (k × k).
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Dilation (taps `dil` apart).
    pub dil: usize,
    /// Channel groups.
    pub groups: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl ConvGeom {
    /// Validate and compute the output size.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_c: usize,
        in_h: usize,
        in_w: usize,
        out_c: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dil: usize,
        groups: usize,
    ) -> Result<Self, GoldenError> {
        let oor = |n: &'static str, v: usize, r: &str| Err(GoldenError::out_of_range(n, v, r));
        if k == 0 {
            return oor("kernel", k, ">= 1");
        }
        if stride == 0 {
            return oor("stride", stride, ">= 1");
        }
        if dil == 0 {
            return oor("dilation", dil, ">= 1");
        }
        if groups == 0 || in_c % groups != 0 || out_c % groups != 0 {
            return Err(GoldenError::out_of_range(
                "groups",
                groups,
                format!("a divisor of both input channels {in_c} and output channels {out_c}"),
            ));
        }
        let span = dil * (k - 1) + 1;
        if in_h + 2 * pad < span || in_w + 2 * pad < span {
            return Err(GoldenError::out_of_range(
                "kernel span",
                span,
                format!(
                    "at most the padded input {}x{}",
                    in_h + 2 * pad,
                    in_w + 2 * pad
                ),
            ));
        }
        let out_h = (in_h + 2 * pad - span) / stride + 1;
        let out_w = (in_w + 2 * pad - span) / stride + 1;
        Ok(ConvGeom {
            in_c,
            in_h,
            in_w,
            out_c,
            k,
            stride,
            pad,
            dil,
            groups,
            out_h,
            out_w,
        })
    }

    /// A dense layer `inputs → outputs` as a 1×1 convolution.
    pub fn dense(inputs: usize, outputs: usize) -> Self {
        ConvGeom {
            in_c: inputs,
            in_h: 1,
            in_w: 1,
            out_c: outputs,
            k: 1,
            stride: 1,
            pad: 0,
            dil: 1,
            groups: 1,
            out_h: 1,
            out_w: 1,
        }
    }

    /// Input elements.
    pub fn in_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }
    /// Output elements.
    pub fn out_len(&self) -> usize {
        self.out_c * self.out_h * self.out_w
    }
    /// Input channels per group.
    pub fn icg(&self) -> usize {
        self.in_c / self.groups
    }
    /// Weights: [out_c][in_c / groups][k][k].
    pub fn w_len(&self) -> usize {
        self.out_c * self.icg() * self.k * self.k
    }
    /// Fan-in of one output.
    pub fn fan_in(&self) -> usize {
        self.icg() * self.k * self.k
    }

    /// Visit every (output index, input index, weight index) triple that contributes,
    /// i.e. the taps that land inside the input (padding taps are skipped).
    #[inline]
    pub fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (icg, ocg) = (self.icg(), self.out_c / self.groups);
        for oc in 0..self.out_c {
            let g = oc / ocg;
            for ic_l in 0..icg {
                let ic = g * icg + ic_l;
                for ky in 0..self.k {
                    for kx in 0..self.k {
                        let wi = ((oc * icg + ic_l) * self.k + ky) * self.k + kx;
                        for oy in 0..self.out_h {
                            let iy =
                                (oy * self.stride + ky * self.dil) as isize - self.pad as isize;
                            if iy < 0 || iy >= self.in_h as isize {
                                continue;
                            }
                            for ox in 0..self.out_w {
                                let ix =
                                    (ox * self.stride + kx * self.dil) as isize - self.pad as isize;
                                if ix < 0 || ix >= self.in_w as isize {
                                    continue;
                                }
                                let o = (oc * self.out_h + oy) * self.out_w + ox;
                                let i = (ic * self.in_h + iy as usize) * self.in_w + ix as usize;
                                f(o, i, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The channel-shuffle permutation (ShuffleNet) of `c` channels in `groups` groups:
/// channel `g·(c/groups) + i` moves to position `i·groups + g`. Returns, for each
/// output channel, its source channel. Shared by the golden model and the RTL.
pub fn shuffle_perm(c: usize, groups: usize) -> Vec<usize> {
    let per = c / groups;
    let mut src = vec![0; c];
    for g in 0..groups {
        for i in 0..per {
            src[i * groups + g] = g * per + i;
        }
    }
    src
}

/// Apply a channel permutation: out channel k = in channel `src[k]` (h·w words each).
pub fn permute_channels<T: Copy>(src: &[usize], hw: usize, x: &[T], y: &mut [T]) {
    for (k, &s) in src.iter().enumerate() {
        y[k * hw..(k + 1) * hw].copy_from_slice(&x[s * hw..(s + 1) * hw]);
    }
}

/// Inverse of [`permute_channels`] (the shuffle's backward pass).
pub fn unpermute_channels<T: Copy>(src: &[usize], hw: usize, y: &[T], x: &mut [T]) {
    for (k, &s) in src.iter().enumerate() {
        x[s * hw..(s + 1) * hw].copy_from_slice(&y[k * hw..(k + 1) * hw]);
    }
}

/// Nearest-neighbour up-sampling of (c, h, w) by `f`.
pub fn upsample<T: Copy>(c: usize, h: usize, w: usize, f: usize, x: &[T], y: &mut [T]) {
    let ow = w * f;
    // Each source row widened once, then copied to its f target rows (no division
    // per word).
    for (src, dst) in x
        .chunks_exact(w)
        .zip(y.chunks_exact_mut(ow * f))
        .take(c * h)
    {
        let (first, rest) = dst.split_at_mut(ow);
        for (d, &v) in first.chunks_exact_mut(f).zip(src) {
            d.fill(v);
        }
        for r in rest.chunks_exact_mut(ow) {
            r.copy_from_slice(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Up-sampling against its definition y[c][oy][ox] = x[c][oy / f][ox / f].
    #[test]
    fn upsample_repeats_each_word_over_its_f_by_f_block() {
        for (c, h, w, f) in [(1, 1, 1, 2), (3, 7, 5, 2), (2, 3, 4, 4), (2, 2, 3, 1)] {
            let x: Vec<u32> = (0..(c * h * w) as u32).collect();
            let mut y = vec![u32::MAX; c * h * w * f * f];
            upsample(c, h, w, f, &x, &mut y);
            let (oh, ow) = (h * f, w * f);
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let want = x[(ch * h + oy / f) * w + ox / f];
                        assert_eq!(y[(ch * oh + oy) * ow + ox], want, "{c}x{h}x{w} f={f}");
                    }
                }
            }
        }
    }
}
