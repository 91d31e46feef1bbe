//! # sim: co-simulation of emitted Verilog against the golden model
//!
//! Main types:
//! - [`verilator::VerilatorModel`]: a Verilated design loaded at run time through our
//!   own generated C++ shim and `libloading`; builds are cached by a content hash
//!   (Verilog + shim + flags + Verilator version) under a file lock.
//! - [`stream::StreamVectors`] / [`stream::run_verilator`] / [`icarus::run_icarus`]:
//!   drive a valid/ready stream unit with the same seeded LFSR stall pattern on both
//!   simulators and compare every output word; [`stream::Mismatch`] names the unit,
//!   configuration, vector, row, lane, cycle and the expected and actual value, and
//!   points at a waveform.
//! - [`tool`]: finding and running external tools, keeping their output on failure.
//! - [`lint::lint`]: `verilator --lint-only -Wall` with the documented waivers.

pub mod hash;
pub mod icarus;
pub mod lint;
pub mod stream;
pub mod tool;
pub mod verilator;

use thiserror::Error;

/// Errors of the co-simulation layer.
#[derive(Debug, Error)]
pub enum SimError {
    /// An external tool is not installed.
    #[error("{tool} not found on PATH; install it with: {install}")]
    ToolMissing {
        /// The tool.
        tool: &'static str,
        /// The command that installs it.
        install: &'static str,
    },
    /// An external tool failed; its output is kept.
    #[error("{tool} failed ({status}) running `{cmd}`\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")]
    ToolFailed {
        /// The tool.
        tool: &'static str,
        /// The command line.
        cmd: String,
        /// Exit status.
        status: String,
        /// Its stdout.
        stdout: String,
        /// Its stderr.
        stderr: String,
    },
    /// File system trouble.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Loading the Verilated shared library failed.
    #[error("loading {path}: {msg}")]
    Load {
        /// Library path.
        path: String,
        /// The loader's message.
        msg: String,
    },
    /// A port the harness needs is missing from the design.
    #[error("design {unit} has no port {port}")]
    NoPort {
        /// The unit.
        unit: &'static str,
        /// The port.
        port: &'static str,
    },
    /// The design stopped making progress.
    #[error("{sim}: {unit} did not finish within {cycles} cycles ({got} of {want} output words); waveform: {wave}")]
    Timeout {
        /// The simulator.
        sim: &'static str,
        /// The unit.
        unit: &'static str,
        /// Cycle budget.
        cycles: u64,
        /// Words received.
        got: usize,
        /// Words expected.
        want: usize,
        /// Waveform path.
        wave: String,
    },
    /// Lint found warnings outside the waiver list.
    #[error("verilator lint of {unit} is not clean:\n{report}")]
    Lint {
        /// The unit.
        unit: &'static str,
        /// Verilator's report.
        report: String,
    },
    /// Simulator output we could not understand.
    #[error("{sim}: unexpected output: {msg}")]
    Protocol {
        /// The simulator.
        sim: &'static str,
        /// What was wrong.
        msg: String,
    },
}

/// Shorthand for an I/O error with its path.
pub(crate) fn io_err(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> SimError {
    let path = path.display().to_string();
    move |source| SimError::Io { what, path, source }
}
