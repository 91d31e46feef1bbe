//! The `hdfa` command line as a user runs it.

use std::process::Command;

mod common;

fn hdfa(args: &[&str]) -> (bool, String, String) {
    let (status, out, err) = common::hdfa_env(args, &[]);
    (status == 0, out, err)
}

#[test]
fn cli_cosim_summary_ends_with_zero_mismatches_on_both_simulators() {
    let (ok, out, err) = hdfa(&[
        "cosim",
        "--unit",
        "bsbu",
        "--lanes",
        "2",
        "--rows",
        "8",
        "--cols",
        "8",
        "--sparsity",
        "0.5",
        "--vectors",
        "50",
        "--seed",
        "4",
        "--sim",
        "both",
        "--out",
        "target/hdfa-test/cli",
    ]);
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("bsbu ")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in lines {
        assert!(
            l.ends_with("mismatches: 0") && l.contains("utilization") && l.contains("cycles"),
            "{l}"
        );
    }
}

#[test]
fn cli_cosim_exits_nonzero_on_a_faulty_design_naming_the_vector_and_the_problem() {
    for (mutant, check) in [
        ("sign-flip", "expected"),
        ("out_last-low", "out_last on vector"),
    ] {
        let (ok, out, err) = hdfa(&[
            "cosim",
            "--unit",
            "bsbu",
            "--lanes",
            "4",
            "--rows",
            "16",
            "--cols",
            "12",
            "--sparsity",
            "0.5",
            "--vectors",
            "20",
            "--sim",
            "both",
            "--mutant",
            mutant,
            "--out",
            "target/hdfa-test/cli_mutant",
        ]);
        assert!(!ok, "{mutant}: a faulty design must fail\n{out}\n{err}");
        let summaries: Vec<&str> = out.lines().filter(|l| l.starts_with("bsbu ")).collect();
        assert_eq!(summaries.len(), 2, "{out}");
        assert!(
            summaries.iter().all(|l| !l.ends_with("mismatches: 0")),
            "{out}"
        );
        assert!(
            out.contains("MISMATCH [verilator]") && out.contains("MISMATCH [icarus]"),
            "{out}"
        );
        assert!(
            out.contains(check) && out.contains("PROBLEM") && out.contains("waveform"),
            "{out}"
        );
        assert!(err.contains("problem(s)"), "{err}");
    }
    let (ok, _, err) = hdfa(&["cosim", "--unit", "bsbu", "--mutant", "no-such-fault"]);
    assert!(
        !ok && err.contains("mutant = no-such-fault") && err.contains("sign-flip"),
        "{err}"
    );
}

#[test]
fn cli_emit_writes_verilog_with_a_top_module() {
    let (ok, out, err) = hdfa(&[
        "emit",
        "--unit",
        "bsbu",
        "--lanes",
        "3",
        "--rows",
        "9",
        "--cols",
        "5",
        "--out",
        "target/hdfa-test/cli-emit",
    ]);
    assert!(ok, "{out}\n{err}");
    let v = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/hdfa-test/cli-emit/bsbu_p3.v"
    ))
    .unwrap();
    assert!(v.contains(
        "module top(clock,in_data,in_valid,in_ready,out_data,out_valid,out_ready,out_last,phase,cfg_we,cfg_addr,cfg_data,rd_err,rd_w)"
    ));
    assert!(v.contains("lanes$2"), "three lanes expected");
}

