//! The binary sparse backward weight (paper eq. 10) and its error propagation.
//!
//! S = sign(D ⊙ R): D is a dense random matrix, R a random 0/1 mask that keeps each
//! entry with probability 1 − s, both drawn from one generator. S has entries in
//! {−1, 0, +1} and is fixed for the whole training run. Only D's sign reaches S, so D
//! is drawn as its sign, one fair bit per entry ([`SparseSign::draw`], row-major:
//! the sign bit, then, when s > 0, R's uniform draw). The trainer's dense DFA paths
//! and the unit's test matrices come from this one function.
//!
//! The operation is e_i = sat(round((S · e_L) >> shift)) ⊙ f'(p):
//! the sum is exact (accumulator format), narrowed once by [`narrow`] into the error
//! format, then multiplied by f'(p) and narrowed again by the derivative's fraction
//! bits ([`mul_narrow`]). A ReLU mask is f' ∈ {0, 1.0}; multiplying by 1.0 is exact.
//!
//! ## Compressed hardware layout ([`Entry`])
//! Output row r belongs to lane r mod P and is that lane's local row r / P. Each lane
//! stores its rows in order as a list of 16-bit entries, one per nonzero of S:
//!
//! | bits | field | meaning |
//! |---|---|---|
//! | 12:0 | `col` | column index into e_L ([`crate::params::COL_ADDR_BITS`]) |
//! | 13 | `neg` | 1: S = −1 (subtract), 0: S = +1 (add) |
//! | 14 | `last` | last entry of its row: the row's sum is complete |
//! | 15 | `empty` | the row has no nonzero: this one entry only closes it (adds 0) |
//!
//! So a row with n nonzeros costs n entries (and n cycles), and an all-zero row
//! costs one.

use crate::format::{self, DerivFx, ErrorFx, DERIV, ERROR};
use crate::params::{check_dims, check_sparsity, BsbuParams, COL_ADDR_BITS, MAX_LANE_ENTRIES};
use crate::rng::Rng;
use crate::GoldenError;
use rand_core::SeedableRng;

/// Bit position of the sign flag in a packed entry.
pub const ENTRY_NEG_BIT: usize = COL_ADDR_BITS;
/// Bit position of the end-of-row flag.
pub const ENTRY_LAST_BIT: usize = COL_ADDR_BITS + 1;
/// Bit position of the empty-row flag.
pub const ENTRY_EMPTY_BIT: usize = COL_ADDR_BITS + 2;
/// Width of a packed entry.
pub const ENTRY_BITS: usize = COL_ADDR_BITS + 3;

/// One nonzero of S: its column and its sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nonzero {
    /// Column index into e_L.
    pub col: u16,
    /// true: S = −1; false: S = +1.
    pub neg: bool,
}

/// One word of a lane's compressed weight memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Column index into e_L (0 for an empty-row entry).
    pub col: u16,
    /// Subtract instead of add.
    pub neg: bool,
    /// Closes its row.
    pub last: bool,
    /// Stands for an all-zero row.
    pub empty: bool,
}

impl Entry {
    /// The packed word (layout in the module docs).
    pub fn pack(self) -> u32 {
        self.col as u32
            | (self.neg as u32) << ENTRY_NEG_BIT
            | (self.last as u32) << ENTRY_LAST_BIT
            | (self.empty as u32) << ENTRY_EMPTY_BIT
    }
}

/// The generator mode of the unit: S is not stored but regenerated, entry by entry,
/// by the feedback-weight generator ([`crate::fbgen`]), so every lane walks its rows
/// densely, one column per cycle (a zero of the mask adds nothing). S's row r is the
/// generator's row `row0 + r` under `seed`, kept where the mask byte is below
/// `threshold`: a unit of 256 rows runs any 256-row tile of a larger matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BsbuGen {
    /// The matrix's seed.
    pub seed: u32,
    /// The mask threshold T, 0..=256 ([`crate::fbgen::threshold`]).
    pub threshold: u32,
    /// The generator row of S's row 0.
    pub row0: usize,
}

