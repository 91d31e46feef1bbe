//! Validated parameters. Each limit is defined here once; the RTL generators size
//! their memories and counters from these constants.

use crate::format::{ACC, ERROR};
use crate::GoldenError;

/// Most parallel lanes of the backward-weight unit.
pub const BSBU_MAX_LANES: usize = 16;
/// Bits of a column index (e_L word address) in a packed entry; the unit takes at most
/// 2^13 = 8,192 columns. Why 13: a word-level vocabulary (6,762 words in the Austen
/// word config) is the length of e_L for the RNN's S^fc (issue 10).
pub const COL_ADDR_BITS: usize = 13;
/// Address bits of the per-lane e_L memories of a unit with at most 2^7 columns: two
/// banks of 2^7 words (vector n+1 loads while vector n is read), one iCE40 block RAM.
/// Wider units get one or [`COL_ADDR_BITS`] − 7 bits more: every lane keeps its own
/// copy of e_L, so a 2 × 2^13-word copy per lane would not fit an iCE40 (HX8K: 32
/// 4-kbit block RAMs) for any unit that does not need it.
pub const SMALL_COL_ADDR_BITS: usize = 8;
/// Bits of a row index (e_i word address); at most 2^8 output rows.
pub const ROW_ADDR_BITS: usize = 8;
/// Most columns (length of e_L).
pub const MAX_COLS: usize = 1 << COL_ADDR_BITS;
/// Most output rows (length of e_i).
pub const MAX_ROWS: usize = 1 << ROW_ADDR_BITS;
/// Address bits of the largest per-lane entry memory (16,384 entries: the word-level
/// S^fc, 128 × 6,762 at sparsity 0.8, needs 10,820 per lane at P = 16).
pub const MAX_ENTRY_ADDR_BITS: usize = 14;
/// Most compressed entries one lane can hold.
pub const MAX_LANE_ENTRIES: usize = 1 << MAX_ENTRY_ADDR_BITS;
/// Largest scaling shift after accumulation: the shifted accumulator must still
/// cover the error range, so shift ≤ accumulator bits − error bits.
pub const MAX_SHIFT: u32 = ACC.bits - ERROR.bits;

/// Parameters of one binary sparse backward-weight unit (BSBU) instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BsbuParams {
    /// Parallel lanes P; output row r belongs to lane r mod P.
    pub lanes: usize,
    /// Output rows (length of e_i).
    pub n_rows: usize,
    /// Columns (length of e_L).
    pub n_cols: usize,
    /// Power-of-two scaling shift applied after accumulation.
    pub shift: u32,
}

impl BsbuParams {
    /// Validate every field against the limits above.
    pub fn new(
        lanes: usize,
        n_rows: usize,
        n_cols: usize,
        shift: u32,
    ) -> Result<Self, GoldenError> {
        check_lanes(lanes)?;
        check_dims(n_rows, n_cols)?;
        if shift > MAX_SHIFT {
            return Err(GoldenError::out_of_range(
                "shift",
                shift,
                format!("0..={MAX_SHIFT}"),
            ));
        }
        // The accumulator must hold n_cols full-scale errors without wrapping.
        let worst = n_cols as i64 * -ERROR.min_raw();
        debug_assert!(worst <= ACC.max_raw());
        Ok(BsbuParams {
            lanes,
            n_rows,
            n_cols,
            shift,
        })
    }
}

/// Check a lane count on its own (CLI flags are checked before anything is built).
pub fn check_lanes(lanes: usize) -> Result<(), GoldenError> {
    if !(1..=BSBU_MAX_LANES).contains(&lanes) {
        return Err(GoldenError::out_of_range(
            "lanes",
            lanes,
            format!("1..={BSBU_MAX_LANES}"),
        ));
    }
    Ok(())
}

/// Check the shape of S (rows × cols) on its own.
pub fn check_dims(n_rows: usize, n_cols: usize) -> Result<(), GoldenError> {
    if !(1..=MAX_ROWS).contains(&n_rows) {
        return Err(GoldenError::out_of_range(
            "rows",
            n_rows,
            format!("1..={MAX_ROWS}"),
        ));
    }
    if !(1..=MAX_COLS).contains(&n_cols) {
        return Err(GoldenError::out_of_range(
            "cols",
            n_cols,
            format!("1..={MAX_COLS}"),
        ));
    }
    Ok(())
}

/// Check a sparsity (fraction of zeros in S) on its own: valid range [0, 1).
pub fn check_sparsity(sparsity: f64) -> Result<(), GoldenError> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(GoldenError::out_of_range("sparsity", sparsity, "[0, 1)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_reject_each_field_out_of_range_with_its_name() {
        let e = BsbuParams::new(0, 8, 8, 1).unwrap_err().to_string();
        assert!(e.contains("lanes = 0") && e.contains("1..=16"), "{e}");
        assert!(BsbuParams::new(17, 8, 8, 1)
            .unwrap_err()
            .to_string()
            .contains("lanes = 17"));
        assert!(BsbuParams::new(1, 0, 8, 1)
            .unwrap_err()
            .to_string()
            .contains("rows = 0"));
        let e = BsbuParams::new(1, 8, 8193, 1).unwrap_err().to_string();
        assert!(e.contains("cols = 8193") && e.contains("1..=8192"), "{e}");
        assert!(BsbuParams::new(1, 257, 8192, 1)
            .unwrap_err()
            .to_string()
            .contains("rows = 257"));
        assert!(BsbuParams::new(16, 256, 8192, 16).is_ok());
        assert!(BsbuParams::new(1, 8, 8, 17)
            .unwrap_err()
            .to_string()
            .contains("shift = 17"));
        assert!(check_sparsity(1.0)
            .unwrap_err()
            .to_string()
            .contains("[0, 1)"));
        assert!(check_sparsity(-0.1).is_err());
        assert!(check_sparsity(0.98).is_ok());
        assert_eq!(crate::format::fan_in_shift(64), 3);
        assert_eq!(crate::format::fan_in_shift(1), 0);
    }
}
