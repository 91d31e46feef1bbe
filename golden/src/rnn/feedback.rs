//! The recurrent cell's DFA feedback (paper section 3.3, eq. 9–11): an upper-triangular
//! block matrix S (HT × HT, T blocks of H × H) that takes the cell outputs' errors
//! e^rnn = [e_0; …; e_{T−1}] to the errors at the cell's inputs,
//! e_i = Σ_{j ≥ i} S_{i,j} e_j (blocks with i > j are zero: an output never depends
//! on a later input). Main type: [`TriFeedback`].
//!
//! Block (i, j) is sign(power(D, n) ⊙ R_j): a matrix power of one H × H matrix D
//! (drawn uniform in (−1, 1), or the cell's recurrent weight, appendix B.2), then a
//! binary mask R_j per column block j that keeps each entry with probability
//! 1 − sparsity (eq. 11), then the sign (0 where masked).
//!
//! **Real-valued** (`binary = false`, eq. 9 before eq. 11 binarizes it): block (i, j)
//! is power(D, n) ⊙ R_j itself, each power scaled by a power of two so its largest
//! |entry| lies in [½, 1), stored as Q1.14 words; the narrowing after the sum then
//! also drops the 14 fraction bits, and its fan-in shift counts the rows' mean Σw²
//! instead of their nonzeros. (Each power has its own scale: D^35 and D^1 differ by
//! orders of magnitude, which the signs of the binary form drop too.)
//!
//! **The exponent n.** The paper prints n = T − j ([`Exponent::Printed`]): block
//! (i, j) then depends on the column j only, and every row block above the diagonal
//! repeats it. BPTT carries the error of output j back to input i through j − i
//! recurrent steps, i.e. through the (j − i)-th power of the recurrent Jacobian;
//! [`Exponent::TimeDistance`] uses n = j − i, which mimics that: the diagonal block is
//! then sign(I ⊙ R_j), the identity's diagonal where the mask keeps it, and blocks
//! further from the diagonal take higher powers. Both are fixed at the start of training.
//!
//! The powers are computed in f64 with a fixed summation order (IEEE basic
//! operations only, so every machine gets the same signs), rescaled by a power of two
//! after each product (exact, so the signs are those of the plain power; D^35 of a
//! 200 × 200 random matrix would overflow without it).

use crate::format::{narrow, ERROR};
use crate::rng::{Rng, SeedableRng};
use crate::GoldenError;

/// A value a feedback matrix can multiply: exact integers (i64) or floats. A
/// feedback word (a sign −1 / 0 / +1, or a real-valued weight's raw Q1.14, as i16)
/// converts into it exactly.
pub trait SignSum:
    Copy + Default + std::ops::AddAssign + std::ops::Mul<Output = Self> + From<i16>
{
}

impl<T: Copy + Default + std::ops::AddAssign + std::ops::Mul<Output = Self> + From<i16>> SignSum
    for T
{
}

/// Fraction bits of a real-valued feedback weight (Q1.14 in i16, |w| ≤ 1).
pub const REAL_FRAC: u32 = 14;

/// The Q1.14 word of a real-valued feedback weight x ∈ [−1, 1] (round to nearest).
pub fn real_word(x: f64) -> i16 {
    (x.clamp(-1.0, 1.0) * (1 << REAL_FRAC) as f64).round() as i16
}

/// The narrowing shift of a real-valued feedback product whose outputs sum, on
/// average, `energy` = Σw² (real units): the weights' fraction bits plus the fan-in
/// shift of that energy, so the product keeps its input's scale.
pub fn real_shift(energy: f64) -> u32 {
    REAL_FRAC + crate::format::fan_in_shift(energy.round().max(1.0) as usize)
}

/// Which power a block takes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exponent {
    /// n = T − j, as printed in eq. 9 and 11.
    Printed,
    /// n = j − i, the time distance.
    TimeDistance,
}

