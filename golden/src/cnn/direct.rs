//! Direct convolution kernels (AVX-512BW or AVX2, stride 1): the forward product and
//! the weight gradient without an im2col matrix. Each body is written once and
//! compiled twice, for AVX-512BW (16-lane registers, VNNI where present) and for
//! AVX2 (8-lane registers); both give the same sums. Written by hand because they must give
//! the exact integer sums of [`super::gemm`] (so the same bits), which no GEMM crate
//! guarantees for 16-bit operands.
//!
//! Both work on the *padded grid*: the input planes padded by `pad` on every side
//! (width `wp = in_w + 2·pad`), and outputs computed at q = oy·wp + ox for every
//! ox < wp. For a stride-1 conv the input word under tap (ky, kx) of output q is then
//! at q + ky·d·wp + kx·d, so each tap reads one contiguous window of a plane: the
//! columns ox ≥ out_w are junk, computed and dropped (7% of the work at 28×28, 22%
//! at 7×7), which is cheaper than packing im2col rows.
//!
//! Exactness is proved the same way as in [`super::gemm`]: a row whose bound
//! Σ|a| · max|b| reaches 2^31 could overflow an i32 lane, and then the caller takes
//! the packed path instead (the functions return false and write nothing).

use super::gemm::{self, I32_LIMIT};
use super::ops::ConvGeom;

thread_local! {
    /// Per-thread buffers: the padded input, the i32 sums, pair words, offsets, and
    /// the errors on the padded grid.
    static BUFS: std::cell::RefCell<Bufs> = std::cell::RefCell::new(Bufs::default());
}

#[derive(Default)]
struct Bufs {
    /// Padded input: channel-pair words (forward) or i16 planes (weight gradient).
    xp: Vec<u32>,
    /// The i32 sums of one block of rows on the padded grid.
    row32: Vec<i32>,
    /// Pair words of the weight rows.
    ap: Vec<i32>,
    /// Pair words of one chunk of the contraction.
    ap2: Vec<i32>,
    /// Per pair of taps, its largest |lo| + |hi| over a block's rows.
    pw: Vec<i32>,
    /// Chunks [j0, j1) of the contraction whose i32 sums cannot overflow.
    chunks: Vec<(usize, usize)>,
    /// Word offset of each tap pair's window.
    off: Vec<usize>,
    /// Errors on the padded grid (weight gradient).
    ep: Vec<i16>,
    /// The i64 sums of one block of rows, per input, when the contraction ran in
    /// chunks.
    row64: Vec<i64>,
    /// One output row's sums as i64, per input.
    seg: Vec<i64>,
}

/// Padded-grid geometry of a stride-1 conv.
struct Grid {
    /// Padded input width.
    wp: usize,
    /// Words per padded plane, with slack for the taps of the last output row.
    plane: usize,
    /// Outputs on the padded grid: out_h · wp.
    nq: usize,
}

/// The padded grid of a conv the direct kernels take: stride 1, and this thread's
/// products on AVX-512BW or AVX2 (None otherwise).
fn grid(g: &ConvGeom) -> Option<Grid> {
    if g.stride != 1 || !(gemm::avx512() || gemm::avx2()) {
        return None;
    }
    let wp = g.in_w + 2 * g.pad;
    let hp = g.in_h + 2 * g.pad;
    let span = g.dil * (g.k - 1);
    // out_h = hp − span for stride 1, so the last window ends at hp·wp + span − 1.
    debug_assert_eq!(g.out_h + span, hp);
    // The weight gradient reads 32-word vectors past nq: 32 more words of slack.
    Some(Grid {
        wp,
        plane: hp * wp + span + 32,
        nq: g.out_h * wp,
    })
}

