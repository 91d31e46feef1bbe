//! Fast kernels behind the layer operations: im2col / col2im and two matrix products
//! on 16-bit values with exact integer results.
//!
//! Exactness: every product below returns the exact i64 sums. The SIMD path adds
//! pairs of i16 products into i32 lanes (`vpmaddwd`), which is exact as long as no
//! partial sum leaves the i32 range. For each output row the contraction is cut into
//! chunks whose bound Σ_k |a_k| · max|b| is below 2^31 (one chunk almost always);
//! each chunk runs in SIMD and is added into the i64 sums. Only a row with a single
//! pair that could overflow (−32768 operands) is computed with i64 scalar
//! arithmetic. So results are identical on every machine, with or without AVX2.

use super::ops::ConvGeom;

/// im2col of group `grp`: `col[(ic_l·k + ky)·k + kx][oy·out_w + ox]`, zero where the
/// tap falls into padding.
pub fn im2col<T: Copy + Default>(g: &ConvGeom, x: &[T], grp: usize, col: &mut Vec<T>) {
    let n = g.out_h * g.out_w;
    let k = g.fan_in();
    col.clear();
    col.resize(k * n, T::default());
    for (r, row) in col.chunks_mut(n).enumerate() {
        im2col_row(g, x, grp, r, row);
    }
}

