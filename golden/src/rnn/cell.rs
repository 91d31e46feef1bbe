//! The recurrent language model in bit-exact fixed point: an embedding, one recurrent
//! cell (vanilla RNN, LSTM or GRU), a dense decoder and softmax cross-entropy over the
//! vocabulary, trained by BPTT over windows of T steps (truncated at T: the state
//! carries over between windows, its error does not). Main types: [`CellKind`],
//! [`RnnShape`], [`RnnParams`], [`RnnFwd`], [`RnnTrace`], [`RnnGrads`]; functions
//! [`forward`], [`bptt`]. The f32 path is [`super::float`].
//!
//! ## Cells (gate order as in PyTorch)
//! - RNN: h = tanh(a), a = W_x·x + W_h·h₋ + b.
//! - LSTM: (i, f, g, o) = (σ, σ, tanh, σ)(W_x·x + W_h·h₋ + b); c = f ⊙ c₋ + i ⊙ g;
//!   h = o ⊙ tanh(c).
//! - GRU: (r, z) = σ(W_x·x + W_h·h₋ + b); n = tanh(W_xn·x + b_n + r ⊙ (W_hn·h₋));
//!   h = (1 − z) ⊙ n + z ⊙ h₋. One bias per gate (PyTorch has a second one inside
//!   r ⊙ (·); it adds a parameter vector, not a different datapath).
//!
//! ## Formats (all from the contract)
//! - Master parameters θ: Q8.24 ([`MASTER`], i32). Products use their Q4.12 copies
//!   ([`WEIGHT`], i16, round half up and saturate), as the CNN does. Embedding rows and
//!   biases are read as Q8.24 (a lookup and an addition, no product).
//! - Cell values (x, h, c, the gates, tanh c): 24 fraction bits in i32, saturating
//!   ([`MASTER`]'s range). A pre-activation is an exact i64 sum at 36 fraction bits
//!   (24 + 12) that tanh and σ ([`crate::act`]) round once. An element-wise product is
//!   exact at 48 fraction bits and narrowed once (round half up, saturate) to Q8.24.
//! - Logits: the decoder's sums narrowed to Q8.8 ([`ACT`]), so the softmax, its e_L
//!   (Q3.13 words at an exponent) and the loss are the CNN's
//!   ([`crate::cnn::softmax`]).
//! - BPTT errors: Q8.24 words (i32). e_L enters exactly (Q3.13 at exponent E is a
//!   left shift by 11 − E into 24 fraction bits; for E > 11, one rounding). Why wider
//!   than the CNN's Q3.13 words: BPTT chains T recurrent Jacobians, and 16-bit errors
//!   were measured vanishing along much shorter chains (issue 9). Each error tensor is
//!   narrowed once from its exact sum (W^T·δ at 36 fraction bits plus any direct term).
//! - Gradient sums: exact i128, at 48 fraction bits (error × value) or 24 (biases,
//!   embedding rows). [`RnnGrads::mean`] narrows each once to Q8.24 with the mean over
//!   the batch's tokens: one rounded exact division (a constant multiply in hardware).

use crate::act::{sigmoid_deriv, sigmoid_fx, tanh_deriv, tanh_fx};
use crate::cnn::softmax::softmax_xent_fx;
use crate::format::{self, ACT, ERROR, MASTER, WEIGHT};
use crate::rng::Rng;

/// Fraction bits of every cell value and BPTT error word.
pub const FRAC: u32 = 24;
/// Fraction bits of a forward product (Q8.24 value × Q4.12 weight).
const PROD_FRAC: u32 = FRAC + 12;

/// Which recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// tanh RNN.
    Rnn,
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit.
    Gru,
}

impl CellKind {
    /// Gate blocks of H rows in W_x, W_h and b.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }
}

/// Sizes of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnShape {
    /// The cell.
    pub kind: CellKind,
    /// Vocabulary size V (tokens 0..V).
    pub vocab: usize,
    /// Embedding width E.
    pub embed: usize,
    /// Hidden width H.
    pub hidden: usize,
}

impl RnnShape {
    /// Rows of W_x, W_h and b: gates · H.
    pub fn gate_rows(&self) -> usize {
        self.kind.gates() * self.hidden
    }
}

/// Master parameters, Q8.24 raw words, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnnParams {
    /// Sizes.
    pub shape: RnnShape,
    /// Embedding, V × E.
    pub emb: Vec<i32>,
    /// Input weights, (gates·H) × E.
    pub wx: Vec<i32>,
    /// Recurrent weights, (gates·H) × H.
    pub wh: Vec<i32>,
    /// Gate biases, gates·H.
    pub b: Vec<i32>,
    /// Decoder weights, V × H.
    pub wd: Vec<i32>,
    /// Decoder biases, V.
    pub bd: Vec<i32>,
}

