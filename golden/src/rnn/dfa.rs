//! DFA for the recurrent model (paper sections 3.1 and 3.3, eq. 9–12, appendix B.2):
//! the cell's errors come straight from output errors through fixed binary feedback,
//! with no chain through time. Main types: [`RnnDfaOptions`], [`RnnFeedback`];
//! function [`dfa_grads`].
//!
//! ## Modes (all feedback is fixed at the start of training)
//! - **Original DFA** (`modular = false`): every output step's e_L (V words) reaches
//!   every hidden step through one dense binary H × V matrix S_o:
//!   e_i = S_o · Σ_j e_L,j. Every time step runs the same cell (shared weights), so
//!   every step takes the same feedback matrix; with it all steps see the same error.
//! - **Modularized** (`modular = true`): module 2 is the decoder, trained by its own
//!   exact error e_L; module 1 is the embedding and the cell. The cell outputs' errors
//!   are e^rnn_j = S^fc · e_L,j (eq. 10, S^fc: H × V). Without `triangular`, every
//!   hidden step takes e_i = S_m · Σ_j e^rnn_j (S_m: H × H dense binary).
//! - **Upper triangular** (`triangular = true`, eq. 9 and 11): e = S^rnn · e^rnn with
//!   S^rnn's blocks (i, j) zero for i > j and sign(power(D, n) ⊙ R_j) above
//!   ([`super::feedback::TriFeedback`], n = T − j as printed or j − i by time distance).
//! - **Binary and sparse**: every matrix is sign(D ⊙ R) with R keeping an entry with
//!   probability 1 − `sparsity` (the bsbu's [`SparseSign`] for the H × V and H × H
//!   matrices).
//! - **Initialization** (`init_from_forward`, B.2): S^fc takes the signs of the
//!   decoder's transposed forward weight, and D (or S_m) the signs of the average of
//!   the cell's recurrent weight blocks (one block for the RNN, the mean of the four
//!   LSTM or three GRU gate blocks), both as they are at the start of training.
//!
//! ## From e^emb to gradients
//! The error a path delivers to hidden step i is the error at h_i. The cell's gate
//! errors follow from it through the step's own derivatives
//! ([`super::cell::cell_backward`] with no error from the next step: that is eq. 12's
//! ⊙ f'(p^rnn)), and give W_x, W_h and b their gradients; the step's embedding row
//! takes W_xᵀ·δx (the one-layer path inside module 1). The decoder is trained by e_L
//! in every mode.
//!
//! ## Fixed point
//! e_L,j arrives as Q3.13 words at its own exponent E_j. A window's e_L words are
//! first aligned to the window's smallest exponent E* (the largest magnitudes) by a
//! rounding right shift of E_j − E* bits. Every binary product is an exact sum,
//! narrowed once by the fan-in shift of its expected nonzero terms per output
//! ([`crate::format::fan_in_shift`]) into Q3.13 at exponent E*, as the bsbu narrows.
//! The products that sum over the T output steps (S_o, S_m, S^rnn) count those terms
//! in their fan-in. The errors at h then enter the cell's Q8.24 backward exactly
//! ([`super::cell::err_to_24`]).

use super::cell::{
    cell_backward, cell_grads, decoder_grads, err_to_24, signed_dot, CellKind, RnnFwd, RnnGrads,
    RnnParams, RnnTrace,
};
use super::feedback::{real_shift, real_word, Exponent, SignSum, TriFeedback, REAL_FRAC};
use super::float::Real;
use crate::bsbu::SparseSign;
use crate::format::{fan_in_shift, narrow, round_shift, ERROR};
use crate::rng::{Rng, SeedableRng};
use crate::GoldenError;

