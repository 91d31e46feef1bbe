//! Co-simulation of the HDFA update unit against the golden model
//! (`update::apply`): corner vectors (every sum saturating both ways, coefficients 0
//! and 1.0, rounding ties, zeros; each as a BP and a DFA step) and random vectors at
//! P = 1, 4 and 8 on Verilator and Icarus, and vectors captured from real digits-hdfa
//! training steps (BP and DFA) on both. Every output word is compared; both
//! simulators must agree on cycles and phases.

use std::path::{Path, PathBuf};

use golden::cnn::num::Fx;
use golden::config::Config;
use golden::experiment::Experiment;
use golden::update::StepKind;
use sim::stream::Stall;
use testbench::upd::{from_captures, UpdUnit};
use testbench::{run_case, SimKind, Unit};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn work() -> PathBuf {
    root().join("target/hdfa-test/upd_cosim")
}

/// Run case 0 of `unit` on both simulators; both clean and in agreement.
fn both_clean(unit: &UpdUnit) {
    let cache = sim::verilator::default_cache_dir();
    let runs: Vec<_> = [SimKind::Verilator, SimKind::Icarus]
        .into_iter()
        .map(|sim| {
            let r = run_case(unit, 0, sim, Stall::SOME, &cache, &work())
                .unwrap_or_else(|e| panic!("{e}"));
            println!("{}", r.summary());
            r.expect_clean(unit.out_words(0))
                .unwrap_or_else(|e| panic!("{e}"));
            r
        })
        .collect();
    let problems = testbench::verdict(&[&runs[0].stats, &runs[1].stats]);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn upd_p1_corners_and_random_match_golden_on_verilator_and_icarus() {
    both_clean(&UpdUnit::new(1, 200, 3).unwrap());
}

#[test]
fn upd_p4_corners_and_random_match_golden_on_verilator_and_icarus() {
    both_clean(&UpdUnit::new(4, 200, 4).unwrap());
}

#[test]
fn upd_p8_corners_and_random_match_golden_on_verilator_and_icarus() {
    both_clean(&UpdUnit::new(8, 100, 5).unwrap());
}

#[test]
fn upd_p4_matches_golden_on_real_bp_and_dfa_steps_of_digits_hdfa() {
    let path = root().join("configs/digits-hdfa.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "csv = \"data/",
        &format!("csv = \"{}/data/", root().display()),
    );
    let mut e = Experiment::<Fx>::new(Config::parse(&path, &text).unwrap()).unwrap();
    let caps = e.capture_updates(&[0, 1, 2, 3, 4, 5]).unwrap();
    assert!(
        caps.iter().any(|c| c.kind == StepKind::Bp) && caps.iter().any(|c| c.kind == StepKind::Dfa)
    );
    let base = UpdUnit::new(4, 0, 1).unwrap();
    let unit = base.with_cases(vec![(
        "digits_hdfa_steps0_5".into(),
        from_captures(&caps, None),
    )]);
    both_clean(&unit);
}

#[test]
fn upd_a_corrupted_expected_word_is_named_by_vector_row_lane_and_field_on_both_simulators() {
    let unit = UpdUnit::new(2, 4, 6).unwrap();
    let v = unit.stream(0).unwrap();
    // Vector 2, row 10: beat 1, lane (10 / 3) mod 2 = 1, word 10 mod 3 = 1 (v_bp).
    let [m, _] = testbench::locate_corrupted_word(unit.design(), &v, (2, 10, 1 << 7), "upd_locate")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((m.lane, m.field), (1, "v_bp"), "{m}");
    assert!(m.to_string().contains("row 10 (v_bp), lane 1"), "{m}");
}