impl BsbuGen {
    /// S (`n_rows` × `n_cols`) as the unit regenerates it.
    pub fn matrix(&self, n_rows: usize, n_cols: usize) -> Result<SparseSign, GoldenError> {
        SparseSign::generated_rows(self.row0, n_rows, n_cols, self.threshold, self.seed)
    }

    /// row0·0x9E3779B9 mod 2^32: what the unit adds to each row's stream constant
    /// (its ROW_BASE register), so that it needs no multiplier.
    pub fn row_base(&self) -> u32 {
        (self.row0 as u32).wrapping_mul(crate::fbgen::ROW_STRIDE)
    }

    /// The settings of rows `row0 + offset`.. (the next tile).
    pub fn offset(self, offset: usize) -> Self {
        BsbuGen {
            row0: self.row0 + offset,
            ..self
        }
    }
}

/// The fixed sparse sign matrix S (n_rows × n_cols), stored by rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseSign {
    n_cols: usize,
    rows: Vec<Vec<Nonzero>>,
}

impl SparseSign {
    /// S = sign(D ⊙ R) from `seed`, within the unit's limits ([`check_dims`]); see
    /// [`SparseSign::draw`].
    pub fn random(
        n_rows: usize,
        n_cols: usize,
        sparsity: f64,
        seed: u64,
    ) -> Result<Self, GoldenError> {
        check_dims(n_rows, n_cols)?;
        SparseSign::draw(n_rows, n_cols, sparsity, &mut Rng::seed_from_u64(seed))
    }

    /// S = sign(D ⊙ R) of any size (columns up to 2^16), drawn from `rng` row by row:
    /// per entry the sign of D (one fair bit), then, when `sparsity` > 0, R keeps the
    /// entry with probability 1 − sparsity. With sparsity 0 this is one bit per entry.
    pub fn draw(
        n_rows: usize,
        n_cols: usize,
        sparsity: f64,
        rng: &mut Rng,
    ) -> Result<Self, GoldenError> {
        SparseSign::draw_with(n_rows, n_cols, sparsity, rng, |_, _, rng| Some(rng.bit()))
    }

    /// S = sign(D ⊙ R) with D's signs from `neg(r, c, rng)` (Some(true): negative,
    /// Some(false): positive, None: D is 0 there), then R as in [`SparseSign::draw`]
    /// (drawn for every entry, so a zero of D does not shift the mask stream). The
    /// signs may come from `rng` (random D) or from a given matrix (appendix B.2).
    pub fn draw_with(
        n_rows: usize,
        n_cols: usize,
        sparsity: f64,
        rng: &mut Rng,
        mut neg: impl FnMut(usize, usize, &mut Rng) -> Option<bool>,
    ) -> Result<Self, GoldenError> {
        check_sparsity(sparsity)?;
        if n_cols == 0 || n_cols > 1 << 16 || n_rows == 0 {
            return Err(GoldenError::out_of_range(
                "rows x cols",
                format!("{n_rows} x {n_cols}"),
                "rows >= 1, cols 1..=65536",
            ));
        }
        let mut rows = Vec::with_capacity(n_rows);
        for r in 0..n_rows {
            let mut row = Vec::new();
            for c in 0..n_cols {
                let sign = neg(r, c, rng); // sign(D)
                let keep = sparsity == 0.0 || rng.uniform() >= sparsity; // R
                if let (true, Some(neg)) = (keep, sign) {
                    row.push(Nonzero { col: c as u16, neg });
                }
            }
            rows.push(row);
        }
        Ok(SparseSign { n_cols, rows })
    }

