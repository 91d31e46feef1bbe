//! The recurrent cells' nonlinearities in fixed point: tanh and the logistic sigmoid,
//! with their derivatives, as hardware computes them.
//!
//! **tanh** is one table and one interpolation. The table holds tanh(i · 2^−7) for
//! i = 0..=1024 (the domain [0, 8], 1025 words of 25 bits) at [`OUT_FRAC`] = 24
//! fraction bits. An input's magnitude is first rounded half up to 24 fraction bits;
//! that magnitude m selects entry i = m >> 17 and the remaining 17 bits t interpolate
//! linearly, y = T[i] + round((T[i+1] − T[i]) · t / 2^17) (one multiply, one add); the
//! sign is applied last, so tanh is exactly odd. |x| ≥ 8 returns ±T[1024]
//! (tanh(8) = 1 − 2.3·10^−7).
//!
//! **sigmoid** reuses the table: σ(x) = (1 + tanh(x/2)) / 2, where x/2 is the same
//! raw word read with one more fraction bit, and the final halving rounds half up.
//!
//! **Derivatives** come from the outputs, as the backward pass has them:
//! tanh' = 1 − y² and σ' = s · (1 − s), one multiply each, rounded half up to 24
//! fraction bits.
//!
//! **Accuracy** against f64, over every input step of 2^−12 in [−10, 10] (measured
//! maximum; the tests assert the bound in brackets): tanh 5.9·10^−6 [6·10^−6] (linear
//! interpolation: error ≤ h²/8 · max|tanh''| = 2^−14/8 · 0.77 ≈ 5.9·10^−6), sigmoid
//! 3.0·10^−6 [3.5·10^−6], tanh' 7.7·10^−6 and σ' 2.0·10^−6 [1.2·10^−5].
//!
//! The table is computed from its definition with IEEE-754 additions,
//! multiplications and divisions only (no platform `tanh` or `exp`, whose last bits
//! differ between C libraries), so every machine builds the same 1025 words.

use std::sync::OnceLock;

use crate::format::round_shift;

/// Fraction bits of every output (and of the interpolation input).
pub const OUT_FRAC: u32 = 24;
/// The table's step is 2^−STEP_BITS.
pub const STEP_BITS: u32 = 7;
/// The table covers [0, 2^DOMAIN_BITS].
pub const DOMAIN_BITS: u32 = 3;
/// Table entries.
pub const TABLE_LEN: usize = (1 << (STEP_BITS + DOMAIN_BITS)) + 1;

/// e^x for 0 ≤ x ≤ 16 from IEEE basic operations only: x / 2^4 (≤ 1) by its Taylor
/// series to full precision (30 terms), then squared 4 times.
fn exp_det(x: f64) -> f64 {
    let r = x / 16.0;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..30 {
        term = term * r / k as f64;
        sum += term;
    }
    for _ in 0..4 {
        sum *= sum;
    }
    sum
}

/// The tanh table: round(tanh(i · 2^−7) · 2^24), half up.
pub fn table() -> &'static [i32] {
    static T: OnceLock<Vec<i32>> = OnceLock::new();
    T.get_or_init(|| {
        (0..TABLE_LEN)
            .map(|i| {
                let x = i as f64 / (1u32 << STEP_BITS) as f64;
                let e = exp_det(2.0 * x);
                let t = (e - 1.0) / (e + 1.0);
                (t * (1u64 << OUT_FRAC) as f64 + 0.5).floor() as i32
            })
            .collect()
    })
}

/// `x` (with `frac` fraction bits) rounded half up to [`OUT_FRAC`] fraction bits.
fn to_out_frac(x: i64, frac: u32) -> i64 {
    if frac >= OUT_FRAC {
        round_shift(x, frac - OUT_FRAC)
    } else {
        let up = OUT_FRAC - frac;
        x.clamp(i64::MIN >> up, i64::MAX >> up) << up
    }
}

/// tanh of `x` (raw, `frac` fraction bits), at 24 fraction bits.
pub fn tanh_fx(x: i64, frac: u32) -> i32 {
    let t = table();
    // The magnitude is rounded, the sign applied last: tanh is exactly odd.
    let m = to_out_frac(x.unsigned_abs().min(i64::MAX as u64) as i64, frac) as u64;
    let sub = OUT_FRAC - STEP_BITS;
    let i = (m >> sub) as usize;
    let y = if i >= TABLE_LEN - 1 {
        t[TABLE_LEN - 1] as i64
    } else {
        let frac_bits = (m & ((1u64 << sub) - 1)) as i64;
        let d = (t[i + 1] - t[i]) as i64;
        t[i] as i64 + round_shift(d * frac_bits, sub)
    };
    (if x < 0 { -y } else { y }) as i32
}

