//! The stream harness shared by both simulators.
//!
//! A unit under test has the ports `clock`, `in_data`/`in_valid`/`in_ready`,
//! `out_data`/`out_valid`/`out_ready`/`out_last` and `phase`, plus the extra ports its
//! [`StreamVectors::ports`] lists (a listed port that is missing is an error, never
//! silently skipped): `cfg_we`/`cfg_addr`/`cfg_data` (each [`Pass::setup`]'s writes,
//! one per clock edge, uncounted), `in_last` (driven from [`Pass::in_last`]),
//! `rd_err`/`rd_w` (memory traffic: their values summed over the cycles) and `len_err` (checked after every pass
//! that has a [`Pass::len_err`]).
//!
//! The run is a list of [`Pass`]es, one per vector, all on one model instance. A
//! pass's configuration writes go in once every earlier output word has left (the
//! unit is idle); passes without writes stream back to back. Each counted cycle the
//! harness
//! 1. steps a 16-bit Galois LFSR (taps 0xB400) and from it decides `in_valid` (while
//!    input words remain) and `out_ready`, so both streams see stalls and backpressure;
//! 2. settles the design, samples both handshakes and checks a fired output word: its
//!    data (unless the pass is not compared), its `out_last` (high exactly on a pass's
//!    last word) and, on a pass's last word, `len_err`;
//! 3. gives one rising clock edge.
//!
//! After the last expected word the harness keeps clocking for the idle limit with no
//! input and fails on any further `out_valid`; then the input handshakes must equal
//! the input words. These tail cycles are not counted.
//!
//! The Icarus testbench ([`crate::icarus`]) runs exactly the same protocol, so both
//! simulators must agree with the golden model word for word *and* on the cycle count.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use contract::format::Format;
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

/// One vector's pass through the unit.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// Where the vector came from (a corner's name, `random 17`, `step 42 sample 1`).
    pub tag: String,
    /// Configuration writes (address, data) applied before the pass's first input
    /// word, once every earlier output word has left.
    pub setup: Vec<(u32, u32)>,
    /// Input words (raw, `in_bits` wide).
    pub input: Vec<u64>,
    /// `in_last` per input beat (empty: held low).
    pub in_last: Vec<bool>,
    /// Expected output words (raw signed values in `out_format`). Their number is
    /// always checked (through `out_last`); their values only when `compare` is set.
    pub expected: Vec<i64>,
    /// Compare the words (off for a deliberately malformed input stream, whose
    /// output is undefined).
    pub compare: bool,
    /// `len_err` expected when the pass's last word leaves (None: not checked).
    pub len_err: Option<bool>,
    /// Consecutive output rows computed by one lane (1 for the backward-weight unit,
    /// H·W for the conv engine, whose lanes own whole channels), to name a row's lane.
    pub lane_stride: usize,
}

/// Stimulus and expected response of a stream unit.
#[derive(Clone, Debug)]
pub struct StreamVectors {
    /// Unit name for reports.
    pub unit: &'static str,
    /// Configuration text for reports (lanes, sizes, sparsity, seed, ...).
    pub config: String,
    /// The passes, in order, on one model instance.
    pub passes: Vec<Pass>,
    /// Width of an input word.
    pub in_bits: u32,
    /// Input words per beat (one handshake): word k of a beat sits in bits
    /// k·in_bits.. of `in_data` (1 for the bsbu and the dce; 4·P for the update unit).
    pub in_fields: usize,
    /// Output words per beat, word k in bits k·(out_format.bits).. of `out_data`.
    pub out_fields: usize,
    /// Names of the consecutive output words of one lane (`theta`, `v_bp`, `v_dfa`),
    /// for reports: row r is word r mod len of lane (r / lane_stride) mod lanes. Empty:
    /// unnamed.
    pub field_names: &'static [&'static str],
    /// Lanes, to name the lane of a row: (row / lane_stride) mod lanes.
    pub lanes: usize,
    /// Format of an output word.
    pub out_format: Format,
    /// Cycles without any handshake after which the run counts as hung; also the
    /// length of the silent tail checked after the last word.
    pub idle_limit: u64,
    /// Ports the unit must have beyond the stream ports (`cfg_we`, `cfg_addr`,
    /// `cfg_data`, `in_last`, `len_err`, `rd_err`, `rd_w`).
    pub ports: &'static [&'static str],
}