/// The nearest Q8.24 word to `x` (round half up, saturate).
pub fn q24(x: f64) -> i32 {
    format::saturate((x * (1u64 << FRAC) as f64 + 0.5).floor() as i64, MASTER) as i32
}

fn uniform(n: usize, lim: f64, rng: &mut Rng) -> Vec<i32> {
    (0..n)
        .map(|_| q24((2.0 * rng.uniform() - 1.0) * lim))
        .collect()
}

impl RnnParams {
    /// PyTorch's initialization: the cell and the decoder U(−1/√H, 1/√H), the
    /// embedding U(−0.1, 0.1); biases zero.
    pub fn init(shape: RnnShape, rng: &mut Rng) -> RnnParams {
        let (v, e, h, gh) = (shape.vocab, shape.embed, shape.hidden, shape.gate_rows());
        let k = 1.0 / (h as f64).sqrt();
        RnnParams {
            shape,
            emb: uniform(v * e, 0.1, rng),
            wx: uniform(gh * e, k, rng),
            wh: uniform(gh * h, k, rng),
            b: vec![0; gh],
            wd: uniform(v * h, k, rng),
            bd: vec![0; v],
        }
    }

    /// The tensors in the order emb, wx, wh, b, wd, bd (the gradients', the Adam
    /// moments', the checksum's and the checkpoint's order).
    pub fn tensors(&self) -> [&Vec<i32>; 6] {
        [&self.emb, &self.wx, &self.wh, &self.b, &self.wd, &self.bd]
    }

    /// The tensors, mutable, in the same order.
    pub fn tensors_mut(&mut self) -> [&mut Vec<i32>; 6] {
        [
            &mut self.emb,
            &mut self.wx,
            &mut self.wh,
            &mut self.b,
            &mut self.wd,
            &mut self.bd,
        ]
    }

    /// The Q4.12 copies the products use (once per step).
    pub fn forward_copy(&self) -> RnnFwd {
        let w = |m: &[i32]| -> Vec<i16> {
            m.iter()
                .map(|&x| format::narrow(x as i64, MASTER.frac - WEIGHT.frac, WEIGHT) as i16)
                .collect()
        };
        RnnFwd {
            wx: w(&self.wx),
            wh: w(&self.wh),
            wd: w(&self.wd),
        }
    }
}

/// The forward copies (Q4.12) of the weight matrices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnnFwd {
    /// W_x.
    pub wx: Vec<i16>,
    /// W_h.
    pub wh: Vec<i16>,
    /// W_d.
    pub wd: Vec<i16>,
}

/// Run `body` compiled for AVX-512 or AVX2 where the CPU (and the ISA limit) allows
/// it, else plain: the same integer arithmetic either way, so the same bits.
macro_rules! with_avx512 {
    ($body:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn on_avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[target_feature(enable = "avx2")]
            unsafe fn on_avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if crate::cnn::gemm::avx512() {
                // SAFETY: AVX-512 detected.
                return unsafe { on_avx512(|| $body($($arg),*)) };
            }
            if crate::cnn::gemm::avx2() {
                // SAFETY: AVX2 detected.
                return unsafe { on_avx2(|| $body($($arg),*)) };
            }
        }
        $body($($arg),*)
    }};
}

/// y_r = Σ_c w[r][c]·x[c] (exact, 36 fraction bits).
fn matvec(w: &[i16], cols: usize, x: &[i32]) -> Vec<i64> {
    // Plain loops into a buffer allocated outside: a `collect` here would run in a
    // library function that is not compiled for AVX-512 (measured: 29% of a
    // character LSTM's training time, scalar).
    #[inline(always)]
    fn body(w: &[i16], cols: usize, x: &[i32], y: &mut [i64]) {
        for (yr, row) in y.iter_mut().zip(w.chunks_exact(cols)) {
            let mut s = 0i64;
            for (&a, &b) in row.iter().zip(x) {
                s += a as i64 * b as i64;
            }
            *yr = s;
        }
    }
    fn fill(w: &[i16], cols: usize, x: &[i32], y: &mut [i64]) {
        with_avx512!(body(w, cols, x, y))
    }
    let mut y = vec![0i64; w.len() / cols.max(1)];
    fill(w, cols, x, &mut y);
    y
}