/// c (m×n, overwritten, i64) = W_grp (m×K) · im2col_grp(x) for a stride-1 conv, on
/// AVX-512: false (c untouched) when the direct path does not apply.
pub fn conv_group(
    g: &ConvGeom,
    x: &[i16],
    w_grp: &[i16],
    grp: usize,
    m: usize,
    c: &mut [i64],
) -> bool {
    let Some(gr) = grid(g) else {
        return false;
    };
    let plane_len = g.icg() * g.in_h * g.in_w;
    let bmax = gemm::max_abs_fast(&x[grp * plane_len..(grp + 1) * plane_len]);
    // A pair of taps alone below 2^31 (|lo| + |hi| ≤ 2·max|w|): then the contraction
    // can always be cut into chunks that cannot overflow.
    if 2 * gemm::max_abs_fast(&w_grp[..m * g.fan_in()]) * bmax >= I32_LIMIT {
        return false;
    }
    let n = g.out_h * g.out_w;
    let mut emit = |r: usize, [s]: [&[i64]; 1]| c[r * n..(r + 1) * n].copy_from_slice(s);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `grid` is Some only with AVX-512BW or AVX2; the bound was checked above.
    unsafe {
        group_sums::<1>(g, &gr, [x], [bmax], w_grp, &[], grp, m, &mut emit)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (&gr, &mut emit);
    true
}

/// The forward sums of a whole stride-1 conv (every group) on `W` inputs that share
/// the weights (W = 2: the wide activations' hi and lo words), handed to
/// `emit(oc, sums)` one output channel at a time, `sums[i]` the out_h·out_w exact sums
/// of input i. No i64 tensor is written: the caller narrows straight from them, and the
/// inputs are padded and the weight pair words built once for all `W`. False (nothing
/// emitted) when the direct path does not apply to every group and input.
///
/// `pairs`: the weights' pair words from [`forward_pairs`] (built once per step), or
/// empty to build them here.
pub fn conv_fused<const W: usize>(
    g: &ConvGeom,
    xs: [&[i16]; W],
    w: &[i16],
    pairs: &[i32],
    mut emit: impl FnMut(usize, [&[i64]; W]),
) -> bool {
    let Some(gr) = grid(g) else {
        return false;
    };
    let (kk, ocg) = (g.fan_in(), g.out_c / g.groups);
    let plane_len = g.icg() * g.in_h * g.in_w;
    // Every group and input is checked before anything is emitted.
    let mut bmax = Vec::with_capacity(g.groups);
    for grp in 0..g.groups {
        let wmax = gemm::max_abs_fast(&w[grp * ocg * kk..(grp + 1) * ocg * kk]);
        let b = xs.map(|x| gemm::max_abs_fast(&x[grp * plane_len..(grp + 1) * plane_len]));
        if b.iter().any(|&b| 2 * wmax * b >= I32_LIMIT) {
            return false;
        }
        bmax.push(b);
    }
    let kp = g.icg().div_ceil(2) * g.k * g.k;
    debug_assert!(pairs.is_empty() || pairs.len() == g.groups * ocg * kp);
    for (grp, &b) in bmax.iter().enumerate() {
        let w_grp = &w[grp * ocg * kk..(grp + 1) * ocg * kk];
        let pre = pairs
            .get(grp * ocg * kp..(grp + 1) * ocg * kp)
            .unwrap_or(&[]);
        let mut e = |r: usize, s: [&[i64]; W]| emit(grp * ocg + r, s);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `grid` is Some only with AVX-512BW or AVX2; the bounds were checked
        // above.
        unsafe {
            group_sums::<W>(g, &gr, xs, b, w_grp, pre, grp, ocg, &mut e)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (&gr, b, w_grp, pre, &mut e);
    }
    true
}

/// The sums of rows [0, m) of one group on `W` inputs ([`conv_fused`]), handed to
/// `emit(row, sums)`. `pre`: the group's weight pair words ([`forward_pairs`]),
/// or empty to build them per block of rows.
///
/// # Safety
/// AVX-512BW or AVX2 must be present ([`grid`] is Some), `gr` must be `g`'s grid,
/// and 2·max|w_grp|·bmax[i] < 2^31 for every input i (`bmax[i]`: max |x_i| over the
/// group's channels).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn group_sums<const W: usize>(
    g: &ConvGeom,
    gr: &Grid,
    xs: [&[i16]; W],
    bmax: [i64; W],
    w_grp: &[i16],
    pre: &[i32],
    grp: usize,
    m: usize,
    emit: &mut impl FnMut(usize, [&[i64]; W]),
) {
    if gemm::avx512() {
        group_sums_avx512::<W>(g, gr, xs, bmax, w_grp, pre, grp, m, emit)
    } else {
        group_sums_avx2::<W>(g, gr, xs, bmax, w_grp, pre, grp, m, emit)
    }
}

/// [`group_sums_body`] compiled for AVX-512BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
#[allow(clippy::too_many_arguments)]
unsafe fn group_sums_avx512<const W: usize>(
    g: &ConvGeom,
    gr: &Grid,
    xs: [&[i16]; W],
    bmax: [i64; W],
    w_grp: &[i16],
    pre: &[i32],
    grp: usize,
    m: usize,
    emit: &mut impl FnMut(usize, [&[i64]; W]),
) {
    group_sums_body::<W, true>(g, gr, xs, bmax, w_grp, pre, grp, m, emit)
}

/// [`group_sums_body`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn group_sums_avx2<const W: usize>(
    g: &ConvGeom,
    gr: &Grid,
    xs: [&[i16]; W],
    bmax: [i64; W],
    w_grp: &[i16],
    pre: &[i32],
    grp: usize,
    m: usize,
    emit: &mut impl FnMut(usize, [&[i64]; W]),
) {
    group_sums_body::<W, false>(g, gr, xs, bmax, w_grp, pre, grp, m, emit)
}