    /// S = sign(D ⊙ R) regenerated from `seed` by the feedback-weight generator
    /// ([`crate::fbgen`]): row r is stream r, entry c its c-th step, kept when its
    /// mask byte is below `threshold` (0..=256). Any size with columns up to 2^16.
    pub fn generated(
        n_rows: usize,
        n_cols: usize,
        threshold: u32,
        seed: u32,
    ) -> Result<Self, GoldenError> {
        BsbuGen {
            seed,
            threshold,
            row0: 0,
        }
        .matrix(n_rows, n_cols)
    }

    /// Rows `row0`.. of [`SparseSign::generated`] (a tile of a larger matrix).
    fn generated_rows(
        row0: usize,
        n_rows: usize,
        n_cols: usize,
        threshold: u32,
        seed: u32,
    ) -> Result<Self, GoldenError> {
        if n_cols == 0 || n_cols > 1 << 16 || n_rows == 0 || threshold > crate::fbgen::THRESHOLD_ONE
        {
            return Err(GoldenError::out_of_range(
                "rows x cols, threshold",
                format!("{n_rows} x {n_cols}, {threshold}"),
                "rows >= 1, cols 1..=65536, threshold 0..=256",
            ));
        }
        let rows = (row0..row0 + n_rows)
            .map(|r| {
                crate::fbgen::row(seed, r, n_cols, threshold)
                    .enumerate()
                    .filter(|(_, e)| e.keep)
                    .map(|(c, e)| Nonzero {
                        col: c as u16,
                        neg: e.neg,
                    })
                    .collect()
            })
            .collect();
        Ok(SparseSign { n_cols, rows })
    }

    /// S from explicit rows (columns strictly increasing and < n_cols).
    pub fn from_rows(n_cols: usize, rows: Vec<Vec<Nonzero>>) -> Result<Self, GoldenError> {
        check_dims(rows.len(), n_cols)?;
        for (r, row) in rows.iter().enumerate() {
            for (k, nz) in row.iter().enumerate() {
                if nz.col as usize >= n_cols {
                    return Err(GoldenError::BadMatrix(format!(
                        "row {r}: column {} >= cols {n_cols}",
                        nz.col
                    )));
                }
                if k > 0 && row[k - 1].col >= nz.col {
                    return Err(GoldenError::BadMatrix(format!(
                        "row {r}: columns not strictly increasing at {}",
                        nz.col
                    )));
                }
            }
        }
        Ok(SparseSign { n_cols, rows })
    }

    /// Replace row `r` (used to plant corner cases such as empty or full rows).
    pub fn with_row(mut self, r: usize, row: Vec<Nonzero>) -> Result<Self, GoldenError> {
        if r >= self.rows.len() {
            return Err(GoldenError::out_of_range(
                "row",
                r,
                format!("0..{}", self.rows.len()),
            ));
        }
        self.rows[r] = row;
        SparseSign::from_rows(self.n_cols, self.rows)
    }

    /// Rows of S.
    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    /// Columns of S.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The nonzeros of row `r`.
    pub fn row(&self, r: usize) -> &[Nonzero] {
        &self.rows[r]
    }

