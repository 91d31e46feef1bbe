//! Training the recurrent language model in fixed point: the token stream cut into
//! parallel streams, windows of T steps with the state carried between windows
//! (truncated BPTT), exact gradient sums over the batch and one fixed-point Adam
//! update per word ([`crate::adam::adam_word`]). With a DFA feedback
//! ([`RnnTrainer::with_dfa`]) each step is a BPTT step with probability p (the BP
//! ratio) and a DFA step otherwise ([`super::dfa`]); both kinds feed the same Adam
//! state (HDFA, paper section 3.4). p = 0 is pure DFA. Main types: [`RnnHyper`],
//! [`RnnTrainer`], [`RnnEval`]; function [`batchify`].
//!
//! **Batches** are laid out as in PyTorch's word-language-model example: the token
//! stream is cut into `batch` equal streams (the tail that does not divide is dropped),
//! and step k trains on window k of every stream at once, each stream from its own
//! carried state. A window of T steps predicts tokens t+1 from tokens t.
//!
//! **Determinism.** Streams are spread over threads; each thread's gradient sums are
//! exact integers (i128) and are added in stream order, so the update does not depend
//! on the thread count.

use super::cell::{bptt, forward, CellKind, RnnGrads, RnnParams, RnnShape};
use super::dfa::{dfa_grads, RnnDfaOptions, RnnFeedback, GRAD_SHIFTS};
use crate::adam::{adam_word, AdamHyper, AdamSteps};
use crate::cnn::softmax::LOSS_FRAC;
use crate::rng::{Rng, SeedableRng};
use crate::GoldenError;

/// Training hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnHyper {
    /// Adam's step size and moments.
    pub adam: AdamHyper,
    /// Parallel streams per batch.
    pub batch: usize,
    /// Window length T (BPTT steps).
    pub bptt: usize,
    /// Worker threads (≥ 1; results do not depend on it).
    pub threads: usize,
}

/// The token stream cut into `batch` streams of equal length (the tail is dropped).
pub fn batchify(tokens: &[u32], batch: usize) -> Vec<Vec<u32>> {
    let len = tokens.len() / batch.max(1);
    (0..batch)
        .map(|b| tokens[b * len..(b + 1) * len].to_vec())
        .collect()
}

/// Windows of a stream of length `len`: (start, steps) with steps ≤ T, each predicting
/// tokens start+1 ..= start+steps.
pub fn windows(len: usize, t: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    while s + 1 < len {
        let n = t.min(len - 1 - s);
        out.push((s, n));
        s += n;
    }
    out
}

/// The recurrent state of one stream: (h, c).
type State = (Vec<i32>, Vec<i32>);

fn zero_state(s: &RnnShape) -> State {
    let c = if s.kind == CellKind::Lstm {
        s.hidden
    } else {
        0
    };
    (vec![0; s.hidden], vec![0; c])
}

/// Loss and accuracy sums of some windows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RnnEval {
    /// Tokens predicted.
    pub tokens: u64,
    /// Σ cross-entropy (Q15.16 raw).
    pub loss_raw: i64,
    /// Correct next-token predictions.
    pub hits: u64,
}

impl RnnEval {
    /// Add another window's sums.
    pub fn add(&mut self, o: &RnnEval) {
        self.tokens += o.tokens;
        self.loss_raw += o.loss_raw;
        self.hits += o.hits;
    }
    /// Mean cross-entropy per token (nats).
    pub fn loss(&self) -> f64 {
        self.loss_raw as f64 / (1u64 << LOSS_FRAC) as f64 / self.tokens.max(1) as f64
    }
    /// Perplexity e^loss.
    pub fn perplexity(&self) -> f64 {
        self.loss().exp()
    }
    /// Next-token accuracy.
    pub fn accuracy(&self) -> f64 {
        self.hits as f64 / self.tokens.max(1) as f64
    }
}

