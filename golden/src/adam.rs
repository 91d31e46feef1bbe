//! Adam in fixed point, one parameter word at a time: the recurrent models' optimizer
//! (the paper trains its RNNs with Adam; in HDFA the BP and the DFA steps feed one
//! Adam state). Main types: [`AdamHyper`], [`AdamSteps`], [`AdamStep`], [`adam_word`], [`isqrt`].
//!
//! ## Formats and steps (what a hardware update unit does per word)
//! - θ, g and the first moment m: Q8.24 ([`crate::format::MASTER`]), 32 bit.
//! - The second moment v: Q16.48 in 64 bits. g² of a Q8.24 word is exact at 48
//!   fraction bits, so v keeps the squares of small gradients that a 32-bit word
//!   would flush to zero (g = 2^−12 gives g² = 2^−24, one Q8.24 LSB).
//! - β1, β2 and the step size: unsigned coefficients with 32 fraction bits
//!   ([`Frac32`], [0, 1)); Q15.16 would put 1 − β2 = 0.001 off by 0.7%.
//! - m ← β1·m + (1 − β1)·g and v ← β2·v + (1 − β2)·g²: each product exact, then one
//!   narrowing per moment that rounds **toward zero** (and saturates). This is the one
//!   narrowing of the project that does not round half up, on purpose: round to
//!   nearest has fixed points (0.9 · 4 LSB rounds back to 4), so a word whose gradient
//!   becomes 0 would keep a nonzero m and v forever and keep moving (by about
//!   η · 0.17 per step); truncation lets both moments decay to 0 as they do in real
//!   arithmetic. Its bias is below one LSB per step.
//! - √v: the floor integer square root of the 64-bit word ([`isqrt`]), which has
//!   24 fraction bits: a digit-by-digit square root (32 shift-and-subtract steps,
//!   no multiplier).
//! - u = m / (√v + ε) with ε ≥ 1 LSB (so the divisor is never 0): one exact
//!   division, rounded half up like every other narrowing (⌊(2·m·2^24 + d) / (2·d)⌋),
//!   saturated to Q8.24.
//! - Bias correction is folded into the step size, η_t = η·√(1 − β2^t) / (1 − β1^t)
//!   ([`AdamSteps`]), computed once per step (not per word) from IEEE-754 basic
//!   operations and `sqrt` (correctly rounded, so identical on every machine) and
//!   rounded once to [`Frac32`].
//! - θ ← θ − η_t·u: the product exact, one narrowing, saturating subtraction.

use crate::format::{self, MASTER};

/// An unsigned coefficient in [0, 1) with 32 fraction bits (raw u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frac32(pub u32);

impl Frac32 {
    /// The nearest coefficient to `x` (round half up), saturated to [0, 1 − 2^−32].
    pub fn new(x: f64) -> Frac32 {
        let raw = (x * 4294967296.0 + 0.5).floor();
        Frac32(raw.clamp(0.0, u32::MAX as f64) as u32)
    }

    /// 1 − self, exactly (as a 33-bit raw value, since 1 − 0 = 1 does not fit).
    fn one_minus(self) -> i64 {
        (1i64 << 32) - self.0 as i64
    }

    /// The real value.
    pub fn real(self) -> f64 {
        self.0 as f64 / 4294967296.0
    }
}

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    /// Step size η (a real number; rounded per step into η_t).
    pub eta: f64,
    /// First-moment decay β1.
    pub beta1: Frac32,
    /// Second-moment decay β2.
    pub beta2: Frac32,
    /// ε as raw Q8.24 (≥ 1).
    pub eps_raw: i64,
}

impl AdamHyper {
    /// The usual defaults: β1 = 0.9, β2 = 0.999, ε = 1 LSB of Q8.24 (6·10^−8; the
    /// float default 10^−8 is below it).
    pub fn new(eta: f64) -> AdamHyper {
        AdamHyper {
            eta,
            beta1: Frac32::new(0.9),
            beta2: Frac32::new(0.999),
            eps_raw: 1,
        }
    }
}

/// The per-step constant of Adam: the bias-corrected step size η_t.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdamStep {
    /// η·√(1 − β2^t) / (1 − β1^t), rounded once.
    pub eta_t: Frac32,
}

/// The step constants in order: β1^t and β2^t as running products (IEEE
/// multiplications, so every machine computes the same bits, at one product per step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamSteps {
    /// β1^t of the last step.
    p1: f64,
    /// β2^t of the last step.
    p2: f64,
}

impl Default for AdamSteps {
    fn default() -> Self {
        AdamSteps { p1: 1.0, p2: 1.0 }
    }
}

