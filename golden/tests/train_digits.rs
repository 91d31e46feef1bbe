//! Training on the 8×8 digits: snapshots of every mode, determinism across thread
//! counts, p = 1 ≡ BP, bit-identical resume, step dumps and the accuracy targets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use golden::cnn::num::{Fx, F32};
use golden::cnn::train::StepKind;
use golden::config::Config;
use golden::experiment::Experiment;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The digits config with `edits` applied (key replacements), parsed from the repo root.
fn config(edits: &[(&str, &str)]) -> Config {
    let path = root().join("configs/digits-small.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "config has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    text = text.replace(
        "csv = \"data/",
        &format!("csv = \"{}/data/", root().display()),
    );
    Config::parse(&path, &text).unwrap()
}

fn mode(m: &str) -> Vec<(&'static str, String)> {
    match m {
        "bp" => vec![],
        "dfa" => vec![("mode = \"bp\"", "mode = \"dfa\"\ngamma = 1.0".into())],
        "cdfa" => vec![("mode = \"bp\"", "mode = \"cdfa\"\ngamma = 1.0".into())],
        "cdfa_groups" => vec![
            ("mode = \"bp\"", "mode = \"cdfa\"\ngamma = 1.0".into()),
            ("groups = 1", "groups = 2".into()),
        ],
        "hdfa_p0_1" => vec![("mode = \"bp\"", "mode = \"hdfa\"\nbp_ratio = 0.1".into())],
        "hdfa_p0_5" => vec![("mode = \"bp\"", "mode = \"hdfa\"\nbp_ratio = 0.5".into())],
        "hdfa_p1" => vec![("mode = \"bp\"", "mode = \"hdfa\"\nbp_ratio = 1.0".into())],
        _ => unreachable!(),
    }
}

fn exp_for(m: &str, extra: &[(&str, &str)]) -> Experiment<Fx> {
    let owned = mode(m);
    let mut edits: Vec<(&str, &str)> = owned.iter().map(|(a, b)| (*a, b.as_str())).collect();
    edits.extend_from_slice(extra);
    Experiment::<Fx>::new(config(&edits)).unwrap()
}

/// Run `steps` steps of epoch 1; return a readable log.
fn first_steps(exp: &mut Experiment<Fx>, steps: usize) -> String {
    let order = exp.order(1);
    let threads = exp.config.raw.threads;
    let mut log = String::new();
    for b in 0..steps {
        let batch: Vec<(&[i16], usize)> = exp
            .batch(&order, b)
            .into_iter()
            .map(|(x, y)| (x, y))
            .collect();
        let batch: Vec<(Vec<i16>, usize)> = batch.iter().map(|(x, y)| (x.to_vec(), *y)).collect();
        let refs: Vec<(&[i16], usize)> = batch.iter().map(|(x, y)| (x.as_slice(), *y)).collect();
        let s = exp.trainer.train_step(&refs, threads);
        let kind = if s.kind == StepKind::Bp { "BP " } else { "DFA" };
        let _ = writeln!(
            log,
            "step {b:2} {kind} loss_raw {:9} ({:.4}) correct {:2}/16",
            s.loss_raw,
            s.loss_raw as f64 / 65536.0 / 16.0,
            s.correct
        );
    }
    let (loss, acc) = exp.evaluate(&exp.test_x, &exp.test_y);
    let _ = writeln!(
        log,
        "test accuracy after {steps} steps: {:.4} (loss {:.4})",
        acc, loss
    );
    let _ = writeln!(log, "weight checksum: {:016x}", exp.weight_checksum());
    log
}

macro_rules! snapshot_mode {
    ($name:ident, $mode:literal) => {
        #[test]
        fn $name() {
            let mut exp = exp_for($mode, &[]);
            insta::assert_snapshot!(
                concat!("train_digits_", $mode, "_first20"),
                first_steps(&mut exp, 20)
            );
        }
    };
}

snapshot_mode!(train_digits_bp_first_20_steps, "bp");
snapshot_mode!(train_digits_dfa_first_20_steps, "dfa");
snapshot_mode!(train_digits_cdfa_first_20_steps, "cdfa");
snapshot_mode!(train_digits_cdfa_groups_first_20_steps, "cdfa_groups");
snapshot_mode!(train_digits_hdfa_p0_1_first_20_steps, "hdfa_p0_1");
snapshot_mode!(train_digits_hdfa_p0_5_first_20_steps, "hdfa_p0_5");

#[test]
fn train_digits_is_identical_for_1_2_and_3_threads() {
    let logs: Vec<String> = ["1", "2", "3"]
        .iter()
        .map(|t| {
            let line = format!("threads = {t}");
            let mut exp = exp_for("hdfa_p0_5", &[("threads = 2", line.as_str())]);
            first_steps(&mut exp, 12)
        })
        .collect();
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
}

/// Scalar, AVX2, AVX-512 and AVX-512 with VNNI (as far as the machine has them)
/// train to the same bits, in both number-format presets (the wide one runs the
/// direct kernels' chunked rows).
#[test]
fn train_digits_is_identical_on_every_instruction_set() {
    for format in ["q8.8-q4.12-q3.13", "q8.24-q4.12-q3.13"] {
        let line = format!("format = \"{format}\"");
        let logs: Vec<String> = [0u8, 1, 2, 3]
            .iter()
            .map(|&level| {
                golden::cnn::gemm::limit_isa(level);
                let mut exp = exp_for(
                    "hdfa_p0_5",
                    &[("format = \"q8.8-q4.12-q3.13\"", line.as_str())],
                );
                first_steps(&mut exp, 10)
            })
            .collect();
        golden::cnn::gemm::limit_isa(3);
        for (level, log) in logs.iter().enumerate() {
            assert_eq!(&logs[0], log, "{format}: level {level} differs from scalar");
        }
    }
}

#[test]
fn train_digits_hdfa_with_p1_equals_plain_momentum_bp_bit_for_bit() {
    let mut a = exp_for("bp", &[]);
    let mut b = exp_for("hdfa_p1", &[]);
    a.run_epoch(&mut |_| {});
    b.run_epoch(&mut |_| {});
    assert_eq!(a.trainer.net.w, b.trainer.net.w);
    assert_eq!(a.trainer.net.b, b.trainer.net.b);
    assert_eq!(a.history[0].bp_steps, 84);
    assert_eq!(a.weight_checksum(), b.weight_checksum());
    // And p = 0.5 really differs.
    let mut c = exp_for("hdfa_p0_5", &[]);
    c.run_epoch(&mut |_| {});
    assert_ne!(a.weight_checksum(), c.weight_checksum());
}

#[test]
fn train_digits_resume_from_checkpoint_is_bit_identical() {
    let dir = root().join("target/hdfa-test/resume");
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("checkpoint.bin");
    let mut straight = exp_for("hdfa_p0_5", &[]);
    straight.run_epoch(&mut |_| {});
    straight.run_epoch(&mut |_| {});
    let mut first = exp_for("hdfa_p0_5", &[]);
    first.run_epoch(&mut |_| {});
    first.save_checkpoint(&ck).unwrap();
    let mut resumed = exp_for("hdfa_p0_5", &[]);
    resumed.load_checkpoint(&ck).unwrap();
    assert_eq!(resumed.epoch, 1);
    resumed.run_epoch(&mut |_| {});
    assert_eq!(straight.weight_checksum(), resumed.weight_checksum());
    assert_eq!(straight.trainer.opt, resumed.trainer.opt);
    assert_eq!(straight.history, resumed.history);
    // A checkpoint of another config is refused, and a truncated one too.
    let mut other = exp_for("bp", &[]);
    assert!(other
        .load_checkpoint(&ck)
        .unwrap_err()
        .to_string()
        .contains("different configuration"));
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(dir.join("short.bin"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(resumed
        .load_checkpoint(&dir.join("short.bin"))
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    // One flipped bit in the weights is refused, never resumed from; the state is
    // left as it was.
    let mut flipped = bytes.clone();
    let k = flipped.len() - 100;
    flipped[k] ^= 1;
    std::fs::write(dir.join("flipped.bin"), &flipped).unwrap();
    let before = resumed.weight_checksum();
    let e = resumed
        .load_checkpoint(&dir.join("flipped.bin"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("checksum mismatch"), "{e}");
    assert_eq!(resumed.weight_checksum(), before);
}

#[test]
fn train_digits_dump_step_writes_numpy_files() {
    let exp = exp_for("cdfa", &[]);
    let dir = root().join("target/hdfa-test/dump");
    let _ = std::fs::remove_dir_all(&dir);
    let files = exp.dump_step(&exp.order(1), 0, &dir).unwrap();
    assert!(files.len() >= 2 + 5 * 3);
    let x = std::fs::read(dir.join("inputs.npy")).unwrap();
    assert_eq!(&x[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([x[8], x[9]]) as usize;
    let header = std::str::from_utf8(&x[10..10 + hlen]).unwrap();
    assert!(
        header.contains("'descr': '<i2'") && header.contains("'shape': (16, 1, 8, 8)"),
        "{header}"
    );
    assert_eq!((10 + hlen) % 64, 0);
    assert_eq!(x.len(), 10 + hlen + 16 * 64 * 2);
    // Read back through ndarray-npy: the batch's inputs, word for word.
    let back: ndarray::ArrayD<i16> = ndarray_npy::read_npy(dir.join("inputs.npy")).unwrap();
    assert_eq!(back.shape(), &[16, 1, 8, 8]);
    let want: Vec<i16> = exp
        .batch(&exp.order(1), 0)
        .iter()
        .flat_map(|(x, _)| x.iter().copied())
        .collect();
    assert_eq!(back.iter().copied().collect::<Vec<_>>(), want);
    let g = std::fs::read(dir.join("layer0_grad_weight.npy")).unwrap();
    let gh = std::str::from_utf8(&g[10..10 + u16::from_le_bytes([g[8], g[9]]) as usize]).unwrap();
    assert!(gh.contains("'<i4'") && gh.contains("(8, 1, 3, 3)"), "{gh}");
}

#[test]
fn train_digits_dump_inside_an_epoch_is_taken_at_the_named_step_with_formats_json() {
    // The epoch's dump of batch 5 must be step 5 at step 5's weights: the same bytes
    // as a dump taken by hand after training five steps.
    let root_dir = root().join("target/hdfa-test/dump5");
    let _ = std::fs::remove_dir_all(&root_dir);
    let (by_epoch, by_hand) = (root_dir.join("epoch"), root_dir.join("hand"));
    let mut a = exp_for("hdfa_p0_5", &[]);
    let mut b = exp_for("hdfa_p0_5", &[]);
    let (_, files) = a
        .run_epoch_dumping(Some((5, by_epoch.as_path())), &mut |_| {})
        .unwrap();
    assert!(!files.is_empty());
    let order = b.order(1);
    for s in 0..5 {
        let owned: Vec<(Vec<i16>, usize)> = b
            .batch(&order, s)
            .iter()
            .map(|(x, y)| (x.to_vec(), *y))
            .collect();
        let batch: Vec<(&[i16], usize)> = owned.iter().map(|(x, y)| (x.as_slice(), *y)).collect();
        b.trainer.train_step(&batch, 1);
    }
    b.dump_step(&order, 5, &by_hand).unwrap();
    for f in [
        "inputs.npy",
        "layer0_weight.npy",
        "layer2_grad_weight.npy",
        "formats.json",
    ] {
        assert_eq!(
            std::fs::read(by_epoch.join(f)).unwrap(),
            std::fs::read(by_hand.join(f)).unwrap(),
            "{f}"
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(by_epoch.join("formats.json")).unwrap()).unwrap();
    assert_eq!(meta["step"], 5);
    assert_eq!(meta["files"]["inputs.npy"]["scale"], 1.0 / 256.0);
    assert_eq!(meta["files"]["layer0_weight.npy"]["scale"], 1.0 / 4096.0);
    assert_eq!(meta["files"]["layer0_error.npy"]["scale"], 1.0 / 8192.0);
    // One exponent per sample for every error file (real = raw x scale x 2^-exp).
    let exps = meta["files"]["layer0_error.npy"]["exponent"]
        .as_array()
        .unwrap();
    assert_eq!(exps.len(), a.config.raw.batch);
    assert!(exps.iter().all(|e| (0..=31).contains(&e.as_i64().unwrap())));
    assert!(meta["files"]["layer0_weight.npy"].get("exponent").is_none());
    assert_eq!(
        meta["files"]["layer0_grad_weight.npy"]["scale"],
        1.0 / (1u64 << 24) as f64
    );
    assert_eq!(meta["files"]["labels.npy"]["scale"], 1.0);
    assert_eq!(
        meta["files"]["layer0_weight.npy"]["shape"],
        serde_json::json!([8, 1, 3, 3])
    );
    // Every written .npy is described.
    for p in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
    {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(meta["files"][name]["scale"].is_number(), "{name}");
    }
}

#[test]
fn train_digits_reaches_the_accuracy_targets() {
    // Fixed-point BP >= 95%; f32 BP within 1.5 points; HDFA p = 0.5 within 2 points of BP.
    let mut bp = exp_for("bp", &[]);
    let mut hd = exp_for("hdfa_p0_5", &[]);
    let mut f = Experiment::<F32>::new(config(&[])).unwrap();
    let epochs = bp.config.raw.epochs;
    for _ in 0..epochs {
        bp.run_epoch(&mut |_| {});
        hd.run_epoch(&mut |_| {});
        f.run_epoch(&mut |_| {});
    }
    let (a_bp, a_hd, a_f) = (
        bp.history.last().unwrap().test_acc,
        hd.history.last().unwrap().test_acc,
        f.history.last().unwrap().test_acc,
    );
    println!("digits: fixed BP {a_bp:.4}, f32 BP {a_f:.4}, HDFA p=0.5 {a_hd:.4}");
    assert!(a_bp >= 0.95, "fixed-point BP {a_bp}");
    assert!((a_bp - a_f).abs() <= 0.015, "fixed {a_bp} vs f32 {a_f}");
    assert!(a_hd >= a_bp - 0.02, "HDFA p=0.5 {a_hd} vs BP {a_bp}");
}

#[test]
fn train_digits_image_size_that_does_not_match_the_config_is_an_error() {
    let d = root().join("data/digits-8x8");
    let idx = format!(
        "kind = \"idx\"\ntrain_images = \"{0}/digits-images-idx3-ubyte.gz\"\ntrain_labels = \"{0}/digits-labels-idx1-ubyte.gz\"\ntest_images = \"{0}/digits-images-idx3-ubyte.gz\"\ntest_labels = \"{0}/digits-labels-idx1-ubyte.gz\"",
        d.display()
    );
    let data = format!(
        "{}\ncsv = \"{}/data/digits-8x8/digits.csv.gz\"\ntest_fraction = 0.25",
        "kind = \"digits\"",
        root().display()
    );
    let ok = config(&[]);
    assert!(Experiment::<Fx>::new(ok).is_ok());
    let path = root().join("configs/digits-small.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(
            "kind = \"digits\"\ncsv = \"data/digits-8x8/digits.csv.gz\"\ntest_fraction = 0.25",
            &idx,
        )
        .replace("input = [1, 8, 8]", "input = [1, 9, 9]");
    assert!(!text.contains(&data));
    let cfg = Config::parse(&path, &text).unwrap();
    let err = Experiment::<Fx>::new(cfg)
        .err()
        .expect("size mismatch must fail")
        .to_string();
    assert!(
        err.contains("digits-small.toml") && err.contains("key `input`") && err.contains("1x8x8"),
        "{err}"
    );
}

#[test]
fn train_digits_resume_with_a_linear_schedule_and_wide_activations_is_bit_identical() {
    let edits = [(
        "format = \"q8.8-q4.12-q3.13\"",
        "format = \"q8.24-q4.12-q3.13\"\neta_schedule = \"linear\"",
    )];
    let dir = root().join("target/hdfa-test/resume-linear");
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("checkpoint.bin");
    let mut straight = exp_for("hdfa_p0_5", &edits);
    assert!(straight.config.raw.epochs >= 2);
    assert!(straight.config.eta_at(2).raw < straight.config.eta_at(1).raw);
    straight.run_epoch(&mut |_| {});
    straight.run_epoch(&mut |_| {});
    let mut first = exp_for("hdfa_p0_5", &edits);
    first.run_epoch(&mut |_| {});
    first.save_checkpoint(&ck).unwrap();
    let mut resumed = exp_for("hdfa_p0_5", &edits);
    resumed.load_checkpoint(&ck).unwrap();
    resumed.run_epoch(&mut |_| {});
    assert_eq!(straight.weight_checksum(), resumed.weight_checksum());
    assert_eq!(straight.trainer.opt, resumed.trainer.opt);
    // The schedule acts: the same run at a constant rate ends elsewhere.
    let mut constant = exp_for(
        "hdfa_p0_5",
        &[(
            "format = \"q8.8-q4.12-q3.13\"",
            "format = \"q8.24-q4.12-q3.13\"",
        )],
    );
    constant.run_epoch(&mut |_| {});
    constant.run_epoch(&mut |_| {});
    assert_ne!(straight.weight_checksum(), constant.weight_checksum());
    // Under a schedule the epoch count shapes the rates: another count is refused.
    let mut longer = exp_for("hdfa_p0_5", &edits);
    longer.config.raw.epochs += 1;
    let e = longer.load_checkpoint(&ck).unwrap_err().to_string();
    assert!(e.contains("different configuration"), "{e}");
}

#[test]
fn train_digits_with_lfsr_generated_feedback_matches_stored_feedback_accuracy() {
    // The same network with its backward weights regenerated by the xorshift32
    // generator instead of drawn and stored: different bits, the same accuracy
    // within noise, for conv paths (cdfa with groups) and sparse dense paths (dfa).
    for (m, extra) in [("cdfa_groups", ""), ("hdfa_p0_5", "\nsparsity = 0.8")] {
        let stored_edit = format!("groups = 1{extra}");
        let lfsr_edit = format!("groups = 1{extra}\ngenerator = \"lfsr\"");
        let (mut a, mut b) = if m == "cdfa_groups" {
            // cdfa_groups already edits `groups = 1`: add the generator under [backward].
            (
                exp_for(m, &[]),
                exp_for(m, &[("[backward]", "[backward]\ngenerator = \"lfsr\"")]),
            )
        } else {
            (
                exp_for(m, &[("groups = 1", stored_edit.as_str())]),
                exp_for(m, &[("groups = 1", lfsr_edit.as_str())]),
            )
        };
        for _ in 0..a.config.raw.epochs {
            a.run_epoch(&mut |_| {});
            b.run_epoch(&mut |_| {});
        }
        let (sa, sb) = (
            a.history.last().unwrap().test_acc,
            b.history.last().unwrap().test_acc,
        );
        println!("{m}: stored {sa:.4}, lfsr {sb:.4}");
        assert_ne!(
            a.weight_checksum(),
            b.weight_checksum(),
            "{m}: the generator changed nothing"
        );
        assert!(
            sa > 0.8 && (sa - sb).abs() <= 0.04,
            "{m}: stored {sa} vs lfsr {sb}"
        );
    }
}