/// Which DFA the recurrent model uses (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnDfaOptions {
    /// Module 1 = embedding + cell, module 2 = decoder.
    pub modular: bool,
    /// Upper-triangular block feedback (needs `modular`).
    pub triangular: bool,
    /// Share of zero entries in every feedback matrix, in [0, 1).
    pub sparsity: f64,
    /// Appendix B.2: feedback from the forward weights at the start (needs `modular`).
    pub init_from_forward: bool,
    /// The triangular blocks' power.
    pub exponent: Exponent,
    /// Binary feedback (eq. 10–11: signs); false: real-valued (the plain DFA's
    /// random matrices, B.2's weights themselves).
    pub binary: bool,
    /// A DFA step's module-1 (embedding and cell) gradients are divided by
    /// 2^grad_shift before Adam (negative: multiplied), in the one rounded division
    /// that takes their mean. In HDFA both kinds of step feed one Adam state, so this
    /// sets their mix; in hardware it is a shift in front of the optimizer.
    pub grad_shift: i32,
}

/// The range of [`RnnDfaOptions::grad_shift`].
pub const GRAD_SHIFTS: std::ops::RangeInclusive<i32> = -8..=16;

/// One dense-path feedback matrix (rows × cols): binary, as the backward-weight unit
/// stores it, or real-valued (Q1.14 words, row-major, 0 where masked).
#[derive(Clone, Debug, PartialEq)]
pub enum FbMatrix {
    /// sign(D ⊙ R).
    Sign(SparseSign),
    /// D ⊙ R.
    Real {
        /// Columns.
        cols: usize,
        /// Q1.14 raw words, |w| ≤ 1.
        w: Vec<i16>,
        /// The rows' mean Σw² (real units), for the narrowing shift.
        energy: f64,
    },
}

impl FbMatrix {
    /// Draw a rows × cols matrix: entry (r, c) from `value(r, c, rng)` (a real value
    /// in [−1, 1], or None for a zero) where the mask keeps it (probability
    /// 1 − sparsity); binary keeps its sign. Random matrices draw the value first,
    /// then the mask, entry by entry ([`SparseSign::draw`]'s order when binary).
    fn draw(
        rows: usize,
        cols: usize,
        sparsity: f64,
        binary: bool,
        rng: &mut Rng,
        value: impl Fn(usize, usize, &mut Rng) -> Option<f64>,
    ) -> Result<FbMatrix, GoldenError> {
        if binary {
            return Ok(FbMatrix::Sign(SparseSign::draw_with(
                rows,
                cols,
                sparsity,
                rng,
                |r, c, rng| value(r, c, rng).map(|v| v < 0.0),
            )?));
        }
        crate::params::check_sparsity(sparsity)?;
        let mut w = vec![0i16; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                let v = value(r, c, rng);
                let keep = sparsity == 0.0 || rng.uniform() >= sparsity;
                if let (Some(v), true) = (v, keep) {
                    w[r * cols + c] = real_word(v);
                }
            }
        }
        let unit = (1u64 << REAL_FRAC) as f64;
        let energy = w.iter().map(|&v| (v as f64 / unit).powi(2)).sum::<f64>() / rows.max(1) as f64;
        Ok(FbMatrix::Real { cols, w, energy })
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        match self {
            FbMatrix::Sign(s) => s.n_rows(),
            FbMatrix::Real { cols, w, .. } => w.len() / cols.max(&1),
        }
    }

    /// The binary matrix, if it is one.
    pub fn as_sign(&self) -> Option<&SparseSign> {
        match self {
            FbMatrix::Sign(s) => Some(s),
            FbMatrix::Real { .. } => None,
        }
    }

    /// M · x as exact sums (i64) or floats, before any scaling.
    pub fn product<T: SignSum>(&self, x: &[T]) -> Vec<T> {
        match self {
            FbMatrix::Sign(s) => sign_product(s, x),
            FbMatrix::Real { cols, w, .. } => w
                .chunks_exact(*cols)
                .map(|row| {
                    let mut acc = T::default();
                    for (&wi, &xi) in row.iter().zip(x) {
                        if wi != 0 {
                            acc += T::from(wi) * xi;
                        }
                    }
                    acc
                })
                .collect(),
        }
    }

    /// The narrowing shift of a product whose every output sums `times` such rows:
    /// the fan-in shift of the nonzeros per row (binary), or the weights' fraction
    /// bits plus the fan-in shift of the rows' mean Σw² (real-valued).
    pub fn shift(&self, times: usize) -> u32 {
        match self {
            FbMatrix::Sign(s) => fan_in_shift(per_row(s) * times),
            FbMatrix::Real { energy, .. } => real_shift(energy * times as f64),
        }
    }
}

