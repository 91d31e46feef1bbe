//! The stream harness shared by both simulators.
//!
//! A unit under test has the ports `clock`, `in_data`/`in_valid`/`in_ready`,
//! `out_data`/`out_valid`/`out_ready` and `phase`. Optional ports: `cfg_we`/
//! `cfg_addr`/`cfg_data` (the [`StreamVectors::setup`] writes, one per cycle, before
//! the stream starts; these cycles are not counted), `in_last` (driven from
//! [`StreamVectors::in_last`]), `rd_err`/`rd_w` (counted as memory traffic) and
//! `len_err` (reported when it ever goes high). Each cycle the harness
//! 1. steps a 16-bit Galois LFSR (taps 0xB400) and from it decides `in_valid`
//!    (while input words remain) and `out_ready`, so both streams see stalls and
//!    backpressure;
//! 2. settles the design, samples both handshakes and compares a fired output word
//!    with the expected one;
//! 3. gives one rising clock edge.
//!
//! The Icarus testbench ([`crate::icarus`]) runs exactly the same protocol, so both
//! simulators must agree with the golden model word for word *and* on the cycle count.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use golden::format::Format;
use rtl::Emitted;

use crate::verilator::{self, VerilatorModel};
use crate::SimError;

/// LFSR seed of the stall pattern.
pub const LFSR_SEED: u16 = 0xACE1;

/// One step of the stall-pattern LFSR.
#[inline]
pub fn lfsr_step(x: u16) -> u16 {
    (x >> 1) ^ ((x & 1).wrapping_neg() & 0xB400)
}

/// Stall pattern: a stream is gated off in the cycles where `lfsr & mask == 0`
/// (input: low byte, output: high byte); a mask of 0 never stalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    /// Mask on the LFSR's low byte for `in_valid`.
    pub in_mask: u16,
    /// Mask on the LFSR's high byte for `out_ready`.
    pub out_mask: u16,
}

impl Stall {
    /// No stalls: both streams at full rate (throughput and utilization runs).
    pub const NONE: Stall = Stall {
        in_mask: 0,
        out_mask: 0,
    };
    /// Each stream is off in about 1 of 8 cycles.
    pub const SOME: Stall = Stall {
        in_mask: 0x07,
        out_mask: 0x07,
    };

    /// Whether the input offers a word under LFSR state `l`.
    #[inline]
    pub fn in_on(self, l: u16) -> bool {
        self.in_mask == 0 || (l & self.in_mask) != 0
    }

    /// Whether the output accepts a word under LFSR state `l`.
    #[inline]
    pub fn out_on(self, l: u16) -> bool {
        self.out_mask == 0 || ((l >> 8) & self.out_mask) != 0
    }
}

/// Stimulus and expected response of a stream unit.
#[derive(Clone, Debug)]
pub struct StreamVectors {
    /// Unit name for reports.
    pub unit: &'static str,
    /// Configuration text for reports (lanes, sizes, sparsity, seed, ...).
    pub config: String,
    /// Input words, all vectors back to back (raw, `in_bits` wide).
    pub input: Vec<u64>,
    /// Width of an input word.
    pub in_bits: u32,
    /// Expected output words (raw signed values in `out_format`).
    pub expected: Vec<i64>,
    /// Output words per vector (rows).
    pub out_per_vector: usize,
    /// Lanes, to name the lane of a row: (row / lane_stride) mod lanes.
    pub lanes: usize,
    /// Consecutive rows computed by one lane (1 for the backward-weight unit, H·W for
    /// the conv engine, whose lanes own whole channels).
    pub lane_stride: usize,
    /// Format of an output word.
    pub out_format: Format,
    /// Cycles without any handshake after which the run counts as hung.
    pub idle_limit: u64,
    /// Configuration writes (address, data) before the stream (empty: none).
    pub setup: Vec<(u32, u32)>,
    /// `in_last` per input word (empty: the unit has no `in_last`).
    pub in_last: Vec<bool>,
}

/// The first wrong output word, located.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// Simulator.
    pub sim: &'static str,
    /// Unit.
    pub unit: &'static str,
    /// Configuration.
    pub config: String,
    /// Output word index over the whole run.
    pub index: usize,
    /// Vector index.
    pub vector: usize,
    /// Row within the vector.
    pub row: usize,
    /// Lane that computed the row.
    pub lane: usize,
    /// Cycle of the handshake.
    pub cycle: u64,
    /// Expected raw value.
    pub expected: i64,
    /// Actual raw value.
    pub actual: i64,
    /// Output format (for hex and real).
    pub format: Format,
    /// Waveform written for the failing run.
    pub waveform: Option<PathBuf>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MISMATCH [{}] unit {} ({}): vector {}, row {}, lane {}, cycle {}: expected {}, actual {}",
            self.sim,
            self.unit,
            self.config,
            self.vector,
            self.row,
            self.lane,
            self.cycle,
            self.format.show(self.expected),
            self.format.show(self.actual)
        )?;
        if let Some(w) = &self.waveform {
            write!(f, "; waveform: {}", w.display())?;
        }
        Ok(())
    }
}