/// y_c += Σ_r w[r][c]·e[r] (exact, 36 fraction bits).
fn matvec_t_add(w: &[i16], cols: usize, e: &[i32], y: &mut [i64]) {
    #[inline(always)]
    fn body(w: &[i16], cols: usize, e: &[i32], y: &mut [i64]) {
        for (row, &er) in w.chunks_exact(cols).zip(e) {
            if er != 0 {
                for (yc, &a) in y.iter_mut().zip(row) {
                    *yc += a as i64 * er as i64;
                }
            }
        }
    }
    with_avx512!(body(w, cols, e, y))
}

/// Σ_c s[c]·x[c] of a dense sign row (−1 / 0 / +1) and error words, exact: partial
/// sums over 2^15 columns fit an i32 (|x| ≤ 2^15), the rest is i64.
pub(crate) fn signed_dot(s: &[i8], x: &[i16]) -> i64 {
    #[inline(always)]
    fn body(s: &[i8], x: &[i16]) -> i64 {
        s.chunks(1 << 15)
            .zip(x.chunks(1 << 15))
            .map(|(sc, xc)| {
                sc.iter()
                    .zip(xc)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum::<i32>() as i64
            })
            .sum()
    }
    with_avx512!(body(s, x))
}

/// acc[r][c] += a[r]·b[c] on 64-bit sums (the caller bounds them).
fn outer_add_i64(acc: &mut [i64], a: &[i32], b: &[i32]) {
    #[inline(always)]
    fn body(acc: &mut [i64], a: &[i32], b: &[i32]) {
        for (row, &e) in acc.chunks_exact_mut(b.len()).zip(a) {
            if e != 0 {
                for (x, &hv) in row.iter_mut().zip(b) {
                    *x += e as i64 * hv as i64;
                }
            }
        }
    }
    with_avx512!(body(acc, a, b))
}

/// a·b of two 24-fraction-bit words, narrowed once to Q8.24.
#[inline]
fn mul24(a: i32, b: i32) -> i32 {
    format::narrow(a as i64 * b as i64, FRAC, MASTER) as i32
}

/// A sum at 36 fraction bits (plus `direct` at 24) narrowed once to Q8.24.
#[inline]
fn to24(s: i64, direct: i32) -> i32 {
    format::narrow(
        s + ((direct as i64) << (PROD_FRAC - FRAC)),
        PROD_FRAC - FRAC,
        MASTER,
    ) as i32
}

/// Saturating Q8.24 addition.
#[inline]
fn add24(a: i32, b: i32) -> i32 {
    format::saturate(a as i64 + b as i64, MASTER) as i32
}

/// An e_L word (Q3.13 at exponent `exp`: real = raw × 2^−(13 + exp)) as a Q8.24 word.
pub fn err_to_24(raw: i16, exp: i32) -> i32 {
    let up = FRAC as i32 - ERROR.frac as i32 - exp;
    if up >= 0 {
        (raw as i32) << up
    } else {
        format::round_shift(raw as i64, (-up) as u32) as i32
    }
}

/// What one time step keeps for BPTT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepTrace {
    /// Input token.
    pub token: u32,
    /// Target token.
    pub target: u32,
    /// Cell input x (the token's embedding row).
    pub x: Vec<i32>,
    /// Previous hidden state.
    pub h_prev: Vec<i32>,
    /// Previous cell state (LSTM; empty otherwise).
    pub c_prev: Vec<i32>,
    /// Gate outputs, gates·H (RNN: h itself).
    pub gates: Vec<i32>,
    /// GRU: W_hn·h₋ narrowed to Q8.24; LSTM: tanh(c); empty for the RNN.
    pub aux: Vec<i32>,
    /// Hidden state h.
    pub h: Vec<i32>,
    /// Cell state c (LSTM; empty otherwise).
    pub c: Vec<i32>,
    /// e_L = softmax(z) − one-hot(target), Q3.13 at exponent `exp`.
    pub e: Vec<i16>,
    /// e_L's exponent.
    pub exp: i32,
    /// Cross-entropy of this step (Q15.16 raw).
    pub loss: i64,
    /// Whether the prediction (argmax of the logits) was the target.
    pub hit: bool,
}

/// One window's forward pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RnnTrace {
    /// Per time step.
    pub steps: Vec<StepTrace>,
}

impl RnnTrace {
    /// The final hidden state (the next window's h₀).
    pub fn h_last(&self) -> &[i32] {
        &self.steps.last().expect("a window has steps").h
    }
    /// The final cell state (LSTM; empty otherwise).
    pub fn c_last(&self) -> &[i32] {
        &self.steps.last().expect("a window has steps").c
    }
}

