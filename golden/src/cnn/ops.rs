//! Layer operations, generic over the number system [`Num`]. Each output element is
//! accumulated exactly (`N::Acc`) and narrowed once.
//!
//! A dense layer is a 1×1 convolution over a 1×1 map whose channels are the flattened
//! input, so [`ConvGeom`] serves both.

use super::num::Num;
pub use crate::geom::{permute_channels, shuffle_perm, unpermute_channels, upsample, ConvGeom};

/// Scratch buffers of the im2col/GEMM path, reused across calls.
#[derive(Debug, Default)]
pub struct Scratch<N: Num> {
    col: Vec<N::V>,
    t: Vec<N::V>,
    acc: Vec<N::Acc>,
    acc2: Vec<N::Acc>,
}

impl<N: Num> Scratch<N> {
    /// Empty buffers.
    pub fn new() -> Self {
        Scratch {
            col: Vec::new(),
            t: Vec::new(),
            acc: Vec::new(),
            acc2: Vec::new(),
        }
    }
}

fn is_dense(g: &ConvGeom) -> bool {
    g.k == 1 && g.in_h == 1 && g.in_w == 1 && g.out_h == 1 && g.out_w == 1 && g.groups == 1
}

/// The exact sums conv(x, w) into `s.acc` (im2col + GEMM), before any narrowing.
pub fn conv_sums<N: Num>(g: &ConvGeom, x: &[N::V], w: &[N::V], s: &mut Scratch<N>) {
    let n = g.out_h * g.out_w;
    s.acc.clear();
    s.acc.resize(g.out_len(), N::zero_acc());
    if is_dense(g) {
        N::gemm_abt(x, w, 1, g.in_c, g.out_c, &mut s.acc);
    } else {
        let kk = g.fan_in();
        let ocg = g.out_c / g.groups;
        for grp in 0..g.groups {
            N::conv_group(
                g,
                x,
                &w[grp * ocg * kk..(grp + 1) * ocg * kk],
                grp,
                ocg,
                &mut s.acc[grp * ocg * n..(grp + 1) * ocg * n],
                &mut s.col,
            );
        }
    }
}

/// out[o] = f(oc, Σ) for every output o (channel oc) of conv(x, w): the fused direct
/// pass where it applies ([`Num::conv_fused_map`]), else the exact sums of
/// [`conv_sums`] then f. `pairs`: [`Num::forward_pairs`] of w, or empty.
pub fn conv_map<N: Num>(
    g: &ConvGeom,
    x: &[N::V],
    w: &[N::V],
    pairs: &[i32],
    out: &mut [N::V],
    s: &mut Scratch<N>,
    f: impl Fn(usize, N::Acc) -> N::V + Copy,
) {
    if !is_dense(g) && N::conv_fused_map(g, x, w, pairs, out, f) {
        return;
    }
    let n = g.out_h * g.out_w;
    conv_sums(g, x, w, s);
    for (oc, (ych, ach)) in out.chunks_mut(n).zip(s.acc.chunks(n)).enumerate() {
        for (yo, a) in ych.iter_mut().zip(ach) {
            *yo = f(oc, *a);
        }
    }
}

/// Forward: y = conv(x, w) + b, narrowed once per output (pre-activation); equal bit
/// for bit to [`conv_fwd_direct`]. `pairs`: [`Num::forward_pairs`] of w (built once
/// per step), or empty.
pub fn conv_fwd<N: Num>(
    g: &ConvGeom,
    x: &[N::V],
    w: &[N::V],
    pairs: &[i32],
    b: &[N::V],
    y: &mut [N::V],
    s: &mut Scratch<N>,
) {
    conv_map(g, x, w, pairs, y, s, move |oc, a| N::fwd_out(a, b[oc]));
}