/// The body of [`group_sums`]: A512 picks the AVX-512 kernels, else AVX2's.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn group_sums_body<const W: usize, const A512: bool>(
    g: &ConvGeom,
    gr: &Grid,
    xs: [&[i16]; W],
    bmax: [i64; W],
    w_grp: &[i16],
    pre: &[i32],
    grp: usize,
    m: usize,
    emit: &mut impl FnMut(usize, [&[i64]; W]),
) {
    let (icg, k, d, pad) = (g.icg(), g.k, g.dil, g.pad);
    let kk = g.fan_in();
    let plane_len = g.in_h * g.in_w;
    let cpn = icg.div_ceil(2);
    let (n, nq, ow) = (g.out_h * g.out_w, gr.nq, g.out_w);
    let span = cpn * gr.plane;
    BUFS.with_borrow_mut(|b| {
        // Per input, channel pairs (2cp, 2cp + 1) interleaved into words, padded. Every
        // word of each plane is written once (border zeros included), so the buffer
        // needs no clearing first.
        if b.xp.len() < W * span {
            b.xp.resize(W * span, 0);
        }
        let hp = g.in_h + 2 * pad;
        for (i, x) in xs.iter().enumerate() {
            if bmax[i] == 0 {
                // All zero: its sums are zero and the kernel never reads it.
                continue;
            }
            let xg = &x[grp * icg * plane_len..(grp + 1) * icg * plane_len];
            let xp = &mut b.xp[i * span..(i + 1) * span];
            for (cp, plane) in xp.chunks_exact_mut(gr.plane).enumerate() {
                let lo = &xg[2 * cp * plane_len..(2 * cp + 1) * plane_len];
                // Channel 2cp + 1, or zeros past an odd channel count.
                let hi = xg.get((2 * cp + 1) * plane_len..(2 * cp + 2) * plane_len);
                let (rows, slack) = plane.split_at_mut(hp * gr.wp);
                slack.fill(0);
                for (py, prow) in rows.chunks_exact_mut(gr.wp).enumerate() {
                    if py < pad || py >= pad + g.in_h {
                        prow.fill(0);
                        continue;
                    }
                    let iy = py - pad;
                    prow[..pad].fill(0);
                    prow[pad + g.in_w..].fill(0);
                    let dst = &mut prow[pad..pad + g.in_w];
                    let l = &lo[iy * g.in_w..(iy + 1) * g.in_w];
                    match hi {
                        Some(hi) => {
                            let h = &hi[iy * g.in_w..(iy + 1) * g.in_w];
                            for ((dw, &a), &c) in dst.iter_mut().zip(l).zip(h) {
                                *dw = a as u16 as u32 | (c as u16 as u32) << 16;
                            }
                        }
                        None => {
                            for (dw, &a) in dst.iter_mut().zip(l) {
                                *dw = a as u16 as u32;
                            }
                        }
                    }
                }
            }
        }
        b.off.clear();
        for cp in 0..cpn {
            for ky in 0..k {
                for kx in 0..k {
                    b.off.push(cp * gr.plane + ky * d * gr.wp + kx * d);
                }
            }
        }
        let kp = b.off.len();
        // The kernel writes every word of its r × nq output, per input.
        if b.row32.len() < W * 4 * nq {
            b.row32.resize(W * 4 * nq, 0);
        }
        b.row64.resize(W * 4 * n, 0);
        b.seg.resize(W * n, 0);
        let xp_all = gemm::as_i32(&b.xp);
        let mut first = 0;
        while first < m {
            let r = if m - first >= 4 { 4 } else { 1 };
            let wr = &w_grp[first * kk..(first + r) * kk];
            let ap_blk: &[i32] = if pre.is_empty() {
                weight_pairs(wr, r, icg, k, &mut b.ap);
                &b.ap
            } else {
                &pre[first * kp..(first + r) * kp]
            };
            // Σ|w| of the block's largest row: its bound against every input.
            let wsum = wr
                .chunks_exact(kk)
                .map(|row| gemm::row_bound(row, 1))
                .max()
                .unwrap_or(0);
            let mut chunked = [false; W];
            for i in 0..W {
                let out32 = &mut b.row32[i * 4 * nq..][..r * nq];
                if bmax[i] == 0 {
                    // All-zero input (the first layer's residual words): zero sums.
                    out32.fill(0);
                    gemm::count_rows(r as u64);
                    continue;
                }
                b.chunks.clear();
                if wsum * bmax[i] < I32_LIMIT {
                    b.chunks.push((0, kp));
                } else {
                    pair_word_chunks(ap_blk, r, kp, bmax[i], &mut b.pw, &mut b.chunks);
                }
                chunked[i] = b.chunks.len() > 1;
                let xp = &xp_all[i * span..(i + 1) * span];
                for (ci, &(j0, j1)) in b.chunks.iter().enumerate() {
                    let ap: &[i32] = if b.chunks.len() == 1 {
                        ap_blk
                    } else {
                        b.ap2.clear();
                        for row in ap_blk.chunks_exact(kp) {
                            b.ap2.extend_from_slice(&row[j0..j1]);
                        }
                        &b.ap2
                    };
                    let off = &b.off[j0..j1];
                    // SAFETY: AVX-512BW (A512) or AVX2 present (caller); every window
                    // off[j] + nq ends inside xp (the plane's slack covers the last
                    // row's taps, see `grid`).
                    unsafe {
                        match (A512, r == 4) {
                            (true, true) => gemm::rows_avx512::<4>(ap, off, xp, nq, out32),
                            (true, false) => gemm::rows_avx512::<1>(ap, off, xp, nq, out32),
                            (false, true) => gemm::rows_avx2::<4>(ap, off, xp, nq, out32),
                            (false, false) => gemm::rows_avx2::<1>(ap, off, xp, nq, out32),
                        }
                    }
                    if chunked[i] {
                        for rr in 0..r {
                            let c64 = &mut b.row64[i * 4 * n + rr * n..][..n];
                            let s = &out32[rr * nq..(rr + 1) * nq];
                            if A512 {
                                widen(c64, s, ow, gr.wp, ci > 0);
                            } else {
                                widen_plain(c64, s, ow, gr.wp, ci > 0);
                            }
                        }
                    }
                }
                if chunked[i] {
                    gemm::count_chunked(r as u64);
                } else {
                    gemm::count_rows(r as u64);
                }
            }
            for rr in 0..r {
                for i in 0..W {
                    if !chunked[i] {
                        // The row's sums without the junk columns, as i64.
                        let src = &b.row32[i * 4 * nq + rr * nq..][..nq];
                        let dst = &mut b.seg[i * n..(i + 1) * n];
                        for (dr, sr) in dst.chunks_exact_mut(ow).zip(src.chunks(gr.wp)) {
                            for (d, &v) in dr.iter_mut().zip(sr) {
                                *d = v as i64;
                            }
                        }
                    }
                }
                let sums: [&[i64]; W] = std::array::from_fn(|i| {
                    if chunked[i] {
                        &b.row64[i * 4 * n + rr * n..][..n]
                    } else {
                        &b.seg[i * n..(i + 1) * n]
                    }
                });
                emit(first + rr, sums);
            }
            first += r;
        }
    });
}

