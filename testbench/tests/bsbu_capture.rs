//! The backward-weight unit on the trainer's own dense DFA paths: digits-sparse
//! (digits-hdfa with 90%-sparse binary feedback), the path from e_L into conv 2
//! (1,024 rows, cut into four 256-row tiles), captured at the first, a middle and the
//! last step of a run.
//! S is the trainer's matrix and the expected words are the trainer's errors; every
//! vector runs on Verilator and on Icarus.

use std::path::{Path, PathBuf};

use golden::cnn::num::Fx;
use golden::config::Config;
use golden::experiment::Experiment;
use sim::stream::Stall;
use testbench::bsbu::{BsbuUnit, RnnProduct};
use testbench::{run_case, verdict, SimKind, Unit};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn bsbu_matches_digits_training_dense_paths_on_verilator_and_icarus() {
    // The config's data path is relative to the repository root.
    std::env::set_current_dir(root()).unwrap();
    let c = Config::load(Path::new("configs/digits-sparse.toml")).unwrap();
    assert_eq!(c.raw.backward.sparsity, 0.9);
    let mut exp = Experiment::<Fx>::new(c).unwrap();
    let caps = exp.capture_dense(&[0, 42, 83], 2).unwrap();
    let units = BsbuUnit::from_captures(4, &caps).unwrap();
    assert_eq!(units.len(), 4, "four tiles of the one dense path");
    let cache = sim::verilator::default_cache_dir();
    let work = root().join("target/hdfa-test/bsbu_capture");
    let mut nonzero = 0;
    for u in &units {
        let v = u.stream(0).unwrap();
        assert_eq!(v.passes.len(), 6, "3 steps x 2 samples");
        nonzero += v
            .passes
            .iter()
            .flat_map(|p| &p.expected)
            .filter(|&&e| e != 0)
            .count();
        let mut stats = Vec::new();
        for simk in [SimKind::Verilator, SimKind::Icarus] {
            let r =
                run_case(u, 0, simk, Stall::SOME, &cache, &work).unwrap_or_else(|e| panic!("{e}"));
            println!("{}", r.summary());
            r.expect_clean(6 * 256).unwrap_or_else(|e| panic!("{e}"));
            stats.push(r.stats);
        }
        let problems = verdict(&[&stats[0], &stats[1]]);
        assert!(problems.is_empty(), "{problems:?}");
    }
    assert!(nonzero > 0, "the captured errors are not all zero");
}

/// The backward-weight unit on the recurrent model's S^fc (H = 128 rows, the 82
/// characters as columns, 80% sparse, initialized from W_dᵀ): the first stream's 35
/// time steps at the first, a middle and the last of ten training windows, on both
/// simulators, 0 mismatches.
#[test]
fn bsbu_matches_austen_char_lstm_fc_products_on_verilator_and_icarus() {
    std::env::set_current_dir(root()).unwrap();
    let caps = testbench::bsbu::capture(
        Path::new("configs/austen-char-lstm.toml"),
        Some(16 * 351),
        None,
        1,
        RnnProduct::Fc,
    )
    .unwrap();
    assert_eq!(caps.len(), 3 * 35);
    let units = BsbuUnit::from_captures(4, &caps).unwrap();
    assert_eq!(units.len(), 1, "one S^fc for the whole run");
    let u = &units[0];
    assert_eq!(u.stream(0).unwrap().passes.len(), 105);
    let cache = sim::verilator::default_cache_dir();
    let work = root().join("target/hdfa-test/bsbu_capture_rnn");
    let mut stats = Vec::new();
    for simk in [SimKind::Verilator, SimKind::Icarus] {
        let r = run_case(u, 0, simk, Stall::SOME, &cache, &work).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", r.summary());
        r.expect_clean(105 * 128).unwrap_or_else(|e| panic!("{e}"));
        stats.push(r.stats);
    }
    let problems = verdict(&[&stats[0], &stats[1]]);
    assert!(problems.is_empty(), "{problems:?}");
}

