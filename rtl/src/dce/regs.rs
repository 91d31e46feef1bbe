//! The engine's configuration interface: a write-only register port
//! (`cfg_we`, `cfg_addr`, `cfg_data`) and [`program`], which turns a layer and its
//! weights into the list of writes. Driver software and the co-simulation use the
//! same function.
//!
//! Address = region (bits 16..20) and index (bits 0..16):
//! - region 0: scalar registers [`Reg`] (sizes and shifts of the pass);
//! - region 1 / 2: the tap table, entry t = ky·k + kx: (dy, dx) as two 16-bit two's
//!   complement halves, and the address offset dy·W + dx. Only the k² real taps of
//!   the dilated kernel are listed, so the inserted zeros are never visited;
//! - region 3: the channel table. Entries 0.. are D1's input channels: with G > 1
//!   input channel c of D1 is D2 output channel s = `shuffle_perm(C_t, G)[c]`, which
//!   lane s mod P wrote into its bank at (s / P)·H·W; entry data = address (bits
//!   0..16) | one-hot bank (bits 16..24). With G = 1 the entry is c·H·W in the source
//!   buffer. Entries from the engine's channel capacity `DceSizes::chans` on are D2's
//!   input channels (c·H·W);
//! - region 4: weight words, P sign bits each (bit l: lane l subtracts). D2 words
//!   (block b, channel i within the group) at b·(C_s/G) + i; D1 words after the
//!   engine's D2 area, at b·(C_1/G)·k² + i·k² + t. Block b holds output channels
//!   b·P .. b·P + P − 1; the signs come from the golden layout `[out][in/G][k][k]`.

use golden::cnn::ops::shuffle_perm;
use golden::dce::{DceLayer, DceSizes, DceWeights};
use golden::GoldenError;

/// Width of the configuration address.
pub const CFG_ADDR_BITS: usize = 20;
/// Width of the configuration data.
pub const CFG_DATA_BITS: usize = 32;
/// Region of the scalar registers.
pub const REGION_REGS: u32 = 0;
/// Region of the tap table's (dy, dx) words.
pub const REGION_TAP_YX: u32 = 1;
/// Region of the tap table's address offsets.
pub const REGION_TAP_OFF: u32 = 2;
/// Region of the channel table.
pub const REGION_CHAN: u32 = 3;
/// Region of the weight memory.
pub const REGION_WEIGHT: u32 = 4;

/// Scalar registers (region 0), by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reg {
    /// Map height.
    H = 0,
    /// Map width.
    W,
    /// H·W.
    Hw,
    /// H·W − 1.
    HwM1,
    /// W − 1.
    WM1,
    /// C_s·H·W − 1.
    EinM1,
    /// Mask words − 1.
    MaskM1,
    /// C_t·H·W − 1.
    OutM1,
    /// k² − 1.
    NtapM1,
    /// D1 input channels per group − 1.
    Icg1M1,
    /// D2 input channels per group − 1.
    Icg2M1,
    /// C_t / P − 1.
    NblkM1,
    /// Blocks per group − 1.
    BpgM1,
    /// D1 input channels per group.
    Icg1,
    /// D2 input channels per group.
    Icg2,
    /// D1 weight words per block.
    Ws1,
    /// D2 weight words per block.
    Ws2,
    /// Shift after D1.
    Sh1,
    /// Shift after D2.
    Sh2,
    /// 1 when G > 1.
    HasD2,
}

/// A configuration address.
pub fn cfg_addr(region: u32, index: usize) -> u32 {
    debug_assert!(index < 1 << 16);
    (region << 16) | index as u32
}

/// The configuration writes that set up `sizes`'s engine for layer `l` with weights `w`.
pub fn program(
    sizes: &DceSizes,
    l: &DceLayer,
    w: &DceWeights,
) -> Result<Vec<(u32, u32)>, GoldenError> {
    sizes.check(l)?;
    w.check(l)?;
    let p = sizes.lanes;
    let hw = l.hw();
    let (icg1, icg2, taps) = (l.icg1(), l.icg2(), l.taps());
    let mut out = Vec::new();
    let regs: [(Reg, usize); 20] = [
        (Reg::H, l.h),
        (Reg::W, l.w),
        (Reg::Hw, hw),
        (Reg::HwM1, hw - 1),
        (Reg::WM1, l.w - 1),
        (Reg::EinM1, l.in_words() - 1),
        (Reg::MaskM1, l.mask_words() - 1),
        (Reg::OutM1, l.out_words() - 1),
        (Reg::NtapM1, taps - 1),
        (Reg::Icg1M1, icg1 - 1),
        (Reg::Icg2M1, icg2 - 1),
        (Reg::NblkM1, l.ct / p - 1),
        (Reg::BpgM1, l.ocg() / p - 1),
        (Reg::Icg1, icg1),
        (Reg::Icg2, icg2),
        (Reg::Ws1, icg1 * taps),
        (Reg::Ws2, icg2),
        (Reg::Sh1, l.shift1 as usize),
        (Reg::Sh2, l.shift2 as usize),
        (Reg::HasD2, l.has_d2() as usize),
    ];
    for (r, v) in regs {
        out.push((cfg_addr(REGION_REGS, r as usize), v as u32));
    }
    let (pad, d) = (l.pad() as i64, l.dil as i64);
    for t in 0..taps {
        let (ky, kx) = ((t / l.k) as i64, (t % l.k) as i64);
        let (dy, dx) = (ky * d - pad, kx * d - pad);
        out.push((
            cfg_addr(REGION_TAP_YX, t),
            (dy as u16 as u32) | ((dx as u16 as u32) << 16),
        ));
        out.push((
            cfg_addr(REGION_TAP_OFF, t),
            (dy * l.w as i64 + dx) as u16 as u32,
        ));
    }
    if l.has_d2() {
        let perm = shuffle_perm(l.ct, l.groups);
        for (c, &s) in perm.iter().enumerate() {
            out.push((
                cfg_addr(REGION_CHAN, c),
                ((s / p) * hw) as u32 | (1u32 << (16 + s % p)),
            ));
        }
    } else {
        for c in 0..l.c1() {
            out.push((cfg_addr(REGION_CHAN, c), (c * hw) as u32));
        }
    }
    for c in 0..l.cs {
        out.push((cfg_addr(REGION_CHAN, sizes.chans + c), (c * hw) as u32));
    }
    let word = |signs: &[bool], per: usize, b: usize, i: usize| -> u32 {
        (0..p).fold(0u32, |a, lane| {
            a | ((signs[(b * p + lane) * per + i] as u32) << lane)
        })
    };
    if let Some(d2) = &w.d2 {
        for b in 0..l.ct / p {
            for i in 0..icg2 {
                out.push((cfg_addr(REGION_WEIGHT, b * icg2 + i), word(d2, icg2, b, i)));
            }
        }
    }
    let per1 = icg1 * taps;
    for b in 0..l.ct / p {
        for i in 0..per1 {
            out.push((
                cfg_addr(REGION_WEIGHT, sizes.w2 + b * per1 + i),
                word(&w.d1, per1, b, i),
            ));
        }
    }
    Ok(out)
}