/// Forward with wide activations ([`crate::format::split_wide`]): the residual words
/// `xl` go through the same product as the Q8.8 words `xh`, and both sums plus the
/// master bias `b` narrow once per output into (yh, yl).
#[allow(clippy::too_many_arguments)]
pub fn conv_fwd_wide<N: Num>(
    g: &ConvGeom,
    xh: &[N::V],
    xl: &[N::V],
    w: &[N::V],
    pairs: &[i32],
    b: &[N::M],
    yh: &mut [N::V],
    yl: &mut [N::V],
    s: &mut Scratch<N>,
) {
    if !is_dense(g) && N::conv_fwd_wide_fused(g, xh, xl, w, pairs, b, yh, yl) {
        return;
    }
    let n = g.out_h * g.out_w;
    conv_sums(g, xl, w, s);
    std::mem::swap(&mut s.acc, &mut s.acc2);
    conv_sums(g, xh, w, s);
    let outs = yh.chunks_mut(n).zip(yl.chunks_mut(n));
    let sums = s.acc.chunks(n).zip(s.acc2.chunks(n));
    for (((hch, lch), (ah, al)), &bias) in outs.zip(sums).zip(b) {
        for (((h, l), a), c) in hch.iter_mut().zip(lch.iter_mut()).zip(ah).zip(al) {
            (*h, *l) = N::fwd_out_wide(*a, *c, bias);
        }
    }
}

/// For a stride-1 convolution, the geometry of its backward-data pass as a forward
/// convolution of e_out with the flipped, transposed kernel (None when the padding
/// is wider than the kernel span, or the stride is not 1).
fn transposed_geom(g: &ConvGeom) -> Option<ConvGeom> {
    let span = g.dil * (g.k - 1);
    if g.stride != 1 || g.pad > span || is_dense(g) {
        return None;
    }
    ConvGeom::new(
        g.out_c,
        g.out_h,
        g.out_w,
        g.in_c,
        g.k,
        1,
        span - g.pad,
        g.dil,
        g.groups,
    )
    .ok()
    .filter(|t| t.out_h == g.in_h && t.out_w == g.in_w)
}

/// [`Num::forward_pairs`] of a flipped, transposed kernel ([`transposed_weight`]),
/// for its forward conv; empty when there is none.
pub fn transposed_pairs<N: Num>(g: &ConvGeom, wt: Option<&[N::V]>) -> Vec<i32> {
    match (transposed_geom(g), wt) {
        (Some(t), Some(wt)) => N::forward_pairs(&t, wt),
        _ => Vec::new(),
    }
}

/// The flipped, transposed kernel of a stride-1 conv's backward-data pass
/// (see [`conv_bwd_data`]), or None when that pass does not run as a forward conv.
/// Computed once per step by the trainer ([`super::train::Forward`]).
pub fn transposed_weight<V: Copy + Default>(g: &ConvGeom, w: &[V]) -> Option<Vec<V>> {
    transposed_geom(g)?;
    // w'[ic][oc_l][ky][kx] = w[oc][ic_l][k-1-ky][k-1-kx] within each group.
    let (icg, ocg, k) = (g.icg(), g.out_c / g.groups, g.k);
    let mut wt = vec![V::default(); g.w_len()];
    for grp in 0..g.groups {
        for ocl in 0..ocg {
            let oc = grp * ocg + ocl;
            for icl in 0..icg {
                let ic = grp * icg + icl;
                for ky in 0..k {
                    for kx in 0..k {
                        wt[((ic * ocg + ocl) * k + (k - 1 - ky)) * k + (k - 1 - kx)] =
                            w[((oc * icg + icl) * k + ky) * k + kx];
                    }
                }
            }
        }
    }
    Some(wt)
}

/// Backward data (BP): e_in = convᵀ(e_out, w), narrowed once per input element.
/// Stride-1 layers run it as a forward convolution with the flipped kernel `wt`
/// ([`transposed_weight`], with its [`Num::forward_pairs`] or empty; the same exact
/// sums, so the same bits); others use GEMM + col2im.
pub fn conv_bwd_data<N: Num>(
    g: &ConvGeom,
    e_out: &[N::V],
    w: &[N::V],
    wt: Option<(&[N::V], &[i32])>,
    e_in: &mut [N::V],
    s: &mut Scratch<N>,
) {
    let n = g.out_h * g.out_w;
    if let (Some(t), Some((wt, pairs))) = (transposed_geom(g), wt) {
        conv_map(&t, e_out, wt, pairs, e_in, s, |_, a| N::bwd_out(a));
        return;
    }
    s.acc.clear();
    s.acc.resize(g.in_len(), N::zero_acc());
    if is_dense(g) {
        N::gemm(e_out, w, 1, g.out_c, g.in_c, &mut s.acc);
    } else {
        let kk = g.fan_in();
        let ocg = g.out_c / g.groups;
        for grp in 0..g.groups {
            // t = w_grpᵀ (kk × ocg)
            s.t.clear();
            s.t.resize(kk * ocg, N::zero());
            for o in 0..ocg {
                for r in 0..kk {
                    s.t[r * ocg + o] = w[(grp * ocg + o) * kk + r];
                }
            }
            s.acc2.clear();
            s.acc2.resize(kk * n, N::zero_acc());
            N::gemm(
                &s.t,
                &e_out[grp * ocg * n..(grp + 1) * ocg * n],
                kk,
                ocg,
                n,
                &mut s.acc2,
            );
            super::gemm::col2im_add(g, &s.acc2, grp, &mut s.acc);
        }
    }
    for (e, a) in e_in.iter_mut().zip(s.acc.iter()) {
        *e = N::bwd_out(*a);
    }
}

