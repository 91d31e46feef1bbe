//! Softmax + cross-entropy at the output: e_L = softmax(z) − one-hot(y), and the loss.
//!
//! ## Fixed point (how hardware would compute it)
//! With z the Q8.8 logits and m = max z:
//! 1. d_k = z_k − m ≤ 0, and t_k = d_k · log2(e) with log2(e) as Q16 ([`LOG2E_Q16`]),
//!    narrowed to 16 fraction bits.
//! 2. 2^t_k = 2^n · 2^f with n = ⌊t_k⌋ ≤ 0 and f ∈ [0, 1): 2^f from a 256-entry LUT
//!    ([`exp2_lut`], Q1.15, indexed by the top 8 bits of f), then a rounding right
//!    shift by −n. So exp_k is a Q.15 integer and the largest term is 1.0 = 2^15.
//! 3. s = Σ exp_k; one reciprocal per sample, r = ⌊2^40 / s⌋.
//! 4. e_L,k = exp_k · r for k ≠ y and e_L,y = −Σ_{k≠y} e_L,k (that is p_y − 1,
//!    computed so it keeps its relative precision when p_y is near 1), all with 40
//!    fraction bits; then the exponent E from their largest magnitude
//!    ([`crate::scale`]) and one narrowing by 27 − E bits into Q3.13.
//! 5. Loss = ln 2 · (log2 s − 15 − t_y), with log2 s from the position of s's
//!    leading one and a 256-entry LUT of log2(1 + i/256) ([`log2_lut`]); reported as
//!    Q15.16 ([`LOSS_FRAC`]).
//!
//! The f32 path computes the same quantities with `exp` and `ln`.

use std::sync::OnceLock;

use crate::format::{self, ACT, ERROR};
use crate::scale;

/// log2(e) in 16 fraction bits.
pub const LOG2E_Q16: i64 = 94_548;
/// ln(2) in 16 fraction bits.
pub const LN2_Q16: i64 = 45_426;
/// Fraction bits of the reported loss.
pub const LOSS_FRAC: u32 = 16;
/// Fraction bits of the exp LUT entries.
pub const EXP_FRAC: u32 = 15;

/// 2^(i/256) for i in 0..256, Q1.15 (round half up).
pub fn exp2_lut() -> &'static [i64; 256] {
    static LUT: OnceLock<[i64; 256]> = OnceLock::new();
    LUT.get_or_init(|| {
        let mut t = [0i64; 256];
        for (i, v) in t.iter_mut().enumerate() {
            *v = ((2f64).powf(i as f64 / 256.0) * (1u64 << EXP_FRAC) as f64 + 0.5).floor() as i64;
        }
        t
    })
}

/// log2(1 + i/256) for i in 0..256, Q0.16 (round half up).
pub fn log2_lut() -> &'static [i64; 256] {
    static LUT: OnceLock<[i64; 256]> = OnceLock::new();
    LUT.get_or_init(|| {
        let mut t = [0i64; 256];
        for (i, v) in t.iter_mut().enumerate() {
            *v = ((1.0 + i as f64 / 256.0).log2() * 65536.0 + 0.5).floor() as i64;
        }
        t
    })
}

/// Fixed-point softmax − one-hot into `err` (Q3.13 raw words at the returned
/// exponent E: real = raw × 2^−(13 + E)); returns the loss (Q15.16 raw) and E.
/// With `block` false, E is 0 (no error scaling).
/// Any number of classes: up to 64 on the stack (the CNNs), more (a vocabulary) in
/// heap buffers; the same steps either way.
pub fn softmax_xent_fx(z: &[i16], label: usize, err: &mut [i16], block: bool) -> (i64, i32) {
    let n = z.len();
    if n <= 64 {
        let (mut t16, mut ex, mut wide) = ([0i64; 64], [0i64; 64], [0i64; 64]);
        softmax_xent_in(z, label, err, block, &mut t16, &mut ex, &mut wide)
    } else {
        let (mut t16, mut ex, mut wide) = (vec![0i64; n], vec![0i64; n], vec![0i64; n]);
        softmax_xent_in(z, label, err, block, &mut t16, &mut ex, &mut wide)
    }
}

