//! Training the recurrent language model on the f32 path: the reference that shows
//! what fixed point costs. Main type: [`FloatRnnTrainer`].
//!
//! It starts from the fixed-point trainer's state ([`FloatRnnTrainer::from_fixed`]):
//! the same initial weights (their real values), the same DFA feedback matrices, the
//! same generator for the BPTT/DFA draw (so an HDFA run takes the same sequence of
//! step kinds), the same batches and windows. What differs is the arithmetic:
//! - forward and BPTT are [`super::float`]'s textbook code, with exact tanh and σ;
//! - the DFA errors are [`super::dfa::hidden_errors_f`]: the same sign matrices and
//!   power-of-two scales, with no narrowing;
//! - Adam is the float textbook update with the fixed-point run's rounded β1, β2,
//!   its ε (one Q8.24 LSB, 2^−24) and its bias-corrected step size
//!   ([`AdamSteps`], the same per-step constant).
//!
//! **Determinism.** Each stream's gradient sums are kept apart and added in stream
//! order, so the f32 result does not depend on the thread count either (float
//! addition is not associative, so per-thread sums would).

use super::cell::{CellKind, RnnShape};
use super::dfa::{hidden_errors_f, RnnFeedback};
use super::float::{bptt_f, cell_step_f, decoder_step_f, forward_f, FloatParams, FloatTrace, Real};
use super::train::{
    batchify, par_ranges, pick_kind, windows, LmTrainer, RnnEval, RnnHyper, RnnStepKind, RnnTrainer,
};
use crate::adam::AdamSteps;
use crate::cnn::softmax::LOSS_FRAC;
use crate::rng::Rng;

/// The recurrent state of one stream: (h, c).
type State<R> = (Vec<R>, Vec<R>);

fn zero_state<R: Real>(s: &RnnShape) -> State<R> {
    let c = if s.kind == CellKind::Lstm {
        s.hidden
    } else {
        0
    };
    (vec![R::default(); s.hidden], vec![R::default(); c])
}

/// The f32 (or f64) trainer: parameters, Adam moments and carried states.
#[derive(Clone, Debug)]
pub struct FloatRnnTrainer<R> {
    /// Parameters.
    pub params: FloatParams<R>,
    /// Hyper-parameters (the fixed-point run's).
    pub hyper: RnnHyper,
    /// First moments.
    pub m: FloatParams<R>,
    /// Second moments.
    pub v: FloatParams<R>,
    /// The bias-corrected step size per step (the fixed point's own).
    pub(super) steps: AdamSteps,
    /// Steps taken.
    pub step: u64,
    /// BPTT steps taken.
    pub bp_steps: u64,
    /// Carried state per training stream.
    pub state: Vec<State<R>>,
    /// DFA feedback (None: every step is BPTT).
    pub feedback: Option<RnnFeedback>,
    /// Probability of a BPTT step when there is a feedback.
    pub bp_ratio: f64,
    /// A DFA step's module-1 gradients are scaled by 2^−grad_shift (the fixed point's).
    pub grad_shift: i32,
    /// Draws the kind of each step.
    pub(super) draw: Rng,
}

/// One window's training sums from a float trace. The loss is kept as Q15.16, like
/// the fixed point's (one rounding per window).
fn eval_of<R: Real>(tr: &FloatTrace<R>) -> RnnEval {
    let loss: f64 = tr.steps.iter().map(|s| s.loss.f64()).sum();
    RnnEval {
        tokens: tr.steps.len() as u64,
        loss_raw: (loss * (1u64 << LOSS_FRAC) as f64).round() as i64,
        hits: tr.steps.iter().filter(|s| s.hit).count() as u64,
    }
}

impl<R: Real + Send + Sync> FloatRnnTrainer<R> {
    /// The f32 twin of a fixed-point trainer as it is now (normally fresh).
    pub fn from_fixed(t: &RnnTrainer) -> Self {
        let shape = t.params.shape;
        FloatRnnTrainer {
            params: FloatParams::from_fixed(&t.params),
            hyper: t.hyper,
            m: FloatParams::zeros(shape),
            v: FloatParams::zeros(shape),
            steps: AdamSteps::default(),
            step: 0,
            bp_steps: 0,
            state: vec![zero_state(&shape); t.hyper.batch],
            feedback: t.feedback.clone(),
            bp_ratio: t.bp_ratio,
            grad_shift: t.grad_shift,
            draw: t.draw.clone(),
        }
    }