/// c (=, or += with `add`) the sums of one output channel on the padded grid `s`
/// (rows of wp words), without the junk columns, widened to i64.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn widen(c: &mut [i64], s: &[i32], out_w: usize, wp: usize, add: bool) {
    use std::arch::x86_64::*;
    for (cr, sr) in c.chunks_exact_mut(out_w).zip(s.chunks(wp)) {
        let mut x = 0;
        while x < out_w {
            let k = (out_w - x).min(8);
            let m = ((1u32 << k) - 1) as u16;
            // SAFETY: lanes ≥ k are masked off, so only cr[x..x + k], sr[x..x + k] move.
            let v = _mm512_maskz_loadu_epi32(m, sr.as_ptr().add(x));
            let mut w = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
            if add {
                w = _mm512_add_epi64(w, _mm512_maskz_loadu_epi64(m as u8, cr.as_ptr().add(x)));
            }
            _mm512_mask_storeu_epi64(cr.as_mut_ptr().add(x), m as u8, w);
            x += 8;
        }
    }
}

/// [`widen`] without AVX-512 (inlined into the AVX2 body, where it vectorizes).
#[inline(always)]
fn widen_plain(c: &mut [i64], s: &[i32], out_w: usize, wp: usize, add: bool) {
    for (cr, sr) in c.chunks_exact_mut(out_w).zip(s.chunks(wp)) {
        if add {
            cr.iter_mut().zip(sr).for_each(|(d, &v)| *d += v as i64);
        } else {
            cr.iter_mut().zip(sr).for_each(|(d, &v)| *d = v as i64);
        }
    }
}

/// Cut the kp pair words of `r` rows (row-major) into chunks [j0, j1) such that in
/// every chunk and row Σ (|lo| + |hi|) · bmax < 2^31, so each chunk's i32 lane sums
/// are exact. The caller checked that every pair alone is below 2^31.
#[inline(always)]
fn pair_word_chunks(
    ap: &[i32],
    r: usize,
    kp: usize,
    bmax: i64,
    pw: &mut Vec<i32>,
    out: &mut Vec<(usize, usize)>,
) {
    // Per pair, the largest |lo| + |hi| over the rows (≤ 2^16, so i32; vectorizes).
    pw.clear();
    pw.resize(kp, 0);
    for row in ap.chunks_exact(kp).take(r) {
        for (p, &v) in pw.iter_mut().zip(row) {
            let w = (v as i16 as i32).abs() + ((v >> 16) as i16 as i32).abs();
            *p = (*p).max(w);
        }
    }
    let (mut start, mut acc) = (0, 0i64);
    for (j, &p) in pw.iter().enumerate() {
        let w = p as i64 * bmax;
        debug_assert!(w < I32_LIMIT);
        if acc + w >= I32_LIMIT {
            out.push((start, j));
            start = j;
            acc = 0;
        }
        acc += w;
    }
    out.push((start, kp));
}

