//! The harness itself: a corrupted expectation must be caught and located on both
//! simulators with a waveform; lint is clean up to the documented waivers; bad
//! input gets named errors; synthesis reports real numbers.

use std::path::PathBuf;

use sim::stream::Stall;
use testbench::{BsbuScenario, SimKind};

fn work(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/hdfa-test")
        .join(name)
}

#[test]
fn bsbu_corrupted_expectation_is_reported_with_location_and_waveform_on_both_simulators() {
    let sc = BsbuScenario::new(4, 8, 6, 0.5, 20, 3).unwrap();
    let s = sc.matrix().unwrap();
    let design = rtl::bsbu::generate(&sc.params, &s).unwrap();
    let v = sc.stream(&s).unwrap();
    // Vector 10 (random 2), row 5 -> lane 1.
    let [m, _] = testbench::locate_corrupted_word(&design, &v, (10, 5, 0x10), "bsbu_corrupt")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.lane, 1);
    let text = m.to_string();
    assert!(
        text.contains("vector 10 (random 2), row 5, lane 1")
            && text.contains("expected 0x")
            && text.contains("waveform"),
        "{text}"
    );
}

#[test]
fn bsbu_emitted_verilog_lints_clean_with_documented_waivers() {
    for (lanes, gen) in [(1, false), (4, false), (8, false), (1, true), (4, true)] {
        let mut sc = BsbuScenario::new(lanes, 16, 12, 0.5, 0, 1).unwrap();
        if gen {
            sc = sc.generated(1, 0).unwrap();
        }
        let design = sc.design(&sc.matrix().unwrap()).unwrap();
        let needed = sim::lint::lint(&design, &work("lint")).unwrap_or_else(|e| panic!("{e}"));
        for w in &needed {
            assert!(rtl::LINT_WAIVERS
                .iter()
                .any(|(name, why)| name == w && !why.is_empty()));
        }
    }
}

#[test]
fn bsbu_bad_input_gets_named_errors() {
    let e = BsbuScenario::new(0, 8, 8, 0.5, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lanes = 0") && e.contains("1..=16"), "{e}");
    assert!(BsbuScenario::new(17, 8, 8, 0.5, 1, 1)
        .unwrap_err()
        .to_string()
        .contains("lanes = 17"));
    assert!(BsbuScenario::new(4, 8, 8, 1.0, 1, 1)
        .unwrap_err()
        .to_string()
        .contains("[0, 1)"));
    assert!(BsbuScenario::new(4, 8, 8, -0.5, 1, 1).is_err());
    assert!(BsbuScenario::new(4, 8, 8193, 0.5, 1, 1)
        .unwrap_err()
        .to_string()
        .contains("cols = 8193"));
    // A dense 256x256 matrix does not fit one lane's entry memory.
    let e = BsbuScenario::new(1, 256, 256, 0.0, 1, 1)
        .unwrap()
        .matrix()
        .unwrap_err()
        .to_string();
    assert!(e.contains("lane entries"), "{e}");
    // Shapes that disagree with the parameters.
    let sc = BsbuScenario::new(2, 8, 8, 0.5, 1, 1).unwrap();
    let other = golden::bsbu::SparseSign::random(8, 7, 0.5, 1).unwrap();
    assert!(rtl::bsbu::generate(&sc.params, &other)
        .unwrap_err()
        .to_string()
        .contains("does not match"));
    let e = golden::params::BsbuParams::new(2, 8, 8, 40)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shift = 40") && e.contains("0..=16"), "{e}");
    // A missing tool names the install command.
    let e = sim::tool::require("hdfa-no-such-simulator")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not found") && e.contains("apt-get install"),
        "{e}"
    );
}

#[test]
fn bsbu_synthesizes_for_ice40_with_area_and_fmax() {
    let sc = BsbuScenario::new(1, 16, 12, 0.5, 0, 1).unwrap();
    let design = rtl::bsbu::generate(&sc.params, &sc.matrix().unwrap()).unwrap();
    let r = synth::synthesize(&design, &sc.config(), &work("synth_p1"))
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}\n{}", synth::SynthReport::MD_HEADER, r.md_row());
    assert!(r.luts > 50 && r.ffs > 20 && r.generic_cells > 100, "{r:?}");
    assert!(
        r.brams >= 3,
        "e_L copy, results and f' should map to block RAM: {r:?}"
    );
    assert!(r.fmax_mhz > 5.0 && r.fmax_mhz < 1000.0, "{r:?}");
    assert!(r.dir.join("synth_report.json").exists() && r.dir.join("synth_report.md").exists());
    // The critical path read from the log is the one that sets Fmax (one clock).
    let cp = &r.critical_path;
    println!("critical path: {cp}");
    assert!(!cp.from.is_empty() && !cp.to.is_empty(), "{cp:?}");
    assert!(
        (1000.0 / cp.ns - r.fmax_mhz).abs() < 0.02 * r.fmax_mhz,
        "{cp} against Fmax {}",
        r.fmax_mhz
    );
}

