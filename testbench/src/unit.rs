//! The one place a unit plugs into verification: the [`Unit`] trait, the runner
//! [`run_case`] and its [`CaseReport`].
//!
//! A new unit implements [`Unit`] (design, cases, stream, traffic, vector sets,
//! mutants); `hdfa emit/cosim/synth/flow/mutants` and the tests then work for it
//! without another dispatch.

use std::path::{Path, PathBuf};

use golden::dce::DceTraffic;
use rtl::Emitted;
use sim::stream::{RunStats, Stall, StreamVectors};

use crate::mutation::{Mutant, VectorSet};
use crate::{run_stream, SimKind, TbError};

/// Memory traffic measured in the RTL against the golden model's count, totals over a
/// run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrafficCheck {
    /// Counted in the simulation (input handshakes less mask words, `rd_err` and
    /// `rd_w` cycles; weight words × P bits).
    pub rtl: DceTraffic,
    /// The golden model's count.
    pub golden: DceTraffic,
    /// Lanes fed by one buffer read (the dce's P; 1 for the bsbu, whose lanes read
    /// private copies and count each read).
    pub lanes: usize,
    /// The RTL's weight-bit count must equal golden's (bsbu: one entry word per
    /// entry); false where it is an upper bound (the dce also reads the signs of
    /// padding taps).
    pub weight_bits_exact: bool,
}

impl TrafficCheck {
    /// Input words and buffer reads agree exactly (one read feeds all P lanes), and
    /// so do weight bits where they are counted exactly.
    pub fn exact(&self) -> bool {
        self.rtl.stream_words == self.golden.stream_words
            && self.rtl.error_reads * self.lanes as u64 == self.golden.error_reads
            && (!self.weight_bits_exact || self.rtl.weight_bits == self.golden.weight_bits)
    }
}

/// A unit under verification: one generated design and its cases.
pub trait Unit {
    /// Short name (`bsbu`, `dce`).
    fn name(&self) -> &'static str;
    /// The emitted design.
    fn design(&self) -> &Emitted;
    /// File-name stem of the design (`bsbu_p4`).
    fn stem(&self) -> String;
    /// Configuration text for reports.
    fn config(&self) -> String;
    /// Number of cases (each one stream: the bsbu has one, the dce one per layer).
    fn cases(&self) -> usize;
    /// Case `i`'s name, used for its work directory.
    fn case_name(&self, i: usize) -> String;
    /// Case `i`'s stimulus and golden expectations.
    fn stream(&self, i: usize) -> Result<StreamVectors, TbError>;
    /// Ideal compute cycles per vector of case `i`.
    fn ideal_per_vector(&self, i: usize) -> f64;
    /// Traffic of a run of case `i` (`passes` vectors) against golden (None: the unit
    /// counts none).
    fn traffic(&self, i: usize, passes: usize, stats: &RunStats) -> Option<TrafficCheck>;
    /// The standard vector sets for mutation testing.
    fn vector_sets(&self) -> Result<Vec<VectorSet>, TbError>;
    /// The unit's deliberate faults.
    fn mutants(&self) -> &'static [Mutant];
}

/// Outcome of one case on one simulator.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// Unit name.
    pub unit: &'static str,
    /// Configuration text.
    pub config: String,
    /// Vectors run.
    pub vectors: usize,
    /// Ideal compute cycles per vector.
    pub ideal_per_vector: f64,
    /// Traffic against golden, where the unit counts it.
    pub traffic: Option<TrafficCheck>,
    /// Simulator statistics.
    pub stats: RunStats,
    /// Work directory (testbench files, waveforms).
    pub work: PathBuf,
}

impl CaseReport {
    /// Compute-phase cycles per vector (phases 1 and 2: bsbu START + COMPUTE, dce D2
    /// + D1).
    pub fn compute_per_vector(&self) -> f64 {
        let s = &self.stats;
        (s.phase_cycles[1] + s.phase_cycles[2]) as f64 / self.vectors.max(1) as f64
    }
    /// Utilization of the compute phases: ideal / compute cycles.
    pub fn utilization(&self) -> f64 {
        self.ideal_per_vector / self.compute_per_vector()
    }
    /// All cycles per vector (load, compute, drain, with stalls).
    pub fn cycles_per_vector(&self) -> f64 {
        self.stats.cycles as f64 / self.vectors.max(1) as f64
    }
    /// The summary line; it ends with `mismatches: N`.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "{} {} vectors={} [{}]: cycles {} ({:.1}/vector, compute {:.1}/vector, ideal {:.1}), utilization {:.1}%, {:.2} Mcycles/s, mismatches: {}",
            self.unit,
            self.config,
            self.vectors,
            s.sim,
            s.cycles,
            self.cycles_per_vector(),
            self.compute_per_vector(),
            self.ideal_per_vector,
            100.0 * self.utilization(),
            s.cycles_per_second() / 1e6,
            s.mismatches
        )
    }
    /// Ok when the run failed no check and gave exactly `outputs` words; otherwise
    /// the summary with the first failure (for tests and scripts).
    pub fn expect_clean(&self, outputs: usize) -> Result<(), String> {
        let s = &self.stats;
        if let Some(m) = &s.first {
            return Err(format!("{}\nfirst failure: {m}", self.summary()));
        }
        if s.mismatches != 0 || s.outputs != outputs {
            return Err(format!(
                "{}\n{} output words, expected {outputs}",
                self.summary(),
                s.outputs
            ));
        }
        Ok(())
    }

    /// The problem with the run's traffic, if it differs from golden's count.
    pub fn traffic_problem(&self) -> Option<String> {
        self.traffic
            .filter(|t| !t.exact())
            .map(|t| format!("{}: traffic differs from golden: {t:?}", self.config))
    }

    /// The traffic line (RTL against golden, totals over the run), if counted.
    pub fn traffic_line(&self) -> Option<String> {
        let t = self.traffic?;
        let (r, g) = (t.rtl, t.golden);
        Some(format!(
            "traffic over {} passes: input stream {} error words (golden {}); buffer error words read {} x {} lanes = {} (golden {}); weight bits read {} (golden {}{})",
            self.vectors,
            r.stream_words,
            g.stream_words,
            r.error_reads,
            t.lanes,
            r.error_reads * t.lanes as u64,
            g.error_reads,
            r.weight_bits,
            g.weight_bits,
            if t.weight_bits_exact { "" } else { "; the engine also reads the signs of padding taps" }
        ))
    }
}

/// Run case `i` of `unit` on `sim`; `work` receives the run's directory.
pub fn run_case(
    unit: &dyn Unit,
    i: usize,
    sim: SimKind,
    stall: Stall,
    cache: &Path,
    work: &Path,
) -> Result<CaseReport, TbError> {
    let v = unit.stream(i)?;
    let dir = work.join(format!(
        "{}_{}_{}",
        unit.name(),
        unit.case_name(i),
        sim.name()
    ));
    let stats = run_stream(unit.design(), &v, sim, stall, cache, &dir)?;
    Ok(CaseReport {
        unit: unit.name(),
        config: v.config.clone(),
        vectors: v.passes.len(),
        ideal_per_vector: unit.ideal_per_vector(i),
        traffic: unit.traffic(i, v.passes.len(), &stats),
        stats,
        work: dir,
    })
}
