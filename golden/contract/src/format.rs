//! Number formats and the rounding/saturation steps, defined once.
//!
//! Every tensor kind has its own signed two's-complement fixed-point format, given
//! as a `fixed` type alias; [`Format`] carries the same facts (total bits, fraction
//! bits) as plain numbers for code that works on raw integers, such as the RTL
//! generators. Widths in the RTL are taken from the constants below, never typed
//! again.
//!
//! | tensor | alias | format | range |
//! |---|---|---|---|
//! | error e | [`ErrorFx`] | Q3.13, 16 bit | [-4, 4) |
//! | activation o, p | [`ActFx`] | Q8.8, 16 bit | [-128, 128) |
//! | wide activation (preset `q8.24-…`) | [`ActWideFx`] | Q8.24 as two 16-bit words | Q8.8's range |
//! | weight W | [`WeightFx`] | Q4.12, 16 bit | [-8, 8) |
//! | derivative f'(p) | [`DerivFx`] | Q2.14, 16 bit | [-2, 2), 1.0 exact |
//! | error accumulator | [`AccFx`] | Q19.13, 32 bit | error sums, same LSB as e |
//! | master weight θ, velocity v, gradient g | [`MasterFx`] | Q8.24, 32 bit | [-128, 128) |
//! | optimizer coefficient η, α, γ | [`CoefFx`] | Q15.16, 32 bit | 1.0 = 0x10000 |
//!
//! Training keeps master weights, velocities and gradients in the wide Q8.24 format so
//! that η·g does not underflow; the forward and backward passes read a copy rounded
//! to the 16-bit weight format.
//!
//! ## Rounding and saturation
//! Arithmetic is done on raw integers: accumulate wide (i64 in the model, the
//! accumulator format in hardware), then narrow once per output:
//! 1. [`round_shift`]: shift right by `shift` bits, **rounding half up** (ties toward
//!    +∞): add half an output LSB, `1 << (shift-1)`, then shift arithmetically.
//!    In hardware this is one adder with a constant and a bit slice.
//! 2. [`saturate`]: clamp to the target format's range (never wrap).
//!
//! [`narrow`] is the two in sequence; [`mul_narrow`] multiplies two raw values and
//! narrows the product.
//!
//! ## Wide activations
//! With 8 fraction bits, the forward pass rounds every pre-activation to 2^−9, and in
//! a deep net those roundings flip ReLU and max-pool decisions wherever a
//! pre-activation lies near zero or near a tie; `hdfa gradcheck` measured that this,
//! not the backward pass, is what keeps fixed-point gradients off the f64 ones. The
//! wide preset keeps activations in Q8.24, stored as two 16-bit words so every
//! product stays a 16 × 16 multiply: `hi`, the Q8.24 value rounded half up to Q8.8,
//! and `lo`, the signed residual in [−2^15, 2^15), real = (hi · 2^16 + lo) · 2^−24
//! ([`split_wide`], [`join_wide`]). Rounding twice (to 24, then to 8 fraction bits)
//! makes `hi` the narrow preset's word except at a tie of the second rounding
//! (lo = −2^15), where it can be one LSB above it. Comparisons of (hi, lo)
//! in lexicographic order are comparisons of the values, so ReLU and max-pool decide
//! on all 24 fraction bits.

use fixed::traits::Fixed;
use fixed::types::extra::{U12, U13, U14, U16, U24, U8};
use fixed::{FixedI16, FixedI32};

/// Error format: Q3.13. e_L = softmax − one-hot lies in [-1, 1]; the headroom up to
/// ±4 absorbs the sums of binary backward weights after their scaling shift.
pub type ErrorFx = FixedI16<U13>;
/// Activation and pre-activation format: Q8.8.
pub type ActFx = FixedI16<U8>;
/// Forward weight format: Q4.12.
pub type WeightFx = FixedI16<U12>;
/// Derivative f'(p) format: Q2.14 (1.0 = 0x4000 exactly, so a ReLU mask is f' ∈ {0, 1}).
pub type DerivFx = FixedI16<U14>;
/// Error accumulator: 32 bit with the error format's LSB, so sums need no alignment.
pub type AccFx = FixedI32<U13>;

/// Master weight, velocity and gradient format: Q8.24.
pub type MasterFx = FixedI32<U24>;
/// Optimizer coefficient format (η, α, γ, 1 − γ): Q15.16.
pub type CoefFx = FixedI32<U16>;

/// Wide activation format (preset `q8.24-q4.12-q3.13`): Q8.24, held as a Q8.8 word
/// and a 16-bit residual ([`split_wide`]); its range is Q8.8's.
pub type ActWideFx = FixedI32<U24>;

/// The facts of one fixed-point format as plain numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Human name, used in reports.
    pub name: &'static str,
    /// Total bits, sign included.
    pub bits: u32,
    /// Fraction bits.
    pub frac: u32,
}

