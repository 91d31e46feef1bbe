//! Hardware-in-the-loop training: digits-hdfa trains 60 steps (BP and DFA) with every
//! weight update on the Verilated update unit, whose output words become the
//! trainer's state, and must end bit-identical to the all-golden run; a faulty unit
//! makes the run name the first step, tensor and word that differ.

use std::path::{Path, PathBuf};

use testbench::hil::train_updates_on_hardware;

fn config() -> PathBuf {
    // Relative data paths in the configs are relative to the repository root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).unwrap();
    root.join("configs/digits-hdfa.toml")
}

#[test]
fn digits_hdfa_60_steps_with_updates_on_the_rtl_end_bit_identical_to_golden() {
    let cache = sim::verilator::default_cache_dir();
    let r = train_updates_on_hardware(&config(), None, 60, 4, None, &cache)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", r.text());
    assert!(r.identical(), "{}", r.text());
    assert_eq!(r.steps, 60);
    assert!(r.kinds[0] > 10 && r.kinds[1] > 10, "{:?}", r.kinds);
    assert!(r.upd_cycles as usize >= 60 * r.words_per_step / 4);
    assert!(r.text().starts_with("IDENTICAL: state checksum"));
}

#[test]
fn a_faulty_update_unit_in_the_loop_is_named_by_step_tensor_and_word() {
    let cache = sim::verilator::default_cache_dir();
    let r = train_updates_on_hardware(&config(), None, 60, 4, Some("round-trunc"), &cache)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", r.text());
    assert!(!r.identical());
    let d = r.first_diff.as_deref().expect("a difference");
    // Lane 1 of 4 truncates η·u: a weight 4i + 1 of the first tensor at the first
    // step (where truncating and rounding first disagree).
    assert!(
        d.starts_with("step 0 (") && d.contains("tensor w0, word "),
        "{d}"
    );
    let word: usize = d
        .split("word ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(word % 4, 1, "{d}");
    assert!(d.contains(": theta golden"), "{d}");
    assert_eq!(r.steps, 1);
}