/// The pair words of every weight row of a conv, group after group, in the layout
/// the direct forward reads ([`weight_pairs`]); [`conv_fused`] takes them so the
/// trainer builds them once per step instead of once per sample. Empty for convs the
/// direct path never takes (stride ≠ 1).
pub fn forward_pairs(g: &ConvGeom, w: &[i16]) -> Vec<i32> {
    if g.stride != 1 {
        return Vec::new();
    }
    let (kk, ocg) = (g.fan_in(), g.out_c / g.groups);
    let (mut out, mut tmp) = (Vec::new(), Vec::new());
    for wg in w.chunks_exact(ocg * kk).take(g.groups) {
        weight_pairs(wg, ocg, g.icg(), g.k, &mut tmp);
        out.extend_from_slice(&tmp);
    }
    out
}

/// Pair words of `r` weight rows (each icg·k·k taps, (ic, ky, kx) order) over
/// channel pairs, row-major: entry row·kp + (cp·k + ky)·k + kx holds the taps of
/// channels 2cp and 2cp + 1 (0 past icg), the order of the window offsets.
#[inline(always)]
fn weight_pairs(w: &[i16], r: usize, icg: usize, k: usize, ap: &mut Vec<i32>) {
    let kk = icg * k * k;
    let k2 = k * k;
    let kp = icg.div_ceil(2) * k2;
    ap.clear();
    ap.resize(kp * r, 0);
    for (dst, wr) in ap.chunks_exact_mut(kp).zip(w.chunks_exact(kk)) {
        for (d2, pair) in dst.chunks_exact_mut(k2).zip(wr.chunks(2 * k2)) {
            let (lo, hi) = pair.split_at(k2.min(pair.len()));
            if hi.is_empty() {
                for (d, &l) in d2.iter_mut().zip(lo) {
                    *d = l as u16 as i32;
                }
            } else {
                for ((d, &l), &h) in d2.iter_mut().zip(lo).zip(hi) {
                    *d = (l as u16 as u32 | (h as u16 as u32) << 16) as i32;
                }
            }
        }
    }
}

/// gw_grp (m×K) += E_grp (m×n) · im2col_grp(x)ᵀ for a stride-1 conv, on AVX-512:
/// false (gw untouched) when the direct path does not apply.
pub fn wgrad_group(
    g: &ConvGeom,
    e_grp: &[i16],
    x: &[i16],
    grp: usize,
    m: usize,
    gw: &mut [i64],
) -> bool {
    match grid(g) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `grid` is Some only with AVX-512BW or AVX2.
        Some(gr) => unsafe {
            if gemm::avx512() {
                wgrad_group_avx512(g, &gr, e_grp, x, grp, m, gw)
            } else {
                wgrad_group_avx2(g, &gr, e_grp, x, grp, m, gw)
            }
        },
        _ => false,
    }
}

/// [`wgrad_group`]'s body compiled for AVX-512, so its copies vectorize too.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn wgrad_group_avx512(
    g: &ConvGeom,
    gr: &Grid,
    e_grp: &[i16],
    x: &[i16],
    grp: usize,
    m: usize,
    gw: &mut [i64],
) -> bool {
    wgrad_group_body::<true>(g, gr, e_grp, x, grp, m, gw)
}

/// [`wgrad_group`]'s body compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn wgrad_group_avx2(
    g: &ConvGeom,
    gr: &Grid,
    e_grp: &[i16],
    x: &[i16],
    grp: usize,
    m: usize,
    gw: &mut [i64],
) -> bool {
    wgrad_group_body::<false>(g, gr, e_grp, x, grp, m, gw)
}

