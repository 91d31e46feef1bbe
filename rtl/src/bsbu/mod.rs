//! The binary sparse backward-weight unit: [`Bsbu`] (top), [`BsbuLane`] (one lane),
//! and [`generate`], which turns validated parameters and a golden matrix into Verilog.

mod lane;
mod top;

pub use lane::BsbuLane;
pub use top::Bsbu;

use contract::bsbu::{check_matches, SparseSign};
use contract::params::{BsbuParams, MAX_ENTRY_ADDR_BITS};
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

fn build<const EA: usize>(programs: &[Vec<u32>], p: &BsbuParams) -> Result<String, RtlError> {
    let mut uut = Bsbu::<EA>::new(programs, p.n_rows, p.n_cols, p.shift);
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
    let verilog = match ea {
        4 => build::<4>(&programs, p),
        5 => build::<5>(&programs, p),
        6 => build::<6>(&programs, p),
        7 => build::<7>(&programs, p),
        8 => build::<8>(&programs, p),
        9 => build::<9>(&programs, p),
        10 => build::<10>(&programs, p),
        11 => build::<11>(&programs, p),
        12 => build::<12>(&programs, p),
        _ => {
            unreachable!("check_matches bounds the lane program to 2^{MAX_ENTRY_ADDR_BITS} entries")
        }
    }?;
    Ok(Emitted {
        unit: "bsbu",
        verilog,
        ports: ports(),
        sidecars: Vec::new(),
    })
}
