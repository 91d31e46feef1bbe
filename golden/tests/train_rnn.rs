//! Training the recurrent model on the Austen characters: snapshots of the first 20
//! steps of every mode (bit-exact logs: step kind, loss, hits, then held-out loss and
//! a checksum of the weights and Adam state).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use golden::rnn::config::RnnConfig;
use golden::rnn::train::{batchify, windows, RnnProduct};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `configs/austen-char-lstm.toml`, cut down, with `edits`; data paths from the root.
/// The triangular feedback takes the printed exponent unless an edit sets
/// [`DISTANCE`], and `grad_shift` is 0 unless an edit sets [`SHIFT`], so the snapshots
/// pin each variant's arithmetic whatever the config chooses.
fn config(edits: &[(&str, &str)]) -> RnnConfig {
    let path = root().join("configs/austen-char-lstm.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\ngrad_shift = "), "config has no grad_shift");
    let mut text: String = text
        .lines()
        .map(|l| match l.starts_with("grad_shift = ") {
            true => "grad_shift = 0\n".to_string(),
            false => format!("{l}\n"),
        })
        .collect();
    for (from, to) in [
        ("exponent = \"distance\"", "exponent = \"printed\""),
        ("hidden = 128", "hidden = 24"),
        ("embed = 32", "embed = 8"),
        ("batch = 16", "batch = 4"),
        ("bptt = 35", "bptt = 12"),
        ("train_limit = 200000", "train_limit = 4000"),
        ("eval_limit = 50000", "eval_limit = 600"),
        ("eta = 0.002", "eta = 0.01"),
    ]
    .iter()
    .chain(edits)
    {
        assert!(text.contains(from), "config has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    text = text.replace("\"data/", &format!("\"{}/data/", root().display()));
    RnnConfig::parse(&path, &text).unwrap()
}

/// A fresh trainer for `cfg`, its training streams and the vocabulary size.
fn setup(cfg: &RnnConfig) -> (golden::rnn::train::RnnTrainer, Vec<Vec<u32>>, usize) {
    let corpus = cfg.load_corpus().unwrap();
    let t = cfg.trainer(corpus.vocab.len()).unwrap();
    (
        t,
        batchify(&corpus.train, cfg.hyper.batch),
        corpus.vocab.len(),
    )
}

/// The first 20 steps of `cfg` as a readable log.
fn first20(cfg: &RnnConfig) -> String {
    let corpus = cfg.load_corpus().unwrap();
    let mut t = cfg.trainer(corpus.vocab.len()).unwrap();
    let streams = batchify(&corpus.train, cfg.hyper.batch);
    let mut log = String::new();
    for (k, w) in windows(streams[0].len(), cfg.hyper.bptt)
        .into_iter()
        .take(20)
        .enumerate()
    {
        let bp = t.bp_steps;
        let ev = t.train_step(&streams, w);
        let kind = if t.bp_steps > bp { "BPTT" } else { "DFA " };
        let _ = writeln!(
            log,
            "step {k:2} {kind} loss_raw {:9} ({:.4}) hits {:2}/{}",
            ev.loss_raw,
            ev.loss(),
            ev.hits,
            ev.tokens
        );
    }
    let v = t.evaluate(&corpus.valid, cfg.hyper.batch);
    let _ = writeln!(
        log,
        "valid after 20 steps: loss_raw {} ({:.4}, perplexity {:.3}), accuracy {:.4}",
        v.loss_raw,
        v.loss(),
        v.perplexity(),
        v.accuracy()
    );
    let _ = writeln!(
        log,
        "weights and Adam state checksum: {:016x}",
        t.checksum()
    );
    log
}

