//! One training step: forward, error propagation (BP, DFA or conv-DFA), weight
//! gradients and the HDFA optimizer (paper Algorithm 1, with standard momentum signs).
//!
//! ## Optimizer (fixed point)
//! θ (master weights), v_bp, v_dfa and g are Q8.24; η, α, γ are Q15.16 ([`Coef`]).
//! Each product c·m is exact and then narrowed once to Q8.24 (round half up,
//! saturate); sums and differences saturate. Per iteration a seeded RNG draws
//! r ∈ [0, 1); r < p selects a BP step:
//! - BP step:  v_bp ← α·v_bp + g;  θ ← θ − η·v_bp
//! - DFA step: v_dfa ← α·v_dfa + g;  u ← γ·v_dfa + (1−γ)·v_bp;  θ ← θ − η·u
//! With p = 1 every step is a BP step and the run equals plain momentum BP bit for bit.
//!
//! The batch size must be a power of two: the mean over the batch is a shift folded
//! into the gradient's single narrowing. Per-sample work runs on `threads` threads;
//! fixed-point sums are exact integers, so the result does not depend on the thread
//! count.

use super::net::{Net, Propagation};
use super::num::{Coef, Num};
use super::{gemm, ops};
use crate::rng::Rng;
use crate::rng::SeedableRng;

/// Hyper-parameters of the optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Learning rate η.
    pub eta: Coef,
    /// Momentum α.
    pub alpha: Coef,
    /// Mix γ of the DFA velocity.
    pub gamma: Coef,
    /// BP ratio p in [0, 1] (1: plain BP; 0: pure DFA).
    pub bp_ratio: f64,
    /// log2 of the batch size.
    pub log2_batch: u32,
}

/// Algorithm 1 on one parameter word ([`crate::update::update_word`], the one
/// definition, on `N`'s arithmetic): the step's velocity takes the gradient, the other
/// velocity is kept, and θ moves by η·u (see the module docs).
#[inline]
pub fn update_word<N: Num>(
    kind: StepKind,
    h: &Hyper,
    theta: &mut N::M,
    v_bp: &mut N::M,
    v_dfa: &mut N::M,
    g: N::M,
) {
    let c = crate::update::Coefs {
        eta: h.eta,
        alpha: h.alpha,
        gamma: h.gamma,
        one_minus_gamma: h.gamma.one_minus(),
    };
    crate::update::update_word::<NumOps<N>>(kind, &c, theta, v_bp, v_dfa, g);
}

/// `N`'s optimizer arithmetic as the contract's [`crate::update::UpdateOps`].
struct NumOps<N>(std::marker::PhantomData<N>);

impl<N: Num> crate::update::UpdateOps for NumOps<N> {
    type M = N::M;
    type C = Coef;
    #[inline]
    fn scale(m: N::M, c: Coef) -> N::M {
        N::scale(m, c)
    }
    #[inline]
    fn add(a: N::M, b: N::M) -> N::M {
        N::add(a, b)
    }
    #[inline]
    fn sub(a: N::M, b: N::M) -> N::M {
        N::sub(a, b)
    }
}

/// The optimizer update of one parameter tensor (see [`Trainer::train_step_with`]):
/// (kind, hyper-parameters, tensor index, θ, v_bp, v_dfa, g).
pub type TensorUpdate<'a, N, E> = dyn FnMut(
        StepKind,
        &Hyper,
        usize,
        &mut [<N as Num>::M],
        &mut [<N as Num>::M],
        &mut [<N as Num>::M],
        &[<N as Num>::M],
    ) -> Result<(), E>
    + 'a;

/// A DFA path run elsewhere (hardware in the loop, see [`Trainer::train_step_hw`]):
/// (path index in `net.paths`, the source error e_src, the target's ReLU mask (true:
/// f' = 1; all true without ReLU), e). On entry `e` holds the golden model's result,
/// the path and the mask applied (before normalization), so the hook can name a word
/// that differs; it leaves its own result in `e`.
pub type PathHook<'a, V, E> = dyn FnMut(usize, &[V], &[bool], &mut [V]) -> Result<(), E> + 'a;

/// Optimizer state: the two velocities per parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct OptState<N: Num> {
    /// BP velocity, weights then biases per block.
    pub v_bp: Vec<Vec<N::M>>,
    /// DFA velocity.
    pub v_dfa: Vec<Vec<N::M>>,
}