impl Format {
    /// The format of a `fixed` type.
    pub const fn of<F: Fixed>(name: &'static str) -> Format {
        Format {
            name,
            bits: F::INT_NBITS + F::FRAC_NBITS,
            frac: F::FRAC_NBITS,
        }
    }

    /// A plain integer format of `bits` bits (no fraction), for small-width checks.
    pub const fn int(bits: u32) -> Format {
        Format {
            name: "int",
            bits,
            frac: 0,
        }
    }

    /// Smallest raw value.
    pub const fn min_raw(self) -> i64 {
        -(1i64 << (self.bits - 1))
    }

    /// Largest raw value.
    pub const fn max_raw(self) -> i64 {
        (1i64 << (self.bits - 1)) - 1
    }

    /// Whether a raw value fits.
    pub const fn contains(self, raw: i64) -> bool {
        raw >= self.min_raw() && raw <= self.max_raw()
    }

    /// The real value of a raw word.
    pub fn to_real(self, raw: i64) -> f64 {
        raw as f64 / (1u64 << self.frac) as f64
    }

    /// The raw word as two's-complement hex of the format's width, e.g. `0xe000`.
    pub fn hex(self, raw: i64) -> String {
        let mask = if self.bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        };
        let digits = self.bits.div_ceil(4) as usize;
        format!("0x{:0digits$x}", (raw as u64) & mask)
    }

    /// `hex (real)`, the way mismatch reports print a word.
    pub fn show(self, raw: i64) -> String {
        format!("{} ({})", self.hex(raw), self.to_real(raw))
    }

    /// Sign-extend the low `bits` bits of an unsigned word (as read from a simulator port).
    pub fn sign_extend(self, word: u64) -> i64 {
        let sh = 64 - self.bits;
        ((word << sh) as i64) >> sh
    }
}

/// Error format facts.
pub const ERROR: Format = Format::of::<ErrorFx>("error");
/// Activation format facts.
pub const ACT: Format = Format::of::<ActFx>("activation");
/// Wide activation format facts (fraction bits of hi · 2^16 + lo).
pub const ACT_WIDE: Format = Format::of::<ActWideFx>("wide activation");
/// Weight format facts.
pub const WEIGHT: Format = Format::of::<WeightFx>("weight");
/// Derivative format facts.
pub const DERIV: Format = Format::of::<DerivFx>("derivative");
/// Accumulator format facts.
pub const ACC: Format = Format::of::<AccFx>("accumulator");

/// Master weight / velocity / gradient format facts.
pub const MASTER: Format = Format::of::<MasterFx>("master");
/// Optimizer coefficient format facts.
pub const COEF: Format = Format::of::<CoefFx>("coefficient");

/// Error width in bits, for RTL port and register widths.
pub const ERROR_BITS: usize = ERROR.bits as usize;
/// Derivative width in bits.
pub const DERIV_BITS: usize = DERIV.bits as usize;
/// Accumulator width in bits.
pub const ACC_BITS: usize = ACC.bits as usize;

// The accumulator must keep the error LSB so S·e_L needs no alignment.
const _: () = assert!(ACC.frac == ERROR.frac);

/// Shift right by `shift` bits, rounding half up (ties toward +∞).
///
/// `shift = 0` returns `x` unchanged. This is the only rounding mode of the error path.
#[inline]
pub fn round_shift(x: i64, shift: u32) -> i64 {
    // Half an LSB of the result is (2^shift) / 2, which is 0 for shift = 0: one
    // branch-free expression, so loops over it vectorize (u64, so shift = 63 works).
    (x + ((1u64 << shift) >> 1) as i64) >> shift
}

/// Clamp a raw value to the range of `to` (saturation, never wrap-around).
#[inline]
pub fn saturate(x: i64, to: Format) -> i64 {
    x.clamp(to.min_raw(), to.max_raw())
}

/// Round-shift then saturate: the one narrowing step at the end of every accumulation.
#[inline]
pub fn narrow(x: i64, shift: u32, to: Format) -> i64 {
    saturate(round_shift(x, shift), to)
}

/// Exact product of two raw words, then [`narrow`] by `shift` into `to`.
#[inline]
pub fn mul_narrow(a: i64, b: i64, shift: u32, to: Format) -> i64 {
    narrow(a * b, shift, to)
}

/// Move a raw value with `from_frac` fraction bits into format `to`, also dividing
/// by 2^`div_log2`: one [`narrow`] when bits are dropped (round half up, saturate),
/// an exact left shift and [`saturate`] when bits are added.
#[inline]
pub fn rescale(x: i64, from_frac: u32, div_log2: u32, to: Format) -> i64 {
    let drop = from_frac as i64 + div_log2 as i64 - to.frac as i64;
    if drop >= 0 {
        narrow(x, drop as u32, to)
    } else {
        let up = (-drop) as u32;
        // Saturate before shifting so the shift cannot overflow i64.
        let lim = i64::MAX >> up;
        saturate(x.clamp(-lim, lim) << up, to)
    }
}