/// The fixed triangular feedback of one recurrent cell.
#[derive(Clone, Debug, PartialEq)]
pub struct TriFeedback {
    /// Cell outputs per step H.
    pub h: usize,
    /// Time steps T.
    pub t: usize,
    /// Which power each block takes.
    pub exponent: Exponent,
    /// power(D, n) for n = 0..=T, row-major H × H: its signs (−1 / 0 / +1) when
    /// binary, else its values normalized to a largest |entry| in [½, 1) as Q1.14.
    weights: Vec<Vec<i16>>,
    /// Fraction bits of the weights: 0 (binary) or [`REAL_FRAC`].
    pub frac: u32,
    /// R_j for each column block j: its kept columns of each row, ascending (CSR: row r's are
    /// `kept[j].1[kept[j].0[r]..kept[j].0[r + 1]]`). The block products visit only
    /// these, in the order a dense walk over the row would, so the sums are the same
    /// values in the same order (floats too); it skips the masked entries' branches,
    /// which the time-distance variant's T(T+1)/2 block products would pay for.
    kept: Vec<(Vec<u32>, Vec<u16>)>,
    /// Scaling shift after the sum: the weights' fraction bits plus the fan-in shift
    /// of the expected nonzeros per output (binary), or of the rows' mean Σw²
    /// (real-valued), so the product keeps its input's scale.
    pub shift: u32,
}

/// D · A with a fixed summation order, scaled by a power of two so the largest
/// |entry| lies in [1, 2). A power-of-two scale is exact, so the signs (zeros
/// included) are those of the unscaled product.
fn mul_normalized(d: &[f64], a: &[f64], h: usize) -> Vec<f64> {
    let mut out = vec![0.0; h * h];
    for r in 0..h {
        for k in 0..h {
            let x = d[r * h + k];
            for c in 0..h {
                out[r * h + c] += x * a[k * h + c];
            }
        }
    }
    let m = out.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if m.is_normal() {
        // 2^−e for m = 1.x · 2^e, from the exponent bits (no libm).
        let e = ((m.to_bits() >> 52) & 0x7ff) as i64 - 1023;
        let scale = f64::from_bits(((1023 - e) as u64) << 52);
        out.iter_mut().for_each(|v| *v *= scale);
    }
    out
}

fn sign(x: f64) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

impl TriFeedback {
    /// The feedback of a cell with H outputs over T steps from the H × H matrix `d`
    /// (row-major; random or from the forward weights), masks drawn with `seed`;
    /// binary (eq. 11) or real-valued (eq. 9: the powers' values).
    pub fn new(
        h: usize,
        t: usize,
        d: &[f64],
        sparsity: f64,
        exponent: Exponent,
        seed: u64,
        binary: bool,
    ) -> Result<TriFeedback, GoldenError> {
        if h == 0 || t == 0 {
            return Err(GoldenError::out_of_range(
                "H and T",
                format!("{h}, {t}"),
                ">= 1",
            ));
        }
        if d.len() != h * h {
            return Err(GoldenError::out_of_range(
                "D entries",
                d.len(),
                format!("H·H = {}", h * h),
            ));
        }
        crate::params::check_sparsity(sparsity)?;
        // power(D, 0) = I, then one product per power.
        let mut p: Vec<f64> = (0..h * h).map(|i| (i / h == i % h) as u8 as f64).collect();
        // A power scaled so its largest |entry| is in [1, 2) (the identity is 1):
        // as a sign, or halved into Q1.14 (|raw| ≤ 2^14).
        let word = |p: &[f64]| -> Vec<i16> {
            p.iter()
                .map(|&v| {
                    if binary {
                        sign(v) as i16
                    } else {
                        real_word(v / 2.0)
                    }
                })
                .collect()
        };
        let mut weights = vec![word(&p)];
        for _ in 0..t {
            p = mul_normalized(d, &p, h);
            weights.push(word(&p));
        }
        let mut rng = Rng::seed_from_u64(seed);
        let masks: Vec<Vec<bool>> = (0..t)
            .map(|_| (0..h * h).map(|_| rng.uniform() >= sparsity).collect())
            .collect();
        let kept = masks
            .iter()
            .map(|m| {
                let (mut starts, mut cols) = (vec![0u32], Vec::new());
                for row in m.chunks_exact(h) {
                    // Why u16: the config caps H at 4,096, far below 2^16.
                    cols.extend((0..h).filter(|&c| row[c]).map(|c| c as u16));
                    starts.push(cols.len() as u32);
                }
                (starts, cols)
            })
            .collect();
        // Expected nonzeros per output row, averaged over the row blocks i: the kept
        // share of H per block j ≥ i, except that a time-distance diagonal block (the
        // identity) has at most one per row.
        let blocks = (t + 1) as f64 / 2.0;
        let per_row = match exponent {
            Exponent::Printed => h as f64 * blocks,
            Exponent::TimeDistance => h as f64 * (blocks - 1.0) + 1.0,
        };
        let terms = per_row * (1.0 - sparsity);
        let mut f = TriFeedback {
            h,
            t,
            exponent,
            weights,
            frac: if binary { 0 } else { REAL_FRAC },
            kept,
            shift: crate::format::fan_in_shift(terms.round().max(1.0) as usize),
        };
        if !binary {
            // The rows' mean Σw² (real units), counted exactly.
            let mut energy = 0.0;
            for i in 0..t {
                for j in i..t {
                    for r in 0..h {
                        for c in 0..h {
                            let w = f.entry(i, j, r, c) as f64 / (1 << REAL_FRAC) as f64;
                            energy += w * w;
                        }
                    }
                }
            }
            f.shift = real_shift(energy / (h * t) as f64);
        }
        Ok(f)
    }