/// Everything the forward pass keeps for the backward pass of one sample.
#[derive(Debug, Default)]
pub struct Trace<N: Num> {
    /// Reused buffers of the GEMM path.
    pub scratch: ops::Scratch<N>,
    /// Input of each block.
    pub x: Vec<Vec<N::V>>,
    /// Pre-activation p of each block (wide activations: the Q8.8 words).
    pub p: Vec<Vec<N::V>>,
    /// Wide activations only: residual words of each block's input
    /// ([`crate::format::split_wide`]; empty otherwise).
    pub xl: Vec<Vec<N::V>>,
    /// Wide activations only: residual words of each block's pre-activation.
    pub pl: Vec<Vec<N::V>>,
    /// Max-pool winners per block.
    pub arg: Vec<Vec<u32>>,
    /// Error at each block's pre-activation (normalized words, see [`crate::scale`]).
    pub e: Vec<Vec<N::V>>,
    /// Exponent of each block's error: real = raw × 2^−(13 + exp) (f32: v × 2^−exp).
    pub exp: Vec<i32>,
    /// Keep each block's error as computed, before normalization, in `pre` (for
    /// capturing what a unit outputs).
    pub keep_pre: bool,
    /// Errors before normalization (only with `keep_pre`).
    pub pre: Vec<Vec<N::V>>,
    /// Spare buffer.
    pub tmp: Vec<N::V>,
    /// Spare buffer of residual words (wide activations).
    pub tmpl: Vec<N::V>,
}

pub use crate::update::StepKind;

/// Outcome of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Which propagation ran.
    pub kind: StepKind,
    /// Summed loss over the batch, raw (fixed: Q15.16; f32: IEEE bits of the f32 sum).
    pub loss_raw: i64,
    /// Mean loss as a real number.
    pub loss: f64,
    /// Correct predictions in the batch.
    pub correct: usize,
}

/// Loss of one sample: raw and real.
pub trait Loss: Num {
    /// e_L = softmax(z) − one-hot at the returned exponent; returns (raw loss, real
    /// loss, exponent).
    /// With `block` false the exponent is 0.
    fn softmax_xent(
        z: &[Self::V],
        label: usize,
        err: &mut [Self::V],
        block: bool,
    ) -> (i64, f64, i32);
    /// Sum of raw losses (fixed: exact integers; f32: the f32 sum's bits).
    fn loss_sum(raw: &[i64]) -> i64;
}

impl Loss for super::num::Fx {
    fn softmax_xent(z: &[i16], label: usize, err: &mut [i16], block: bool) -> (i64, f64, i32) {
        let (l, exp) = super::softmax::softmax_xent_fx(z, label, err, block);
        (
            l,
            l as f64 / (1u64 << super::softmax::LOSS_FRAC) as f64,
            exp,
        )
    }
    fn loss_sum(raw: &[i64]) -> i64 {
        raw.iter().sum()
    }
}

impl Loss for super::num::F32 {
    fn softmax_xent(z: &[f32], label: usize, err: &mut [f32], _block: bool) -> (i64, f64, i32) {
        let l = super::softmax::softmax_xent_f32(z, label, err);
        (l.to_bits() as i64, l as f64, 0)
    }
    fn loss_sum(raw: &[i64]) -> i64 {
        raw.iter()
            .map(|&b| f32::from_bits(b as u32))
            .sum::<f32>()
            .to_bits() as i64
    }
}

/// Forward copies of the master parameters.
pub struct Forward<V> {
    /// Weights per block.
    pub w: Vec<Vec<V>>,
    /// Biases per block.
    pub b: Vec<Vec<V>>,
    /// The flipped, transposed kernels of the BP backward-data pass, where it runs
    /// as a forward conv ([`ops::transposed_weight`]): once per step, not per sample.
    pub wt: Vec<Option<Vec<V>>>,
    /// The weights prepared for the fused forward pass ([`Num::forward_pairs`]): once
    /// per step, not per sample.
    pub pairs: Vec<Vec<i32>>,
    /// The same for the flipped, transposed kernels `wt` ([`ops::transposed_pairs`]).
    pub pairs_t: Vec<Vec<i32>>,
}

