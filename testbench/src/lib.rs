//! # testbench: co-simulation scenarios built on the golden model
//!
//! A unit plugs into verification at one place, the [`Unit`] trait: its design, its
//! cases (each a stream of vectors with golden expectations), the golden memory
//! traffic, the standard vector sets and its mutants. [`run_case`] runs a case on
//! either simulator into a [`CaseReport`] (cycles, utilization against the ideal,
//! traffic against golden, one summary line ending in `mismatches: N`), and
//! [`verdict`] says whether runs are clean and the simulators agree.
//!
//! Main types:
//! - [`bsbu::BsbuScenario`] / [`bsbu::BsbuUnit`]: the binary sparse backward-weight
//!   unit (lanes, sizes, sparsity, seed; corner rows and vectors planted).
//! - [`dce::DceCase`] / [`dce::DceUnit`]: the dilated-conv error-propagation engine's
//!   layers and vectors (random with corners, or captured from training), and
//!   [`dce::sequence`], which reprograms one engine instance between passes.
//! - [`upd::UpdVector`] / [`upd::UpdUnit`]: the HDFA update unit's passes (corners,
//!   random, or captured from real BP and DFA steps).
//! - [`mutation::Mutant`]: deliberate design faults the vectors must catch.
//! - [`spec::CosimSpec`]: one random co-simulation case as `hdfa cosim` runs it,
//!   and the command line that reruns it.
//! - [`prop::soak`]: property-based co-simulation and the soak (random cases until a
//!   budget is spent; failures shrunk by [`prop::shrink`]).
//! - [`SimKind`]: Verilator or Icarus.

pub mod bsbu;
pub mod dce;
pub mod hil;
pub mod mutation;
pub mod prop;
pub mod spec;
pub mod unit;
pub mod upd;

use std::path::{Path, PathBuf};

use rtl::Emitted;
use sim::stream::{run_verilator, RunStats, Stall, StreamVectors};
use thiserror::Error;

pub use bsbu::{BsbuScenario, BsbuUnit, BSBU_CORNERS, CORNER_VECTORS};
pub use unit::{run_case, CaseReport, Unit};

/// Errors of a scenario.
#[derive(Debug, Error)]
pub enum TbError {
    /// Bad parameters.
    #[error(transparent)]
    Golden(#[from] golden::GoldenError),
    /// Generation failed.
    #[error(transparent)]
    Rtl(#[from] rtl::RtlError),
    /// Simulation failed.
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    /// A training run (for captured vectors) failed.
    #[error(transparent)]
    Exp(#[from] golden::experiment::ExpError),
    /// A mutant could not be made, or the unmutated design failed its sets.
    #[error("{0}")]
    Mutation(String),
}

/// Which simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimKind {
    /// Verilator through the FFI shim.
    Verilator,
    /// Icarus Verilog with the generated testbench.
    Icarus,
}

impl SimKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            SimKind::Verilator => "verilator",
            SimKind::Icarus => "icarus",
        }
    }
}

/// A fresh work directory `target/hdfa-test/{name}` for a test: whatever an earlier
/// run left there is removed, so what a test finds there was written by itself.
pub fn fresh_test_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/hdfa-test")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Check that the waveform `wave` exists, is not empty and was written at or after
/// `since` (by this run, not an earlier one).
pub fn check_waveform(wave: &Path, since: std::time::SystemTime) -> Result<(), String> {
    let md =
        std::fs::metadata(wave).map_err(|e| format!("no waveform at {}: {e}", wave.display()))?;
    if md.len() == 0 {
        return Err(format!("empty waveform {}", wave.display()));
    }
    let t = md
        .modified()
        .map_err(|e| format!("{}: {e}", wave.display()))?;
    if t < since {
        return Err(format!("{} is older than this run", wave.display()));
    }
    Ok(())
}

/// Run the stream `v` on `design` under `sim`; `dir` receives the testbench files
/// and, on a failed check, the waveform.
pub fn run_stream(
    design: &Emitted,
    v: &StreamVectors,
    sim: SimKind,
    stall: Stall,
    cache: &Path,
    dir: &Path,
) -> Result<RunStats, TbError> {
    Ok(match sim {
        SimKind::Verilator => run_verilator(design, v, stall, cache, Some(dir))?,
        SimKind::Icarus => sim::icarus::run_icarus(design, v, stall, dir)?,
    })
}