const BPTT: (&str, &str) = ("mode = \"hdfa\"\nbp_ratio = 0.2", "mode = \"bptt\"");
const DFA: (&str, &str) = ("mode = \"hdfa\"\nbp_ratio = 0.2", "mode = \"dfa\"");
/// The time-distance exponent (over the printed one [`config`] starts from).
const DISTANCE: (&str, &str) = ("exponent = \"printed\"", "exponent = \"distance\"");
/// DFA steps' module-1 gradients divided by 2^4 (over the 0 [`config`] starts from).
const SHIFT: (&str, &str) = ("grad_shift = 0", "grad_shift = 4");
/// Real-valued, dense feedback.
const REAL: (&str, &str) = ("sparsity = 0.8", "sparsity = 0.0\nbinary = false");

#[test]
fn train_rnn_snapshots_of_every_mode() {
    let plain = [
        ("sparsity = 0.8", "sparsity = 0.0"),
        ("init = true", "init = false"),
    ];
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("lstm_bptt", vec![BPTT]),
        (
            "lstm_dfa_original",
            vec![
                DFA,
                ("modular = true", "modular = false"),
                ("triangular = true", "triangular = false"),
                plain[0],
                plain[1],
            ],
        ),
        (
            "lstm_dfa_modular",
            vec![
                DFA,
                ("triangular = true", "triangular = false"),
                plain[0],
                plain[1],
            ],
        ),
        ("lstm_dfa_triangular", vec![DFA, plain[0], plain[1]]),
        ("lstm_dfa_triangular_init", vec![DFA, plain[0]]),
        ("lstm_dfa_triangular_init_sparse", vec![DFA]),
        ("lstm_dfa_distance_init_sparse", vec![DFA, DISTANCE]),
        (
            "lstm_dfa_real_original",
            vec![
                DFA,
                ("modular = true", "modular = false"),
                ("triangular = true", "triangular = false"),
                REAL,
                plain[1],
            ],
        ),
        ("lstm_dfa_real_triangular_init", vec![DFA, REAL]),
        ("lstm_hdfa_p0_2", vec![]),
        ("lstm_hdfa_p0_2_distance_shift4", vec![DISTANCE, SHIFT]),
        ("rnn_hdfa_p0_2", vec![("cell = \"lstm\"", "cell = \"rnn\"")]),
        ("gru_hdfa_p0_2", vec![("cell = \"lstm\"", "cell = \"gru\"")]),
    ];
    for (name, edits) in cases {
        let log = first20(&config(&edits));
        insta::assert_snapshot!(format!("train_rnn_{name}_first20"), log);
    }
}

/// The same config on 1 and 3 threads: the same log.
#[test]
fn train_rnn_is_identical_on_any_thread_count() {
    let a = first20(&config(&[("threads = 2", "threads = 1")]));
    let b = first20(&config(&[("threads = 2", "threads = 3")]));
    assert_eq!(a, b);
}

/// S^fc's products captured from real training steps are what the backward-weight
/// unit's model computes from the captured inputs, word for word, at the config's
/// size (H = 128, the 82 characters) and at sparsity 0 and 0.8.
#[test]
fn captured_fc_products_are_what_the_bsbu_model_computes() {
    for sparsity in ["0.0", "0.8"] {
        let cfg = config(&[
            ("hidden = 24", "hidden = 128"),
            ("sparsity = 0.8", &format!("sparsity = {sparsity}")),
        ]);
        let (mut t, streams, _) = setup(&cfg);
        let caps = t
            .capture_products(&streams, &[0, 4, 9], 2, RnnProduct::Fc)
            .unwrap();
        assert_eq!(caps.len(), 3 * 2 * 12, "3 steps x 2 streams x T");
        assert_eq!(t.step, 10, "training went on to the last captured step");
        let mut nonzero = 0;
        for c in &caps {
            assert_eq!((c.s.n_rows(), c.s.n_cols()), (128, 82));
            let want = golden::bsbu::apply(&c.s, &c.e_l, &c.fprime, c.shift).unwrap();
            assert_eq!(want, c.expected, "step {} sample {}", c.step, c.sample);
            nonzero += c.expected.iter().filter(|e| e.to_bits() != 0).count();
        }
        assert!(
            nonzero > caps.len() * 32,
            "sparsity {sparsity}: {nonzero} nonzero words"
        );
    }
    // A word-level vocabulary (hundreds of words here; 6,762 in the word config) fits
    // the unit's 8,192 columns; 300 hidden rows do not fit its 256: a named error.
    let cfg = config(&[("level = \"char\"", "level = \"word\"")]);
    let (mut t, streams, vocab) = setup(&cfg);
    assert!(vocab > 256, "{vocab}");
    for c in t
        .capture_products(&streams, &[1], 1, RnnProduct::Fc)
        .unwrap()
    {
        assert_eq!(c.s.n_cols(), vocab);
        let want = golden::bsbu::apply(&c.s, &c.e_l, &c.fprime, c.shift).unwrap();
        assert_eq!(want, c.expected);
    }
    let cfg = config(&[("hidden = 24", "hidden = 300")]);
    let (mut t, streams, _) = setup(&cfg);
    let e = t
        .capture_products(&streams, &[0], 1, RnnProduct::Fc)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("300 x 82") && e.contains("at most 256 x 8192"),
        "{e}"
    );
}

