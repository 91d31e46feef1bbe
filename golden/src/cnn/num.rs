//! The number systems the CNN runs in: bit-exact fixed point ([`Fx`]) and the f32
//! reference path ([`F32`]). The layer code is written once, generic over [`Num`];
//! only the arithmetic differs.
//!
//! Fixed point (formats from [`crate::format`]):
//! - activation × weight (Q8.8 × Q4.12) accumulates exactly in i64 with 20 fraction
//!   bits, plus the bias, then narrows once into Q8.8; with wide activations
//!   (Q8.24 as a Q8.8 word and a residual word, [`crate::format::split_wide`]) the
//!   residual words go through the same product as a second operand, and both sums
//!   plus the Q8.24 master bias narrow once, at 36 fraction bits;
//! - error × weight (Q3.13 × Q4.12) accumulates with 25 fraction bits, narrows into Q3.13;
//! - error × activation (Q3.13 × Q8.8) accumulates exactly per sample with 21 + E
//!   fraction bits (E the error tensor's exponent, [`crate::scale`]), is aligned to
//!   21 + EXP_MAX fraction bits ([`Num::fold`], i128), summed over the batch and
//!   narrowed once into the Q8.24 gradient, dividing by the (power-of-two) batch size
//!   in the same step.
//!
//! The f32 path carries the same exponents as plain factors 2^−E; it never
//! normalizes (its values do not underflow), so its exponents only hold the fixed
//! path gains.

use crate::format::{self, ACT, ACT_WIDE, COEF, ERROR, MASTER, WEIGHT};
use crate::scale;
use crate::update::{FixedOps, UpdateOps};

/// A sum type: exact per-sample accumulators and batch sums.
pub trait Sum:
    Copy + Clone + Send + Sync + Default + std::fmt::Debug + std::ops::AddAssign + PartialEq
{
}

impl<T> Sum for T where
    T: Copy + Clone + Send + Sync + Default + std::fmt::Debug + std::ops::AddAssign + PartialEq
{
}

