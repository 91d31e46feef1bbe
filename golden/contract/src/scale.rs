//! Error scaling: block floating point, one exponent per error tensor.
//!
//! Errors shrink layer by layer (BP) and along chains of module paths (DFA). Kept
//! at one fixed scale, they sink into the last bits of Q3.13 and vanish. So every
//! error tensor of a sample (e_L, and each layer's e_i after ⊙ f') carries a
//! power-of-two **exponent** E beside its raw Q3.13 words:
//!
//! real value = raw × 2^−(13 + E)
//!
//! ## Normalization (after a tensor is complete)
//! 1. OR-reduce the words' sign-magnitudes m = w ⊕ (w >> 15) (one's complement:
//!    `w` for w ≥ 0, `−w − 1` below): [`or_magnitude`]. In hardware this is one
//!    XOR per bit and one OR tree, updated as the words are written.
//! 2. The OR's bit length L is the bit length of the largest magnitude. When
//!    L < [`NORM_BITS`], every word is shifted left by s = NORM_BITS − L (exact), so
//!    that the largest word has 13 significant bits: words lie in [−2^13, 2^13]
//!    (real [−1, 1] before the exponent), and the two top integer bits of Q3.13 stay
//!    free as headroom for the sums of the next stage. E ← E + s.
//! 3. Words are never shifted right: a tensor whose sums grew past 13 bits keeps
//!    them (a right shift would only drop bits that the fixed scaling keeps).
//! 4. s is clamped so that E stays at most [`EXP_MAX`] (a 5-bit field, 0..=31);
//!    exponents start at 0 or above (e_L's, from the softmax) and only grow.
//!
//! The measured reason (`hdfa gradcheck`): normalizing both ways, to exactly 13 bits,
//! lost up to 10 points of bias-gradient accuracy on fashion-deep at step 200,
//! where BP errors grow past 13 bits in the lower layers; left shifts only are
//! never worse than no normalization.
//!
//! ## Where the exponent goes
//! - A propagation stage (BP's Wᵀ·e, a DFA path's binary sums) reads the words as
//!   they are; its output has the input's exponent. A path's fixed gain 2^−g
//!   (the DFA down-scaling) is added to the exponent, so it costs no bits.
//! - The units (bsbu, dce) see normalized words; their own narrowing shift stays the
//!   fan-in shift. The exponent never enters their datapath.
//! - Weight and bias gradients: a sample's exact product sums have 2^−(21 + E)
//!   (weights) or 2^−(13 + E) (biases) as LSB. They are aligned to the batch LSB
//!   2^−(21 + EXP_MAX) or 2^−(13 + EXP_MAX) by a left shift of [`align_shift`] = EXP_MAX − E
//!   bits ([`align`]), summed exactly (i128), and narrowed once to Q8.24.

/// Significant bits of the largest word after normalization: words lie in
/// [−2^13, 2^13], i.e. real [−1, 1] before the exponent.
pub const NORM_BITS: u32 = 13;
/// Largest exponent (a 5-bit field, 0..=31): errors down to 2^−44 of e_L's scale
/// are represented.
pub const EXP_MAX: i32 = 31;

/// OR of the sign-magnitudes (one's complement) of `words`: its bit length is the
/// bit length of the largest |word| (exactly that of max(w, −w − 1)).
pub fn or_magnitude(words: impl IntoIterator<Item = i64>) -> u64 {
    words
        .into_iter()
        .fold(0u64, |acc, w| acc | (w ^ (w >> 63)) as u64)
}

/// Bit length of `x` (0 for 0).
pub fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The normalization shift of a tensor whose words' [`or_magnitude`] is `or`, at
/// exponent `exp` (0..=EXP_MAX): NORM_BITS − bit length when positive, clamped so
/// that the new exponent stays at most EXP_MAX.
pub fn norm_shift(or: u64, exp: i32) -> i32 {
    (NORM_BITS as i32 - bit_len(or) as i32).clamp(0, (EXP_MAX - exp).max(0))
}

