//! The dilated-conv error-propagation engine (paper eq. 7): [`Dce`] (top),
//! [`DceLane`] (one output channel's accumulator), [`crate::narrow::Narrow`]
//! (round/saturate), [`DceMem`] (a memory of generation-time depth), the register map
//! [`regs`] (emitted beside the Verilog as JSON and a C header), and [`generate`].
//!
//! Generation time fixes the lane count P and the buffer sizes ([`DceSizes`]); the
//! layer (channels, map, k, d, G, shifts, weights) is configured at run time through
//! the register port, so one build runs every layer that fits.

mod lane;
mod mem;
pub mod regs;
mod top;

pub use lane::DceLane;
pub use mem::DceMem;
pub use top::Dce;

use contract::dce::{DceSizes, ADDR_BITS};
use rust_hdl::prelude::*;

use crate::{checked_verilog, Dir, Emitted, Port, RtlError};
use regs::{CFG_ADDR_BITS, CFG_DATA_BITS};

/// The top-level ports of the engine, clock first: the stream ports, then the
/// length check, the configuration port and the traffic strobes.
pub fn ports() -> Vec<Port> {
    let p = |name, width, dir| Port { name, width, dir };
    let mut v = crate::stream_ports();
    v.extend([
        p("in_last", 1, Dir::In),
        p("len_err", 1, Dir::Out),
        p("cfg_we", 1, Dir::In),
        p("cfg_addr", CFG_ADDR_BITS, Dir::In),
        p("cfg_data", CFG_DATA_BITS, Dir::In),
        p("rd_err", 1, Dir::Out),
        p("rd_w", 1, Dir::Out),
    ]);
    v
}

/// Emit an engine with the generation-time `sizes`.
pub fn generate(sizes: &DceSizes) -> Result<Emitted, RtlError> {
    sizes.validate()?;
    debug_assert!(ADDR_BITS == 16);
    let mut uut = Dce::new(sizes);
    uut.connect_all();
    let verilog = checked_verilog("dce", &uut)?;
    Ok(Emitted {
        unit: "dce",
        verilog,
        ports: ports(),
        sidecars: vec![
            ("_regs.json", regs::regmap_json(sizes)),
            ("_regs.h", regs::regmap_c_header(sizes)),
        ],
    })
}