/// The body of [`wgrad_group`]: A512 picks the AVX-512 block kernel, else AVX2's.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn wgrad_group_body<const A512: bool>(
    g: &ConvGeom,
    gr: &Grid,
    e_grp: &[i16],
    x: &[i16],
    grp: usize,
    m: usize,
    gw: &mut [i64],
) -> bool {
    {
        let (icg, k, d, pad) = (g.icg(), g.k, g.dil, g.pad);
        let kk = g.fan_in();
        let n = g.out_h * g.out_w;
        let plane_len = g.in_h * g.in_w;
        let xg = &x[grp * icg * plane_len..(grp + 1) * icg * plane_len];
        let bmax = gemm::max_abs(xg);
        if (0..m).any(|r| gemm::row_bound(&e_grp[r * n..(r + 1) * n], bmax) >= I32_LIMIT) {
            return false;
        }
        // Rows of 32 words: the grid rounded up, plus one zero row for padding blocks.
        let nq32 = gr.nq.div_ceil(32) * 32;
        BUFS.with_borrow_mut(|b| {
            // The input as padded i16 planes (kept in the u32 buffer's bytes).
            let words = (icg * gr.plane).div_ceil(2) + 16;
            b.xp.clear();
            b.xp.resize(words, 0);
            // SAFETY: the u32 buffer viewed as twice as many i16 (any bits valid).
            let xpad: &mut [i16] =
                unsafe { std::slice::from_raw_parts_mut(b.xp.as_mut_ptr() as *mut i16, words * 2) };
            for icl in 0..icg {
                let src = &xg[icl * plane_len..(icl + 1) * plane_len];
                for (iy, srow) in src.chunks_exact(g.in_w).enumerate() {
                    let at = icl * gr.plane + (iy + pad) * gr.wp + pad;
                    xpad[at..at + g.in_w].copy_from_slice(srow);
                }
            }
            b.ep.clear();
            b.ep.resize((m + 1) * nq32, 0);
            for r in 0..m {
                let src = &e_grp[r * n..(r + 1) * n];
                let dst = &mut b.ep[r * nq32..(r + 1) * nq32];
                for (dr, sr) in dst.chunks_mut(gr.wp).zip(src.chunks_exact(g.out_w)) {
                    dr[..g.out_w].copy_from_slice(sr);
                }
            }
            b.off.clear();
            for icl in 0..icg {
                for ky in 0..k {
                    for kx in 0..k {
                        b.off.push(icl * gr.plane + ky * d * gr.wp + kx * d);
                    }
                }
            }
            let xpad: &[i16] = xpad;
            debug_assert!(b.off.iter().all(|&o| o + nq32 <= xpad.len()));
            let zero_row = m;
            let vnni = gemm::vnni();
            let mut sums = [[0i32; 4]; 4];
            for r0 in (0..m).step_by(4) {
                let rows = [0, 1, 2, 3].map(|i| if r0 + i < m { r0 + i } else { zero_row });
                let e4 = rows.map(|r| &b.ep[r * nq32..(r + 1) * nq32]);
                for t0 in (0..kk).step_by(4) {
                    let taps = [0, 1, 2, 3].map(|i| b.off[(t0 + i).min(kk - 1)]);
                    // SAFETY: AVX-512BW (A512) or AVX2 detected; every window taps[i] +
                    // nq32 is inside xpad (checked above), and each e row has nq32 words.
                    unsafe {
                        if !A512 {
                            wgrad_block_avx2(&e4, xpad, &taps, nq32, &mut sums)
                        } else if vnni {
                            wgrad_block_vnni(&e4, xpad, &taps, nq32, &mut sums)
                        } else {
                            wgrad_block_plain(&e4, xpad, &taps, nq32, &mut sums)
                        }
                    };
                    let nt = (kk - t0).min(4);
                    for (i, srow) in sums.iter().enumerate().take(m - r0) {
                        let dst = &mut gw[(r0 + i) * kk + t0..][..nt];
                        if let Ok(d4) = <&mut [i64; 4]>::try_from(&mut *dst) {
                            // Four taps: a fixed-size add, one vector op.
                            for (d, &v) in d4.iter_mut().zip(srow) {
                                *d += v as i64;
                            }
                        } else {
                            dst.iter_mut().zip(srow).for_each(|(d, &v)| *d += v as i64);
                        }
                    }
                }
                gemm::count_rows(rows.iter().filter(|&&r| r != zero_row).count() as u64);
            }
        });
        true
    }
}

/// [`wgrad_block`] without VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn wgrad_block_plain(
    e4: &[&[i16]; 4],
    xpad: &[i16],
    taps: &[usize; 4],
    len: usize,
    sums: &mut [[i32; 4]; 4],
) {
    wgrad_block::<false>(e4, xpad, taps, len, sums)
}

/// [`wgrad_block`] with VNNI (`vpdpwssd`, same sums: see [`gemm::vnni`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,avx512vnni")]
unsafe fn wgrad_block_vnni(
    e4: &[&[i16]; 4],
    xpad: &[i16],
    taps: &[usize; 4],
    len: usize,
    sums: &mut [[i32; 4]; 4],
) {
    wgrad_block::<true>(e4, xpad, taps, len, sums)
}

/// Four error rows against four tap windows of the padded input: sums[r][t] =
/// Σ_q e_r[q] · xpad[taps[t] + q] over q < len (a multiple of 32), in i32 (the
/// caller proved Σ|e_r| · max|x| < 2^31).
///
/// # Safety
/// AVX-512BW must be present; each e row has `len` words and every window
/// `taps[t] .. taps[t] + len` is inside `xpad`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn wgrad_block<const V: bool>(
    e4: &[&[i16]; 4],
    xpad: &[i16],
    taps: &[usize; 4],
    len: usize,
    sums: &mut [[i32; 4]; 4],
) {
    use std::arch::x86_64::*;
    let mut s = [[_mm512_setzero_si512(); 4]; 4];
    let mut q = 0;
    while q < len {
        let xv = taps.map(|t| _mm512_loadu_si512(xpad.as_ptr().add(t + q) as *const _));
        for r in 0..4 {
            let ev = _mm512_loadu_si512(e4[r].as_ptr().add(q) as *const _);
            for t in 0..4 {
                s[r][t] = gemm::dot_add::<V>(s[r][t], ev, xv[t]);
            }
        }
        q += 32;
    }
    // Sixteen horizontal sums at once: unpacks fold each row's four accumulators
    // into one register of per-128-bit-lane partial sums, then the four lanes add.
    // (Every partial sum is a sum of some of the products, so below 2^31 too.)
    for r in 0..4 {
        let [a, b, c, d] = s[r];
        let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
        // Per 128-bit lane: [Σa, Σb, Σc, Σd] over that lane's elements.
        let z = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
        let h = _mm256_add_epi32(_mm512_castsi512_si256(z), _mm512_extracti64x4_epi64::<1>(z));
        let q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        _mm_storeu_si128(sums[r].as_mut_ptr() as *mut __m128i, q);
    }
}