/// One window: tokens[t] predicts targets[t], from the state (h0, c0) (c0 empty
/// unless LSTM).
pub fn forward(
    p: &RnnParams,
    f: &RnnFwd,
    tokens: &[u32],
    targets: &[u32],
    h0: &[i32],
    c0: &[i32],
) -> RnnTrace {
    let s = p.shape;
    let (e, h) = (s.embed, s.hidden);
    let mut h_prev = h0.to_vec();
    let mut c_prev = c0.to_vec();
    let mut steps = Vec::with_capacity(tokens.len());
    for (&tok, &tgt) in tokens.iter().zip(targets) {
        let x = p.emb[tok as usize * e..(tok as usize + 1) * e].to_vec();
        let ax = matvec(&f.wx, e, &x);
        let ah = matvec(&f.wh, h, &h_prev);
        // Pre-activation of gate row r at 36 fraction bits: input, recurrent, bias.
        let pre = |r: usize| ax[r] + ah[r] + ((p.b[r] as i64) << (PROD_FRAC - FRAC));
        let (mut gates, mut aux, mut hn, mut cn) =
            (vec![0; s.gate_rows()], vec![], vec![0; h], vec![]);
        match s.kind {
            CellKind::Rnn => {
                for r in 0..h {
                    gates[r] = tanh_fx(pre(r), PROD_FRAC);
                }
                hn.copy_from_slice(&gates);
            }
            CellKind::Lstm => {
                for r in 0..4 * h {
                    gates[r] = if r / h == 2 {
                        tanh_fx(pre(r), PROD_FRAC)
                    } else {
                        sigmoid_fx(pre(r), PROD_FRAC)
                    };
                }
                cn = vec![0; h];
                aux = vec![0; h];
                for j in 0..h {
                    let (i, fg, g, o) =
                        (gates[j], gates[h + j], gates[2 * h + j], gates[3 * h + j]);
                    let c = fg as i64 * c_prev[j] as i64 + i as i64 * g as i64;
                    cn[j] = format::narrow(c, FRAC, MASTER) as i32;
                    aux[j] = tanh_fx(cn[j] as i64, FRAC);
                    hn[j] = mul24(o, aux[j]);
                }
            }
            CellKind::Gru => {
                for r in 0..2 * h {
                    gates[r] = sigmoid_fx(pre(r), PROD_FRAC);
                }
                aux = (0..h).map(|j| to24(ah[2 * h + j], 0)).collect();
                for j in 0..h {
                    let rj = gates[j] as i64;
                    // The input part, clamped to ±2^8 (tanh is saturated far below)
                    // so that moving it to 48 fraction bits cannot overflow.
                    let lim = 1i64 << (PROD_FRAC + 8);
                    let xn = (ax[2 * h + j] + ((p.b[2 * h + j] as i64) << (PROD_FRAC - FRAC)))
                        .clamp(-lim, lim);
                    // 48 fraction bits: x-part shifted up, r ⊙ (W_hn·h₋) exact.
                    let a = (xn << (2 * FRAC - PROD_FRAC)) + rj * aux[j] as i64;
                    gates[2 * h + j] = tanh_fx(a, 2 * FRAC);
                    let (z, n) = (gates[h + j] as i64, gates[2 * h + j] as i64);
                    let v = ((1i64 << FRAC) - z) * n + z * h_prev[j] as i64;
                    hn[j] = format::narrow(v, FRAC, MASTER) as i32;
                }
            }
        }
        // Decoder and softmax.
        let zs = matvec(&f.wd, h, &hn);
        let z: Vec<i16> = zs
            .iter()
            .zip(&p.bd)
            .map(|(&a, &b)| {
                let sum = a + ((b as i64) << (PROD_FRAC - FRAC));
                format::rescale(sum, PROD_FRAC, 0, ACT) as i16
            })
            .collect();
        let mut err = vec![0i16; s.vocab];
        let (loss, exp) = softmax_xent_fx(&z, tgt as usize, &mut err, true);
        let hit = crate::cnn::train::argmax(&z) == tgt as usize;
        steps.push(StepTrace {
            token: tok,
            target: tgt,
            x,
            h_prev: std::mem::replace(&mut h_prev, hn.clone()),
            c_prev: std::mem::replace(&mut c_prev, cn.clone()),
            gates,
            aux,
            h: hn,
            c: cn,
            e: err,
            exp,
            loss,
            hit,
        });
    }
    RnnTrace { steps }
}

