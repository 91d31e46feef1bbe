//! An experiment: a validated [`Config`], its data and a [`Trainer`], run epoch by
//! epoch with per-epoch metrics, atomic checkpoints that resume bit-identically, and
//! `.npy` dumps of one step.
//!
//! Data order: epoch e visits the training set in a permutation drawn from
//! `Rng::seed_from_u64(seed ⊕ h(e))`, in whole batches (a last partial batch is dropped, since
//! the batch mean is a shift). So a checkpoint at an epoch boundary needs only the
//! trainer state and the epoch number.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cnn::net::{build_blocks, Net};
use crate::cnn::num::Num;
use crate::cnn::train::{Loss, StepKind, StepStats, Trace, Trainer};
use crate::config::{Config, DataToml};
use crate::config::{ErrorScaling, FormatPreset};
use crate::data::{self, DataError, Dataset};
use crate::hash::Fnv1a;
use crate::rng::Rng;
use crate::rng::SeedableRng;
use crate::GoldenError;

/// Errors of an experiment.
#[derive(Debug, Error)]
pub enum ExpError {
    /// Config problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Dataset problem.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Network problem.
    #[error("{file}: {err}")]
    Net {
        /// Config file.
        file: PathBuf,
        /// The cause.
        err: GoldenError,
    },
    /// Dataset does not match the config.
    #[error("{file}: key `input`: {reason}")]
    Shape {
        /// Config file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// Checkpoint or output file trouble.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

pub(crate) fn file_err(path: &Path, e: impl std::fmt::Display) -> ExpError {
    ExpError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Metrics of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy over the epoch (as seen during training).
    pub train_acc: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_acc: f64,
    /// BP steps in the epoch.
    pub bp_steps: usize,
    /// DFA steps in the epoch.
    pub dfa_steps: usize,
}

/// Progress of one step, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// Epoch (from 1).
    pub epoch: usize,
    /// Batch within the epoch (from 0).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// The step's stats.
    pub stats: StepStats,
}

/// A running experiment.
pub struct Experiment<N: Num> {
    /// The configuration.
    pub config: Config,
    /// Training inputs.
    pub train_x: Vec<Vec<N::V>>,
    /// Training labels.
    pub train_y: Vec<usize>,
    /// Test inputs.
    pub test_x: Vec<Vec<N::V>>,
    /// Test labels.
    pub test_y: Vec<usize>,
    /// Trainer state.
    pub trainer: Trainer<N>,
    /// Epochs completed.
    pub epoch: usize,
    /// Metrics of completed epochs.
    pub history: Vec<EpochMetrics>,
}

/// A floor of the bytes training `blocks` allocates, checked against the memory budget
/// before anything large is: per parameter the master weight, both velocities, the
/// gradient (4 bytes each); per dense backward-path entry 3 bytes (sign and ±1
/// word; original DFA has one matrix from e_L per hidden block, the others one into
/// the last conv block); per batch element of every block output 8 bytes; per input
/// pixel of the data 2 bytes.
fn memory_floor(blocks: &[crate::cnn::net::Block], config: &Config, pixels: usize) -> u64 {
    let params: u64 = blocks
        .iter()
        .map(|b| (b.geom.w_len() + b.geom.out_c) as u64)
        .sum();
    let classes = config.raw.classes as u64;
    let p_len = |b: &crate::cnn::net::Block| {
        let (c, h, w) = b.p_shape();
        (c * h * w) as u64
    };
    let hidden = &blocks[..blocks.len().saturating_sub(1)];
    let dense: u64 = match config.propagation {
        crate::cnn::net::Propagation::Bp => 0,
        crate::cnn::net::Propagation::Dfa => hidden.iter().map(p_len).sum::<u64>() * classes,
        crate::cnn::net::Propagation::Cdfa => hidden.last().map_or(0, p_len) * classes,
    };
    let acts: u64 = blocks.iter().map(p_len).sum::<u64>() * config.raw.batch as u64;
    params.saturating_mul(16) + dense.saturating_mul(3) + acts.saturating_mul(8) + 2 * pixels as u64
}

/// Load the train and test sets a config names.
pub fn load_data(c: &Config) -> Result<(Dataset, Dataset), ExpError> {
    let classes = c.raw.classes;
    let (train, test) = match &c.raw.data {
        DataToml::Digits { csv, test_fraction } => {
            let all = data::load_digits_csv(csv, c.raw.input[1], classes)?;
            let mut idx: Vec<usize> = (0..all.len()).collect();
            Rng::seed_from_u64(c.raw.seed ^ 0xDA7A).shuffle(&mut idx);
            let n_test = ((all.len() as f64) * test_fraction).round() as usize;
            (all.select(&idx[n_test..]), all.select(&idx[..n_test]))
        }
        DataToml::Idx {
            train_images,
            train_labels,
            test_images,
            test_labels,
            train_limit,
            test_limit,
        } => {
            let mut tr = data::load_idx(train_images, train_labels, classes)?;
            let mut te = data::load_idx(test_images, test_labels, classes)?;
            if *train_limit > 0 && *train_limit < tr.len() {
                tr = tr.first(*train_limit);
            }
            if *test_limit > 0 && *test_limit < te.len() {
                te = te.first(*test_limit);
            }
            (tr, te)
        }
    };
    let [c_in, h, w] = c.raw.input;
    for d in [&train, &test] {
        if c_in != 1 || d.height() != h || d.width() != w {
            return Err(ExpError::Shape {
                file: c.file.clone(),
                reason: format!(
                    "the config says {c_in}x{h}x{w} but the images are 1x{}x{}",
                    d.height(),
                    d.width()
                ),
            });
        }
    }
    Ok((train, test))
}

/// Convert stored pixels to input values: pixel / max_pixel.
pub fn to_inputs<N: Num>(d: &Dataset) -> (Vec<Vec<N::V>>, Vec<usize>) {
    let m = d.max_pixel as f64;
    // One conversion per pixel value (a table of 256), not per pixel.
    let table: Vec<N::V> = (0..=255u8).map(|p| N::act_from_f64(p as f64 / m)).collect();
    let xs = (0..d.len())
        .map(|i| d.image(i).iter().map(|&p| table[p as usize]).collect())
        .collect();
    (xs, d.labels.iter().map(|&l| l as usize).collect())
}

impl<N: Loss> Experiment<N> {
    /// Load data and build the network for a validated config.
    pub fn new(config: Config) -> Result<Self, ExpError> {
        let (train, test) = load_data(&config)?;
        Self::with_data(config, &train, &test)
    }