    /// One step on window (start, steps) of every stream (BPTT or DFA as drawn).
    pub fn train_step(&mut self, streams: &[Vec<u32>], (start, n): (usize, usize)) -> RnnEval {
        let kind = pick_kind(self.feedback.is_some(), self.bp_ratio, &mut self.draw);
        if kind == RnnStepKind::Bptt {
            self.bp_steps += 1;
        }
        let (p, fb, state) = (&self.params, self.feedback.as_ref(), &self.state);
        let shape = p.shape;
        let out = par_ranges(streams.len(), self.hyper.threads, |range| {
            range
                .map(|b| {
                    let s = &streams[b];
                    let (x, y) = (&s[start..start + n], &s[start + 1..start + n + 1]);
                    let tr = forward_f(p, x, y, &state[b].0, &state[b].1);
                    let mut g = FloatParams::zeros(shape);
                    match (kind, fb) {
                        (RnnStepKind::Dfa, Some(fb)) => {
                            let e: Vec<Vec<R>> = tr.steps.iter().map(|s| s.e.clone()).collect();
                            let dc0 = vec![R::default(); shape.hidden];
                            for (st, dh) in tr.steps.iter().zip(hidden_errors_f(fb, &e)) {
                                decoder_step_f(st, &mut g);
                                cell_step_f(p, st, &dh, &dc0, &mut g);
                            }
                        }
                        _ => bptt_f(p, &tr, &mut g),
                    }
                    let last = tr.steps.last().map(|s| (s.h.clone(), s.c.clone()));
                    (g, eval_of(&tr), last.unwrap_or_else(|| state[b].clone()))
                })
                .collect::<Vec<_>>()
        });
        let mut total = FloatParams::<R>::zeros(shape);
        let mut ev = RnnEval::default();
        for (b, (g, e, st)) in out.into_iter().flatten().enumerate() {
            for (t, x) in total.tensors_mut().into_iter().zip(g.tensors()) {
                for (a, &v) in t.iter_mut().zip(x) {
                    *a += v;
                }
            }
            ev.add(&e);
            self.state[b] = st;
        }
        self.update(&total, ev.tokens, kind.module1_shift(self.grad_shift));
        ev
    }