impl<N: Num> Net<N> {
    /// Round the master parameters to their forward copies.
    pub fn forward_copy(&self) -> Forward<N::V> {
        let w: Vec<Vec<N::V>> = self
            .w
            .iter()
            .map(|w| w.iter().map(|&m| N::weight_of(m)).collect())
            .collect();
        let wt: Vec<Option<Vec<N::V>>> = self
            .blocks
            .iter()
            .zip(&w)
            .map(|(b, w)| ops::transposed_weight(&b.geom, w))
            .collect();
        let pairs = self
            .blocks
            .iter()
            .zip(&w)
            .map(|(b, w)| N::forward_pairs(&b.geom, w))
            .collect();
        let pairs_t = self
            .blocks
            .iter()
            .zip(&wt)
            .map(|(b, wt): (_, &Option<Vec<N::V>>)| {
                ops::transposed_pairs::<N>(&b.geom, wt.as_deref())
            })
            .collect();
        Forward {
            pairs,
            pairs_t,
            b: self
                .b
                .iter()
                .map(|b| b.iter().map(|&m| N::bias_of(m)).collect())
                .collect(),
            w,
            wt,
        }
    }

    /// Whether this net's forward pass runs on wide activations.
    pub fn is_wide(&self) -> bool {
        self.wide && N::SPLIT
    }

    /// Whether block `i`'s pre-activation word `j` is > 0 (the ReLU decision), on
    /// all the bits the forward pass kept.
    pub fn active(&self, t: &Trace<N>, i: usize, j: usize) -> bool {
        match t.pl.get(i).filter(|_| self.is_wide()) {
            Some(pl) => ops::positive::<N>(t.p[i][j], pl[j]),
            None => t.p[i][j] > N::zero(),
        }
    }

    /// Block `i`'s ReLU derivative as a mask: word j passes the error where it is
    /// [`Net::active`], every word where the block has no ReLU.
    pub fn relu_pass(&self, t: &Trace<N>, i: usize) -> Vec<bool> {
        let relu = self.blocks[i].relu;
        (0..t.p[i].len())
            .map(|j| !relu || self.active(t, i, j))
            .collect()
    }

    /// The predicted class after [`Net::forward`]: the largest logit, on all the bits
    /// the forward pass kept ((hi, lo) pairs with wide activations; the softmax reads
    /// the Q8.8 words).
    pub fn predicted(&self, t: &Trace<N>) -> usize {
        let z = t.p.last().expect("a network has blocks");
        match t.pl.last().filter(|_| self.is_wide()) {
            Some(zl) => {
                let pairs: Vec<(N::V, N::V)> = z.iter().copied().zip(zl.iter().copied()).collect();
                argmax(&pairs)
            }
            None => argmax(z),
        }
    }

    /// Forward pass of one sample; returns the logits (last pre-activation).
    pub fn forward(&self, f: &Forward<N::V>, input: &[N::V], t: &mut Trace<N>) {
        let nb = self.blocks.len();
        t.x.resize(nb, Vec::new());
        t.p.resize(nb, Vec::new());
        t.arg.resize(nb, Vec::new());
        t.x[0].clear();
        t.x[0].extend_from_slice(input);
        if self.is_wide() {
            return self.forward_wide(f, t);
        }
        // Buffers are taken out of the trace and put back, so a trace reused across
        // samples allocates nothing after the first one.
        for (i, b) in self.blocks.iter().enumerate() {
            let g = &b.geom;
            let mut p = std::mem::take(&mut t.p[i]);
            p.resize(g.out_len(), N::zero());
            ops::conv_fwd::<N>(
                g,
                &t.x[i],
                &f.w[i],
                &f.pairs[i],
                &f.b[i],
                &mut p,
                &mut t.scratch,
            );
            if i + 1 < nb {
                let mut o = std::mem::take(&mut t.tmp);
                o.clear();
                o.extend_from_slice(&p);
                if b.relu {
                    ops::relu::<N>(&p, &mut o);
                }
                if b.pool {
                    let mut y = std::mem::take(&mut t.x[i + 1]);
                    y.clear();
                    y.resize(g.out_c * (g.out_h / 2) * (g.out_w / 2), N::zero());
                    let mut arg = std::mem::take(&mut t.arg[i]);
                    arg.clear();
                    arg.resize(y.len(), 0);
                    ops::maxpool2_fwd::<N>(g.out_c, g.out_h, g.out_w, &o, &mut y, &mut arg);
                    t.arg[i] = arg;
                    t.x[i + 1] = o;
                    o = y;
                }
                if let Some(sg) = b.shuffle {
                    let (c, h, w) = b.out_shape();
                    let mut y = vec![N::zero(); o.len()];
                    ops::permute_channels(&ops::shuffle_perm(c, sg), h * w, &o, &mut y);
                    o = y;
                }
                t.tmp = std::mem::replace(&mut t.x[i + 1], o);
            }
            t.p[i] = p;
        }
    }