/// Arithmetic of one number system.
pub trait Num:
    Copy + Clone + Send + Sync + PartialEq + std::fmt::Debug + Default + 'static
{
    /// Activation, weight (forward copy) and error values.
    type V: Copy + Clone + Send + Sync + PartialEq + PartialOrd + std::fmt::Debug + Default;
    /// Exact accumulator.
    type Acc: Sum;
    /// Batch gradient accumulator (fixed point: i128 at the aligned LSB).
    type Wide: Sum;
    /// Master weight, velocity, gradient.
    type M: Copy + Clone + Send + Sync + PartialEq + std::fmt::Debug + Default;

    /// Zero value.
    fn zero() -> Self::V;
    /// Zero accumulator.
    fn zero_acc() -> Self::Acc;
    /// Exact product of two values.
    fn mul(a: Self::V, b: Self::V) -> Self::Acc;
    /// acc[j] += a · x[j], each product exact ([`Num::mul`]).
    fn mul_add_row(acc: &mut [Self::Acc], a: Self::V, x: &[Self::V]) {
        for (s, &xv) in acc.iter_mut().zip(x) {
            *s += Self::mul(a, xv);
        }
    }
    /// A value as an accumulator term with weight ±1 (binary backward weights).
    fn signed(e: Self::V, neg: bool) -> Self::Acc;
    /// The multiplier ±1 of a binary weight (raw ±1 in fixed point: e · w is then ±e
    /// on the raw error, exactly what [`Num::signed`] adds).
    fn unit(neg: bool) -> Self::V;
    /// Whether activations can be wide: a Q8.8 word plus a residual word
    /// ([`crate::format::split_wide`]). The f32 path has nothing to split.
    const SPLIT: bool;
    /// Activation × weight sum plus bias → activation.
    fn fwd_out(acc: Self::Acc, bias: Self::V) -> Self::V;
    /// Wide forward output: `hi` = Σ w·x_hi, `lo` = Σ w·x_lo, plus the master bias,
    /// narrowed once into a wide activation (hi, lo).
    fn fwd_out_wide(hi: Self::Acc, lo: Self::Acc, bias: Self::M) -> (Self::V, Self::V);
    /// Error × weight sum → error.
    fn bwd_out(acc: Self::Acc) -> Self::V;
    /// Sum of ±errors (binary backward weights) scaled by 2^−shift → error.
    fn bin_out(acc: Self::Acc, shift: u32) -> Self::V;
    /// Add exact gradient sums `part`, whose errors had exponent `exp`, to the batch
    /// sums `total`, aligned to the batch LSB.
    fn fold(total: &mut [Self::Wide], part: &[Self::Acc], exp: i32);
    /// How many samples' gradient sums over a contraction of `len` terms one
    /// accumulator may take before it must be folded ([`Num::fold`]): samples of the
    /// same exponent add up exactly in `Acc` while the bound holds, and one fold of
    /// their sum gives the bits of folding each (fixed point). The f32 path folds every
    /// sample (1), since a sum scaled once rounds differently from scaled terms.
    fn fold_every(len: usize) -> usize;
    /// Normalize an error tensor at exponent `exp` ([`crate::scale::normalize`]);
    /// returns the shift s (new exponent: exp + s). The f32 path returns 0.
    fn normalize(e: &mut [Self::V], exp: i32) -> i32;
    /// Error × activation sum over the batch → gradient, divided by 2^log2_batch.
    fn grad_out(acc: Self::Wide, log2_batch: u32) -> Self::M;
    /// Error sum over the batch (bias gradient) → gradient, divided by 2^log2_batch.
    fn bias_grad_out(acc: Self::Wide, log2_batch: u32) -> Self::M;
    /// Forward copy of a master weight.
    fn weight_of(m: Self::M) -> Self::V;
    /// Forward copy of a master bias (activation format).
    fn bias_of(m: Self::M) -> Self::V;
    /// A master value from a real number (initialisation).
    fn master_from_f64(x: f64) -> Self::M;
    /// A value from a real number (inputs, tests).
    fn act_from_f64(x: f64) -> Self::V;
    /// c·m (c a coefficient such as α, γ or η).
    fn scale(m: Self::M, c: Coef) -> Self::M;
    /// a + b.
    fn add(a: Self::M, b: Self::M) -> Self::M;
    /// a − b.
    fn sub(a: Self::M, b: Self::M) -> Self::M;
    /// Raw bits of a value (fixed point) or its IEEE bits (f32), for checksums and dumps.
    fn bits(v: Self::V) -> i64;
    /// Raw bits of a master value.
    fn master_bits(m: Self::M) -> i64;
    /// A master value from its raw bits (checkpoints).
    fn master_from_bits(b: i64) -> Self::M;
    /// C (m×n) = A (m×k) · B (k×n), exact accumulators (overwritten).
    fn gemm(a: &[Self::V], b: &[Self::V], m: usize, k: usize, n: usize, c: &mut [Self::Acc]);
    /// C (m×k) += A (m×n) · Bᵀ with B k×n.
    fn gemm_abt(a: &[Self::V], b: &[Self::V], m: usize, n: usize, k: usize, c: &mut [Self::Acc]);
    /// The weights prepared for [`Num::conv_fwd_fused`] (fixed point: the pair words
    /// of [`super::direct::forward_pairs`]), once per step; empty where nothing is
    /// prepared.
    fn forward_pairs(_g: &super::ops::ConvGeom, _w: &[Self::V]) -> Vec<i32> {
        Vec::new()
    }
    /// out[o] = f(oc, Σ) for every output o (channel oc) of conv(x, w), in one fused
    /// pass where such a kernel applies (fixed point on AVX-512, stride 1): the sums
    /// are narrowed as they come, with no accumulator tensor. False (out untouched):
    /// not taken, and [`super::ops::conv_map`] runs its general path. Same bits.
    /// `pairs`: [`Num::forward_pairs`] of w, or empty.
    fn conv_fused_map(
        _g: &super::ops::ConvGeom,
        _x: &[Self::V],
        _w: &[Self::V],
        _pairs: &[i32],
        _out: &mut [Self::V],
        _f: impl Fn(usize, Self::Acc) -> Self::V + Copy,
    ) -> bool {
        false
    }
    /// y = conv(x, w) + b narrowed into wide activations ([`Num::fwd_out_wide`]) in
    /// one fused pass, as [`Num::conv_fused_map`] does for one input.
    #[allow(clippy::too_many_arguments)]
    fn conv_fwd_wide_fused(
        _g: &super::ops::ConvGeom,
        _xh: &[Self::V],
        _xl: &[Self::V],
        _w: &[Self::V],
        _pairs: &[i32],
        _b: &[Self::M],
        _yh: &mut [Self::V],
        _yl: &mut [Self::V],
    ) -> bool {
        false
    }
    /// c (m×n, overwritten) = W_grp · im2col_grp(x) for one group of a conv.
    fn conv_group(
        g: &super::ops::ConvGeom,
        x: &[Self::V],
        w_grp: &[Self::V],
        grp: usize,
        m: usize,
        c: &mut [Self::Acc],
        col: &mut Vec<Self::V>,
    ) {
        super::gemm::im2col(g, x, grp, col);
        Self::gemm(w_grp, col, m, g.fan_in(), g.out_h * g.out_w, c);
    }
    /// gw_grp += E_grp · im2col_grp(x)ᵀ for one group of a conv.
    fn conv_wgrad_group(
        g: &super::ops::ConvGeom,
        e_grp: &[Self::V],
        x: &[Self::V],
        grp: usize,
        m: usize,
        gw: &mut [Self::Acc],
        col: &mut Vec<Self::V>,
    ) {
        super::gemm::im2col(g, x, grp, col);
        Self::gemm_abt(e_grp, col, m, g.out_h * g.out_w, g.fan_in(), gw);
    }
}