    /// All nonzeros.
    pub fn nnz(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    /// The dense value S[r][c] ∈ {−1, 0, 1}.
    pub fn dense(&self, r: usize, c: usize) -> i8 {
        match self.rows[r].iter().find(|nz| nz.col as usize == c) {
            Some(nz) if nz.neg => -1,
            Some(_) => 1,
            None => 0,
        }
    }

    /// Each lane's compressed program (see [`Entry`]), lane l holding rows l, l+P, ...
    pub fn lane_programs(&self, lanes: usize) -> Vec<Vec<Entry>> {
        let mut progs = vec![Vec::new(); lanes];
        for (r, row) in self.rows.iter().enumerate() {
            let prog = &mut progs[r % lanes];
            if row.is_empty() {
                prog.push(Entry {
                    col: 0,
                    neg: false,
                    last: true,
                    empty: true,
                });
            }
            for (k, nz) in row.iter().enumerate() {
                prog.push(Entry {
                    col: nz.col,
                    neg: nz.neg,
                    last: k + 1 == row.len(),
                    empty: false,
                });
            }
        }
        progs
    }

    /// Nonzeros per lane; the largest is the ideal cycle count of one matrix pass.
    pub fn lane_nnz(&self, lanes: usize) -> Vec<usize> {
        let mut n = vec![0; lanes];
        for (r, row) in self.rows.iter().enumerate() {
            n[r % lanes] += row.len();
        }
        n
    }

    /// Check that every lane's program fits the largest entry memory.
    pub fn check_fits(&self, lanes: usize) -> Result<(), GoldenError> {
        for (l, p) in self.lane_programs(lanes).iter().enumerate() {
            if p.len() > MAX_LANE_ENTRIES {
                return Err(GoldenError::OutOfRange {
                    name: "lane entries",
                    value: format!("{} (lane {l})", p.len()),
                    range: format!("0..={MAX_LANE_ENTRIES}; raise the sparsity or the lane count"),
                });
            }
        }
        Ok(())
    }
}

/// Cycles a compute pass of the unit takes beyond its largest lane program: the
/// start cycle, and the lanes' six pipeline stages (entry ROM, e_L read, e_L
/// register, accumulate, narrow, write) emptying after the last entry issues.
pub const COMPUTE_PIPELINE: usize = 7;

/// The unit's bound per vector in a long stream, in cycles: its three stages overlap
/// (vector n+1 loads while n computes and n−1 drains), so no schedule beats the
/// slowest stage's cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamBound {
    /// Input words: n_cols e_L words, then n_rows f' words, one per cycle.
    pub load: usize,
    /// The most nonzeros of one lane plus [`COMPUTE_PIPELINE`].
    pub compute: usize,
    /// Output words: n_rows, one per cycle.
    pub drain: usize,
}

impl StreamBound {
    /// The bound of S on `lanes` lanes.
    pub fn of(s: &SparseSign, lanes: usize) -> Self {
        StreamBound {
            load: s.n_cols() + s.n_rows(),
            compute: s.lane_nnz(lanes).into_iter().max().unwrap_or(0) + COMPUTE_PIPELINE,
            drain: s.n_rows(),
        }
    }

    /// The bound of a generator-mode unit ([`BsbuGen`]) of `n_rows` × `n_cols` on
    /// `lanes` lanes: each lane walks all columns of its ⌈n_rows / P⌉ rows.
    pub fn generated(n_rows: usize, n_cols: usize, lanes: usize) -> Self {
        StreamBound {
            load: n_cols + n_rows,
            compute: n_rows.div_ceil(lanes) * n_cols + COMPUTE_PIPELINE,
            drain: n_rows,
        }
    }

    /// max(load, compute, drain).
    pub fn cycles(&self) -> usize {
        self.load.max(self.compute).max(self.drain)
    }
}

/// f'(p) for one layer.
#[derive(Clone, Debug, PartialEq)]
pub enum FPrime {
    /// ReLU: f'(p) = 1 where p > 0, else 0 (the mask holds p > 0).
    Relu(Vec<bool>),
    /// A derivative value per row, e.g. tanh' = 1 − tanh².
    Deriv(Vec<DerivFx>),
}

impl FPrime {
    /// Number of rows covered.
    pub fn len(&self) -> usize {
        match self {
            FPrime::Relu(m) => m.len(),
            FPrime::Deriv(d) => d.len(),
        }
    }

    /// Whether it covers no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// f'(p) as derivative words: a ReLU mask becomes 1.0 / 0.
    pub fn words(&self) -> Vec<DerivFx> {
        match self {
            FPrime::Relu(m) => m
                .iter()
                .map(|&on| {
                    if on {
                        DerivFx::from_num(1)
                    } else {
                        DerivFx::ZERO
                    }
                })
                .collect(),
            FPrime::Deriv(d) => d.clone(),
        }
    }

