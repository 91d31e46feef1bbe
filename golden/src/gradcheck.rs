//! `hdfa gradcheck`: how far one fixed-point training step's gradients are from an
//! f64 computation of the same step.
//!
//! [`Reference`] is its own plain-loop f64 network: convolution by its definition
//! (every output, every tap), ReLU, max-pool, shuffle, up-sampling, softmax
//! cross-entropy, BP and the DFA paths. It shares none of the trainer's kernels
//! (no GEMM, no im2col, no `Num`), only the network's description: the shapes
//! ([`ConvGeom`]'s fields), the forward weights rounded to Q4.12 and the inputs in
//! Q8.8 (as real numbers), and the fixed backward weights. So it computes the
//! gradients the fixed-point step *should* give for the weights it used.
//!
//! [`Experiment::gradcheck`] trains up to step N, then compares per layer the
//! fixed-point weight and bias gradients with the reference's (cosine and relative
//! L2 error ‖g − r‖ / ‖r‖); for a DFA step it also counts, per layer, the error
//! words that are nonzero in f64 but zero in fixed point.

use crate::cnn::net::{BackPath, BackWeight, Block, Net};
use crate::cnn::num::Fx;
use crate::cnn::train::{StepKind, Trace};
use crate::experiment::{ExpError, Experiment};
use crate::format::{ACT, MASTER, WEIGHT};
use crate::geom::ConvGeom;
use crate::scale;

/// Per-layer result of a gradient check.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerCheck {
    /// Block index.
    pub layer: usize,
    /// "conv" or "dense".
    pub kind: &'static str,
    /// Cosine between the fixed-point and the f64 weight gradient.
    pub w_cos: f64,
    /// ‖g − r‖ / ‖r‖ of the weight gradient.
    pub w_rel: f64,
    /// Cosine of the bias gradient.
    pub b_cos: f64,
    /// Relative L2 error of the bias gradient.
    pub b_rel: f64,
    /// Error words of the batch nonzero in f64.
    pub nonzero_f64: usize,
    /// Of those, the words that are zero in fixed point.
    pub lost: usize,
}

/// A gradient check of one step.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GradReport {
    /// Global step index (0: before the first update).
    pub step: usize,
    /// The propagation compared.
    pub kind: String,
    /// Samples in the batch.
    pub batch: usize,
    /// The reference rounded its pre-activations to this many fraction bits.
    pub round_p: Option<u32>,
    /// Per layer.
    pub layers: Vec<LayerCheck>,
}

impl GradReport {
    /// Fraction of layer `layer`'s f64-nonzero error words that are zero in fixed
    /// point (None: none nonzero).
    pub fn lost_fraction(&self, layer: usize) -> Option<f64> {
        let l = &self.layers[layer];
        (l.nonzero_f64 > 0).then(|| l.lost as f64 / l.nonzero_f64 as f64)
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let against = match self.round_p {
            Some(b) => format!("f64 with pre-activations rounded to {b} fraction bits"),
            None => "f64".to_string(),
        };
        let mut s = format!(
            "gradcheck: step {} ({} step), batch of {}, fixed point against {against}\n\
             layer  kind   w cosine  w rel L2  b cosine  b rel L2  error words zero in fixed / nonzero in f64\n",
            self.step, self.kind, self.batch
        );
        for l in &self.layers {
            s += &format!(
                "{:>5}  {:<5}  {:>8.5}  {:>7.2}%  {:>8.5}  {:>7.2}%  {} / {} ({:.2}%)\n",
                l.layer,
                l.kind,
                l.w_cos,
                100.0 * l.w_rel,
                l.b_cos,
                100.0 * l.b_rel,
                l.lost,
                l.nonzero_f64,
                100.0 * l.lost as f64 / l.nonzero_f64.max(1) as f64
            );
        }
        s
    }
}

/// Cosine of two vectors (1 when both are zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// ‖a − r‖ / ‖r‖ (0 when both are zero).
pub fn rel_l2(a: &[f64], r: &[f64]) -> f64 {
    let (mut d, mut n) = (0.0, 0.0);
    for (x, y) in a.iter().zip(r) {
        d += (x - y) * (x - y);
        n += y * y;
    }
    if n == 0.0 {
        if d == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (d / n).sqrt()
    }
}

/// A backward weight as real numbers.
fn back_values(w: &BackWeight<i16>) -> Vec<f64> {
    match w {
        BackWeight::Binary(neg, shift, _) => neg
            .iter()
            .map(|&n| if n { -1.0 } else { 1.0 } / (1u64 << shift) as f64)
            .collect(),
        BackWeight::Real(v) => v.iter().map(|&x| WEIGHT.to_real(x as i64)).collect(),
    }
}