/// Weight and bias gradient accumulation for one sample: gw += e_out ⋆ x, gb += Σ e_out.
pub fn conv_bwd_weight<N: Num>(
    g: &ConvGeom,
    e_out: &[N::V],
    x: &[N::V],
    gw: &mut [N::Acc],
    gb: &mut [N::Acc],
    s: &mut Scratch<N>,
) {
    let n = g.out_h * g.out_w;
    if is_dense(g) {
        // gw += e ⊗ x: one product per word, added straight to the sums (the
        // accumulators start at +0, so the f32 path's bits match adding 0 + e·x).
        for (grow, &eo) in gw.chunks_exact_mut(g.in_c).zip(e_out) {
            N::mul_add_row(grow, eo, x);
        }
    } else {
        let kk = g.fan_in();
        let ocg = g.out_c / g.groups;
        for grp in 0..g.groups {
            N::conv_wgrad_group(
                g,
                &e_out[grp * ocg * n..(grp + 1) * ocg * n],
                x,
                grp,
                ocg,
                &mut gw[grp * ocg * kk..(grp + 1) * ocg * kk],
                &mut s.col,
            );
        }
    }
    for (gbc, ech) in gb.iter_mut().zip(e_out.chunks(n)) {
        for e in ech {
            *gbc += N::signed(*e, false);
        }
    }
}

/// Tap-by-tap forward (the reference for the im2col/GEMM path).
pub fn conv_fwd_direct<N: Num>(
    g: &ConvGeom,
    x: &[N::V],
    w: &[N::V],
    b: &[N::V],
    y: &mut [N::V],
    acc: &mut Vec<N::Acc>,
) {
    acc.clear();
    acc.resize(g.out_len(), N::zero_acc());
    g.for_each_tap(|o, i, wi| acc[o] += N::mul(x[i], w[wi]));
    let per = g.out_h * g.out_w;
    for (o, (yo, a)) in y.iter_mut().zip(acc.iter()).enumerate() {
        *yo = N::fwd_out(*a, b[o / per]);
    }
}

/// Tap-by-tap backward data (reference).
pub fn conv_bwd_data_direct<N: Num>(
    g: &ConvGeom,
    e_out: &[N::V],
    w: &[N::V],
    e_in: &mut [N::V],
    acc: &mut Vec<N::Acc>,
) {
    acc.clear();
    acc.resize(g.in_len(), N::zero_acc());
    g.for_each_tap(|o, i, wi| acc[i] += N::mul(e_out[o], w[wi]));
    for (e, a) in e_in.iter_mut().zip(acc.iter()) {
        *e = N::bwd_out(*a);
    }
}

/// Tap-by-tap weight gradient (reference).
pub fn conv_bwd_weight_direct<N: Num>(
    g: &ConvGeom,
    e_out: &[N::V],
    x: &[N::V],
    gw: &mut [N::Acc],
    gb: &mut [N::Acc],
) {
    g.for_each_tap(|o, i, wi| gw[wi] += N::mul(e_out[o], x[i]));
    let per = g.out_h * g.out_w;
    for (o, e) in e_out.iter().enumerate() {
        gb[o / per] += N::signed(*e, false);
    }
}

/// Convolution with binary weights given as ±1 values ([`Num::unit`]) and a
/// power-of-two scaling shift: the DFA backward path. In hardware this adds and
/// subtracts only; here the exact GEMM computes the same sums.
pub fn conv_binary<N: Num>(
    g: &ConvGeom,
    e: &[N::V],
    w_unit: &[N::V],
    shift: u32,
    out: &mut [N::V],
    s: &mut Scratch<N>,
) {
    conv_map(g, e, w_unit, &[], out, s, move |_, a| N::bin_out(a, shift));
}

