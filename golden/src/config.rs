//! Experiment configuration: one TOML file per experiment, read with serde (unknown
//! keys are rejected) and turned into validated parameters in one place,
//! [`Config::load`]. Every error names the file, the key and the reason.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cnn::net::{DfaOptions, Generator, LayerSpec, Propagation};
use crate::cnn::num::Coef;
use crate::cnn::train::Hyper;

/// A configuration error.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (toml's message names the key).
    #[error("{file}: {msg}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// toml's message.
        msg: String,
    },
    /// A value out of range or inconsistent.
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Training algorithm.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Back-propagation.
    Bp,
    /// Original DFA (dense random matrices from e_L).
    Dfa,
    /// Convolutional DFA in modules.
    Cdfa,
    /// Hybrid: conv-DFA steps mixed with BP steps at ratio `bp_ratio`.
    Hdfa,
}

/// Number-format preset: the activation format differs, the rest is shared.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum FormatPreset {
    /// Activations Q8.8, weights Q4.12, errors Q3.13, master/velocity Q8.24.
    #[serde(rename = "q8.8-q4.12-q3.13")]
    Default,
    /// Wide activations: Q8.24 held as a Q8.8 word and a 16-bit residual word
    /// ([`crate::format::split_wide`]), so ReLU and max-pool decide on 24 fraction
    /// bits and the forward pass tracks f64 through deep nets; the forward product
    /// runs twice (both words). Weights, errors, master/velocity as in the default.
    #[serde(rename = "q8.24-q4.12-q3.13")]
    Wide,
}

/// How error tensors are scaled ([`crate::scale`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ErrorScaling {
    /// Block floating point: every error tensor is normalized, with an exponent.
    #[default]
    Block,
    /// No normalization: errors stay at the scale they are computed at (the earlier
    /// scheme, kept for comparison; `hdfa gradcheck` shows what it costs).
    Fixed,
}

/// How the learning rate moves over the epochs ([`Config::eta_at`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EtaSchedule {
    /// η in every epoch.
    #[default]
    Constant,
    /// Epoch e of E (from 1) trains with η · (E − e + 1) / E: a linear decay that
    /// ends at η / E. Computed with one IEEE division and product and rounded once to
    /// the Q15.16 coefficient, so every machine gets the same bits (a cosine would
    /// depend on the platform's libm).
    Linear,
}

/// One layer entry of `[[layers]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerToml {
    /// Convolution.
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel size.
        #[serde(default = "three")]
        k: usize,
        /// Stride.
        #[serde(default = "one")]
        stride: usize,
        /// Padding (default: k / 2).
        pad: Option<usize>,
        /// Dilation.
        #[serde(default = "one")]
        dilation: usize,
        /// Groups.
        #[serde(default = "one")]
        groups: usize,
    },
    /// ReLU.
    Relu {},
    /// 2×2 max-pool.
    Maxpool {},
    /// Channel shuffle.
    Shuffle {
        /// Groups.
        groups: usize,
    },
    /// Flatten.
    Flatten {},
    /// Dense.
    Dense {
        /// Outputs.
        out: usize,
    },
}

fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}

/// `[backward]`: the fixed DFA backward weights.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackwardToml {
    /// Binary ±1 weights with a scaling shift.
    #[serde(default = "yes")]
    pub binary: bool,
    /// Channel groups G (1: no D2/shuffle).
    #[serde(default = "one")]
    pub groups: usize,
    /// Kernel size of D1.
    #[serde(default = "three")]
    pub k: usize,
    /// Dilate D1 to the forward receptive field.
    #[serde(default = "yes")]
    pub dilate: bool,
    /// Gain 2^−extra_shift of the DFA paths from e_L, applied once (0..=15).
    #[serde(default)]
    pub extra_shift: u32,
    /// Sparsity of the binary dense (matrix) paths, S = sign(D ⊙ R): the share of
    /// zero entries, [0, 1); needs `binary`.
    #[serde(default)]
    pub sparsity: f64,
    /// Where the binary backward weights come from: `"stored"` (drawn once and kept,
    /// the default) or `"lfsr"` (regenerated from a seed per matrix by the contract's
    /// xorshift32 streams, [`crate::fbgen`]: nothing stored); needs `binary`.
    #[serde(default)]
    pub generator: Generator,
}

