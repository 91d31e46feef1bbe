//! Co-simulation of the binary sparse backward-weight unit against the golden model:
//! P ∈ {1, 4, 8} × sparsity ∈ {0, 0.8, 0.98}, each with the corner cases and 10,000
//! random vectors on Verilator; Icarus runs the corners and the first 500 of those
//! random vectors (the same stream), and both simulators must pass every check and
//! agree on cycles, phases and traffic for them. The generator-mode unit (S
//! regenerated from a seed, no weight memory) runs the same way at P = 4 as the
//! second 256-row tile of a larger generated matrix.

use std::path::PathBuf;

use sim::stream::Stall;
use testbench::{run_case, BsbuScenario, BsbuUnit, SimKind};

const VECTORS: usize = 10_000;
/// The prefix of the random vectors Icarus runs (a few seconds per configuration).
const ICARUS_VECTORS: usize = 500;
/// Small enough that Icarus runs 10,000 vectors in about a minute, large enough for
/// every lane to own several rows and for full rows to saturate.
const ROWS: usize = 16;
const COLS: usize = 12;

fn work() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test/cosim")
}

fn both_simulators_match_golden(lanes: usize, sparsity: f64) {
    both_match(lanes, sparsity, None);
}

/// As [`both_simulators_match_golden`], in generator mode with `gen` = (seed, row0).
fn both_match(lanes: usize, sparsity: f64, gen: Option<(u32, usize)>) {
    // One S and one design; the Icarus run takes a prefix of the same vectors.
    let mut sc = BsbuScenario::new(lanes, ROWS, COLS, sparsity, VECTORS, 7).unwrap();
    if let Some((seed, row0)) = gen {
        sc = sc.generated(seed, row0).unwrap();
    }
    let unit = BsbuUnit::new(sc).unwrap();
    if gen.is_some() {
        // No weight bit stored: each lane's entry ROM is one unused zero word.
        let v = &unit.design.verilog;
        assert_eq!(v.matches("mem[4'h0] = 16'h0;").count(), lanes);
        assert!(!v.contains("mem[4'h1] ="));
    }
    let mut short = unit.clone();
    short.scenario.vectors = ICARUS_VECTORS;
    let cache = sim::verilator::default_cache_dir();
    let run = |u: &BsbuUnit, sim| {
        run_case(u, 0, sim, Stall::SOME, &cache, &work()).unwrap_or_else(|e| panic!("{e}"))
    };
    let v = run(&unit, SimKind::Verilator);
    println!("{}", v.summary());
    assert_eq!(v.stats.outputs, ROWS * unit.scenario.total_vectors());
    assert!(
        v.stats.first.is_none(),
        "{}",
        v.stats.first.as_ref().unwrap()
    );
    assert_eq!(v.stats.mismatches, 0);
    let (vs, i) = (
        run(&short, SimKind::Verilator),
        run(&short, SimKind::Icarus),
    );
    println!("{}", i.summary());
    assert_eq!(i.stats.outputs, ROWS * short.scenario.total_vectors());
    let problems = testbench::verdict(&[&vs.stats, &i.stats]);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn bsbu_p1_sparsity0_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(1, 0.0);
}
#[test]
fn bsbu_p1_sparsity0_8_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(1, 0.8);
}
#[test]
fn bsbu_p1_sparsity0_98_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(1, 0.98);
}
#[test]
fn bsbu_p4_sparsity0_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(4, 0.0);
}
#[test]
fn bsbu_p4_sparsity0_8_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(4, 0.8);
}
#[test]
fn bsbu_p4_sparsity0_98_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(4, 0.98);
}
#[test]
fn bsbu_p8_sparsity0_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(8, 0.0);
}
#[test]
fn bsbu_p8_sparsity0_8_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(8, 0.8);
}
#[test]
fn bsbu_p8_sparsity0_98_matches_golden_on_verilator_and_icarus() {
    both_simulators_match_golden(8, 0.98);
}
#[test]
fn bsbu_generator_p4_sparsity0_8_second_tile_matches_golden_on_verilator_and_icarus() {
    both_match(4, 0.8, Some((0xDEAD_BEEF, 256)));
}