    /// [`Net::forward`] on wide activations (input in `t.x[0]`, its residuals zero):
    /// the same steps on (Q8.8 word, residual word) pairs.
    fn forward_wide(&self, f: &Forward<N::V>, t: &mut Trace<N>) {
        let nb = self.blocks.len();
        t.xl.resize(nb, Vec::new());
        t.pl.resize(nb, Vec::new());
        t.xl[0].clear();
        t.xl[0].resize(t.x[0].len(), N::zero());
        for (i, b) in self.blocks.iter().enumerate() {
            let g = &b.geom;
            let mut p = std::mem::take(&mut t.p[i]);
            let mut pl = std::mem::take(&mut t.pl[i]);
            p.resize(g.out_len(), N::zero());
            pl.resize(g.out_len(), N::zero());
            let (x, xl) = (&t.x[i], &t.xl[i]);
            ops::conv_fwd_wide::<N>(
                g,
                x,
                xl,
                &f.w[i],
                &f.pairs[i],
                &self.b[i],
                &mut p,
                &mut pl,
                &mut t.scratch,
            );
            if i + 1 < nb {
                // Buffers recycled as in the Q8.8 pass: nothing is allocated after
                // the first sample.
                let mut o = std::mem::take(&mut t.tmp);
                let mut ol = std::mem::take(&mut t.tmpl);
                if b.relu {
                    // Every word is written: a recycled buffer needs no copy first.
                    o.resize(p.len(), N::zero());
                    ol.resize(pl.len(), N::zero());
                    ops::relu_wide::<N>(&p, &pl, &mut o, &mut ol);
                } else {
                    o.clone_from(&p);
                    ol.clone_from(&pl);
                }
                if b.pool {
                    let len = g.out_c * (g.out_h / 2) * (g.out_w / 2);
                    let mut y = std::mem::take(&mut t.x[i + 1]);
                    let mut yl = std::mem::take(&mut t.xl[i + 1]);
                    y.clear();
                    y.resize(len, N::zero());
                    yl.clear();
                    yl.resize(len, N::zero());
                    let mut arg = std::mem::take(&mut t.arg[i]);
                    arg.clear();
                    arg.resize(len, 0);
                    let (c, h, w) = (g.out_c, g.out_h, g.out_w);
                    ops::maxpool2_fwd_wide::<N>(c, h, w, &o, &ol, &mut y, &mut yl, &mut arg);
                    t.arg[i] = arg;
                    t.x[i + 1] = std::mem::replace(&mut o, y);
                    t.xl[i + 1] = std::mem::replace(&mut ol, yl);
                }
                if let Some(sg) = b.shuffle {
                    let (c, h, w) = b.out_shape();
                    let perm = ops::shuffle_perm(c, sg);
                    let (mut y, mut yl) = (vec![N::zero(); o.len()], vec![N::zero(); o.len()]);
                    ops::permute_channels(&perm, h * w, &o, &mut y);
                    ops::permute_channels(&perm, h * w, &ol, &mut yl);
                    (o, ol) = (y, yl);
                }
                t.tmp = std::mem::replace(&mut t.x[i + 1], o);
                t.tmpl = std::mem::replace(&mut t.xl[i + 1], ol);
            }
            t.p[i] = p;
            t.pl[i] = pl;
        }
    }

    /// Errors at every block's pre-activation, given e_L (at exponent `exp_l`) at the
    /// last one. Each error is normalized once it is complete ([`crate::scale`]).
    pub fn propagate(
        &self,
        f: &Forward<N::V>,
        kind: StepKind,
        t: &mut Trace<N>,
        e_l: Vec<N::V>,
        exp_l: i32,
    ) {
        let r: Result<(), std::convert::Infallible> =
            self.propagate_with(f, kind, t, e_l, exp_l, None);
        if let Err(e) = r {
            match e {}
        }
    }