/// Which check a wrong word failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `out_data` differs from the golden word.
    Data,
    /// `out_last` is not high exactly on a pass's last word.
    Last,
    /// `len_err` after a pass differs from the expectation.
    LenErr,
    /// `out_valid` rose after the last expected word.
    Trailing,
    /// The input handshakes differ from the input words.
    Inputs,
}

impl Check {
    /// Short name (the Icarus testbench prints it).
    pub fn name(self) -> &'static str {
        match self {
            Check::Data => "data",
            Check::Last => "last",
            Check::LenErr => "len_err",
            Check::Trailing => "trailing",
            Check::Inputs => "inputs",
        }
    }

    /// Every check, in code order: the Icarus testbench reports a failed check as
    /// its index here.
    pub const ALL: [Check; 5] = [
        Check::Data,
        Check::Last,
        Check::LenErr,
        Check::Trailing,
        Check::Inputs,
    ];

    /// The check's code in the Icarus testbench (its index in [`Check::ALL`]).
    pub fn code(self) -> usize {
        Check::ALL
            .iter()
            .position(|&c| c == self)
            .expect("every check is listed")
    }
}

/// The first wrong output, located.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// Simulator.
    pub sim: &'static str,
    /// Unit.
    pub unit: &'static str,
    /// Configuration.
    pub config: String,
    /// Which check failed.
    pub check: Check,
    /// Output word index over the whole run.
    pub index: usize,
    /// Vector (pass) index.
    pub vector: usize,
    /// Where the vector came from.
    pub tag: String,
    /// Row within the vector.
    pub row: usize,
    /// Lane that computed the row.
    pub lane: usize,
    /// The row's word name within its lane (empty: unnamed).
    pub field: &'static str,
    /// Cycle of the handshake.
    pub cycle: u64,
    /// Expected raw value (data; 0/1 for `out_last`, `len_err`, `out_valid`; the
    /// word count for inputs).
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
            "MISMATCH [{}] unit {} ({}): ",
            self.sim, self.unit, self.config
        )?;
        let at = if self.field.is_empty() {
            format!("vector {} ({}), row {}", self.vector, self.tag, self.row)
        } else {
            format!(
                "vector {} ({}), row {} ({})",
                self.vector, self.tag, self.row, self.field
            )
        };
        match self.check {
            Check::Data => write!(
                f,
                "{at}, lane {}, cycle {}: expected {}, actual {}",
                self.lane,
                self.cycle,
                self.format.show(self.expected),
                self.format.show(self.actual)
            )?,
            Check::Last => write!(
                f,
                "out_last on {at}, cycle {}: expected {}, actual {}",
                self.cycle, self.expected, self.actual
            )?,
            Check::LenErr => write!(
                f,
                "len_err when {at} (the pass's last word) left, cycle {}: expected {}, actual {}",
                self.cycle, self.expected, self.actual
            )?,
            Check::Trailing => write!(
                f,
                "out_valid at cycle {}, after the last expected word ({} words)",
                self.cycle, self.index
            )?,
            Check::Inputs => write!(
                f,
                "input handshakes: expected {} (every input word once), actual {}",
                self.expected, self.actual
            )?,
        }
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
    /// Clock cycles simulated up to the last expected word (without configuration
    /// writes and the silent tail).
    pub cycles: u64,
    /// Cycles spent in each phase (LOAD, START, COMPUTE, DRAIN).
    pub phase_cycles: [u64; 4],
    /// Output words received.
    pub outputs: usize,
    /// Failed checks (data, `out_last`, `len_err`, trailing words, input count).
    pub mismatches: usize,
    /// The first failed check.
    pub first: Option<Mismatch>,
    /// Wall time of the simulation itself (without builds).
    pub sim_seconds: f64,
    /// Wall time of the build (0 when cached).
    pub build_seconds: f64,
    /// Sums over the counted cycles of `rd_err` (buffer error words read) and of `rd_w`
    /// (weight words read): a 1-bit strobe counts its cycles, a wider port (the bsbu's
    /// per-lane sums) adds its value; zero for units without these ports.
    pub traffic: [u64; 2],
    /// `len_err` was high at some counted cycle.
    pub len_err: bool,
    /// Input words taken (handshakes on the input stream).
    pub inputs: u64,
}