impl AdamSteps {
    /// β1^t and β2^t of the last step (for a checkpoint).
    pub fn powers(&self) -> (f64, f64) {
        (self.p1, self.p2)
    }

    /// Continue from saved powers ([`AdamSteps::powers`]).
    pub fn from_powers(p1: f64, p2: f64) -> AdamSteps {
        AdamSteps { p1, p2 }
    }

    /// The constant of the next step (the first call gives step 1).
    pub fn next(&mut self, h: &AdamHyper) -> AdamStep {
        self.p1 *= h.beta1.real();
        self.p2 *= h.beta2.real();
        AdamStep {
            eta_t: Frac32::new(h.eta * (1.0 - self.p2).sqrt() / (1.0 - self.p1)),
        }
    }
}

/// `x` with `drop` fraction bits removed, rounded toward zero.
fn truncate(x: i128, drop: u32) -> i128 {
    if x >= 0 {
        x >> drop
    } else {
        -((-x) >> drop)
    }
}

/// ⌊√x⌋, digit by digit (two bits of x per result bit, shift and subtract only).
pub fn isqrt(x: u64) -> u64 {
    let (mut rem, mut root) = (x, 0u64);
    let mut bit = 1u64 << 62;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// Fraction bits of the second moment v.
pub const V_FRAC: u32 = 2 * MASTER.frac;

/// One Adam update of one word: m and v take g, then θ moves by η_t·m / (√v + ε).
/// θ, m, g are raw Q8.24; v is raw Q16.48 (never negative).
pub fn adam_word(h: &AdamHyper, s: &AdamStep, theta: &mut i32, m: &mut i32, v: &mut i64, g: i32) {
    let g = g as i64;
    let (b1, b2) = (h.beta1.0 as i128, h.beta2.0 as i128);
    // m: both products at 24 + 32 fraction bits (i128: 2^32 · 2^31 overflows i64),
    // one narrowing toward zero.
    let sum = b1 * *m as i128 + h.beta1.one_minus() as i128 * g as i128;
    *m = truncate(sum, 32).clamp(MASTER.min_raw() as i128, MASTER.max_raw() as i128) as i32;
    // v: at 48 + 32 fraction bits (i128), one narrowing toward zero, saturated.
    let sum = b2 * *v as i128 + h.beta2.one_minus() as i128 * (g * g) as i128;
    *v = truncate(sum, 32).clamp(0, i64::MAX as i128) as i64;
    // √v has 24 fraction bits, like m: the quotient m / d is a plain ratio.
    let d = isqrt(*v as u64) as i64 + h.eps_raw.max(1);
    let num = (*m as i64) << MASTER.frac;
    // Round half up: ⌊(2·num + d) / (2·d)⌋ (floor division, also for negative num).
    let u = (2 * num as i128 + d as i128).div_euclid(2 * d as i128);
    let u = u.clamp(MASTER.min_raw() as i128, MASTER.max_raw() as i128) as i64;
    let step = format::rescale_wide(s.eta_t.0 as i128 * u as i128, MASTER.frac + 32, 0, MASTER);
    *theta = format::saturate(*theta as i64 - step, MASTER) as i32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, RngCore, SeedableRng};

    #[test]
    fn isqrt_is_the_floor_square_root_over_the_whole_range() {
        let mut rng = Rng::seed_from_u64(3);
        let mut cases: Vec<u64> = (0..2000).map(|_| rng.next_u64() >> rng.below(64)).collect();
        cases.extend([
            0,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            u64::MAX,
            u64::MAX - 1,
            1 << 62,
            (1 << 32) - 1,
        ]);
        for x in cases {
            let r = isqrt(x) as u128;
            assert!(
                r * r <= x as u128 && (r + 1) * (r + 1) > x as u128,
                "isqrt({x}) = {r}"
            );
        }
    }

    /// Float Adam with the same (rounded) β's and ε, on the same gradients.
    struct RefAdam {
        m: f64,
        v: f64,
        theta: f64,
    }

    #[test]
    fn adam_word_tracks_f64_adam_on_a_noisy_quadratic() {
        // Minimize (θ − target)²/2 with noisy gradients, 2000 steps, several scales.
        for (target, noise, eta) in [(0.5, 0.1, 0.01), (-0.75, 1.0, 0.001), (0.01, 0.001, 0.0005)] {
            let h = AdamHyper::new(eta);
            let one = (1u64 << 24) as f64;
            let (mut th, mut m, mut v) = ((0.25 * one) as i32, 0i32, 0i64);
            let mut r = RefAdam {
                m: 0.0,
                v: 0.0,
                theta: 0.25,
            };
            let mut rng = Rng::seed_from_u64(9);
            let (b1, b2, eps) = (h.beta1.real(), h.beta2.real(), h.eps_raw as f64 / one);
            let mut worst = 0f64;
            let mut steps = AdamSteps::default();
            for t in 1..=2000u64 {
                let n = (rng.uniform() * 2.0 - 1.0) * noise;
                // The same gradient for both: the fixed one's, read as a real number.
                let g = (((th as f64 / one - target) + n) * one).round() as i32;
                let gr = g as f64 / one;
                adam_word(&h, &steps.next(&h), &mut th, &mut m, &mut v, g);
                r.m = b1 * r.m + (1.0 - b1) * gr;
                r.v = b2 * r.v + (1.0 - b2) * gr * gr;
                // Adam with the bias correction folded into the step size (the same
                // algorithm, in f64).
                let eta_t = eta * (1.0 - b2.powi(t as i32)).sqrt() / (1.0 - b1.powi(t as i32));
                r.theta -= eta_t * r.m / (r.v.sqrt() + eps);
                // Track: θ of the fixed path against the float update of the fixed
                // path's own state (no drift accumulates in the comparison).
                worst = worst.max((th as f64 / one - r.theta).abs());
                r.theta = th as f64 / one;
                r.m = m as f64 / one;
                r.v = v as f64 / (one * one);
            }
            // One step's error: within 4 LSB of Q8.24 (measured: at most 2).
            println!("target {target}: worst per-step deviation {worst:.3e}");
            assert!(worst < 4.0 / one, "target {target}: {worst}");
            // And it optimizes: at most a quarter of the starting distance is left.
            let dist = (th as f64 / one - target).abs();
            assert!(
                dist < 0.25 * (0.25 - target).abs(),
                "target {target}: ends {dist} away"
            );
        }
    }

    #[test]
    fn a_word_whose_gradient_stops_comes_to_rest_as_in_f64() {
        // 200 steps of g = 10^−3, then 20,000 of g = 0 (an embedding row whose word
        // leaves the batches): m and v decay to 0 and θ stops, as in f64 Adam.
        let h = AdamHyper::new(1e-3);
        let one = (1u64 << 24) as f64;
        let g0 = (1e-3 * one).round() as i32;
        let (mut th, mut m, mut v) = (0i32, 0i32, 0i64);
        let (mut rm, mut rv, mut rth) = (0f64, 0f64, 0f64);
        let (b1, b2, eps) = (h.beta1.real(), h.beta2.real(), 1.0 / one);
        let mut steps = AdamSteps::default();
        let mut moved_after = 0i64;
        for t in 1..=20_200u64 {
            let g = if t <= 200 { g0 } else { 0 };
            let before = th;
            adam_word(&h, &steps.next(&h), &mut th, &mut m, &mut v, g);
            if t > 200 {
                moved_after += (th - before) as i64;
            }
            let gr = g as f64 / one;
            rm = b1 * rm + (1.0 - b1) * gr;
            rv = b2 * rv + (1.0 - b2) * gr * gr;
            let eta_t = 1e-3 * (1.0 - b2.powi(t as i32)).sqrt() / (1.0 - b1.powi(t as i32));
            rth -= eta_t * rm / (rv.sqrt() + eps);
        }
        assert_eq!(m, 0, "m decays to 0");
        let (fx, f) = (th as f64 / one, rth);
        println!(
            "after the gradient stops: fixed moved {:.3e}, f64 ends at {f:.5}, fixed at {fx:.5}",
            moved_after as f64 / one
        );
        assert!((fx - f).abs() < 5e-4, "fixed {fx} vs f64 {f}");
    }

    #[test]
    fn zero_gradients_move_nothing_and_extremes_saturate() {
        let h = AdamHyper::new(0.01);
        let (mut th, mut m, mut v) = (12345, 0, 0i64);
        let mut steps = AdamSteps::default();
        for _ in 1..=10 {
            adam_word(&h, &steps.next(&h), &mut th, &mut m, &mut v, 0);
        }
        assert_eq!((th, m, v), (12345, 0, 0));
        // The largest gradients: v saturates at its format's top, θ at Q8.24's bottom.
        let (mut th, mut m, mut v) = (i32::MIN + 5, 0, 0i64);
        let mut steps = AdamSteps::default();
        for _ in 1..=3 {
            adam_word(&h, &steps.next(&h), &mut th, &mut m, &mut v, i32::MAX);
        }
        assert!(m > 0 && v > 0);
        assert_eq!(th, i32::MIN, "θ saturates instead of wrapping");
    }
}