    /// [`Net::propagate`] with each DFA path's result handed to `hook` (hardware in
    /// the loop), which may replace it before it is normalized.
    pub fn propagate_with<E>(
        &self,
        f: &Forward<N::V>,
        kind: StepKind,
        t: &mut Trace<N>,
        e_l: Vec<N::V>,
        exp_l: i32,
        mut hook: Option<&mut PathHook<'_, N::V, E>>,
    ) -> Result<(), E> {
        let nb = self.blocks.len();
        t.e.resize(nb, Vec::new());
        t.exp.resize(nb, 0);
        if t.keep_pre {
            t.pre.resize(nb, Vec::new());
            t.pre[nb - 1] = e_l.clone();
        }
        t.e[nb - 1] = e_l;
        t.exp[nb - 1] = exp_l;
        let use_bp = kind == StepKind::Bp || self.propagation == Propagation::Bp;
        for i in (0..nb - 1).rev() {
            let b = &self.blocks[i];
            let mut e = std::mem::take(&mut t.e[i]);
            e.clear();
            e.resize(b.geom.out_len(), N::zero());
            let mut dfa_path = None;
            if use_bp {
                // Error w.r.t. block i+1's input, then back through shuffle and pool.
                let nx = &self.blocks[i + 1].geom;
                let mut ex = std::mem::take(&mut t.tmp);
                ex.clear();
                ex.resize(nx.in_len(), N::zero());
                let w = &f.w[i + 1];
                let wt = f.wt[i + 1].as_deref().map(|wt| (wt, &f.pairs_t[i + 1][..]));
                ops::conv_bwd_data::<N>(nx, &t.e[i + 1], w, wt, &mut ex, &mut t.scratch);
                if let Some(sg) = b.shuffle {
                    let (c, h, w) = b.out_shape();
                    let mut y = vec![N::zero(); ex.len()];
                    ops::unpermute_channels(&ops::shuffle_perm(c, sg), h * w, &ex, &mut y);
                    ex = y;
                }
                if b.pool {
                    ops::maxpool2_bwd::<N>(&ex, &t.arg[i], &mut e);
                    t.tmp = ex;
                } else {
                    t.tmp = std::mem::replace(&mut e, ex);
                }
                t.exp[i] = t.exp[i + 1];
            } else {
                let k = self
                    .paths
                    .iter()
                    .position(|p| p.target == i)
                    .expect("a backward path for every hidden block");
                let path = &self.paths[k];
                dfa_path = Some(k);
                path.apply::<N>(&t.e[path.source], &mut e, &mut t.scratch);
                t.exp[i] = (t.exp[path.source] + path.gain as i32).min(crate::scale::EXP_MAX);
            }
            if b.relu && self.is_wide() {
                ops::relu_mask_wide::<N>(&t.p[i], &t.pl[i], &mut e);
            } else if b.relu {
                ops::relu_mask::<N>(&t.p[i], &mut e);
            }
            if let (Some(k), Some(h)) = (dfa_path, hook.as_mut()) {
                let active = self.relu_pass(t, i);
                h(k, &t.e[self.paths[k].source], &active, &mut e)?;
            }
            if t.keep_pre {
                t.pre[i].clone_from(&e);
            }
            if self.normalize {
                t.exp[i] += N::normalize(&mut e, t.exp[i]);
            }
            t.e[i] = e;
        }
        Ok(())
    }
}

/// Weight and bias gradient sums (per sample: exact accumulators; per batch:
/// aligned wide sums, [`Num::fold`]).
#[derive(Clone, Debug)]
pub struct GradAcc<A> {
    /// Per block weights.
    pub w: Vec<Vec<A>>,
    /// Per block biases.
    pub b: Vec<Vec<A>>,
}

impl<A: Copy + Default> GradAcc<A> {
    fn zeros<N: Num>(net: &Net<N>) -> Self {
        GradAcc {
            w: net.w.iter().map(|w| vec![A::default(); w.len()]).collect(),
            b: net.b.iter().map(|b| vec![A::default(); b.len()]).collect(),
        }
    }
}

/// Per-thread gradient sums of the current samples, per block: exact accumulators,
/// one per exponent seen lately ([`PENDING_SLOTS`]), that take samples of their
/// exponent until they must be folded ([`Num::fold_every`]). The fold is exact and
/// linear, so when a slot is folded does not change a bit of the batch sums.
#[derive(Clone, Debug)]
struct Pending<A> {
    /// Per block, its slots.
    slots: Vec<Vec<Slot<A>>>,
}

/// Pending sums of samples at one exponent.
#[derive(Clone, Debug)]
struct Slot<A> {
    /// Weight sums.
    w: Vec<A>,
    /// Bias sums.
    b: Vec<A>,
    /// Exponent of the samples in the sums.
    exp: i32,
    /// Samples in the sums (0: empty).
    count: usize,
}

/// Exponents held at once per block before the oldest slot is folded: a batch's
/// errors span a few exponents, and each fold costs a pass over the block's weights.
const PENDING_SLOTS: usize = 8;