    /// Build from already loaded data.
    pub fn with_data(config: Config, train: &Dataset, test: &Dataset) -> Result<Self, ExpError> {
        let net_err = |err| ExpError::Net {
            file: config.file.clone(),
            err,
        };
        let [c, h, w] = config.raw.input;
        let blocks =
            build_blocks((c, h, w), &config.layers, &config.raw.modules).map_err(net_err)?;
        let pixels = (train.len() + test.len()) * c * h * w;
        crate::mem::check(
            "the network, its backward paths, a batch and the data",
            memory_floor(&blocks, &config, pixels),
        )
        .map_err(net_err)?;
        let mut net = Net::<N>::new(
            (c, h, w),
            blocks,
            config.propagation,
            config.dfa,
            config.raw.seed,
        )
        .map_err(net_err)?;
        net.normalize = config.raw.error_scaling == ErrorScaling::Block;
        net.wide = config.raw.format == FormatPreset::Wide;
        let trainer = Trainer::new(net, config.hyper, config.raw.seed);
        let (train_x, train_y) = to_inputs::<N>(train);
        let (test_x, test_y) = to_inputs::<N>(test);
        if train_x.len() < config.raw.batch {
            return Err(ExpError::Shape {
                file: config.file.clone(),
                reason: format!(
                    "{} training images, fewer than one batch of {}",
                    train_x.len(),
                    config.raw.batch
                ),
            });
        }
        Ok(Experiment {
            config,
            train_x,
            train_y,
            test_x,
            test_y,
            trainer,
            epoch: 0,
            history: Vec::new(),
        })
    }