/// [`rescale`] of a 128-bit value (the batch gradient sums, [`crate::scale::align`]):
/// drop `from_frac + div_log2 − to.frac` bits rounding half up, then saturate; the
/// same steps as [`narrow`], wider.
#[inline]
pub fn rescale_wide(x: i128, from_frac: u32, div_log2: u32, to: Format) -> i64 {
    let drop = from_frac as i64 + div_log2 as i64 - to.frac as i64;
    let y = if drop > 0 {
        (x + (1i128 << (drop - 1))) >> drop
    } else {
        let up = (-drop) as u32;
        let lim = i128::MAX >> up;
        x.clamp(-lim, lim) << up
    };
    y.clamp(to.min_raw() as i128, to.max_raw() as i128) as i64
}

/// Bits the residual word of a wide activation carries below the Q8.8 word.
pub const WIDE_LO_BITS: u32 = ACT_WIDE.frac - ACT.frac;
const _: () = assert!(WIDE_LO_BITS == 16);

/// Narrow `x` (with `from_frac` fraction bits) into a wide activation: round half up
/// to Q8.24, saturate to Q8.8's range, and split into (hi, lo) with hi = that value
/// rounded half up to Q8.8 and lo = the residual, in [−2^15, 2^15).
#[inline]
pub fn split_wide(x: i64, from_frac: u32) -> (i16, i16) {
    debug_assert!(from_frac >= ACT_WIDE.frac);
    let v = round_shift(x, from_frac - ACT_WIDE.frac)
        .clamp(ACT.min_raw() << WIDE_LO_BITS, ACT.max_raw() << WIDE_LO_BITS);
    let hi = round_shift(v, WIDE_LO_BITS);
    let lo = v - (hi << WIDE_LO_BITS);
    (hi as i16, lo as i16)
}

/// The Q8.24 raw value of a wide activation's two words.
#[inline]
pub fn join_wide(hi: i16, lo: i16) -> i64 {
    ((hi as i64) << WIDE_LO_BITS) + lo as i64
}

/// The raw bits of an error word.
pub fn error_raw(e: ErrorFx) -> i64 {
    e.to_bits() as i64
}

/// An error word from raw bits (must fit; use [`narrow`] first).
pub fn error_from_raw(raw: i64) -> ErrorFx {
    debug_assert!(ERROR.contains(raw));
    ErrorFx::from_bits(raw as i16)
}