/// The cell's feedback in modularized mode.
#[derive(Clone, Debug, PartialEq)]
pub enum CellFeedback {
    /// S_m (H × H), applied to Σ_j e^rnn_j.
    Dense(FbMatrix),
    /// S^rnn (HT × HT, upper triangular).
    Triangular(TriFeedback),
}

/// The fixed feedback of one model.
#[derive(Clone, Debug, PartialEq)]
pub enum RnnFeedback {
    /// Original DFA: S_o (H × V).
    Original(FbMatrix),
    /// Modularized: S^fc (H × V) and the cell's feedback.
    Modular {
        /// Decoder errors to cell outputs.
        fc: FbMatrix,
        /// A binary S^fc as dense rows of −1 / 0 / +1 (the same matrix, for the
        /// product of every step's e_L; empty when real-valued).
        fc_dense: Vec<i8>,
        /// Cell outputs to every hidden step.
        cell: CellFeedback,
    },
}

/// Nonzeros per row of a sign matrix, on average (at least 1): the terms of each
/// output's sum, whose fan-in shift narrows it.
pub fn per_row(s: &SparseSign) -> usize {
    (s.nnz() as f64 / s.n_rows() as f64).round().max(1.0) as usize
}

impl RnnFeedback {
    /// Draw the feedback for `p` (its weights as they are now, for B.2) and windows of
    /// `t` steps, from `seed`.
    pub fn new(
        p: &RnnParams,
        t: usize,
        o: RnnDfaOptions,
        seed: u64,
    ) -> Result<RnnFeedback, GoldenError> {
        let s = p.shape;
        let (h, v) = (s.hidden, s.vocab);
        if !o.modular && (o.triangular || o.init_from_forward) {
            return Err(GoldenError::out_of_range(
                "triangular / init_from_forward without modules",
                "true",
                "only with modular = true",
            ));
        }
        let mut rng = Rng::seed_from_u64(seed);
        // D uniform in (−1, 1): for a binary matrix only its sign matters, one fair
        // bit (SparseSign::draw's order).
        let random = |rows, cols, rng: &mut Rng| -> Result<FbMatrix, GoldenError> {
            if o.binary {
                Ok(FbMatrix::Sign(SparseSign::draw(
                    rows, cols, o.sparsity, rng,
                )?))
            } else {
                FbMatrix::draw(rows, cols, o.sparsity, false, rng, |_, _, rng| {
                    Some(2.0 * rng.uniform() - 1.0)
                })
            }
        };
        if !o.modular {
            return Ok(RnnFeedback::Original(random(h, v, &mut rng)?));
        }
        // B.2: D for the cell = the mean of the recurrent weight's gate blocks.
        let gates = s.kind.gates();
        let d_cell: Vec<f64> = (0..h * h)
            .map(|k| {
                (0..gates)
                    .map(|gi| p.wh[gi * h * h + k] as f64)
                    .sum::<f64>()
                    / gates as f64
            })
            .collect();
        // A forward matrix scaled so its largest |entry| is 1 (real-valued B.2).
        let unit_max = |m: &[f64]| m.iter().fold(0.0f64, |a, &x| a.max(x.abs())).max(1e-300);
        let fc = if o.init_from_forward {
            // S^fc[r][c] = W_d[c][r] (its sign when binary).
            let wd: Vec<f64> = p.wd.iter().map(|&w| w as f64).collect();
            let m = unit_max(&wd);
            FbMatrix::draw(h, v, o.sparsity, o.binary, &mut rng, |r, c, _| {
                let w = wd[c * h + r];
                (w != 0.0).then_some(w / m)
            })?
        } else {
            random(h, v, &mut rng)?
        };
        let cell = if o.triangular {
            let tri_seed = seed ^ 0x7419_a3c5_0b2e_d861;
            if o.init_from_forward {
                CellFeedback::Triangular(TriFeedback::new(
                    h, t, &d_cell, o.sparsity, o.exponent, tri_seed, o.binary,
                )?)
            } else {
                CellFeedback::Triangular(TriFeedback::random(
                    h, t, o.sparsity, o.exponent, tri_seed, o.binary,
                )?)
            }
        } else if o.init_from_forward {
            let m = unit_max(&d_cell);
            CellFeedback::Dense(FbMatrix::draw(
                h,
                h,
                o.sparsity,
                o.binary,
                &mut rng,
                |r, c, _| {
                    let w = d_cell[r * h + c];
                    (w != 0.0).then_some(w / m)
                },
            )?)
        } else {
            CellFeedback::Dense(random(h, h, &mut rng)?)
        };
        let mut fc_dense = Vec::new();
        if let FbMatrix::Sign(s) = &fc {
            fc_dense = vec![0i8; h * v];
            for r in 0..h {
                for nz in s.row(r) {
                    fc_dense[r * v + nz.col as usize] = if nz.neg { -1 } else { 1 };
                }
            }
        }
        Ok(RnnFeedback::Modular { fc, fc_dense, cell })
    }
}