impl<N: Num> Net<N> {
    /// Add one sample's weight and bias gradients (errors and inputs in `t`) to the
    /// pending sums `p` of its exponent, folding a slot into the batch sums `g` first
    /// when its bound is reached or a new exponent needs a slot.
    fn accumulate(&self, t: &mut Trace<N>, p: &mut Pending<N::Acc>, g: &mut GradAcc<N::Wide>) {
        for i in 0..self.blocks.len() {
            let geom = &self.blocks[i].geom;
            let every = N::fold_every(geom.out_h * geom.out_w);
            let slots = &mut p.slots[i];
            let k = match slots.iter().position(|s| s.count > 0 && s.exp == t.exp[i]) {
                Some(k) => k,
                None => match slots.iter().position(|s| s.count == 0) {
                    Some(k) => k,
                    None if slots.len() < PENDING_SLOTS => {
                        slots.push(Slot {
                            w: vec![N::zero_acc(); self.w[i].len()],
                            b: vec![N::zero_acc(); self.b[i].len()],
                            exp: 0,
                            count: 0,
                        });
                        slots.len() - 1
                    }
                    None => {
                        Self::fold_slot(&mut slots[0], &mut g.w[i], &mut g.b[i]);
                        0
                    }
                },
            };
            let slot = &mut slots[k];
            if slot.count >= every {
                Self::fold_slot(slot, &mut g.w[i], &mut g.b[i]);
            }
            slot.exp = t.exp[i];
            slot.count += 1;
            ops::conv_bwd_weight::<N>(
                geom,
                &t.e[i],
                &t.x[i],
                &mut slot.w,
                &mut slot.b,
                &mut t.scratch,
            );
        }
    }

    /// Fold one slot into block sums (gw, gb) and empty it.
    fn fold_slot(s: &mut Slot<N::Acc>, gw: &mut [N::Wide], gb: &mut [N::Wide]) {
        if s.count > 0 {
            N::fold(gw, &s.w, s.exp);
            N::fold(gb, &s.b, s.exp);
            s.w.fill(N::zero_acc());
            s.b.fill(N::zero_acc());
            s.count = 0;
        }
    }

    /// Fold every pending slot of every block into `g`.
    fn fold_all(&self, p: &mut Pending<N::Acc>, g: &mut GradAcc<N::Wide>) {
        for (i, slots) in p.slots.iter_mut().enumerate() {
            for s in slots {
                Self::fold_slot(s, &mut g.w[i], &mut g.b[i]);
            }
        }
    }
}

fn add_wide<W: Copy + std::ops::AddAssign>(a: &mut GradAcc<W>, o: &GradAcc<W>) {
    for (x, y) in a.w.iter_mut().flatten().zip(o.w.iter().flatten()) {
        *x += *y;
    }
    for (x, y) in a.b.iter_mut().flatten().zip(o.b.iter().flatten()) {
        *x += *y;
    }
}

/// Index of the largest value, the first on ties: the predicted class.
pub fn argmax<T: PartialOrd>(z: &[T]) -> usize {
    (0..z.len()).fold(0, |b, k| if z[k] > z[b] { k } else { b })
}

/// What one sample's pass gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The predicted class.
    pub predicted: usize,
    /// The loss, raw (fixed point: exact integer; f32: its bits).
    pub loss_raw: i64,
    /// The loss as a real number.
    pub loss_real: f64,
}

impl<N: Loss> Net<N> {
    /// One sample: forward, e_L = softmax(z) − one-hot and, with `kind`, error
    /// propagation; `t` then holds every block's activations and errors.
    pub fn sample(
        &self,
        f: &Forward<N::V>,
        x: &[N::V],
        label: usize,
        kind: Option<StepKind>,
        t: &mut Trace<N>,
    ) -> Sample {
        let Ok::<_, std::convert::Infallible>(s) = self.sample_with(f, x, label, kind, t, None);
        s
    }

    /// [`Net::sample`] with the DFA paths handed to `hook` ([`Net::propagate_with`]).
    pub fn sample_with<E>(
        &self,
        f: &Forward<N::V>,
        x: &[N::V],
        label: usize,
        kind: Option<StepKind>,
        t: &mut Trace<N>,
        hook: Option<&mut PathHook<'_, N::V, E>>,
    ) -> Result<Sample, E> {
        self.forward(f, x, t);
        let z = t.p.last().expect("a network has blocks");
        let predicted = self.predicted(t);
        let mut e_l = vec![N::zero(); z.len()];
        let (loss_raw, loss_real, exp_l) = N::softmax_xent(z, label, &mut e_l, self.normalize);
        if let Some(kind) = kind {
            self.propagate_with(f, kind, t, e_l, exp_l, hook)?;
        }
        Ok(Sample {
            predicted,
            loss_raw,
            loss_real,
        })
    }
}