#[test]
fn cli_bad_input_exits_nonzero_with_value_and_range() {
    for (args, want) in [
        (
            vec!["cosim", "--lanes", "0"],
            "lanes = 0 is out of range: valid range is 1..=16",
        ),
        (vec!["cosim", "--lanes", "17"], "lanes = 17"),
        (
            vec!["cosim", "--sparsity", "1.0"],
            "sparsity = 1 is out of range: valid range is [0, 1)",
        ),
        (vec!["emit", "--cols", "0"], "cols = 0"),
        (
            vec!["emit", "--shift", "20"],
            "shift = 20 is out of range: valid range is 0..=16",
        ),
        (
            vec![
                "emit",
                "--lanes",
                "1",
                "--rows",
                "256",
                "--cols",
                "256",
                "--sparsity",
                "0",
            ],
            "lane entries",
        ),
    ] {
        let (ok, out, err) = hdfa(&args);
        assert!(!ok, "{args:?} should fail: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn cli_train_writes_metrics_curves_checkpoint_and_resumes() {
    let out = "target/hdfa-test/cli-train";
    let _ = std::fs::remove_dir_all(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/hdfa-test/cli-train"
    ));
    let (ok, stdout, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-small.toml",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out,
        "--dump-step",
        "3",
    ]);
    assert!(ok, "{stdout}\n{err}");
    assert!(
        stdout.contains("epoch   1:") && stdout.contains("done: test accuracy"),
        "{stdout}"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(out);
    for f in [
        "metrics.csv",
        "metrics.json",
        "curves.svg",
        "checkpoint.bin",
        "dump-step3/inputs.npy",
        "dump-step3/layer2_grad_weight.npy",
        "dump-step3/formats.json",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let meta = std::fs::read_to_string(dir.join("dump-step3/formats.json")).unwrap();
    assert!(
        meta.contains("\"step\": 3"),
        "the dump names the step it took: {meta}"
    );
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let (ok, stdout, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-small.toml",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        out,
        "--resume",
    ]);
    assert!(ok, "{stdout}\n{err}");
    assert!(
        stdout.contains("resumed")
            && stdout.contains("epoch   2:")
            && !stdout.contains("epoch   1:"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn cli_train_bad_config_names_file_key_and_reason() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/digits-small.toml"),
    )
    .unwrap();
    let bad = dir.join("bad-gamma.toml");
    std::fs::write(
        &bad,
        text.replace("alpha = 0.9", "alpha = 0.9\ngamma = 1.5"),
    )
    .unwrap();
    let (ok, _, err) = hdfa(&["train", "--config", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("bad-gamma.toml")
            && err.contains("key `gamma`")
            && err.contains("[0, 1]"),
        "{err}"
    );
    let (ok, _, err) = hdfa(&["train", "--config", "no/such.toml"]);
    assert!(!ok && err.contains("no/such.toml"), "{err}");
}

#[test]
fn cli_train_takes_idx_paths_from_flags_and_rejects_a_truncated_file() {
    let d = "data/digits-8x8";
    let imgs = format!("{d}/digits-images-idx3-ubyte.gz");
    let labs = format!("{d}/digits-labels-idx1-ubyte.gz");
    let (ok, out, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-small.toml",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        "target/hdfa-test/cli-idx",
        "--train-images",
        &imgs,
        "--train-labels",
        &labs,
        "--test-images",
        &imgs,
        "--test-labels",
        &labs,
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1797 training / 1797 test images"), "{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test");
    std::fs::create_dir_all(&dir).unwrap();
    let raw = golden::data::read_maybe_gz(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(&imgs),
    )
    .unwrap();
    let cut = dir.join("cut-images.idx");
    std::fs::write(&cut, &raw[..raw.len() - 100]).unwrap();
    let cut = cut.to_str().unwrap();
    let (ok, _, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-small.toml",
        "--train-images",
        cut,
        "--train-labels",
        &labs,
        "--test-images",
        &imgs,
        "--test-labels",
        &labs,
    ]);
    assert!(
        !ok && err.contains("cut-images.idx") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn cli_dce_cosim_summary_ends_with_zero_mismatches_on_both_simulators() {
    let (ok, out, err) = hdfa(&[
        "cosim",
        "--unit",
        "dce",
        "--lanes",
        "2",
        "--cs",
        "4",
        "--ct",
        "4",
        "--height",
        "5",
        "--width",
        "3",
        "--dil",
        "3",
        "--groups",
        "2",
        "--vectors",
        "3",
        "--sim",
        "both",
        "--out",
        "target/hdfa-test/cli_dce",
    ]);
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("dce ")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in lines {
        assert!(
            l.ends_with("mismatches: 0") && l.contains("d=3 G=2") && l.contains("utilization"),
            "{l}"
        );
    }
    assert!(out.contains("traffic over 9 passes"), "{out}");
}

#[test]
fn cli_dce_emit_writes_verilog_with_a_top_module() {
    let (ok, out, err) = hdfa(&[
        "emit",
        "--unit",
        "dce",
        "--lanes",
        "1",
        "--groups",
        "1",
        "--out",
        "target/hdfa-test/cli_dce_emit",
    ]);
    assert!(ok, "{out}\n{err}");
    let v = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/hdfa-test/cli_dce_emit/dce_p1.v"
    ))
    .unwrap();
    assert!(
        v.contains("module top") && v.contains("cfg_addr"),
        "{}",
        &v[..200]
    );
}

#[test]
fn cli_dce_bad_parameters_name_the_value_and_the_range() {
    for (args, want) in [
        (
            vec!["--dil", "9"],
            "d = 9 is out of range: valid range is 1..=8",
        ),
        (
            vec!["--up", "3"],
            "up = 3 is out of range: valid range is one of 1, 2, 4",
        ),
        (
            vec!["--height", "6", "--width", "7", "--up", "2"],
            "width = 7 is out of range: valid range is a multiple of the up-sampling factor 2",
        ),
        (vec!["--k", "4"], "k = 4 is out of range"),
        (vec!["--groups", "3"], "groups = 3 is out of range"),
        (vec!["--cs", "6", "--groups", "4"], "source channels 6"),
        (
            vec!["--height", "40"],
            "height = 40 is out of range: valid range is 1..=32",
        ),
        (vec!["--lanes", "8", "--groups", "4"], "lanes = 8"),
    ] {
        let mut a = vec![
            "emit",
            "--unit",
            "dce",
            "--out",
            "target/hdfa-test/cli_dce_bad",
        ];
        a.extend(args.iter().copied());
        let (ok, out, err) = hdfa(&a);
        assert!(!ok, "{args:?} must fail: {out}");
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn cli_sweep_with_seeds_reports_mean_and_std_per_rung() {
    let out = "target/hdfa-test/cli-sweep";
    let (ok, stdout, err) = hdfa(&[
        "sweep",
        "--config",
        "configs/digits-small.toml",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--out",
        out,
    ]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains("% ± ")).collect();
    assert_eq!(rows.len(), 10, "one row per rung:\n{stdout}");
    // Two seeds differ somewhere (the std is not always 0).
    assert!(
        rows.iter().any(|r| !r.contains("± 0.00 |")),
        "two seeds gave identical accuracies on every rung:\n{stdout}"
    );
    let (ok1, one, err1) = hdfa(&[
        "sweep",
        "--config",
        "configs/digits-small.toml",
        "--epochs",
        "1",
        "--out",
        out,
    ]);
    assert!(ok1, "{err1}");
    // The BP rung of seed 1 alone, and the mean of seeds 1 and 2, bracket each other:
    // mean = (a1 + a2) / 2, so a1 and a2 lie at mean ± |a1 − a2| / 2 = mean ± std / √2.
    let num = |row: &str, i: usize| -> f64 {
        row.split('|')
            .nth(2)
            .unwrap()
            .trim()
            .split(['%', ' '])
            .nth(i)
            .unwrap()
            .parse()
            .unwrap()
    };
    let bp2 = rows.iter().find(|r| r.contains("| BP |")).unwrap();
    let bp1 = one.lines().find(|r| r.contains("| BP |")).unwrap();
    let (mean, std, a1) = (num(bp2, 0), num(bp2, 3), num(bp1, 0));
    let half_gap = std / 2f64.sqrt();
    assert!(
        (a1 - (mean - half_gap)).abs() < 0.015 || (a1 - (mean + half_gap)).abs() < 0.015,
        "seed 1 alone: {a1}; two seeds: {mean} ± {std}"
    );
    assert!(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/hdfa-test/cli-sweep/digits-small.md"
    ))
    .exists());
}

#[test]
fn cli_bsbu_cosim_from_config_runs_the_trainers_dense_path_tiles_on_both_simulators() {
    let (ok, stdout, err) = hdfa(&[
        "cosim",
        "--unit",
        "bsbu",
        "--from-config",
        "configs/digits-sparse.toml",
        "--sim",
        "both",
        "--out",
        "target/hdfa-test/cli-bsbu-from-config",
    ]);
    assert!(ok, "{stdout}\n{err}");
    let runs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("bsbu ")).collect();
    // 1,024 rows of the path into conv 2 in four 256-row tiles, on two simulators.
    assert_eq!(runs.len(), 8, "{stdout}");
    assert!(
        runs.iter().all(|l| l.ends_with("mismatches: 0")),
        "{stdout}"
    );
    // A config without a binary dense path is an error that says so.
    let (ok, _, err) = hdfa(&[
        "cosim",
        "--unit",
        "bsbu",
        "--from-config",
        "configs/digits-small.toml",
    ]);
    assert!(
        !ok && err.contains("no binary dense backward path"),
        "{err}"
    );
}

/// A small recurrent config derived from `configs/austen-char-lstm.toml`, written to
/// `target/hdfa-test/NAME.toml` with its sizes cut down (and `extra` edits).
fn small_rnn_config(name: &str, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("target/hdfa-test");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = std::fs::read_to_string(root.join("configs/austen-char-lstm.toml")).unwrap();
    for (from, to) in [
        ("hidden = 128", "hidden = 24"),
        ("embed = 32", "embed = 8"),
        ("batch = 16", "batch = 4"),
        ("bptt = 35", "bptt = 12"),
        ("train_limit = 200000", "train_limit = 6000"),
        ("eval_limit = 50000", "eval_limit = 800"),
        ("eta = 0.002", "eta = 0.01"),
    ]
    .iter()
    .chain(extra)
    {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `hdfa train` on a recurrent config: per-epoch perplexity and accuracy for train,
/// valid and test, the curves, a falling training perplexity, and the same numbers
/// on a second run; one epoch and a resume equal two epochs, on the fixed-point and on
/// the f32 path (each with its own checkpoint, which the other refuses).
#[test]
fn cli_train_rnn_writes_perplexity_and_accuracy_per_epoch_and_repeats_exactly() {
    let cfg = small_rnn_config("rnn-small", &[]);
    let run_path = |out: &str, epochs: &str, resume: bool, f32: bool| {
        let mut args = vec![
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--epochs",
            epochs,
            "--quiet",
            "--out",
            out,
        ];
        if resume {
            args.push("--resume");
        }
        if f32 {
            args.push("--f32");
        }
        let (ok, stdout, err) = hdfa(&args);
        assert!(ok, "{stdout}\n{err}");
        assert!(
            stdout.contains(&format!("epoch   {epochs}:"))
                && stdout.contains("done: test perplexity"),
            "{stdout}"
        );
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(out);
        assert!(dir.join("curves.svg").exists() && dir.join("metrics.json").exists());
        let checksum = stdout
            .split("checksum ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        (
            std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
            checksum,
            stdout,
        )
    };
    let run = |out: &str, epochs: &str, resume: bool| run_path(out, epochs, resume, false);
    let (a, sum_a, _) = run("target/hdfa-test/cli-rnn-a", "2", false);
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines.len(), 3, "{a}");
    assert!(
        lines[0].starts_with(
            "epoch,steps,bp_steps,train_loss,train_ppl,train_acc,valid_loss,valid_ppl"
        ),
        "{a}"
    );
    let col = |l: &str, k: usize| l.split(',').nth(k).unwrap().parse::<f64>().unwrap();
    assert!(
        col(lines[2], 4) < col(lines[1], 4),
        "train perplexity must fall: {a}"
    );
    assert!(
        col(lines[2], 10) < 82.0,
        "test perplexity below the uniform 82: {a}"
    );
    // Everything but the last column (tokens/s) repeats bit for bit.
    let (b, sum_b, _) = run("target/hdfa-test/cli-rnn-b", "2", false);
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(sum_a, sum_b);
    // One epoch, then --resume to two: the same metrics and the same final state.
    let out = "target/hdfa-test/cli-rnn-resume";
    let _ = std::fs::remove_dir_all(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(out),
    );
    let (_, sum_1, _) = run(out, "1", true);
    let (c, sum_c, stdout) = run(out, "2", true);
    assert!(
        stdout.contains("resumed") && stdout.contains("at epoch 1"),
        "{stdout}"
    );
    assert_ne!(sum_1, sum_c);
    assert_eq!(strip(&a), strip(&c));
    assert_eq!(sum_a, sum_c);
    // The f32 path: two epochs straight, and one then --resume to two.
    let (f, sum_f, _) = run_path("target/hdfa-test/cli-rnn-f32", "2", false, true);
    assert_ne!(sum_f, sum_a, "the f32 run must not be the fixed-point run");
    let fout = "target/hdfa-test/cli-rnn-f32-resume";
    let _ = std::fs::remove_dir_all(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(fout),
    );
    let (_, sum_f1, _) = run_path(fout, "1", true, true);
    let (g, sum_g, stdout) = run_path(fout, "2", true, true);
    assert!(
        stdout.contains("resumed") && stdout.contains("at epoch 1"),
        "{stdout}"
    );
    assert_ne!(sum_f1, sum_g);
    assert_eq!(strip(&f), strip(&g));
    assert_eq!(sum_f, sum_g);
    // A fixed-point checkpoint is not resumed on the f32 path.
    let (ok, stdout, err) = hdfa(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--epochs",
        "3",
        "--quiet",
        "--resume",
        "--f32",
        "--out",
        out,
    ]);
    assert!(
        !ok && err.contains("not a valid recurrent f32 checkpoint: wrong magic"),
        "{stdout}\n{err}"
    );
}

#[test]
fn cli_train_rnn_bad_config_names_file_key_value_and_range() {
    for (from, to, want) in [
        (
            "cell = \"lstm\"",
            "cell = \"tree\"",
            "key `cell`: \"tree\": valid values are \"rnn\", \"lstm\", \"gru\"",
        ),
        (
            "bp_ratio = 0.2",
            "bp_ratio = -0.5",
            "key `bp_ratio`: -0.5 is out of range: valid range is [0, 1]",
        ),
        (
            "sparsity = 0.8",
            "sparsity = 0.8\nlanes = 4",
            "unknown field `lanes`",
        ),
    ] {
        let cfg = small_rnn_config("rnn-bad", &[(from, to)]);
        let (ok, _, err) = hdfa(&["train", "--config", cfg.to_str().unwrap(), "--quiet"]);
        assert!(
            !ok && err.contains("rnn-bad.toml") && err.contains(want),
            "{to}: {err}"
        );
    }
    let cfg = small_rnn_config("rnn-mode", &[]);
    let (ok, _, err) = hdfa(&["train", "--config", cfg.to_str().unwrap(), "--mode", "bp"]);
    assert!(
        !ok && err.contains("--mode bp is out of range")
            && err.contains("a recurrent config")
            && err.contains("`bptt`, `dfa`, `hdfa`"),
        "{err}"
    );
}

/// `hdfa train --f32 --mode bptt` on a recurrent config: the f32 reference path
/// trains (the test perplexity falls below the uniform 82 and near the fixed-point
/// run's), says so, and takes BPTT steps only.
#[test]
fn cli_train_rnn_f32_bptt_runs_next_to_fixed_point() {
    let cfg = small_rnn_config("rnn-f32", &[]);
    let run = |extra: &[&str], out: &str| {
        let mut args = vec![
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--mode",
            "bptt",
            "--epochs",
            "2",
            "--quiet",
            "--out",
            out,
        ];
        args.extend(extra);
        let (ok, stdout, err) = hdfa(&args);
        assert!(ok, "{stdout}\n{err}");
        let last = stdout
            .lines()
            .find(|l| l.starts_with("epoch   2:"))
            .unwrap()
            .to_string();
        let ppl: f64 = last
            .split("| test loss ")
            .nth(1)
            .and_then(|r| r.split(" ppl ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            last.contains("BPTT/DFA steps") && last.contains("/0 |"),
            "{last}"
        );
        (stdout, ppl)
    };
    let (out32, p32) = run(&["--f32"], "target/hdfa-test/cli-rnn-f32");
    let (outfx, pfx) = run(&[], "target/hdfa-test/cli-rnn-f32-fixed");
    assert!(out32.contains("f32 reference") && outfx.contains("fixed point"));
    assert!(
        p32 < 82.0 && (p32 - pfx).abs() < 0.05 * pfx,
        "f32 {p32}, fixed {pfx}"
    );
}

/// `hdfa sweep --f32` on a recurrent config: one row per rung of the RNN ladder,
/// with perplexity and accuracy in fixed point and f32, and the table written to the
/// output directory.
#[test]
fn cli_sweep_rnn_prints_every_rung_of_the_ladder() {
    let cfg = small_rnn_config("rnn-sweep", &[]);
    let out = "target/hdfa-test/cli-rnn-sweep";
    let (ok, stdout, err) = hdfa(&[
        "sweep",
        "--config",
        cfg.to_str().unwrap(),
        "--epochs",
        "1",
        "--f32",
        "--out",
        out,
    ]);
    assert!(ok, "{stdout}\n{err}");
    let rungs = [
        "| original DFA (real-valued) |",
        "| + modules |",
        "| + upper-triangular |",
        "| + binary |",
        "| + sparsity 0.8 |",
        "| + sparsity 0.95 |",
        "| + sparsity 0.98 |",
        "| + init (B.2), sparsity 0.8 |",
        "| HDFA p = 0.1",
        "| HDFA p = 0.2",
        "| BPTT |",
    ];
    for r in rungs {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(r))
            .unwrap_or_else(|| panic!("{r} missing:\n{stdout}"));
        // Fixed-point test perplexity, and the f32 path's in the last two columns.
        let cell = |k: usize| line.split('|').nth(k).unwrap().trim().to_string();
        let (ppl, ppl32): (f64, f64) = (cell(2).parse().unwrap(), cell(7).parse().unwrap());
        assert!(ppl > 1.0 && ppl < 82.0, "{line}");
        assert!(ppl32 > 1.0 && ppl32 < 82.0, "{line}");
    }
    let table = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(out)
        .join("austen-char-lstm.md");
    assert_eq!(std::fs::read_to_string(table).unwrap().lines().count(), 13);
}

/// `hdfa train-bench` on a recurrent config: one row per mode (the config's HDFA and
/// BPTT) with positive fixed-point and f32 tokens/s; too many steps for the corpus is
/// refused with the valid range.
#[test]
fn cli_train_bench_rnn_times_both_paths_in_both_modes() {
    let cfg = small_rnn_config("rnn-bench", &[]);
    let (ok, stdout, err) = hdfa(&[
        "train-bench",
        "--config",
        cfg.to_str().unwrap(),
        "--steps",
        "3",
        "--threads",
        "1",
    ]);
    assert!(ok, "{stdout}\n{err}");
    for mode in ["| hdfa p = 0.2 |", "| bptt |"] {
        let row = stdout
            .lines()
            .find(|l| l.contains(mode))
            .unwrap_or_else(|| panic!("{mode} missing:\n{stdout}"));
        let cell = |k: usize| row.split('|').nth(k).unwrap().trim().to_string();
        assert_eq!(cell(4), "4 x 12", "{row}");
        for k in [5, 6] {
            assert!(cell(k).parse::<f64>().unwrap() > 0.0, "{row}");
        }
    }
    let (ok, _, err) = hdfa(&[
        "train-bench",
        "--config",
        cfg.to_str().unwrap(),
        "--steps",
        "1000",
        "--fixed-only",
    ]);
    assert!(
        !ok && err.contains("windows per epoch: valid --steps is at most"),
        "{err}"
    );
}

#[test]
fn cli_dce_case_filter_that_matches_nothing_names_the_cases() {
    // The digits-hdfa config has two conv paths (into layers 0 and 1, from layer 2).
    let (ok, _, err) = hdfa(&[
        "cosim",
        "--unit",
        "dce",
        "--from-config",
        "configs/digits-hdfa.toml",
        "--case",
        "t9",
    ]);
    assert!(
        !ok && err.contains("--case \"t9\" matches no case")
            && err.contains("digits_hdfa_t0_s2, digits_hdfa_t1_s2"),
        "{err}"
    );
}

#[test]
fn cli_upd_cosim_from_config_runs_real_bp_and_dfa_steps_on_both_simulators() {
    let (ok, out, err) = hdfa(&[
        "cosim",
        "--unit",
        "upd",
        "--lanes",
        "2",
        "--from-config",
        "configs/digits-hdfa.toml",
        "--sim",
        "both",
        "--out",
        "target/hdfa-test/cli_upd",
    ]);
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("upd ")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        // The case name lists the captured steps with their kinds: both occur.
        assert!(l.contains("bp_") && l.contains("dfa_"), "{l}");
        assert!(l.ends_with("mismatches: 0"), "{l}");
    }
    // The emitted design comes with its register map.
    let (ok, out, err) = hdfa(&[
        "emit",
        "--unit",
        "upd",
        "--lanes",
        "2",
        "--out",
        "target/hdfa-test/cli_upd_emit",
    ]);
    assert!(ok, "{out}\n{err}");
    let v = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/hdfa-test/cli_upd_emit/upd_p2.v"
    ))
    .unwrap();
    assert!(
        v.contains("module top(") && v.contains("input wire  [255:0] in_data;"),
        "{}",
        &v[..400.min(v.len())]
    );
    let h = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/hdfa-test/cli_upd_emit/upd_p2_regs.h"
    ))
    .unwrap();
    assert!(h.contains("#define HDFA_UPD_REG_GAMMA 2"), "{h}");
    // A faulty design is named down to the lane and the word.
    let (ok, out, _) = hdfa(&[
        "cosim",
        "--unit",
        "upd",
        "--lanes",
        "2",
        "--vectors",
        "20",
        "--mutant",
        "round-trunc",
        "--out",
        "target/hdfa-test/cli_upd_mutant",
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("MISMATCH [verilator] unit upd")
            && out.contains("lane 1")
            && out.contains("(theta)"),
        "{out}"
    );
    // Lanes out of range.
    let (ok, out, err) = hdfa(&["emit", "--unit", "upd", "--lanes", "9"]);
    assert!(
        !ok && err.contains("lanes = 9") && err.contains("1..=8"),
        "{out}\n{err}"
    );
}

