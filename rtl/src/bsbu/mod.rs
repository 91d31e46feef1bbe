//! The binary sparse backward-weight unit: [`Bsbu`] (top), [`BsbuLane`] (one lane),
//! and [`generate`], which turns validated parameters and a golden matrix into Verilog.

mod lane;
mod top;

pub use lane::BsbuLane;
pub use top::Bsbu;

use contract::bsbu::{check_matches, SparseSign};
use contract::params::{BsbuParams, COL_ADDR_BITS, MAX_ENTRY_ADDR_BITS, SMALL_COL_ADDR_BITS};
use rust_hdl::prelude::*;

use crate::{checked_verilog, Emitted, Port, RtlError};

/// Smallest entry-memory address width generated (16 words).
pub const MIN_ENTRY_ADDR_BITS: usize = 4;

/// The top-level ports of the unit, clock first: just the stream ports.
pub fn ports() -> Vec<Port> {
    crate::stream_ports()
}

/// Entry-memory address width that holds the longest lane program.
pub fn entry_addr_bits(s: &SparseSign, lanes: usize) -> usize {
    let longest = s
        .lane_programs(lanes)
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut bits = MIN_ENTRY_ADDR_BITS;
    while (1usize << bits) < longest {
        bits += 1;
    }
    bits
}

/// Smallest entry-memory address width of a unit whose e_L banks exceed 2^7 words:
/// each width is one more monomorphized unit to compile, and such a unit needs many
/// entries per lane anyway (a larger memory than needed only pads the ROM).
pub const MIN_MID_ENTRY_ADDR_BITS: usize = 8;

/// Smallest entry-memory address width of a unit with more than 2^8 columns (as
/// [`MIN_MID_ENTRY_ADDR_BITS`]).
pub const MIN_WIDE_ENTRY_ADDR_BITS: usize = 10;

/// e_L-memory address width of a unit with `n_cols` columns: two banks (load and
/// compute overlap), so one bit more than a column needs, in three sizes: 2 × 2^7
/// words ([`SMALL_COL_ADDR_BITS`]: one iCE40 block RAM per lane), 2 × 2^8, or
/// 2 × 2^[`COL_ADDR_BITS`].
pub fn el_addr_bits(n_cols: usize) -> usize {
    if 2 * n_cols <= 1 << SMALL_COL_ADDR_BITS {
        SMALL_COL_ADDR_BITS
    } else if 2 * n_cols <= 1 << (SMALL_COL_ADDR_BITS + 1) {
        SMALL_COL_ADDR_BITS + 1
    } else {
        COL_ADDR_BITS + 1
    }
}

fn build<const EA: usize, const CA: usize>(
    programs: &[Vec<u32>],
    p: &BsbuParams,
) -> Result<String, RtlError> {
    let mut uut = Bsbu::<EA, CA>::new(programs, p.n_rows, p.n_cols, p.shift);
    uut.connect_all();
    checked_verilog("bsbu", &uut)
}

/// Emit the unit for parameters `p` with the fixed backward weight `s` stored in its
/// entry memories.
pub fn generate(p: &BsbuParams, s: &SparseSign) -> Result<Emitted, RtlError> {
    check_matches(s, p)?;
    let programs: Vec<Vec<u32>> = s
        .lane_programs(p.lanes)
        .iter()
        .map(|prog| prog.iter().map(|e| e.pack()).collect())
        .collect();
    let ea = entry_addr_bits(s, p.lanes);
    debug_assert!(ea <= MAX_ENTRY_ADDR_BITS);
    const S: usize = SMALL_COL_ADDR_BITS;
    const M: usize = SMALL_COL_ADDR_BITS + 1;
    const W: usize = COL_ADDR_BITS + 1;
    let verilog = match (el_addr_bits(p.n_cols), ea) {
        (S, 4) => build::<4, S>(&programs, p),
        (S, 5) => build::<5, S>(&programs, p),
        (S, 6) => build::<6, S>(&programs, p),
        (S, 7) => build::<7, S>(&programs, p),
        (S, 8) => build::<8, S>(&programs, p),
        (S, 9) => build::<9, S>(&programs, p),
        (S, 10) => build::<10, S>(&programs, p),
        (S, 11) => build::<11, S>(&programs, p),
        (S, 12) => build::<12, S>(&programs, p),
        (S, 13) => build::<13, S>(&programs, p),
        (S, 14) => build::<14, S>(&programs, p),
        (M, ..=MIN_MID_ENTRY_ADDR_BITS) => build::<MIN_MID_ENTRY_ADDR_BITS, M>(&programs, p),
        (M, 9) => build::<9, M>(&programs, p),
        (M, 10) => build::<10, M>(&programs, p),
        (M, 11) => build::<11, M>(&programs, p),
        (M, 12) => build::<12, M>(&programs, p),
        (M, 13) => build::<13, M>(&programs, p),
        (M, 14) => build::<14, M>(&programs, p),
        (W, ..=MIN_WIDE_ENTRY_ADDR_BITS) => build::<MIN_WIDE_ENTRY_ADDR_BITS, W>(&programs, p),
        (W, 11) => build::<11, W>(&programs, p),
        (W, 12) => build::<12, W>(&programs, p),
        (W, 13) => build::<13, W>(&programs, p),
        (W, 14) => build::<14, W>(&programs, p),
        (ca, ea) => unreachable!(
            "e_L width {ca}, entry width {ea}: check_matches bounds the columns to 2^{COL_ADDR_BITS} and a lane program to 2^{MAX_ENTRY_ADDR_BITS} entries"
        ),
    }?;
    Ok(Emitted {
        unit: "bsbu",
        verilog,
        ports: ports(),
        sidecars: Vec::new(),
    })
}
