//! Co-simulation of the binary sparse backward-weight unit against the golden model:
//! P ∈ {1, 4, 8} × sparsity ∈ {0, 0.8, 0.98}, each with 10,000 random vectors plus
//! the corner cases, on Verilator and on Icarus. Both must give 0 mismatches and the
//! same cycle count.

use std::path::PathBuf;

use testbench::{BsbuScenario, SimKind};

const VECTORS: usize = 10_000;
/// Small enough that Icarus runs 10,000 vectors in about a minute, large enough for
/// every lane to own several rows and for full rows to saturate.
const ROWS: usize = 16;
const COLS: usize = 12;

fn work() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test/cosim")
}

fn both_simulators_match_golden(lanes: usize, sparsity: f64) {
    let sc = BsbuScenario::new(lanes, ROWS, COLS, sparsity, VECTORS, 7).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let v = sc
        .run(SimKind::Verilator, &cache, &work())
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", v.summary());
    assert_eq!(v.stats.outputs, ROWS * sc.total_vectors());
    assert!(
        v.stats.first.is_none(),
        "{}",
        v.stats.first.as_ref().unwrap()
    );
    assert_eq!(v.stats.mismatches, 0);
    let i = sc
        .run(SimKind::Icarus, &cache, &work())
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", i.summary());
    assert!(
        i.stats.first.is_none(),
        "{}",
        i.stats.first.as_ref().unwrap()
    );
    assert_eq!(i.stats.mismatches, 0);
    assert_eq!(i.stats.outputs, v.stats.outputs);
    assert_eq!(
        i.stats.cycles, v.stats.cycles,
        "simulators disagree on cycles"
    );
    assert_eq!(i.stats.phase_cycles, v.stats.phase_cycles);
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