/// Tap-by-tap binary convolution (reference of [`conv_binary`]).
pub fn conv_binary_direct<N: Num>(
    g: &ConvGeom,
    e: &[N::V],
    neg: &[bool],
    shift: u32,
    out: &mut [N::V],
    acc: &mut Vec<N::Acc>,
) {
    acc.clear();
    acc.resize(g.out_len(), N::zero_acc());
    g.for_each_tap(|o, i, wi| acc[o] += N::signed(e[i], neg[wi]));
    for (y, a) in out.iter_mut().zip(acc.iter()) {
        *y = N::bin_out(*a, shift);
    }
}

/// ReLU: o = max(p, 0).
pub fn relu<N: Num>(p: &[N::V], o: &mut [N::V]) {
    for (y, x) in o.iter_mut().zip(p) {
        *y = if *x > N::zero() { *x } else { N::zero() };
    }
}

/// ReLU derivative as a mask: e ← e where p > 0, else 0.
pub fn relu_mask<N: Num>(p: &[N::V], e: &mut [N::V]) {
    // An unconditional select (not a conditional store), so it vectorizes.
    for (y, x) in e.iter_mut().zip(p) {
        *y = if *x > N::zero() { *y } else { N::zero() };
    }
}

/// Wide ReLU: (oh, ol) = (ph, pl) where the wide value is > 0, else (0, 0).
pub fn relu_wide<N: Num>(ph: &[N::V], pl: &[N::V], oh: &mut [N::V], ol: &mut [N::V]) {
    for (((yh, yl), h), l) in oh.iter_mut().zip(ol.iter_mut()).zip(ph).zip(pl) {
        (*yh, *yl) = if positive::<N>(*h, *l) {
            (*h, *l)
        } else {
            (N::zero(), N::zero())
        };
    }
}

/// Wide ReLU derivative as a mask: e ← e where the wide p is > 0, else 0.
pub fn relu_mask_wide<N: Num>(ph: &[N::V], pl: &[N::V], e: &mut [N::V]) {
    for ((y, h), l) in e.iter_mut().zip(ph).zip(pl) {
        *y = if positive::<N>(*h, *l) { *y } else { N::zero() };
    }
}

/// Whether the wide value (hi, lo) is > 0: the pair in lexicographic order is the
/// value's order ([`crate::format::split_wide`]).
#[inline]
pub fn positive<N: Num>(hi: N::V, lo: N::V) -> bool {
    (hi, lo) > (N::zero(), N::zero())
}

/// 2×2 max-pool with stride 2 over (c, h, w), output ⌊h/2⌋ × ⌊w/2⌋ (an odd last
/// row or column is dropped, as in PyTorch); records the winning input index (first
/// maximum in row-major order on ties).
pub fn maxpool2_fwd<N: Num>(
    c: usize,
    h: usize,
    w: usize,
    x: &[N::V],
    y: &mut [N::V],
    arg: &mut [u32],
) {
    maxpool2_arg(c, h, w, |i| x[i], arg);
    for (yo, &a) in y.iter_mut().zip(arg.iter()) {
        *yo = x[a as usize];
    }
}

/// [`maxpool2_fwd`] of wide values: the winner is the largest (hi, lo) pair.
#[allow(clippy::too_many_arguments)]
pub fn maxpool2_fwd_wide<N: Num>(
    c: usize,
    h: usize,
    w: usize,
    xh: &[N::V],
    xl: &[N::V],
    yh: &mut [N::V],
    yl: &mut [N::V],
    arg: &mut [u32],
) {
    if N::SPLIT {
        // Fixed point: hi·2^16 + lo orders the pairs as (hi, lo) does (lo is in
        // [−2^15, 2^15)), and fits an i64 key that compares without branches.
        let key = |i: usize| (N::bits(xh[i]) << 16) + N::bits(xl[i]);
        maxpool2_arg(c, h, w, key, arg);
    } else {
        maxpool2_arg(c, h, w, |i| (xh[i], xl[i]), arg);
    }
    for ((a, b), &i) in yh.iter_mut().zip(yl.iter_mut()).zip(arg.iter()) {
        (*a, *b) = (xh[i as usize], xl[i as usize]);
    }
}