/// Exact gradient sums over a batch (see the module docs for their LSBs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnnGrads {
    /// Embedding rows (24 fraction bits), V × E.
    pub emb: Vec<i128>,
    /// W_x (48 fraction bits).
    pub wx: Vec<i128>,
    /// W_h (48).
    pub wh: Vec<i128>,
    /// b (24).
    pub b: Vec<i128>,
    /// W_d (48).
    pub wd: Vec<i128>,
    /// b_d (24).
    pub bd: Vec<i128>,
    /// Tokens summed (the mean's divisor).
    pub tokens: u64,
    /// The current window's W_d sums (48 fraction bits, 64-bit; see [`decoder_grads`]).
    pub wd_win: Vec<i64>,
    /// The current window's b_d sums (24 fraction bits).
    pub bd_win: Vec<i64>,
    /// Steps in the 64-bit decoder sums.
    pub win_steps: u32,
    /// The current window's W_x and W_h sums split in two 64-bit halves (high:
    /// the products' signed bits 63:32, low: their unsigned bits 31:0; see
    /// [`cell_grads`]), in the order wx_hi, wx_lo, wh_hi, wh_lo.
    pub cell_win: [Vec<i64>; 4],
    /// Steps in the split cell sums.
    pub cell_steps: u32,
}

/// ⌊x / d⌉ rounding half up (d > 0), exact.
fn div_round(x: i128, d: i128) -> i128 {
    (2 * x + d).div_euclid(2 * d)
}

impl RnnGrads {
    /// Zero sums for `shape`.
    pub fn zeros(s: RnnShape) -> RnnGrads {
        let (v, e, h, gh) = (s.vocab, s.embed, s.hidden, s.gate_rows());
        RnnGrads {
            emb: vec![0; v * e],
            wx: vec![0; gh * e],
            wh: vec![0; gh * h],
            b: vec![0; gh],
            wd: vec![0; v * h],
            bd: vec![0; v],
            tokens: 0,
            wd_win: vec![],
            bd_win: vec![],
            win_steps: 0,
            cell_win: Default::default(),
            cell_steps: 0,
        }
    }

    /// Move the window's 64-bit sums into the 128-bit ones (exact).
    pub fn fold_window(&mut self) {
        self.win_steps = 0;
        self.cell_steps = 0;
        let [wx_hi, wx_lo, wh_hi, wh_lo] = &mut self.cell_win;
        for (t, (hi, lo)) in [
            (&mut self.wx, (wx_hi, wx_lo)),
            (&mut self.wh, (wh_hi, wh_lo)),
        ] {
            for ((t, h), l) in t.iter_mut().zip(hi.iter_mut()).zip(lo.iter_mut()) {
                *t += ((*h as i128) << 32) + *l as i128;
                (*h, *l) = (0, 0);
            }
        }
        for (t, w) in self.wd.iter_mut().zip(self.wd_win.iter_mut()) {
            *t += *w as i128;
            *w = 0;
        }
        for (t, w) in self.bd.iter_mut().zip(self.bd_win.iter_mut()) {
            *t += *w as i128;
            *w = 0;
        }
    }

    /// The mean gradient per token, Q8.24, in the order emb, wx, wh, b, wd, bd (after
    /// [`RnnGrads::fold_window`]); the module-1 tensors (emb, wx, wh, b) divided by
    /// 2^`module1_shift` as well (multiplied when negative), in the same one rounded
    /// division ([`super::dfa::RnnDfaOptions::grad_shift`], within
    /// [`super::dfa::GRAD_SHIFTS`]).
    pub fn mean(&mut self, module1_shift: i32) -> [Vec<i32>; 6] {
        self.fold_window();
        let n = self.tokens.max(1) as i128;
        let q = |v: &[i128], frac: u32, shift: i32| -> Vec<i32> {
            // Sums are far below 2^100 and |shift| ≤ 16: neither shift overflows.
            let d = n << (frac - FRAC) << shift.max(0);
            let up = (-shift).max(0);
            v.iter()
                .map(|&x| {
                    div_round(x << up, d).clamp(MASTER.min_raw() as i128, MASTER.max_raw() as i128)
                        as i32
                })
                .collect()
        };
        let s = module1_shift;
        [
            q(&self.emb, FRAC, s),
            q(&self.wx, 2 * FRAC, s),
            q(&self.wh, 2 * FRAC, s),
            q(&self.b, FRAC, s),
            q(&self.wd, 2 * FRAC, 0),
            q(&self.bd, FRAC, 0),
        ]
    }
}