#[test]
fn cli_train_hw_verilator_ends_identical_and_names_the_first_difference_of_a_faulty_unit() {
    let (ok, out, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-hdfa.toml",
        "--hw",
        "verilator",
        "--steps",
        "10",
        "--lanes",
        "2",
        "--out",
        "target/hdfa-test/cli_hw",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.starts_with("IDENTICAL: state checksum"), "{out}");
    assert!(
        out.contains("10 steps of digits-hdfa")
            && out.contains("cycles per training step")
            && out.contains("every DFA error propagation on the RTL (t0 <- s2: dce"),
        "{out}"
    );
    let rep = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/hdfa-test/cli_hw/hil_report.txt"
    ))
    .unwrap();
    assert!(rep.starts_with("IDENTICAL"), "{rep}");
    let (ok, out, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-hdfa.toml",
        "--hw",
        "verilator",
        "--steps",
        "5",
        "--lanes",
        "2",
        "--hw-mutant",
        "kind-ignored",
        "--out",
        "target/hdfa-test/cli_hw_bad",
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.starts_with("DIFFERS: step ") && out.contains("(dfa), tensor w0, word "),
        "{out}"
    );
    assert!(err.contains("differs from the golden run"), "{err}");
    let (ok, _, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-hdfa.toml",
        "--hw",
        "verilator",
    ]);
    assert!(!ok && err.contains("--steps"), "{err}");
    let (ok, _, err) = hdfa(&[
        "train",
        "--config",
        "configs/digits-hdfa.toml",
        "--hw",
        "verilator",
        "--steps",
        "1",
        "--hw-mutant",
        "alu:sign-flip",
    ]);
    assert!(
        !ok && err.contains("unit = alu") && err.contains("valid: upd, dce, bsbu"),
        "{err}"
    );
}

