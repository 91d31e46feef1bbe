//! # rtl: Verilog generators for the HDFA training hardware (rust-hdl)
//!
//! This is the only crate that uses rust-hdl. Bit widths come from the hardware contract's formats
//! and limits, by construction; there is no second definition here.
//!
//! Main types:
//! - [`bsbu::Bsbu`]: the binary sparse backward-weight unit (P lanes, zero skipping,
//!   valid/ready streams), built by [`bsbu::generate`] into an [`Emitted`] design.
//! - [`bsbu::BsbuLane`]: its lane; [`narrow::Narrow`]: the round/saturate step every
//!   unit shares, registered for a fast clock as [`narrow_pipe::NarrowPipe`] (shift
//!   fixed at generation) and [`narrow_rt::NarrowRt`] (run-time shift);
//!   [`pipe_mul::PipeMul`]: the bsbu's pipelined f' multiply; [`out_stage::OutStage`]: the output stage (fetch pipeline, output
//!   register, valid/ready, `out_last`) every unit shares.
//! - [`dce::Dce`]: the dilated-conv error-propagation engine (D2, shuffle, dilated D1,
//!   ReLU mask; P lanes; run-time layer configuration), built by [`dce::generate`].
//! - [`upd::Upd`]: the HDFA update unit (Algorithm 1's BP and DFA steps, P weights per
//!   cycle; θ, v_bp, v_dfa in, updated out), built by [`upd::generate`]; its leaves
//!   [`coef_mul::CoefMul`] (c·m rounded), [`sat_add::SatAdd`] and [`delay::Delay`].
//! - [`Emitted`]: Verilog text plus the top module's port list, which the co-simulation
//!   uses to build its FFI shim.
//! - [`LINT_WAIVERS`]: the documented Verilator lint waivers.

/// `with_defaults!(Ty { field: value, .. } defaults: a, b, ..)`: a block whose
/// listed signals, registers and locals start from `Default::default()` (most of a
/// rust-hdl block's fields have no other initial value).
macro_rules! with_defaults {
    ($ty:ident { $($f:ident : $v:expr),* $(,)? } defaults: $($d:ident),* $(,)?) => {
        $ty { $($f: $v,)* $($d: Default::default(),)* }
    };
}

pub mod bsbu;
pub mod coef_mul;
pub mod dce;
pub mod delay;
pub mod fbgen;
pub mod narrow;
pub mod narrow_pipe;
pub mod narrow_rt;
pub mod out_stage;
pub mod pipe_mul;
pub mod sat_add;
pub mod upd;

use thiserror::Error;

/// Errors of the generators.
#[derive(Debug, Error)]
pub enum RtlError {
    /// Invalid parameters or matrix (from the golden model's checks).
    #[error(transparent)]
    Golden(#[from] contract::GoldenError),
    /// rust-hdl's structural checks failed (undriven input, logic loop, ...).
    #[error("rust-hdl check failed for {unit}: {msg}")]
    Check {
        /// The unit being generated.
        unit: &'static str,
        /// rust-hdl's message.
        msg: String,
    },
}

/// Direction of a top-level port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Driven by the testbench.
    In,
    /// Driven by the design.
    Out,
}

/// One top-level port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Verilog name.
    pub name: &'static str,
    /// Width in bits (a port wider than 64 bits is driven and read 32 bits at a
    /// time).
    pub width: usize,
    /// Direction.
    pub dir: Dir,
}

/// A generated design: Verilog text with top module `top`, and its ports.
#[derive(Clone, Debug)]
pub struct Emitted {
    /// Short unit name (`bsbu`, ...), used in file names and reports.
    pub unit: &'static str,
    /// The Verilog source; the top module is named `top`.
    pub verilog: String,
    /// The top module's ports, clock first.
    pub ports: Vec<Port>,
    /// Files that belong beside the Verilog: (file-name suffix, text), e.g. the
    /// register map as `_regs.json` and `_regs.h`.
    pub sidecars: Vec<(&'static str, String)>,
}

impl Emitted {
    /// Index of a port by name (the FFI shim addresses ports by this index).
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }
}

/// The ports every stream unit has, clock first: the valid/ready input and output
/// streams (16-bit words in the error format), `out_last` and the 2-bit `phase`.
pub(crate) fn stream_ports() -> Vec<Port> {
    use contract::format::ERROR_BITS;
    let p = |name, width, dir| Port { name, width, dir };
    vec![
        p("clock", 1, Dir::In),
        p("in_data", ERROR_BITS, Dir::In),
        p("in_valid", 1, Dir::In),
        p("in_ready", 1, Dir::Out),
        p("out_data", ERROR_BITS, Dir::Out),
        p("out_valid", 1, Dir::Out),
        p("out_ready", 1, Dir::In),
        p("out_last", 1, Dir::Out),
        p("phase", 2, Dir::Out),
    ]
}

/// The value of a `Signed<N>` (N ≤ 64) as i64: the Rust models of the hand-written
/// leaves read their inputs with it.
pub(crate) fn signed_value<const N: usize>(x: rust_hdl::prelude::Signed<N>) -> i64 {
    let raw = x.inner().to_u64() as i64;
    (raw << (64 - N)) >> (64 - N)
}

/// Verilator lint warnings we waive for rust-hdl output, each with its reason.
/// Everything else under `verilator --lint-only -Wall` must be clean.
pub const LINT_WAIVERS: &[(&str, &str)] = &[
    ("WIDTH", "rust-hdl writes integer literals as 32-bit constants (`32'h0`) and widens with `$signed(x)` inside wider sums; the co-simulation against the golden model on two simulators covers what this hides"),
    ("DECLFILENAME", "rust-hdl emits every module into one file whose name is not the module name"),
    ("UNUSEDSIGNAL", "rust-hdl declares the full width of shared ports and sliced words (e.g. a ROM word's unused bits and upper counter bits)"),
    ("UNOPTFLAT", "rust-hdl emits a block's whole update as one always @(*) block, so a top level that drives the shared output stage's inputs and reads its outputs (advance, sel, done: functions of registers and out_ready only) forms a loop at block granularity, not at signal level; rust-hdl's check_all rejects real combinational loops before any Verilog is emitted, and Verilator and Icarus agree on every cycle"),
];

/// Run rust-hdl's structural checks (instead of its panicking `generate_verilog`).
pub(crate) fn checked_verilog<U: rust_hdl::prelude::Block>(
    unit: &'static str,
    uut: &U,
) -> Result<String, RtlError> {
    rust_hdl::prelude::check_all(uut).map_err(|e| RtlError::Check {
        unit,
        msg: format!("{e:?}"),
    })?;
    Ok(rust_hdl::prelude::generate_verilog_unchecked(uut))
}