/// Parameters, Adam state and the streams' carried states.
#[derive(Clone, Debug)]
pub struct RnnTrainer {
    /// Master parameters.
    pub params: RnnParams,
    /// Hyper-parameters.
    pub hyper: RnnHyper,
    /// First moments (Q8.24), per tensor in the order emb, wx, wh, b, wd, bd.
    pub m: [Vec<i32>; 6],
    /// Second moments (Q16.48).
    pub v: [Vec<i64>; 6],
    /// β powers for the bias correction.
    pub steps: AdamSteps,
    /// Steps taken.
    pub step: u64,
    /// Carried state per training stream.
    pub state: Vec<(Vec<i32>, Vec<i32>)>,
    /// DFA feedback (None: every step is BPTT).
    pub feedback: Option<RnnFeedback>,
    /// Probability of a BPTT step when there is a feedback.
    pub bp_ratio: f64,
    /// [`RnnDfaOptions::grad_shift`] of the feedback (0 without one).
    pub grad_shift: i32,
    /// Draws the kind of each step.
    pub draw: Rng,
    /// BPTT steps taken.
    pub bp_steps: u64,
}

/// Which error propagation a step used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnStepKind {
    /// Back-propagation through time.
    Bptt,
    /// The DFA feedback.
    Dfa,
}

impl RnnStepKind {
    /// The shift of this step's module-1 gradients: `grad_shift` on a DFA step, 0 on
    /// a BPTT step (both trainers take it from here).
    pub fn module1_shift(self, grad_shift: i32) -> i32 {
        match self {
            RnnStepKind::Dfa => grad_shift,
            RnnStepKind::Bptt => 0,
        }
    }
}

/// The kind of the next step: BPTT without a feedback, else drawn (r < p is a BPTT
/// step). The f32 trainer draws from the same generator, so both take the same
/// sequence of kinds.
pub(super) fn pick_kind(has_feedback: bool, bp_ratio: f64, draw: &mut Rng) -> RnnStepKind {
    if !has_feedback || draw.uniform() < bp_ratio {
        RnnStepKind::Bptt
    } else {
        RnnStepKind::Dfa
    }
}

/// What the CLI needs of a language-model trainer, fixed point ([`RnnTrainer`]) or
/// f32 ([`super::float_train::FloatRnnTrainer`]).
pub trait LmTrainer {
    /// One step on window (start, steps) of every stream: the window's training sums.
    fn train_step(&mut self, streams: &[Vec<u32>], window: (usize, usize)) -> RnnEval;
    /// Loss and accuracy on a token stream, cut into `batch` streams.
    fn evaluate(&self, tokens: &[u32], batch: usize) -> RnnEval;
    /// Forget the carried states (start of an epoch).
    fn reset_state(&mut self);
    /// (steps taken, of which BPTT steps).
    fn steps(&self) -> (u64, u64);
    /// FNV-1a of the weights and the optimizer state: equal checksums, equal state.
    fn checksum(&self) -> u64;
}

impl LmTrainer for RnnTrainer {
    fn train_step(&mut self, streams: &[Vec<u32>], window: (usize, usize)) -> RnnEval {
        RnnTrainer::train_step(self, streams, window)
    }
    fn evaluate(&self, tokens: &[u32], batch: usize) -> RnnEval {
        RnnTrainer::evaluate(self, tokens, batch)
    }
    fn reset_state(&mut self) {
        RnnTrainer::reset_state(self)
    }
    fn steps(&self) -> (u64, u64) {
        (self.step, self.bp_steps)
    }
    fn checksum(&self) -> u64 {
        RnnTrainer::checksum(self)
    }
}

