//! The HDFA optimizer's per-word update (paper Algorithm 1, with standard momentum
//! signs), defined once: the trainer applies it to every parameter word, and the
//! update unit (`upd`) computes it in hardware, P words per cycle.
//!
//! θ, v_bp, v_dfa and g are [`MASTER`] words (Q8.24); η, α and γ are [`COEF`] words
//! (Q15.16). A step is either
//! - BP:  v_bp ← α·v_bp + g;  θ ← θ − η·v_bp
//! - DFA: v_dfa ← α·v_dfa + g;  u ← γ·v_dfa + (1−γ)·v_bp;  θ ← θ − η·u
//!
//! Each product c·m is exact and narrowed once by COEF's 16 fraction bits (round half
//! up, saturate to Q8.24); sums and differences saturate. [`update_word`] spells the
//! algorithm once for any arithmetic ([`UpdateOps`]); [`FixedOps`] is the bit-exact
//! one, and the trainer's f32 path plugs in its own.
//!
//! ## In hardware
//! The unit accepts coefficients in [0, 1] only ([`HwCoefs::new`]; the trainer's
//! configs already require η ∈ (0, 1] and α, γ ∈ [0, 1]): a coefficient register is
//! then [`COEF_HW_BITS`] = 17 bits (1.0 = 2^16 needs the 17th), 1 − γ is one 17-bit
//! subtraction, and since |c| ≤ 1 a narrowed product never exceeds its Q8.24 input
//! ([`scale_fits`], proved exhaustively over c in a test), so the products need no
//! saturation: only the three sums do.

use crate::format::{self, COEF, MASTER};
use crate::GoldenError;

/// Which error propagation a step used, and so which velocity it updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Back-propagation.
    Bp,
    /// The network's DFA paths.
    Dfa,
}

/// The arithmetic [`update_word`] runs on.
pub trait UpdateOps {
    /// A parameter, velocity or gradient word.
    type M: Copy;
    /// A coefficient.
    type C: Copy;
    /// c·m, narrowed to `M`.
    fn scale(m: Self::M, c: Self::C) -> Self::M;
    /// a + b.
    fn add(a: Self::M, b: Self::M) -> Self::M;
    /// a − b.
    fn sub(a: Self::M, b: Self::M) -> Self::M;
}

/// The four coefficients a step uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefs<C> {
    /// Learning rate η.
    pub eta: C,
    /// Momentum α.
    pub alpha: C,
    /// Mix γ of the DFA velocity.
    pub gamma: C,
    /// 1 − γ, exactly.
    pub one_minus_gamma: C,
}

/// Algorithm 1 on one parameter word: the step's velocity takes the gradient, the
/// other velocity is kept, and θ moves by η·u (see the module docs).
#[inline]
pub fn update_word<O: UpdateOps>(
    kind: StepKind,
    c: &Coefs<O::C>,
    theta: &mut O::M,
    v_bp: &mut O::M,
    v_dfa: &mut O::M,
    g: O::M,
) {
    let u = match kind {
        StepKind::Bp => {
            *v_bp = O::add(O::scale(*v_bp, c.alpha), g);
            *v_bp
        }
        StepKind::Dfa => {
            *v_dfa = O::add(O::scale(*v_dfa, c.alpha), g);
            O::add(
                O::scale(*v_dfa, c.gamma),
                O::scale(*v_bp, c.one_minus_gamma),
            )
        }
    };
    *theta = O::sub(*theta, O::scale(u, c.eta));
}

/// The bit-exact arithmetic: Q8.24 words, raw Q15.16 coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FixedOps;

impl UpdateOps for FixedOps {
    type M = i32;
    type C = i64;
    #[inline]
    fn scale(m: i32, c: i64) -> i32 {
        format::mul_narrow(m as i64, c, COEF.frac, MASTER) as i32
    }
    #[inline]
    fn add(a: i32, b: i32) -> i32 {
        format::saturate(a as i64 + b as i64, MASTER) as i32
    }
    #[inline]
    fn sub(a: i32, b: i32) -> i32 {
        format::saturate(a as i64 - b as i64, MASTER) as i32
    }
}

/// Width of a coefficient register in the update unit: [0, 1] at COEF's 16 fraction
/// bits, where 1.0 = 2^16 needs a 17th bit.
pub const COEF_HW_BITS: usize = COEF.frac as usize + 1;

/// 1.0 as a raw coefficient.
pub const COEF_ONE: i64 = 1 << COEF.frac;

/// Width of a parameter, velocity or gradient word in the unit.
pub const WORD_BITS: usize = MASTER.bits as usize;

/// Words per weight on the unit's input: θ, v_bp, v_dfa, g (in that order, θ in the
/// low bits of a lane's slot).
pub const IN_WORDS: usize = 4;

/// Words per weight on the unit's output: θ, v_bp, v_dfa.
pub const OUT_WORDS: usize = 3;

/// Most lanes of the update unit.
pub const UPD_MAX_LANES: usize = 8;

/// Raw coefficients the unit accepts: each in [0, [`COEF_ONE`]].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwCoefs {
    /// η, raw Q15.16.
    pub eta: i64,
    /// α, raw Q15.16.
    pub alpha: i64,
    /// γ, raw Q15.16.
    pub gamma: i64,
}

