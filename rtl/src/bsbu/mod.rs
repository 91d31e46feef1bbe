//! The binary sparse backward-weight unit: [`Bsbu`] (top), [`BsbuLane`] (one lane),
//! its register map [`regs`], and the generators: [`generate`] turns validated
//! parameters and a golden matrix into a stored-weight unit (S in the lanes' ROMs),
//! [`generate_gen`] into a generator-mode unit (S regenerated from a seed; no weight
//! bit stored).

mod lane;
pub mod regs;
mod top;

pub use lane::{BsbuLane, GenWalk};
pub use top::Bsbu;

use contract::bsbu::{check_matches, SparseSign};
use contract::params::check_dims;
use contract::params::{BsbuParams, COL_ADDR_BITS, MAX_ENTRY_ADDR_BITS, SMALL_COL_ADDR_BITS};
use rust_hdl::prelude::*;

use crate::{checked_verilog, Dir, Emitted, Port, RtlError};

/// Smallest entry-memory address width generated (16 words).
pub const MIN_ENTRY_ADDR_BITS: usize = 4;

/// The top-level ports of the unit, clock first: the stream ports and the
/// configuration port.
pub fn ports() -> Vec<Port> {
    let mut v = crate::stream_ports();
    let p = |name, width, dir| Port { name, width, dir };
    v.extend([
        p("cfg_we", 1, Dir::In),
        p("cfg_addr", regs::CFG_ADDR_BITS, Dir::In),
        p("cfg_data", regs::CFG_DATA_BITS, Dir::In),
        p("rd_err", top::RD_BITS, Dir::Out),
        p("rd_w", top::RD_BITS, Dir::Out),
    ]);
    v
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
    generated: bool,
) -> Result<String, RtlError> {
    let mut uut = Bsbu::<EA, CA>::new(programs, p.n_rows, p.n_cols, p.shift, generated);
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
    let verilog = dispatch(&programs, p, ea, false)?;
    Ok(emitted(p, verilog, false))
}

/// Build the unit with the const widths its e_L (from `p.n_cols`) and entry
/// addresses (`ea` bits) need: the one place that maps run-time widths to the
/// const-generic [`Bsbu`] (each arm is a monomorph, so the arms are few).
fn dispatch(
    programs: &[Vec<u32>],
    p: &BsbuParams,
    ea: usize,
    generated: bool,
) -> Result<String, RtlError> {
    const S: usize = SMALL_COL_ADDR_BITS;
    const M: usize = SMALL_COL_ADDR_BITS + 1;
    const W: usize = COL_ADDR_BITS + 1;
    let g = generated;
    match (el_addr_bits(p.n_cols), ea) {
        (S, ..=4) => build::<4, S>(programs, p, g),
        (S, 5) => build::<5, S>(programs, p, g),
        (S, 6) => build::<6, S>(programs, p, g),
        (S, 7) => build::<7, S>(programs, p, g),
        (S, 8) => build::<8, S>(programs, p, g),
        (S, 9) => build::<9, S>(programs, p, g),
        (S, 10) => build::<10, S>(programs, p, g),
        (S, 11) => build::<11, S>(programs, p, g),
        (S, 12) => build::<12, S>(programs, p, g),
        (S, 13) => build::<13, S>(programs, p, g),
        (S, 14) => build::<14, S>(programs, p, g),
        (M, ..=MIN_MID_ENTRY_ADDR_BITS) => build::<MIN_MID_ENTRY_ADDR_BITS, M>(programs, p, g),
        (M, 9) => build::<9, M>(programs, p, g),
        (M, 10) => build::<10, M>(programs, p, g),
        (M, 11) => build::<11, M>(programs, p, g),
        (M, 12) => build::<12, M>(programs, p, g),
        (M, 13) => build::<13, M>(programs, p, g),
        (M, 14) => build::<14, M>(programs, p, g),
        (W, ..=MIN_WIDE_ENTRY_ADDR_BITS) => build::<MIN_WIDE_ENTRY_ADDR_BITS, W>(programs, p, g),
        (W, 11) => build::<11, W>(programs, p, g),
        (W, 12) => build::<12, W>(programs, p, g),
        (W, 13) => build::<13, W>(programs, p, g),
        (W, 14) => build::<14, W>(programs, p, g),
        (ca, ea) => unreachable!(
            "e_L width {ca}, entry width {ea}: check_matches bounds the columns to 2^{COL_ADDR_BITS} and a lane program to 2^{MAX_ENTRY_ADDR_BITS} entries"
        ),
    }
}

fn emitted(p: &BsbuParams, verilog: String, generated: bool) -> Emitted {
    Emitted {
        unit: "bsbu",
        verilog,
        ports: ports(),
        sidecars: vec![
            (
                "_regs.json",
                regs::regmap_json(p.lanes, p.n_rows, p.n_cols, generated),
            ),
            (
                "_regs.h",
                regs::regmap_c_header(p.lanes, p.n_rows, p.n_cols, generated),
            ),
        ],
    }
}

/// Emit a generator-mode unit for parameters `p`: no entry memory, S regenerated
/// from the registers SEED, ROW_BASE and THRESH ([`contract::bsbu::BsbuGen`]), so one
/// unit runs any `p.n_rows` × `p.n_cols` tile of any generated matrix with the scaling
/// shift `p.shift`.
pub fn generate_gen(p: &BsbuParams) -> Result<Emitted, RtlError> {
    check_dims(p.n_rows, p.n_cols)?;
    // No entry memory: the narrowest entry width (its one-word ROM is pruned).
    let programs = vec![Vec::new(); p.lanes];
    let verilog = dispatch(&programs, p, MIN_ENTRY_ADDR_BITS, true)?;
    Ok(emitted(p, verilog, true))
}