/// An optimizer coefficient in both systems: exact Q15.16 raw and its f32 value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coef {
    /// Q15.16 raw value.
    pub raw: i64,
    /// The same value as f32 (the f32 path uses this, so both paths see the same number).
    pub real: f32,
}

impl Coef {
    /// The Q15.16 coefficient nearest to `x` (round half up).
    pub fn new(x: f64) -> Coef {
        let raw = format::saturate((x * (1u64 << COEF.frac) as f64 + 0.5).floor() as i64, COEF);
        Coef {
            raw,
            real: (raw as f64 / (1u64 << COEF.frac) as f64) as f32,
        }
    }

    /// 1 − self, exactly.
    pub fn one_minus(self) -> Coef {
        let raw = (1i64 << COEF.frac) - self.raw;
        Coef {
            raw,
            real: (raw as f64 / (1u64 << COEF.frac) as f64) as f32,
        }
    }
}

/// Bit-exact fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fx;

/// The f32 reference path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct F32;

impl Num for Fx {
    type V = i16;
    type Acc = i64;
    type Wide = i128;
    type M = i32;

    fn zero() -> i16 {
        0
    }
    fn zero_acc() -> i64 {
        0
    }
    #[inline(always)]
    fn mul(a: i16, b: i16) -> i64 {
        a as i64 * b as i64
    }
    fn mul_add_row(acc: &mut [i64], a: i16, x: &[i16]) {
        // i16 · i16 fits an i32 (|p| ≤ 2^30): 32-bit multiplies, then widened.
        #[inline(always)]
        fn body(acc: &mut [i64], a: i16, x: &[i16]) {
            for (s, &xv) in acc.iter_mut().zip(x) {
                *s += (a as i32 * xv as i32) as i64;
            }
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512bw")]
        unsafe fn on_avx512(acc: &mut [i64], a: i16, x: &[i16]) {
            body(acc, a, x)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn on_avx2(acc: &mut [i64], a: i16, x: &[i16]) {
            body(acc, a, x)
        }
        #[cfg(target_arch = "x86_64")]
        if super::gemm::avx512() {
            // SAFETY: AVX-512BW detected.
            return unsafe { on_avx512(acc, a, x) };
        }
        #[cfg(target_arch = "x86_64")]
        if super::gemm::avx2() {
            // SAFETY: AVX2 detected.
            return unsafe { on_avx2(acc, a, x) };
        }
        body(acc, a, x)
    }
    #[inline(always)]
    fn signed(e: i16, neg: bool) -> i64 {
        if neg {
            -(e as i64)
        } else {
            e as i64
        }
    }
    fn unit(neg: bool) -> i16 {
        if neg {
            -1
        } else {
            1
        }
    }
    const SPLIT: bool = true;
    fn fwd_out(acc: i64, bias: i16) -> i16 {
        let f = ACT.frac + WEIGHT.frac;
        format::rescale(acc + ((bias as i64) << WEIGHT.frac), f, 0, ACT) as i16
    }
    #[inline]
    fn fwd_out_wide(hi: i64, lo: i64, bias: i32) -> (i16, i16) {
        // Everything at 36 fraction bits (Q8.24 × Q4.12). A hi sum beyond ±2^40 (real
        // ±2^20) saturates whatever lo adds, so clamping it first keeps the i64 exact.
        let lim = 1i64 << 40;
        let sum = (hi.clamp(-lim, lim) << format::WIDE_LO_BITS)
            + lo
            + ((bias as i64) << (ACT_WIDE.frac + WEIGHT.frac - MASTER.frac));
        format::split_wide(sum, ACT_WIDE.frac + WEIGHT.frac)
    }
    fn bwd_out(acc: i64) -> i16 {
        format::rescale(acc, ERROR.frac + WEIGHT.frac, 0, ERROR) as i16
    }
    fn bin_out(acc: i64, shift: u32) -> i16 {
        format::narrow(acc, shift, ERROR) as i16
    }
    fn fold(total: &mut [i128], part: &[i64], exp: i32) {
        let sh = scale::align_shift(exp);
        for (t, &p) in total.iter_mut().zip(part) {
            *t += (p as i128) << sh;
        }
    }
    fn normalize(e: &mut [i16], exp: i32) -> i32 {
        scale::normalize(e, exp)
    }
    fn fold_every(len: usize) -> usize {
        // |e·x| < 2^30 (two i16 words), so one sample's sum of `len` terms is below
        // 2^30·len, and 2^32 / len samples stay below 2^62.
        ((1usize << 32) / len.max(1)).max(1)
    }
    fn grad_out(acc: i128, log2_batch: u32) -> i32 {
        let frac = ERROR.frac + ACT.frac + scale::EXP_MAX as u32;
        format::rescale_wide(acc, frac, log2_batch, MASTER) as i32
    }
    fn bias_grad_out(acc: i128, log2_batch: u32) -> i32 {
        let frac = ERROR.frac + scale::EXP_MAX as u32;
        format::rescale_wide(acc, frac, log2_batch, MASTER) as i32
    }
    fn weight_of(m: i32) -> i16 {
        format::rescale(m as i64, MASTER.frac, 0, WEIGHT) as i16
    }
    fn bias_of(m: i32) -> i16 {
        format::rescale(m as i64, MASTER.frac, 0, ACT) as i16
    }
    fn master_from_f64(x: f64) -> i32 {
        format::saturate(
            (x * (1u64 << MASTER.frac) as f64 + 0.5).floor() as i64,
            MASTER,
        ) as i32
    }
    fn act_from_f64(x: f64) -> i16 {
        format::saturate((x * (1u64 << ACT.frac) as f64 + 0.5).floor() as i64, ACT) as i16
    }
    fn scale(m: i32, c: Coef) -> i32 {
        FixedOps::scale(m, c.raw)
    }
    fn add(a: i32, b: i32) -> i32 {
        FixedOps::add(a, b)
    }
    fn sub(a: i32, b: i32) -> i32 {
        FixedOps::sub(a, b)
    }
    fn bits(v: i16) -> i64 {
        v as i64
    }
    fn master_bits(m: i32) -> i64 {
        m as i64
    }
    fn master_from_bits(b: i64) -> i32 {
        b as i32
    }
    fn gemm(a: &[i16], b: &[i16], m: usize, k: usize, n: usize, c: &mut [i64]) {
        super::gemm::gemm_i16(a, b, m, k, n, c)
    }
    fn gemm_abt(a: &[i16], b: &[i16], m: usize, n: usize, k: usize, c: &mut [i64]) {
        super::gemm::gemm_abt_i16(a, b, m, n, k, c)
    }
    fn forward_pairs(g: &super::ops::ConvGeom, w: &[i16]) -> Vec<i32> {
        super::direct::forward_pairs(g, w)
    }
    fn conv_fused_map(
        g: &super::ops::ConvGeom,
        x: &[i16],
        w: &[i16],
        pairs: &[i32],
        out: &mut [i16],
        f: impl Fn(usize, i64) -> i16 + Copy,
    ) -> bool {
        let n = g.out_h * g.out_w;
        super::direct::conv_fused(g, [x], w, pairs, |oc, [s]| {
            // A local copy: its captures (a shift, a bias slice) stay in registers
            // instead of being reloaded after every store, so the loop vectorizes.
            let f = f;
            for (yo, &a) in out[oc * n..(oc + 1) * n].iter_mut().zip(s) {
                *yo = f(oc, a);
            }
        })
    }
    fn conv_fwd_wide_fused(
        g: &super::ops::ConvGeom,
        xh: &[i16],
        xl: &[i16],
        w: &[i16],
        pairs: &[i32],
        b: &[i32],
        yh: &mut [i16],
        yl: &mut [i16],
    ) -> bool {
        let n = g.out_h * g.out_w;
        super::direct::conv_fused(g, [xh, xl], w, pairs, |oc, [sh, sl]| {
            let bias = b[oc];
            let at = oc * n;
            let outs = yh[at..at + n].iter_mut().zip(&mut yl[at..at + n]);
            for ((h, l), (&a, &c)) in outs.zip(sh.iter().zip(sl)) {
                (*h, *l) = Self::fwd_out_wide(a, c, bias);
            }
        })
    }
    fn conv_group(
        g: &super::ops::ConvGeom,
        x: &[i16],
        w_grp: &[i16],
        grp: usize,
        m: usize,
        c: &mut [i64],
        _col: &mut Vec<i16>,
    ) {
        super::gemm::conv_group_i16(g, x, w_grp, grp, m, c)
    }
    fn conv_wgrad_group(
        g: &super::ops::ConvGeom,
        e_grp: &[i16],
        x: &[i16],
        grp: usize,
        m: usize,
        gw: &mut [i64],
        _col: &mut Vec<i16>,
    ) {
        super::gemm::conv_wgrad_group_i16(g, e_grp, x, grp, m, gw)
    }
}

impl Num for F32 {
    type V = f32;
    type Acc = f32;
    type Wide = f32;
    type M = f32;

    fn zero() -> f32 {
        0.0
    }
    fn zero_acc() -> f32 {
        0.0
    }
    #[inline(always)]
    fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn signed(e: f32, neg: bool) -> f32 {
        if neg {
            -e
        } else {
            e
        }
    }
    fn unit(neg: bool) -> f32 {
        if neg {
            -1.0
        } else {
            1.0
        }
    }
    const SPLIT: bool = false;
    fn fwd_out(acc: f32, bias: f32) -> f32 {
        acc + bias
    }
    fn fwd_out_wide(hi: f32, lo: f32, bias: f32) -> (f32, f32) {
        (hi + lo + bias, 0.0)
    }
    fn bwd_out(acc: f32) -> f32 {
        acc
    }
    fn bin_out(acc: f32, shift: u32) -> f32 {
        acc / (1u64 << shift) as f32
    }
    fn fold(total: &mut [f32], part: &[f32], exp: i32) {
        let f = scale::exp_factor(exp) as f32;
        for (t, &p) in total.iter_mut().zip(part) {
            *t += p * f;
        }
    }
    fn normalize(_e: &mut [f32], _exp: i32) -> i32 {
        0
    }
    fn fold_every(_len: usize) -> usize {
        1
    }
    fn grad_out(acc: f32, log2_batch: u32) -> f32 {
        acc / (1u64 << log2_batch) as f32
    }
    fn bias_grad_out(acc: f32, log2_batch: u32) -> f32 {
        acc / (1u64 << log2_batch) as f32
    }
    fn weight_of(m: f32) -> f32 {
        m
    }
    fn bias_of(m: f32) -> f32 {
        m
    }
    fn master_from_f64(x: f64) -> f32 {
        x as f32
    }
    fn act_from_f64(x: f64) -> f32 {
        x as f32
    }
    fn scale(m: f32, c: Coef) -> f32 {
        m * c.real
    }
    fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    fn bits(v: f32) -> i64 {
        v.to_bits() as i64
    }
    fn master_bits(m: f32) -> i64 {
        m.to_bits() as i64
    }
    fn master_from_bits(b: i64) -> f32 {
        f32::from_bits(b as u32)
    }
    fn gemm(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
        super::gemm::gemm_f32(a, b, m, k, n, c)
    }
    fn gemm_abt(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, c: &mut [f32]) {
        super::gemm::gemm_abt_f32(a, b, m, n, k, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_every_keeps_the_pending_sums_inside_i64() {
        for len in [1usize, 9, 784, 50_000, 1 << 20, 1 << 32, 1 << 40] {
            let k = Fx::fold_every(len) as u128;
            // k samples of `len` products of two i16 words, each below 2^30.
            assert!(
                k * len as u128 * (1u128 << 30) <= 1u128 << 62 || k == 1,
                "len {len}"
            );
            assert!(k >= 1);
        }
        assert_eq!(F32::fold_every(9), 1);
    }
}