    /// A feedback from a random D, uniform in (−1, 1), drawn with `seed`.
    pub fn random(
        h: usize,
        t: usize,
        sparsity: f64,
        exponent: Exponent,
        seed: u64,
        binary: bool,
    ) -> Result<TriFeedback, GoldenError> {
        let mut rng = Rng::seed_from_u64(seed ^ 0x5eed_d);
        let d: Vec<f64> = (0..h * h).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        TriFeedback::new(h, t, &d, sparsity, exponent, seed, binary)
    }

    /// Entry (r, c) of block (i, j): −1, 0 or +1 (binary), or the raw Q1.14 weight.
    pub fn entry(&self, i: usize, j: usize, r: usize, c: usize) -> i16 {
        if i > j {
            return 0;
        }
        let n = match self.exponent {
            Exponent::Printed => self.t - j,
            Exponent::TimeDistance => j - i,
        };
        if self.is_kept(j, r, c) {
            self.weights[n][r * self.h + c]
        } else {
            0
        }
    }

    /// Whether R_j keeps entry (r, c) of its blocks.
    pub fn is_kept(&self, j: usize, r: usize, c: usize) -> bool {
        let (starts, cols) = &self.kept[j];
        cols[starts[r] as usize..starts[r + 1] as usize]
            .binary_search(&(c as u16))
            .is_ok()
    }

    /// Rows `rows` of the whole HT × HT matrix as a sign matrix over its HT columns:
    /// what the backward-weight unit stores for one tile of the product (at most
    /// [`crate::params::MAX_ROWS`] rows per tile).
    pub fn rows_as_sparse(
        &self,
        rows: std::ops::Range<usize>,
    ) -> Result<crate::bsbu::SparseSign, GoldenError> {
        use crate::bsbu::{Nonzero, SparseSign};
        if self.frac != 0 {
            return Err(GoldenError::out_of_range(
                "feedback.binary",
                "false",
                "true: the backward-weight unit stores signs only",
            ));
        }
        let (h, t) = (self.h, self.t);
        let out = rows
            .map(|g| {
                let (i, r) = (g / h, g % h);
                let mut row = Vec::new();
                for j in i..t {
                    for c in 0..h {
                        let e = self.entry(i, j, r, c);
                        if e != 0 {
                            row.push(Nonzero {
                                col: (j * h + c) as u16,
                                neg: e < 0,
                            });
                        }
                    }
                }
                row
            })
            .collect();
        SparseSign::from_rows(h * t, out)
    }

    /// Nonzero entries of the whole HT × HT matrix.
    pub fn nnz(&self) -> usize {
        let mut n = 0;
        for j in 0..self.t {
            for i in 0..=j {
                for r in 0..self.h {
                    for c in 0..self.h {
                        n += (self.entry(i, j, r, c) != 0) as usize;
                    }
                }
            }
        }
        n
    }