/// The unit at a word-level vocabulary: the word GRU's S^fc (128 rows x 6,762
/// columns, the config's first 19,616 training words) at 98% sparsity, P = 4, at
/// every time step of the first stream in the first, a middle and the last window:
/// 0 mismatches on Verilator; Icarus runs the first window's first 4 products (CI budget).
#[test]
fn bsbu_matches_austen_word_gru_fc_products_at_6762_columns() {
    std::env::set_current_dir(root()).unwrap();
    let dir = root().join("target/hdfa-test");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string("configs/austen-word-gru.toml").unwrap();
    assert!(text.contains("sparsity = 0.8"));
    let cfg = dir.join("austen-word-gru-sparse98.toml");
    std::fs::write(&cfg, text.replace("sparsity = 0.8", "sparsity = 0.98")).unwrap();
    // 16 streams of 1,226 words: 35 full windows of 35 steps.
    let caps = testbench::bsbu::capture(&cfg, Some(16 * 1226), None, 1, RnnProduct::Fc).unwrap();
    assert_eq!(caps.len(), 3 * 35);
    assert!(caps
        .iter()
        .all(|c| c.s.n_cols() == 6762 && c.s.n_rows() == 128));
    let first: Vec<_> = caps.iter().take(4).cloned().collect();
    let cache = sim::verilator::default_cache_dir();
    let work = root().join("target/hdfa-test/bsbu_capture_word");
    for (simk, caps) in [(SimKind::Verilator, &caps), (SimKind::Icarus, &first)] {
        let units = BsbuUnit::from_captures(4, caps).unwrap();
        assert_eq!(units.len(), 1);
        let r = run_case(&units[0], 0, simk, Stall::SOME, &cache, &work)
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", r.summary());
        r.expect_clean(caps.len() * 128)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let nonzero = caps
        .iter()
        .flat_map(|c| &c.expected)
        .filter(|e| e.to_bits() != 0)
        .count();
    assert!(nonzero > caps.len() * 16, "{nonzero} nonzero words");
}

/// The unit on the recurrent cell's upper-triangular feedback S^rnn (eq. 9 and 11):
/// a small LSTM (H = 24, T = 12, so 288 x 288 in a 256-row and a 32-row tile, 80%
/// sparse), its e^rnn words and the trainer's hidden-step errors captured at the
/// first, a middle and the last window, on Verilator and Icarus, 0 mismatches.
#[test]
fn bsbu_matches_austen_lstm_cell_feedback_products_on_verilator_and_icarus() {
    std::env::set_current_dir(root()).unwrap();
    let dir = root().join("target/hdfa-test");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = std::fs::read_to_string("configs/austen-char-lstm.toml").unwrap();
    for (from, to) in [("hidden = 128", "hidden = 24"), ("bptt = 35", "bptt = 12")] {
        assert!(text.contains(from));
        text = text.replace(from, to);
    }
    let cfg = dir.join("austen-lstm-h24-t12.toml");
    std::fs::write(&cfg, text).unwrap();
    // 16 streams of 121 characters: 10 full windows of 12 steps.
    let caps = testbench::bsbu::capture(&cfg, Some(16 * 121), None, 1, RnnProduct::Cell).unwrap();
    assert_eq!(caps.len(), 3 * 2, "3 windows x 2 tiles");
    let units = BsbuUnit::from_captures(4, &caps).unwrap();
    assert_eq!(units.len(), 2, "one design per tile");
    let cache = sim::verilator::default_cache_dir();
    let work = root().join("target/hdfa-test/bsbu_capture_cell");
    for u in &units {
        let rows = u.s.n_rows();
        let mut stats = Vec::new();
        for simk in [SimKind::Verilator, SimKind::Icarus] {
            let r =
                run_case(u, 0, simk, Stall::SOME, &cache, &work).unwrap_or_else(|e| panic!("{e}"));
            println!("{}", r.summary());
            r.expect_clean(3 * rows).unwrap_or_else(|e| panic!("{e}"));
            stats.push(r.stats);
        }
        let problems = verdict(&[&stats[0], &stats[1]]);
        assert!(problems.is_empty(), "{problems:?}");
    }
    let nonzero = caps
        .iter()
        .flat_map(|c| &c.expected)
        .filter(|e| e.to_bits() != 0)
        .count();
    assert!(nonzero > 100, "{nonzero} nonzero words");
}