impl HwCoefs {
    /// Check each raw coefficient against [0, 2^16] (0 to 1.0).
    pub fn new(eta: i64, alpha: i64, gamma: i64) -> Result<HwCoefs, GoldenError> {
        for (name, v) in [("eta", eta), ("alpha", alpha), ("gamma", gamma)] {
            if !(0..=COEF_ONE).contains(&v) {
                return Err(GoldenError::out_of_range(
                    name,
                    format!("{v} (raw Q15.16, {})", COEF.to_real(v)),
                    format!("0..={COEF_ONE} (0 to 1.0; the unit's coefficient registers are {COEF_HW_BITS} bits)"),
                ));
            }
        }
        Ok(HwCoefs { eta, alpha, gamma })
    }

    /// The four coefficients of [`update_word`], 1 − γ computed as the unit does.
    pub fn coefs(&self) -> Coefs<i64> {
        Coefs {
            eta: self.eta,
            alpha: self.alpha,
            gamma: self.gamma,
            one_minus_gamma: COEF_ONE - self.gamma,
        }
    }
}

/// One weight's state: θ, v_bp, v_dfa (raw Q8.24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WordState {
    /// Master weight θ.
    pub theta: i32,
    /// BP velocity.
    pub v_bp: i32,
    /// DFA velocity.
    pub v_dfa: i32,
}

/// The unit's expected output for one weight: its state after a `kind` step with
/// gradient `g`.
pub fn apply(kind: StepKind, c: &HwCoefs, s: WordState, g: i32) -> WordState {
    let mut s = s;
    update_word::<FixedOps>(kind, &c.coefs(), &mut s.theta, &mut s.v_bp, &mut s.v_dfa, g);
    s
}

/// Whether c·m narrowed fits Q8.24 without saturating for every Q8.24 m, given
/// 0 ≤ c ≤ 1.0: |round(m·c / 2^16)| ≤ |m| (the hardware relies on it).
pub fn scale_fits(m: i32, c: i64) -> bool {
    let exact = (m as i64 * c + (1 << (COEF.frac - 1))) >> COEF.frac;
    MASTER.contains(exact) && exact == FixedOps::scale(m, c) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, RngCore, SeedableRng};

    /// An independent reference in i128 with explicit floor division.
    fn reference(kind: StepKind, c: &HwCoefs, s: WordState, g: i32) -> WordState {
        let sat = |x: i128| x.clamp(i32::MIN as i128, i32::MAX as i128) as i32;
        let mul = |m: i32, c: i64| sat((m as i128 * c as i128 + 32768).div_euclid(65536));
        let mut o = s;
        let u = if kind == StepKind::Bp {
            o.v_bp = sat(mul(s.v_bp, c.alpha) as i128 + g as i128);
            o.v_bp
        } else {
            o.v_dfa = sat(mul(s.v_dfa, c.alpha) as i128 + g as i128);
            sat(mul(o.v_dfa, c.gamma) as i128 + mul(s.v_bp, 65536 - c.gamma) as i128)
        };
        o.theta = sat(s.theta as i128 - mul(u, c.eta) as i128);
        o
    }

    #[test]
    fn apply_matches_an_i128_reference_on_random_and_extreme_words() {
        let mut r = Rng::seed_from_u64(11);
        let edge = [
            i32::MIN,
            i32::MIN + 1,
            -1,
            0,
            1,
            i32::MAX - 1,
            i32::MAX,
            1 << 15,
            -(1 << 15),
        ];
        let cedge = [0, 1, 32767, 32768, 65535, 65536];
        for i in 0..200_000 {
            let w = |r: &mut Rng| {
                if r.below(4) == 0 {
                    edge[r.below(edge.len() as u64) as usize]
                } else {
                    (r.next_u64() >> (32 + r.below(24))) as i32
                }
            };
            let cf = |r: &mut Rng| {
                if r.below(3) == 0 {
                    cedge[r.below(cedge.len() as u64) as usize]
                } else {
                    r.below(65537) as i64
                }
            };
            let c = HwCoefs::new(cf(&mut r), cf(&mut r), cf(&mut r)).unwrap();
            let s = WordState {
                theta: w(&mut r),
                v_bp: w(&mut r),
                v_dfa: w(&mut r),
            };
            let g = w(&mut r);
            let kind = if i % 2 == 0 {
                StepKind::Bp
            } else {
                StepKind::Dfa
            };
            assert_eq!(
                apply(kind, &c, s, g),
                reference(kind, &c, s, g),
                "{kind:?} {c:?} {s:?} g {g}"
            );
        }
    }

    #[test]
    fn a_narrowed_product_never_needs_saturation_for_coefficients_up_to_one() {
        for c in 0..=COEF_ONE {
            for m in [
                i32::MIN,
                i32::MIN + 1,
                -65537,
                -32769,
                -1,
                0,
                1,
                32767,
                i32::MAX - 1,
                i32::MAX,
            ] {
                assert!(scale_fits(m, c), "m {m} c {c}");
            }
        }
        // Above 1.0 it can overflow: the range check is needed.
        assert!(!scale_fits(i32::MAX, COEF_ONE + 1));
    }

    #[test]
    fn coefficients_outside_zero_to_one_are_refused_by_name() {
        let e = HwCoefs::new(COEF_ONE + 1, 0, 0).unwrap_err().to_string();
        assert!(e.contains("eta = 65537") && e.contains("0..=65536"), "{e}");
        let e = HwCoefs::new(1, 1, -1).unwrap_err().to_string();
        assert!(e.contains("gamma = -1"), "{e}");
        assert!(HwCoefs::new(COEF_ONE, 0, COEF_ONE).is_ok());
    }
}