impl Default for BackwardToml {
    fn default() -> Self {
        BackwardToml {
            binary: true,
            groups: 1,
            k: 3,
            dilate: true,
            extra_shift: 0,
            sparsity: 0.0,
            generator: Generator::Stored,
        }
    }
}

/// `[data]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataToml {
    /// The 8×8 digits CSV, split by a seeded shuffle.
    Digits {
        /// CSV file (gzip or plain).
        csv: PathBuf,
        /// Fraction held out for testing.
        test_fraction: f64,
    },
    /// IDX files (MNIST layout).
    Idx {
        /// Training images.
        train_images: PathBuf,
        /// Training labels.
        train_labels: PathBuf,
        /// Test images.
        test_images: PathBuf,
        /// Test labels.
        test_labels: PathBuf,
        /// Use only the first N training images (0: all).
        #[serde(default)]
        train_limit: usize,
        /// Use only the first N test images (0: all).
        #[serde(default)]
        test_limit: usize,
    },
}

/// The file as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigToml {
    /// Experiment name (used in output file names).
    pub name: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// Training algorithm.
    pub mode: Mode,
    /// BP ratio p (hdfa only).
    #[serde(default)]
    pub bp_ratio: Option<f64>,
    /// Mix γ (default 0.5): a DFA step moves by γ·v_dfa + (1 − γ)·v_bp. At a small
    /// BP ratio a small γ can diverge, because v_bp is re-applied at every DFA step
    /// between two BP steps (README, "Choosing γ").
    #[serde(default = "half")]
    pub gamma: f64,
    /// Momentum α.
    pub alpha: f64,
    /// Learning rate η.
    pub eta: f64,
    /// Learning-rate schedule over the epochs: "constant" (default) or "linear".
    #[serde(default)]
    pub eta_schedule: EtaSchedule,
    /// Batch size (a power of two).
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Worker threads.
    #[serde(default = "two")]
    pub threads: usize,
    /// Number-format preset.
    pub format: FormatPreset,
    /// Weighted layers per module (classifier excluded); empty: one module.
    #[serde(default)]
    pub modules: Vec<usize>,
    /// Error scaling: "block" (default) or "fixed".
    #[serde(default)]
    pub error_scaling: ErrorScaling,
    /// DFA backward weights.
    #[serde(default)]
    pub backward: BackwardToml,
    /// Dataset.
    pub data: DataToml,
    /// Classes.
    #[serde(default = "ten")]
    pub classes: usize,
    /// Input shape [channels, height, width]; the dataset's images must match it.
    pub input: [usize; 3],
    /// Layers.
    pub layers: Vec<LayerToml>,
}

fn half() -> f64 {
    0.5
}
fn two() -> usize {
    2
}
fn ten() -> usize {
    10
}

/// Validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it came from.
    pub file: PathBuf,
    /// The file's contents as parsed.
    pub raw: ConfigToml,
    /// Propagation of the non-BP steps.
    pub propagation: Propagation,
    /// Optimizer hyper-parameters.
    pub hyper: Hyper,
    /// DFA backward-weight options.
    pub dfa: DfaOptions,
    /// Layers.
    pub layers: Vec<LayerSpec>,
}

impl Config {
    /// The learning rate of epoch `epoch` (from 1; epochs past the config's count
    /// take the last one's), as the optimizer's Q15.16 coefficient.
    pub fn eta_at(&self, epoch: usize) -> Coef {
        match self.raw.eta_schedule {
            EtaSchedule::Constant => self.hyper.eta,
            EtaSchedule::Linear => {
                let n = self.raw.epochs.max(1);
                let left = n + 1 - epoch.clamp(1, n);
                Coef::new(self.raw.eta * left as f64 / n as f64)
            }
        }
    }