/// The scaling shift after a sum of `fan_in` binary (±1) weights: ⌈log2 √fan_in⌉,
/// which keeps a sum of n random-sign terms in range. The bsbu, the dce and the
/// trainer's binary backward weights all take their default shift from here.
pub fn fan_in_shift(fan_in: usize) -> u32 {
    let n = fan_in.max(1) as f64;
    (n.sqrt().log2().ceil().max(0.0)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent reference: real-valued division and floor(x + 0.5), then clamp.
    fn reference(x: i64, shift: u32, out_bits: u32) -> i64 {
        let q = (x as f64 / (1u64 << shift) as f64 + 0.5).floor() as i64;
        let lo = -(1i64 << (out_bits - 1));
        let hi = (1i64 << (out_bits - 1)) - 1;
        if q < lo {
            lo
        } else if q > hi {
            hi
        } else {
            q
        }
    }

    #[test]
    fn narrow_sweeps_every_input_of_small_widths_against_integer_reference() {
        let mut checked = 0u64;
        for in_bits in 2..=12u32 {
            let f = Format::int(in_bits);
            for out_bits in 2..=in_bits {
                for shift in 0..=in_bits {
                    for x in f.min_raw()..=f.max_raw() {
                        let got = narrow(x, shift, Format::int(out_bits));
                        assert_eq!(
                            got,
                            reference(x, shift, out_bits),
                            "x={x} shift={shift} out={out_bits}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100_000);
    }

    /// Wide shifts, up to 63, against an i128 reference (floor((x + 2^(s−1)) / 2^s)).
    #[test]
    fn round_shift_is_exact_for_every_shift_up_to_63() {
        for shift in 0..=63u32 {
            for x in [
                i64::MIN / 2,
                -(1 << 40) - 3,
                -1,
                0,
                1,
                1 << 33,
                i64::MAX / 2,
            ] {
                let half = if shift == 0 { 0 } else { 1i128 << (shift - 1) };
                let want = (x as i128 + half).div_euclid(1i128 << shift) as i64;
                assert_eq!(round_shift(x, shift), want, "x={x} shift={shift}");
            }
        }
    }

    #[test]
    fn mul_narrow_sweeps_every_pair_of_6_bit_inputs() {
        let f = Format::int(6);
        for a in f.min_raw()..=f.max_raw() {
            for b in f.min_raw()..=f.max_raw() {
                for shift in 0..=6 {
                    assert_eq!(
                        mul_narrow(a, b, shift, f),
                        reference(a * b, shift, 6),
                        "{a}*{b}>>{shift}"
                    );
                }
            }
        }
    }

    #[test]
    fn rescale_matches_exact_rational_reference() {
        let to = Format::int(8);
        for x in -3000i64..3000 {
            for from in 0..6u32 {
                for div in 0..4u32 {
                    let to = Format { frac: 3, ..to };
                    // value = x / 2^from / 2^div, expressed with 3 fraction bits.
                    let q = x as f64 / (1u64 << (from + div)) as f64 * 8.0;
                    let want = ((q + 0.5).floor() as i64).clamp(to.min_raw(), to.max_raw());
                    assert_eq!(
                        rescale(x, from, div, to),
                        want,
                        "x={x} from={from} div={div}"
                    );
                }
            }
        }
    }

    #[test]
    fn rescale_wide_equals_rescale_where_both_apply_and_keeps_bits_beyond_i64() {
        let to = Format {
            frac: 3,
            ..Format::int(8)
        };
        for x in -3000i64..3000 {
            for from in 0..6u32 {
                for div in 0..4u32 {
                    assert_eq!(
                        rescale_wide(x as i128, from, div, to),
                        rescale(x, from, div, to)
                    );
                }
            }
        }
        // 2^70 + 2^69 at 70 fraction bits is 1.5: 12 at 3 fraction bits.
        assert_eq!(rescale_wide((1i128 << 70) + (1i128 << 69), 70, 0, to), 12);
        assert_eq!(rescale_wide(-(1i128 << 100), 0, 0, to), -128);
    }

    #[test]
    fn split_wide_rounds_saturates_and_orders_like_the_value() {
        let lo_bound = -(1i64 << 15)..(1i64 << 15);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut prev: Option<(i64, (i16, i16))> = None;
        for i in 0..200_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Accumulators with 36 fraction bits (Q8.24 × Q4.12), ±2^44 covers saturation.
            let x = (rng as i64) >> 19;
            let (hi, lo) = split_wide(x, 36);
            // Independent reference: exact rational rounding, then clamp.
            let exact = ((x as f64) / 4096.0 + 0.5).floor() as i64;
            let want = exact.clamp(-32768 << 16, 32767 << 16);
            assert_eq!(join_wide(hi, lo), want, "x = {x} (case {i})");
            assert!(
                lo_bound.contains(&(lo as i64)),
                "lo {lo} out of [-2^15, 2^15)"
            );
            // hi is the narrow Q8.8 word of the same sum, except at a tie of the
            // second rounding (lo = −2^15), where it may be one above.
            let d = hi as i64 - narrow(x, 28, ACT);
            assert!(d == 0 || (d == 1 && lo == -32768), "hi of x = {x}: {d}");
            if let Some((pv, pw)) = prev {
                assert_eq!(pv.cmp(&want), pw.cmp(&(hi, lo)), "order of {pv} and {want}");
            }
            prev = Some((want, (hi, lo)));
        }
        // The double-rounding case, planted: 2^−9 − 2^−25 rounds to 2^−9 at 24 bits,
        // whose Q8.8 word is 1, while rounding once gives 0.
        let x = (1i64 << 27) - (1 << 11);
        assert_eq!(split_wide(x, 36), (1, -32768));
        assert_eq!(narrow(x, 28, ACT), 0);
    }

    #[test]
    fn saturate_clamps_at_both_ends_and_passes_inside() {
        let f = Format::int(8);
        assert_eq!(saturate(128, f), 127);
        assert_eq!(saturate(-129, f), -128);
        assert_eq!(saturate(-128, f), -128);
        assert_eq!(saturate(5, f), 5);
    }

    #[test]
    fn formats_come_from_the_fixed_types() {
        assert_eq!((ERROR.bits, ERROR.frac), (16, 13));
        assert_eq!((DERIV.bits, DERIV.frac), (16, 14));
        assert_eq!((ACC.bits, ACC.frac), (32, 13));
        assert_eq!(ERROR.to_real(ERROR.max_raw()), ErrorFx::MAX.to_num::<f64>());
        assert_eq!(ERROR.to_real(ERROR.min_raw()), ErrorFx::MIN.to_num::<f64>());
        assert_eq!(DerivFx::from_num(1).to_bits(), 1 << 14);
        assert_eq!(ERROR.hex(-1), "0xffff");
        assert_eq!(ERROR.sign_extend(0x8000), -32768);
    }
}