/// What [`run_samples`] gives: gradient sums, raw losses, summed real loss, correct.
type SampleSums<W> = (GradAcc<W>, Vec<i64>, f64, usize);

/// Per-sample forward + propagation + gradient accumulation for `samples`, the DFA
/// paths through `hook` when given.
fn run_samples<N: Loss, E>(
    net: &Net<N>,
    f: &Forward<N::V>,
    kind: StepKind,
    samples: &[(&[N::V], usize)],
    mut hook: Option<&mut PathHook<'_, N::V, E>>,
) -> Result<SampleSums<N::Wide>, E> {
    let mut g = GradAcc::zeros(net);
    let nb = net.blocks.len();
    let mut pending = Pending {
        slots: vec![Vec::new(); nb],
    };

    let mut t = Trace::<N>::default();
    let mut losses = Vec::with_capacity(samples.len());
    let mut loss_real = 0.0;
    let mut correct = 0;
    for &(x, label) in samples {
        let s = net.sample_with(f, x, label, Some(kind), &mut t, hook.as_deref_mut())?;
        correct += (s.predicted == label) as usize;
        losses.push(s.loss_raw);
        loss_real += s.loss_real;
        net.accumulate(&mut t, &mut pending, &mut g);
    }
    net.fold_all(&mut pending, &mut g);
    Ok((g, losses, loss_real, correct))
}

/// Training state: the network, the optimizer state and the step RNG.
#[derive(Clone, Debug)]
pub struct Trainer<N: Num> {
    /// The network.
    pub net: Net<N>,
    /// Velocities.
    pub opt: OptState<N>,
    /// Hyper-parameters.
    pub hyper: Hyper,
    /// RNG that picks BP or DFA per step.
    pub step_rng: Rng,
    /// Steps done.
    pub step: u64,
}

impl<N: Loss> Trainer<N> {
    /// A trainer with zero velocities.
    pub fn new(net: Net<N>, hyper: Hyper, seed: u64) -> Self {
        let zeros = |v: &Vec<Vec<N::M>>| {
            v.iter()
                .map(|x| vec![N::M::default(); x.len()])
                .collect::<Vec<_>>()
        };
        let mut v_bp = zeros(&net.w);
        v_bp.extend(zeros(&net.b));
        let opt = OptState {
            v_bp: v_bp.clone(),
            v_dfa: v_bp,
        };
        Trainer {
            net,
            opt,
            hyper,
            step_rng: Rng::seed_from_u64(seed ^ 0x57E9_0000),
            step: 0,
        }
    }

    /// Draw the propagation of a step from `rng`.
    fn draw_kind(&self, rng: &mut Rng) -> StepKind {
        if self.net.propagation == Propagation::Bp {
            return StepKind::Bp;
        }
        if rng.uniform() < self.hyper.bp_ratio {
            StepKind::Bp
        } else {
            StepKind::Dfa
        }
    }

    /// The propagation the next step will use, without taking the draw.
    pub fn next_kind(&self) -> StepKind {
        self.draw_kind(&mut self.step_rng.clone())
    }

    /// The propagation of this step (takes the draw).
    fn pick(&mut self) -> StepKind {
        let mut rng = self.step_rng.clone();
        let kind = self.draw_kind(&mut rng);
        self.step_rng = rng;
        kind
    }

    /// Gradients of one batch (mean over the batch, master format), with its stats.
    pub fn gradients(
        &self,
        kind: StepKind,
        batch: &[(&[N::V], usize)],
        threads: usize,
    ) -> (Vec<Vec<N::M>>, StepStats) {
        let Ok::<_, std::convert::Infallible>(g) = self.gradients_with(kind, batch, threads, None);
        g
    }