/// Result of one simulator run.
#[derive(Clone, Debug)]
pub struct RunStats {
    /// Simulator.
    pub sim: &'static str,
    /// Clock cycles simulated.
    pub cycles: u64,
    /// Cycles spent in each phase (LOAD, START, COMPUTE, DRAIN).
    pub phase_cycles: [u64; 4],
    /// Output words compared.
    pub outputs: usize,
    /// Wrong output words.
    pub mismatches: usize,
    /// The first wrong word.
    pub first: Option<Mismatch>,
    /// Wall time of the simulation itself (without builds).
    pub sim_seconds: f64,
    /// Wall time of the build (0 when cached).
    pub build_seconds: f64,
    /// Cycles with `rd_err` high (buffer error words read) and with `rd_w` high
    /// (weight words read); zero for units without these ports.
    pub traffic: [u64; 2],
    /// `len_err` was high at some cycle.
    pub len_err: bool,
    /// Input words taken (handshakes on the input stream).
    pub inputs: u64,
}

impl RunStats {
    /// Simulated cycles per wall-clock second.
    pub fn cycles_per_second(&self) -> f64 {
        self.cycles as f64 / self.sim_seconds.max(1e-9)
    }
}

impl StreamVectors {
    /// Locate output word `index`.
    pub fn mismatch(&self, sim: &'static str, index: usize, cycle: u64, actual: i64) -> Mismatch {
        let row = index % self.out_per_vector;
        Mismatch {
            sim,
            unit: self.unit,
            config: self.config.clone(),
            index,
            vector: index / self.out_per_vector,
            row,
            lane: (row / self.lane_stride.max(1)) % self.lanes.max(1),
            cycle,
            expected: self.expected[index],
            actual,
            format: self.out_format,
            waveform: None,
        }
    }
}

struct Ports {
    clock: u32,
    in_data: u32,
    in_valid: u32,
    in_ready: u32,
    out_data: u32,
    out_valid: u32,
    out_ready: u32,
    phase: u32,
}