/// hi[r][c]·2^32 + lo[r][c] += a[r]·b[c] (exact; see [`cell_grads`]).
fn outer_add_split(hi: &mut [i64], lo: &mut [i64], a: &[i32], b: &[i32]) {
    #[inline(always)]
    fn body(hi: &mut [i64], lo: &mut [i64], a: &[i32], b: &[i32]) {
        let n = b.len();
        for ((hr, lr), &ar) in hi.chunks_exact_mut(n).zip(lo.chunks_exact_mut(n)).zip(a) {
            if ar != 0 {
                for ((h, l), &bc) in hr.iter_mut().zip(lr.iter_mut()).zip(b) {
                    let p = ar as i64 * bc as i64;
                    *h += p >> 32;
                    *l += p & 0xFFFF_FFFF;
                }
            }
        }
    }
    with_avx512!(body(hi, lo, a, b))
}

/// The gate errors of one step of the cell, from the error at its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellErrors {
    /// Gate pre-activation errors on the input side (W_x, b, the embedding).
    pub dx: Vec<i32>,
    /// Gate pre-activation errors on the recurrent side (W_h; the GRU's n gate
    /// differs: r ⊙ δn).
    pub dh: Vec<i32>,
    /// The direct part of the error into h₋ (GRU: dh ⊙ z; zero otherwise).
    pub direct: Vec<i32>,
    /// LSTM: the error into c₋ (dc ⊙ f); empty otherwise.
    pub dc_prev: Vec<i32>,
}

/// One step's local backward through the cell (Q8.24 words): from `dh`, the error at
/// h, and (LSTM) `dc_next`, the error at c from the next step (zeros when there is
/// none, as in DFA, where each step's error comes straight from its path).
pub fn cell_backward(kind: CellKind, st: &StepTrace, dh: &[i32], dc_next: &[i32]) -> CellErrors {
    let h = dh.len();
    let gr = kind.gates() * h;
    let (mut dx_g, mut dh_g, mut direct) = (vec![0i32; gr], vec![0i32; gr], vec![0i32; h]);
    let mut dc_prev = vec![];
    match kind {
        CellKind::Rnn => {
            for j in 0..h {
                dx_g[j] = mul24(dh[j], tanh_deriv(st.h[j]));
            }
            dh_g.copy_from_slice(&dx_g);
        }
        CellKind::Lstm => {
            dc_prev = vec![0i32; h];
            for j in 0..h {
                let (i, fg, gg, o) = (
                    st.gates[j],
                    st.gates[h + j],
                    st.gates[2 * h + j],
                    st.gates[3 * h + j],
                );
                let tc = st.aux[j];
                let d_o = mul24(dh[j], tc);
                let dtc = mul24(dh[j], o);
                let dc = add24(dc_next[j], mul24(dtc, tanh_deriv(tc)));
                dx_g[j] = mul24(mul24(dc, gg), sigmoid_deriv(i));
                dx_g[h + j] = mul24(mul24(dc, st.c_prev[j]), sigmoid_deriv(fg));
                dx_g[2 * h + j] = mul24(mul24(dc, i), tanh_deriv(gg));
                dx_g[3 * h + j] = mul24(d_o, sigmoid_deriv(o));
                dc_prev[j] = mul24(dc, fg);
            }
            dh_g.copy_from_slice(&dx_g);
        }
        CellKind::Gru => {
            for j in 0..h {
                let (r, z, n) = (st.gates[j], st.gates[h + j], st.gates[2 * h + j]);
                let dn = mul24(dh[j], (1i32 << FRAC) - z);
                let dz = mul24(
                    dh[j],
                    format::saturate(st.h_prev[j] as i64 - n as i64, MASTER) as i32,
                );
                direct[j] = mul24(dh[j], z);
                let d_an = mul24(dn, tanh_deriv(n));
                let dr = mul24(d_an, st.aux[j]);
                dx_g[j] = mul24(dr, sigmoid_deriv(r));
                dx_g[h + j] = mul24(dz, sigmoid_deriv(z));
                dx_g[2 * h + j] = d_an;
                dh_g[j] = dx_g[j];
                dh_g[h + j] = dx_g[h + j];
                dh_g[2 * h + j] = mul24(d_an, r);
            }
        }
    }
    CellErrors {
        dx: dx_g,
        dh: dh_g,
        direct,
        dc_prev,
    }
}

/// Steps whose decoder gradients the 64-bit sums take before they are folded:
/// |e_L| ≤ 1 and |h| ≤ 1, so a product has at most 48 bits and 2^14 of them stay
/// below 2^62.
pub const DECODER_FOLD_STEPS: u32 = 1 << 14;