    /// The visiting order of epoch `e` (from 1).
    pub fn order(&self, e: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.train_x.len()).collect();
        Rng::seed_from_u64(self.config.raw.seed ^ (e as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .shuffle(&mut idx);
        idx
    }

    /// Walk global steps 0..=`last` in training order (epochs in order, from the
    /// current state): before each step, `visit(trainer, step, batch)` sees the
    /// weights that step is trained with; then the step is trained, except `last`
    /// when `train_last` is false.
    pub fn walk_steps(
        &mut self,
        last: usize,
        train_last: bool,
        mut visit: impl FnMut(&Trainer<N>, usize, &[(&[N::V], usize)]) -> Result<(), ExpError>,
    ) -> Result<(), ExpError> {
        let threads = self.config.raw.threads;
        self.train_steps_with(last, |t, s, batch| {
            visit(t, s, batch)?;
            if s < last || train_last {
                t.train_step(batch, threads);
            }
            Ok(())
        })
    }

    /// Train global steps 0..=`last` in training order from the current state (a
    /// fresh experiment), each by `step(trainer, step, batch)`, which must train it
    /// (hardware in the loop: with the update on the update unit). The learning-rate
    /// schedule and the batches are those of [`Experiment::run_epoch`].
    pub fn train_steps_with<E>(
        &mut self,
        last: usize,
        mut step: impl FnMut(&mut Trainer<N>, usize, &[(&[N::V], usize)]) -> Result<(), E>,
    ) -> Result<(), E> {
        let nb = self.batches();
        let mut order = Vec::new();
        for s in 0..=last {
            if s % nb == 0 {
                order = self.order(s / nb + 1);
                self.trainer.hyper.eta = self.config.eta_at(s / nb + 1);
            }
            let batch = make_batch::<N>(
                &self.train_x,
                &self.train_y,
                &order,
                s % nb,
                self.config.raw.batch,
            );
            step(&mut self.trainer, s, &batch)?;
        }
        Ok(())
    }

    /// Checksum of the whole training state the optimizer writes: master weights and
    /// biases, then both velocities (FNV-1a over their raw bits).
    pub fn state_checksum(&self) -> u64 {
        let mut h = Fnv1a::new();
        let t = &self.trainer;
        for v in t
            .net
            .w
            .iter()
            .chain(t.net.b.iter())
            .chain(t.opt.v_bp.iter())
            .chain(t.opt.v_dfa.iter())
            .flatten()
        {
            h.write(&N::master_bits(*v).to_le_bytes());
        }
        h.finish()
    }

    /// Batches per epoch.
    pub fn batches(&self) -> usize {
        self.train_x.len() / self.config.raw.batch
    }

    /// The `b`-th batch of an epoch visiting `order`.
    pub fn batch(&self, order: &[usize], b: usize) -> Vec<(&[N::V], usize)> {
        make_batch::<N>(
            &self.train_x,
            &self.train_y,
            order,
            b,
            self.config.raw.batch,
        )
    }

    /// Train one epoch (see [`Experiment::run_epoch_dumping`]).
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(StepReport)) -> EpochMetrics {
        self.run_epoch_dumping(None, progress)
            .expect("an epoch without a dump writes no file")
            .0
    }

