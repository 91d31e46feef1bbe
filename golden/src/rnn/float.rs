//! The recurrent language model in floating point, generic over [`Real`] (f32: the
//! f32 training path; f64: the reference the fixed-point tests compare with). Plain
//! textbook code written from the equations in [`super::cell`]'s docs, with none of
//! the fixed-point model's kernels, so that a comparison between the two checks
//! both. Main types: [`FloatParams`], [`FloatTrace`]; functions [`forward_f`],
//! [`bptt_f`], [`cell_step_f`]. The f32 trainer is [`super::float_train`].

use super::cell::{CellKind, RnnShape};

/// The arithmetic the float model needs.
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + From<i16>
{
    /// From f64 (rounded to nearest).
    fn of(x: f64) -> Self;
    /// As f64 (exact).
    fn f64(self) -> f64;
    /// tanh.
    fn tanh(self) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// ln x.
    fn ln(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

fn sigmoid<R: Real>(x: R) -> R {
    R::of(1.0) / (R::of(1.0) + (R::of(0.0) - x).exp())
}

/// Parameters (same layout as [`super::cell::RnnParams`]), or their gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatParams<R> {
    /// Sizes.
    pub shape: RnnShape,
    /// Embedding, V × E.
    pub emb: Vec<R>,
    /// Input weights, (gates·H) × E.
    pub wx: Vec<R>,
    /// Recurrent weights, (gates·H) × H.
    pub wh: Vec<R>,
    /// Gate biases.
    pub b: Vec<R>,
    /// Decoder weights, V × H.
    pub wd: Vec<R>,
    /// Decoder biases.
    pub bd: Vec<R>,
}

impl<R: Real> FloatParams<R> {
    /// All zeros.
    pub fn zeros(s: RnnShape) -> Self {
        let (v, e, h, gh) = (s.vocab, s.embed, s.hidden, s.gate_rows());
        FloatParams {
            shape: s,
            emb: vec![R::default(); v * e],
            wx: vec![R::default(); gh * e],
            wh: vec![R::default(); gh * h],
            b: vec![R::default(); gh],
            wd: vec![R::default(); v * h],
            bd: vec![R::default(); v],
        }
    }

    /// The tensors in the order emb, wx, wh, b, wd, bd.
    pub fn tensors(&self) -> [&[R]; 6] {
        [&self.emb, &self.wx, &self.wh, &self.b, &self.wd, &self.bd]
    }

    /// The tensors, mutable, in the same order.
    pub fn tensors_mut(&mut self) -> [&mut Vec<R>; 6] {
        [
            &mut self.emb,
            &mut self.wx,
            &mut self.wh,
            &mut self.b,
            &mut self.wd,
            &mut self.bd,
        ]
    }

    /// The real values of fixed-point parameters (Q8.24 words; exact in f64, rounded
    /// to nearest in f32): the f32 path starts where the fixed-point run starts.
    pub fn from_fixed(p: &super::cell::RnnParams) -> Self {
        let q = |v: &[i32]| -> Vec<R> {
            v.iter()
                .map(|&x| R::of(x as f64 / (1u64 << super::cell::FRAC) as f64))
                .collect()
        };
        FloatParams {
            shape: p.shape,
            emb: q(&p.emb),
            wx: q(&p.wx),
            wh: q(&p.wh),
            b: q(&p.b),
            wd: q(&p.wd),
            bd: q(&p.bd),
        }
    }
}

/// One time step's values.
#[derive(Clone, Debug, Default)]
pub struct FloatStep<R> {
    token: usize,
    x: Vec<R>,
    h_prev: Vec<R>,
    c_prev: Vec<R>,
    gates: Vec<R>,
    /// GRU: W_hn·h₋; LSTM: tanh(c).
    aux: Vec<R>,
    /// Hidden state.
    pub h: Vec<R>,
    /// Cell state (LSTM).
    pub c: Vec<R>,
    /// softmax − one-hot.
    pub e: Vec<R>,
    /// Cross-entropy.
    pub loss: R,
    /// The largest logit (the first on ties) is the target.
    pub hit: bool,
}

/// One window's forward pass.
#[derive(Clone, Debug, Default)]
pub struct FloatTrace<R> {
    /// Per time step.
    pub steps: Vec<FloatStep<R>>,
}

/// W·x, each row's dot product over 8 partial sums (a fixed order, so the same on
/// every machine; 8 independent sums let the compiler use vector lanes).
fn mv<R: Real>(w: &[R], cols: usize, x: &[R]) -> Vec<R> {
    w.chunks_exact(cols)
        .map(|row| {
            let mut acc = [R::default(); 8];
            let (rc, xc) = (row.chunks_exact(8), x.chunks_exact(8));
            let (rr, xr) = (rc.remainder(), xc.remainder());
            for (a, b) in rc.zip(xc) {
                for k in 0..8 {
                    acc[k] += a[k] * b[k];
                }
            }
            let mut s = R::default();
            for (&a, &b) in rr.iter().zip(xr) {
                s += a * b;
            }
            for a in acc {
                s += a;
            }
            s
        })
        .collect()
}

fn mv_t<R: Real>(w: &[R], cols: usize, e: &[R]) -> Vec<R> {
    let mut y = vec![R::default(); cols];
    for (row, &er) in w.chunks_exact(cols).zip(e) {
        for (yc, &a) in y.iter_mut().zip(row) {
            *yc += a * er;
        }
    }
    y
}

/// One window from the state (h0, c0).
pub fn forward_f<R: Real>(
    p: &FloatParams<R>,
    tokens: &[u32],
    targets: &[u32],
    h0: &[R],
    c0: &[R],
) -> FloatTrace<R> {
    let s = p.shape;
    let (e, h) = (s.embed, s.hidden);
    let one = R::of(1.0);
    let (mut h_prev, mut c_prev) = (h0.to_vec(), c0.to_vec());
    let mut steps = Vec::new();
    for (&tok, &tgt) in tokens.iter().zip(targets) {
        let tok = tok as usize;
        let x = p.emb[tok * e..(tok + 1) * e].to_vec();
        let ax = mv(&p.wx, e, &x);
        let ah = mv(&p.wh, h, &h_prev);
        let mut gates = vec![R::default(); s.gate_rows()];
        let (mut aux, mut hn, mut cn) = (vec![], vec![R::default(); h], vec![]);
        match s.kind {
            CellKind::Rnn => {
                for j in 0..h {
                    hn[j] = (ax[j] + ah[j] + p.b[j]).tanh();
                }
                gates.copy_from_slice(&hn);
            }
            CellKind::Lstm => {
                for r in 0..4 * h {
                    let a = ax[r] + ah[r] + p.b[r];
                    gates[r] = if r / h == 2 { a.tanh() } else { sigmoid(a) };
                }
                cn = vec![R::default(); h];
                aux = vec![R::default(); h];
                for j in 0..h {
                    cn[j] = gates[h + j] * c_prev[j] + gates[j] * gates[2 * h + j];
                    aux[j] = cn[j].tanh();
                    hn[j] = gates[3 * h + j] * aux[j];
                }
            }
            CellKind::Gru => {
                for r in 0..2 * h {
                    gates[r] = sigmoid(ax[r] + ah[r] + p.b[r]);
                }
                aux = ah[2 * h..].to_vec();
                for j in 0..h {
                    let n = (ax[2 * h + j] + p.b[2 * h + j] + gates[j] * aux[j]).tanh();
                    gates[2 * h + j] = n;
                    let z = gates[h + j];
                    hn[j] = (one - z) * n + z * h_prev[j];
                }
            }
        }
        let mut z = mv(&p.wd, h, &hn);
        for (zk, &b) in z.iter_mut().zip(&p.bd) {
            *zk += b;
        }
        let m = z
            .iter()
            .copied()
            .fold(z[0], |a, b| if b > a { b } else { a });
        let ex: Vec<R> = z.iter().map(|&v| (v - m).exp()).collect();
        let mut sum = R::default();
        for &v in &ex {
            sum += v;
        }
        let mut err: Vec<R> = ex.iter().map(|&v| v / sum).collect();
        let loss = sum.ln() - (z[tgt as usize] - m);
        let hit = crate::cnn::train::argmax(&z) == tgt as usize;
        err[tgt as usize] = err[tgt as usize] - one;
        steps.push(FloatStep {
            token: tok,
            x,
            h_prev: std::mem::replace(&mut h_prev, hn.clone()),
            c_prev: std::mem::replace(&mut c_prev, cn.clone()),
            gates,
            aux,
            h: hn,
            c: cn,
            e: err,
            loss,
            hit,
        });
    }
    FloatTrace { steps }
}

fn outer<R: Real>(g: &mut [R], a: &[R], b: &[R]) {
    for (row, &ar) in g.chunks_exact_mut(b.len()).zip(a) {
        for (x, &bc) in row.iter_mut().zip(b) {
            *x += ar * bc;
        }
    }
}

/// The decoder's gradient sums of one step (from its e_L), added to `g`.
pub fn decoder_step_f<R: Real>(st: &FloatStep<R>, g: &mut FloatParams<R>) {
    outer(&mut g.wd, &st.e, &st.h);
    for (b, &x) in g.bd.iter_mut().zip(&st.e) {
        *b += x;
    }
}

/// One step of the cell backward from the error `dh` at its output h and `dc_next`
/// at its cell state (LSTM; ignored otherwise): adds the step's W_x, W_h, b and
/// embedding-row gradient sums to `g` and returns the errors at h₋ and c₋.
pub fn cell_step_f<R: Real>(
    p: &FloatParams<R>,
    st: &FloatStep<R>,
    dh: &[R],
    dc_next: &[R],
    g: &mut FloatParams<R>,
) -> (Vec<R>, Vec<R>) {
    let s = p.shape;
    let (e, h) = (s.embed, s.hidden);
    let one = R::of(1.0);
    let gr = s.gate_rows();
    let (mut dx, mut dhg, mut direct) = (
        vec![R::default(); gr],
        vec![R::default(); gr],
        vec![R::default(); h],
    );
    let mut dc_prev = vec![R::default(); if s.kind == CellKind::Lstm { h } else { 0 }];
    match s.kind {
        CellKind::Rnn => {
            for j in 0..h {
                dx[j] = dh[j] * (one - st.h[j] * st.h[j]);
            }
            dhg.copy_from_slice(&dx);
        }
        CellKind::Lstm => {
            for j in 0..h {
                let (i, f, gg, o) = (
                    st.gates[j],
                    st.gates[h + j],
                    st.gates[2 * h + j],
                    st.gates[3 * h + j],
                );
                let tc = st.aux[j];
                let dc = dc_next[j] + dh[j] * o * (one - tc * tc);
                dx[j] = dc * gg * i * (one - i);
                dx[h + j] = dc * st.c_prev[j] * f * (one - f);
                dx[2 * h + j] = dc * i * (one - gg * gg);
                dx[3 * h + j] = dh[j] * tc * o * (one - o);
                dc_prev[j] = dc * f;
            }
            dhg.copy_from_slice(&dx);
        }
        CellKind::Gru => {
            for j in 0..h {
                let (r, z, n) = (st.gates[j], st.gates[h + j], st.gates[2 * h + j]);
                let d_an = dh[j] * (one - z) * (one - n * n);
                direct[j] = dh[j] * z;
                dx[j] = d_an * st.aux[j] * r * (one - r);
                dx[h + j] = dh[j] * (st.h_prev[j] - n) * z * (one - z);
                dx[2 * h + j] = d_an;
                dhg[j] = dx[j];
                dhg[h + j] = dx[h + j];
                dhg[2 * h + j] = d_an * r;
            }
        }
    }
    outer(&mut g.wx, &dx, &st.x);
    outer(&mut g.wh, &dhg, &st.h_prev);
    for (b, &x) in g.b.iter_mut().zip(&dx) {
        *b += x;
    }
    let ex = mv_t(&p.wx, e, &dx);
    for (gr, &a) in g.emb[st.token * e..(st.token + 1) * e].iter_mut().zip(&ex) {
        *gr += a;
    }
    let mut dh_prev = mv_t(&p.wh, h, &dhg);
    for (d, &x) in dh_prev.iter_mut().zip(&direct) {
        *d += x;
    }
    (dh_prev, dc_prev)
}

/// BPTT over one window: adds the gradient sums (not yet divided by the token count)
/// to `g`.
pub fn bptt_f<R: Real>(p: &FloatParams<R>, tr: &FloatTrace<R>, g: &mut FloatParams<R>) {
    let h = p.shape.hidden;
    let mut dh_next = vec![R::default(); h];
    let mut dc_next = vec![R::default(); h];
    for st in tr.steps.iter().rev() {
        decoder_step_f(st, g);
        let mut dh = mv_t(&p.wd, h, &st.e);
        for (d, &n) in dh.iter_mut().zip(&dh_next) {
            *d += n;
        }
        (dh_next, dc_next) = cell_step_f(p, st, &dh, &dc_next, g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, SeedableRng};

    fn random(shape: RnnShape, rng: &mut Rng) -> FloatParams<f64> {
        let mut p = FloatParams::zeros(shape);
        for t in [
            &mut p.emb, &mut p.wx, &mut p.wh, &mut p.b, &mut p.wd, &mut p.bd,
        ] {
            for x in t.iter_mut() {
                *x = 0.6 * (2.0 * rng.uniform() - 1.0);
            }
        }
        p
    }

    fn loss(p: &FloatParams<f64>, x: &[u32], y: &[u32], h0: &[f64], c0: &[f64]) -> f64 {
        forward_f(p, x, y, h0, c0)
            .steps
            .iter()
            .map(|s| s.loss)
            .sum()
    }

    /// BPTT against central differences of the window's summed loss, for every
    /// parameter of every tensor, from a nonzero initial state.
    #[test]
    fn bptt_matches_finite_differences_for_every_cell() {
        for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let shape = RnnShape {
                kind,
                vocab: 7,
                embed: 4,
                hidden: 5,
            };
            let mut rng = Rng::seed_from_u64(11);
            let p = random(shape, &mut rng);
            let x: Vec<u32> = (0..6).map(|_| rng.below(7) as u32).collect();
            let y: Vec<u32> = (0..6).map(|_| rng.below(7) as u32).collect();
            let h0: Vec<f64> = (0..5).map(|_| 0.5 * (2.0 * rng.uniform() - 1.0)).collect();
            let c0: Vec<f64> = if kind == CellKind::Lstm {
                h0.clone()
            } else {
                vec![]
            };
            let mut g = FloatParams::zeros(shape);
            bptt_f(&p, &forward_f(&p, &x, &y, &h0, &c0), &mut g);
            let eps = 1e-6;
            let mut worst = 0.0f64;
            for ti in 0..6 {
                let len = g.tensors()[ti].len();
                for k in 0..len {
                    let bump = |d: f64| {
                        let mut q = p.clone();
                        let t = [
                            &mut q.emb, &mut q.wx, &mut q.wh, &mut q.b, &mut q.wd, &mut q.bd,
                        ];
                        t.into_iter().nth(ti).unwrap()[k] += d;
                        loss(&q, &x, &y, &h0, &c0)
                    };
                    let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
                    let an = g.tensors()[ti][k];
                    let err = (fd - an).abs() / (1e-3 + fd.abs().max(an.abs()));
                    worst = worst.max(err);
                    assert!(
                        err < 1e-5,
                        "{kind:?} tensor {ti} word {k}: bptt {an}, finite difference {fd}"
                    );
                }
            }
            eprintln!("{kind:?}: worst relative difference {worst:.2e}");
        }
    }

    /// The f32 path is the f64 model in single precision: gradients within 10^−4
    /// relative L2.
    #[test]
    fn f32_path_tracks_f64() {
        for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let shape = RnnShape {
                kind,
                vocab: 11,
                embed: 6,
                hidden: 8,
            };
            let mut rng = Rng::seed_from_u64(5);
            let p = random(shape, &mut rng);
            let p32 = FloatParams::<f32> {
                shape,
                emb: p.emb.iter().map(|&v| v as f32).collect(),
                wx: p.wx.iter().map(|&v| v as f32).collect(),
                wh: p.wh.iter().map(|&v| v as f32).collect(),
                b: p.b.iter().map(|&v| v as f32).collect(),
                wd: p.wd.iter().map(|&v| v as f32).collect(),
                bd: p.bd.iter().map(|&v| v as f32).collect(),
            };
            let x: Vec<u32> = (0..10).map(|_| rng.below(11) as u32).collect();
            let y: Vec<u32> = (0..10).map(|_| rng.below(11) as u32).collect();
            let c0 = if kind == CellKind::Lstm {
                vec![0.0; 8]
            } else {
                vec![]
            };
            let mut g = FloatParams::zeros(shape);
            bptt_f(&p, &forward_f(&p, &x, &y, &[0.0; 8], &c0), &mut g);
            let c032: Vec<f32> = c0.iter().map(|&v| v as f32).collect();
            let mut g32 = FloatParams::<f32>::zeros(shape);
            bptt_f(&p32, &forward_f(&p32, &x, &y, &[0.0; 8], &c032), &mut g32);
            for (a, r) in g32.tensors().iter().zip(g.tensors()) {
                let d: f64 = a.iter().zip(r).map(|(&u, &v)| (u as f64 - v).powi(2)).sum();
                let n: f64 = r.iter().map(|v| v * v).sum();
                assert!(
                    (d / n).sqrt() < 1e-4,
                    "{kind:?}: f32 relative L2 {}",
                    (d / n).sqrt()
                );
            }
        }
    }
}