    /// Apply f' of row `r` to a raw error word: a mask selects, a value multiplies.
    pub fn apply(&self, r: usize, e_raw: i64) -> i64 {
        match self {
            FPrime::Relu(m) => {
                if m[r] {
                    e_raw
                } else {
                    0
                }
            }
            FPrime::Deriv(d) => format::mul_narrow(e_raw, d[r].to_bits() as i64, DERIV.frac, ERROR),
        }
    }
}

/// The exact sums S · e_L on raw error words (accumulator values before narrowing).
pub fn accumulate(s: &SparseSign, e_l: &[ErrorFx]) -> Result<Vec<i64>, GoldenError> {
    if e_l.len() != s.n_cols() {
        return Err(GoldenError::LengthMismatch {
            what: "e_L",
            expected: s.n_cols(),
            actual: e_l.len(),
        });
    }
    Ok(s.rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|nz| {
                    let e = format::error_raw(e_l[nz.col as usize]);
                    if nz.neg {
                        -e
                    } else {
                        e
                    }
                })
                .sum()
        })
        .collect())
}

/// e_i = sat(round((S · e_L) >> shift)) ⊙ f'(p)  (paper eq. 10 with scaling).
pub fn apply(
    s: &SparseSign,
    e_l: &[ErrorFx],
    fprime: &FPrime,
    shift: u32,
) -> Result<Vec<ErrorFx>, GoldenError> {
    if fprime.len() != s.n_rows() {
        return Err(GoldenError::LengthMismatch {
            what: "f'(p)",
            expected: s.n_rows(),
            actual: fprime.len(),
        });
    }
    if shift > crate::params::MAX_SHIFT {
        return Err(GoldenError::out_of_range(
            "shift",
            shift,
            format!("0..={}", crate::params::MAX_SHIFT),
        ));
    }
    let sums = accumulate(s, e_l)?;
    Ok(sums
        .iter()
        .enumerate()
        .map(|(r, &acc)| format::error_from_raw(fprime.apply(r, format::narrow(acc, shift, ERROR))))
        .collect())
}