/// S^rnn's products (the triangular cell feedback) captured from real training steps
/// are what the backward-weight unit's model computes from the captured e^rnn words,
/// tile by tile (H = 24, T = 12: 288 rows in tiles of 256 and 32), and each tile's
/// matrix is zero left of its row block's diagonal block (upper triangular).
#[test]
fn captured_cell_products_are_what_the_bsbu_model_computes() {
    let cases = [("0.0", false), ("0.8", false), ("0.8", true)];
    for (sparsity, distance) in cases {
        let sp = ("sparsity = 0.8", format!("sparsity = {sparsity}"));
        let mut edits = vec![(sp.0, sp.1.as_str())];
        if distance {
            edits.push(DISTANCE);
        }
        let cfg = config(&edits);
        let (mut t, streams, _) = setup(&cfg);
        let caps = t
            .capture_products(&streams, &[0, 3], 2, RnnProduct::Cell)
            .unwrap();
        assert_eq!(caps.len(), 2 * 2 * 2, "2 steps x 2 streams x 2 tiles");
        let mut nonzero = 0;
        for c in &caps {
            assert_eq!(c.s.n_cols(), 24 * 12);
            assert_eq!(c.s.n_rows(), c.rows.len());
            for (k, r) in c.rows.clone().enumerate() {
                let block = r / 24;
                assert!(
                    c.s.row(k).iter().all(|nz| nz.col as usize >= block * 24),
                    "row {r} reaches an earlier step"
                );
            }
            let want = golden::bsbu::apply(&c.s, &c.e_l, &c.fprime, c.shift).unwrap();
            assert_eq!(
                want, c.expected,
                "step {} sample {} rows {:?}",
                c.step, c.sample, c.rows
            );
            nonzero += c.expected.iter().filter(|e| e.to_bits() != 0).count();
        }
        assert!(
            nonzero > 100,
            "sparsity {sparsity} (distance: {distance}): {nonzero} nonzero words"
        );
    }
    // The unit stores signs: a real-valued feedback is refused by name.
    let cfg = config(&[("sparsity = 0.8", "sparsity = 0.8\nbinary = false")]);
    let (mut t, streams, _) = setup(&cfg);
    for product in [RnnProduct::Fc, RnnProduct::Cell] {
        let e = t
            .capture_products(&streams, &[0], 1, product)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("feedback.binary") && e.contains("binary products only"),
            "{e}"
        );
    }
    // A dense cell feedback has no S^rnn: a named error.
    let cfg = config(&[("triangular = true", "triangular = false")]);
    let (mut t, streams, _) = setup(&cfg);
    let e = t
        .capture_products(&streams, &[0], 1, RnnProduct::Cell)
        .unwrap_err()
        .to_string();
    assert!(e.contains("feedback.triangular"), "{e}");
}