#[test]
fn cli_cost_prints_every_method_of_every_paper_network_with_its_assumptions_and_json() {
    let (ok, out, err) = hdfa(&["cost"]);
    assert!(ok, "{out}\n{err}");
    for net in ["vgg16", "resnet18", "resnet50", "rnn", "lstm", "gru"] {
        assert!(
            out.contains(&format!("\n{net} (per ")),
            "{net} missing:\n{out}"
        );
    }
    assert!(out.contains("MB = 10^6 bytes") && out.contains("HDFA: p*BP + (1 - p)*revised"));
    let (ok, json, err) = hdfa(&["cost", "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let keys = [
        "network", "method", "groups", "bp_ratio", "sparsity", "bytes", "ops", "per",
    ];
    for r in &rows {
        let o = r.as_object().unwrap();
        assert_eq!(o.len(), keys.len(), "{r}");
        assert!(keys.iter().all(|k| o.contains_key(*k)), "{r}");
    }
    let count = |net: &str, method: &str| {
        rows.iter()
            .filter(|r| r["network"] == net && r["method"] == method)
            .count()
    };
    // CNNs: revised at G = 4, 8; HDFA at p = 0.1, 0.2, 0.3 for each G.
    assert_eq!((count("vgg16", "revised"), count("vgg16", "hdfa")), (2, 6));
    // RNNs: revised at 4 sparsities; HDFA at p = 0.1, 0.2 for each.
    assert_eq!((count("lstm", "revised"), count("lstm", "hdfa")), (4, 8));
    let get = |net: &str, method: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        rows.iter()
            .find(|r| r["network"] == net && r["method"] == method && f(r))
            .unwrap()["bytes"]
            .as_f64()
            .unwrap()
    };
    // An HDFA row is p·BP + (1 − p)·revised of the rows beside it.
    let bp = get("gru", "bp", &|_| true);
    let rev = get("gru", "revised", &|r| r["sparsity"] == 0.98);
    let hd = get("gru", "hdfa", &|r| {
        r["sparsity"] == 0.98 && r["bp_ratio"] == 0.2
    });
    assert!((hd - (0.2 * bp + 0.8 * rev)).abs() < 1e-6 * hd);
    assert!(rows.iter().all(|r| r["per"]
        == if r["network"].as_str().unwrap().starts_with("res") || r["network"] == "vgg16" {
            "sample"
        } else {
            "batch"
        }));
    // One of our configs, and bad values named with their range.
    let (ok, out, err) = hdfa(&["cost", "--network", "configs/digits-hdfa.toml"]);
    assert!(
        ok && out.contains("digits-hdfa (per sample)"),
        "{out}\n{err}"
    );
    for (args, want) in [
        (
            vec!["cost", "--sparsity", "1"],
            "--sparsity 1 is out of range: valid range is [0, 1)",
        ),
        (
            vec!["cost", "--bp-ratio", "1.5"],
            "--bp-ratio 1.5 is out of range: valid range is [0, 1]",
        ),
        (
            vec!["cost", "--network", "vgg16", "--groups", "3"],
            "groups = 3 is out of range",
        ),
        (
            vec!["cost", "--network", "alexnet"],
            "valid values are vgg16, resnet18",
        ),
    ] {
        let (ok, _, err) = hdfa(&args);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }
}