/// S · x for a sign matrix (exact sums on i64; the float path's f32 / f64).
fn sign_product<T: SignSum>(s: &SparseSign, x: &[T]) -> Vec<T> {
    let minus = T::from(-1i16);
    (0..s.n_rows())
        .map(|r| {
            let mut acc = T::default();
            for nz in s.row(r) {
                let v = x[nz.col as usize];
                acc += if nz.neg { minus * v } else { v };
            }
            acc
        })
        .collect()
}

/// Σ_j x_j of equal-length vectors.
fn sum_over<T: SignSum>(vs: &[Vec<T>]) -> Vec<T> {
    let mut acc = vec![T::default(); vs.first().map_or(0, Vec::len)];
    for v in vs {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += x;
        }
    }
    acc
}

/// e_L of every step of the window at its smallest exponent E* (a rounding right
/// shift by E_j − E*: the words stay 16-bit), and E*.
pub fn aligned_errors(tr: &RnnTrace) -> (Vec<Vec<i64>>, i32) {
    let e_star = tr.steps.iter().map(|s| s.exp).min().unwrap_or(0);
    let aligned = tr
        .steps
        .iter()
        .map(|s| {
            s.e.iter()
                .map(|&w| round_shift(w as i64, (s.exp - e_star) as u32))
                .collect()
        })
        .collect();
    (aligned, e_star)
}

/// The narrowing shift of S^fc's products ([`FbMatrix::shift`] of one row each).
pub fn fc_shift(fc: &FbMatrix) -> u32 {
    fc.shift(1)
}

/// e^rnn_j = narrow(S^fc · e_j, [`fc_shift`]) for every aligned e_j (eq. 10): when
/// binary, the products the backward-weight unit computes ([`crate::bsbu`], with no
/// f').
pub fn fc_errors(fc: &FbMatrix, fc_dense: &[i8], aligned: &[Vec<i64>]) -> Vec<Vec<i16>> {
    let shift = fc_shift(fc);
    aligned
        .iter()
        .map(|e| match fc {
            FbMatrix::Sign(s) => {
                // Aligned e_L words are Q3.13 words shifted right: still 16-bit.
                let e16: Vec<i16> = e.iter().map(|&x| x as i16).collect();
                fc_dense
                    .chunks_exact(s.n_cols())
                    .map(|row| narrow(signed_dot(row, &e16), shift, ERROR) as i16)
                    .collect()
            }
            FbMatrix::Real { .. } => fc
                .product(e)
                .into_iter()
                .map(|x| narrow(x, shift, ERROR) as i16)
                .collect(),
        })
        .collect()
}

