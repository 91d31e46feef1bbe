//! The `hdfa` command line as a user runs it.

use std::process::Command;

fn hdfa(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hdfa"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_cosim_summary_ends_with_zero_mismatches_on_both_simulators() {
    let (ok, out, err) = hdfa(&[
        "cosim", "--unit", "bsbu", "--lanes", "2", "--rows", "8", "--cols", "8", "--sparsity", "0.5", "--vectors", "50",
        "--seed", "4", "--sim", "both", "--out", "target/hdfa-test/cli",
    ]);
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("bsbu ")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in lines {
        assert!(l.ends_with("mismatches: 0") && l.contains("utilization") && l.contains("cycles"), "{l}");
    }
}

#[test]
fn cli_emit_writes_verilog_with_a_top_module() {
    let (ok, out, err) = hdfa(&["emit", "--unit", "bsbu", "--lanes", "3", "--rows", "9", "--cols", "5", "--out", "target/hdfa-test/cli-emit"]);
    assert!(ok, "{out}\n{err}");
    let v = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/hdfa-test/cli-emit/bsbu_p3.v")).unwrap();
    assert!(v.contains("module top(clock,in_data,in_valid,in_ready,out_data,out_valid,out_ready,out_last,phase)"));
    assert!(v.contains("lanes$2"), "three lanes expected");
}

#[test]
fn cli_bad_input_exits_nonzero_with_value_and_range() {
    for (args, want) in [
        (vec!["cosim", "--lanes", "0"], "lanes = 0 is out of range: valid range is 1..=16"),
        (vec!["cosim", "--lanes", "17"], "lanes = 17"),
        (vec!["cosim", "--sparsity", "1.0"], "sparsity = 1 is out of range: valid range is [0, 1)"),
        (vec!["emit", "--cols", "0"], "cols = 0"),
        (vec!["emit", "--shift", "20"], "shift = 20 is out of range: valid range is 0..=16"),
        (vec!["emit", "--lanes", "1", "--rows", "256", "--cols", "256", "--sparsity", "0"], "lane entries"),
    ] {
        let (ok, out, err) = hdfa(&args);
        assert!(!ok, "{args:?} should fail: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