/// A headless Chromium (Debian's `chromium`), or a failure with the install hint.
fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if found {
            return c.to_string();
        }
    }
    panic!("no headless browser found: install one with `apt-get install chromium` (bash scripts/test.sh installs it)");
}

/// The HTML's DOM after load in headless Chromium.
fn dom_of(browser: &str, html: &std::path::Path) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_run_quick_writes_a_report_whose_html_shows_its_figures_in_a_headless_browser() {
    let browser = chromium();
    let rel = "target/hdfa-test/cli-run-quick";
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    let _ = std::fs::remove_dir_all(&dir);
    let (ok, out, err) = hdfa(&["run", "--quick", "--out", rel]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("IDENTICAL"), "{out}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for want in [
        "![learning curves](curves.svg)",
        "![accuracy vs memory transactions](accuracy_vs_memory.svg)",
        "## Training (golden model)",
        "| BP | bp |",
        "| HDFA | hdfa |",
        "## Co-simulation: 4 steps with the units in the loop (Verilator)",
        "| dce | 4 | 1 |",
        "## Synthesis (iCE40",
        "bit-identical",
        "vgg16 (per sample)",
        "resnet50 (per sample)",
        "lstm (per mini-batch)",
        "digits-sparse (per sample)",
    ] {
        assert!(md.contains(want), "report.md lacks {want:?}:\n{md}");
    }
    // Every unit ran with 0 mismatches and was synthesized.
    for unit in ["upd", "dce", "bsbu"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {unit} | ")) && l.contains("| 0 |"))
            .unwrap_or_else(|| panic!("no clean co-simulation row for {unit}:\n{md}"));
        assert!(!row.is_empty());
    }
    let curves = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    for label in ["BP", "DFA", "revised DFA", "HDFA"] {
        // plotters writes each legend text on a line of its own.
        assert!(
            curves.lines().any(|l| l.trim() == label),
            "curves.svg lacks {label}"
        );
    }
    // The HTML shows both figures in a browser; without one it says so.
    let html = dir.join("report.html");
    let dom = dom_of(&browser, &html);
    assert!(
        dom.contains("data-figures=\"2/2\""),
        "figures not shown:\n{}",
        &dom[..dom.len().min(2000)]
    );
    let shot = dir.join("report.png");
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(o.status.success() && std::fs::metadata(&shot).unwrap().len() > 50_000);
    std::fs::remove_file(dir.join("accuracy_vs_memory.svg")).unwrap();
    assert!(dom_of(&browser, &html).contains("data-figures=\"1/2\""));
}