/// y = conv(x) by its definition, every output and every tap (no bias).
fn conv(g: &ConvGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; g.out_c * g.out_h * g.out_w];
    each_tap(g, |o, i, wi| y[o] += w[wi] * x[i]);
    y
}

/// Calls `f(output index, input index, weight index)` for every tap of `g` that
/// lands inside the input (zero padding elsewhere).
fn each_tap(g: &ConvGeom, mut f: impl FnMut(usize, usize, usize)) {
    let icg = g.in_c / g.groups;
    let ocg = g.out_c / g.groups;
    for oc in 0..g.out_c {
        let grp = oc / ocg;
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let o = (oc * g.out_h + oy) * g.out_w + ox;
                for j in 0..icg {
                    let ic = grp * icg + j;
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let iy = (oy * g.stride + ky * g.dil) as i64 - g.pad as i64;
                            let ix = (ox * g.stride + kx * g.dil) as i64 - g.pad as i64;
                            if iy < 0 || ix < 0 || iy >= g.in_h as i64 || ix >= g.in_w as i64 {
                                continue;
                            }
                            let i = (ic * g.in_h + iy as usize) * g.in_w + ix as usize;
                            let wi = ((oc * icg + j) * g.k + ky) * g.k + kx;
                            f(o, i, wi);
                        }
                    }
                }
            }
        }
    }
}

/// Channel `k` of the output takes channel `src[k]` of the input.
fn permute(src: &[usize], hw: usize, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for (k, &s) in src.iter().enumerate() {
        for p in 0..hw {
            y[k * hw + p] = x[s * hw + p];
        }
    }
    y
}

/// The inverse of [`permute`].
fn unpermute(src: &[usize], hw: usize, y: &[f64]) -> Vec<f64> {
    let mut x = vec![0.0; y.len()];
    for (k, &s) in src.iter().enumerate() {
        for p in 0..hw {
            x[s * hw + p] = y[k * hw + p];
        }
    }
    x
}

/// The ShuffleNet permutation: output channel i·G + g takes input channel g·(C/G) + i.
fn shuffle_src(c: usize, groups: usize) -> Vec<usize> {
    let per = c / groups;
    (0..c).map(|k| (k % groups) * per + k / groups).collect()
}

/// One sample's f64 forward pass and errors.
#[derive(Clone, Debug, Default)]
pub struct RefSample {
    /// Input of each block.
    pub x: Vec<Vec<f64>>,
    /// Pre-activation of each block.
    pub p: Vec<Vec<f64>>,
    /// Pool winner (index into p) per pooled output, per block.
    pub arg: Vec<Vec<usize>>,
    /// dL/dp of each block (this sample's loss, not divided by the batch).
    pub e: Vec<Vec<f64>>,
    /// The sample's cross-entropy.
    pub loss: f64,
}

/// The plain f64 network of a fixed-point net's blocks and forward weights.
pub struct Reference<'a> {
    /// The blocks.
    pub blocks: &'a [Block],
    /// Forward weights (real values of the Q4.12 copies).
    pub w: Vec<Vec<f64>>,
    /// Biases (real values of the forward pass's biases).
    pub b: Vec<Vec<f64>>,
    /// The DFA paths.
    pub paths: &'a [BackPath<i16>],
    /// Round every pre-activation to this many fraction bits (half up), as the
    /// fixed-point forward pass does: the comparison then isolates the backward
    /// pass from the forward pass's rounding (None: exact f64).
    pub round_p: Option<u32>,
}

impl<'a> Reference<'a> {
    /// The reference of `net` at its current weights.
    pub fn new(net: &'a Net<Fx>) -> Self {
        let f = net.forward_copy();
        Reference {
            blocks: &net.blocks,
            w: f.w
                .iter()
                .map(|w| w.iter().map(|&v| WEIGHT.to_real(v as i64)).collect())
                .collect(),
            // The biases the forward pass adds: Q8.8 copies, or the Q8.24 masters
            // with wide activations.
            b: if net.is_wide() {
                net.b
                    .iter()
                    .map(|b| b.iter().map(|&m| MASTER.to_real(m as i64)).collect())
                    .collect()
            } else {
                f.b.iter()
                    .map(|b| b.iter().map(|&v| ACT.to_real(v as i64)).collect())
                    .collect()
            },
            paths: &net.paths,
            round_p: None,
        }
    }