/// [`softmax_xent_fx`] with its work buffers (each at least `z.len()` long).
fn softmax_xent_in(
    z: &[i16],
    label: usize,
    err: &mut [i16],
    block: bool,
    t16: &mut [i64],
    ex: &mut [i64],
    wide: &mut [i64],
) -> (i64, i32) {
    let m = z.iter().copied().max().unwrap_or(0) as i64;
    let lut = exp2_lut();
    let n = z.len();
    // Σ exp_k ≤ n · 2^15 and e_L,k = exp_k · ⌊2^40 / s⌋ < 2^40: no overflow below
    // 2^23 classes.
    assert!(n < 1 << 23, "softmax over {n} classes (at most 2^23 − 1)");
    let mut s = 0i64;
    for k in 0..n {
        let d = z[k] as i64 - m; // frac ACT.frac, <= 0
        let t = format::rescale(
            d * LOG2E_Q16,
            ACT.frac + 16,
            0,
            format::Format {
                name: "t",
                bits: 40,
                frac: 16,
            },
        );
        t16[k] = t;
        let ip = t.div_euclid(1 << 16); // <= 0
        let fr = t.rem_euclid(1 << 16);
        let base = lut[(fr >> 8) as usize];
        let sh = (-ip) as u32;
        ex[k] = if sh >= 40 {
            0
        } else {
            format::round_shift(base, sh)
        };
        s += ex[k];
    }
    let r = (1i64 << 40) / s.max(1);
    // e_L with 40 fraction bits; the label's term as −Σ of the others (exactly
    // p_y − 1 up to the reciprocal's rounding), which keeps its relative precision
    // when the net is confident and p_y is close to 1.
    let mut others = 0i64;
    for k in 0..n {
        if k != label {
            wide[k] = ex[k] * r;
            others += wide[k];
        }
    }
    wide[label] = -others;
    // The exponent from the largest magnitude (block floating point, crate::scale):
    // narrow by 27 − E bits so the largest word has NORM_BITS significant bits.
    let len = scale::bit_len(scale::or_magnitude(wide[..n].iter().copied())) as i32;
    let max_exp = (40 - ERROR.frac) as i32;
    let exp = if block {
        (40 - len).clamp(0, max_exp.min(scale::EXP_MAX))
    } else {
        0
    };
    for k in 0..n {
        err[k] = format::narrow(wide[k], (max_exp - exp) as u32, ERROR) as i16;
    }
    // log2(s) - EXP_FRAC - t_y, in 16 fraction bits.
    let msb = 63 - s.leading_zeros() as i64;
    let mant_idx = if msb >= 8 {
        (s >> (msb - 8)) & 0xff
    } else {
        (s << (8 - msb)) & 0xff
    };
    let log2s = (msb - EXP_FRAC as i64) * 65536 + log2_lut()[mant_idx as usize];
    (format::round_shift((log2s - t16[label]) * LN2_Q16, 16), exp)
}

/// f32 softmax − one-hot; returns the loss.
pub fn softmax_xent_f32(z: &[f32], label: usize, err: &mut [f32]) -> f32 {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0f32;
    for (k, e) in err.iter_mut().enumerate().take(z.len()) {
        *e = (z[k] - m).exp();
        s += *e;
    }
    for (k, e) in err.iter_mut().enumerate().take(z.len()) {
        *e = *e / s - if k == label { 1.0 } else { 0.0 };
    }
    s.ln() - (z[label] - m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedableRng;

    #[test]
    fn fixed_softmax_tracks_the_real_one() {
        let mut rng = crate::rng::Rng::seed_from_u64(3);
        for _ in 0..500 {
            let z: Vec<i16> = (0..10).map(|_| rng.range_i64(-2000, 2000) as i16).collect();
            let label = rng.below(10) as usize;
            let mut e = [0i16; 10];
            let (loss, exp) = softmax_xent_fx(&z, label, &mut e, true);
            let zf: Vec<f32> = z.iter().map(|&v| ACT.to_real(v as i64) as f32).collect();
            let mut ef = [0f32; 10];
            let lf = softmax_xent_f32(&zf, label, &mut ef);
            for k in 0..10 {
                let got = ERROR.to_real(e[k] as i64) * scale::exp_factor(exp);
                assert!(
                    (got - ef[k] as f64).abs() < 0.006 * scale::exp_factor(exp),
                    "k={k} {got} vs {}",
                    ef[k]
                );
            }
            let lossr = loss as f64 / 65536.0;
            assert!(
                (lossr - lf as f64).abs() < 0.01 + 0.003 * lf as f64,
                "{lossr} vs {lf}"
            );
            // The error sums to about zero (probabilities sum to one).
            let sum: i64 = e.iter().map(|&v| v as i64).sum();
            assert!(sum.abs() <= 12, "{sum}");
            // The largest word has 13 significant bits unless the exponent is at its bound.
            let big = e.iter().map(|&v| (v as i64).abs()).max().unwrap();
            assert!(
                exp == 0 || exp == 27 || (4095..=8192).contains(&big),
                "{big} at {exp}"
            );
        }
    }

    #[test]
    fn fixed_softmax_of_equal_logits_is_uniform() {
        let z = [100i16; 10];
        let mut e = [0i16; 10];
        let (loss, exp) = softmax_xent_fx(&z, 3, &mut e, true);
        assert_eq!(exp, 0, "e_y = -0.9 needs no shift");
        assert_eq!(e[0], 819); // 0.1 in Q3.13 = 819.2
        assert_eq!(e[3], -7373); // -9 x 0.1 = -0.9 = -7372.8
        assert!(((loss as f64 / 65536.0) - 10f64.ln()).abs() < 0.005);
    }
}