    /// Train one epoch; with `dump = Some((b, dir))`, first dump batch `b`'s step
    /// ([`Experiment::dump_step`]) at the weights it is trained with, right before
    /// that step. Returns the epoch's metrics and the files written.
    pub fn run_epoch_dumping(
        &mut self,
        dump: Option<(usize, &Path)>,
        progress: &mut dyn FnMut(StepReport),
    ) -> Result<(EpochMetrics, Vec<PathBuf>), ExpError> {
        let e = self.epoch + 1;
        let order = self.order(e);
        self.trainer.hyper.eta = self.config.eta_at(e);
        let nb = self.batches();
        let threads = self.config.raw.threads;
        let (mut loss, mut correct, mut bp, mut dfa) = (0.0, 0usize, 0usize, 0usize);
        let mut written = Vec::new();
        for b in 0..nb {
            if let Some((_, dir)) = dump.filter(|d| d.0 == b) {
                written = self.dump_step(&order, b, dir)?;
            }
            let batch = make_batch::<N>(
                &self.train_x,
                &self.train_y,
                &order,
                b,
                self.config.raw.batch,
            );
            let stats = self.trainer.train_step(&batch, threads);
            loss += stats.loss;
            correct += stats.correct;
            match stats.kind {
                StepKind::Bp => bp += 1,
                StepKind::Dfa => dfa += 1,
            }
            progress(StepReport {
                epoch: e,
                batch: b,
                batches: nb,
                stats,
            });
        }
        let (test_loss, test_acc) = self.evaluate(&self.test_x, &self.test_y);
        let m = EpochMetrics {
            epoch: e,
            train_loss: loss / nb as f64,
            train_acc: correct as f64 / (nb * self.config.raw.batch) as f64,
            test_loss,
            test_acc,
            bp_steps: bp,
            dfa_steps: dfa,
        };
        self.epoch = e;
        self.history.push(m);
        Ok((m, written))
    }

    /// Mean loss and accuracy on a set.
    pub fn evaluate(&self, xs: &[Vec<N::V>], ys: &[usize]) -> (f64, f64) {
        if xs.is_empty() {
            return (0.0, 0.0);
        }
        let f = self.trainer.net.forward_copy();
        let threads = self.config.raw.threads.clamp(1, xs.len());
        let chunk = xs.len().div_ceil(threads);
        let cap = crate::cnn::gemm::isa_limit();
        let parts: Vec<(f64, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = xs
                .chunks(chunk)
                .zip(ys.chunks(chunk))
                .map(|(xc, yc)| {
                    let f = &f;
                    let net = &self.trainer.net;
                    s.spawn(move || {
                        crate::cnn::gemm::limit_isa(cap);
                        let mut t = Trace::<N>::default();
                        let (mut l, mut c) = (0.0, 0usize);
                        for (x, &y) in xc.iter().zip(yc) {
                            let s = net.sample(f, x, y, None, &mut t);
                            c += (s.predicted == y) as usize;
                            l += s.loss_real;
                        }
                        (l, c)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("worker thread panicked"))
                .collect()
        });
        let l: f64 = parts.iter().map(|p| p.0).sum();
        let c: usize = parts.iter().map(|p| p.1).sum();
        (l / xs.len() as f64, c as f64 / xs.len() as f64)
    }

    /// Checksum of all master weights and biases (FNV-1a over their raw bits).
    pub fn weight_checksum(&self) -> u64 {
        let mut h = Fnv1a::new();
        for v in self
            .trainer
            .net
            .w
            .iter()
            .chain(self.trainer.net.b.iter())
            .flatten()
        {
            h.write(&N::master_bits(*v).to_le_bytes());
        }
        h.finish()
    }
}

pub(crate) fn make_batch<'a, N: Num>(
    xs: &'a [Vec<N::V>],
    ys: &[usize],
    order: &[usize],
    b: usize,
    bs: usize,
) -> Vec<(&'a [N::V], usize)> {
    order[b * bs..(b + 1) * bs]
        .iter()
        .map(|&i| (xs[i].as_slice(), ys[i]))
        .collect()
}