/// The errors at every hidden step's output h_i (Q3.13 words at the returned
/// exponent), for the window `tr`.
pub fn hidden_errors(fb: &RnnFeedback, tr: &RnnTrace) -> (Vec<Vec<i16>>, i32) {
    let t = tr.steps.len();
    let (aligned, e_star) = aligned_errors(tr);
    let narrow_all = |sums: Vec<i64>, shift: u32| -> Vec<i16> {
        sums.into_iter()
            .map(|x| narrow(x, shift, ERROR) as i16)
            .collect()
    };
    let errors = match fb {
        RnnFeedback::Original(so) => {
            let e = narrow_all(so.product(&sum_over(&aligned)), so.shift(t));
            vec![e; t]
        }
        RnnFeedback::Modular { fc, fc_dense, cell } => {
            let ernn: Vec<Vec<i64>> = fc_errors(fc, fc_dense, &aligned)
                .into_iter()
                .map(|e| e.into_iter().map(i64::from).collect())
                .collect();
            match cell {
                CellFeedback::Dense(sm) => {
                    let e = narrow_all(sm.product(&sum_over(&ernn)), sm.shift(t));
                    vec![e; t]
                }
                CellFeedback::Triangular(tri) => {
                    let h = tri.h;
                    let out = tri.apply(&tri.window_vector(&ernn));
                    (0..t)
                        .map(|i| out[i * h..(i + 1) * h].iter().map(|&x| x as i16).collect())
                        .collect()
                }
            }
        }
    };
    (errors, e_star)
}

/// The f32 path's errors at every hidden step's output from the window's e_L
/// (softmax − one-hot, one vector per step): the same feedback matrices and the same
/// power-of-two scales as [`hidden_errors`] (each fan-in shift is a factor
/// 2^−shift), with no narrowing.
pub fn hidden_errors_f<R: Real>(fb: &RnnFeedback, e: &[Vec<R>]) -> Vec<Vec<R>> {
    let t = e.len();
    let scaled = |v: Vec<R>, shift: u32| -> Vec<R> {
        let k = R::of((-(shift as f64)).exp2());
        v.into_iter().map(|x| x * k).collect()
    };
    match fb {
        RnnFeedback::Original(so) => {
            let x = scaled(so.product(&sum_over(e)), so.shift(t));
            vec![x; t]
        }
        RnnFeedback::Modular { fc, cell, .. } => {
            let ernn: Vec<Vec<R>> = e
                .iter()
                .map(|ej| scaled(fc.product(ej), fc_shift(fc)))
                .collect();
            match cell {
                CellFeedback::Dense(sm) => {
                    let x = scaled(sm.product(&sum_over(&ernn)), sm.shift(t));
                    vec![x; t]
                }
                CellFeedback::Triangular(tri) => {
                    let h = tri.h;
                    let out = scaled(tri.sums(&tri.window_vector(&ernn)), tri.shift);
                    (0..t).map(|i| out[i * h..(i + 1) * h].to_vec()).collect()
                }
            }
        }
    }
}

/// DFA gradients of one window: the decoder from e_L, the cell and the embedding
/// from the hidden errors (see the module docs). Adds to `g`.
pub fn dfa_grads(p: &RnnParams, f: &RnnFwd, fb: &RnnFeedback, tr: &RnnTrace, g: &mut RnnGrads) {
    let s = p.shape;
    let (errors, exp) = hidden_errors(fb, tr);
    let dc0 = vec![
        0i32;
        if s.kind == CellKind::Lstm {
            s.hidden
        } else {
            0
        }
    ];
    for (st, e) in tr.steps.iter().zip(&errors) {
        decoder_grads(st, g);
        let dh: Vec<i32> = e.iter().map(|&w| err_to_24(w, exp)).collect();
        let ce = cell_backward(s.kind, st, &dh, &dc0);
        cell_grads(f, s.embed, st, &ce, g);
    }
}

