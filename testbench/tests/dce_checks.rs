//! The engine's harness and error paths: a corrupted expectation is caught and
//! located on both simulators with a waveform; the hardware flags input streams
//! shorter or longer than the configured map; lint is clean up to the documented
//! waivers; bad parameters get named errors before anything is simulated.

use std::path::PathBuf;

use golden::dce::{DceLayer, DceSizes};
use sim::stream::{run_verilator, Check, Stall};
use testbench::dce::{sequence, DceCase, Step};
use testbench::run_both_fresh;

fn work(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/hdfa-test")
        .join(name)
}

fn small() -> (DceCase, DceSizes) {
    let l = DceLayer::EXAMPLE.validate().unwrap();
    let sizes = DceSizes::fitting(4, &[l]).unwrap();
    (DceCase::random("small", l, 4, 5).unwrap(), sizes)
}

fn fresh(name: &str) -> PathBuf {
    testbench::fresh_test_dir(name)
}

#[test]
fn dce_corrupted_expectation_is_reported_with_location_and_waveform_on_both_simulators() {
    let (case, sizes) = small();
    let design = rtl::dce::generate(&sizes).unwrap();
    let v = case.stream(&sizes).unwrap();
    // Vector 7 (random 1), output word 5·15 + 4: channel 5 (lane 1), pixel 4.
    let (vec, row) = (7, 5 * 15 + 4);
    let [m, _] = testbench::locate_corrupted_word(&design, &v, (vec, row, 0x20), "dce_corrupt")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.lane, 1);
    let text = m.to_string();
    assert!(
        text.contains("unit dce")
            && text.contains(&format!(
                "vector {vec} (small: random 1), row {row}, lane 1"
            ))
            && text.contains("cycle"),
        "{text}"
    );
}

#[test]
fn dce_len_err_rises_on_short_and_unterminated_streams_and_clears_on_one_instance_on_both_simulators(
) {
    let (case, sizes) = small();
    let design = rtl::dce::generate(&sizes).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let n = case.layer.stream_words();
    let one = case.clone().truncated(1);
    let other = DceCase {
        vectors: case.vectors[5..7].to_vec(),
        ..case.clone()
    };
    // good -> 7 words short -> good -> in_last missing -> good, on one instance: every
    // good pass must be bit-exact with len_err low, every bad one must raise it.
    let v = sequence(
        &sizes,
        &[
            Step::Program(&case),
            Step::Vectors(&one),
            Step::Malformed {
                case: &case,
                words: n - 7,
                last_at: Some(n - 8),
            },
            Step::Vectors(&other),
            Step::Malformed {
                case: &case,
                words: n,
                last_at: None,
            },
            Step::Vectors(&one),
        ],
    )
    .unwrap();
    assert_eq!(v.passes.len(), 6);
    for r in run_both_fresh(&design, &v, Stall::SOME, "dce_len_err").unwrap() {
        assert!(r.first.is_none(), "{}", r.first.as_ref().unwrap());
        assert_eq!(r.outputs, 6 * case.layer.out_words());
        assert!(r.len_err);
        assert_eq!(r.inputs as usize, 5 * n + (n - 7));
    }
    // The check can fail: expecting the flag low after a short stream is reported.
    let mut wrong = v.clone();
    wrong.passes[1].len_err = Some(false);
    let r = run_verilator(
        &design,
        &wrong,
        Stall::SOME,
        &cache,
        Some(&fresh("dce_len_err_wrong")),
    )
    .unwrap();
    let m = r.first.expect("a raised len_err must be seen");
    assert_eq!(
        (m.check, m.vector, m.expected, m.actual),
        (Check::LenErr, 1, 0, 1)
    );
}