impl RunStats {
    /// Simulated cycles per wall-clock second.
    pub fn cycles_per_second(&self) -> f64 {
        self.cycles as f64 / self.sim_seconds.max(1e-9)
    }

    /// Differences between two runs of the same vectors that must agree (cycles,
    /// phases, traffic, outputs, inputs, mismatches), as text; empty when they agree.
    pub fn disagreements(&self, other: &RunStats) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |what: &str, a: String, b: String| {
            if a != b {
                d.push(format!("{what}: {} {a}, {} {b}", self.sim, other.sim));
            }
        };
        cmp("cycles", self.cycles.to_string(), other.cycles.to_string());
        cmp(
            "phase cycles",
            format!("{:?}", self.phase_cycles),
            format!("{:?}", other.phase_cycles),
        );
        cmp(
            "traffic",
            format!("{:?}", self.traffic),
            format!("{:?}", other.traffic),
        );
        cmp(
            "outputs",
            self.outputs.to_string(),
            other.outputs.to_string(),
        );
        cmp("inputs", self.inputs.to_string(), other.inputs.to_string());
        cmp(
            "mismatches",
            self.mismatches.to_string(),
            other.mismatches.to_string(),
        );
        d
    }
}

/// The passes flattened into the arrays both harnesses walk.
#[derive(Clone, Debug, Default)]
pub struct Flat {
    /// All input words.
    pub input: Vec<u64>,
    /// `in_last` per input beat.
    pub in_last: Vec<bool>,
    /// All expected words.
    pub expected: Vec<i64>,
    /// All configuration writes.
    pub setup: Vec<(u32, u32)>,
    /// Per pass: end of its input words (exclusive).
    pub in_end: Vec<usize>,
    /// Per pass: first expected word.
    pub out_start: Vec<usize>,
    /// Per pass: end of its expected words (exclusive).
    pub out_end: Vec<usize>,
    /// Per pass: its configuration writes, `setup[cfg_start..cfg_end]`.
    pub cfg_start: Vec<usize>,
    /// Per pass: end of its configuration writes.
    pub cfg_end: Vec<usize>,
}

impl StreamVectors {
    /// Check the passes against the listed ports and flatten them.
    pub fn flatten(&self) -> Result<Flat, SimError> {
        let has = |p: &str| self.ports.contains(&p);
        let mut f = Flat::default();
        for (i, p) in self.passes.iter().enumerate() {
            let bad = |msg: String| SimError::Protocol {
                sim: "harness",
                msg: format!("{} pass {i} ({}): {msg}", self.unit, p.tag),
            };
            if p.input.is_empty() || p.expected.is_empty() {
                return Err(bad("a pass needs input and output words".into()));
            }
            if p.input.len() % self.in_fields != 0 || p.expected.len() % self.out_fields != 0 {
                return Err(bad(format!(
                    "{} input and {} output words are not whole beats of {} and {} words",
                    p.input.len(),
                    p.expected.len(),
                    self.in_fields,
                    self.out_fields
                )));
            }
            if !p.in_last.is_empty() && p.in_last.len() * self.in_fields != p.input.len() {
                return Err(bad(format!(
                    "{} in_last flags for {} input beats",
                    p.in_last.len(),
                    p.input.len() / self.in_fields
                )));
            }
            for (needs, port) in [
                (!p.setup.is_empty(), "cfg_we"),
                (!p.in_last.is_empty(), "in_last"),
                (p.len_err.is_some(), "len_err"),
            ] {
                if needs && !has(port) {
                    return Err(SimError::NoPort {
                        unit: self.unit,
                        port,
                    });
                }
            }
            f.cfg_start.push(f.setup.len());
            f.setup.extend_from_slice(&p.setup);
            f.cfg_end.push(f.setup.len());
            f.input.extend_from_slice(&p.input);
            if p.in_last.is_empty() {
                f.in_last
                    .extend(std::iter::repeat_n(false, p.input.len() / self.in_fields));
            } else {
                f.in_last.extend_from_slice(&p.in_last);
            }
            f.in_end.push(f.input.len());
            f.out_start.push(f.expected.len());
            f.expected.extend_from_slice(&p.expected);
            f.out_end.push(f.expected.len());
        }
        Ok(f)
    }