/// A matrix matching validated parameters: checks the shapes agree.
pub fn check_matches(s: &SparseSign, p: &BsbuParams) -> Result<(), GoldenError> {
    if s.n_rows() != p.n_rows {
        return Err(GoldenError::LengthMismatch {
            what: "S rows",
            expected: p.n_rows,
            actual: s.n_rows(),
        });
    }
    if s.n_cols() != p.n_cols {
        return Err(GoldenError::LengthMismatch {
            what: "S cols",
            expected: p.n_cols,
            actual: s.n_cols(),
        });
    }
    s.check_fits(p.lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_matrix_density_follows_sparsity_and_seed() {
        let s = SparseSign::random(64, 64, 0.8, 3).unwrap();
        let density = s.nnz() as f64 / 4096.0;
        assert!((density - 0.2).abs() < 0.03, "{density}");
        assert_eq!(s, SparseSign::random(64, 64, 0.8, 3).unwrap());
        assert_ne!(s, SparseSign::random(64, 64, 0.8, 4).unwrap());
        let dense = SparseSign::random(8, 8, 0.0, 1).unwrap();
        assert_eq!(dense.nnz(), 64);
    }

    #[test]
    fn apply_equals_dense_f64_reference_with_relu() {
        let s = SparseSign::random(16, 24, 0.5, 9).unwrap();
        let mut rng = Rng::seed_from_u64(5);
        let e: Vec<ErrorFx> = (0..24)
            .map(|_| ErrorFx::from_bits(rng.range_i64(-4000, 4000) as i16))
            .collect();
        let mask: Vec<bool> = (0..16).map(|_| rng.bit()).collect();
        let out = apply(&s, &e, &FPrime::Relu(mask.clone()), 2).unwrap();
        for r in 0..16 {
            let sum: f64 = (0..24)
                .map(|c| s.dense(r, c) as f64 * e[c].to_num::<f64>())
                .sum();
            let want = if mask[r] {
                (sum / 4.0 * 8192.0 + 0.5).floor() / 8192.0
            } else {
                0.0
            };
            assert_eq!(
                out[r].to_num::<f64>(),
                want.clamp(-4.0, 4.0 - 1.0 / 8192.0),
                "row {r}"
            );
        }
    }

    #[test]
    fn relu_mask_equals_multiplying_by_one_or_zero_for_every_error_word() {
        let ones = FPrime::Deriv(vec![DerivFx::from_num(1), DerivFx::ZERO]);
        let mask = FPrime::Relu(vec![true, false]);
        for e in ERROR.min_raw()..=ERROR.max_raw() {
            assert_eq!(ones.apply(0, e), mask.apply(0, e));
            assert_eq!(ones.apply(1, e), mask.apply(1, e));
        }
    }

    #[test]
    fn lane_programs_cover_every_nonzero_and_close_every_row() {
        let s = SparseSign::random(10, 12, 0.7, 2)
            .unwrap()
            .with_row(3, vec![])
            .unwrap();
        let progs = s.lane_programs(4);
        let rows_closed: usize = progs.iter().flatten().filter(|e| e.last).count();
        assert_eq!(rows_closed, 10);
        let nz: usize = progs.iter().flatten().filter(|e| !e.empty).count();
        assert_eq!(nz, s.nnz());
        assert!(progs[3].iter().any(|e| e.empty));
        assert_eq!(s.lane_nnz(4).iter().sum::<usize>(), s.nnz());
        // The layout of the module docs: col in bits 12:0, neg 13, last 14, empty 15.
        let e = Entry {
            col: 0x1ABC,
            neg: true,
            last: false,
            empty: true,
        };
        assert_eq!(e.pack(), 0x1ABC | 1 << 13 | 1 << 15);
        let l = Entry {
            col: 5,
            neg: false,
            last: true,
            empty: false,
        };
        assert_eq!(l.pack(), 5 | 1 << 14);
    }

    #[test]
    fn a_generated_tile_is_those_rows_of_the_whole_generated_matrix() {
        let g = BsbuGen {
            seed: 0xC0FF_EE11,
            threshold: 26,
            row0: 0,
        };
        let whole = g.matrix(600, 40).unwrap();
        for r0 in [0usize, 256, 512] {
            let n = (600 - r0).min(256);
            let tile = g.offset(r0).matrix(n, 40).unwrap();
            for r in 0..n {
                assert_eq!(tile.row(r), whole.row(r0 + r), "tile {r0} row {r}");
            }
            assert_eq!(
                g.offset(r0).row_base(),
                (r0 as u32).wrapping_mul(crate::fbgen::ROW_STRIDE)
            );
        }
        assert_eq!(
            whole,
            SparseSign::generated(600, 40, 26, 0xC0FF_EE11).unwrap()
        );
        assert_ne!(g.offset(1).matrix(4, 40).unwrap().row(0), whole.row(0));
    }

    #[test]
    fn bad_inputs_get_named_errors() {
        let s = SparseSign::random(4, 4, 0.0, 1).unwrap();
        let err = apply(&s, &[ErrorFx::ZERO; 3], &FPrime::Relu(vec![true; 4]), 0).unwrap_err();
        assert_eq!(
            err,
            GoldenError::LengthMismatch {
                what: "e_L",
                expected: 4,
                actual: 3
            }
        );
        assert!(apply(&s, &[ErrorFx::ZERO; 4], &FPrime::Relu(vec![true; 5]), 0).is_err());
        assert!(SparseSign::random(4, 4, 1.0, 1)
            .unwrap_err()
            .to_string()
            .contains("sparsity"));
        assert!(SparseSign::random(4, 8193, 0.5, 1)
            .unwrap_err()
            .to_string()
            .contains("cols = 8193"));
        let big = SparseSign::random(256, 256, 0.0, 1).unwrap();
        assert!(big
            .check_fits(1)
            .unwrap_err()
            .to_string()
            .contains("lane entries"));
    }
}
