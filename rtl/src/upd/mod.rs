//! The HDFA update unit: [`Upd`] (top), [`UpdLane`] (one lane), its register map
//! [`regs`], and [`generate`].

mod lane;
pub mod regs;
mod top;

pub use lane::{UpdLane, LANE_IN_BITS, LANE_LATENCY, LANE_OUT_BITS};
pub use top::Upd;

use contract::update::UPD_MAX_LANES;
use contract::GoldenError;
use rust_hdl::prelude::*;

use crate::{checked_verilog, Dir, Emitted, Port, RtlError};

/// The top-level ports of a unit of `lanes` lanes, clock first.
pub fn ports(lanes: usize) -> Vec<Port> {
    let p = |name, width, dir| Port { name, width, dir };
    vec![
        p("clock", 1, Dir::In),
        p("in_data", lanes * LANE_IN_BITS, Dir::In),
        p("in_valid", 1, Dir::In),
        p("in_ready", 1, Dir::Out),
        p("out_data", lanes * LANE_OUT_BITS, Dir::Out),
        p("out_valid", 1, Dir::Out),
        p("out_ready", 1, Dir::In),
        p("out_last", 1, Dir::Out),
        p("phase", 2, Dir::Out),
        p("in_last", 1, Dir::In),
        p("cfg_we", 1, Dir::In),
        p("cfg_addr", regs::CFG_ADDR_BITS, Dir::In),
        p("cfg_data", regs::CFG_DATA_BITS, Dir::In),
    ]
}

fn build<const IW: usize, const OW: usize>(lanes: usize) -> Result<String, RtlError> {
    let mut uut = Upd::<IW, OW>::new(lanes);
    uut.connect_all();
    checked_verilog("upd", &uut)
}

/// The unit of `lanes` (1..=8) lanes.
pub fn generate(lanes: usize) -> Result<Emitted, RtlError> {
    if !(1..=UPD_MAX_LANES).contains(&lanes) {
        return Err(
            GoldenError::out_of_range("lanes", lanes, format!("1..={UPD_MAX_LANES}")).into(),
        );
    }
    const I: usize = LANE_IN_BITS;
    const O: usize = LANE_OUT_BITS;
    let verilog = match lanes {
        1 => build::<I, O>(1),
        2 => build::<{ 2 * I }, { 2 * O }>(2),
        3 => build::<{ 3 * I }, { 3 * O }>(3),
        4 => build::<{ 4 * I }, { 4 * O }>(4),
        5 => build::<{ 5 * I }, { 5 * O }>(5),
        6 => build::<{ 6 * I }, { 6 * O }>(6),
        7 => build::<{ 7 * I }, { 7 * O }>(7),
        _ => build::<{ 8 * I }, { 8 * O }>(8),
    }?;
    Ok(Emitted {
        unit: "upd",
        verilog,
        ports: ports(lanes),
        sidecars: vec![
            ("_regs.json", regs::regmap_json(lanes)),
            ("_regs.h", regs::regmap_c_header(lanes)),
        ],
    })
}