    /// The exact sums S·e of raw error words e (HT, step-major), before narrowing.
    ///
    /// With the printed exponent a block depends on its column j only (B_j =
    /// sign(power(D, T − j)) ⊙ R_j), so y_j = B_j·e_j is formed once per column and
    /// row block i takes the suffix sum Σ_{j ≥ i} y_j: T block products instead of
    /// T(T+1)/2, the same integers (hardware can use the same order). The
    /// time-distance variant has a different block for every (i, j).
    ///
    /// Generic over the value type: exact i64 sums for the fixed-point path, f32 or
    /// f64 for the float path (the same matrix, the same order).
    pub fn sums<T: SignSum>(&self, e: &[T]) -> Vec<T> {
        let h = self.h;
        let mut out = vec![T::default(); h * self.t];
        // One block product: y[r] += Σ_c (mask ⊙ sign)[r][c] · e_j[c].
        // Over R_j's kept columns only, ascending: the dense walk's order and terms.
        let block = |n: usize, j: usize, y: &mut [T]| {
            let ej = &e[j * h..(j + 1) * h];
            let (starts, cols) = &self.kept[j];
            for (r, yr) in y.iter_mut().enumerate() {
                let sg = &self.weights[n][r * h..(r + 1) * h];
                let mut s = T::default();
                for &c in &cols[starts[r] as usize..starts[r + 1] as usize] {
                    s += T::from(sg[c as usize]) * ej[c as usize];
                }
                *yr += s;
            }
        };
        match self.exponent {
            Exponent::Printed => {
                let mut suffix = vec![T::default(); h];
                for j in (0..self.t).rev() {
                    block(self.t - j, j, &mut suffix);
                    out[j * h..(j + 1) * h].copy_from_slice(&suffix);
                }
            }
            Exponent::TimeDistance => {
                for j in 0..self.t {
                    for i in 0..=j {
                        block(j - i, j, &mut out[i * h..(i + 1) * h]);
                    }
                }
            }
        }
        out
    }

    /// The window's per-step vectors (H each, at most T of them) as one HT vector,
    /// zero past a window shorter than T (the stream's tail uses the top-left blocks).
    pub fn window_vector<T: Copy + Default>(&self, steps: &[Vec<T>]) -> Vec<T> {
        let h = self.h;
        let mut flat = vec![T::default(); h * self.t];
        for (j, v) in steps.iter().enumerate() {
            flat[j * h..(j + 1) * h].copy_from_slice(v);
        }
        flat
    }