/// Second and third families: ECP5 and Xilinx 7-series cell counts, read from yosys,
/// grow with the lane count (each lane brings its accumulator, pipeline and memories).
#[test]
fn bsbu_cell_counts_for_ecp5_and_xilinx_grow_with_lanes() {
    for family in [synth::Family::Ecp5, synth::Family::Xilinx] {
        let mut counts = Vec::new();
        for p in [1usize, 2] {
            let sc = BsbuScenario::new(p, 16, 12, 0.5, 0, 1).unwrap();
            let design = rtl::bsbu::generate(&sc.params, &sc.matrix().unwrap()).unwrap();
            let dir = work(&format!("cells_{}_p{p}", family.name()));
            let r = synth::cell_counts(&design, &sc.config(), family, &dir)
                .unwrap_or_else(|e| panic!("{e}"));
            println!("{}\n{}", synth::CellReport::MD_HEADER, r.md_row());
            assert!(r.luts > 50 && r.ffs > 20, "{r:?}");
            assert!(
                r.brams + r.lutram as f64 > 0.0,
                "memories must map to RAM: {r:?}"
            );
            assert!(dir.join("cell_report.json").exists());
            counts.push(r);
        }
        assert!(
            counts[1].luts > counts[0].luts && counts[1].ffs > counts[0].ffs,
            "{family:?}: P = 2 must cost more than P = 1: {:?}",
            counts.iter().map(|r| r.md_row()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn bsbu_simulators_agree_without_stalls_too() {
    let mut sc = BsbuScenario::new(4, 16, 12, 0.9, 200, 11).unwrap();
    sc.stall = Stall::NONE;
    let cache = sim::verilator::default_cache_dir();
    let v = sc
        .run(SimKind::Verilator, &cache, &work("nostall"))
        .unwrap();
    let i = sc.run(SimKind::Icarus, &cache, &work("nostall")).unwrap();
    assert_eq!((v.stats.mismatches, i.stats.mismatches), (0, 0));
    assert_eq!(v.stats.cycles, i.stats.cycles);
    assert!(
        v.utilization() > 0.5 && v.utilization() <= 1.0,
        "{}",
        v.summary()
    );
}

#[test]
fn verilator_build_cache_is_shared_by_parallel_builders_and_reuses_the_run_time() {
    // A fresh cache directory, two threads building the same design at once: the lock
    // must serialise them, exactly one builds, and the library loads in both.
    let cache = work("cache_race");
    let _ = std::fs::remove_dir_all(&cache);
    let sc = BsbuScenario::new(2, 6, 5, 0.3, 0, 99).unwrap();
    let design = rtl::bsbu::generate(&sc.params, &sc.matrix().unwrap()).unwrap();
    let builds: Vec<sim::verilator::Build> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| sim::verilator::build(&design, &cache).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(builds.iter().filter(|b| !b.cached).count(), 1, "{builds:?}");
    assert_eq!(builds[0].lib, builds[1].lib);
    for b in &builds {
        sim::verilator::VerilatorModel::load(b, &design.ports).unwrap();
    }
    assert!(sim::verilator::build(&design, &cache).unwrap().cached);
    // A different design gets a different build.
    let sc2 = BsbuScenario::new(2, 6, 5, 0.3, 0, 100).unwrap();
    let d2 = rtl::bsbu::generate(&sc2.params, &sc2.matrix().unwrap()).unwrap();
    // It links the run-time objects the first build published instead of compiling
    // Verilator's run time again, and the model loads.
    let b2 = sim::verilator::build(&d2, &cache).unwrap();
    assert_ne!(b2.lib, builds[0].lib);
    assert!(!b2.cached && b2.runtime_reused, "{b2:?}");
    assert!(builds.iter().all(|b| !b.runtime_reused), "{builds:?}");
    sim::verilator::VerilatorModel::load(&b2, &d2.ports).unwrap();
}

#[test]
fn bsbu_largest_shift_matches_golden_on_verilator() {
    // shift = MAX_SHIFT (16): the saturation bound (max + 1) << 16 = 2^31 needs more
    // than the accumulator's 32 bits inside the narrowing step.
    let mut sc = BsbuScenario::new(2, 8, 12, 0.0, 200, 9).unwrap();
    sc.params = golden::params::BsbuParams::new(2, 8, 12, golden::params::MAX_SHIFT).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let r = sc
        .run(SimKind::Verilator, &cache, &work("bsbu_shift16"))
        .unwrap();
    println!("{}", r.summary());
    assert!(
        r.stats.first.is_none(),
        "{}",
        r.stats.first.as_ref().unwrap()
    );
    assert_eq!(r.stats.outputs, 8 * sc.total_vectors());
}

// Every limit reached by one case, each its own test so the two test threads share
// their long builds and runs:
// - 256 x 256 at P = 16 (MAX_ROWS rows, BSBU_MAX_LANES lanes), dense;
// - 2 x 8192 at P = 1, dense: MAX_COLS columns (the wide e_L memory), and one lane's
//   entry memory filled to exactly MAX_LANE_ENTRIES (2 rows x 8192);
// - P = 13, the odd lane count (rows do not split evenly), 256 x 256.
// Verilator runs all three, Icarus the last two.

#[test]
fn bsbu_at_its_lane_and_row_limits_matches_golden() {
    use golden::params::{BSBU_MAX_LANES, MAX_ROWS};
    limit_case(BSBU_MAX_LANES, MAX_ROWS, 256, 0.0, false);
}

#[test]
fn bsbu_at_its_column_and_lane_entry_limits_matches_golden_on_both_simulators() {
    use golden::params::{MAX_COLS, MAX_LANE_ENTRIES};
    let longest = limit_case(1, 2, MAX_COLS, 0.0, true);
    assert_eq!(longest, MAX_LANE_ENTRIES, "the 2 x 8192 case fills a lane");
}

#[test]
fn bsbu_with_an_odd_lane_count_at_its_row_limit_matches_golden_on_both_simulators() {
    limit_case(13, golden::params::MAX_ROWS, 256, 0.5, true);
}

/// One limit case on Verilator (and Icarus when `icarus`); its longest lane's
/// nonzeros.
fn limit_case(lanes: usize, rows: usize, cols: usize, sparsity: f64, icarus: bool) -> usize {
    let cache = sim::verilator::default_cache_dir();
    let sc = BsbuScenario::new(lanes, rows, cols, sparsity, 3, 17).unwrap();
    let s = sc.matrix().unwrap();
    let longest = *s.lane_nnz(lanes).iter().max().unwrap();
    let dir = work(&format!("limits_p{lanes}_{rows}x{cols}"));
    let v = sc
        .run(SimKind::Verilator, &cache, &dir)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", v.summary());
    assert!(
        v.stats.first.is_none(),
        "{}",
        v.stats.first.as_ref().unwrap()
    );
    assert_eq!(v.stats.outputs, rows * sc.total_vectors());
    if icarus {
        let i = sc
            .run(SimKind::Icarus, &cache, &dir)
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", i.summary());
        let p = testbench::verdict(&[&v.stats, &i.stats]);
        assert!(p.is_empty(), "{p:?}");
    }
    longest
}

#[test]
fn bsbu_overlapped_stream_stays_within_5_percent_of_its_bound() {
    // Load, compute and drain overlap, so a long stream without stalls costs
    // max(load words, most nonzeros of a lane + pipeline, drain words) per vector:
    // compute-bound at P = 1 and load-bound from P = 4 at 64 x 64, sparsity 0.9.
    // Serialized stages would cost their sum (about 2.5x at P = 4).
    let cache = sim::verilator::default_cache_dir();
    for lanes in [1, 4, 16] {
        let mut sc = BsbuScenario::new(lanes, 64, 64, 0.9, 300, 5).unwrap();
        sc.stall = Stall::NONE;
        sc.corner_rows = false;
        let unit = testbench::BsbuUnit::new(sc.clone()).unwrap();
        let bound = sc.bound(&unit.s);
        let r = testbench::run_case(
            &unit,
            0,
            SimKind::Verilator,
            Stall::NONE,
            &cache,
            &work("overlap"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("{} bound {bound:?}", r.summary());
        r.expect_clean(64 * sc.total_vectors()).unwrap();
        let ratio = r.cycles_per_vector() / bound.cycles() as f64;
        assert!(
            (1.0..=1.05).contains(&ratio),
            "P = {lanes}: {:.2} cycles/vector against the bound {} ({bound:?})",
            r.cycles_per_vector(),
            bound.cycles()
        );
    }
}

#[test]
fn bsbu_single_result_bank_lane_matches_golden_on_both_simulators() {
    // P = 1 with 200 rows: a lane holds more than 128 rows, so its result memory has
    // one bank and the compute waits for the drain; the e_L banks still overlap.
    let sc = BsbuScenario::new(1, 200, 24, 0.8, 40, 3).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let v = sc
        .run(SimKind::Verilator, &cache, &work("single_bank"))
        .unwrap_or_else(|e| panic!("{e}"));
    let i = sc
        .run(SimKind::Icarus, &cache, &work("single_bank"))
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}\n{}", v.summary(), i.summary());
    v.expect_clean(200 * sc.total_vectors()).unwrap();
    let p = testbench::verdict(&[&v.stats, &i.stats]);
    assert!(p.is_empty(), "{p:?}");
}