#[cfg(test)]
mod tests {
    use super::super::cell::{forward, q24, RnnShape};
    use super::*;

    fn model(kind: CellKind) -> RnnParams {
        let shape = RnnShape {
            kind,
            vocab: 23,
            embed: 6,
            hidden: 9,
        };
        RnnParams::init(shape, &mut Rng::seed_from_u64(4))
    }

    fn opts(modular: bool, triangular: bool, init: bool, sparsity: f64) -> RnnDfaOptions {
        RnnDfaOptions {
            modular,
            triangular,
            sparsity,
            init_from_forward: init,
            exponent: Exponent::Printed,
            binary: true,
            grad_shift: 0,
        }
    }

    fn window(p: &RnnParams, t: usize, seed: u64) -> RnnTrace {
        let mut rng = Rng::seed_from_u64(seed);
        let v = p.shape.vocab as u64;
        let x: Vec<u32> = (0..t).map(|_| rng.below(v) as u32).collect();
        let y: Vec<u32> = (0..t).map(|_| rng.below(v) as u32).collect();
        let c0 = if p.shape.kind == CellKind::Lstm {
            vec![0; 9]
        } else {
            vec![]
        };
        forward(p, &p.forward_copy(), &x, &y, &[0; 9], &c0)
    }

    /// Triangular feedback: hidden step i hears output steps j ≥ i only, so changing
    /// e_L at step 0 changes step 0's error and no later one; the last step hears
    /// only itself. Original and dense modular feedback give every step one error.
    #[test]
    fn triangular_errors_never_come_from_earlier_outputs() {
        let p = model(CellKind::Gru);
        let t = 7;
        let fb = RnnFeedback::new(&p, t, opts(true, true, false, 0.0), 9).unwrap();
        let tr = window(&p, t, 1);
        let (base, exp) = hidden_errors(&fb, &tr);
        let mut tr2 = tr.clone();
        for w in tr2.steps[0].e.iter_mut() {
            *w = w.saturating_neg();
        }
        tr2.steps[0].exp = exp.max(tr2.steps[0].exp);
        let (moved, exp2) = hidden_errors(&fb, &tr2);
        assert_eq!(exp, exp2);
        assert_ne!(base[0], moved[0], "step 0 hears its own output");
        assert_eq!(base[1..], moved[1..], "later steps must not hear output 0");
        for o in [
            opts(false, false, false, 0.0),
            opts(true, false, false, 0.5),
        ] {
            let fb = RnnFeedback::new(&p, t, o, 9).unwrap();
            let (e, _) = hidden_errors(&fb, &tr);
            assert!(
                e.iter().all(|x| x == &e[0]) && e[0].iter().any(|&w| w != 0),
                "{o:?}"
            );
        }
    }

    /// The sign products against a plain dense evaluation: original DFA at sparsity
    /// 0 with equal exponents is narrow(S_o · Σ_j e_j, shift), entry by entry.
    #[test]
    fn original_dfa_equals_its_dense_definition() {
        let p = model(CellKind::Rnn);
        let t = 5;
        let fb = RnnFeedback::new(&p, t, opts(false, false, false, 0.0), 3).unwrap();
        let mut tr = window(&p, t, 2);
        for s in tr.steps.iter_mut() {
            s.exp = 2;
        }
        let (e, exp) = hidden_errors(&fb, &tr);
        assert_eq!(exp, 2);
        let RnnFeedback::Original(FbMatrix::Sign(so)) = &fb else {
            unreachable!()
        };
        assert_eq!(so.nnz(), 9 * 23, "sparsity 0 keeps every entry");
        let shift = fan_in_shift(23 * t);
        for r in 0..9 {
            let mut sum = 0i64;
            for c in 0..23 {
                let col: i64 = tr.steps.iter().map(|s| s.e[c] as i64).sum();
                sum += so.dense(r, c) as i64 * col;
            }
            let want = (sum as f64 / (1u64 << shift) as f64 + 0.5).floor();
            let want = want.clamp(ERROR.min_raw() as f64, ERROR.max_raw() as f64) as i16;
            assert!(e.iter().all(|x| x[r] == want), "row {r}");
        }
    }