    /// e_in = sat(round(S·e >> shift)) on raw error words, as every binary path narrows.
    pub fn apply(&self, e: &[i64]) -> Vec<i64> {
        self.sums(e)
            .into_iter()
            .map(|s| narrow(s, self.shift, ERROR))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masks R_j as drawn from `seed`, redrawn here from the definition (each entry
    /// kept when its uniform draw is at least the sparsity), not read from `kept`.
    fn drawn_masks(h: usize, t: usize, sparsity: f64, seed: u64) -> Vec<Vec<bool>> {
        let mut rng = Rng::seed_from_u64(seed);
        (0..t)
            .map(|_| (0..h * h).map(|_| rng.uniform() >= sparsity).collect())
            .collect()
    }

    /// Independent reference: the dense HT × HT matrix built from the definition with
    /// plain powers (no rescaling), then a plain matrix-vector product.
    fn dense(f: &TriFeedback, d: &[f64], masks: &[Vec<bool>]) -> Vec<Vec<i8>> {
        let (h, t) = (f.h, f.t);
        let mut pw: Vec<Vec<f64>> =
            vec![(0..h * h).map(|i| (i / h == i % h) as u8 as f64).collect()];
        for n in 1..=t {
            let prev = &pw[n - 1];
            let mut next = vec![0.0; h * h];
            for r in 0..h {
                for c in 0..h {
                    next[r * h + c] = (0..h).map(|k| d[r * h + k] * prev[k * h + c]).sum();
                }
            }
            pw.push(next);
        }
        let mut m = vec![vec![0i8; h * t]; h * t];
        for i in 0..t {
            for j in i..t {
                let n = match f.exponent {
                    Exponent::Printed => t - j,
                    Exponent::TimeDistance => j - i,
                };
                for r in 0..h {
                    for c in 0..h {
                        let keep = masks[j][r * h + c];
                        m[i * h + r][j * h + c] = if keep { sign(pw[n][r * h + c]) } else { 0 };
                    }
                }
            }
        }
        m
    }

    #[test]
    fn feedback_equals_the_dense_definition_and_is_upper_triangular() {
        let (h, t) = (5, 6);
        let mut rng = Rng::seed_from_u64(2);
        // Small integers keep the reference's plain powers exact in f64.
        let d: Vec<f64> = (0..h * h).map(|_| rng.range_i64(-3, 3) as f64).collect();
        for exponent in [Exponent::Printed, Exponent::TimeDistance] {
            for sparsity in [0.0, 0.8] {
                let f = TriFeedback::new(h, t, &d, sparsity, exponent, 7, true).unwrap();
                let m = dense(&f, &d, &drawn_masks(h, t, sparsity, 7));
                let e: Vec<i64> = (0..h * t).map(|_| rng.range_i64(-8192, 8191)).collect();
                let want: Vec<i64> = m
                    .iter()
                    .map(|row| row.iter().zip(&e).map(|(&s, &v)| s as i64 * v).sum())
                    .collect();
                assert_eq!(f.sums(&e), want, "{exponent:?} {sparsity}");
                // e_j never reaches e_i for j < i: changing e_0 moves row block 0 only.
                let mut e2 = e.clone();
                e2[..h].iter_mut().for_each(|v| *v += 100);
                let (a, b) = (f.sums(&e), f.sums(&e2));
                assert_eq!(
                    a[h..],
                    b[h..],
                    "{exponent:?}: a later input saw an earlier output"
                );
            }
        }
    }

    /// Real-valued blocks are the plain powers, each scaled by the power of two that
    /// puts its largest |entry| in [1, 2), halved into Q1.14; the shift adds the 14
    /// fraction bits to the fan-in shift of the rows' mean Σw².
    #[test]
    fn real_valued_blocks_are_the_scaled_powers() {
        let (h, t) = (4, 5);
        let mut rng = Rng::seed_from_u64(8);
        let d: Vec<f64> = (0..h * h).map(|_| rng.range_i64(-3, 3) as f64).collect();
        let f = TriFeedback::new(h, t, &d, 0.3, Exponent::TimeDistance, 2, false).unwrap();
        let mut pw: Vec<f64> = (0..h * h).map(|i| (i / h == i % h) as u8 as f64).collect();
        let mut energy = 0.0;
        for n in 0..t {
            let m = pw.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let scale = (-(m.log2().floor())).exp2();
            for j in n..t {
                let i = j - n;
                for k in 0..h * h {
                    let want = if f.is_kept(j, k / h, k % h) {
                        (pw[k] * scale * 8192.0).round() as i16
                    } else {
                        0
                    };
                    assert_eq!(f.entry(i, j, k / h, k % h), want, "n {n} block ({i}, {j})");
                    energy += (want as f64 / 16384.0).powi(2);
                }
            }
            let next: Vec<f64> = (0..h * h)
                .map(|k| (0..h).map(|q| d[k / h * h + q] * pw[q * h + k % h]).sum())
                .collect();
            pw = next;
        }
        let mean = energy / (h * t) as f64;
        assert_eq!(
            f.shift,
            14 + crate::format::fan_in_shift(mean.round().max(1.0) as usize)
        );
    }

    #[test]
    fn exponent_variants_and_masks_have_their_documented_structure() {
        let (h, t) = (8, 5);
        let f = TriFeedback::random(h, t, 0.0, Exponent::Printed, 3, true).unwrap();
        // Printed: block (i, j) depends on j only.
        for j in 0..t {
            for i in 0..j {
                for k in 0..h * h {
                    assert_eq!(f.entry(i, j, k / h, k % h), f.entry(j, j, k / h, k % h));
                }
            }
        }
        // Time distance with no masking: the diagonal blocks are the identity.
        let g = TriFeedback::random(h, t, 0.0, Exponent::TimeDistance, 3, true).unwrap();
        for j in 0..t {
            for k in 0..h * h {
                let want = (k / h == k % h) as i16;
                assert_eq!(g.entry(j, j, k / h, k % h), want);
            }
        }
        // Sparsity: the share of zeros in the kept triangle follows it.
        let s = TriFeedback::random(16, 6, 0.9, Exponent::Printed, 4, true).unwrap();
        let total = 16 * 16 * 6 * 7 / 2;
        let density = s.nnz() as f64 / total as f64;
        assert!((density - 0.1).abs() < 0.02, "{density}");
        assert!(TriFeedback::random(4, 4, 1.0, Exponent::Printed, 1, true).is_err());
        assert!(TriFeedback::new(3, 2, &[0.0; 8], 0.5, Exponent::Printed, 1, true).is_err());
    }

    #[test]
    fn apply_narrows_with_the_fan_in_shift_and_saturates() {
        let f = TriFeedback::random(4, 3, 0.0, Exponent::TimeDistance, 5, true).unwrap();
        let e = vec![ERROR.max_raw(); 12];
        let out = f.apply(&e);
        for (o, s) in out.iter().zip(f.sums(&e)) {
            assert_eq!(*o, narrow(s, f.shift, ERROR));
            assert!(ERROR.contains(*o));
        }
    }
}