    /// [`Trainer::gradients`] with the DFA paths through `hook` when given (then on
    /// one thread: the hook is one hardware model; the result is the same on any
    /// thread count).
    pub fn gradients_with<E>(
        &self,
        kind: StepKind,
        batch: &[(&[N::V], usize)],
        threads: usize,
        hook: Option<&mut PathHook<'_, N::V, E>>,
    ) -> Result<(Vec<Vec<N::M>>, StepStats), E> {
        let f = self.net.forward_copy();
        let parts: Vec<SampleSums<N::Wide>> = match hook {
            Some(h) => vec![run_samples(&self.net, &f, kind, batch, Some(h))?],
            None => {
                let cap = gemm::isa_limit();
                let threads = threads.clamp(1, batch.len().max(1));
                let chunk = batch.len().div_ceil(threads);
                std::thread::scope(|s| {
                    let hs: Vec<_> = batch
                        .chunks(chunk)
                        .map(|c| {
                            s.spawn(|| {
                                gemm::limit_isa(cap);
                                let Ok(sums) = run_samples::<N, std::convert::Infallible>(
                                    &self.net, &f, kind, c, None,
                                );
                                sums
                            })
                        })
                        .collect();
                    hs.into_iter()
                        .map(|h| h.join().expect("worker thread panicked"))
                        .collect()
                })
            }
        };
        let mut total = GradAcc::zeros(&self.net);
        let mut losses = Vec::new();
        let mut loss_real = 0.0;
        let mut correct = 0;
        for (g, l, r, c) in &parts {
            add_wide(&mut total, g);
            losses.extend_from_slice(l);
            loss_real += r;
            correct += c;
        }
        let lb = self.hyper.log2_batch;
        let mut grads: Vec<Vec<N::M>> = total
            .w
            .iter()
            .map(|w| w.iter().map(|&a| N::grad_out(a, lb)).collect())
            .collect();
        grads.extend(
            total
                .b
                .iter()
                .map(|b| b.iter().map(|&a| N::bias_grad_out(a, lb)).collect()),
        );
        let stats = StepStats {
            kind,
            loss_raw: N::loss_sum(&losses),
            loss: loss_real / batch.len().max(1) as f64,
            correct,
        };
        Ok((grads, stats))
    }

    /// One optimizer step on a batch (its size must be 2^log2_batch).
    pub fn train_step(&mut self, batch: &[(&[N::V], usize)], threads: usize) -> StepStats {
        let Ok::<_, std::convert::Infallible>(stats) =
            self.train_step_with(batch, threads, &mut |kind, h, _, theta, vb, vd, g| {
                for j in 0..g.len() {
                    update_word::<N>(kind, h, &mut theta[j], &mut vb[j], &mut vd[j], g[j]);
                }
                Ok(())
            });
        stats
    }

    /// One training step whose optimizer update is done by `update` (hardware in the
    /// loop: the update unit): for each parameter tensor k (weights, then biases) it
    /// gets the step's kind, the hyper-parameters, θ, v_bp and v_dfa to update in
    /// place, and the gradient.
    pub fn train_step_with<E>(
        &mut self,
        batch: &[(&[N::V], usize)],
        threads: usize,
        update: &mut TensorUpdate<'_, N, E>,
    ) -> Result<StepStats, E> {
        self.train_step_hw(batch, threads, None, update)
    }

    /// [`Trainer::train_step_with`] whose DFA error propagation, in a DFA step, goes
    /// through `paths` too when given ([`PathHook`]; the samples then run on one
    /// thread).
    pub fn train_step_hw<E>(
        &mut self,
        batch: &[(&[N::V], usize)],
        threads: usize,
        paths: Option<&mut PathHook<'_, N::V, E>>,
        update: &mut TensorUpdate<'_, N, E>,
    ) -> Result<StepStats, E> {
        let kind = self.pick();
        let (grads, stats) = self.gradients_with(kind, batch, threads, paths)?;
        let h = self.hyper;
        let nw = self.net.w.len();
        for (k, g) in grads.iter().enumerate() {
            let theta = if k < nw {
                &mut self.net.w[k]
            } else {
                &mut self.net.b[k - nw]
            };
            update(
                kind,
                &h,
                k,
                theta,
                &mut self.opt.v_bp[k],
                &mut self.opt.v_dfa[k],
                g,
            )?;
        }
        self.step += 1;
        Ok(stats)
    }

    /// Predicted classes of `inputs` (no training).
    pub fn predict(&self, inputs: &[&[N::V]], threads: usize) -> Vec<usize> {
        let f = self.net.forward_copy();
        let cap = gemm::isa_limit();
        let threads = threads.clamp(1, inputs.len().max(1));
        let chunk = inputs.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let hs: Vec<_> = inputs
                .chunks(chunk)
                .map(|c| {
                    let f = &f;
                    s.spawn(move || {
                        gemm::limit_isa(cap);
                        let mut t = Trace::<N>::default();
                        c.iter()
                            .map(|x| {
                                self.net.forward(f, x, &mut t);
                                self.net.predicted(&t)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("worker thread panicked"))
                .collect()
        })
    }
}