    /// Appendix B.2: S^fc holds the signs of W_dᵀ, and the dense cell feedback the
    /// signs of the mean of the gate blocks of W_h; sparsity masks entries out.
    #[test]
    fn init_from_forward_takes_the_forward_weights_signs() {
        for kind in [CellKind::Rnn, CellKind::Lstm] {
            let mut p = model(kind);
            p.wd[5 * 9 + 2] = 0; // a zero weight gives a zero feedback entry
            let fb = RnnFeedback::new(&p, 4, opts(true, false, true, 0.0), 5).unwrap();
            let RnnFeedback::Modular {
                fc: FbMatrix::Sign(fc),
                fc_dense,
                cell: CellFeedback::Dense(FbMatrix::Sign(sm)),
            } = &fb
            else {
                unreachable!()
            };
            for r in 0..9 {
                for c in 0..23 {
                    assert_eq!(
                        fc.dense(r, c),
                        p.wd[c * 9 + r].signum() as i8,
                        "S^fc ({r}, {c})"
                    );
                    assert_eq!(
                        fc_dense[r * 23 + c],
                        fc.dense(r, c),
                        "dense copy ({r}, {c})"
                    );
                }
                for c in 0..9 {
                    let g = kind.gates();
                    let mean: f64 = (0..g).map(|k| p.wh[k * 81 + r * 9 + c] as f64).sum::<f64>();
                    assert_eq!(sm.dense(r, c), mean.signum() as i8, "S_m ({r}, {c})");
                }
            }
            let sparse = RnnFeedback::new(&p, 4, opts(true, false, true, 0.8), 5).unwrap();
            let RnnFeedback::Modular {
                fc: FbMatrix::Sign(fs),
                ..
            } = &sparse
            else {
                unreachable!()
            };
            let kept = fs.nnz() as f64 / (9.0 * 23.0);
            assert!((0.1..0.3).contains(&kept), "kept {kept}");
            for r in 0..9 {
                for nz in fs.row(r) {
                    assert_eq!(nz.neg, p.wd[nz.col as usize * 9 + r] < 0);
                }
            }
        }
        let _ = q24(0.0);
    }

    fn real(o: RnnDfaOptions) -> RnnDfaOptions {
        RnnDfaOptions { binary: false, ..o }
    }

    /// Real-valued original DFA against a plain evaluation of its definition: D
    /// uniform in [−1, 1] (mean w² about 1/3) as Q1.14 words, and every hidden step's
    /// error narrow(D · Σ_j e_j, 14 + fan-in shift of round(t · mean Σ_c w²)).
    #[test]
    fn real_valued_original_dfa_equals_its_dense_definition() {
        let p = model(CellKind::Rnn);
        let t = 5;
        let fb = RnnFeedback::new(&p, t, real(opts(false, false, false, 0.0)), 3).unwrap();
        let mut tr = window(&p, t, 2);
        for s in tr.steps.iter_mut() {
            s.exp = 2;
        }
        let (e, _) = hidden_errors(&fb, &tr);
        let RnnFeedback::Original(FbMatrix::Real { cols, w, .. }) = &fb else {
            panic!("a real-valued matrix")
        };
        assert_eq!((*cols, w.len()), (23, 9 * 23));
        let unit = 16384.0;
        let mean_sq = w.iter().map(|&v| (v as f64 / unit).powi(2)).sum::<f64>() / w.len() as f64;
        assert!((0.2..0.47).contains(&mean_sq), "mean w² {mean_sq}");
        let per_row = mean_sq * 23.0 * t as f64;
        let shift = 14 + fan_in_shift(per_row.round() as usize);
        let mut nonzero = 0;
        for r in 0..9 {
            let mut sum = 0i64;
            for c in 0..23 {
                let col: i64 = tr.steps.iter().map(|s| s.e[c] as i64).sum();
                sum += w[r * 23 + c] as i64 * col;
            }
            let want = (sum as f64 / (1u64 << shift) as f64 + 0.5).floor();
            let want = want.clamp(ERROR.min_raw() as f64, ERROR.max_raw() as f64) as i16;
            assert!(e.iter().all(|x| x[r] == want), "row {r}");
            nonzero += (want != 0) as usize;
        }
        assert!(nonzero > 4);
    }