/// The decoder's gradients of one step, and e_L as Q8.24 words. They go to 64-bit
/// sums, moved into the 128-bit ones ([`RnnGrads::fold_window`]) every
/// [`DECODER_FOLD_STEPS`] steps and before the mean: exact either way.
pub fn decoder_grads(st: &StepTrace, g: &mut RnnGrads) -> Vec<i32> {
    let el: Vec<i32> = st.e.iter().map(|&w| err_to_24(w, st.exp)).collect();
    if g.wd_win.is_empty() {
        g.wd_win = vec![0; g.wd.len()];
        g.bd_win = vec![0; g.bd.len()];
    }
    if g.win_steps >= DECODER_FOLD_STEPS {
        g.fold_window();
    }
    g.win_steps += 1;
    outer_add_i64(&mut g.wd_win, &el, &st.h);
    for (b, &x) in g.bd_win.iter_mut().zip(&el) {
        *b += x as i64;
    }
    el
}

/// The cell's gradients of one step from its gate errors, and the error into the
/// step's embedding row (W_xᵀ·δx, one narrowing).
///
/// W_x and W_h take the exact 62-bit products a·b (Q8.24 words) as two 64-bit sums:
/// b·2^32 + l with b = a·b >> 32 (|b| < 2^30) and l its low 32 bits (< 2^32), so
/// either sum holds 2^31 products; they move into the 128-bit sums every
/// [`DECODER_FOLD_STEPS`] steps and before the mean (the same integers as adding
/// each product in 128 bits, at vector speed).
pub fn cell_grads(f: &RnnFwd, e: usize, st: &StepTrace, ce: &CellErrors, g: &mut RnnGrads) {
    if g.cell_win[0].is_empty() {
        g.cell_win = [
            vec![0; g.wx.len()],
            vec![0; g.wx.len()],
            vec![0; g.wh.len()],
            vec![0; g.wh.len()],
        ];
    }
    if g.cell_steps >= DECODER_FOLD_STEPS {
        g.fold_window();
    }
    g.cell_steps += 1;
    let [wx_hi, wx_lo, wh_hi, wh_lo] = &mut g.cell_win;
    outer_add_split(wx_hi, wx_lo, &ce.dx, &st.x);
    outer_add_split(wh_hi, wh_lo, &ce.dh, &st.h_prev);
    for (b, &x) in g.b.iter_mut().zip(&ce.dx) {
        *b += x as i128;
    }
    let mut sx = vec![0i64; e];
    matvec_t_add(&f.wx, e, &ce.dx, &mut sx);
    let row = &mut g.emb[st.token as usize * e..(st.token as usize + 1) * e];
    for (gr, &a) in row.iter_mut().zip(&sx) {
        *gr += to24(a, 0) as i128;
    }
    g.tokens += 1;
}

