//! Hardware-in-the-loop training: digits-hdfa trains 60 steps (BP and DFA) with every
//! DFA error propagation on the Verilated dce (its two conv paths) and bsbu (the
//! dense path from e_L, four 256-row tiles) and every weight update on the Verilated
//! update unit, whose output words become the trainer's errors and state, and must
//! end bit-identical to the all-golden run; a faulty unit makes the run name the
//! first step and word that differ.

use std::path::{Path, PathBuf};

use testbench::hil::{train_on_hardware, HilOptions, HilUnit};

fn config() -> PathBuf {
    // Relative data paths in the configs are relative to the repository root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).unwrap();
    root.join("configs/digits-hdfa.toml")
}

#[test]
fn digits_hdfa_60_steps_with_errors_and_updates_on_the_rtl_end_bit_identical_to_golden() {
    let cache = sim::verilator::default_cache_dir();
    let r = train_on_hardware(&config(), &HilOptions::new(60), &cache)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", r.text());
    assert!(r.identical(), "{}", r.text());
    assert_eq!(r.steps, 60);
    assert!(r.kinds[0] > 10 && r.kinds[1] > 10, "{:?}", r.kinds);
    assert!(r.upd_cycles() as usize >= 60 * r.words_per_step / 4);
    assert!(r.text().starts_with("IDENTICAL: state checksum"));
    // Both path units ran: every DFA step's 16 samples through both conv paths on
    // the dce and the dense path's four tiles on the bsbu.
    assert_eq!(
        r.paths,
        ["t0 <- s2: dce", "t1 <- s2: dce", "t2 <- s3: bsbu x4"]
    );
    let unit = |n: &str| r.units.iter().find(|u| u.unit == n).unwrap().clone();
    assert_eq!(unit("dce").passes, r.kinds[1] * 16 * 2);
    assert_eq!(unit("bsbu").passes, r.kinds[1] * 16 * 4);
    assert_eq!((unit("dce").models, unit("bsbu").models), (1, 4));
    // Stored backward weights: the dce's sign memory and the bsbu's entry ROMs.
    assert!(r.weight_bits_stored > 0 && r.weight_bits_read > r.weight_bits_stored);
    assert!(unit("dce").cycles > 0 && unit("bsbu").cycles > 0);
}

#[test]
fn digits_lfsr_60_steps_with_regenerated_backward_weights_on_the_rtl_end_bit_identical() {
    let cache = sim::verilator::default_cache_dir();
    let file = config().with_file_name("digits-lfsr.toml");
    let r =
        train_on_hardware(&file, &HilOptions::new(60), &cache).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", r.text());
    assert!(r.identical(), "{}", r.text());
    assert_eq!(r.steps, 60);
    // The dense path's four tiles share one generator-mode bsbu (ROW_BASE picks the
    // tile), and the dce regenerates the conv paths' signs.
    assert_eq!(
        r.paths,
        [
            "t0 <- s2: dce",
            "t1 <- s2: dce",
            "t2 <- s3: bsbu (generator) x4"
        ]
    );
    let unit = |n: &str| r.units.iter().find(|u| u.unit == n).unwrap().clone();
    assert_eq!(unit("bsbu").models, 1);
    // No backward-weight bit is stored or read.
    assert_eq!((r.weight_bits_stored, r.weight_bits_read), (0, 0));
    assert!(r
        .text()
        .contains("backward weights: 0 bits stored, 0 bits read per DFA step"));
    assert_eq!(unit("bsbu").passes, r.kinds[1] * 16 * 4);
}

#[test]
fn a_faulty_dce_in_the_loop_is_named_by_step_sample_path_and_word() {
    let cache = sim::verilator::default_cache_dir();
    let mut o = HilOptions::new(60);
    o.mutant = Some((HilUnit::Dce, "sign-flip".into()));
    let r = train_on_hardware(&config(), &o, &cache).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", r.text());
    assert!(!r.identical());
    let d = r.first_diff.as_deref().expect("a difference");
    // Step 0 is a DFA step; its first sample's first conv path (t1, the later block,
    // runs first) differs at some word.
    assert!(
        d.starts_with("step 0 (dfa), sample 0, path t1 <- s2 (dce), error word "),
        "{d}"
    );
    assert_eq!(r.steps, 1);
}

#[test]
fn a_faulty_update_unit_in_the_loop_is_named_by_step_tensor_and_word() {
    let cache = sim::verilator::default_cache_dir();
    let mut o = HilOptions::new(60);
    // The errors stay golden: this test is about the update unit.
    o.propagation = false;
    o.mutant = Some((HilUnit::Upd, "round-trunc".into()));
    let r = train_on_hardware(&config(), &o, &cache).unwrap_or_else(|e| panic!("{e}"));
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