    /// Adam on every parameter with the batch's mean gradients (module 1's, the first
    /// four tensors, scaled by 2^−`module1_shift`).
    fn update(&mut self, sums: &FloatParams<R>, tokens: u64, module1_shift: i32) {
        let a = self.hyper.adam;
        let (b1, b2) = (a.beta1.real(), a.beta2.real());
        let eta_t = R::of(self.steps.next(&a).eta_t.real());
        let eps = R::of(a.eps_raw.max(1) as f64 / (1u64 << super::cell::FRAC) as f64);
        let inv_n = R::of(1.0 / tokens.max(1) as f64);
        let (rb1, rb2) = (R::of(b1), R::of(b2));
        let (cb1, cb2) = (R::of(1.0 - b1), R::of(1.0 - b2));
        let (params, m, v) = (
            self.params.tensors_mut(),
            self.m.tensors_mut(),
            self.v.tensors_mut(),
        );
        let inv_n1 = R::of((-(module1_shift as f64)).exp2() / tokens.max(1) as f64);
        let tensors = params.into_iter().zip(m).zip(v).zip(sums.tensors());
        for (k, (((theta, m), v), g)) in tensors.enumerate() {
            let inv = if k < 4 { inv_n1 } else { inv_n };
            for (((t, mw), vw), &gs) in theta.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g)
            {
                let g = gs * inv;
                *mw = rb1 * *mw + cb1 * g;
                *vw = rb2 * *vw + cb2 * g * g;
                *t = *t - eta_t * *mw / (vw.sqrt() + eps);
            }
        }
        self.step += 1;
    }

    /// Loss and accuracy on a token stream (its own streams and states).
    pub fn evaluate(&self, tokens: &[u32], batch: usize) -> RnnEval {
        let streams = batchify(tokens, batch);
        let (p, t) = (&self.params, self.hyper.bptt);
        let per = par_ranges(streams.len(), self.hyper.threads, |range| {
            let mut ev = RnnEval::default();
            for b in range {
                let s = &streams[b];
                let (mut h, mut c) = zero_state::<R>(&p.shape);
                for (start, n) in windows(s.len(), t) {
                    let x = &s[start..start + n];
                    let tr = forward_f(p, x, &s[start + 1..start + n + 1], &h, &c);
                    ev.add(&eval_of(&tr));
                    if let Some(l) = tr.steps.last() {
                        (h, c) = (l.h.clone(), l.c.clone());
                    }
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

    /// FNV-1a of the parameters' and both moments' bits.
    pub fn checksum(&self) -> u64 {
        let mut h = crate::hash::Fnv1a::new();
        for p in [&self.params, &self.m, &self.v] {
            for t in p.tensors() {
                for &w in t {
                    h.write(&w.f64().to_bits().to_le_bytes());
                }
            }
        }
        h.finish()
    }
}

impl<R: Real + Send + Sync> LmTrainer for FloatRnnTrainer<R> {
    fn train_step(&mut self, streams: &[Vec<u32>], window: (usize, usize)) -> RnnEval {
        FloatRnnTrainer::train_step(self, streams, window)
    }
    fn evaluate(&self, tokens: &[u32], batch: usize) -> RnnEval {
        FloatRnnTrainer::evaluate(self, tokens, batch)
    }
    fn reset_state(&mut self) {
        self.state = vec![zero_state(&self.params.shape); self.hyper.batch];
    }
    fn steps(&self) -> (u64, u64) {
        (self.step, self.bp_steps)
    }
    fn checksum(&self) -> u64 {
        FloatRnnTrainer::checksum(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::dfa::RnnDfaOptions;
    use super::super::feedback::Exponent;
    use super::super::train::tests::{corpus, hdfa_feedback, trainer as fixed};
    use super::*;

    fn train<T: LmTrainer>(t: &mut T, train: &[u32], batch: usize, bptt: usize, epochs: usize) {
        let streams = batchify(train, batch);
        for _ in 0..epochs {
            t.reset_state();
            for w in windows(streams[0].len(), bptt) {
                t.train_step(&streams, w);
            }
        }
    }

    /// BPTT in f32 and in fixed point from the same start: the held-out losses agree
    /// within 0.05 nats after 3 epochs for every cell, and the losses before any
    /// update (same weights) within 5·10^−3 nats per token (the fixed point's logits
    /// are Q8.8 words, each off by up to 2^−9, and its products use Q4.12 weights).
    #[test]
    fn f32_bptt_tracks_fixed_point_training() {
        let (tr, valid) = (corpus(2000, 1), corpus(400, 2));
        for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let mut fx = fixed(kind, 2);
            let mut fl = FloatRnnTrainer::<f32>::from_fixed(&fx);
            let (a, b) = (fx.evaluate(&valid, 2), fl.evaluate(&valid, 2));
            assert!((a.loss() - b.loss()).abs() < 5e-3, "{kind:?}: {a:?} {b:?}");
            train(&mut fx, &tr, 4, 10, 3);
            train(&mut fl, &tr, 4, 10, 3);
            let (a, b) = (fx.evaluate(&valid, 2), fl.evaluate(&valid, 2));
            eprintln!("{kind:?}: fixed {:.4} / f32 {:.4} nats", a.loss(), b.loss());
            assert!(b.loss() < 1.2, "{kind:?}: f32 did not learn: {b:?}");
            assert!((a.loss() - b.loss()).abs() < 0.05, "{kind:?}: {a:?} {b:?}");
        }
    }

    /// The f32 DFA errors are the fixed-point ones without narrowing: on one window,
    /// every mode's hidden errors, binary and real-valued, agree to within a few Q3.13 LSBs (relative L2 below
    /// 2%), so both paths propagate through the same matrices at the same scale.
    #[test]
    fn f32_dfa_errors_match_fixed_point_errors() {
        use super::super::cell::forward;
        use super::super::dfa::hidden_errors;
        let fx = fixed(CellKind::Gru, 1);
        let fl = FloatRnnTrainer::<f64>::from_fixed(&fx);
        let text = corpus(11, 5);
        let (x, y) = (&text[..10], &text[1..11]);
        let tr = forward(&fx.params, &fx.params.forward_copy(), x, y, &[0; 16], &[]);
        let trf = forward_f(&fl.params, x, y, &[0.0; 16], &[]);
        let e: Vec<Vec<f64>> = trf.steps.iter().map(|s| s.e.clone()).collect();
        let o = |modular, triangular, sparsity| RnnDfaOptions {
            modular,
            triangular,
            sparsity,
            init_from_forward: false,
            exponent: Exponent::TimeDistance,
            binary: true,
            grad_shift: 0,
        };
        let r = |o: RnnDfaOptions| RnnDfaOptions { binary: false, ..o };
        for opts in [
            o(false, false, 0.0),
            o(true, false, 0.5),
            o(true, true, 0.8),
            r(o(false, false, 0.0)),
            r(o(true, false, 0.5)),
            r(o(true, true, 0.8)),
        ] {
            let fb = RnnFeedback::new(&fx.params, 10, opts, 3).unwrap();
            let (ei, exp) = hidden_errors(&fb, &tr);
            let ef = hidden_errors_f(&fb, &e);
            let scale = (-(13.0 + exp as f64)).exp2();
            let (mut d, mut n) = (0.0, 0.0);
            for (a, b) in ei.iter().flatten().zip(ef.iter().flatten()) {
                d += (*a as f64 * scale - b).powi(2);
                n += b * b;
            }
            let rel = (d / n).sqrt();
            assert!(n > 0.0 && rel < 0.02, "{opts:?}: relative L2 {rel}");
        }
    }

    /// HDFA on the f32 path: the same draw as fixed point (the same BPTT steps), it
    /// learns, and one thread or three give the same bits.
    #[test]
    fn f32_hdfa_learns_and_is_thread_independent() {
        let (tr, valid) = (corpus(2000, 1), corpus(400, 2));
        let o = hdfa_feedback();
        let mut sums = Vec::new();
        for threads in [1, 3] {
            let mut fx = fixed(CellKind::Lstm, threads).with_dfa(o, 0.5, 3).unwrap();
            let mut fl = FloatRnnTrainer::<f32>::from_fixed(&fx);
            train(&mut fx, &tr, 4, 10, 3);
            train(&mut fl, &tr, 4, 10, 3);
            assert_eq!(fx.bp_steps, fl.bp_steps, "the same draw");
            assert!(fl.bp_steps > 0 && fl.bp_steps < fl.step);
            let b = fl.evaluate(&valid, 2);
            assert!(b.loss() < 1.2, "f32 HDFA: {b:?}");
            sums.push(fl.checksum());
        }
        assert_eq!(sums[0], sums[1]);
    }
}
