//! The bad-input catalogue: every case runs the `hdfa` binary as a user would, with
//! one bad flag, config, data file, checkpoint or missing tool, and must
//! - exit with an error of its kind: status 2 for a command-line usage error (clap),
//!   status 1 for everything else, whose message starts at the bad thing (the flag,
//!   the config file and key, the data file, the checkpoint, the tool);
//! - name the offending value and, where there is one, the valid range;
//! - not panic;
//! - leave no partial output: a fresh output directory is never created, and an
//!   existing one (a checkpoint to resume) keeps exactly its files and bytes.
//!
//! The README lists the catalogue.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

mod common;

fn hdfa(args: &[String], env: &[(&str, &str)]) -> (i32, String, String) {
    common::hdfa_env(args, env)
}

/// The kinds of bad input.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Command-line syntax (clap): status 2.
    Usage,
    /// A flag's value out of its range.
    Flag,
    /// A config file: the message names the file.
    Config,
    /// A data file (IDX or text): the message names the file.
    Data,
    /// A checkpoint: "not a valid checkpoint".
    Checkpoint,
    /// A missing external tool: its name and the apt-get line.
    Tool,
}

struct Case {
    name: &'static str,
    kind: Kind,
    args: Vec<String>,
    /// Substrings the error must contain (value, range, file).
    want: Vec<String>,
    /// The output directory the run must leave as it found it.
    out: Option<PathBuf>,
    /// Extra environment (PATH without the tools, a memory budget).
    env: Vec<(&'static str, &'static str)>,
}

fn files_of(dir: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
    let rd = std::fs::read_dir(dir).ok()?;
    Some(
        rd.map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect(),
    )
}

/// Writes a copy of `base` with `from` replaced by `to` (which must occur) into `dir`.
fn variant(dir: &Path, name: &str, base: &str, edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(root().join(base)).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{base} lacks {from:?}");
        text = text.replacen(from, to, 1);
    }
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn idx3(n: u32, claim: u32, magic: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [magic, claim, 28, 28] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.resize(16 + n as usize * 784, 0);
    v
}

