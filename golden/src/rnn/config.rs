//! The recurrent experiments' config: a TOML file with `network = "rnn"`, read with
//! serde (unknown keys rejected) and validated in one place, [`RnnConfig::parse`].
//! Every error names the file, the key, the value and the valid range. Main types:
//! [`RnnConfigToml`], [`RnnConfig`]; [`is_rnn_config`] tells the two kinds of
//! config apart.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::cell::{CellKind, RnnShape};
use super::dfa::{RnnDfaOptions, GRAD_SHIFTS};
use super::feedback::Exponent;
use super::train::{RnnHyper, RnnTrainer};
use crate::adam::AdamHyper;
use crate::config::ConfigError;
use crate::data::DataError;
use crate::text::{Corpus, Level, SplitFiles};
use crate::GoldenError;

/// Salt of the feedback's seed (the weights take the config's seed itself).
const FEEDBACK_SALT: u64 = 0x6664_6261_636b;

/// Training algorithm of a recurrent experiment.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RnnMode {
    /// Back-propagation through time.
    Bptt,
    /// DFA with the `[feedback]` options.
    Dfa,
    /// BPTT steps at ratio `bp_ratio`, DFA steps otherwise, one Adam state.
    Hdfa,
}

/// `[feedback]` (DFA and HDFA).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeedbackToml {
    /// Module 1 = embedding + cell, module 2 = decoder (false: original DFA).
    #[serde(default = "yes")]
    pub modular: bool,
    /// Upper-triangular block feedback (eq. 9, 11).
    #[serde(default = "yes")]
    pub triangular: bool,
    /// Share of zero feedback entries, [0, 1).
    #[serde(default)]
    pub sparsity: f64,
    /// Appendix B.2 initialization from the forward weights.
    #[serde(default = "yes")]
    pub init: bool,
    /// The blocks' power: "printed" (T − j, eq. 9) or "distance" (j − i).
    #[serde(default = "printed")]
    pub exponent: String,
    /// Binary feedback (eq. 10–11); false: real-valued.
    #[serde(default = "yes")]
    pub binary: bool,
    /// A DFA step's embedding and cell gradients are divided by 2^grad_shift before
    /// Adam (negative: multiplied), in -8..=16: the mix of DFA and BPTT steps in HDFA.
    #[serde(default)]
    pub grad_shift: i32,
}

impl Default for FeedbackToml {
    fn default() -> Self {
        FeedbackToml {
            modular: true,
            triangular: true,
            sparsity: 0.0,
            init: true,
            exponent: printed(),
            binary: true,
            grad_shift: 0,
        }
    }
}

fn yes() -> bool {
    true
}
fn printed() -> String {
    "printed".into()
}
fn three() -> usize {
    3
}
fn two() -> usize {
    2
}

/// `[data]`: the three splits of a text corpus.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextDataToml {
    /// Training text (plain or gzip).
    pub train: PathBuf,
    /// Validation text.
    pub valid: PathBuf,
    /// Test text.
    pub test: PathBuf,
    /// "word" or "char".
    pub level: String,
    /// Word level: words seen fewer times in the training text read as `<unk>`.
    #[serde(default = "three")]
    pub min_count: usize,
    /// Use only the first N training tokens (0: all).
    #[serde(default)]
    pub train_limit: usize,
    /// Use only the first N tokens of the validation and test texts (0: all).
    #[serde(default)]
    pub eval_limit: usize,
}

/// The file as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RnnConfigToml {
    /// Must be "rnn".
    pub network: String,
    /// Experiment name.
    pub name: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// "rnn", "lstm" or "gru".
    pub cell: String,
    /// Training algorithm.
    pub mode: RnnMode,
    /// BP ratio p (hdfa only).
    #[serde(default)]
    pub bp_ratio: Option<f64>,
    /// Adam's step size.
    pub eta: f64,
    /// Parallel streams per batch.
    pub batch: usize,
    /// BPTT window T.
    pub bptt: usize,
    /// Epochs.
    pub epochs: usize,
    /// Worker threads.
    #[serde(default = "two")]
    pub threads: usize,
    /// Embedding width.
    pub embed: usize,
    /// Hidden width.
    pub hidden: usize,
    /// DFA feedback.
    #[serde(default)]
    pub feedback: FeedbackToml,
    /// Corpus.
    pub data: TextDataToml,
}