/// [`wgrad_block`] on AVX2: the same sums. Sixteen 8-lane sums would not leave
/// registers for the loads, so the four taps go in two halves of two (eight sums,
/// two input windows and one error vector live), each error vector loaded twice.
///
/// # Safety
/// AVX2 must be present; each e row has `len` words (a multiple of 32) and every
/// window `taps[t] .. taps[t] + len` is inside `xpad`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn wgrad_block_avx2(
    e4: &[&[i16]; 4],
    xpad: &[i16],
    taps: &[usize; 4],
    len: usize,
    sums: &mut [[i32; 4]; 4],
) {
    use std::arch::x86_64::*;
    for half in 0..2 {
        let (t0, t1) = (taps[2 * half], taps[2 * half + 1]);
        let mut s = [[_mm256_setzero_si256(); 2]; 4];
        let mut q = 0;
        while q < len {
            let x0 = _mm256_loadu_si256(xpad.as_ptr().add(t0 + q) as *const __m256i);
            let x1 = _mm256_loadu_si256(xpad.as_ptr().add(t1 + q) as *const __m256i);
            for r in 0..4 {
                let ev = _mm256_loadu_si256(e4[r].as_ptr().add(q) as *const __m256i);
                s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(ev, x0));
                s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(ev, x1));
            }
            q += 16;
        }
        // Two horizontal sums per row at once (each partial sum is a sum of some of
        // the products, so below 2^31 too): lanes [a0+a2, b0+b2, a1+a3, b1+b3] per
        // 128-bit half, then the pairs, then the halves.
        for r in 0..4 {
            let [a, b] = s[r];
            let ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
            let t = _mm256_add_epi32(ab, _mm256_shuffle_epi32::<0b01_00_11_10>(ab));
            let h = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
            sums[r][2 * half] = _mm_cvtsi128_si32(h);
            sums[r][2 * half + 1] = _mm_extract_epi32::<1>(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, SeedableRng};

    /// Whether this thread's products take the direct kernels (AVX-512BW or AVX2).
    fn direct_isa() -> bool {
        gemm::avx512() || gemm::avx2()
    }

    /// Random stride-1 geometries (odd and even channel counts per group, dilation,
    /// padding 0..2, kernels 1..5, maps from 3×3 to 30×30, so the padded grid spans
    /// partial and several 64-column blocks), values small enough for the direct
    /// path: its sums must equal an independent tap-by-tap i64 sum, for every group.
    #[test]
    fn direct_forward_and_weight_gradient_equal_tap_by_tap_sums() {
        // AVX2, AVX-512 without VNNI, then the best level (VNNI where present); a
        // level the machine lacks runs the next lower one.
        for level in [1, 2, 3] {
            gemm::limit_isa(level);
            direct_cases();
        }
    }

    fn direct_cases() {
        let mut rng = Rng::seed_from_u64(21);
        let mut ran = 0;
        let mut chunked = 0;
        for case in 0..60 {
            let groups = 1 + rng.below(3) as usize;
            let icg = 1 + rng.below(5) as usize;
            let ocg = 1 + rng.below(9) as usize;
            let k = [1, 3, 3, 5][rng.below(4) as usize];
            let dil = 1 + rng.below(2) as usize;
            let pad = rng.below(3) as usize;
            let h = 3 + rng.below(28) as usize;
            let w = 3 + rng.below(28) as usize;
            let Ok(g) = ConvGeom::new(groups * icg, h, w, groups * ocg, k, 1, pad, dil, groups)
            else {
                continue;
            };
            // Odd cases: inputs over the whole i16 range (the wide residual words),
            // so the forward contraction must run in chunks.
            let span = if case % 2 == 1 { 32768 } else { 3000 };
            let x: Vec<i16> = (0..g.in_len())
                .map(|_| rng.range_i64(-span, span - 1) as i16)
                .collect();
            let wt: Vec<i16> = (0..g.w_len())
                .map(|_| rng.range_i64(-2000, 2000) as i16)
                .collect();
            let e: Vec<i16> = (0..g.out_len())
                .map(|_| rng.range_i64(-60, 60) as i16)
                .collect();
            let (mut y, mut gw) = (vec![0i64; g.out_len()], vec![0i64; g.w_len()]);
            g.for_each_tap(|o, i, wi| {
                y[o] += x[i] as i64 * wt[wi] as i64;
                gw[wi] += e[o] as i64 * x[i] as i64;
            });
            let (kk, n) = (g.fan_in(), g.out_h * g.out_w);
            // The fused pass on two inputs sharing the weights: x and a second input
            // (all zero every third case, as the first layer's residual words).
            let x2: Vec<i16> = (0..g.in_len())
                .map(|_| match case % 3 {
                    0 => 0,
                    _ => rng.range_i64(-span, span - 1) as i16,
                })
                .collect();
            let mut y2 = vec![0i64; g.out_len()];
            g.for_each_tap(|o, i, wi| y2[o] += x2[i] as i64 * wt[wi] as i64);
            let (mut f1, mut f2) = (vec![-1i64; g.out_len()], vec![-1i64; g.out_len()]);
            // Weight pair words prepared once (as the trainer does) in half the cases.
            let pairs = match case % 4 < 2 {
                true => forward_pairs(&g, &wt),
                false => Vec::new(),
            };
            let took = conv_fused(&g, [&x, &x2], &wt, &pairs, |oc, [s1, s2]| {
                f1[oc * n..(oc + 1) * n].copy_from_slice(s1);
                f2[oc * n..(oc + 1) * n].copy_from_slice(s2);
            });
            assert_eq!(took, direct_isa(), "case {case} {g:?}");
            if took {
                assert_eq!(f1, y, "fused, first input: case {case} {g:?}");
                assert_eq!(f2, y2, "fused, second input: case {case} {g:?}");
            }
            for grp in 0..groups {
                let wg = &wt[grp * ocg * kk..(grp + 1) * ocg * kk];
                let mut c = vec![-1i64; ocg * n];
                let took = conv_group(&g, &x, wg, grp, ocg, &mut c);
                let xg = &x[grp * g.icg() * g.in_h * g.in_w..][..g.icg() * g.in_h * g.in_w];
                let bmax = xg.iter().map(|&v| (v as i64).abs()).max().unwrap_or(0);
                let sum_abs = |r: &[i16]| r.iter().map(|&v| (v as i64).abs()).sum::<i64>();
                chunked += wg.chunks(kk).any(|r| sum_abs(r) * bmax >= I32_LIMIT) as usize;
                assert_eq!(took, direct_isa(), "case {case} {g:?}");
                if took {
                    assert_eq!(
                        c,
                        y[grp * ocg * n..(grp + 1) * ocg * n],
                        "case {case} {g:?}"
                    );
                }
                let eg = &e[grp * ocg * n..(grp + 1) * ocg * n];
                let mut acc = vec![7i64; ocg * kk];
                if wgrad_group(&g, eg, &x, grp, ocg, &mut acc) {
                    let want: Vec<i64> = gw[grp * ocg * kk..(grp + 1) * ocg * kk]
                        .iter()
                        .map(|v| v + 7)
                        .collect();
                    assert_eq!(acc, want, "case {case} {g:?}");
                    ran += 1;
                }
            }
        }
        if direct_isa() {
            assert!(ran > 30, "only {ran} direct weight gradients ran");
            assert!(chunked > 5, "only {chunked} forward groups needed chunks");
        }
    }

    /// A forward whose single tap pair could reach 2^31 (−32768 operands), and a
    /// weight gradient whose row bound reaches 2^31, are refused (the packed path,
    /// with its chunks and i64 rows, takes them), and so are strided convs; forward
    /// rows whose sums pass 2^31 run in chunks, exactly.
    #[test]
    fn direct_path_chunks_or_refuses_rows_that_could_overflow() {
        let g = ConvGeom::new(2, 8, 8, 4, 3, 1, 1, 1, 1).unwrap();
        let x = vec![-32768i16; g.in_len()];
        let w = vec![-32768i16; g.w_len()];
        let mut c = vec![0i64; g.out_len()];
        assert!(!conv_group(&g, &x, &w, 0, 4, &mut c));
        let mut gw = vec![0i64; g.w_len()];
        assert!(!wgrad_group(
            &g,
            &vec![32767; g.out_len()],
            &x,
            0,
            4,
            &mut gw
        ));
        assert!(c.iter().chain(&gw).all(|&v| v == 0), "a refused call wrote");
        // Same-sign extremes: every product near 2^30, so only chunks of one pair are
        // exact in i32; the sums must still equal the tap-by-tap i64 sums.
        let h = ConvGeom::new(4, 10, 10, 5, 3, 1, 1, 1, 1).unwrap();
        let x = vec![32767i16; h.in_len()];
        let w: Vec<i16> = (0..h.w_len()).map(|i| 30000 - (i % 7) as i16).collect();
        let mut want = vec![0i64; h.out_len()];
        h.for_each_tap(|o, i, wi| want[o] += x[i] as i64 * w[wi] as i64);
        let mut c = vec![0i64; h.out_len()];
        if direct_isa() {
            assert!(conv_group(&h, &x, &w, 0, 5, &mut c));
            assert_eq!(c, want);
        }
        let s = ConvGeom::new(2, 8, 8, 4, 3, 2, 1, 1, 1).unwrap();
        let small = vec![1i16; s.w_len()];
        let mut c = vec![0i64; s.out_len()];
        assert!(!conv_group(&s, &vec![1; s.in_len()], &small, 0, 4, &mut c));
    }
}