#[test]
fn dce_reprogrammed_between_layers_stays_bit_exact_on_both_simulators() {
    // A: k 5, d 2, G 2, 7x6 map; B: k 3, d 3, G 4, 5x5, other shifts; then A again.
    // B leaves tap-table entries 9..24 from A and different ping-pong and error state.
    let a = DceLayer {
        h: 7,
        w: 6,
        k: 5,
        ..DceLayer::EXAMPLE
    }
    .validate()
    .unwrap();
    let b = DceLayer {
        cs: 8,
        ct: 16,
        h: 5,
        dil: 3,
        groups: 4,
        shift2: 2,
        shift1: 2,
        ..DceLayer::EXAMPLE
    }
    .validate()
    .unwrap();
    // Four vectors per layer keep Icarus's share of CI small (it simulates this
    // engine at about 2k cycles/s): saturating (+max), alternating ±full scale,
    // random full scale, and one random vector.
    let four = |c: DceCase| DceCase {
        vectors: (c.vectors.into_iter().enumerate())
            .filter(|(i, _)| [1, 3, 5, 6].contains(i))
            .map(|(_, v)| v)
            .collect(),
        ..c
    };
    let ca = four(DceCase::random("A", a, 1, 21).unwrap());
    let cb = four(DceCase::random("B", b, 1, 22).unwrap());
    assert_eq!((ca.vectors.len(), cb.vectors.len()), (4, 4));
    let sizes = DceSizes::fitting(4, &[a, b]).unwrap();
    let design = rtl::dce::generate(&sizes).unwrap();
    let v = sequence(
        &sizes,
        &[
            Step::Program(&ca),
            Step::Vectors(&ca),
            Step::Program(&cb),
            Step::Vectors(&cb),
            Step::Program(&ca),
            Step::Vectors(&ca),
        ],
    )
    .unwrap();
    let words = 2 * ca.vectors.len() * a.out_words() + cb.vectors.len() * b.out_words();
    let runs = run_both_fresh(&design, &v, Stall::SOME, "dce_reprogram").unwrap();
    for r in &runs {
        assert!(r.first.is_none(), "{}", r.first.as_ref().unwrap());
        assert_eq!((r.mismatches, r.outputs), (0, words));
    }
    assert!(
        runs[0].disagreements(&runs[1]).is_empty(),
        "{:?}",
        runs[0].disagreements(&runs[1])
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
    let (case, sizes) = small();
    // Layer fields out of range are the contract's test (contract::dce); here:
    // what only an engine of given sizes can reject.
    let base = case.layer;
    // A map larger than the buffers the engine was generated with.
    let big = DceLayer { h: 7, w: 7, ..base }.validate().unwrap();
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

/// Passes overlap: with G > 1 the next pass's error words load during D1 and the
/// drain, so back-to-back passes keep the engine busy. Total utilization (ideal
/// nonzero-tap cycles / all cycles) over 4 passes of a 32-channel 16×16 layer at
/// P = 4 must stay ≥ 95% at G = 8 (89% without the overlap) and at G = 1.
#[test]
fn dce_overlapped_passes_keep_total_utilization_at_95_percent_at_g1_and_g8() {
    use testbench::dce::DceUnit;
    use testbench::{run_case, SimKind};
    let cases = [1usize, 8]
        .iter()
        .map(|&g| {
            let l = DceLayer {
                cs: 32,
                ct: 32,
                h: 16,
                w: 16,
                up: 1,
                k: 3,
                dil: 2,
                groups: g,
                shift2: 0,
                shift1: 0,
            }
            .with_default_shifts()
            .unwrap();
            DceCase::random_only(format!("overlap_g{g}"), l, 4, 3).unwrap()
        })
        .collect::<Vec<_>>();
    let unit = DceUnit::new(4, cases).unwrap();
    let cache = sim::verilator::default_cache_dir();
    for i in 0..2 {
        let r = run_case(
            &unit,
            i,
            SimKind::Verilator,
            Stall::NONE,
            &cache,
            &fresh("dce_overlap"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let words = unit.cases[i].layer.out_words() * 4;
        r.expect_clean(words).unwrap_or_else(|e| panic!("{e}"));
        let total = r.ideal_per_vector / r.cycles_per_vector();
        println!("{}: total utilization {:.2}%", r.summary(), 100.0 * total);
        assert_eq!(r.vectors, 4);
        assert!(
            total >= 0.95,
            "{}: total utilization {total:.4}",
            r.summary()
        );
    }
}

/// The soak's first find, shrunk (`hdfa cosim --unit dce --lanes 1 --cs 4 --ct 4
/// --height 1 --width 1 --up 1 --k 1 --dil 1 --groups 4 --shift2 0 --shift1 0 --seed 0
/// --vectors 396`): on a 1 × 1 map the next block finished within one long output
/// stall and overwrote the drained half whose last word the stalled stage was still
/// re-reading (vector 401, row 1 got row 3's word). The engine now frees a half only
/// when the stage has taken its last word; the same case on the old behaviour (the
/// mutant `free-at-fetch`) must still fail.
#[test]
fn dce_a_drained_half_is_not_rewritten_while_the_stalled_output_rereads_its_last_word() {
    let l = DceLayer {
        cs: 4,
        ct: 4,
        h: 1,
        w: 1,
        up: 1,
        k: 1,
        dil: 1,
        groups: 4,
        shift2: 0,
        shift1: 0,
    }
    .validate()
    .unwrap();
    let case = DceCase::random("k1_d1_g4", l, 396, 0).unwrap();
    let sizes = DceSizes::fitting(1, &[l]).unwrap();
    let design = rtl::dce::generate(&sizes).unwrap();
    let v = case.stream(&sizes).unwrap();
    for r in run_both_fresh(&design, &v, Stall::SOME, "dce_free_half").unwrap() {
        assert!(
            r.mismatches == 0 && r.first.is_none(),
            "{}: {:?}",
            r.sim,
            r.first
        );
        assert_eq!(r.outputs, 402 * 4, "{}", r.sim);
    }
    let bad = testbench::mutation::DCE_FREE_AT_FETCH
        .apply(&design)
        .unwrap();
    let cache = sim::verilator::default_cache_dir();
    let r = run_verilator(
        &bad,
        &v,
        Stall::SOME,
        &cache,
        Some(&fresh("dce_free_half_mutant")),
    )
    .unwrap();
    let m = r.first.expect("the old behaviour must fail this case");
    assert_eq!((m.vector, m.row), (401, 1), "{m}");
}