/// BPTT over one window: adds the window's gradient sums to `g`. Uses the same
/// forward copies `f` as the forward pass.
pub fn bptt(p: &RnnParams, f: &RnnFwd, tr: &RnnTrace, g: &mut RnnGrads) {
    let s = p.shape;
    let (e, h) = (s.embed, s.hidden);
    let mut dh_next = vec![0i32; h];
    let mut dc_next = vec![0i32; h];
    for st in tr.steps.iter().rev() {
        let el = decoder_grads(st, g);
        let mut sdh = vec![0i64; h];
        matvec_t_add(&f.wd, h, &el, &mut sdh);
        let dh: Vec<i32> = sdh
            .iter()
            .zip(&dh_next)
            .map(|(&a, &d)| to24(a, d))
            .collect();
        let ce = cell_backward(s.kind, st, &dh, &dc_next);
        cell_grads(f, e, st, &ce, g);
        let mut shp = vec![0i64; h];
        matvec_t_add(&f.wh, h, &ce.dh, &mut shp);
        dh_next = shp
            .iter()
            .zip(&ce.direct)
            .map(|(&a, &d)| to24(a, d))
            .collect();
        if s.kind == CellKind::Lstm {
            dc_next = ce.dc_prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::float::{bptt_f, forward_f, FloatParams};
    use super::*;
    use crate::rng::{RngCore, SeedableRng};

    /// The split 64-bit sums of W_x / W_h equal plain 128-bit sums of the products,
    /// with the extreme words (i32::MIN·i32::MIN is 2^62) and 3,000 additions.
    #[test]
    fn split_cell_sums_equal_128_bit_sums() {
        let mut rng = Rng::seed_from_u64(12);
        let (n, m) = (5, 7);
        let (mut hi, mut lo) = (vec![0i64; n * m], vec![0i64; n * m]);
        let mut want = vec![0i128; n * m];
        let word = |rng: &mut Rng| match rng.below(4) {
            0 => i32::MIN,
            1 => i32::MAX,
            _ => (rng.next_u64() >> 32) as i32,
        };
        for _ in 0..3000 {
            let a: Vec<i32> = (0..n).map(|_| word(&mut rng)).collect();
            let b: Vec<i32> = (0..m).map(|_| word(&mut rng)).collect();
            outer_add_split(&mut hi, &mut lo, &a, &b);
            for r in 0..n {
                for c in 0..m {
                    want[r * m + c] += a[r] as i128 * b[c] as i128;
                }
            }
        }
        let got: Vec<i128> = hi
            .iter()
            .zip(&lo)
            .map(|(&h, &l)| ((h as i128) << 32) + l as i128)
            .collect();
        assert_eq!(got, want);
    }

    /// The float model on the values the fixed-point one computes with: master words
    /// for the embedding and biases, the Q4.12 copies for the matrices.
    fn as_float(p: &RnnParams, f: &RnnFwd) -> FloatParams<f64> {
        let m = |v: &[i32]| {
            v.iter()
                .map(|&x| x as f64 / (1u64 << FRAC) as f64)
                .collect()
        };
        let w = |v: &[i16]| v.iter().map(|&x| x as f64 / 4096.0).collect();
        FloatParams {
            shape: p.shape,
            emb: m(&p.emb),
            wx: w(&f.wx),
            wh: w(&f.wh),
            b: m(&p.b),
            wd: w(&f.wd),
            bd: m(&p.bd),
        }
    }

    /// (cosine, relative L2 error) of `a` against the reference `r`.
    fn compare(a: &[f64], r: &[f64]) -> (f64, f64) {
        let dot: f64 = a.iter().zip(r).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nr = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        let diff = a
            .iter()
            .zip(r)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt();
        (dot / (na * nr).max(1e-300), diff / nr.max(1e-300))
    }

    /// Fixed-point gradients of `windows` windows (state carried over) against the
    /// f64 model's on the same values; per tensor (cosine, relative L2).
    fn gradients_against_f64(kind: CellKind, seed: u64) -> Vec<(&'static str, f64, f64)> {
        let shape = RnnShape {
            kind,
            vocab: 83,
            embed: 10,
            hidden: 16,
        };
        let mut rng = Rng::seed_from_u64(seed);
        let mut p = RnnParams::init(shape, &mut rng);
        // Nonzero biases, so their paths are exercised too.
        for b in p.b.iter_mut().chain(p.bd.iter_mut()) {
            *b = q24(0.2 * (2.0 * rng.uniform() - 1.0));
        }
        let f = p.forward_copy();
        let fp = as_float(&p, &f);
        let (t, windows) = (9, 3);
        let seq: Vec<u32> = (0..t * windows + 1)
            .map(|_| rng.below(shape.vocab as u64) as u32)
            .collect();
        let c0 = if kind == CellKind::Lstm {
            vec![0; 16]
        } else {
            vec![]
        };
        let (mut h, mut c) = (vec![0i32; 16], c0);
        let (mut hf, mut cf) = (vec![0.0f64; 16], vec![0.0f64; c.len()]);
        let mut g = RnnGrads::zeros(shape);
        let mut gf = FloatParams::<f64>::zeros(shape);
        for w in 0..windows {
            let (x, y) = (&seq[w * t..(w + 1) * t], &seq[w * t + 1..(w + 1) * t + 1]);
            let tr = forward(&p, &f, x, y, &h, &c);
            bptt(&p, &f, &tr, &mut g);
            (h, c) = (tr.h_last().to_vec(), tr.c_last().to_vec());
            let trf = forward_f(&fp, x, y, &hf, &cf);
            bptt_f(&fp, &trf, &mut gf);
            let last = trf.steps.last().unwrap();
            (hf, cf) = (last.h.clone(), last.c.clone());
        }
        let n = g.tokens as f64;
        let names = ["emb", "wx", "wh", "b", "wd", "bd"];
        g.mean(0)
            .iter()
            .zip(gf.tensors())
            .zip(names)
            .map(|((a, r), name)| {
                let a: Vec<f64> = a
                    .iter()
                    .map(|&x| x as f64 / (1u64 << FRAC) as f64)
                    .collect();
                let r: Vec<f64> = r.iter().map(|&x| x / n).collect();
                let (cos, rel) = compare(&a, &r);
                (name, cos, rel)
            })
            .collect()
    }

    #[test]
    fn bptt_gradients_of_every_cell_track_f64() {
        for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            for seed in [1, 2, 3] {
                for (name, cos, rel) in gradients_against_f64(kind, seed) {
                    eprintln!("{kind:?} seed {seed} {name}: cos {cos:.6} rel {rel:.5}");
                    assert!(
                        cos >= 0.99999 && rel <= 0.003,
                        "{kind:?} seed {seed} {name}: cosine {cos}, relative L2 {rel}"
                    );
                }
            }
        }
    }
}