/// A soak of the update unit with lanes 0 and 1 swapping their input slots (the
/// mutant `lane-swap`) finds the fault, shrinks it to two lanes (the fault needs a
/// lane 1) and prints an `hdfa cosim` command; that command, run as printed, fails
/// with the same fault, and without `--mutant` the same case passes.
#[test]
fn cli_soak_shrinks_a_fault_to_a_cosim_command_that_reproduces_it() {
    let out = "target/hdfa-test/cli-soak";
    let (ok, stdout, stderr) = hdfa(&[
        "soak",
        "--unit",
        "upd",
        "--pool",
        "0",
        "--small",
        "--cases",
        "1",
        "--seed",
        "3",
        "--mutant",
        "lane-swap",
        "--out",
        out,
    ]);
    assert!(!ok, "the fault must be found:\n{stdout}\n{stderr}");
    assert!(stderr.contains("soak found 1 failing unit(s)"), "{stderr}");
    assert!(stdout.contains("to a minimal case"), "{stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("reproduce: hdfa "))
        .unwrap_or_else(|| panic!("no reproduce line:\n{stdout}"));
    assert_eq!(
        line, "cosim --unit upd --lanes 2 --seed 0 --vectors 0 --mutant lane-swap",
        "{stdout}"
    );
    let mut rerun: Vec<&str> = line.split_whitespace().collect();
    rerun.extend(["--out", out]);
    let (ok, so, se) = hdfa(&rerun);
    assert!(!ok, "the printed command must fail:\n{so}\n{se}");
    assert!(so.contains("MISMATCH [verilator] unit upd"), "{so}");
    let clean: Vec<&str> = rerun
        .iter()
        .copied()
        .filter(|&a| a != "--mutant" && a != "lane-swap")
        .collect();
    let (ok, so, se) = hdfa(&clean);
    assert!(
        ok,
        "the same case on the real design must pass:\n{so}\n{se}"
    );
    assert!(so.contains("mismatches: 0"), "{so}");
}