/// col2im of group `grp`: add `dcol` (layout of [`im2col`]) into the input-shaped `acc`.
pub fn col2im_add<A: Copy + std::ops::AddAssign>(
    g: &ConvGeom,
    dcol: &[A],
    grp: usize,
    acc: &mut [A],
) {
    let icg = g.icg();
    let n = g.out_h * g.out_w;
    for icl in 0..icg {
        let ic = grp * icg + icl;
        let plane = &mut acc[ic * g.in_h * g.in_w..(ic + 1) * g.in_h * g.in_w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = &dcol[((icl * g.k + ky) * g.k + kx) * n..][..n];
                for oy in 0..g.out_h {
                    let iy = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.in_h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
                    let src = &row[oy * g.out_w..(oy + 1) * g.out_w];
                    if g.stride == 1 {
                        let off = (kx * g.dil) as isize - g.pad as isize;
                        let lo = (-off).max(0) as usize;
                        let hi = ((g.in_w as isize - off).min(g.out_w as isize)).max(0) as usize;
                        if lo < hi {
                            let d = &mut dst
                                [(lo as isize + off) as usize..(hi as isize + off) as usize];
                            for (x, &v) in d.iter_mut().zip(&src[lo..hi]) {
                                *x += v;
                            }
                        }
                    } else {
                        for (ox, &v) in src.iter().enumerate() {
                            let ix = (ox * g.stride + kx * g.dil) as isize - g.pad as isize;
                            if ix >= 0 && (ix as usize) < g.in_w {
                                dst[ix as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) const I32_LIMIT: i64 = 1 << 31;

use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// Per-thread packing buffer and i32 row buffer, reused across calls so large
    /// products do not page-fault fresh memory every time.
    static BUFS: std::cell::RefCell<(Vec<u32>, Vec<i32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

#[inline]
pub(super) fn max_abs(b: &[i16]) -> i64 {
    // i32 arithmetic vectorizes; |−32768| fits.
    b.iter().map(|&v| (v as i32).abs()).max().unwrap_or(0) as i64
}

/// [`max_abs`], vectorized for AVX-512 or AVX2 where this thread's products run on it.
pub(super) fn max_abs_fast(b: &[i16]) -> i64 {
    /// [`max_abs`] compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw")]
    unsafe fn on_avx512(b: &[i16]) -> i64 {
        max_abs(b)
    }
    /// [`max_abs`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn on_avx2(b: &[i16]) -> i64 {
        max_abs(b)
    }
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: AVX-512BW detected.
        return unsafe { on_avx512(b) };
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 detected.
        return unsafe { on_avx2(b) };
    }
    max_abs(b)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

thread_local! {
    /// Test hook: run this thread's products on a lower instruction set.
    static CAP: std::cell::Cell<u8> = const { std::cell::Cell::new(3) };
}

/// Limit this thread's products to an instruction set: 0 scalar, 1 AVX2, 2 AVX-512BW
/// without VNNI, 3 the best available (default). Results are identical on every
/// level; tests use this to check exactly that.
pub fn limit_isa(level: u8) {
    CAP.with(|c| c.set(level));
}

/// This thread's instruction-set limit ([`limit_isa`]): worker threads take their
/// caller's, so a limit set by a test holds for a whole training step.
pub fn isa_limit() -> u8 {
    CAP.with(|c| c.get())
}

fn isa() -> Isa {
    let cap = CAP.with(|c| c.get());
    if cap == 0 {
        return Isa::Scalar;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if cap >= 2 && std::arch::is_x86_feature_detected!("avx512bw") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// C (m×n) = A (m×k) · B (k×n), exact, i16 inputs, i64 outputs (overwritten).
pub fn gemm_i16(a: &[i16], b: &[i16], m: usize, k: usize, n: usize, c: &mut [i64]) {
    debug_assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    c[..m * n].iter_mut().for_each(|v| *v = 0);
    if m == 1 {
        // One row (the dense layer's backward-data product): c = Σ_t a[t]·B[t], exact
        // in i64. Packing B would cost more than these k·n products.
        for (&at, brow) in a[..k].iter().zip(b.chunks_exact(n)) {
            for (cj, &bv) in c[..n].iter_mut().zip(brow) {
                *cj += at as i64 * bv as i64;
            }
        }
        return;
    }
    BUFS.with_borrow_mut(|(packed, row32)| {
        let bmax = pack_pairs(b, k, n, packed);
        packed_product(a, bmax, as_i16(packed), m, k, n, c, isa(), row32);
    });
}

/// C (m×n) += A (m×k) · B where B (k×n) is given pair-packed ([`pack_pairs`] layout)
/// with a bound `bmax` ≥ max |B|.
pub fn gemm_packed_i16(
    a: &[i16],
    packed: &[u32],
    bmax: i64,
    m: usize,
    k: usize,
    n: usize,
    c: &mut [i64],
) {
    BUFS.with_borrow_mut(|(_, row32)| {
        packed_product(a, bmax, as_i16(packed), m, k, n, c, isa(), row32)
    });
}

thread_local! {
    /// Per-thread buffers of the fused im2col + packing.
    static PACK: std::cell::RefCell<(Vec<u32>, Vec<i16>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// c (m×n, overwritten) = W_grp (m×K) · im2col_grp(x): one group of a forward conv,
/// with im2col fused into the packing.
pub fn conv_group_i16(g: &ConvGeom, x: &[i16], w_grp: &[i16], grp: usize, m: usize, c: &mut [i64]) {
    if super::direct::conv_group(g, x, w_grp, grp, m, c) {
        return;
    }
    let n = g.out_h * g.out_w;
    let k = g.fan_in();
    c[..m * n].iter_mut().for_each(|v| *v = 0);
    PACK.with_borrow_mut(|(words, rows)| {
        let bmax = pack_im2col(g, x, grp, words, rows);
        gemm_packed_i16(w_grp, words, bmax, m, k, n, c);
    });
}

/// gw_grp (m×K) += E_grp (m×n) · im2col_grp(x)ᵀ: one group's weight gradient.
pub fn conv_wgrad_group_i16(
    g: &ConvGeom,
    e_grp: &[i16],
    x: &[i16],
    grp: usize,
    m: usize,
    gw: &mut [i64],
) {
    if super::direct::wgrad_group(g, e_grp, x, grp, m, gw) {
        return;
    }
    let n = g.out_h * g.out_w;
    let k = g.fan_in();
    PACK.with_borrow_mut(|(words, rows)| {
        let bmax = pack_im2col_t(g, x, grp, words, rows);
        gemm_packed_i16(e_grp, words, bmax, m, n, k, gw);
    });
}

/// im2col of group `grp` written straight into the pair-packed layout
/// (pairs of tap rows): the operand of the forward product. Returns a bound on |B|
/// (the largest input magnitude).
pub fn pack_im2col(
    g: &ConvGeom,
    x: &[i16],
    grp: usize,
    words: &mut Vec<u32>,
    rows: &mut Vec<i16>,
) -> i64 {
    let icg = g.icg();
    let n = g.out_h * g.out_w;
    let k = icg * g.k * g.k;
    let kp = k.div_ceil(2);
    words.clear();
    words.resize(kp * n, 0);
    let plane_len = g.in_h * g.in_w;
    let bmax = max_abs(&x[grp * icg * plane_len..(grp + 1) * icg * plane_len]);
    rows.clear();
    rows.resize(n, 0);
    for r in 0..k {
        im2col_row(g, x, grp, r, rows);
        let dst = &mut words[(r / 2) * n..(r / 2 + 1) * n];
        if r % 2 == 0 {
            for (d, &v) in dst.iter_mut().zip(rows.iter()) {
                *d = v as u16 as u32;
            }
        } else {
            for (d, &v) in dst.iter_mut().zip(rows.iter()) {
                *d |= (v as u16 as u32) << 16;
            }
        }
    }
    bmax
}

/// im2col of group `grp` transposed and pair-packed along the pixels: the operand of
/// the weight-gradient product (contraction over pixels). Returns a bound on |B|.
pub fn pack_im2col_t(
    g: &ConvGeom,
    x: &[i16],
    grp: usize,
    words: &mut Vec<u32>,
    rows: &mut Vec<i16>,
) -> i64 {
    let icg = g.icg();
    let n = g.out_h * g.out_w;
    let k = icg * g.k * g.k;
    let np = n.div_ceil(2);
    words.clear();
    words.resize(np * k, 0);
    let plane_len = g.in_h * g.in_w;
    let bmax = max_abs(&x[grp * icg * plane_len..(grp + 1) * icg * plane_len]);
    rows.clear();
    rows.resize(n + 1, 0);
    for r in 0..k {
        im2col_row(g, x, grp, r, &mut rows[..n]);
        rows[n] = 0;
        for (j, pr) in rows[..2 * np].chunks_exact(2).enumerate() {
            words[j * k + r] = pr[0] as u16 as u32 | (pr[1] as u16 as u32) << 16;
        }
    }
    bmax
}

/// One row (tap r = (ic_l·k + ky)·k + kx) of the im2col matrix of group `grp`.
fn im2col_row<T: Copy + Default>(g: &ConvGeom, x: &[T], grp: usize, r: usize, row: &mut [T]) {
    let (icl, ky, kx) = (r / (g.k * g.k), (r / g.k) % g.k, r % g.k);
    let ic = grp * g.icg() + icl;
    let plane = &x[ic * g.in_h * g.in_w..(ic + 1) * g.in_h * g.in_w];
    row.iter_mut().for_each(|v| *v = T::default());
    for oy in 0..g.out_h {
        let iy = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
        if iy < 0 || iy >= g.in_h as isize {
            continue;
        }
        let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
        let dst = &mut row[oy * g.out_w..(oy + 1) * g.out_w];
        if g.stride == 1 {
            let off = (kx * g.dil) as isize - g.pad as isize;
            let lo = (-off).max(0) as usize;
            let hi = ((g.in_w as isize - off).min(g.out_w as isize)).max(0) as usize;
            if lo < hi {
                dst[lo..hi].copy_from_slice(
                    &src[(lo as isize + off) as usize..(hi as isize + off) as usize],
                );
            }
        } else {
            for (ox, d) in dst.iter_mut().enumerate() {
                let ix = (ox * g.stride + kx * g.dil) as isize - g.pad as isize;
                if ix >= 0 && (ix as usize) < g.in_w {
                    *d = src[ix as usize];
                }
            }
        }
    }
}

/// C (m×k) += A (m×n) · Bᵀ where B is k×n: exact, i64 outputs.
pub fn gemm_abt_i16(a: &[i16], b: &[i16], m: usize, n: usize, k: usize, c: &mut [i64]) {
    if m == 1 {
        // One row (the dense layer's forward): k dot products, exact in i64. Packing
        // Bᵀ would cost more than these k·n products.
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: AVX-512BW detected.
            unsafe { dots_avx512(a, b, n, k, c) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: AVX2 detected.
            unsafe { dots_avx2(a, b, n, k, c) };
            return;
        }
        dots(a, b, n, k, c);
        return;
    }
    let isa = isa();
    // The contraction runs over n: pack Bᵀ (n×k) in pairs of its rows, i.e. pairs of
    // adjacent columns of B.
    BUFS.with_borrow_mut(|(packed, row32)| {
        let mut mx = 0i32;
        let np = n.div_ceil(2);
        packed.clear();
        packed.resize(np * k, 0);
        for col in 0..k {
            let brow = &b[col * n..(col + 1) * n];
            for (j, pr) in brow.chunks(2).enumerate() {
                let hi = if pr.len() == 2 { pr[1] } else { 0 };
                packed[j * k + col] = pr[0] as u16 as u32 | (hi as u16 as u32) << 16;
                mx = mx.max((pr[0] as i32).abs()).max((hi as i32).abs());
            }
        }
        packed_product(a, mx as i64, as_i16(packed), m, n, k, c, isa, row32);
    });
}

/// c[j] += a · B[j] for the k rows of B (length n), exact: each product fits an i32
/// (|a·b| ≤ 2^30) and the sums are i64.
#[inline(always)]
fn dots(a: &[i16], b: &[i16], n: usize, k: usize, c: &mut [i64]) {
    for (cj, brow) in c[..k].iter_mut().zip(b.chunks_exact(n)) {
        *cj += a[..n]
            .iter()
            .zip(brow)
            .map(|(&x, &y)| (x as i32 * y as i32) as i64)
            .sum::<i64>();
    }
}

/// [`dots`] compiled for AVX-512 (the same exact sums, vectorized).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn dots_avx512(a: &[i16], b: &[i16], n: usize, k: usize, c: &mut [i64]) {
    dots(a, b, n, k, c)
}

/// [`dots`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(a: &[i16], b: &[i16], n: usize, k: usize, c: &mut [i64]) {
    dots(a, b, n, k, c)
}

/// Rows of products by path, counted over the process: one SIMD pass, SIMD in
/// several chunks of the contraction, and exact i64 scalar fallback.
static ROWS_SIMD: AtomicU64 = AtomicU64::new(0);
static ROWS_CHUNKED: AtomicU64 = AtomicU64::new(0);
static ROWS_I64: AtomicU64 = AtomicU64::new(0);

/// Row counts so far: (one SIMD pass, SIMD in chunks, i64 scalar fallback).
pub fn row_stats() -> (u64, u64, u64) {
    (
        ROWS_SIMD.load(Ordering::Relaxed),
        ROWS_CHUNKED.load(Ordering::Relaxed),
        ROWS_I64.load(Ordering::Relaxed),
    )
}

/// Count `n` rows computed in one SIMD pass (the direct kernels' rows).
pub(super) fn count_rows(n: u64) {
    ROWS_SIMD.fetch_add(n, Ordering::Relaxed);
}

/// Count `n` rows computed in SIMD chunks of the contraction.
pub(super) fn count_chunked(n: u64) {
    ROWS_CHUNKED.fetch_add(n, Ordering::Relaxed);
}

/// Whether this thread's products run on AVX-512BW.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa() == Isa::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this thread's products run on AVX2 (and not AVX-512BW).
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa() == Isa::Avx2
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The instruction set this thread's products use: "avx512bw", "avx2" or "scalar".
pub fn isa_name() -> &'static str {
    match isa() {
        Isa::Scalar => "scalar",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => "avx2",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if vnni() => "avx512bw+vnni",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => "avx512bw",
    }
}

/// Σ |a| · bmax of a row: below 2^31, its i32 lane sums cannot overflow.
#[inline]
pub(super) fn row_bound(row: &[i16], bmax: i64) -> i64 {
    // i32 sums vectorize; Σ|a| of up to 2^16 values of at most 2^15 fits in i32.
    let s: i64 = row
        .chunks(1 << 15)
        .map(|c| c.iter().map(|&v| (v as i32).abs()).sum::<i32>() as i64)
        .sum();
    s * bmax
}

/// Split the contraction of `rows` (each of length kk) into chunks of whole pairs
/// [j0, j1) (pair j = elements 2j, 2j + 1) such that, in every chunk and row,
/// Σ |a| · bmax < 2^31: each chunk's i32 lane sums are then exact. None when one
/// pair alone could reach 2^31 (only with −32768 operands), which needs i64.
fn pair_chunks(rows: &[&[i16]], kk: usize, bmax: i64, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    let kp = kk.div_ceil(2);
    let mut start = 0;
    let mut acc = 0i64;
    for j in 0..kp {
        let w = rows
            .iter()
            .map(|r| {
                let x = (r[2 * j] as i32).abs() as i64;
                let y = r.get(2 * j + 1).map_or(0, |&v| (v as i32).abs() as i64);
                x + y
            })
            .max()
            .unwrap_or(0)
            * bmax;
        if w >= I32_LIMIT {
            return false;
        }
        if acc + w >= I32_LIMIT {
            out.push((start, j));
            start = j;
            acc = 0;
        }
        acc += w;
    }
    out.push((start, kp));
    true
}

/// Shared driver: for each row of A (m×kk) add A·B into C (m×nn), where B is given
/// pair-packed with a bound `bmax` ≥ max |B|. SIMD sums pairs of products in i32
/// lanes; the contraction is cut into chunks whose bound Σ|a|·bmax proves those
/// lanes cannot overflow ([`pair_chunks`]; almost always one chunk), and each
/// chunk's sums are added into the i64 outputs. Only a row with a pair that could
/// overflow on its own is summed in i64 scalar arithmetic.
#[allow(clippy::too_many_arguments)]
fn packed_product(
    a: &[i16],
    bmax: i64,
    packed: &[i16],
    m: usize,
    kk: usize,
    nn: usize,
    c: &mut [i64],
    isa: Isa,
    row32: &mut Vec<i32>,
) {
    // B[t][col] is half t % 2 of pair word (t / 2, col).
    let bat = |t: usize, col: usize| packed[((t / 2) * nn + col) * 2 + t % 2];
    let mut chunks = Vec::new();
    let count = |n: usize, chunks: usize| {
        if chunks == 1 {
            ROWS_SIMD.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            ROWS_CHUNKED.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    // Blocks of four rows share every load of B (AVX-512 only).
    let mut first = 0;
    let mut a4 = Vec::new();
    let mut ap = Vec::new();
    let mut off = Vec::new();
    // The packed B as pair words (it was allocated as u32, so the cast is aligned).
    let packed32: &[i32] =
        // SAFETY: same bytes, u32-aligned (see [`as_i16`]), every bit pattern valid.
        unsafe { std::slice::from_raw_parts(packed.as_ptr() as *const i32, packed.len() / 2) };
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        row32.clear();
        row32.resize(4 * nn, 0);
        while first + 4 <= m {
            let block = &a[first * kk..(first + 4) * kk];
            let one_pass =
                (0..4).all(|r| row_bound(&block[r * kk..(r + 1) * kk], bmax) < I32_LIMIT);
            if one_pass {
                chunks.clear();
                chunks.push((0, kk.div_ceil(2)));
            } else {
                let rows = [0, 1, 2, 3].map(|r| &block[r * kk..(r + 1) * kk]);
                if !pair_chunks(&rows, kk, bmax, &mut chunks) {
                    break;
                }
            }
            for &(j0, j1) in &chunks {
                let (k0, k1) = (2 * j0, (2 * j1).min(kk));
                let rows4: &[i16] = if one_pass {
                    block
                } else {
                    a4.clear();
                    for r in 0..4 {
                        a4.extend_from_slice(&block[r * kk + k0..r * kk + k1]);
                    }
                    &a4
                };
                // SAFETY: AVX-512BW detected; the chunk starts on a pair, so the packed
                // slice from pair j0 has the kernel's layout for k1 − k0 rows.
                pair_words(rows4, 4, k1 - k0, &mut ap);
                off.clear();
                off.extend((j0..j1).map(|j| j * nn));
                // SAFETY: AVX-512BW detected; pair row j of the packed B is the nn words
                // from j·nn, inside the slice.
                unsafe { rows_avx512::<4>(&ap, &off, packed32, nn, row32) };
                for r in 0..4 {
                    let crow = &mut c[(first + r) * nn..(first + r + 1) * nn];
                    for (cv, &v) in crow.iter_mut().zip(&row32[r * nn..(r + 1) * nn]) {
                        *cv += v as i64;
                    }
                }
            }
            count(4, chunks.len());
            first += 4;
        }
    }
    row32.clear();
    row32.resize(nn, 0);
    for i in first..m {
        let arow = &a[i * kk..(i + 1) * kk];
        if arow.iter().all(|&v| v == 0) || bmax == 0 {
            continue;
        }
        let crow = &mut c[i * nn..(i + 1) * nn];
        let simd = isa != Isa::Scalar
            && if row_bound(arow, bmax) < I32_LIMIT {
                chunks.clear();
                chunks.push((0, kk.div_ceil(2)));
                true
            } else {
                pair_chunks(&[arow], kk, bmax, &mut chunks)
            };
        if simd {
            for &(j0, j1) in &chunks {
                let (k0, k1) = (2 * j0, (2 * j1).min(kk));
                let (ar, pk) = (&arow[k0..k1], &packed[j0 * nn * 2..]);
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the feature was detected at run time; the chunk starts on a
                    // pair, so the packed slice has the kernel's layout.
                    Isa::Avx512 => {
                        pair_words(ar, 1, k1 - k0, &mut ap);
                        off.clear();
                        off.extend((j0..j1).map(|j| j * nn));
                        unsafe { rows_avx512::<1>(&ap, &off, packed32, nn, row32) }
                    }
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above.
                    Isa::Avx2 => unsafe { row_avx2(ar, pk, k1 - k0, nn, row32) },
                    Isa::Scalar => unreachable!(),
                }
                for (cv, &v) in crow.iter_mut().zip(row32.iter()) {
                    *cv += v as i64;
                }
            }
            count(1, chunks.len());
        } else {
            ROWS_I64.fetch_add(1, Ordering::Relaxed);
            for (t, &av) in arow.iter().enumerate() {
                if av == 0 {
                    continue;
                }
                for (col, cv) in crow.iter_mut().enumerate() {
                    *cv += av as i64 * bat(t, col) as i64;
                }
            }
        }
    }
}

/// Pair j of a row of A as one 32-bit lane for `madd`: a[2j] in the low half,
/// a[2j + 1] (0 past k) in the high half.
#[inline(always)]
fn pair_word(row: &[i16], k: usize, j: usize) -> i32 {
    let a0 = row[2 * j] as u16 as u32;
    let a1 = if 2 * j + 1 < k {
        row[2 * j + 1] as u16 as u32
    } else {
        0
    };
    (a0 | (a1 << 16)) as i32
}

/// Exact i32 dot product of a row of A with column `c` of the packed B (the scalar
/// tail of the SIMD kernels; callers have proved the sum fits).
#[inline(always)]
fn packed_dot(row: &[i16], packed: &[i16], k: usize, n: usize, c: usize) -> i32 {
    let mut s = 0i32;
    for j in 0..k.div_ceil(2) {
        s += row[2 * j] as i32 * packed[(j * n + c) * 2] as i32;
        if 2 * j + 1 < k {
            s += row[2 * j + 1] as i32 * packed[(j * n + c) * 2 + 1] as i32;
        }
    }
    s
}

/// Pair words of the `r` rows of `a` (each of length k), row-major:
/// `ap[row·kp + j] = pair_word(row, k, j)`, the broadcast operands of the kernels.
pub(super) fn pair_words(a: &[i16], r: usize, k: usize, ap: &mut Vec<i32>) {
    let kp = k.div_ceil(2);
    ap.clear();
    ap.resize(kp * r, 0);
    for (dst, arow) in ap.chunks_exact_mut(kp).zip(a.chunks_exact(k)) {
        for (d, pr) in dst.iter_mut().zip(arow.chunks_exact(2)) {
            *d = (pr[0] as u16 as u32 | (pr[1] as u16 as u32) << 16) as i32;
        }
        if k % 2 == 1 {
            dst[kp - 1] = arow[k - 1] as u16 as i32;
        }
    }
}

/// R rows of A, given as their pair words (row-major, [`pair_words`], one per entry
/// of `off` in each row),
/// against B: pair row j of B is the n words of `b` from `off[j]` (j·n for a packed
/// B; a shifted window of the input for a direct conv). out is R×n. Columns go in
/// blocks of up to 64 (four registers per row, one load of B shared by the R rows);
/// the last register of a block is masked, so no column is left to scalar code.
///
/// # Safety
/// AVX-512BW must be present, and `off[j] + n ≤ b.len()` for every j. Runs with
/// `vpdpwssd` where AVX512-VNNI is present ([`vnni`]).
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn rows_avx512<const R: usize>(
    ap: &[i32],
    off: &[usize],
    b: &[i32],
    n: usize,
    out: &mut [i32],
) {
    debug_assert!(ap.len() >= off.len() * R && out.len() >= R * n);
    debug_assert!(off.iter().all(|&o| o + n <= b.len()));
    if vnni() {
        rows_vnni::<R>(ap, off, b, n, out)
    } else {
        rows_plain::<R>(ap, off, b, n, out)
    }
}

/// [`rows_avx512`] on AVX2: the same sums, columns in blocks of up to 16 (two 8-lane
/// registers per row, one load of B shared by the R rows; blocks of three registers
/// ran 4–8% slower on an AMD EPYC, as twelve sums, three loads and the broadcast
/// fill all sixteen registers); the last register
/// of a block is loaded and stored under a mask, so no column is left to scalar code
/// and nothing past `off[j] + n` is read or past `r·n + n` written.
///
/// # Safety
/// AVX2 must be present, and `off[j] + n ≤ b.len()` for every j.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn rows_avx2<const R: usize>(
    ap: &[i32],
    off: &[usize],
    b: &[i32],
    n: usize,
    out: &mut [i32],
) {
    debug_assert!(ap.len() >= off.len() * R && out.len() >= R * n);
    debug_assert!(off.iter().all(|&o| o + n <= b.len()));
    let mut col = 0;
    while col < n {
        let width = (n - col).min(16);
        match width.div_ceil(8) {
            2 => block_avx2::<R, 2>(ap, off, b, n, col, width, out),
            _ => block_avx2::<R, 1>(ap, off, b, n, col, width, out),
        }
        col += width;
    }
}

/// Columns [col, col + width) of [`rows_avx2`] in Q registers of 8 lanes
/// (8·(Q − 1) < width ≤ 8·Q).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block_avx2<const R: usize, const Q: usize>(
    ap: &[i32],
    off: &[usize],
    b: &[i32],
    n: usize,
    col: usize,
    width: usize,
    out: &mut [i32],
) {
    use std::arch::x86_64::*;
    let tail = (width - 8 * (Q - 1)) as i32;
    // Lane i of the last register is live when i < tail.
    let mask = _mm256_cmpgt_epi32(
        _mm256_set1_epi32(tail),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    );
    let mut s = [[_mm256_setzero_si256(); Q]; R];
    for (j, &o) in off.iter().enumerate() {
        let p = b.as_ptr().add(o + col);
        let mut bv = [_mm256_setzero_si256(); Q];
        for q in 0..Q - 1 {
            bv[q] = _mm256_loadu_si256(p.add(8 * q) as *const __m256i);
        }
        bv[Q - 1] = _mm256_maskload_epi32(p.add(8 * (Q - 1)), mask);
        for (r, sr) in s.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(*ap.get_unchecked(r * off.len() + j));
            for q in 0..Q {
                sr[q] = _mm256_add_epi32(sr[q], _mm256_madd_epi16(av, bv[q]));
            }
        }
    }
    for (r, sr) in s.iter().enumerate() {
        let o = out.as_mut_ptr().add(r * n + col);
        for q in 0..Q - 1 {
            _mm256_storeu_si256(o.add(8 * q) as *mut __m256i, sr[q]);
        }
        _mm256_maskstore_epi32(o.add(8 * (Q - 1)), mask, sr[Q - 1]);
    }
}

/// Whether this thread's AVX-512 kernels may fuse multiply and add (`vpdpwssd`,
/// AVX512-VNNI). It wraps exactly like `vpmaddwd` + `vpaddd`, and the callers have
/// proved no i32 sum can overflow, so the sums are the same.
#[cfg(target_arch = "x86_64")]
pub(super) fn vnni() -> bool {
    CAP.with(|c| c.get()) >= 3 && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// s + a·b on pairs of i16 in i32 lanes: `vpdpwssd` with VNNI, else madd then add.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn dot_add<const V: bool>(
    s: std::arch::x86_64::__m512i,
    a: std::arch::x86_64::__m512i,
    b: std::arch::x86_64::__m512i,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    if V {
        _mm512_dpwssd_epi32(s, a, b)
    } else {
        _mm512_add_epi32(s, _mm512_madd_epi16(a, b))
    }
}

/// [`rows_avx512`] without VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn rows_plain<const R: usize>(
    ap: &[i32],
    off: &[usize],
    b: &[i32],
    n: usize,
    out: &mut [i32],
) {
    rows_body::<R, false>(ap, off, b, n, out)
}

/// [`rows_avx512`] with VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,avx512vnni")]
unsafe fn rows_vnni<const R: usize>(
    ap: &[i32],
    off: &[usize],
    b: &[i32],
    n: usize,
    out: &mut [i32],
) {
    rows_body::<R, true>(ap, off, b, n, out)
}

/// The column loop of [`rows_avx512`], inlined into each instruction-set variant.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rows_body<const R: usize, const V: bool>(
    ap: &[i32],
    off: &[usize],
    b: &[i32],
    n: usize,
    out: &mut [i32],
) {
    let mut col = 0;
    while col < n {
        let width = (n - col).min(64);
        match width.div_ceil(16) {
            4 => block_avx512::<R, 4, V>(ap, off, b, n, col, width, out),
            3 => block_avx512::<R, 3, V>(ap, off, b, n, col, width, out),
            2 => block_avx512::<R, 2, V>(ap, off, b, n, col, width, out),
            _ => block_avx512::<R, 1, V>(ap, off, b, n, col, width, out),
        }
        col += width;
    }
}

/// Columns [col, col + width) of [`rows_avx512`] in Q registers of 16 lanes
/// (16·(Q − 1) < width ≤ 16·Q).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block_avx512<const R: usize, const Q: usize, const V: bool>(
    ap: &[i32],
    off: &[usize],
    b: &[i32],
    n: usize,
    col: usize,
    width: usize,
    out: &mut [i32],
) {
    use std::arch::x86_64::*;
    let mut mask = [0xFFFFu16; Q];
    let tail = width - 16 * (Q - 1);
    mask[Q - 1] = if tail == 16 {
        0xFFFF
    } else {
        (1u16 << tail) - 1
    };
    let mut s = [[_mm512_setzero_si512(); Q]; R];
    for (j, &o) in off.iter().enumerate() {
        let p = b.as_ptr().add(o + col);
        let mut bv = [_mm512_setzero_si512(); Q];
        for q in 0..Q {
            bv[q] = _mm512_maskz_loadu_epi32(mask[q], p.add(16 * q));
        }
        for (r, sr) in s.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(*ap.get_unchecked(r * off.len() + j));
            for q in 0..Q {
                sr[q] = dot_add::<V>(sr[q], av, bv[q]);
            }
        }
    }
    for (r, sr) in s.iter().enumerate() {
        let o = out.as_mut_ptr().add(r * n + col);
        for q in 0..Q {
            _mm512_mask_storeu_epi32(o.add(16 * q), mask[q], sr[q]);
        }
    }
}

/// The pair words as i32 (the layout the AVX-512 kernel reads).
pub(super) fn as_i32(words: &[u32]) -> &[i32] {
    // SAFETY: same size and alignment, every bit pattern valid.
    unsafe { std::slice::from_raw_parts(words.as_ptr() as *const i32, words.len()) }
}

/// Interleave rows 2j and 2j+1 of B: packed[(j·n + col)·2 + r] = B[2j + r][col]
/// (a zero row pads odd k). Written as one u32 per pair so it vectorizes.
/// Returns max |B| (computed in the same pass).
fn pack_pairs(b: &[i16], k: usize, n: usize, words: &mut Vec<u32>) -> i64 {
    let kp = k.div_ceil(2);
    words.clear();
    words.resize(kp * n, 0);
    let mut mx = 0i32;
    for j in 0..kp {
        let r0 = &b[2 * j * n..(2 * j + 1) * n];
        let dst = &mut words[j * n..(j + 1) * n];
        if 2 * j + 1 < k {
            let r1 = &b[(2 * j + 1) * n..(2 * j + 2) * n];
            for ((d, &x), &y) in dst.iter_mut().zip(r0).zip(r1) {
                *d = (x as u16 as u32) | ((y as u16 as u32) << 16);
                mx = mx.max((x as i32).abs()).max((y as i32).abs());
            }
        } else {
            for (d, &x) in dst.iter_mut().zip(r0) {
                *d = x as u16 as u32;
                mx = mx.max((x as i32).abs());
            }
        }
    }
    mx as i64
}

/// The packed pairs as i16 values (little-endian: low half first).
fn as_i16(words: &[u32]) -> &[i16] {
    assert!(
        cfg!(target_endian = "little"),
        "pair packing assumes little-endian"
    );
    // SAFETY: u32 is at least as aligned as i16, the length doubles, and every bit
    // pattern is a valid i16.
    unsafe { std::slice::from_raw_parts(words.as_ptr() as *const i16, words.len() * 2) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2(arow: &[i16], packed: &[i16], k: usize, n: usize, out: &mut [i32]) {
    use std::arch::x86_64::*;
    let kp = k.div_ceil(2);
    let n8 = n / 8 * 8;
    // Blocks of 32 outputs (4 registers), then 8, then a scalar tail.
    let mut col = 0;
    while col + 32 <= n8 {
        let (mut s0, mut s1, mut s2, mut s3) = (
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
        );
        for j in 0..kp {
            let pv = pair_word(arow, k, j);
            if pv == 0 {
                continue;
            }
            let av = _mm256_set1_epi32(pv);
            let p = packed.as_ptr().add((j * n + col) * 2);
            s0 = _mm256_add_epi32(
                s0,
                _mm256_madd_epi16(av, _mm256_loadu_si256(p as *const __m256i)),
            );
            s1 = _mm256_add_epi32(
                s1,
                _mm256_madd_epi16(av, _mm256_loadu_si256(p.add(16) as *const __m256i)),
            );
            s2 = _mm256_add_epi32(
                s2,
                _mm256_madd_epi16(av, _mm256_loadu_si256(p.add(32) as *const __m256i)),
            );
            s3 = _mm256_add_epi32(
                s3,
                _mm256_madd_epi16(av, _mm256_loadu_si256(p.add(48) as *const __m256i)),
            );
        }
        let o = out.as_mut_ptr().add(col);
        _mm256_storeu_si256(o as *mut __m256i, s0);
        _mm256_storeu_si256(o.add(8) as *mut __m256i, s1);
        _mm256_storeu_si256(o.add(16) as *mut __m256i, s2);
        _mm256_storeu_si256(o.add(24) as *mut __m256i, s3);
        col += 32;
    }
    while col < n8 {
        let mut s = _mm256_setzero_si256();
        for j in 0..kp {
            let av = _mm256_set1_epi32(pair_word(arow, k, j));
            let p = packed.as_ptr().add((j * n + col) * 2);
            s = _mm256_add_epi32(
                s,
                _mm256_madd_epi16(av, _mm256_loadu_si256(p as *const __m256i)),
            );
        }
        _mm256_storeu_si256(out.as_mut_ptr().add(col) as *mut __m256i, s);
        col += 8;
    }
    for c in n8..n {
        out[c] = packed_dot(arow, packed, k, n, c);
    }
}

/// f32 C (m×n) = A (m×k) · B (k×n).
pub fn gemm_f32(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    for i in 0..m {
        let crow = &mut c[i * n..(i + 1) * n];
        crow.iter_mut().for_each(|v| *v = 0.0);
        for kk in 0..k {
            let av = a[i * k + kk];
            if av == 0.0 {
                continue;
            }
            for (cv, &bv) in crow.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                *cv += av * bv;
            }
        }
    }
}

/// f32 C (m×k) += A (m×n) · Bᵀ (B is k×n).
pub fn gemm_abt_f32(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, c: &mut [f32]) {
    for i in 0..m {
        let arow = &a[i * n..(i + 1) * n];
        for j in 0..k {
            let brow = &b[j * n..(j + 1) * n];
            let mut s = [0f32; 8];
            let chunks = n / 8 * 8;
            for t in (0..chunks).step_by(8) {
                for l in 0..8 {
                    s[l] += arow[t + l] * brow[t + l];
                }
            }
            let mut d: f32 = s.iter().sum();
            for t in chunks..n {
                d += arow[t] * brow[t];
            }
            c[i * k + j] += d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::rng::SeedableRng;

    #[test]
    fn gemm_i16_is_exact_on_every_instruction_set_including_extremes() {
        for level in [0u8, 1, 2, 3] {
            let before = row_stats();
            limit_isa(level);
            gemm_cases();
            if level > 0 && isa() != Isa::Scalar {
                // Rows of 32767-sized values exceed the one-pass i32 bound: they must
                // have run in chunks (and still be exact, checked above).
                assert!(row_stats().1 > before.1, "no row ran in chunks");
            }
        }
        limit_isa(3);
    }

    #[test]
    fn pair_chunks_keep_every_chunk_under_the_i32_bound_and_cover_the_row() {
        let mut rng = Rng::seed_from_u64(8);
        let mut out = Vec::new();
        for _ in 0..300 {
            let k = 1 + rng.below(300) as usize;
            let span = [10i64, 3000, 32767][rng.below(3) as usize];
            let row: Vec<i16> = (0..k).map(|_| rng.range_i64(-span, span) as i16).collect();
            let bmax = rng.range_i64(1, 32768);
            assert!(pair_chunks(&[&row], k, bmax, &mut out));
            let mut next = 0;
            for &(j0, j1) in &out {
                assert_eq!(j0, next);
                assert!(j1 > j0);
                let s: i64 = row[2 * j0..(2 * j1).min(k)]
                    .iter()
                    .map(|&v| (v as i64).abs())
                    .sum();
                assert!(s * bmax < 1 << 31, "chunk {j0}..{j1} bound {}", s * bmax);
                next = j1;
            }
            assert_eq!(next, k.div_ceil(2));
        }
        // A pair that alone reaches 2^31 needs i64.
        assert!(!pair_chunks(&[&[-32768, -32768]], 2, 32768, &mut out));
    }

    fn gemm_cases() {
        let mut rng = Rng::seed_from_u64(4);
        for &(m, k, n, span) in &[
            (3, 7, 37, 300i64),
            (5, 33, 64, 32767),
            (2, 1, 9, 32768),
            (4, 144, 50, 2000),
            (9, 20, 130, 1000),
            (8, 9, 70, 32768),
            // One row (the dense layer's products): its own path.
            (1, 10, 300, 32768),
            (1, 301, 10, 32768),
        ] {
            let a: Vec<i16> = (0..m * k)
                .map(|_| rng.range_i64(-span, span - 1) as i16)
                .collect();
            let b: Vec<i16> = (0..k * n)
                .map(|_| rng.range_i64(-span, span - 1) as i16)
                .collect();
            let mut c = vec![0i64; m * n];
            gemm_i16(&a, &b, m, k, n, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let want: i64 = (0..k)
                        .map(|t| a[i * k + t] as i64 * b[t * n + j] as i64)
                        .sum();
                    assert_eq!(c[i * n + j], want, "m={m} k={k} n={n} ({i},{j})");
                }
            }
            let mut g = vec![1i64; m * k];
            let bt: Vec<i16> = (0..k * n)
                .map(|_| rng.range_i64(-span, span - 1) as i16)
                .collect();
            let at: Vec<i16> = (0..m * n)
                .map(|_| rng.range_i64(-span, span - 1) as i16)
                .collect();
            gemm_abt_i16(&at, &bt, m, n, k, &mut g);
            for i in 0..m {
                for j in 0..k {
                    let want: i64 = 1
                        + (0..n)
                            .map(|t| at[i * n + t] as i64 * bt[j * n + t] as i64)
                            .sum::<i64>();
                    assert_eq!(g[i * k + j], want);
                }
            }
        }
    }
}
