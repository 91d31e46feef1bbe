//! An experiment: a validated [`Config`], its data and a [`Trainer`], run epoch by
//! epoch with per-epoch metrics, atomic checkpoints that resume bit-identically, and
//! `.npy` dumps of one step.
//!
//! Data order: epoch e visits the training set in a permutation drawn from
//! `Rng::new(seed ⊕ h(e))`, in whole batches (a last partial batch is dropped, since
//! the batch mean is a shift). So a checkpoint at an epoch boundary needs only the
//! trainer state and the epoch number.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cnn::net::{build_blocks, Net};
use crate::cnn::num::{Fx, Num};
use crate::cnn::train::{Loss, StepKind, StepStats, Trace, Trainer};
use crate::config::{Config, DataToml};
use crate::data::{self, DataError, Dataset};
use crate::rng::Rng;
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

fn file_err(path: &Path, e: impl std::fmt::Display) -> ExpError {
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

/// Load the train and test sets a config names.
pub fn load_data(c: &Config) -> Result<(Dataset, Dataset), ExpError> {
    let classes = c.raw.classes;
    let (train, test) = match &c.raw.data {
        DataToml::Digits { csv, test_fraction } => {
            let all = data::load_digits_csv(csv, c.raw.input[1], classes)?;
            let mut idx: Vec<usize> = (0..all.len()).collect();
            let mut rng = Rng::new(c.raw.seed ^ 0xDA7A);
            for i in (1..idx.len()).rev() {
                idx.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let n_test = ((all.len() as f64) * test_fraction).round() as usize;
            let pick = |ids: &[usize]| {
                let mut d = all.slice(0..0);
                for &i in ids {
                    d.pixels.extend_from_slice(all.image(i));
                    d.labels.push(all.labels[i]);
                }
                d
            };
            (pick(&idx[n_test..]), pick(&idx[..n_test]))
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
                tr = tr.slice(0..*train_limit);
            }
            if *test_limit > 0 && *test_limit < te.len() {
                te = te.slice(0..*test_limit);
            }
            (tr, te)
        }
    };
    let [c_in, h, w] = c.raw.input;
    for d in [&train, &test] {
        if c_in != 1 || d.height != h || d.width != w {
            return Err(ExpError::Shape {
                file: c.file.clone(),
                reason: format!(
                    "the config says {c_in}x{h}x{w} but the images are 1x{}x{}",
                    d.height, d.width
                ),
            });
        }
    }
    Ok((train, test))
}

/// Convert stored pixels to input values: pixel / max_pixel.
pub fn to_inputs<N: Num>(d: &Dataset) -> (Vec<Vec<N::V>>, Vec<usize>) {
    let m = d.max_pixel as f64;
    let xs = (0..d.len())
        .map(|i| {
            d.image(i)
                .iter()
                .map(|&p| N::act_from_f64(p as f64 / m))
                .collect()
        })
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
        let net = Net::<N>::new(
            (c, h, w),
            blocks,
            config.propagation,
            config.dfa,
            config.raw.seed,
        )
        .map_err(net_err)?;
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
        let mut rng =
            Rng::new(self.config.raw.seed ^ (e as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.below(i as u64 + 1) as usize);
        }
        idx
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

    /// Run the next epoch.
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(StepReport)) -> EpochMetrics {
        let e = self.epoch + 1;
        let order = self.order(e);
        let nb = self.batches();
        let threads = self.config.raw.threads;
        let (mut loss, mut correct, mut bp, mut dfa) = (0.0, 0usize, 0usize, 0usize);
        for b in 0..nb {
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
        m
    }

    /// Mean loss and accuracy on a set.
    pub fn evaluate(&self, xs: &[Vec<N::V>], ys: &[usize]) -> (f64, f64) {
        if xs.is_empty() {
            return (0.0, 0.0);
        }
        let f = self.trainer.net.forward_copy();
        let threads = self.config.raw.threads.clamp(1, xs.len());
        let chunk = xs.len().div_ceil(threads);
        let parts: Vec<(f64, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = xs
                .chunks(chunk)
                .zip(ys.chunks(chunk))
                .map(|(xc, yc)| {
                    let f = &f;
                    let net = &self.trainer.net;
                    s.spawn(move || {
                        let mut t = Trace::<N>::default();
                        let (mut l, mut c) = (0.0, 0usize);
                        for (x, &y) in xc.iter().zip(yc) {
                            net.forward(f, x, &mut t);
                            let z = t.p.last().expect("blocks");
                            let best = (0..z.len()).fold(0, |b, k| if z[k] > z[b] { k } else { b });
                            c += (best == y) as usize;
                            let mut e = vec![N::zero(); z.len()];
                            l += N::softmax_xent(z, y, &mut e).1;
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
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in self
            .trainer
            .net
            .w
            .iter()
            .chain(self.trainer.net.b.iter())
            .flatten()
        {
            for b in N::master_bits(*v).to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }

    // ---------------------------------------------------------------- checkpoints

    /// Write a checkpoint atomically (temporary file in the same directory, fsync,
    /// rename), so a crash leaves either the old or the new checkpoint, never half.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), ExpError> {
        let mut buf: Vec<u8> = Vec::new();
        buf.extend_from_slice(CKPT_MAGIC);
        let put = |buf: &mut Vec<u8>, x: u64| buf.extend_from_slice(&x.to_le_bytes());
        put(&mut buf, config_hash(&self.config));
        put(&mut buf, self.epoch as u64);
        put(&mut buf, self.trainer.step);
        for s in self.trainer.step_rng.state() {
            put(&mut buf, s);
        }
        let t = &self.trainer;
        for tensor in t
            .net
            .w
            .iter()
            .chain(t.net.b.iter())
            .chain(t.opt.v_bp.iter())
            .chain(t.opt.v_dfa.iter())
        {
            put(&mut buf, tensor.len() as u64);
            for v in tensor {
                put(&mut buf, N::master_bits(*v) as u64);
            }
        }
        put(&mut buf, self.history.len() as u64);
        for m in &self.history {
            for x in [
                m.epoch as f64,
                m.train_loss,
                m.train_acc,
                m.test_loss,
                m.test_acc,
                m.bp_steps as f64,
                m.dfa_steps as f64,
            ] {
                put(&mut buf, x.to_bits());
            }
        }
        write_atomic(path, &buf)
    }

    /// Restore a checkpoint written by [`Experiment::save_checkpoint`] for the same config.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<(), ExpError> {
        let buf = std::fs::read(path).map_err(|e| file_err(path, e))?;
        let bad = |r: &str| file_err(path, format!("not a valid checkpoint: {r}"));
        if !buf.starts_with(CKPT_MAGIC) {
            return Err(bad("wrong magic"));
        }
        let mut pos = CKPT_MAGIC.len();
        let mut get = || -> Result<u64, ExpError> {
            let b = buf.get(pos..pos + 8).ok_or_else(|| bad("truncated"))?;
            pos += 8;
            Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        if get()? != config_hash(&self.config) {
            return Err(bad("it was written for a different configuration"));
        }
        let epoch = get()? as usize;
        let step = get()?;
        let rng = [get()?, get()?, get()?, get()?];
        let t = &self.trainer;
        let shapes: Vec<usize> = t
            .net
            .w
            .iter()
            .chain(t.net.b.iter())
            .chain(t.opt.v_bp.iter())
            .chain(t.opt.v_dfa.iter())
            .map(Vec::len)
            .collect();
        let mut tensors = Vec::new();
        for &len in &shapes {
            if get()? as usize != len {
                return Err(bad("tensor shapes differ from the network"));
            }
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                v.push(N::master_from_bits(get()? as i64));
            }
            tensors.push(v);
        }
        let n_hist = get()? as usize;
        let mut history = Vec::new();
        for _ in 0..n_hist {
            let mut f = [0f64; 7];
            for x in f.iter_mut() {
                *x = f64::from_bits(get()?);
            }
            history.push(EpochMetrics {
                epoch: f[0] as usize,
                train_loss: f[1],
                train_acc: f[2],
                test_loss: f[3],
                test_acc: f[4],
                bp_steps: f[5] as usize,
                dfa_steps: f[6] as usize,
            });
        }
        let nw = self.trainer.net.w.len();
        let nb = self.trainer.net.b.len();
        let mut it = tensors.into_iter();
        let t = &mut self.trainer;
        for k in 0..nw {
            t.net.w[k] = it.next().expect("shape checked");
        }
        for k in 0..nb {
            t.net.b[k] = it.next().expect("shape checked");
        }
        for k in 0..nw + nb {
            t.opt.v_bp[k] = it.next().expect("shape checked");
        }
        for k in 0..nw + nb {
            t.opt.v_dfa[k] = it.next().expect("shape checked");
        }
        t.step = step;
        t.step_rng = Rng::from_state(rng);
        self.epoch = epoch;
        self.history = history;
        Ok(())
    }

    // ---------------------------------------------------------------- dumps

    /// Write global step `step`'s inputs, forward weights, errors and gradients as
    /// `.npy` files into `dir` (raw fixed-point integers, or f32), plus `formats.txt`.
    /// The step itself is not taken: call this before training that step.
    pub fn dump_step(
        &self,
        order: &[usize],
        b: usize,
        dir: &Path,
    ) -> Result<Vec<PathBuf>, ExpError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let batch = self.batch(order, b);
        let t = &self.trainer;
        let f = t.net.forward_copy();
        let kind = t.next_kind();
        let nb = t.net.blocks.len();
        let mut written = Vec::new();
        let [c, h, w] = self.config.raw.input;
        let mut inputs = Vec::new();
        let mut errors: Vec<Vec<N::V>> = vec![Vec::new(); nb];
        let mut tr = Trace::<N>::default();
        for (x, y) in &batch {
            inputs.extend_from_slice(x);
            t.net.forward(&f, x, &mut tr);
            let z = tr.p[nb - 1].clone();
            let mut e_l = vec![N::zero(); z.len()];
            N::softmax_xent(&z, *y, &mut e_l);
            t.net.propagate(&f, kind, &mut tr, e_l);
            for (i, e) in tr.e.iter().enumerate() {
                errors[i].extend_from_slice(e);
            }
        }
        let bs = batch.len();
        written.push(write_npy::<N>(
            dir,
            "inputs",
            &[bs, c, h, w],
            Vals::V(&inputs),
        )?);
        let labels: Vec<i64> = batch.iter().map(|b| b.1 as i64).collect();
        written.push(write_npy::<N>(dir, "labels", &[bs], Vals::I64(&labels))?);
        let (grads, _) = t.gradients(kind, &batch, self.config.raw.threads);
        for (i, blk) in t.net.blocks.iter().enumerate() {
            let g = &blk.geom;
            let wshape = [g.out_c, g.icg(), g.k, g.k];
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_weight"),
                &wshape,
                Vals::V(&f.w[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_bias"),
                &[g.out_c],
                Vals::V(&f.b[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_error"),
                &[bs, g.out_c, g.out_h, g.out_w],
                Vals::V(&errors[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_grad_weight"),
                &wshape,
                Vals::M(&grads[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_grad_bias"),
                &[g.out_c],
                Vals::M(&grads[nb + i]),
            )?);
        }
        let note = dir.join("formats.txt");
        let text = format!(
            "step {} ({:?} propagation)\nfixed point: inputs/bias Q8.8 (raw int16, divide by 256), weights Q4.12 (divide by 4096), errors Q3.13 (divide by 8192), gradients Q8.24 (raw int32, divide by 2^24)\nf32 runs store plain float32\nweight layout [out_c, in_c/groups, k, k]; error = dL/dp at each layer's pre-activation, per sample\n",
            t.step, kind
        );
        std::fs::write(&note, text).map_err(|e| file_err(&note, e))?;
        written.push(note);
        Ok(written)
    }
}

fn make_batch<'a, N: Num>(
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

const CKPT_MAGIC: &[u8; 8] = b"HDFACK01";

/// Hash of everything that shapes the training trajectory: the epoch count and the
/// thread count are left out, so a run can be extended or resumed on another machine.
fn config_hash(c: &Config) -> u64 {
    let mut raw = c.raw.clone();
    raw.epochs = 0;
    raw.threads = 0;
    let text = format!("{raw:?}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExpError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| file_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| file_err(&tmp, e))?;
    f.sync_all().map_err(|e| file_err(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

enum Vals<'a, N: Num> {
    V(&'a [N::V]),
    M(&'a [N::M]),
    I64(&'a [i64]),
}

fn write_npy<N: Num>(
    dir: &Path,
    name: &str,
    shape: &[usize],
    vals: Vals<N>,
) -> Result<PathBuf, ExpError> {
    // Fixed point: V = int16, M = int32. f32: both float32 (detected from the type size).
    let (descr, body): (&str, Vec<u8>) = match vals {
        Vals::V(v) => {
            if std::mem::size_of::<N::V>() == 2 {
                (
                    "<i2",
                    v.iter()
                        .flat_map(|x| (N::bits(*x) as i16).to_le_bytes())
                        .collect(),
                )
            } else {
                (
                    "<f4",
                    v.iter()
                        .flat_map(|x| (N::bits(*x) as u32).to_le_bytes())
                        .collect(),
                )
            }
        }
        Vals::M(v) => {
            if std::mem::size_of::<N::V>() == 2 {
                (
                    "<i4",
                    v.iter()
                        .flat_map(|x| (N::master_bits(*x) as i32).to_le_bytes())
                        .collect(),
                )
            } else {
                (
                    "<f4",
                    v.iter()
                        .flat_map(|x| (N::master_bits(*x) as u32).to_le_bytes())
                        .collect(),
                )
            }
        }
        Vals::I64(v) => ("<i8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    let path = dir.join(format!("{name}.npy"));
    write_atomic(&path, &out)?;
    Ok(path)
}

/// One conv backward path's input and output at one sample of a real training step.
#[derive(Clone, Debug)]
pub struct PathCapture {
    /// Global training step (0 = before the first update).
    pub step: usize,
    /// Sample within the step's batch.
    pub sample: usize,
    /// Target block.
    pub target: usize,
    /// Source block.
    pub source: usize,
    /// The path as engine parameters.
    pub layer: crate::dce::DceLayer,
    /// Its binary weights.
    pub weights: crate::dce::DceWeights,
    /// e at the source block's pre-activation.
    pub e_src: Vec<i16>,
    /// ReLU mask of the target (p > 0; all true without ReLU).
    pub mask: Vec<bool>,
    /// The trainer's e at the target's pre-activation.
    pub expected: Vec<i16>,
}

impl Experiment<Fx> {
    /// Train from the current state up to the largest of `steps` (global step
    /// indices, epochs in order) and, before each listed step's update, record every
    /// conv path the engine can run (binary, equal map sizes) for the first `samples`
    /// samples of that step's batch, with DFA propagation at that step's weights.
    pub fn capture_paths(
        &mut self,
        steps: &[usize],
        samples: usize,
    ) -> Result<Vec<PathCapture>, ExpError> {
        let Some(&last) = steps.iter().max() else {
            return Ok(Vec::new());
        };
        let nb = self.batches();
        let threads = self.config.raw.threads;
        let mut out = Vec::new();
        let mut order = Vec::new();
        for s in 0..=last {
            if s % nb == 0 {
                order = self.order(s / nb + 1);
            }
            let batch = make_batch::<Fx>(
                &self.train_x,
                &self.train_y,
                &order,
                s % nb,
                self.config.raw.batch,
            );
            if steps.contains(&s) {
                let t = &self.trainer;
                let f = t.net.forward_copy();
                let nblk = t.net.blocks.len();
                let mut tr = Trace::default();
                for (i, (x, y)) in batch.iter().take(samples).enumerate() {
                    t.net.forward(&f, x, &mut tr);
                    let z = tr.p[nblk - 1].clone();
                    let mut e_l = vec![0i16; z.len()];
                    <Fx as Loss>::softmax_xent(&z, *y, &mut e_l);
                    t.net.propagate(&f, StepKind::Dfa, &mut tr, e_l);
                    for p in &t.net.paths {
                        let Some(r) = crate::dce::from_path(p) else {
                            continue;
                        };
                        let (layer, weights) = r.map_err(|err| ExpError::Net {
                            file: self.config.file.clone(),
                            err,
                        })?;
                        let relu = t.net.blocks[p.target].relu;
                        out.push(PathCapture {
                            step: s,
                            sample: i,
                            target: p.target,
                            source: p.source,
                            layer,
                            weights,
                            e_src: tr.e[p.source].clone(),
                            mask: tr.p[p.target].iter().map(|&v| !relu || v > 0).collect(),
                            expected: tr.e[p.target].clone(),
                        });
                    }
                }
            }
            self.trainer.train_step(&batch, threads);
        }
        Ok(out)
    }
}
