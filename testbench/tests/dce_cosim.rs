//! Co-simulation of the dilated-conv error-propagation engine against the golden
//! model over the matrix d ∈ {1, 2, 3, 4} × G ∈ {1, 2, 4, 8}, for P = 1 and P = 4
//! (plus k = 1 and k = 5 cases), with odd map sizes, the corner vectors (saturation,
//! all-zero errors, an all-masked ReLU) and random vectors, under stalls and
//! backpressure. One engine per P runs every layer: the layers are configured at run
//! time. Verilator runs every vector; Icarus runs the corners plus two random vectors
//! of every case, and both must agree on every word and on the cycle count.

use std::path::PathBuf;

use golden::dce::{DceLayer, DceSizes};
use golden::format::ERROR;
use sim::stream::Stall;
use testbench::dce::{run_case, DceCase};
use testbench::{SimKind, UnitReport};

/// Random vectors per case on Verilator (Icarus: the first two).
const RANDOM: usize = 24;
const ICARUS_RANDOM: usize = 2;

fn work() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test/dce_cosim")
}

/// Odd map (H, W) per dilation.
fn map(d: usize) -> (usize, usize) {
    [(5, 7), (7, 5), (3, 9), (5, 5)][d - 1]
}

/// The matrix for `lanes`: C_t = lanes·G·(1 or 2) so P divides the channels per
/// group, C_s ≠ C_t; D2 unscaled and D1 at its plain fan-in shift, so full-scale
/// corners saturate.
fn cases(lanes: usize) -> Vec<DceCase> {
    let mut out = Vec::new();
    let mut add =
        |name: String, cs, ct, (h, w): (usize, usize), k, d, g, shifts: Option<(u32, u32)>| {
            let l = DceLayer::with_default_shifts(cs, ct, h, w, k, d, g).unwrap();
            let (sh2, sh1) = shifts.unwrap_or((0, l.shift1));
            let l = DceLayer {
                shift2: sh2,
                shift1: sh1,
                ..l
            };
            out.push(DceCase::random(name, l, RANDOM, (1000 * lanes + 10 * d + g) as u64).unwrap());
        };
    for d in 1..=4 {
        for g in [1, 2, 4, 8] {
            let ct = if lanes == 1 { 2 * g } else { lanes * g };
            add(format!("d{d}_g{g}"), g * 2, ct, map(d), 3, d, g, None);
        }
    }
    add("k1_g4".into(), 8, 4 * lanes, (5, 3), 1, 1, 4, None);
    add("k5_d2_g2".into(), 4, 2 * lanes, (7, 7), 5, 2, 2, None);
    // The shift range's ends: 0 (everything saturates) and 16 (MAX_SHIFT).
    add("shift0".into(), 4, 2 * lanes, (3, 3), 3, 1, 2, Some((0, 0)));
    add(
        "shift16_d2".into(),
        4,
        2 * lanes,
        (3, 3),
        3,
        1,
        2,
        Some((16, 0)),
    );
    add(
        "shift16_d1".into(),
        4,
        2 * lanes,
        (3, 3),
        3,
        1,
        2,
        Some((0, 16)),
    );
    out
}

fn matrix_matches_golden(lanes: usize) {
    let cases = cases(lanes);
    let layers: Vec<DceLayer> = cases.iter().map(|c| c.layer).collect();
    let sizes = DceSizes::fitting(lanes, &layers).unwrap();
    let design = rtl::dce::generate(&sizes).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let (mut saturated, mut masked) = (0usize, 0usize);
    for c in &cases {
        for v in &c.vectors {
            saturated += v
                .expected
                .iter()
                .filter(|&&e| e as i64 == ERROR.max_raw() || e as i64 == ERROR.min_raw())
                .count();
            masked += v.mask.iter().filter(|m| !**m).count();
        }
        let r = run_case(
            &design,
            &sizes,
            c,
            SimKind::Verilator,
            Stall::SOME,
            &cache,
            &work(),
        )
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
        // Every tap inside the map reads one word for all P lanes.
        let (rt, gt) = (r.rtl_traffic(), r.golden);
        assert_eq!(
            rt.error_reads * lanes as u64,
            gt.error_reads,
            "{}",
            r.traffic_line()
        );
        assert_eq!(
            rt.weight_bits,
            c.layer.work() as u64,
            "{}",
            r.traffic_line()
        );

        let small = c
            .clone()
            .truncated(testbench::dce::CORNERS.len() + ICARUS_RANDOM);
        let v = run_case(
            &design,
            &sizes,
            &small,
            SimKind::Verilator,
            Stall::SOME,
            &cache,
            &work(),
        )
        .unwrap();
        let i = run_case(
            &design,
            &sizes,
            &small,
            SimKind::Icarus,
            Stall::SOME,
            &cache,
            &work(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", i.summary());
        assert!(
            i.stats.first.is_none(),
            "{}",
            i.stats.first.as_ref().unwrap()
        );
        assert_eq!((i.stats.mismatches, i.stats.outputs), (0, v.stats.outputs));
        assert_eq!(
            i.stats.cycles, v.stats.cycles,
            "simulators disagree on cycles"
        );
        assert_eq!(i.stats.phase_cycles, v.stats.phase_cycles);
        assert_eq!(i.stats.traffic, v.stats.traffic);
    }
    assert!(
        saturated > 100,
        "the corners must drive outputs into saturation ({saturated})"
    );
    assert!(masked > 100, "the mask must zero outputs ({masked})");
}

#[test]
fn dce_p1_dilations_1_to_4_groups_1_to_8_match_golden_on_verilator_and_icarus() {
    matrix_matches_golden(1);
}

#[test]
fn dce_p4_dilations_1_to_4_groups_1_to_8_match_golden_on_verilator_and_icarus() {
    matrix_matches_golden(4);
}