    /// Read and validate a config file. Relative data paths are taken relative to the
    /// current directory.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        Config::parse(file, &text)
    }

    /// Validate config text (`file` is used in messages).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: ConfigToml = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_path_buf(),
            msg: e.to_string(),
        })?;
        Config::from_raw(file, raw)
    }

    /// Validate an already parsed (possibly edited) config.
    pub fn from_raw(file: &Path, raw: ConfigToml) -> Result<Config, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let unit = |key: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(bad(
                    key,
                    format!("{v} is out of range: valid range is [0, 1]"),
                ))
            }
        };
        unit("alpha", raw.alpha)?;
        unit("gamma", raw.gamma)?;
        if !(raw.eta > 0.0 && raw.eta <= 1.0) {
            return Err(bad(
                "eta",
                format!("{} is out of range: valid range is (0, 1]", raw.eta),
            ));
        }
        let bp_ratio = match (raw.mode, raw.bp_ratio) {
            (Mode::Hdfa, Some(p)) => {
                unit("bp_ratio", p)?;
                p
            }
            (Mode::Hdfa, None) => {
                return Err(bad(
                    "bp_ratio",
                    "required for mode = \"hdfa\" (valid range [0, 1])".into(),
                ))
            }
            (Mode::Bp, None) => 1.0,
            (_, None) => 0.0,
            (m, Some(_)) => {
                return Err(bad(
                    "bp_ratio",
                    format!("only used with mode = \"hdfa\", not {m:?}"),
                ))
            }
        };
        if !raw.batch.is_power_of_two() || raw.batch > 1024 {
            return Err(bad(
                "batch",
                format!(
                    "{} is out of range: valid values are powers of two 1..=1024",
                    raw.batch
                ),
            ));
        }
        if raw.epochs == 0 {
            return Err(bad(
                "epochs",
                "0 is out of range: valid range is >= 1".into(),
            ));
        }
        if !(1..=64).contains(&raw.threads) {
            return Err(bad(
                "threads",
                format!("{} is out of range: valid range is 1..=64", raw.threads),
            ));
        }
        if !(2..=64).contains(&raw.classes) {
            return Err(bad(
                "classes",
                format!("{} is out of range: valid range is 2..=64", raw.classes),
            ));
        }
        let b = &raw.backward;
        if b.groups == 0 {
            return Err(bad(
                "backward.groups",
                "0 is out of range: valid range is >= 1".into(),
            ));
        }
        if b.extra_shift > 15 {
            return Err(bad(
                "backward.extra_shift",
                format!("{} is out of range: valid range is 0..=15", b.extra_shift),
            ));
        }
        if !(0.0..1.0).contains(&b.sparsity) {
            return Err(bad(
                "backward.sparsity",
                format!("{} is out of range: valid range is [0, 1)", b.sparsity),
            ));
        }
        if b.sparsity > 0.0 && !b.binary {
            return Err(bad(
                "backward.sparsity",
                format!(
                    "{} needs binary = true (the sparse weights are S = sign(D ⊙ R))",
                    b.sparsity
                ),
            ));
        }
        if b.generator == Generator::Lfsr && !b.binary {
            return Err(bad(
                "backward.generator",
                "\"lfsr\" needs binary = true (it regenerates sign and mask bits)".into(),
            ));
        }
        if b.k == 0 || b.k % 2 == 0 {
            return Err(bad(
                "backward.k",
                format!("{} is out of range: valid values are odd, >= 1", b.k),
            ));
        }
        if let DataToml::Digits { test_fraction, .. } = raw.data {
            if !(test_fraction > 0.0 && test_fraction < 1.0) {
                return Err(bad(
                    "data.test_fraction",
                    format!("{test_fraction} is out of range: valid range is (0, 1)"),
                ));
            }
        }
        let mut layers = Vec::new();
        for (i, l) in raw.layers.iter().enumerate() {
            let key = |k: &str| format!("layers[{i}].{k}");
            layers.push(match *l {
                LayerToml::Conv {
                    out,
                    k,
                    stride,
                    pad,
                    dilation,
                    groups,
                } => {
                    for (name, v) in [
                        ("out", out),
                        ("k", k),
                        ("stride", stride),
                        ("dilation", dilation),
                        ("groups", groups),
                    ] {
                        if v == 0 {
                            return Err(bad(
                                &key(name),
                                "0 is out of range: valid range is >= 1".into(),
                            ));
                        }
                    }
                    LayerSpec::Conv {
                        out,
                        k,
                        stride,
                        pad: pad.unwrap_or(dilation * (k / 2)),
                        dilation,
                        groups,
                    }
                }
                LayerToml::Relu {} => LayerSpec::Relu,
                LayerToml::Maxpool {} => LayerSpec::MaxPool,
                LayerToml::Shuffle { groups } => LayerSpec::Shuffle { groups },
                LayerToml::Flatten {} => LayerSpec::Flatten,
                LayerToml::Dense { out } => {
                    if out != raw.classes && i + 1 == raw.layers.len() {
                        return Err(bad(
                            &key("out"),
                            format!(
                                "the classifier has {out} outputs but classes = {}",
                                raw.classes
                            ),
                        ));
                    }
                    LayerSpec::Dense { out }
                }
            });
        }
        let propagation = match raw.mode {
            Mode::Bp => Propagation::Bp,
            Mode::Dfa => Propagation::Dfa,
            Mode::Cdfa | Mode::Hdfa => Propagation::Cdfa,
        };
        let hyper = Hyper {
            eta: Coef::new(raw.eta),
            alpha: Coef::new(raw.alpha),
            gamma: Coef::new(raw.gamma),
            bp_ratio,
            log2_batch: raw.batch.trailing_zeros(),
        };
        let dfa = DfaOptions {
            binary: b.binary,
            groups: b.groups,
            k: b.k,
            dilate: b.dilate,
            extra_shift: b.extra_shift,
            sparsity: b.sparsity,
            generator: b.generator,
        };
        Ok(Config {
            file: file.to_path_buf(),
            raw,
            propagation,
            hyper,
            dfa,
            layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "t"
seed = 1
mode = "hdfa"
bp_ratio = 0.5
alpha = 0.9
eta = 0.05
batch = 16
epochs = 2
format = "q8.8-q4.12-q3.13"
input = [1, 8, 8]
[data]
kind = "digits"
csv = "data/digits-8x8/digits.csv.gz"
test_fraction = 0.2
[[layers]]
type = "conv"
out = 8
[[layers]]
type = "relu"
[[layers]]
type = "dense"
out = 10
"#;

    fn err(text: &str) -> String {
        Config::parse(Path::new("exp.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn valid_config_parses_with_defaults() {
        let c = Config::parse(Path::new("exp.toml"), OK).unwrap();
        assert_eq!(c.hyper.log2_batch, 4);
        assert_eq!(c.hyper.bp_ratio, 0.5);
        assert_eq!(
            c.layers[0],
            LayerSpec::Conv {
                out: 8,
                k: 3,
                stride: 1,
                pad: 1,
                dilation: 1,
                groups: 1
            }
        );
        assert_eq!(c.propagation, Propagation::Cdfa);
        assert_eq!(c.raw.format, FormatPreset::Default);
        assert_eq!((c.eta_at(1), c.eta_at(2)), (c.hyper.eta, c.hyper.eta));
    }

    #[test]
    fn linear_schedule_steps_down_by_eta_over_epochs_and_wide_preset_parses() {
        let text = OK
            .replace("epochs = 2", "epochs = 4\neta_schedule = \"linear\"")
            .replace("q8.8-q4.12-q3.13", "q8.24-q4.12-q3.13");
        let c = Config::parse(Path::new("exp.toml"), &text).unwrap();
        assert_eq!(c.raw.format, FormatPreset::Wide);
        // 0.05 · (4, 3, 2, 1)/4 in Q15.16, rounded half up: raw ⌊x · 65536 + 0.5⌋.
        let raws: Vec<i64> = (1..=5).map(|e| c.eta_at(e).raw).collect();
        assert_eq!(raws, vec![3277, 2458, 1638, 819, 819]);
        let e = err(&OK.replace("epochs = 2", "epochs = 2\neta_schedule = \"cosine\""));
        assert!(e.contains("eta_schedule") || e.contains("cosine"), "{e}");
    }

    #[test]
    fn invalid_configs_name_file_key_and_reason() {
        let e = err(&OK.replace("eta = 0.05", "eta = 0.05\nlearning_rate = 1"));
        assert!(
            e.contains("exp.toml") && e.contains("unknown field `learning_rate`"),
            "{e}"
        );
        let e = err(&OK.replace("bp_ratio = 0.5", "bp_ratio = 1.5"));
        assert!(e.contains("key `bp_ratio`") && e.contains("[0, 1]"), "{e}");
        let e = err(&OK.replace("alpha = 0.9", "alpha = -0.1"));
        assert!(e.contains("key `alpha`"), "{e}");
        let e = err(&OK
            .replace("mode = \"hdfa\"", "mode = \"bp\"\ngamma = 2.0")
            .replace("bp_ratio = 0.5\n", ""));
        assert!(e.contains("key `gamma`"), "{e}");
        let e = err(&OK.replace("batch = 16", "batch = 12"));
        assert!(
            e.contains("key `batch`") && e.contains("powers of two"),
            "{e}"
        );
        let e = err(&OK.replace("out = 8", "out = 8\ndilation = 0"));
        assert!(e.contains("layers[0].dilation"), "{e}");
        let e = err(&OK.replace("type = \"relu\"", "type = \"relu\"\nk = 3"));
        assert!(e.contains("unknown field `k`"), "{e}");
        let e = err(&OK.replace("test_fraction = 0.2", "test_fraction = 1.0"));
        assert!(e.contains("data.test_fraction"), "{e}");
        let e = err(&OK.replace("out = 10", "out = 7"));
        assert!(e.contains("layers[2].out"), "{e}");
        let e = err(&OK.replace("bp_ratio = 0.5\n", ""));
        assert!(
            e.contains("key `bp_ratio`") && e.contains("required"),
            "{e}"
        );
        let back = |extra: &str| OK.replace("[data]", &format!("[backward]\n{extra}\n[data]"));
        let e = err(&back("sparsity = 1.0"));
        assert!(
            e.contains("backward.sparsity") && e.contains("[0, 1)"),
            "{e}"
        );
        let e = err(&back("sparsity = -0.1"));
        assert!(e.contains("backward.sparsity") && e.contains("-0.1"), "{e}");
        let e = err(&back("sparsity = 0.5\nbinary = false"));
        assert!(
            e.contains("backward.sparsity") && e.contains("binary"),
            "{e}"
        );
        let c = Config::parse(Path::new("exp.toml"), &back("generator = \"lfsr\"")).unwrap();
        assert_eq!(c.dfa.generator, Generator::Lfsr);
        let e = err(&back("generator = \"lfsr\"\nbinary = false"));
        assert!(
            e.contains("backward.generator") && e.contains("binary = true"),
            "{e}"
        );
        let e = err(&back("generator = \"rom\""));
        assert!(
            e.contains("rom") && e.contains("stored") && e.contains("lfsr"),
            "{e}"
        );
        let c = Config::parse(Path::new("exp.toml"), &back("sparsity = 0.9")).unwrap();
        assert_eq!(c.dfa.sparsity, 0.9);
    }
}