/// The logistic sigmoid of `x` (raw, `frac` fraction bits), at 24 fraction bits:
/// (1 + tanh(x/2)) / 2.
pub fn sigmoid_fx(x: i64, frac: u32) -> i32 {
    let th = tanh_fx(x, frac + 1) as i64;
    round_shift((1i64 << OUT_FRAC) + th, 1) as i32
}

/// tanh' = 1 − y² from the output y (24 fraction bits), at 24 fraction bits.
pub fn tanh_deriv(y: i32) -> i32 {
    let y = y as i64;
    round_shift((1i64 << (2 * OUT_FRAC)) - y * y, OUT_FRAC) as i32
}

/// σ' = s · (1 − s) from the output s (24 fraction bits), at 24 fraction bits.
pub fn sigmoid_deriv(s: i32) -> i32 {
    let s = s as i64;
    round_shift(s * ((1i64 << OUT_FRAC) - s), OUT_FRAC) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: f64 = (1u64 << OUT_FRAC) as f64;

    /// Every input step of 2^−12 in [−10, 10], as raw words with 12 fraction bits.
    fn grid() -> impl Iterator<Item = (i64, f64)> {
        (-10 * 4096..=10 * 4096).map(|r| (r as i64, r as f64 / 4096.0))
    }

    #[test]
    fn tanh_and_sigmoid_track_f64_within_the_documented_bounds() {
        let (mut et, mut es, mut edt, mut eds) = (0f64, 0f64, 0f64, 0f64);
        for (raw, x) in grid() {
            let y = tanh_fx(raw, 12);
            let s = sigmoid_fx(raw, 12);
            et = et.max((y as f64 / ONE - x.tanh()).abs());
            let sr = 1.0 / (1.0 + (-x).exp());
            es = es.max((s as f64 / ONE - sr).abs());
            edt = edt.max((tanh_deriv(y) as f64 / ONE - (1.0 - x.tanh().powi(2))).abs());
            eds = eds.max((sigmoid_deriv(s) as f64 / ONE - sr * (1.0 - sr)).abs());
        }
        println!("max error: tanh {et:.3e}, sigmoid {es:.3e}, tanh' {edt:.3e}, sigmoid' {eds:.3e}");
        assert!(et < 6e-6, "tanh {et}");
        assert!(es < 3.5e-6, "sigmoid {es}");
        assert!(edt < 1.2e-5 && eds < 1.2e-5, "derivatives {edt} {eds}");
    }

    #[test]
    fn tanh_is_odd_monotone_and_saturates_and_sigmoid_is_symmetric() {
        let mut prev = i32::MIN;
        for (raw, _) in grid() {
            let y = tanh_fx(raw, 12);
            assert_eq!(tanh_fx(-raw, 12), -y, "odd at {raw}");
            assert!(y >= prev, "monotone at {raw}");
            prev = y;
            // σ(x) + σ(−x) = 1 up to the one halving's rounding.
            let s = sigmoid_fx(raw, 12) as i64 + sigmoid_fx(-raw, 12) as i64;
            assert!(
                (s - (1 << OUT_FRAC)).abs() <= 1,
                "sigmoid symmetry at {raw}: {s}"
            );
        }
        let end = table()[TABLE_LEN - 1];
        assert_eq!(tanh_fx(i64::MAX >> 2, 12), end);
        assert_eq!(tanh_fx(-(i64::MAX >> 2), 12), -end);
        assert_eq!(tanh_fx(0, 12), 0);
        assert_eq!(sigmoid_fx(0, 12), 1 << (OUT_FRAC - 1));
        // Odd also for inputs finer than the table's 24 fraction bits (sigmoid reads
        // its input with one more).
        for raw in [1i64, 2, 3, 12345, -7, 1 << 40] {
            assert_eq!(tanh_fx(-raw, 30), -tanh_fx(raw, 30), "odd at {raw} / 2^30");
        }
    }

    #[test]
    fn table_equals_the_definition_and_exp_det_tracks_exp() {
        for k in 0..=160 {
            let x = k as f64 / 10.0;
            let rel = (exp_det(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-13, "exp_det({x}): {rel}");
        }
        for (i, &v) in table().iter().enumerate() {
            let want = (i as f64 / 128.0).tanh() * ONE;
            assert!(
                (v as f64 - want).abs() <= 0.5 + 1e-6,
                "entry {i}: {v} vs {want}"
            );
        }
    }
}
