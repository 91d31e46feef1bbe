//! Co-simulation of the dilated-conv error-propagation engine against the golden
//! model over the matrix d ∈ {1, 2, 3, 4} × G ∈ {1, 2, 4, 8}, for P = 1 and P = 4
//! (plus k = 1 and k = 5 cases, and two paths across pools: up-sampling 2 with D2
//! and 4 without; two cases again with weights regenerated in GEN mode, reading no
//! weight bit), with odd map sizes, the corner vectors (saturation, all-zero
//! errors, an all-masked ReLU) and random vectors, under stalls and backpressure. One
//! engine per P runs every layer: the layers are configured at run time. Verilator
//! runs every vector; at P = 4 Icarus runs the corners of every case (one of them a
//! random full-scale vector), and both must agree on every word and on the cycle
//! count (P = 1 runs on Verilator only, to keep CI under its budget). The Icarus runs
//! are split between two tests (even and odd cases), so both test threads simulate.

use std::path::PathBuf;

use golden::format::ERROR;
use sim::stream::Stall;
use testbench::dce::{standard_cases, DceCase, DceUnit};
use testbench::{run_case, verdict, SimKind};

/// Random vectors per case on Verilator (Icarus: the corners only, to keep CI under
/// its budget; Icarus simulates this design at about 2k cycles/s).
const RANDOM: usize = 24;
const ICARUS_RANDOM: usize = 0;

fn work() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test/dce_cosim")
}

fn cases(lanes: usize) -> Vec<DceCase> {
    standard_cases(lanes, RANDOM).unwrap()
}

/// The matrix at `lanes`: every vector of every case on Verilator (when `verilator`),
/// and the corners of the cases i with i mod n = k on Icarus against Verilator (when
/// `icarus` is `Some((k, n))`).
fn matrix_matches_golden(lanes: usize, verilator: bool, icarus: Option<(usize, usize)>) {
    let unit = DceUnit::new(lanes, cases(lanes)).unwrap();
    // The same engine, each case cut to its corners and the first random vectors.
    let small = DceUnit {
        cases: unit
            .cases
            .iter()
            .map(|c| {
                c.clone()
                    .truncated(testbench::dce::CORNERS.len() + ICARUS_RANDOM)
            })
            .collect(),
        ..unit.clone()
    };
    let cache = sim::verilator::default_cache_dir();
    let (mut saturated, mut masked, mut on_icarus) = (0usize, 0usize, 0usize);
    for (i, c) in unit.cases.iter().enumerate() {
        if let Some((k, n)) = icarus.filter(|_| !verilator) {
            if i % n != k {
                continue;
            }
        }
        for v in &c.vectors {
            saturated += v
                .expected
                .iter()
                .filter(|&&e| e as i64 == ERROR.max_raw() || e as i64 == ERROR.min_raw())
                .count();
            masked += v.mask.iter().filter(|m| !**m).count();
        }
        if verilator {
            verilator_case_matches(&unit, i, c, &cache);
        }
        if !icarus.is_some_and(|(k, n)| i % n == k) {
            continue;
        }
        let v = run_case(&small, i, SimKind::Verilator, Stall::SOME, &cache, &work()).unwrap();
        let ic = run_case(&small, i, SimKind::Icarus, Stall::SOME, &cache, &work())
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", ic.summary());
        let problems = verdict(&[&v.stats, &ic.stats]);
        assert!(problems.is_empty(), "{problems:?}");
        on_icarus += 1;
        assert_eq!(
            ic.stats.outputs,
            c.layer.out_words() * small.cases[i].vectors.len()
        );
    }
    if icarus.is_some() {
        assert!(on_icarus >= 10, "{on_icarus} cases on Icarus");
    }
    if verilator {
        assert!(
            saturated > 100,
            "the corners must drive outputs into saturation ({saturated})"
        );
        assert!(masked > 100, "the mask must zero outputs ({masked})");
    }
}

/// Case `i` of `unit`, every vector, on Verilator: every word, no `len_err`, exact
/// traffic totals.
fn verilator_case_matches(unit: &DceUnit, i: usize, c: &DceCase, cache: &std::path::Path) {
    let r = run_case(unit, i, SimKind::Verilator, Stall::SOME, cache, &work())
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", r.summary());
    assert!(
        r.stats.first.is_none(),
        "{}",
        r.stats.first.as_ref().unwrap()
    );
    assert_eq!(
        (r.stats.mismatches, r.stats.outputs),
        (0, c.layer.out_words() * c.vectors.len())
    );
    assert!(!r.stats.len_err, "len_err raised on well-formed streams");
    // Exact totals over the run: every input word taken once, every tap inside
    // the map read once for all P lanes, every tap's P signs read once.
    let t = r.traffic.expect("the engine counts traffic");
    let line = r.traffic_line().unwrap();
    let n = c.vectors.len() as u64;
    assert!(t.exact(), "{line}");
    assert_eq!(r.stats.inputs, n * c.layer.stream_words() as u64);
    // Stored weights: every tap's P signs read once; generated (GEN mode): none.
    let want_bits = if c.weights.gen.is_some() {
        0
    } else {
        n * c.layer.work() as u64
    };
    assert_eq!(t.rtl.weight_bits, want_bits, "{line}");
}

#[test]
fn dce_p1_dilations_1_to_4_groups_1_to_8_and_paths_across_pools_match_golden_on_verilator() {
    matrix_matches_golden(1, true, None);
}

#[test]
fn dce_p4_dilations_1_to_4_groups_1_to_8_and_paths_across_pools_match_golden_on_verilator_and_even_cases_on_icarus(
) {
    matrix_matches_golden(4, true, Some((0, 2)));
}

#[test]
fn dce_p4_odd_cases_agree_on_icarus_and_verilator() {
    matrix_matches_golden(4, false, Some((1, 2)));
}