    /// Real-valued B.2: S^fc is W_dᵀ scaled to a largest |entry| of 1 (Q1.14), S_m
    /// the mean of W_h's gate blocks likewise; a sparse one keeps about 1 − s of them
    /// at their values; a real-valued triangular feedback is not binary (some words
    /// are neither −1, 0 nor +1) and still upper triangular.
    #[test]
    fn real_valued_init_takes_the_forward_weights_values() {
        let p = model(CellKind::Lstm);
        let fb = RnnFeedback::new(&p, 4, real(opts(true, false, true, 0.0)), 5).unwrap();
        let RnnFeedback::Modular {
            fc: FbMatrix::Real { w: fc, .. },
            fc_dense,
            cell: CellFeedback::Dense(FbMatrix::Real { w: sm, .. }),
        } = &fb
        else {
            panic!("real-valued matrices")
        };
        assert!(fc_dense.is_empty());
        let max = p.wd.iter().map(|w| w.abs()).max().unwrap() as f64;
        for r in 0..9 {
            for c in 0..23 {
                let want = (p.wd[c * 9 + r] as f64 / max * 16384.0).round() as i16;
                assert_eq!(fc[r * 23 + c], want, "S^fc ({r}, {c})");
            }
        }
        let mean: Vec<f64> = (0..81)
            .map(|k| (0..4).map(|g| p.wh[g * 81 + k] as f64).sum::<f64>() / 4.0)
            .collect();
        let m = mean.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        for k in 0..81 {
            assert_eq!(
                sm[k],
                (mean[k] / m * 16384.0).round() as i16,
                "S_m word {k}"
            );
        }
        let sparse = RnnFeedback::new(&p, 4, real(opts(true, false, true, 0.8)), 5).unwrap();
        let RnnFeedback::Modular {
            fc: FbMatrix::Real { w: fs, .. },
            ..
        } = &sparse
        else {
            panic!("real-valued")
        };
        let kept = fs.iter().filter(|&&v| v != 0).count() as f64 / fs.len() as f64;
        assert!((0.1..0.3).contains(&kept), "kept {kept}");
        assert!(fs.iter().zip(fc).all(|(&a, &b)| a == 0 || a == b));
        let tri = RnnFeedback::new(&p, 6, real(opts(true, true, false, 0.5)), 5).unwrap();
        let RnnFeedback::Modular {
            cell: CellFeedback::Triangular(tf),
            ..
        } = &tri
        else {
            panic!("triangular")
        };
        assert_eq!(tf.frac, 14);
        let mut off_sign = 0;
        for i in 0..6 {
            for j in 0..6 {
                for k in 0..81 {
                    let v = tf.entry(i, j, k / 9, k % 9);
                    assert!(i <= j || v == 0);
                    off_sign += (v.abs() > 1) as usize;
                }
            }
        }
        assert!(off_sign > 100, "{off_sign}");
        assert!(
            tf.rows_as_sparse(0..9).is_err(),
            "the unit takes signs only"
        );
    }

    #[test]
    fn triangular_or_init_without_modules_is_refused() {
        let p = model(CellKind::Rnn);
        let e = RnnFeedback::new(&p, 4, opts(false, true, false, 0.0), 1).unwrap_err();
        assert!(e.to_string().contains("modular"), "{e}");
        let e = RnnFeedback::new(&p, 4, opts(false, false, true, 0.0), 1).unwrap_err();
        assert!(e.to_string().contains("modular"), "{e}");
    }
}