fn run_model(
    m: &mut VerilatorModel,
    v: &StreamVectors,
    stall: Stall,
    stop_after: Option<u64>,
) -> Result<RunStats, SimError> {
    let unit = v.unit;
    let p = Ports {
        clock: m.port("clock", unit)?,
        in_data: m.port("in_data", unit)?,
        in_valid: m.port("in_valid", unit)?,
        in_ready: m.port("in_ready", unit)?,
        out_data: m.port("out_data", unit)?,
        out_valid: m.port("out_valid", unit)?,
        out_ready: m.port("out_ready", unit)?,
        phase: m.port("phase", unit)?,
    };
    let opt = |name| m.port(name, unit).ok();
    let cfg_we = opt("cfg_we");
    let (in_last, rd_err, rd_w, len_err) =
        (opt("in_last"), opt("rd_err"), opt("rd_w"), opt("len_err"));
    if !v.setup.is_empty() && cfg_we.is_none() {
        return Err(SimError::NoPort {
            unit,
            port: "cfg_we",
        });
    }
    if !v.in_last.is_empty() && in_last.is_none() {
        return Err(SimError::NoPort {
            unit,
            port: "in_last",
        });
    }
    let t0 = Instant::now();
    // Evaluate once with clock = 0 before the first rising edge.
    m.set(p.clock, 0);
    m.set(p.in_valid, 0);
    m.set(p.out_ready, 0);
    m.eval();
    if cfg_we.is_some() {
        configure(m, &v.setup, unit)?;
    }
    let mut stats = RunStats {
        sim: "verilator",
        cycles: 0,
        phase_cycles: [0; 4],
        outputs: 0,
        mismatches: 0,
        first: None,
        sim_seconds: 0.0,
        build_seconds: 0.0,
        traffic: [0; 2],
        len_err: false,
        inputs: 0,
    };
    let (mut si, mut oi, mut lfsr, mut idle) = (0usize, 0usize, LFSR_SEED, 0u64);
    let mut cycle = 0u64;
    while oi < v.expected.len() {
        lfsr = lfsr_step(lfsr);
        let in_valid = si < v.input.len() && stall.in_on(lfsr);
        let out_ready = stall.out_on(lfsr);
        m.set(p.in_valid, in_valid as u64);
        m.set(p.in_data, if si < v.input.len() { v.input[si] } else { 0 });
        m.set(p.out_ready, out_ready as u64);
        if let Some(l) = in_last {
            m.set(l, v.in_last.get(si).copied().unwrap_or(false) as u64);
        }
        m.eval();
        if let Some(r) = rd_err {
            stats.traffic[0] += m.get(r) & 1;
        }
        if let Some(r) = rd_w {
            stats.traffic[1] += m.get(r) & 1;
        }
        if let Some(r) = len_err {
            stats.len_err |= m.get(r) & 1 != 0;
        }
        m.dump(2 * cycle);
        let in_fire = in_valid && m.get(p.in_ready) != 0;
        let out_fire = out_ready && m.get(p.out_valid) != 0;
        stats.phase_cycles[(m.get(p.phase) & 3) as usize] += 1;
        if out_fire {
            let actual = v.out_format.sign_extend(m.get(p.out_data));
            if actual != v.expected[oi] {
                stats.mismatches += 1;
                if stats.first.is_none() {
                    stats.first = Some(v.mismatch("verilator", oi, cycle, actual));
                }
            }
            oi += 1;
        }
        m.set(p.clock, 1);
        m.eval();
        m.dump(2 * cycle + 1);
        m.set(p.clock, 0);
        if in_fire {
            si += 1;
        }
        idle = if in_fire || out_fire { 0 } else { idle + 1 };
        cycle += 1;
        if stop_after.is_some_and(|s| cycle > s) {
            break;
        }
        if idle > v.idle_limit {
            stats.cycles = cycle;
            stats.outputs = oi;
            return Err(SimError::Timeout {
                sim: "verilator",
                unit,
                cycles: cycle,
                got: oi,
                want: v.expected.len(),
                wave: "(rerun with a waveform: hdfa cosim --wave)".into(),
            });
        }
    }
    stats.cycles = cycle;
    stats.outputs = oi;
    stats.inputs = si as u64;
    stats.sim_seconds = t0.elapsed().as_secs_f64();
    Ok(stats)
}

/// Apply configuration writes (address, data) to `m`'s `cfg_we`/`cfg_addr`/`cfg_data`,
/// one per clock edge, then drop `cfg_we`. The clock must be low.
pub fn configure(
    m: &mut VerilatorModel,
    setup: &[(u32, u32)],
    unit: &'static str,
) -> Result<(), SimError> {
    let (clock, we, a, d) = (
        m.port("clock", unit)?,
        m.port("cfg_we", unit)?,
        m.port("cfg_addr", unit)?,
        m.port("cfg_data", unit)?,
    );
    for &(addr, data) in setup {
        m.set(we, 1);
        m.set(a, addr as u64);
        m.set(d, data as u64);
        m.eval();
        m.set(clock, 1);
        m.eval();
        m.set(clock, 0);
    }
    m.set(we, 0);
    m.eval();
    Ok(())
}

/// Run `v` through Verilator. On a mismatch the run is repeated with an FST
/// waveform up to 16 cycles past the first wrong word, written into `wave_dir`.
pub fn run_verilator(
    design: &Emitted,
    v: &StreamVectors,
    stall: Stall,
    cache: &Path,
    wave_dir: &Path,
) -> Result<RunStats, SimError> {
    let build = verilator::build(design, cache)?;
    let mut m = VerilatorModel::load(&build, &design.ports)?;
    let mut stats = run_model(&mut m, v, stall, None)?;
    stats.build_seconds = build.seconds;
    if let Some(first) = stats.first.as_mut() {
        std::fs::create_dir_all(wave_dir).map_err(crate::io_err("creating", wave_dir))?;
        let wave = wave_dir.join(format!("{}_verilator_mismatch.fst", v.unit));
        let mut m2 = VerilatorModel::load(&build, &design.ports)?;
        m2.trace_to(&wave)?;
        run_model(&mut m2, v, stall, Some(first.cycle + 16))?;
        m2.trace_close();
        first.waveform = Some(wave);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfsr_has_full_period() {
        let mut x = LFSR_SEED;
        let mut n = 0u32;
        loop {
            x = lfsr_step(x);
            n += 1;
            if x == LFSR_SEED {
                break;
            }
        }
        assert_eq!(n, 65535);
    }
}