/// The winners of a 2×2 max-pool by `key(i)`, the ordering key of input i (the first
/// maximum in row-major order wins ties). Selects, not branches: the winners are
/// data-dependent and would mispredict.
fn maxpool2_arg<K: PartialOrd + Copy>(
    c: usize,
    h: usize,
    w: usize,
    key: impl Fn(usize) -> K,
    arg: &mut [u32],
) {
    let (oh, ow) = (h / 2, w / 2);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = (ch * h + 2 * oy) * w + 2 * ox;
                let mut bk = key(best);
                for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                    let i = (ch * h + 2 * oy + dy) * w + 2 * ox + dx;
                    let k = key(i);
                    let gt = k > bk;
                    best = if gt { i } else { best };
                    bk = if gt { k } else { bk };
                }
                arg[(ch * oh + oy) * ow + ox] = best as u32;
            }
        }
    }
}

/// 2×2 max-pool backward: each output error goes to its winning input.
pub fn maxpool2_bwd<N: Num>(e_out: &[N::V], arg: &[u32], e_in: &mut [N::V]) {
    e_in.iter_mut().for_each(|e| *e = N::zero());
    for (e, &a) in e_out.iter().zip(arg) {
        e_in[a as usize] = *e;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::num::{Fx, Num, F32};
    use crate::rng::SeedableRng;

    #[test]
    fn conv_geometry_validates_with_named_errors() {
        assert_eq!(ConvGeom::new(4, 8, 8, 8, 3, 1, 1, 1, 2).unwrap().out_h, 8);
        assert_eq!(ConvGeom::new(4, 8, 8, 8, 3, 2, 1, 1, 1).unwrap().out_h, 4);
        assert_eq!(ConvGeom::new(4, 9, 9, 8, 3, 1, 0, 2, 1).unwrap().out_h, 5);
        let e = ConvGeom::new(6, 8, 8, 8, 3, 1, 1, 1, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("groups = 4") && e.contains("divisor"), "{e}");
        assert!(ConvGeom::new(4, 8, 8, 8, 3, 1, 1, 0, 1)
            .unwrap_err()
            .to_string()
            .contains("dilation = 0"));
        assert!(ConvGeom::new(4, 2, 2, 8, 3, 1, 0, 1, 1)
            .unwrap_err()
            .to_string()
            .contains("kernel span"));
    }

    #[test]
    fn gemm_path_equals_tap_by_tap_path_bit_for_bit() {
        let mut rng = crate::rng::Rng::seed_from_u64(11);
        let geoms = [
            ConvGeom::new(4, 9, 7, 6, 3, 1, 1, 1, 2).unwrap(),
            ConvGeom::new(3, 10, 10, 6, 3, 2, 2, 2, 3).unwrap(),
            ConvGeom::new(2, 5, 5, 4, 5, 1, 0, 1, 1).unwrap(),
            ConvGeom::new(8, 6, 6, 8, 1, 1, 0, 1, 4).unwrap(),
            ConvGeom::dense(37, 10),
        ];
        for g in geoms {
            let x: Vec<i16> = (0..g.in_len())
                .map(|_| rng.range_i64(-3000, 3000) as i16)
                .collect();
            let w: Vec<i16> = (0..g.w_len())
                .map(|_| rng.range_i64(-4000, 4000) as i16)
                .collect();
            let b: Vec<i16> = (0..g.out_c)
                .map(|_| rng.range_i64(-300, 300) as i16)
                .collect();
            let e: Vec<i16> = (0..g.out_len())
                .map(|_| rng.range_i64(-32768, 32767) as i16)
                .collect();
            let (mut y1, mut y2) = (vec![0; g.out_len()], vec![0; g.out_len()]);
            conv_fwd::<Fx>(&g, &x, &w, &[], &b, &mut y1, &mut Scratch::new());
            conv_fwd_direct::<Fx>(&g, &x, &w, &b, &mut y2, &mut Vec::new());
            assert_eq!(y1, y2, "{g:?}");
            let (mut d1, mut d2) = (vec![0; g.in_len()], vec![0; g.in_len()]);
            let wt = transposed_weight(&g, &w);
            let pt = transposed_pairs::<Fx>(&g, wt.as_deref());
            let wtp = wt.as_deref().map(|w| (w, &pt[..]));
            conv_bwd_data::<Fx>(&g, &e, &w, wtp, &mut d1, &mut Scratch::new());
            // The transposed kernel without prepared pair words: same bits.
            let mut d4 = vec![0; g.in_len()];
            let wt0 = wt.as_deref().map(|w| (w, &[][..]));
            conv_bwd_data::<Fx>(&g, &e, &w, wt0, &mut d4, &mut Scratch::new());
            assert_eq!(d1, d4, "{g:?}");
            // Without the transposed kernel: the GEMM + col2im path, same bits.
            let mut d3 = vec![0; g.in_len()];
            conv_bwd_data::<Fx>(&g, &e, &w, None, &mut d3, &mut Scratch::new());
            assert_eq!(d1, d3, "{g:?}");
            conv_bwd_data_direct::<Fx>(&g, &e, &w, &mut d2, &mut Vec::new());
            assert_eq!(d1, d2, "{g:?}");
            let (mut gw1, mut gw2) = (vec![5i64; g.w_len()], vec![5i64; g.w_len()]);
            let (mut gb1, mut gb2) = (vec![0i64; g.out_c], vec![0i64; g.out_c]);
            conv_bwd_weight::<Fx>(&g, &e, &x, &mut gw1, &mut gb1, &mut Scratch::new());
            conv_bwd_weight_direct::<Fx>(&g, &e, &x, &mut gw2, &mut gb2);
            assert_eq!((gw1, gb1), (gw2, gb2), "{g:?}");
            let neg: Vec<bool> = (0..g.w_len()).map(|_| rng.bit()).collect();
            let unit: Vec<i16> = neg.iter().map(|&n| Fx::unit(n)).collect();
            let (mut b1, mut b2) = (vec![0; g.out_len()], vec![0; g.out_len()]);
            conv_binary::<Fx>(&g, &x, &unit, 3, &mut b1, &mut Scratch::new());
            conv_binary_direct::<Fx>(&g, &x, &neg, 3, &mut b2, &mut Vec::new());
            assert_eq!(b1, b2, "{g:?}");
            // Wide forward: residual words over their whole range (the GEMM's i32
            // chunking must hold), master biases at 24 fraction bits.
            let xl: Vec<i16> = (0..g.in_len())
                .map(|_| rng.range_i64(-32768, 32767) as i16)
                .collect();
            let bm: Vec<i32> = (0..g.out_c)
                .map(|_| rng.range_i64(-(1 << 26), 1 << 26) as i32)
                .collect();
            let mut wide1 = (vec![0; g.out_len()], vec![0; g.out_len()]);
            let s = &mut Scratch::new();
            conv_fwd_wide::<Fx>(&g, &x, &xl, &w, &[], &bm, &mut wide1.0, &mut wide1.1, s);
            // Independent reference: the exact rational sum (i128, tap by tap) rounded
            // half up to 24 fraction bits and clamped to Q8.8's range.
            let mut exact = vec![0i128; g.out_len()];
            g.for_each_tap(|o, i, wi| {
                exact[o] += crate::format::join_wide(x[i], xl[i]) as i128 * w[wi] as i128
            });
            let per = g.out_h * g.out_w;
            for (o, v) in exact.iter().enumerate() {
                let num = v + ((bm[o / per] as i128) << 12);
                let want = (num + 2048)
                    .div_euclid(4096)
                    .clamp(-32768 << 16, 32767 << 16);
                let got = crate::format::join_wide(wide1.0[o], wide1.1[o]) as i128;
                assert_eq!(got, want, "output {o} of {g:?}");
            }
        }
    }

    #[test]
    fn wide_relu_and_pool_decide_on_all_24_fraction_bits() {
        // Values that tie or are zero in their Q8.8 word and differ only in the residual.
        let ph: Vec<i16> = vec![0, 0, 0, 0, 5, 5, 5, -1];
        let pl: Vec<i16> = vec![3, -3, 0, 2, 100, 99, -32768, 32767];
        let (mut oh, mut ol) = (vec![7; 8], vec![7; 8]);
        relu_wide::<Fx>(&ph, &pl, &mut oh, &mut ol);
        assert_eq!(oh, vec![0, 0, 0, 0, 5, 5, 5, 0]);
        assert_eq!(ol, vec![3, 0, 0, 2, 100, 99, -32768, 0]);
        let mut e = vec![1i16; 8];
        relu_mask_wide::<Fx>(&ph, &pl, &mut e);
        assert_eq!(e, vec![1, 0, 0, 1, 1, 1, 1, 0]);
        // One 2x2 window per channel: (c=2, h=2, w=2).
        let (mut yh, mut yl, mut arg) = (vec![0; 2], vec![0; 2], vec![0u32; 2]);
        maxpool2_fwd_wide::<Fx>(2, 2, 2, &ph, &pl, &mut yh, &mut yl, &mut arg);
        assert_eq!(arg, vec![0, 4]);
        assert_eq!((yh, yl), (vec![0, 5], vec![3, 100]));
    }

    /// The pool's winners against a plain lexicographic (hi, lo) search, first maximum
    /// on ties, on values drawn from few levels (many ties) with lo at its extremes.
    #[test]
    fn wide_pool_picks_the_first_largest_pair() {
        let mut rng = crate::rng::Rng::seed_from_u64(5);
        let (c, h, w) = (3, 9, 8);
        for _ in 0..50 {
            let lv = [-32768i64, -1, 0, 1, 32767];
            let ph: Vec<i16> = (0..c * h * w)
                .map(|_| rng.range_i64(-2, 2) as i16)
                .collect();
            let pl: Vec<i16> = (0..c * h * w)
                .map(|_| lv[rng.below(5) as usize] as i16)
                .collect();
            let n = c * (h / 2) * (w / 2);
            let (mut yh, mut yl, mut arg) = (vec![0; n], vec![0; n], vec![0u32; n]);
            maxpool2_fwd_wide::<Fx>(c, h, w, &ph, &pl, &mut yh, &mut yl, &mut arg);
            for ch in 0..c {
                for oy in 0..h / 2 {
                    for ox in 0..w / 2 {
                        let mut best = None;
                        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            let i = (ch * h + 2 * oy + dy) * w + 2 * ox + dx;
                            match best {
                                Some(b) if (ph[i], pl[i]) <= (ph[b], pl[b]) => {}
                                _ => best = Some(i),
                            }
                        }
                        let o = (ch * (h / 2) + oy) * (w / 2) + ox;
                        let b = best.unwrap();
                        assert_eq!(arg[o] as usize, b);
                        assert_eq!((yh[o], yl[o]), (ph[b], pl[b]));
                    }
                }
            }
        }
    }

    #[test]
    fn shuffle_is_a_permutation_and_unshuffle_inverts_it() {
        let p = shuffle_perm(8, 4);
        assert_eq!(p, vec![0, 2, 4, 6, 1, 3, 5, 7]);
        let x: Vec<u32> = (0..16).collect();
        let mut y = vec![0; 16];
        let mut z = vec![0; 16];
        permute_channels(&p, 2, &x, &mut y);
        unpermute_channels(&p, 2, &y, &mut z);
        assert_eq!(x, z);
    }

    #[test]
    fn f32_conv_matches_f64_direct_formula() {
        let g = ConvGeom::new(4, 5, 6, 6, 3, 2, 1, 2, 2).unwrap();
        let x: Vec<f32> = (0..g.in_len())
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..g.w_len())
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 5.0)
            .collect();
        let b: Vec<f32> = (0..g.out_c).map(|i| i as f32 / 10.0).collect();
        let mut y = vec![0.0; g.out_len()];
        conv_fwd::<F32>(&g, &x, &w, &[], &b, &mut y, &mut Scratch::new());
        for oc in 0..6 {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut s = b[oc] as f64;
                    let grp = oc / 3;
                    for icl in 0..2 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = (oy * 2 + ky * 2) as i64 - 1;
                                let ix = (ox * 2 + kx * 2) as i64 - 1;
                                if iy >= 0 && iy < 5 && ix >= 0 && ix < 6 {
                                    let ic = grp * 2 + icl;
                                    s += x[(ic * 5 + iy as usize) * 6 + ix as usize] as f64
                                        * w[((oc * 2 + icl) * 3 + ky) * 3 + kx] as f64;
                                }
                            }
                        }
                    }
                    let got = y[(oc * g.out_h + oy) * g.out_w + ox] as f64;
                    assert!((got - s).abs() < 1e-5, "{got} vs {s}");
                }
            }
        }
        let _ = Fx;
    }
}