/// Normalize error words in place: shift left by [`norm_shift`] (exact) and return
/// the shift s; the tensor's exponent becomes `exp + s`.
pub fn normalize(words: &mut [i16], exp: i32) -> i32 {
    // [`or_magnitude`] in 16-bit lanes, so it vectorizes 32 words per op: for an i16
    // w, w ^ (w >> 15) is the same one's-complement magnitude (below 2^15).
    let or = words
        .iter()
        .fold(0u16, |acc, &w| acc | (w ^ (w >> 15)) as u16);
    let s = norm_shift(or as u64, exp);
    if s > 0 {
        for w in words.iter_mut() {
            // Exact: the largest magnitude has at most 13 − s bits before the shift.
            *w = ((*w as i32) << s) as i16;
        }
    }
    s
}

/// Left shift that brings a sample's gradient sum at exponent `exp` to the batch
/// LSB (exponent [`EXP_MAX`]).
pub fn align_shift(exp: i32) -> u32 {
    debug_assert!((0..=EXP_MAX).contains(&exp));
    (EXP_MAX - exp) as u32
}

/// A sample's exact gradient sum at exponent `exp`, aligned to the batch LSB.
/// Exact in i128: |sum| < 2^63 and the shift is at most EXP_MAX = 31.
pub fn align(sum: i64, exp: i32) -> i128 {
    (sum as i128) << align_shift(exp)
}

/// 2^−exp as a real factor (for the f32 path and reports).
pub fn exp_factor(exp: i32) -> f64 {
    (2f64).powi(-exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent reference: the largest |w| by plain comparison, then the shift
    /// that brings it to 13 bits, if it has fewer.
    fn reference_shift(words: &[i16], exp: i32) -> i32 {
        let m = words
            .iter()
            .map(|&w| if w < 0 { -(w as i64) - 1 } else { w as i64 })
            .max()
            .unwrap_or(0);
        let mut len = 0;
        while (m >> len) != 0 {
            len += 1;
        }
        (13 - len).max(0).min(EXP_MAX - exp)
    }

    #[test]
    fn normalization_brings_the_largest_word_to_13_bits_exactly() {
        use crate::rng::SeedableRng;
        let mut rng = crate::rng::Rng::seed_from_u64(5);
        let (mut shifted, mut kept, mut capped) = (0, 0, 0);
        for case in 0..4000 {
            let n = 1 + rng.below(40) as usize;
            let bits = rng.below(16) as u32; // magnitudes up to 2^bits
            let lim = 1i64 << bits;
            let words: Vec<i16> = (0..n)
                .map(|_| rng.range_i64(-lim, lim).clamp(-32768, 32767) as i16)
                .collect();
            let exp = rng.range_i64(0, EXP_MAX as i64) as i32;
            let mut w = words.clone();
            let s = normalize(&mut w, exp);
            assert_eq!(s, reference_shift(&words, exp), "case {case}");
            assert!(exp + s <= EXP_MAX);
            for (a, b) in words.iter().zip(&w) {
                assert_eq!(*b as i64, (*a as i64) << s, "left shifts are exact");
            }
            let m = w.iter().map(|&x| (x as i64).abs()).max().unwrap();
            if s > 0 && exp + s < EXP_MAX && m > 0 {
                assert!(
                    (1 << 12) <= m + 1 && m <= 1 << 13,
                    "max {m} after shift {s}"
                );
                shifted += 1;
            } else if s == 0 && m >= 1 << 12 {
                kept += 1;
            } else if exp + s == EXP_MAX {
                capped += 1;
            }
        }
        assert!(
            shifted > 100 && kept > 100 && capped > 10,
            "{shifted} shifted, {kept} kept, {capped} capped"
        );
    }

    #[test]
    fn alignment_brings_every_exponent_to_the_batch_lsb() {
        // A sum s at exponent e is worth s·2^−e; aligned, it is worth a·2^−EXP_MAX.
        for e in 0..=EXP_MAX {
            let a = align(-12345, e);
            assert_eq!(a as f64 * exp_factor(EXP_MAX), -12345.0 * exp_factor(e));
        }
        assert_eq!(align(1, 0), 1i128 << 31);
    }
}
