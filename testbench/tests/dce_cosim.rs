//! Co-simulation of the dilated-conv error-propagation engine against the golden
//! model over the matrix d ∈ {1, 2, 3, 4} × G ∈ {1, 2, 4, 8}, for P = 1 and P = 4
//! (plus k = 1 and k = 5 cases, and two paths across pools: up-sampling 2 with D2
//! and 4 without; two cases again with weights regenerated in GEN mode, reading no
//! weight bit), with odd map sizes, the corner vectors (saturation, all-zero
//! errors, an all-masked ReLU) and random vectors, under stalls and backpressure. One
//! engine per P runs every layer: the layers are configured at run time. Verilator
//! runs every vector; at P = 4 Icarus runs every case on three of its six corner
//! vectors, a window that turns by one corner from case to case (so each corner runs
//! on half the cases, spread over every d and G), and both simulators must agree on
//! every word and on the cycle count (P = 1 runs on Verilator only). Icarus
//! simulates this design at about 2k cycles/s, so these limits keep CI under its
//! budget. The Icarus runs are split between two tests on a checkerboard over
//! (d, G), so both test threads simulate about the same work.

use std::path::PathBuf;

use golden::format::ERROR;
use sim::stream::Stall;
use testbench::dce::{standard_cases, DceCase, DceUnit};
use testbench::{run_case, verdict, SimKind};

/// Random vectors per case on Verilator (Icarus: corners only).
const RANDOM: usize = 24;
/// Corner vectors per case on Icarus: corners (i + j) mod 6 for j < 3 of case i.
const ICARUS_CORNERS: usize = 3;

fn work() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test/dce_cosim")
}

fn cases(lanes: usize) -> Vec<DceCase> {
    standard_cases(lanes, RANDOM).unwrap()
}

/// Which of the two Icarus tests runs case `i`: a checkerboard over the matrix's
/// (d, G) (four G per d), so each test gets every G on two d's.
fn icarus_half(i: usize) -> usize {
    (i / 4 + i) % 2
}

/// Whether case `i` runs corner `j` on Icarus.
fn icarus_corner(i: usize, j: usize) -> bool {
    let n = testbench::dce::CORNERS.len();
    (j + n - i % n) % n < ICARUS_CORNERS
}

/// The matrix at `lanes`: every vector of every case on Verilator (when `verilator`),
/// and the Icarus corners of the cases in half `h` on Icarus against Verilator (when
/// `icarus` is `Some(h)`).
fn matrix_matches_golden(lanes: usize, verilator: bool, icarus: Option<usize>) {
    let unit = DceUnit::new(lanes, cases(lanes)).unwrap();
    // The same engine, each case cut to its Icarus corners.
    let small = DceUnit {
        cases: unit
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                c.vectors = (c.vectors.into_iter().enumerate())
                    .filter(|&(j, _)| j < testbench::dce::CORNERS.len() && icarus_corner(i, j))
                    .map(|(_, v)| v)
                    .collect();
                c
            })
            .collect(),
        ..unit.clone()
    };
    let cache = sim::verilator::default_cache_dir();
    let (mut saturated, mut masked, mut on_icarus) = (0usize, 0usize, 0usize);
    for (i, c) in unit.cases.iter().enumerate() {
        if let Some(h) = icarus.filter(|_| !verilator) {
            if icarus_half(i) != h {
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
        if icarus != Some(icarus_half(i)) {
            continue;
        }
        assert_eq!(small.cases[i].vectors.len(), ICARUS_CORNERS);
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
fn dce_p4_dilations_1_to_4_groups_1_to_8_and_paths_across_pools_match_golden_on_verilator_and_half_the_cases_on_icarus(
) {
    matrix_matches_golden(4, true, Some(0));
}

#[test]
fn dce_p4_other_half_of_the_cases_agrees_on_icarus_and_verilator() {
    matrix_matches_golden(4, false, Some(1));
}

#[test]
fn the_icarus_corners_cover_every_corner_on_every_g_and_in_both_halves() {
    let cases = cases(4);
    let n = testbench::dce::CORNERS.len();
    for i in 0..cases.len() {
        assert_eq!(
            (0..n).filter(|&j| icarus_corner(i, j)).count(),
            ICARUS_CORNERS
        );
    }
    // Every corner on every G of the matrix (its first 16 cases, d-major) and in both
    // halves; both halves hold every G.
    for j in 0..n {
        for g in 0..4 {
            assert!(
                (0..4).any(|d| icarus_corner(4 * d + g, j)),
                "corner {j} never runs on G index {g}"
            );
        }
        for h in 0..2 {
            assert!((0..cases.len()).any(|i| icarus_half(i) == h && icarus_corner(i, j)));
        }
    }
    for h in 0..2 {
        for g in 0..4 {
            assert!((0..4).any(|d| icarus_half(4 * d + g) == h));
        }
    }
}