/// Run `v` on `design` on Verilator, then on Icarus, each in a fresh test directory
/// `{name}_{simulator}` (see [`fresh_test_dir`]).
pub fn run_both_fresh(
    design: &Emitted,
    v: &StreamVectors,
    stall: Stall,
    name: &str,
) -> Result<[RunStats; 2], TbError> {
    let cache = sim::verilator::default_cache_dir();
    let run = |sim: SimKind| {
        let dir = fresh_test_dir(&format!("{name}_{}", sim.name()));
        run_stream(design, v, sim, stall, &cache, &dir)
    };
    Ok([run(SimKind::Verilator)?, run(SimKind::Icarus)?])
}

/// The comparator check every harness must pass: flip the bits `flip` of expected
/// word `row` of pass `vector`, run `v` on both simulators (fresh directories
/// `{name}_*`), and require each to report exactly that one word (check, vector,
/// tag, row, lane, cycle and actual value equal on both) with a waveform written by
/// this run. Returns the Verilator and the Icarus report.
pub fn locate_corrupted_word(
    design: &Emitted,
    v: &StreamVectors,
    (vector, row, flip): (usize, usize, i64),
    name: &str,
) -> Result<[sim::stream::Mismatch; 2], String> {
    let mut v = v.clone();
    v.passes[vector].expected[row] ^= flip;
    let t0 = std::time::SystemTime::now();
    let runs = run_both_fresh(design, &v, Stall::SOME, name).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for r in runs {
        let m = r
            .first
            .ok_or_else(|| format!("{}: the corrupted word was not reported", r.sim))?;
        let want = (1, sim::stream::Check::Data, vector, row, m.expected);
        let got = (r.mismatches, m.check, m.vector, m.row, m.actual ^ flip);
        if got != want {
            return Err(format!("{}: reported {got:?}, want {want:?}: {m}", r.sim));
        }
        let wave = m
            .waveform
            .as_ref()
            .ok_or_else(|| format!("{m}: no waveform"))?;
        check_waveform(wave, t0)?;
        found.push(m);
    }
    let key = |m: &sim::stream::Mismatch| (m.tag.clone(), m.lane, m.cycle, m.actual);
    if key(&found[0]) != key(&found[1]) {
        return Err(format!(
            "the simulators disagree: {} / {}",
            found[0], found[1]
        ));
    }
    let icarus = found.pop().expect("two runs");
    Ok([found.pop().expect("two runs"), icarus])
}

/// Problems with a set of runs of the same vectors: failed checks in any run, and
/// any difference between runs (two simulators must agree on cycles, phases,
/// traffic, outputs and inputs). Empty when all is well.
pub fn verdict(runs: &[&RunStats]) -> Vec<String> {
    let mut out = Vec::new();
    for r in runs {
        if r.mismatches != 0 {
            let first = r.first.as_ref().map_or(String::new(), |m| format!(": {m}"));
            out.push(format!("{}: {} failed checks{first}", r.sim, r.mismatches));
        }
    }
    for w in runs.windows(2) {
        out.extend(w[0].disagreements(w[1]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(sim: &'static str, cycles: u64, mismatches: usize) -> RunStats {
        RunStats {
            sim,
            cycles,
            phase_cycles: [cycles, 0, 0, 0],
            outputs: 10,
            mismatches,
            first: None,
            sim_seconds: 1.0,
            build_seconds: 0.0,
            traffic: [3, 4],
            len_err: false,
            inputs: 20,
        }
    }

    #[test]
    fn verdict_flags_failed_checks_and_any_disagreement_between_simulators() {
        let (v, i) = (stats("verilator", 100, 0), stats("icarus", 100, 0));
        assert!(verdict(&[&v, &i]).is_empty());
        let p = verdict(&[&v, &stats("icarus", 101, 0)]);
        assert!(
            p.iter()
                .any(|p| p.starts_with("cycles: verilator 100, icarus 101")),
            "{p:?}"
        );
        assert!(p.iter().any(|p| p.starts_with("phase cycles")), "{p:?}");
        let mut t = i.clone();
        t.traffic[1] += 1;
        assert!(verdict(&[&v, &t]).iter().any(|p| p.starts_with("traffic")));
        let p = verdict(&[&stats("verilator", 100, 3)]);
        assert_eq!(p, vec!["verilator: 3 failed checks".to_string()]);
    }
}