    /// Forward, softmax cross-entropy and errors of one sample (`kind` BP or DFA).
    pub fn sample(&self, input: &[f64], label: usize, kind: StepKind) -> RefSample {
        let nb = self.blocks.len();
        let mut r = RefSample::default();
        let mut cur = input.to_vec();
        for (i, blk) in self.blocks.iter().enumerate() {
            let g = &blk.geom;
            let mut p = conv(g, &cur, &self.w[i]);
            let hw = g.out_h * g.out_w;
            for (k, v) in p.iter_mut().enumerate() {
                *v += self.b[i][k / hw];
                if let Some(bits) = self.round_p {
                    let q = (1u64 << bits) as f64;
                    *v = (*v * q + 0.5).floor() / q;
                }
            }
            r.x.push(cur);
            let mut o: Vec<f64> = if blk.relu {
                p.iter().map(|&v| v.max(0.0)).collect()
            } else {
                p.clone()
            };
            let mut arg = Vec::new();
            if blk.pool {
                let (h, w) = (g.out_h, g.out_w);
                let mut y = Vec::new();
                for c in 0..g.out_c {
                    for yy in 0..h / 2 {
                        for xx in 0..w / 2 {
                            let mut best = (c * h + 2 * yy) * w + 2 * xx;
                            for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                                let q = (c * h + 2 * yy + dy) * w + 2 * xx + dx;
                                if o[q] > o[best] {
                                    best = q;
                                }
                            }
                            y.push(o[best]);
                            arg.push(best);
                        }
                    }
                }
                o = y;
            }
            if let Some(sg) = blk.shuffle {
                let (c, h, w) = blk.out_shape();
                o = permute(&shuffle_src(c, sg), h * w, &o);
            }
            r.arg.push(arg);
            r.p.push(p);
            cur = o;
        }
        let z = &r.p[nb - 1];
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
        r.loss = s.ln() - (z[label] - m);
        let e_l: Vec<f64> = z
            .iter()
            .enumerate()
            .map(|(k, v)| (v - m).exp() / s - if k == label { 1.0 } else { 0.0 })
            .collect();
        r.e = vec![Vec::new(); nb];
        r.e[nb - 1] = e_l;
        for i in (0..nb - 1).rev() {
            let blk = &self.blocks[i];
            let g = &blk.geom;
            let mut e = match kind {
                StepKind::Bp => {
                    let nx = &self.blocks[i + 1].geom;
                    let mut ex = vec![0.0; nx.in_c * nx.in_h * nx.in_w];
                    let (w, en) = (&self.w[i + 1], &r.e[i + 1]);
                    each_tap(nx, |o, k, wi| ex[k] += w[wi] * en[o]);
                    if let Some(sg) = blk.shuffle {
                        let (c, h, w) = blk.out_shape();
                        ex = unpermute(&shuffle_src(c, sg), h * w, &ex);
                    }
                    if blk.pool {
                        let mut e = vec![0.0; g.out_c * g.out_h * g.out_w];
                        for (k, &a) in r.arg[i].iter().enumerate() {
                            e[a] = ex[k];
                        }
                        e
                    } else {
                        ex
                    }
                }
                StepKind::Dfa => self.path(i, &r.e),
            };
            if blk.relu {
                for (v, &p) in e.iter_mut().zip(&r.p[i]) {
                    if p <= 0.0 {
                        *v = 0.0;
                    }
                }
            }
            r.e[i] = e;
        }
        r
    }

    /// A DFA path into block `t` from the errors computed so far.
    fn path(&self, t: usize, e: &[Vec<f64>]) -> Vec<f64> {
        let p = self
            .paths
            .iter()
            .find(|p| p.target == t)
            .expect("a DFA path into every hidden block");
        let mut cur = e[p.source].clone();
        if let Some((g2, w2)) = &p.d2 {
            cur = conv(g2, &cur, &back_values(w2));
            if let Some(src) = &p.shuffle {
                cur = permute(src, g2.out_h * g2.out_w, &cur);
            }
        }
        let g1 = &p.d1.0;
        if p.up > 1 {
            let (h, w) = (g1.in_h / p.up, g1.in_w / p.up);
            let mut up = vec![0.0; g1.in_c * g1.in_h * g1.in_w];
            for c in 0..g1.in_c {
                for y in 0..g1.in_h {
                    for x in 0..g1.in_w {
                        up[(c * g1.in_h + y) * g1.in_w + x] =
                            cur[(c * h + y / p.up) * w + x / p.up];
                    }
                }
            }
            cur = up;
        }
        let gain = scale::exp_factor(p.gain as i32);
        conv(g1, &cur, &back_values(&p.d1.1))
            .into_iter()
            .map(|v| v * gain)
            .collect()
    }

    /// Mean weight and bias gradients of a batch, and every sample's errors.
    pub fn gradients(
        &self,
        batch: &[(Vec<f64>, usize)],
        kind: StepKind,
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<RefSample>) {
        let mut gw: Vec<Vec<f64>> = self.w.iter().map(|w| vec![0.0; w.len()]).collect();
        let mut gb: Vec<Vec<f64>> = self.b.iter().map(|b| vec![0.0; b.len()]).collect();
        let n = batch.len() as f64;
        let mut samples = Vec::new();
        for (x, y) in batch {
            let r = self.sample(x, *y, kind);
            for (i, blk) in self.blocks.iter().enumerate() {
                let g = &blk.geom;
                let hw = g.out_h * g.out_w;
                let (e, xi) = (&r.e[i], &r.x[i]);
                each_tap(g, |o, k, wi| gw[i][wi] += e[o] * xi[k] / n);
                for (o, v) in e.iter().enumerate() {
                    gb[i][o / hw] += v / n;
                }
            }
            samples.push(r);
        }
        (gw, gb, samples)
    }
}