fn idx1(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x801u32, labels.len() as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn bad_inputs_fail_with_their_kind_value_and_range_no_panic_and_no_partial_output() {
    let dir = root().join("target/hdfa-test/bad-inputs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = |f: &str| dir.join(f).display().to_string();
    let fresh = |name: &str| dir.join(format!("out-{name}"));

    // Data files.
    let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    let write = |f: &str, b: &[u8]| std::fs::write(dir.join(f), b).unwrap();
    write("img_ok", &idx3(100, 100, 0x803));
    write("lab_ok", &idx1(&labels));
    write("img_trunc", &idx3(100, 100, 0x803)[..78_000]);
    write("img_magic", &idx3(100, 100, 0x1234));
    write("img_huge", &idx3(100, 1_000_000_000, 0x803));
    let mut bad_label = labels.clone();
    bad_label[99] = 11;
    write("lab_range", &idx1(&bad_label));
    write("lab_count", &idx1(&labels[..90]));
    write("bin.txt", b"Emma Woodhouse\xff\xfe handsome");
    write("nul.txt", b"Emma\0Woodhouse");
    write("empty.txt", b"");

    // A checkpoint to resume, and bad copies of it.
    let ck = dir.join("ck");
    let (st, out, err) = hdfa(
        &s(&[
            "train",
            "--config",
            "configs/digits-small.toml",
            "--epochs",
            "1",
            "--out",
        ])
        .into_iter()
        .chain([ck.display().to_string()])
        .collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(st, 0, "{out}\n{err}");
    let good = std::fs::read(ck.join("checkpoint.bin")).unwrap();
    let mut flipped = good.clone();
    let k = flipped.len() - 100;
    flipped[k] ^= 1;
    let mut v01 = good.clone();
    v01[..8].copy_from_slice(b"HDFACK01");
    for (name, bytes) in [
        ("ck-trunc", good[..good.len() / 2].to_vec()),
        ("ck-flip", flipped),
        ("ck-v01", v01),
        ("ck-other", good.clone()),
    ] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("checkpoint.bin"), bytes).unwrap();
    }

    // Configs.
    let cnn = "configs/digits-small.toml";
    let rnn = "configs/austen-char-lstm.toml";
    let cfg = |name: &str, base: &str, edits: &[(&str, &str)]| variant(&dir, name, base, edits);
    let unknown = cfg("unknown", cnn, &[("seed = 1", "seed = 1\nfoo = 3")]);
    let wrongtype = cfg("wrongtype", cnn, &[("batch = 16", "batch = \"x\"")]);
    let negative = cfg("negative", cnn, &[("batch = 16", "batch = -4")]);
    let batch3 = cfg("batch3", cnn, &[("batch = 16", "batch = 3")]);
    let ratio = cfg(
        "ratio",
        cnn,
        &[("mode = \"bp\"", "mode = \"hdfa\"\nbp_ratio = 1.5")],
    );
    let nodata = cfg(
        "nodata",
        cnn,
        &[("data/digits-8x8/digits.csv.gz", "data/nope.csv.gz")],
    );
    std::fs::write(dir.join("syntax.toml"), "name = \"x\n").unwrap();
    let syntax = d("syntax.toml");
    let hidden0 = cfg("hidden0", rnn, &[("hidden = 128", "hidden = 0")]);
    let bptt0 = cfg("bptt0", rnn, &[("bptt = 35", "bptt = 0")]);
    let rsparse = cfg("rsparse", rnn, &[("sparsity = 0.8", "sparsity = 1.2")]);
    let cell = cfg("cell", rnn, &[("cell = \"lstm\"", "cell = \"tcn\"")]);
    let train_text = "data/austen/austen-train.txt.gz";
    let bintext = cfg("bintext", rnn, &[(train_text, &d("bin.txt"))]);
    let nultext = cfg("nultext", rnn, &[(train_text, &d("nul.txt"))]);
    let emptytext = cfg(
        "emptytext",
        rnn,
        &[("data/austen/austen-valid.txt.gz", &d("empty.txt"))],
    );

    let train = |name: &str, config: &str| -> (Vec<String>, PathBuf) {
        let o = fresh(name);
        (
            s(&["train", "--config", config, "--out"])
                .into_iter()
                .chain([o.display().to_string()])
                .collect(),
            o,
        )
    };
    let idx = |name: &str, img: &str, lab: &str| -> (Vec<String>, PathBuf) {
        let o = fresh(name);
        let mut a = s(&[
            "train",
            "--config",
            "configs/fashion-run.toml",
            "--epochs",
            "1",
        ]);
        for (flag, f) in [
            ("--train-images", img),
            ("--train-labels", lab),
            ("--test-images", "img_ok"),
            ("--test-labels", "lab_ok"),
        ] {
            a.push(flag.into());
            a.push(d(f));
        }
        a.push("--out".into());
        a.push(o.display().to_string());
        (a, o)
    };
    let resume = |name: &str, config: &str| -> (Vec<String>, PathBuf) {
        let o = dir.join(name);
        (
            s(&[
                "train", "--config", config, "--epochs", "2", "--resume", "--out",
            ])
            .into_iter()
            .chain([o.display().to_string()])
            .collect(),
            o,
        )
    };

    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name, kind, (args, out): (Vec<String>, Option<PathBuf>), want: &[&str]| {
        cases.push(Case {
            name,
            kind,
            args,
            want: s(want),
            out,
            env: Vec::new(),
        })
    };
    let plain = |v: &[&str]| (s(v), None);
    let with = |(a, o): (Vec<String>, PathBuf)| (a, Some(o));
    use Kind::*;
    // Flags.
    add(
        "cosim lanes 0",
        Flag,
        plain(&["cosim", "--lanes", "0"]),
        &["lanes = 0", "valid range is 1..=16"],
    );
    add(
        "cosim lanes 17",
        Flag,
        plain(&["cosim", "--lanes", "17"]),
        &["lanes = 17", "1..=16"],
    );
    add(
        "cosim sparsity 1",
        Flag,
        plain(&["cosim", "--sparsity", "1.0"]),
        &["sparsity = 1", "[0, 1)"],
    );
    add(
        "emit shift 20",
        Flag,
        plain(&["emit", "--shift", "20"]),
        &["shift = 20", "0..=16"],
    );
    add(
        "emit cols 0",
        Flag,
        plain(&["emit", "--cols", "0"]),
        &["cols = 0"],
    );
    add(
        "dce dilation 9",
        Flag,
        plain(&["cosim", "--unit", "dce", "--dil", "9"]),
        &["d = 9", "1..=8"],
    );
    add(
        "upd lanes 9",
        Flag,
        plain(&["cosim", "--unit", "upd", "--lanes", "9"]),
        &["lanes = 9", "1..=8"],
    );
    add(
        "dce sizes unknown key",
        Flag,
        plain(&["cosim", "--unit", "dce", "--sizes", "map=64,bogus=3"]),
        &["bogus", "one of map, ebuf, mbuf, mask, w2, w1, taps, chans"],
    );
    add(
        "dce sizes too small for the layer",
        Flag,
        plain(&[
            "cosim",
            "--unit",
            "dce",
            "--vectors",
            "1",
            "--sizes",
            "map=16,ebuf=64,mbuf=64,mask=64,w2=64,w1=64,taps=9,chans=16",
        ]),
        &[
            "map (H*W words) = 64",
            "at most 16, the size this engine was generated with",
        ],
    );
    add(
        "soak without a budget",
        Flag,
        plain(&["soak"]),
        &["--minutes M, --cases N or --vectors V"],
    );
    add(
        "soak minutes 0",
        Flag,
        plain(&["soak", "--minutes", "0"]),
        &["--minutes = 0", "(0, inf)"],
    );
    add(
        "soak unknown mutant",
        Flag,
        plain(&["soak", "--unit", "dce", "--cases", "1", "--mutant", "bogus"]),
        &["mutant = bogus", "tap-drop"],
    );
    add(
        "cost sparsity 1",
        Flag,
        plain(&["cost", "--sparsity", "1"]),
        &["--sparsity 1", "[0, 1)"],
    );
    add(
        "cost bp-ratio 1.5",
        Flag,
        plain(&["cost", "--bp-ratio", "1.5"]),
        &["--bp-ratio 1.5", "[0, 1]"],
    );
    add(
        "cost groups 3",
        Flag,
        plain(&["cost", "--network", "vgg16", "--groups", "3"]),
        &["groups = 3", "divisor"],
    );
    add(
        "cost network",
        Flag,
        plain(&["cost", "--network", "alexnet"]),
        &["alexnet", "vgg16, resnet18"],
    );
    add(
        "run epochs 0",
        Flag,
        plain(&["run", "--epochs", "0", "--out", &d("out-run")]),
        &["--epochs 0", ">= 1"],
    );
    add(
        "run hw-steps 0",
        Flag,
        plain(&["run", "--hw-steps", "0"]),
        &["--hw-steps 0", ">= 1"],
    );
    add(
        "train epochs 0",
        Flag,
        with(train("epochs0", cnn)).map_args(|a| a.extend(s(&["--epochs", "0"]))),
        &["--epochs 0", ">= 1"],
    );
    add(
        "usage: no config",
        Usage,
        plain(&["train"]),
        &["--config <CONFIG>"],
    );
    add(
        "usage: lanes abc",
        Usage,
        plain(&["cosim", "--lanes", "abc"]),
        &["'abc'", "--lanes"],
    );
    // Configs.
    add(
        "config unknown key",
        Config,
        with(train("unknown", &unknown)),
        &["unknown.toml", "unknown field `foo`"],
    );
    add(
        "config wrong type",
        Config,
        with(train("wrongtype", &wrongtype)),
        &["wrongtype.toml", "\"x\"", "expected usize"],
    );
    add(
        "config negative size",
        Config,
        with(train("negative", &negative)),
        &["negative.toml", "-4", "expected usize"],
    );
    add(
        "config batch 3",
        Config,
        with(train("batch3", &batch3)),
        &["key `batch`: 3", "powers of two 1..=1024"],
    );
    add(
        "config bp_ratio 1.5",
        Config,
        with(train("ratio", &ratio)),
        &["key `bp_ratio`: 1.5", "[0, 1]"],
    );
    add(
        "config data missing",
        Config,
        with(train("nodata", &nodata)),
        &["data/nope.csv.gz", "No such file"],
    );
    add(
        "config syntax",
        Config,
        with(train("syntax", &syntax)),
        &["syntax.toml", "TOML parse error"],
    );
    add(
        "config missing",
        Config,
        with(train("missing", &d("missing.toml"))),
        &["missing.toml", "No such file"],
    );
    add(
        "rnn hidden 0",
        Config,
        with(train("hidden0", &hidden0)),
        &["key `hidden`: 0", "1..=4096"],
    );
    add(
        "rnn bptt 0",
        Config,
        with(train("bptt0", &bptt0)),
        &["key `bptt`: 0", "1..=256"],
    );
    add(
        "rnn sparsity 1.2",
        Config,
        with(train("rsparse", &rsparse)),
        &["key `feedback.sparsity`: 1.2", "[0, 1)"],
    );
    add(
        "rnn cell",
        Config,
        with(train("cell", &cell)),
        &["key `cell`: \"tcn\"", "\"rnn\", \"lstm\", \"gru\""],
    );
    add(
        "cost config missing",
        Config,
        plain(&["cost", "--network", &d("missing.toml")]),
        &["missing.toml"],
    );
    // Data.
    add(
        "idx truncated",
        Data,
        with(idx("trunc", "img_trunc", "lab_ok")),
        &["img_trunc", "78000 bytes for 100 images", "expected 78416"],
    );
    add(
        "idx wrong magic",
        Data,
        with(idx("magic", "img_magic", "lab_ok")),
        &["img_magic", "magic 0x00001234", "expected 0x00000803"],
    );
    add(
        "idx label range",
        Data,
        with(idx("range", "img_ok", "lab_range")),
        &["lab_range", "label 11", "valid range is 0..10"],
    );
    add(
        "idx claims gigabytes",
        Data,
        with(idx("huge", "img_huge", "lab_ok")),
        &["img_huge", "1000000000 images", "expected 784000000016"],
    );
    add(
        "idx count mismatch",
        Data,
        with(idx("count", "img_ok", "lab_count")),
        &["lab_count", "90 labels for 100 images"],
    );
    add(
        "text not utf-8",
        Data,
        with(train("bintext", &bintext)),
        &["bin.txt", "not UTF-8", "offset 14"],
    );
    add(
        "text NUL bytes",
        Data,
        with(train("nultext", &nultext)),
        &["nul.txt", "NUL byte at offset 4"],
    );
    add(
        "text empty split",
        Data,
        with(train("emptytext", &emptytext)),
        &["empty.txt", "no text", "at least one token"],
    );
    // Checkpoints.
    add(
        "checkpoint truncated",
        Checkpoint,
        with(resume("ck-trunc", cnn)),
        &["ck-trunc", "not a valid checkpoint", "truncated"],
    );
    add(
        "checkpoint flipped bit",
        Checkpoint,
        with(resume("ck-flip", cnn)),
        &["ck-flip", "checksum mismatch"],
    );
    add(
        "checkpoint old version",
        Checkpoint,
        with(resume("ck-v01", cnn)),
        &["ck-v01", "format version 01", "reads version 02"],
    );
    add(
        "checkpoint other config",
        Checkpoint,
        with(resume("ck-other", "configs/digits-hdfa.toml")),
        &["ck-other", "different configuration"],
    );
    // Memory: a network or a data set larger than the budget is refused before
    // anything large is allocated.
    let hugenet = cfg(
        "hugenet",
        cnn,
        &[
            ("modules = [1, 1]", "modules = [1, 2]"),
            (
                "[[layers]]\ntype = \"dense\"",
                "[[layers]]\ntype = \"dense\"\nout = 100000000\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"dense\"",
            ),
        ],
    );
    add(
        "network over memory",
        Config,
        with(train("hugenet", &hugenet)),
        &[
            "hugenet.toml",
            "memory = 440000448032 bytes",
            "for the network",
            "at most",
        ],
    );
    let (a, o) = train("memlimit", "configs/fashion-run.toml");
    cases.push(Case {
        name: "data over memory",
        kind: Data,
        args: a,
        want: s(&[
            "train-images-idx3-ubyte.gz",
            "memory = 26421856 bytes",
            "at most 20000000 bytes",
            "HDFA_MEM_LIMIT",
        ]),
        out: Some(o),
        env: vec![("HDFA_MEM_LIMIT", "20000000")],
    });
    // Tools.
    for (name, args, tool) in [
        (
            "verilator missing",
            vec![
                "cosim",
                "--lanes",
                "2",
                "--rows",
                "8",
                "--cols",
                "8",
                "--vectors",
                "2",
            ],
            "verilator",
        ),
        (
            "iverilog missing",
            vec![
                "cosim",
                "--lanes",
                "2",
                "--rows",
                "8",
                "--cols",
                "8",
                "--vectors",
                "2",
                "--sim",
                "icarus",
            ],
            "iverilog",
        ),
        (
            "yosys missing",
            vec!["synth", "--lanes", "1", "--rows", "8", "--cols", "8"],
            "yosys",
        ),
    ] {
        let o = fresh(name.split(' ').next().unwrap());
        let mut a = s(&args);
        a.extend([String::from("--out"), o.display().to_string()]);
        cases.push(Case {
            name,
            kind: Tool,
            args: a,
            want: vec![
                format!("{tool} not found on PATH"),
                "apt-get install".into(),
            ],
            out: Some(o),
            env: vec![("PATH", "/nonexistent")],
        });
    }

    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let before = c.out.as_deref().and_then(files_of);
        let (status, out, err) = hdfa(&c.args, &c.env);
        let mut problems = Vec::new();
        let want_status = if c.kind == Kind::Usage { 2 } else { 1 };
        if status != want_status {
            problems.push(format!("status {status}, expected {want_status}"));
        }
        for w in &c.want {
            if !err.contains(w.as_str()) {
                problems.push(format!("no {w:?} in the error"));
            }
        }
        if c.kind != Kind::Usage && !err.starts_with("Error: ") {
            problems.push("the error does not start with `Error: `".into());
        }
        if err.contains("panicked") || out.contains("panicked") {
            problems.push("panicked".into());
        }
        if let Some(o) = &c.out {
            if files_of(o) != before {
                problems.push(format!("{} changed", o.display()));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({:?}): {}\n  stderr: {err}",
                c.name,
                c.kind,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!("{} bad inputs refused cleanly", cases.len());
}

trait MapArgs {
    fn map_args(self, f: impl FnOnce(&mut Vec<String>)) -> Self;
}

impl MapArgs for (Vec<String>, Option<PathBuf>) {
    fn map_args(mut self, f: impl FnOnce(&mut Vec<String>)) -> Self {
        f(&mut self.0);
        self
    }
}