    /// Total expected output words.
    pub fn out_words(&self) -> usize {
        self.passes.iter().map(|p| p.expected.len()).sum()
    }

    /// Locate output word `index` (an index past the end names the tail).
    pub fn mismatch(
        &self,
        sim: &'static str,
        check: Check,
        index: usize,
        cycle: u64,
        expected: i64,
        actual: i64,
    ) -> Mismatch {
        let (mut vector, mut start) = (self.passes.len(), self.out_words());
        let mut acc = 0;
        for (i, p) in self.passes.iter().enumerate() {
            if index < acc + p.expected.len() {
                (vector, start) = (i, acc);
                break;
            }
            acc += p.expected.len();
        }
        let row = index - start;
        let (tag, stride) = self
            .passes
            .get(vector)
            .map_or(("after the last vector".to_string(), 1), |p| {
                (p.tag.clone(), p.lane_stride)
            });
        let field = match self.field_names.len() {
            0 => "",
            n => self.field_names[row % n],
        };
        Mismatch {
            sim,
            unit: self.unit,
            config: self.config.clone(),
            check,
            index,
            vector,
            tag,
            row,
            lane: (row / stride.max(1)) % self.lanes.max(1),
            field,
            cycle,
            expected,
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
    out_last: u32,
    phase: u32,
    in_last: Option<u32>,
    len_err: Option<u32>,
    rd_err: Option<u32>,
    rd_w: Option<u32>,
}

/// Why a run stopped early.
enum Stop {
    /// All words in and the tail checked.
    Done,
    /// No handshake for longer than the idle limit.
    Hung,
}

fn run_model(
    m: &mut VerilatorModel,
    v: &StreamVectors,
    f: &Flat,
    stall: Stall,
    stop_after: Option<u64>,
    mut record: Option<&mut Vec<i64>>,
) -> Result<(RunStats, Stop), SimError> {
    let unit = v.unit;
    // Every listed port must exist; unlisted optional ports are left alone.
    for &name in v.ports {
        m.port(name, unit)?;
    }
    let listed = |name: &'static str| -> Result<Option<u32>, SimError> {
        if v.ports.contains(&name) {
            m.port(name, unit).map(Some)
        } else {
            Ok(None)
        }
    };
    let p = Ports {
        clock: m.port("clock", unit)?,
        in_data: m.port("in_data", unit)?,
        in_valid: m.port("in_valid", unit)?,
        in_ready: m.port("in_ready", unit)?,
        out_data: m.port("out_data", unit)?,
        out_valid: m.port("out_valid", unit)?,
        out_ready: m.port("out_ready", unit)?,
        out_last: m.port("out_last", unit)?,
        phase: m.port("phase", unit)?,
        in_last: listed("in_last")?,
        len_err: listed("len_err")?,
        rd_err: listed("rd_err")?,
        rd_w: listed("rd_w")?,
    };
    let t0 = Instant::now();
    // Evaluate once with clock = 0 before the first rising edge.
    m.set(p.clock, 0);
    m.set(p.in_valid, 0);
    m.set(p.out_ready, 0);
    m.eval();
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
    let fail = |stats: &mut RunStats, c: Check, i: usize, cy: u64, e: i64, a: i64| {
        stats.mismatches += 1;
        if stats.first.is_none() {
            stats.first = Some(v.mismatch("verilator", c, i, cy, e, a));
        }
    };
    let (np, ns, ne) = (v.passes.len(), f.input.len(), f.expected.len());
    // Words per beat, and the 32-bit words of the wide data ports.
    let (inf, of) = (v.in_fields, v.out_fields);
    let in_words = (inf * v.in_bits as usize).div_ceil(32);
    let out_words = (of * v.out_format.bits as usize).div_ceil(32);
    let (mut si, mut oi, mut lfsr, mut idle) = (0usize, 0usize, LFSR_SEED, 0u64);
    // pin: pass of the next input word; pout: pass of the next output word;
    // applied: passes whose configuration writes are done.
    let (mut pin, mut pout, mut applied) = (0usize, 0usize, 0usize);
    let mut tail: Option<u64> = None;
    let mut cycle = 0u64;
    let stop = loop {
        if oi == ne && tail.is_none() {
            stats.cycles = cycle;
            tail = Some(v.idle_limit);
        }
        if tail == Some(0) {
            break Stop::Done;
        }
        if let Some(t) = tail.as_mut() {
            *t -= 1;
        }
        while applied <= pin
            && pin < np
            && (f.cfg_start[applied] == f.cfg_end[applied] || oi == f.out_start[applied])
        {
            configure(m, &f.setup[f.cfg_start[applied]..f.cfg_end[applied]], unit)?;
            applied += 1;
        }
        lfsr = lfsr_step(lfsr);
        let in_valid = tail.is_none() && pin < np && applied > pin && stall.in_on(lfsr);
        let out_ready = stall.out_on(lfsr);
        m.set(p.in_valid, in_valid as u64);
        if inf == 1 {
            m.set(p.in_data, f.input.get(si).copied().unwrap_or(0));
        } else {
            let beat = f.input.get(si..si + inf).unwrap_or(&[]);
            m.set_words(p.in_data, &pack(beat, v.in_bits, in_words));
        }
        m.set(p.out_ready, out_ready as u64);
        if let Some(l) = p.in_last {
            m.set(l, f.in_last.get(si / inf).copied().unwrap_or(false) as u64);
        }
        m.eval();
        m.dump(2 * cycle);
        let in_fire = in_valid && m.get(p.in_ready) != 0;
        let out_fire = out_ready && m.get(p.out_valid) != 0;
        if tail.is_none() {
            if let Some(r) = p.rd_err {
                stats.traffic[0] += m.get(r);
            }
            if let Some(r) = p.rd_w {
                stats.traffic[1] += m.get(r);
            }
            let le = p.len_err.map_or(0, |r| m.get(r) & 1);
            stats.len_err |= le != 0;
            stats.phase_cycles[(m.get(p.phase) & 3) as usize] += 1;
            if out_fire {
                let pass = &v.passes[pout];
                if pass.compare || record.is_some() {
                    let got = if of == 1 {
                        vec![v.out_format.sign_extend(m.get(p.out_data))]
                    } else {
                        unpack(&m.get_words(p.out_data, out_words), v.out_format, of)
                    };
                    if let Some(r) = record.as_deref_mut() {
                        r.extend_from_slice(&got);
                    }
                    for (k, &actual) in got.iter().enumerate().filter(|_| pass.compare) {
                        if actual != f.expected[oi + k] {
                            let e = f.expected[oi + k];
                            fail(&mut stats, Check::Data, oi + k, cycle, e, actual);
                        }
                    }
                }
                let last = oi + of == f.out_end[pout];
                let got_last = m.get(p.out_last) & 1;
                if got_last != last as u64 {
                    fail(
                        &mut stats,
                        Check::Last,
                        oi,
                        cycle,
                        last as i64,
                        got_last as i64,
                    );
                }
                if let (true, Some(want)) = (last, pass.len_err) {
                    if le != want as u64 {
                        fail(&mut stats, Check::LenErr, oi, cycle, want as i64, le as i64);
                    }
                }
                oi += of;
                if last {
                    pout += 1;
                }
            }
        } else if m.get(p.out_valid) != 0 {
            fail(&mut stats, Check::Trailing, oi, cycle, 0, 1);
            m.set(p.clock, 1);
            m.eval();
            m.dump(2 * cycle + 1);
            m.set(p.clock, 0);
            break Stop::Done;
        }
        m.set(p.clock, 1);
        m.eval();
        m.dump(2 * cycle + 1);
        m.set(p.clock, 0);
        if in_fire {
            si += inf;
            if si == f.in_end[pin] {
                pin += 1;
            }
        }
        idle = if in_fire || out_fire { 0 } else { idle + 1 };
        cycle += 1;
        if stop_after.is_some_and(|s| cycle > s) {
            break Stop::Done;
        }
        if tail.is_none() && idle > v.idle_limit {
            stats.cycles = cycle;
            break Stop::Hung;
        }
    };
    if tail.is_none() {
        stats.cycles = cycle;
    }
    stats.outputs = oi;
    stats.inputs = si as u64;
    if matches!(stop, Stop::Done) && stop_after.is_none() && si != ns {
        let at = stats.cycles;
        fail(&mut stats, Check::Inputs, oi, at, ns as i64, si as i64);
    }
    stats.sim_seconds = t0.elapsed().as_secs_f64();
    Ok((stats, stop))
}

/// Pack `fields` of `bits` bits each (field k in bits k·bits..) into `n` 32-bit
/// words, least significant first.
pub fn pack(fields: &[u64], bits: u32, n: usize) -> Vec<u32> {
    let mut out = vec![0u32; n];
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    for (k, &f) in fields.iter().enumerate() {
        let x = f & mask;
        for b in 0..bits as usize {
            if (x >> b) & 1 == 1 {
                let at = k * bits as usize + b;
                out[at / 32] |= 1 << (at % 32);
            }
        }
    }
    out
}

/// The `n` signed fields of `format` in `words` (the inverse of [`pack`]).
pub fn unpack(words: &[u32], format: Format, n: usize) -> Vec<i64> {
    let bits = format.bits as usize;
    (0..n)
        .map(|k| {
            let mut x = 0u64;
            for b in 0..bits {
                let at = k * bits + b;
                x |= (((words[at / 32] >> (at % 32)) & 1) as u64) << b;
            }
            format.sign_extend(x)
        })
        .collect()
}

/// Apply configuration writes (address, data) to `m`'s `cfg_we`/`cfg_addr`/`cfg_data`,
/// one per clock edge, then drop `cfg_we`. The clock must be low.
pub fn configure(
    m: &mut VerilatorModel,
    setup: &[(u32, u32)],
    unit: &'static str,
) -> Result<(), SimError> {
    if setup.is_empty() {
        return Ok(());
    }
    let (clock, we, a, d) = (
        m.port("clock", unit)?,
        m.port("cfg_we", unit)?,
        m.port("cfg_addr", unit)?,
        m.port("cfg_data", unit)?,
    );
    m.set(m.port("in_valid", unit)?, 0);
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

/// Run `v` through Verilator. With a `wave_dir`, a failed check reruns the vectors
/// on the traced build, writing an FST waveform up to 16 cycles past it (on a hang,
/// up to the hang) into `wave_dir`; without one (mutation testing, which only
/// counts kills) nothing is rerun.
pub fn run_verilator(
    design: &Emitted,
    v: &StreamVectors,
    stall: Stall,
    cache: &Path,
    wave_dir: Option<&Path>,
) -> Result<RunStats, SimError> {
    let f = v.flatten()?;
    let build = verilator::build(design, cache)?;
    let mut m = VerilatorModel::load(&build, &design.ports)?;
    let (mut stats, stop) = run_model(&mut m, v, &f, stall, None, None)?;
    stats.build_seconds = build.seconds;
    let hung = matches!(stop, Stop::Hung);
    let timeout = |wave: String| SimError::Timeout {
        sim: "verilator",
        unit: v.unit,
        cycles: stats.cycles,
        got: stats.outputs,
        want: f.expected.len(),
        wave,
    };
    let Some(wave_dir) = wave_dir else {
        if hung {
            return Err(timeout("(none: run without a waveform directory)".into()));
        }
        return Ok(stats);
    };
    if stats.first.is_some() || hung {
        std::fs::create_dir_all(wave_dir).map_err(crate::io_err("creating", wave_dir))?;
        let wave = wave_dir.join(format!("{}_verilator_mismatch.fst", v.unit));
        let _ = std::fs::remove_file(&wave);
        let until = stats.first.as_ref().map_or(stats.cycles, |m| m.cycle + 16);
        // The rerun uses the traced build of the same design (built now, cached).
        let traced = verilator::build_traced(design, cache)?;
        let mut m2 = VerilatorModel::load(&traced, &design.ports)?;
        m2.trace_to(&wave)?;
        run_model(&mut m2, v, &f, stall, Some(until), None)?;
        m2.trace_close();
        if hung {
            return Err(timeout(wave.display().to_string()));
        }
        if let Some(first) = stats.first.as_mut() {
            first.waveform = Some(wave);
        }
    }
    Ok(stats)
}

/// A Verilated model kept alive across runs, for hardware in the loop: each
/// [`Session::run`] streams its passes through the same instance (reconfigured by the
/// passes' writes, never rebuilt) and returns every output word the design produced.
pub struct Session {
    model: VerilatorModel,
    /// The build behind the model (cached or fresh).
    pub build: verilator::Build,
    /// Cycles simulated over all runs, the configuration writes' not included.
    pub cycles: u64,
    /// Configuration writes over all runs (each one more clock cycle).
    pub cfg_writes: u64,
    /// Wall time spent simulating over all runs (s).
    pub seconds: f64,
}

impl Session {
    /// Build (or reuse from `cache`) and load `design`.
    pub fn open(design: &Emitted, cache: &Path) -> Result<Session, SimError> {
        let build = verilator::build(design, cache)?;
        let model = VerilatorModel::load(&build, &design.ports)?;
        Ok(Session {
            model,
            build,
            cycles: 0,
            cfg_writes: 0,
            seconds: 0.0,
        })
    }

    /// Stream `v` through the model; its output words (every field, in order). Passes
    /// that `compare` are also checked (the first failed check is an error), so are
    /// the framing checks; a hang is an error.
    pub fn run(
        &mut self,
        v: &StreamVectors,
        stall: Stall,
    ) -> Result<(RunStats, Vec<i64>), SimError> {
        let f = v.flatten()?;
        let mut out = Vec::with_capacity(f.expected.len());
        let (stats, stop) = run_model(&mut self.model, v, &f, stall, None, Some(&mut out))?;
        self.cycles += stats.cycles;
        self.cfg_writes += f.setup.len() as u64;
        self.seconds += stats.sim_seconds;
        if matches!(stop, Stop::Hung) {
            return Err(SimError::Timeout {
                sim: "verilator",
                unit: v.unit,
                cycles: stats.cycles,
                got: stats.outputs,
                want: f.expected.len(),
                wave: "(none: a hardware-in-the-loop session; rerun the pass with hdfa cosim)"
                    .into(),
            });
        }
        if let Some(m) = &stats.first {
            return Err(SimError::Protocol {
                sim: "verilator",
                msg: m.to_string(),
            });
        }
        Ok((stats, out))
    }
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