impl Experiment<Fx> {
    /// Train up to global step `step`, then check that step's gradients against the
    /// f64 [`Reference`] with propagation `kind` (None: the step's own draw). The
    /// step itself is not taken.
    pub fn gradcheck(
        &mut self,
        step: usize,
        kind: Option<StepKind>,
        round_p: Option<u32>,
    ) -> Result<GradReport, ExpError> {
        let threads = self.config.raw.threads;
        let mut report = None;
        self.walk_steps(step, false, |t, s, batch| {
            if s == step {
                let kind = kind.unwrap_or_else(|| t.next_kind());
                let (grads, _) = t.gradients(kind, batch, threads);
                report = Some(compare(&t.net, batch, kind, &grads, round_p, step));
            }
            Ok(())
        })?;
        Ok(report.expect("the walk visits the checked step"))
    }
}

/// Compare fixed-point gradients `grads` (Q8.24 raw, weights then biases per block,
/// as [`crate::cnn::train::Trainer::gradients`] returns them) of `batch` with the
/// [`Reference`]'s, and count the error words lost to zero; `step` only labels the
/// report.
pub fn compare(
    net: &Net<Fx>,
    batch: &[(&[i16], usize)],
    kind: StepKind,
    grads: &[Vec<i32>],
    round_p: Option<u32>,
    step: usize,
) -> GradReport {
    let mut reference = Reference::new(net);
    reference.round_p = round_p;
    let real_batch: Vec<(Vec<f64>, usize)> = batch
        .iter()
        .map(|(x, y)| (x.iter().map(|&v| ACT.to_real(v as i64)).collect(), *y))
        .collect();
    let (rw, rb, rs) = reference.gradients(&real_batch, kind);
    let nbk = net.blocks.len();
    let mut nonzero = vec![0usize; nbk];
    let mut lost = vec![0usize; nbk];
    let f = net.forward_copy();
    let mut tr = Trace::<Fx>::default();
    for ((x, y), r) in batch.iter().zip(&rs) {
        net.sample(&f, x, *y, Some(kind), &mut tr);
        for i in 0..nbk {
            for (fx, rv) in tr.e[i].iter().zip(&r.e[i]) {
                if *rv != 0.0 {
                    nonzero[i] += 1;
                    lost[i] += (*fx == 0) as usize;
                }
            }
        }
    }
    let real = |v: &[i32]| -> Vec<f64> { v.iter().map(|&g| MASTER.to_real(g as i64)).collect() };

    let layers = (0..nbk)
        .map(|i| {
            let (gw, gb) = (real(&grads[i]), real(&grads[nbk + i]));
            LayerCheck {
                layer: i,
                kind: match net.blocks[i].kind {
                    crate::cnn::net::Weighted::Conv => "conv",
                    crate::cnn::net::Weighted::Dense => "dense",
                },
                w_cos: cosine(&gw, &rw[i]),
                w_rel: rel_l2(&gw, &rw[i]),
                b_cos: cosine(&gb, &rb[i]),
                b_rel: rel_l2(&gb, &rb[i]),
                nonzero_f64: nonzero[i],
                lost: lost[i],
            }
        })
        .collect();
    GradReport {
        step,
        kind: format!("{kind:?}").to_lowercase(),
        batch: batch.len(),
        round_p,
        layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_src_is_the_contracts_permutation() {
        for (c, g) in [(8, 2), (12, 3), (16, 4), (6, 1)] {
            assert_eq!(shuffle_src(c, g), crate::geom::shuffle_perm(c, g));
        }
    }

    #[test]
    fn cosine_and_rel_l2_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-12);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-12);
        assert!((rel_l2(&[1.1, 0.0], &[1.0, 0.0]) - 0.1).abs() < 1e-12);
    }
}