impl RnnConfigToml {
    /// Switch the training algorithm; `bp_ratio` stays only for HDFA.
    pub fn set_mode(&mut self, mode: RnnMode) {
        self.mode = mode;
        if mode != RnnMode::Hdfa {
            self.bp_ratio = None;
        }
    }
}

/// A validated recurrent config.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnConfig {
    /// Where it came from.
    pub file: PathBuf,
    /// The file as parsed.
    pub raw: RnnConfigToml,
    /// The cell.
    pub kind: CellKind,
    /// Token level.
    pub level: Level,
    /// Training hyper-parameters.
    pub hyper: RnnHyper,
    /// DFA options (None: BPTT).
    pub dfa: Option<RnnDfaOptions>,
    /// BPTT share (1 for BPTT, 0 for DFA).
    pub bp_ratio: f64,
}

/// Whether config text declares `network = "rnn"` (otherwise it is a CNN config).
pub fn is_rnn_config(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| {
            t.get("network")
                .and_then(|v| v.as_str().map(|s| s == "rnn"))
        })
        .unwrap_or(false)
}

impl RnnConfig {
    /// Read and validate a file.
    pub fn load(file: &Path) -> Result<RnnConfig, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        RnnConfig::parse(file, &text)
    }

    /// Validate config text (`file` is used in messages).
    pub fn parse(file: &Path, text: &str) -> Result<RnnConfig, ConfigError> {
        let raw: RnnConfigToml = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_path_buf(),
            msg: e.to_string(),
        })?;
        RnnConfig::from_raw(file, raw)
    }

    /// Validate a parsed (possibly edited) config.
    pub fn from_raw(file: &Path, raw: RnnConfigToml) -> Result<RnnConfig, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let range = |key: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(bad(
                    key,
                    format!("{v} is out of range: valid range is {lo}..={hi}"),
                ))
            }
        };
        if raw.network != "rnn" {
            return Err(bad(
                "network",
                format!("\"{}\": valid value is \"rnn\"", raw.network),
            ));
        }
        let kind = match raw.cell.as_str() {
            "rnn" => CellKind::Rnn,
            "lstm" => CellKind::Lstm,
            "gru" => CellKind::Gru,
            c => {
                return Err(bad(
                    "cell",
                    format!("\"{c}\": valid values are \"rnn\", \"lstm\", \"gru\""),
                ))
            }
        };
        let level = match raw.data.level.as_str() {
            "word" => Level::Word,
            "char" => Level::Char,
            l => {
                return Err(bad(
                    "data.level",
                    format!("\"{l}\": valid values are \"word\", \"char\""),
                ))
            }
        };
        if !(raw.eta > 0.0 && raw.eta <= 1.0) {
            return Err(bad(
                "eta",
                format!("{} is out of range: valid range is (0, 1]", raw.eta),
            ));
        }
        range("batch", raw.batch, 1, 1024)?;
        range("bptt", raw.bptt, 1, 256)?;
        range("epochs", raw.epochs, 1, 10_000)?;
        range("threads", raw.threads, 1, 64)?;
        range("embed", raw.embed, 1, 4096)?;
        range("hidden", raw.hidden, 1, 4096)?;
        range("data.min_count", raw.data.min_count, 1, 1_000_000)?;
        let bp_ratio = match (raw.mode, raw.bp_ratio) {
            (RnnMode::Hdfa, Some(p)) if (0.0..=1.0).contains(&p) => p,
            (RnnMode::Hdfa, Some(p)) => {
                return Err(bad(
                    "bp_ratio",
                    format!("{p} is out of range: valid range is [0, 1]"),
                ))
            }
            (RnnMode::Hdfa, None) => {
                return Err(bad(
                    "bp_ratio",
                    "required for mode = \"hdfa\" (valid range [0, 1])".into(),
                ))
            }
            (RnnMode::Bptt, None) => 1.0,
            (RnnMode::Dfa, None) => 0.0,
            (m, Some(_)) => {
                return Err(bad(
                    "bp_ratio",
                    format!("only used with mode = \"hdfa\", not {m:?}"),
                ))
            }
        };
        let f = &raw.feedback;
        if !(0.0..1.0).contains(&f.sparsity) {
            return Err(bad(
                "feedback.sparsity",
                format!("{} is out of range: valid range is [0, 1)", f.sparsity),
            ));
        }
        let exponent = match f.exponent.as_str() {
            "printed" => Exponent::Printed,
            "distance" => Exponent::TimeDistance,
            e => {
                return Err(bad(
                    "feedback.exponent",
                    format!("\"{e}\": valid values are \"printed\", \"distance\""),
                ))
            }
        };
        if !GRAD_SHIFTS.contains(&f.grad_shift) {
            return Err(bad(
                "feedback.grad_shift",
                format!(
                    "{} is out of range: valid range is {GRAD_SHIFTS:?}",
                    f.grad_shift
                ),
            ));
        }
        if !f.modular && (f.triangular || f.init) {
            return Err(bad(
                "feedback.modular",
                "false (original DFA) needs triangular = false and init = false".into(),
            ));
        }
        let dfa = (raw.mode != RnnMode::Bptt).then_some(RnnDfaOptions {
            modular: f.modular,
            triangular: f.triangular,
            sparsity: f.sparsity,
            init_from_forward: f.init,
            exponent,
            binary: f.binary,
            grad_shift: f.grad_shift,
        });
        let hyper = RnnHyper {
            adam: AdamHyper::new(raw.eta),
            batch: raw.batch,
            bptt: raw.bptt,
            threads: raw.threads,
        };
        Ok(RnnConfig {
            file: file.to_path_buf(),
            raw,
            kind,
            level,
            hyper,
            dfa,
            bp_ratio,
        })
    }

    /// The corpus the config names, cut to its token limits (paths relative to the
    /// current directory).
    pub fn load_corpus(&self) -> Result<Corpus, DataError> {
        let d = &self.raw.data;
        let files = SplitFiles {
            train: d.train.clone(),
            valid: d.valid.clone(),
            test: d.test.clone(),
        };
        let mut c = Corpus::load(&files, self.level, d.min_count)?;
        for (v, n) in [
            (&mut c.train, d.train_limit),
            (&mut c.valid, d.eval_limit),
            (&mut c.test, d.eval_limit),
        ] {
            if n > 0 {
                v.truncate(n);
            }
        }
        Ok(c)
    }

    /// A trainer for a vocabulary of `vocab` tokens: weights from the config's seed,
    /// and for DFA / HDFA the feedback from the same seed (salted) and the initial
    /// weights.
    pub fn trainer(&self, vocab: usize) -> Result<RnnTrainer, GoldenError> {
        crate::mem::check(
            &format!(
                "{} (the model at a vocabulary of {vocab})",
                self.file.display()
            ),
            self.memory_floor(vocab),
        )?;
        let t = RnnTrainer::new(self.shape(vocab), self.hyper, self.raw.seed);
        match self.dfa {
            Some(o) => t.with_dfa(o, self.bp_ratio, self.raw.seed ^ FEEDBACK_SALT),
            None => Ok(t),
        }
    }

    /// Hash of everything that shapes the training trajectory (the thread and epoch
    /// counts left out: the learning rate is constant, so a run can be extended or
    /// resumed on another machine). A checkpoint carries it.
    pub fn trajectory_hash(&self) -> u64 {
        let mut raw = self.raw.clone();
        raw.threads = 0;
        raw.epochs = 0;
        let mut h = crate::hash::Fnv1a::new();
        h.write(format!("{raw:?}").as_bytes());
        h.finish()
    }

    /// A floor of the bytes the trainer allocates, checked against the memory budget
    /// before it does: per parameter the weight, Adam's m (4 bytes each) and v (8),
    /// the gradient (4); a feedback word per entry of S^fc (H × V); per window the
    /// output distribution and the gate values of every stream and step (8 bytes).
    pub fn memory_floor(&self, vocab: usize) -> u64 {
        let sh = self.shape(vocab);
        let (v, e, h, g) = (
            vocab as u64,
            sh.embed as u64,
            sh.hidden as u64,
            sh.gate_rows() as u64,
        );
        let params = v * e + g * (e + h + 1) + v * h + v;
        let window = (self.hyper.batch * self.hyper.bptt) as u64 * (v + g);
        params.saturating_mul(20) + (h * v).saturating_mul(2) + window.saturating_mul(8)
    }

    /// The model's sizes for a vocabulary of `vocab` tokens.
    pub fn shape(&self, vocab: usize) -> RnnShape {
        RnnShape {
            kind: self.kind,
            vocab,
            embed: self.raw.embed,
            hidden: self.raw.hidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
network = "rnn"
name = "t"
seed = 1
cell = "lstm"
mode = "hdfa"
bp_ratio = 0.2
eta = 0.002
batch = 4
bptt = 35
epochs = 1
embed = 16
hidden = 32
[feedback]
sparsity = 0.8
[data]
train = "a"
valid = "b"
test = "c"
level = "char"
"#;

    fn err(text: &str) -> String {
        RnnConfig::parse(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_good_config_parses_and_bad_values_name_key_value_and_range() {
        let c = RnnConfig::parse(Path::new("x.toml"), OK).unwrap();
        assert!(is_rnn_config(OK));
        assert!(!is_rnn_config("name = \"cnn\""));
        assert_eq!(
            (c.kind, c.level, c.bp_ratio),
            (CellKind::Lstm, Level::Char, 0.2)
        );
        assert_eq!(c.dfa.unwrap().sparsity, 0.8);
        let shifted = OK.replace("sparsity = 0.8", "sparsity = 0.8\ngrad_shift = -3");
        let c = RnnConfig::parse(Path::new("x.toml"), &shifted).unwrap();
        assert_eq!(c.dfa.unwrap().grad_shift, -3);
        for (from, to, want) in [
            (
                "cell = \"lstm\"",
                "cell = \"tree\"",
                "`cell`: \"tree\": valid values",
            ),
            (
                "bp_ratio = 0.2",
                "bp_ratio = 1.5",
                "`bp_ratio`: 1.5 is out of range: valid range is [0, 1]",
            ),
            (
                "bptt = 35",
                "bptt = 0",
                "`bptt`: 0 is out of range: valid range is 1..=256",
            ),
            (
                "hidden = 32",
                "hidden = 5000",
                "`hidden`: 5000 is out of range",
            ),
            (
                "sparsity = 0.8",
                "sparsity = 1.0",
                "`feedback.sparsity`: 1 is out of range: valid range is [0, 1)",
            ),
            (
                "sparsity = 0.8",
                "sparsity = 0.8\ngrad_shift = 17",
                "`feedback.grad_shift`: 17 is out of range: valid range is -8..=16",
            ),
            (
                "level = \"char\"",
                "level = \"byte\"",
                "`data.level`: \"byte\"",
            ),
            ("eta = 0.002", "eta = 0.0", "`eta`: 0 is out of range"),
            (
                "mode = \"hdfa\"",
                "mode = \"bptt\"",
                "`bp_ratio`: only used with mode = \"hdfa\"",
            ),
            (
                "sparsity = 0.8",
                "sparsity = 0.8\nmodular = false",
                "`feedback.modular`",
            ),
            (
                "embed = 16",
                "embed = 16\nwidth = 3",
                "unknown field `width`",
            ),
        ] {
            let e = err(&OK.replace(from, to));
            assert!(e.contains(want), "{to}: {e}");
        }
    }
}
