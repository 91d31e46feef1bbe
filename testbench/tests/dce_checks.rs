//! The engine's harness and error paths: a corrupted expectation is caught and
//! located on both simulators with a waveform; the hardware flags input streams
//! shorter or longer than the configured map; lint is clean up to the documented
//! waivers; bad parameters get named errors before anything is simulated.

use std::path::PathBuf;

use golden::dce::{DceLayer, DceSizes};
use sim::stream::{run_verilator, Stall};
use testbench::dce::{probe_len_err, DceCase};

fn work(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/hdfa-test")
        .join(name)
}

fn small() -> (DceCase, DceSizes) {
    let l = DceLayer::new(4, 8, 3, 5, 3, 2, 2, 1, 3).unwrap();
    let sizes = DceSizes::fitting(4, &[l]).unwrap();
    (DceCase::random("small", l, 4, 5).unwrap(), sizes)
}

#[test]
fn dce_corrupted_expectation_is_reported_with_location_and_waveform_on_both_simulators() {
    let (case, sizes) = small();
    let design = rtl::dce::generate(&sizes).unwrap();
    let mut v = case.stream(&sizes).unwrap();
    // Vector 7, output word 5·15 + 4: channel 5 (lane 1), pixel 4.
    let (vec, row) = (7, 5 * 15 + 4);
    v.expected[vec * 120 + row] ^= 0x20;
    let cache = sim::verilator::default_cache_dir();
    let r = run_verilator(
        &design,
        &v,
        Stall::SOME,
        &cache,
        &work("dce_corrupt_verilator"),
    )
    .unwrap();
    let m = r
        .first
        .as_ref()
        .expect("the corrupted word must be reported");
    assert_eq!((r.mismatches, m.vector, m.row, m.lane), (1, vec, row, 1));
    assert_eq!(m.actual ^ 0x20, m.expected);
    let wave = m.waveform.clone().expect("waveform path");
    assert!(
        std::fs::metadata(&wave)
            .map(|md| md.len() > 0)
            .unwrap_or(false),
        "no waveform at {}",
        wave.display()
    );
    let text = m.to_string();
    assert!(
        text.contains("unit dce")
            && text.contains(&format!("vector {vec}, row {row}, lane 1"))
            && text.contains("cycle"),
        "{text}"
    );

    let ri =
        sim::icarus::run_icarus(&design, &v, Stall::SOME, &work("dce_corrupt_icarus")).unwrap();
    let mi = ri.first.as_ref().expect("icarus must report the mismatch");
    assert_eq!(
        (
            ri.mismatches,
            mi.vector,
            mi.row,
            mi.lane,
            mi.cycle,
            mi.actual
        ),
        (1, vec, row, 1, m.cycle, m.actual)
    );
    let wave = mi.waveform.clone().expect("VCD path");
    assert!(std::fs::metadata(&wave)
        .map(|md| md.len() > 0)
        .unwrap_or(false));
}

#[test]
fn dce_flags_input_streams_shorter_or_longer_than_the_configured_map() {
    let (case, sizes) = small();
    let design = rtl::dce::generate(&sizes).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let n = case.layer.stream_words();
    assert!(
        !probe_len_err(&design, &sizes, &case, n, Some(n - 1), &cache).unwrap(),
        "a well-formed stream"
    );
    assert!(
        probe_len_err(&design, &sizes, &case, n - 7, Some(n - 8), &cache).unwrap(),
        "in_last 7 words early"
    );
    assert!(
        probe_len_err(&design, &sizes, &case, n + 3, Some(n + 2), &cache).unwrap(),
        "in_last missing at the end"
    );
    assert!(
        !probe_len_err(&design, &sizes, &case, n, Some(n - 1), &cache).unwrap(),
        "the flag clears on the next good pass"
    );
}

#[test]
fn dce_lint_is_clean_up_to_the_documented_waivers() {
    let (_, sizes) = small();
    let design = rtl::dce::generate(&sizes).unwrap();
    let needed = sim::lint::lint(&design, &work("dce_lint")).unwrap_or_else(|e| panic!("{e}"));
    for w in &needed {
        assert!(
            rtl::LINT_WAIVERS.iter().any(|(n, _)| n == w),
            "undocumented waiver {w}"
        );
    }
}

#[test]
fn dce_bad_input_gets_named_errors() {
    let e = DceLayer::new(6, 8, 5, 5, 3, 1, 4, 0, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("groups = 4") && e.contains("source channels 6"),
        "{e}"
    );
    let e = DceLayer::new(8, 8, 5, 5, 3, 0, 2, 0, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("d = 0") && e.contains("1..=4"), "{e}");
    let e = DceLayer::new(8, 8, 5, 5, 7, 1, 2, 0, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("k = 7") && e.contains("1, 3, 5"), "{e}");
    // A map larger than the buffers the engine was generated with.
    let (case, sizes) = small();
    let big = DceLayer::new(4, 8, 7, 7, 3, 2, 2, 1, 3).unwrap();
    let big_case = DceCase::random("big", big, 1, 1).unwrap();
    let e = big_case.stream(&sizes).unwrap_err().to_string();
    assert!(
        e.contains("map (H*W words) = 49") && e.contains("at most 15"),
        "{e}"
    );
    // Vectors shorter or longer than the declared map.
    let mut short = case.clone();
    short.vectors[0].e_src.pop();
    let e = short.stream(&sizes).unwrap_err().to_string();
    assert!(
        e.contains("source errors") && e.contains("59") && e.contains("60"),
        "{e}"
    );
    let mut long = case.clone();
    long.vectors[1].mask.push(true);
    let e = long.stream(&sizes).unwrap_err().to_string();
    assert!(
        e.contains("ReLU mask") && e.contains("121") && e.contains("120"),
        "{e}"
    );
    // Lanes that do not divide the channels per group.
    let e = DceSizes::fitting(8, &[case.layer]).unwrap_err().to_string();
    assert!(
        e.contains("lanes = 8") && e.contains("4 output channels per group"),
        "{e}"
    );
}

#[test]
fn dce_synthesizes_for_ice40_with_block_rams_area_and_fmax() {
    let (case, sizes) = small();
    let design = rtl::dce::generate(&sizes).unwrap();
    let r = synth::synthesize(&design, &case.config(sizes.lanes), &work("dce_synth_p4"))
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}\n{}", synth::SynthReport::MD_HEADER, r.md_row());
    assert!(
        r.luts > 200 && r.ffs > 100 && r.generic_cells > 500,
        "{r:?}"
    );
    // Every buffer and table is a block RAM (ram_style = "block"): source, 4 D2
    // banks, 4 output banks, mask, two tap tables, channel table, weights.
    assert!(r.brams >= 13, "{r:?}");
    assert!(r.fmax_mhz > 5.0 && r.fmax_mhz < 1000.0, "{r:?}");
    assert!(r.dir.join("synth_report.json").exists() && r.dir.join("synth_report.md").exists());
}

#[test]
fn dce_capture_beyond_the_run_names_the_step_range() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).unwrap();
    let e = testbench::dce::capture(
        &root.join("configs/digits-hdfa.toml"),
        None,
        Some(&[0, 500]),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("capture step = 500") && e.contains("0..=83"),
        "{e}"
    );
}