/// Split streams `0..n` into at most `threads` contiguous ranges and run `f` on each
/// on its own thread; the results in stream order.
pub(super) fn par_ranges<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    let per = n.div_ceil(threads);
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let f = &f;
                sc.spawn(move || f(k * per..((k + 1) * per).min(n)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

fn add_grads(a: &mut RnnGrads, b: &RnnGrads) {
    for (x, y) in [
        (&mut a.emb, &b.emb),
        (&mut a.wx, &b.wx),
        (&mut a.wh, &b.wh),
        (&mut a.b, &b.b),
        (&mut a.wd, &b.wd),
        (&mut a.bd, &b.bd),
    ] {
        for (u, v) in x.iter_mut().zip(y) {
            *u += v;
        }
    }
    a.tokens += b.tokens;
}

impl RnnTrainer {
    /// A model initialized from `seed` ([`RnnParams::init`]).
    pub fn new(shape: RnnShape, hyper: RnnHyper, seed: u64) -> RnnTrainer {
        let params = RnnParams::init(shape, &mut Rng::seed_from_u64(seed));
        let m = params.tensors().map(|t| vec![0i32; t.len()]);
        let v = m.clone().map(|t| vec![0i64; t.len()]);
        RnnTrainer {
            params,
            hyper,
            m,
            v,
            steps: AdamSteps::default(),
            step: 0,
            state: vec![zero_state(&shape); hyper.batch],
            feedback: None,
            bp_ratio: 1.0,
            grad_shift: 0,
            draw: Rng::seed_from_u64(seed ^ 0x4844_4641_5f52_4e4e),
            bp_steps: 0,
        }
    }

    /// Train with DFA (p = 0) or HDFA (0 < p < 1): the feedback is drawn now, from
    /// the weights as they are (appendix B.2) and `seed`, for windows of T steps.
    pub fn with_dfa(
        mut self,
        o: RnnDfaOptions,
        bp_ratio: f64,
        seed: u64,
    ) -> Result<Self, GoldenError> {
        if !(0.0..=1.0).contains(&bp_ratio) {
            return Err(GoldenError::out_of_range("bp_ratio", bp_ratio, "[0, 1]"));
        }
        if !GRAD_SHIFTS.contains(&o.grad_shift) {
            return Err(GoldenError::out_of_range(
                "feedback.grad_shift",
                o.grad_shift,
                format!("{GRAD_SHIFTS:?}"),
            ));
        }
        self.grad_shift = o.grad_shift;
        self.feedback = Some(RnnFeedback::new(&self.params, self.hyper.bptt, o, seed)?);
        self.bp_ratio = bp_ratio;
        Ok(self)
    }

    /// The kind of the next step.
    fn pick(&mut self) -> RnnStepKind {
        pick_kind(self.feedback.is_some(), self.bp_ratio, &mut self.draw)
    }

    /// FNV-1a of the weights and both Adam moments: equal checksums, equal state.
    pub fn checksum(&self) -> u64 {
        let mut h = crate::hash::Fnv1a::new();
        for x in self.params.tensors().into_iter().chain(self.m.iter()) {
            for w in x {
                h.write(&w.to_le_bytes());
            }
        }
        for v in &self.v {
            for w in v {
                h.write(&w.to_le_bytes());
            }
        }
        h.finish()
    }

    /// Forget the carried states (start of an epoch).
    pub fn reset_state(&mut self) {
        self.state = vec![zero_state(&self.params.shape); self.hyper.batch];
    }

    /// One BPTT step on window (start, steps) of every stream; returns the window's
    /// training loss and accuracy sums.
    pub fn train_step(&mut self, streams: &[Vec<u32>], (start, n): (usize, usize)) -> RnnEval {
        let kind = self.pick();
        if kind == RnnStepKind::Bptt {
            self.bp_steps += 1;
        }
        let f = self.params.forward_copy();
        let p = &self.params;
        let fb = self.feedback.as_ref();
        let shape = p.shape;
        let state = &self.state;
        // One gradient sum per thread over its streams (exact integers: the grouping
        // does not change a bit).
        let out = par_ranges(streams.len(), self.hyper.threads, |range| {
            let mut g = RnnGrads::zeros(shape);
            let mut per = Vec::with_capacity(range.len());
            for b in range {
                let s = &streams[b];
                let (x, y) = (&s[start..start + n], &s[start + 1..start + n + 1]);
                let tr = forward(p, &f, x, y, &state[b].0, &state[b].1);
                match (kind, fb) {
                    (RnnStepKind::Dfa, Some(fb)) => dfa_grads(p, &f, fb, &tr, &mut g),
                    _ => bptt(p, &f, &tr, &mut g),
                }
                per.push((eval_of(&tr), (tr.h_last().to_vec(), tr.c_last().to_vec())));
            }
            g.fold_window();
            (g, per)
        });
        let mut total = RnnGrads::zeros(shape);
        let mut ev = RnnEval::default();
        let mut b = 0;
        for (g, per) in out {
            add_grads(&mut total, &g);
            for (e, st) in per {
                ev.add(&e);
                self.state[b] = st;
                b += 1;
            }
        }
        self.update(&mut total, kind.module1_shift(self.grad_shift));
        ev
    }

    /// Adam on every word with the batch's mean gradients (module 1's divided by
    /// 2^`module1_shift`).
    fn update(&mut self, g: &mut RnnGrads, module1_shift: i32) {
        let mean = g.mean(module1_shift);
        let st = self.steps.next(&self.hyper.adam);
        let h = self.hyper.adam;
        for (k, theta) in self.params.tensors_mut().into_iter().enumerate() {
            for (((t, m), v), &gw) in theta
                .iter_mut()
                .zip(self.m[k].iter_mut())
                .zip(self.v[k].iter_mut())
                .zip(&mean[k])
            {
                adam_word(&h, &st, t, m, v, gw);
            }
        }
        self.step += 1;
    }

    /// Loss and accuracy on a token stream (its own streams and states; the
    /// training state is untouched).
    pub fn evaluate(&self, tokens: &[u32], batch: usize) -> RnnEval {
        let streams = batchify(tokens, batch);
        let f = self.params.forward_copy();
        let p = &self.params;
        let t = self.hyper.bptt;
        let per = par_ranges(streams.len(), self.hyper.threads, |range| {
            let mut ev = RnnEval::default();
            for b in range {
                let s = &streams[b];
                let (mut h, mut c) = zero_state(&p.shape);
                for (start, n) in windows(s.len(), t) {
                    let x = &s[start..start + n];
                    let tr = forward(p, &f, x, &s[start + 1..start + n + 1], &h, &c);
                    ev.add(&eval_of(&tr));
                    (h, c) = (tr.h_last().to_vec(), tr.c_last().to_vec());
                }
            }
            ev
        });
        let mut ev = RnnEval::default();
        for e in &per {
            ev.add(e);
        }
        ev
    }
}

/// Which binary product of the recurrent DFA [`RnnTrainer::capture_products`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnProduct {
    /// e^rnn_j = S^fc · e_L,j (eq. 10, H × V): one vector per time step.
    Fc,
    /// e = S^rnn · e^rnn (eq. 9 and 11, HT × HT, upper triangular): one vector per
    /// window, in tiles of at most [`crate::params::MAX_ROWS`] rows.
    Cell,
}

impl RnnTrainer {
    /// Train window by window up to the largest of `steps` (indices into the windows
    /// of `streams`) and, before each listed step's update, record one of the DFA's
    /// binary products for the first `samples` streams: what the backward-weight unit
    /// takes (the aligned e_L words of every time step for S^fc; the window's e^rnn
    /// words for S^rnn) and must give (the trainer's own e^rnn, or its errors at the
    /// hidden steps). S is the trainer's own matrix. The unit takes at most
    /// [`crate::params::MAX_ROWS`] rows (H; S^rnn is cut into tiles of that many)
    /// and [`crate::params::MAX_COLS`] columns (the vocabulary; HT for S^rnn).
    pub fn capture_products(
        &mut self,
        streams: &[Vec<u32>],
        steps: &[usize],
        samples: usize,
        product: RnnProduct,
    ) -> Result<Vec<crate::capture::DenseCapture>, GoldenError> {
        use super::dfa::{aligned_errors, fc_errors, fc_shift, CellFeedback};
        use crate::bsbu::FPrime;
        use crate::params::{MAX_COLS, MAX_ROWS};
        let Some(RnnFeedback::Modular { fc, fc_dense, cell }) = self.feedback.clone() else {
            return Err(GoldenError::out_of_range(
                "feedback",
                "none or original DFA",
                "a modular feedback (mode dfa or hdfa, feedback.modular = true): S^fc and S^rnn are what the bsbu computes",
            ));
        };
        let Some(fc_sign) = fc.as_sign().cloned() else {
            return Err(GoldenError::out_of_range(
                "feedback.binary",
                "false",
                "true: the backward-weight unit computes binary products only",
            ));
        };
        let s = self.params.shape;
        let t = self.hyper.bptt;
        let (name, rows, cols) = match product {
            RnnProduct::Fc => ("S^fc (hidden x vocabulary)", s.hidden, s.vocab),
            // Rows come in tiles; the columns are every hidden step's error.
            RnnProduct::Cell => (
                "S^rnn tile (rows x hidden·T)",
                MAX_ROWS.min(s.hidden * t),
                s.hidden * t,
            ),
        };
        if rows > MAX_ROWS || cols > MAX_COLS {
            return Err(GoldenError::out_of_range(
                name,
                format!("{rows} x {cols}"),
                format!("at most {MAX_ROWS} x {MAX_COLS} (the unit's limits)"),
            ));
        }
        let tri = match (product, &cell) {
            (RnnProduct::Cell, CellFeedback::Triangular(tri)) => {
                // The fixed matrix, cut into the unit's tiles once.
                let n = tri.h * tri.t;
                let tiles = (0..n)
                    .step_by(MAX_ROWS)
                    .map(|r0| {
                        let r = r0..(r0 + MAX_ROWS).min(n);
                        tri.rows_as_sparse(r.clone()).map(|m| (r, m))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some((tri.clone(), tiles))
            }
            (RnnProduct::Cell, CellFeedback::Dense(_)) => {
                return Err(GoldenError::out_of_range(
                    "feedback.triangular",
                    "false",
                    "true: S^rnn is the upper-triangular feedback",
                ))
            }
            (RnnProduct::Fc, _) => None,
        };
        let wins = windows(streams.first().map_or(0, Vec::len), t);
        let last = steps.iter().copied().max().unwrap_or(0);
        if last >= wins.len() {
            return Err(GoldenError::out_of_range(
                "capture step",
                last,
                format!(
                    "0..={} (the windows of one epoch)",
                    wins.len().saturating_sub(1)
                ),
            ));
        }
        let shift = fc_shift(&fc);
        let word = |v: i64| crate::format::error_from_raw(v);
        let mut out = Vec::new();
        for (k, &(start, n)) in wins.iter().enumerate().take(last + 1) {
            if steps.contains(&k) {
                let f = self.params.forward_copy();
                for b in 0..samples.min(streams.len()) {
                    let st = &streams[b];
                    let (h0, c0) = &self.state[b];
                    let tr = forward(
                        &self.params,
                        &f,
                        &st[start..start + n],
                        &st[start + 1..start + n + 1],
                        h0,
                        c0,
                    );
                    let (aligned, _) = aligned_errors(&tr);
                    let ernn = fc_errors(&fc, &fc_dense, &aligned);
                    let Some((tri, tiles)) = &tri else {
                        for (j, (e, x)) in aligned.iter().zip(ernn).enumerate() {
                            out.push(crate::capture::DenseCapture {
                                step: k,
                                sample: b * t + j,
                                target: 0,
                                rows: 0..s.hidden,
                                s: fc_sign.clone(),
                                shift,
                                // The recurrent model stores its feedback matrices.
                                gen: None,
                                e_l: e.iter().map(|&v| word(v)).collect(),
                                fprime: FPrime::Relu(vec![true; s.hidden]),
                                expected: x.iter().map(|&v| word(v as i64)).collect(),
                            });
                        }
                        continue;
                    };
                    // S^rnn · e^rnn over the whole window, as the trainer computes it.
                    let flat = tri.window_vector(&ernn);
                    let want = tri.apply(&flat.iter().map(|&x| x as i64).collect::<Vec<_>>());
                    for (rows, m) in tiles {
                        out.push(crate::capture::DenseCapture {
                            step: k,
                            sample: b,
                            target: 1,
                            rows: rows.clone(),
                            s: m.clone(),
                            shift: tri.shift,
                            // The recurrent model stores its feedback matrices.
                            gen: None,
                            e_l: flat.iter().map(|&v| word(v as i64)).collect(),
                            fprime: FPrime::Relu(vec![true; rows.len()]),
                            expected: want[rows.clone()].iter().map(|&v| word(v)).collect(),
                        });
                    }
                }
            }
            self.train_step(streams, (start, n));
        }
        Ok(out)
    }
}

fn eval_of(tr: &super::cell::RnnTrace) -> RnnEval {
    RnnEval {
        tokens: tr.steps.len() as u64,
        loss_raw: tr.steps.iter().map(|s| s.loss).sum(),
        hits: tr.steps.iter().filter(|s| s.hit).count() as u64,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny periodic "text" with noise: a model that learns cuts its loss well below
    /// the uniform ln V. (The f32 trainer's tests use it too.)
    pub(crate) fn corpus(n: usize, seed: u64) -> Vec<u32> {
        let mut rng = Rng::seed_from_u64(seed);
        let pattern = [3u32, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9];
        (0..n)
            .map(|i| {
                if rng.below(10) == 0 {
                    rng.below(12) as u32
                } else {
                    pattern[i % pattern.len()]
                }
            })
            .collect()
    }

    /// The configs' HDFA feedback: modular, triangular (printed exponent), 80%
    /// sparse, binary, initialized from the forward weights.
    pub(crate) fn hdfa_feedback() -> RnnDfaOptions {
        RnnDfaOptions {
            modular: true,
            triangular: true,
            sparsity: 0.8,
            init_from_forward: true,
            exponent: super::super::feedback::Exponent::Printed,
            binary: true,
            grad_shift: 0,
        }
    }

    /// A small model (V 12, E 8, H 16, batch 4, T 10, η 0.01), seed 7.
    pub(crate) fn trainer(kind: CellKind, threads: usize) -> RnnTrainer {
        let shape = RnnShape {
            kind,
            vocab: 12,
            embed: 8,
            hidden: 16,
        };
        let hyper = RnnHyper {
            adam: AdamHyper::new(0.01),
            batch: 4,
            bptt: 10,
            threads,
        };
        RnnTrainer::new(shape, hyper, 7)
    }

    /// Every cell learns the noisy periodic text: the held-out loss falls from about
    /// ln 12 = 2.48 to below 1.2 nats in 3 epochs, and accuracy rises above 60%.
    #[test]
    fn every_cell_learns_a_periodic_text() {
        let (train, valid) = (corpus(2000, 1), corpus(400, 2));
        for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let mut t = trainer(kind, 2);
            let before = t.evaluate(&valid, 2);
            let streams = batchify(&train, t.hyper.batch);
            for _epoch in 0..3 {
                t.reset_state();
                for w in windows(streams[0].len(), t.hyper.bptt) {
                    t.train_step(&streams, w);
                }
            }
            let after = t.evaluate(&valid, 2);
            eprintln!(
                "{kind:?}: valid loss {:.3} -> {:.3}, accuracy {:.3} -> {:.3}",
                before.loss(),
                after.loss(),
                before.accuracy(),
                after.accuracy()
            );
            assert!(
                before.loss() > 2.2,
                "{kind:?}: untrained loss {}",
                before.loss()
            );
            assert!(
                after.loss() < 1.2 && after.accuracy() > 0.6,
                "{kind:?}: {after:?}"
            );
        }
    }

    /// One thread or three: the same weights and Adam state, bit for bit.
    #[test]
    fn training_is_identical_on_any_thread_count() {
        let train = corpus(600, 3);
        for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let sums: Vec<u64> = [1, 3]
                .iter()
                .map(|&th| {
                    let mut t = trainer(kind, th);
                    let streams = batchify(&train, t.hyper.batch);
                    for w in windows(streams[0].len(), t.hyper.bptt).into_iter().take(6) {
                        t.train_step(&streams, w);
                    }
                    t.checksum()
                })
                .collect();
            assert_eq!(sums[0], sums[1], "{kind:?}");
        }
    }

    /// `grad_shift` k scales a DFA step's module-1 gradients by 2^−k and nothing else:
    /// after one step from a fresh state Adam's m is (1 − β1)·g, so with k = 3 (and
    /// −2) every embedding and cell word of m is the k = 0 run's divided by 2^k
    /// within rounding, and the decoder's words are equal; a BPTT step (p = 1) is not
    /// scaled at all. The f32 twin scales the same way.
    #[test]
    fn grad_shift_scales_a_dfa_steps_module_1_gradients_only() {
        use super::super::float_train::FloatRnnTrainer;
        let train = corpus(400, 4);
        let first_m = |p: f64, k: i32| {
            let o = RnnDfaOptions {
                grad_shift: k,
                ..hdfa_feedback()
            };
            let mut t = trainer(CellKind::Lstm, 1).with_dfa(o, p, 3).unwrap();
            let mut f = FloatRnnTrainer::<f32>::from_fixed(&t);
            let streams = batchify(&train, t.hyper.batch);
            let w = windows(streams[0].len(), t.hyper.bptt)[0];
            t.train_step(&streams, w);
            f.train_step(&streams, w);
            let fm: Vec<Vec<f32>> = f.m.tensors().iter().map(|x| x.to_vec()).collect();
            (t.m, fm)
        };
        let (m0, f0) = first_m(0.0, 0);
        for k in [3, -2] {
            let (mk, fk) = first_m(0.0, k);
            let scale = (-(k as f64)).exp2();
            for i in 0..6 {
                let s = if i < 4 { scale } else { 1.0 };
                let mut big = 0;
                for (j, (&a, &b)) in m0[i].iter().zip(&mk[i]).enumerate() {
                    let want = a as f64 * s;
                    assert!(
                        (b as f64 - want).abs() <= 1.0 + s.max(1.0),
                        "k {k} tensor {i} word {j}: {b} vs {want}"
                    );
                    big += (a.abs() > 1 << 6) as usize;
                }
                assert!(big > 0, "tensor {i}: no word large enough to see the shift");
                for (&a, &b) in f0[i].iter().zip(&fk[i]) {
                    let want = a as f64 * s;
                    assert!(
                        (b as f64 - want).abs() <= 1e-6 * want.abs() + 1e-12,
                        "f32 k {k} tensor {i}"
                    );
                }
            }
        }
        let (b0, _) = first_m(1.0, 0);
        let (b3, _) = first_m(1.0, 3);
        assert_eq!(b0, b3, "a BPTT step was scaled");
    }

    /// Every DFA mode trains the cell usefully: its held-out loss beats, by at least
    /// 0.05 nats, the same run with a zero feedback (decoder trained, cell frozen at its
    /// random start). HDFA at p = 0.5 gets below 1.2 (from ln 12 = 2.48) and takes
    /// BPTT steps at about its ratio.
    #[test]
    fn dfa_modes_and_hdfa_learn_a_periodic_text() {
        use super::super::dfa::RnnDfaOptions;
        use super::super::feedback::Exponent;
        use crate::bsbu::SparseSign;
        let (train, valid) = (corpus(2000, 1), corpus(400, 2));
        let o = |modular, triangular, init, sparsity| RnnDfaOptions {
            modular,
            triangular,
            sparsity,
            init_from_forward: init,
            exponent: Exponent::Printed,
            binary: true,
            grad_shift: 0,
        };
        let modes = [
            ("original", o(false, false, false, 0.0), 0.0),
            ("modular", o(true, false, false, 0.0), 0.0),
            ("triangular", o(true, true, false, 0.0), 0.0),
            ("triangular sparse 0.8", o(true, true, false, 0.8), 0.0),
            ("triangular + init", o(true, true, true, 0.0), 0.0),
            ("HDFA p = 0.5", o(true, true, true, 0.8), 0.5),
            (
                "real-valued original",
                RnnDfaOptions {
                    binary: false,
                    ..o(false, false, false, 0.0)
                },
                0.0,
            ),
            (
                "real-valued modular",
                RnnDfaOptions {
                    binary: false,
                    ..o(true, false, false, 0.0)
                },
                0.0,
            ),
        ];
        let run = |mut t: RnnTrainer| {
            let streams = batchify(&train, t.hyper.batch);
            for _epoch in 0..3 {
                t.reset_state();
                for w in windows(streams[0].len(), t.hyper.bptt) {
                    t.train_step(&streams, w);
                }
            }
            (t.evaluate(&valid, 2), t.bp_steps as f64 / t.step as f64)
        };
        for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            // The frozen-cell baseline: a modular feedback with no nonzero entry.
            let mut frozen = trainer(kind, 2)
                .with_dfa(o(true, false, false, 0.0), 0.0, 3)
                .unwrap();
            let none = |cols| SparseSign::from_rows(cols, vec![vec![]; 16]).unwrap();
            use super::super::dfa::{CellFeedback, FbMatrix};
            frozen.feedback = Some(RnnFeedback::Modular {
                fc: FbMatrix::Sign(none(12)),
                fc_dense: vec![0; 16 * 12],
                cell: CellFeedback::Dense(FbMatrix::Sign(none(16))),
            });
            let (base, _) = run(frozen);
            eprintln!("{kind:?} frozen cell: valid loss {:.3}", base.loss());
            for (name, opts, p) in modes {
                let (after, share) = run(trainer(kind, 2).with_dfa(opts, p, 3).unwrap());
                eprintln!(
                    "{kind:?} {name}: valid loss {:.3}, accuracy {:.3}, BPTT share {share:.2}",
                    after.loss(),
                    after.accuracy()
                );
                let bound = if p > 0.0 { 1.2 } else { base.loss() - 0.05 };
                assert!(
                    after.loss() < bound,
                    "{kind:?} {name}: loss {} (bound {bound})",
                    after.loss()
                );
                assert!(
                    (share - p).abs() < 0.15,
                    "{kind:?} {name}: BPTT share {share}"
                );
            }
        }
    }

    #[test]
    fn windows_cover_every_prediction_once() {
        for (len, t) in [
            (1, 5),
            (2, 5),
            (11, 5),
            (12, 5),
            (35, 35),
            (36, 35),
            (100, 7),
        ] {
            let w = windows(len, t);
            let covered: Vec<usize> = w.iter().flat_map(|&(s, n)| s + 1..=s + n).collect();
            assert_eq!(covered, (1..len).collect::<Vec<_>>(), "len {len}, T {t}");
            assert!(w.iter().all(|&(_, n)| n >= 1 && n <= t));
        }
    }
}
