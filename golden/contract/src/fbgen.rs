//! The feedback-weight generator: binary sparse backward weights regenerated on the
//! fly from a seed, so that no backward-weight bit is stored (as KAIST's DF-LNPU
//! regenerates its DFA weights on chip). The trainer draws its feedback matrices with
//! it (`backward.generator = "lfsr"`), and the units regenerate the same bits.
//!
//! ## Definition
//! - The generator is Marsaglia's **xorshift32** with the triple (13, 17, 5):
//!   x ^= x << 13; x ^= x >> 17; x ^= x << 5. It is a linear map of period 2^32 − 1 on
//!   the nonzero states (checked in a test by the order of its 32 × 32 bit matrix). In
//!   hardware one step is three layers of XORs, about 32 LUTs.
//! - **Streams.** Row r of a matrix (a dense path's target unit, or a conv path's
//!   output channel) has its own stream, started from [`row_state`]`(seed, r)` =
//!   seed ⊕ (r + 1)·0x9E3779B9 mod 2^32 (0 replaced by 1). A lane walking rows r, r + P,
//!   … adds the constant P·0x9E3779B9 once per row: no multiplier.
//! - **Weights.** Entry j of a row takes one step: x ← xorshift32(x). Its sign is x's
//!   bit 31 (1: −1), and it is nonzero when x's bits 23..31 taken as a byte, (x >> 23) &
//!   0xff, are below the **threshold** T ∈ [0, 256]: the mask R keeps an entry with
//!   probability T/256 (sparsity 1 − T/256, in steps of 1/256; T = 256 keeps all).
//!   [`threshold`] turns a sparsity into T.

use crate::GoldenError;

/// The multiplier that spreads row numbers over the state space (2^32 / φ).
pub const ROW_STRIDE: u32 = 0x9E37_79B9;

/// Mask thresholds are in 1/THRESHOLD_ONE steps.
pub const THRESHOLD_ONE: u32 = 256;

/// One xorshift32 step (13, 17, 5).
#[inline]
pub fn step(mut x: u32) -> u32 {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x
}

/// The start state of row `r`'s stream under `seed` (never 0).
#[inline]
pub fn row_state(seed: u32, r: usize) -> u32 {
    let s = seed ^ ((r as u32).wrapping_add(1)).wrapping_mul(ROW_STRIDE);
    if s == 0 {
        1
    } else {
        s
    }
}

/// The mask threshold T for a sparsity in [0, 1): round(256·(1 − sparsity)), at least 1.
pub fn threshold(sparsity: f64) -> Result<u32, GoldenError> {
    crate::params::check_sparsity(sparsity)?;
    let t = ((1.0 - sparsity) * THRESHOLD_ONE as f64).round() as u32;
    Ok(t.clamp(1, THRESHOLD_ONE))
}

/// One generated entry: its sign and whether the mask keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenEntry {
    /// The sign of D is negative.
    pub neg: bool,
    /// The mask R keeps the entry.
    pub keep: bool,
}

/// Entry from a state just stepped to: sign bit 31, mask byte bits 23..31 against `t`.
#[inline]
pub fn entry(x: u32, t: u32) -> GenEntry {
    GenEntry {
        neg: x >> 31 == 1,
        keep: (x >> 23) & 0xff < t,
    }
}

/// Row `r`'s first `n` entries under `seed` and threshold `t`.
pub fn row(seed: u32, r: usize, n: usize, t: u32) -> impl Iterator<Item = GenEntry> {
    let mut x = row_state(seed, r);
    (0..n).map(move |_| {
        x = step(x);
        entry(x, t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift32 as a 32 × 32 matrix over GF(2): column j is the image of bit j.
    type Mat = [u32; 32];

    fn apply(m: &Mat, x: u32) -> u32 {
        (0..32)
            .filter(|&j| (x >> j) & 1 == 1)
            .fold(0, |a, j| a ^ m[j])
    }

    fn mul(a: &Mat, b: &Mat) -> Mat {
        let mut c = [0u32; 32];
        for j in 0..32 {
            c[j] = apply(a, b[j]);
        }
        c
    }

    fn pow(m: &Mat, mut e: u64) -> Mat {
        let mut r: Mat = std::array::from_fn(|j| 1u32 << j);
        let mut b = *m;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(&b, &r);
            }
            b = mul(&b, &b);
            e >>= 1;
        }
        r
    }

    #[test]
    fn xorshift32_has_full_period_two_to_the_32_minus_one() {
        let m: Mat = std::array::from_fn(|j| step(1 << j));
        let id: Mat = std::array::from_fn(|j| 1u32 << j);
        let n = (1u64 << 32) - 1;
        assert_eq!(pow(&m, n), id);
        // 2^32 − 1 = 3 · 5 · 17 · 257 · 65537: no proper divisor is the order.
        for q in [3u64, 5, 17, 257, 65537] {
            assert_ne!(pow(&m, n / q), id, "order divides (2^32-1)/{q}");
        }
        // The matrix is the map: it agrees with step on arbitrary states.
        for x in [1u32, 0xdead_beef, 0x8000_0001, u32::MAX] {
            assert_eq!(apply(&m, x), step(x));
        }
    }

    #[test]
    fn xorshift32_matches_marsaglias_published_sequence() {
        // Marsaglia (2003), "Xorshift RNGs", xor32 from y = 2463534242 (the values
        // agree with a separate Python evaluation of the paper's three lines).
        let mut x = 2_463_534_242u32;
        x = step(x);
        assert_eq!(x, 723_471_715);
        x = step(x);
        assert_eq!(x, 2_497_366_906);
    }

    #[test]
    fn thresholds_follow_sparsity_and_masks_keep_that_share() {
        assert_eq!(threshold(0.0).unwrap(), 256);
        assert_eq!(threshold(0.9).unwrap(), 26);
        assert_eq!(threshold(0.98).unwrap(), 5);
        assert!(threshold(1.0).is_err());
        for (sp, t) in [(0.0, 256u32), (0.8, 51), (0.98, 5)] {
            let n = 200_000;
            let kept = (0..50)
                .flat_map(|r| row(7, r, n / 50, t))
                .filter(|e| e.keep)
                .count();
            let want = t as f64 / 256.0;
            assert!(
                (kept as f64 / n as f64 - want).abs() < 0.01,
                "sparsity {sp}: {kept}"
            );
            let neg = (0..50)
                .flat_map(|r| row(7, r, n / 50, t))
                .filter(|e| e.neg)
                .count();
            assert!((neg as f64 / n as f64 - 0.5).abs() < 0.01, "{neg}");
        }
    }

    #[test]
    fn rows_are_distinct_streams_and_never_start_at_zero() {
        let a: Vec<GenEntry> = row(3, 0, 64, 256).collect();
        let b: Vec<GenEntry> = row(3, 1, 64, 256).collect();
        let c: Vec<GenEntry> = row(4, 0, 64, 256).collect();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, row(3, 0, 64, 256).collect::<Vec<_>>());
        // The seed that would zero row 0's state gets state 1.
        assert_eq!(row_state(ROW_STRIDE, 0), 1);
        // A lane stepping its row state by P·ROW_STRIDE meets each row's state.
        let p = 4usize;
        let mut acc = (1u32).wrapping_mul(ROW_STRIDE);
        for r in (0..40).step_by(p) {
            assert_eq!(row_state(0x1234, r), 0x1234 ^ acc);
            acc = acc.wrapping_add((p as u32).wrapping_mul(ROW_STRIDE));
        }
    }
}
