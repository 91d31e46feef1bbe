//! The engine's register map, defined once: [`REGS`] (the scalar registers) and
//! [`REGIONS`] (the tables). From these tables come the configuration writes
//! ([`program`]), the decoder in the engine's top level (the scalar registers are one
//! register file indexed by their position in [`REGS`]; a test checks the top level
//! against the table), and the map emitted beside the Verilog as JSON
//! ([`regmap_json`]) and as a C header ([`regmap_c_header`]) for firmware and
//! testbenches. Adding a scalar register is one line in [`REGS`] (its value for a
//! layer included); the logic that uses it reads `regs[index]`.
//!
//! The port is write-only: `cfg_we`, `cfg_addr` (region in the bits from
//! [`REGION_SHIFT`] up, index below), `cfg_data`. Every table entry is one field in
//! the low bits of `cfg_data`, so no entry packs two values.

use contract::dce::{DceLayer, DceSizes, DceWeights, ADDR_BITS, DCE_MAX_LANES, MAX_MAP};
use contract::geom::shuffle_perm;
use contract::GoldenError;
use serde_json::json;

use crate::narrow::SHIFT_BITS;

/// Entries of the row table ([`Region::RowBase`]): the largest map side.
pub const MAX_ROWS: usize = MAX_MAP;

/// Width of the configuration address: region and index.
pub const CFG_ADDR_BITS: usize = REGION_SHIFT + REGION_BITS;
/// Width of the configuration data.
pub const CFG_DATA_BITS: usize = 32;
/// The region sits above the 16-bit index in the address.
pub const REGION_SHIFT: usize = ADDR_BITS;
/// Bits of the region number.
pub const REGION_BITS: usize = 4;

/// One scalar register: its value for a layer on an engine of P lanes.
#[derive(Clone, Copy, Debug)]
pub struct RegDef {
    /// Name (upper case; the C header's `HDFA_DCE_REG_{name}`).
    pub name: &'static str,
    /// Bits used (the register file stores [`ADDR_BITS`]).
    pub width: usize,
    /// What it holds.
    pub doc: &'static str,
    /// Its value for layer `l` with weights `w` on `lanes` lanes.
    pub value: fn(&DceLayer, &DceWeights, usize) -> usize,
}

const fn reg(
    name: &'static str,
    width: usize,
    doc: &'static str,
    value: fn(&DceLayer, &DceWeights, usize) -> usize,
) -> RegDef {
    RegDef {
        name,
        width,
        doc,
        value,
    }
}

/// The scalar registers (region [`Region::Regs`]); index = position.
pub const REGS: &[RegDef] = &[
    reg("H", ADDR_BITS, "target map height", |l, _, _| l.h),
    reg("W", ADDR_BITS, "target map width", |l, _, _| l.w),
    reg(
        "HW",
        ADDR_BITS,
        "H*W (offset of output-buffer half 1)",
        |l, _, _| l.hw(),
    ),
    reg(
        "HW_M1",
        ADDR_BITS,
        "H*W - 1 (D1's last pixel)",
        |l, _, _| l.hw() - 1,
    ),
    reg("W_M1", ADDR_BITS, "W - 1", |l, _, _| l.w - 1),
    reg(
        "EIN_M1",
        ADDR_BITS,
        "C_s*(H/up)*(W/up) - 1 (last source word)",
        |l, _, _| l.in_words() - 1,
    ),
    reg("MASK_M1", ADDR_BITS, "mask words - 1", |l, _, _| {
        l.mask_words() - 1
    }),
    reg(
        "OUT_M1",
        ADDR_BITS,
        "C_t*H*W - 1 (last output)",
        |l, _, _| l.out_words() - 1,
    ),
    reg("NTAP_M1", ADDR_BITS, "k*k - 1", |l, _, _| l.taps() - 1),
    reg(
        "ICG1_M1",
        ADDR_BITS,
        "D1 input channels per group - 1",
        |l, _, _| l.icg1() - 1,
    ),
    reg(
        "ICG2_M1",
        ADDR_BITS,
        "D2 input channels per group - 1",
        |l, _, _| l.icg2() - 1,
    ),
    reg(
        "NBLK_M1",
        ADDR_BITS,
        "C_t/P - 1 (last block of P channels)",
        |l, _, p| l.ct / p - 1,
    ),
    reg("BPG_M1", ADDR_BITS, "blocks per group - 1", |l, _, p| {
        l.ocg() / p - 1
    }),
    reg(
        "ICG1",
        ADDR_BITS,
        "D1 input channels per group",
        |l, _, _| l.icg1(),
    ),
    reg(
        "ICG2",
        ADDR_BITS,
        "D2 input channels per group",
        |l, _, _| l.icg2(),
    ),
    reg(
        "WS1",
        ADDR_BITS,
        "D1 weight words per block (channels per group * k*k)",
        |l, _, _| l.icg1() * l.taps(),
    ),
    reg("WS2", ADDR_BITS, "D2 weight words per block", |l, _, _| {
        l.icg2()
    }),
    reg("SH1", SHIFT_BITS, "scaling shift after D1", |l, _, _| {
        l.shift1 as usize
    }),
    reg("SH2", SHIFT_BITS, "scaling shift after D2", |l, _, _| {
        l.shift2 as usize
    }),
    reg(
        "HAS_D2",
        1,
        "1: run D2 and the shuffle (G > 1)",
        |l, _, _| l.has_d2() as usize,
    ),
    reg(
        "HWS_M1",
        ADDR_BITS,
        "(H/up)*(W/up) - 1 (D2's last pixel, at the source size)",
        |l, _, _| l.hws() - 1,
    ),
    reg(
        "UP_LOG2",
        2,
        "log2 up: a D1 tap's target column x reads source column x >> UP_LOG2",
        |l, _, _| l.up.trailing_zeros() as usize,
    ),
    reg(
        "GEN",
        1,
        "1: the weight signs are regenerated from SEED2/SEED1 (contract::fbgen), none stored",
        |_, w, _| w.gen.is_some() as usize,
    ),
    reg(
        "SEED2_LO",
        ADDR_BITS,
        "D2's generator seed, bits 0..16",
        |_, w, _| w.gen.map_or(0, |g| g.d2 as usize & 0xffff),
    ),
    reg(
        "SEED2_HI",
        ADDR_BITS,
        "D2's generator seed, bits 16..32",
        |_, w, _| w.gen.map_or(0, |g| (g.d2 >> 16) as usize),
    ),
    reg(
        "SEED1_LO",
        ADDR_BITS,
        "D1's generator seed, bits 0..16",
        |_, w, _| w.gen.map_or(0, |g| g.d1 as usize & 0xffff),
    ),
    reg(
        "SEED1_HI",
        ADDR_BITS,
        "D1's generator seed, bits 16..32",
        |_, w, _| w.gen.map_or(0, |g| (g.d1 >> 16) as usize),
    ),
];

/// Index of the scalar register `name` in [`REGS`].
pub fn reg_index(name: &str) -> Option<usize> {
    REGS.iter().position(|r| r.name == name)
}

/// The address regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Region {
    /// Scalar registers [`REGS`].
    Regs = 0,
    /// Tap table: row offset dy of tap t = ky·k + kx (two's complement).
    TapDy,
    /// Tap table: column offset dx.
    TapDx,
    /// Row table: source-buffer offset of target row y, (y / up)·(W / up).
    RowBase,
    /// Channel table: base address of a D1 input channel (entries from the engine's
    /// channel capacity on: D2's input channels).
    ChanAddr,
    /// Channel table: one-hot D2 bank holding the channel (G > 1: the shuffle).
    ChanBank,
    /// Weight words: P sign bits (bit l: lane l subtracts).
    Weight,
}

/// One region's description.
#[derive(Clone, Copy, Debug)]
pub struct RegionDef {
    /// The region.
    pub region: Region,
    /// Name (the C header's `HDFA_DCE_REGION_{name}`).
    pub name: &'static str,
    /// Bits per entry.
    pub width: usize,
    /// What an entry holds.
    pub doc: &'static str,
}

/// The regions, in address order.
pub const REGIONS: &[RegionDef] = &[
    RegionDef { region: Region::Regs, name: "REGS", width: ADDR_BITS, doc: "scalar registers, index = HDFA_DCE_REG_*" },
    RegionDef { region: Region::TapDy, name: "TAP_DY", width: ADDR_BITS, doc: "tap t = ky*k + kx: row offset ky*d - pad, two's complement; only the k*k real taps are listed" },
    RegionDef { region: Region::TapDx, name: "TAP_DX", width: ADDR_BITS, doc: "tap t: column offset kx*d - pad, two's complement" },
    RegionDef { region: Region::RowBase, name: "ROW_BASE", width: ADDR_BITS, doc: "target row y < H: offset (y / up)*(W / up) of its source row in a channel's map (no multiplier in the address path); MAX_ROWS entries" },
    RegionDef { region: Region::ChanAddr, name: "CHAN_ADDR", width: ADDR_BITS, doc: "D1 input channel c: base address of its source-size map, HWS = (H/up)*(W/up) (G > 1: in D2 bank s mod P at (s / P)*HWS, s = shuffle(c)); entries from CHAN_D2_BASE: D2 input channel c at c*HWS" },
    RegionDef { region: Region::ChanBank, name: "CHAN_BANK", width: DCE_MAX_LANES, doc: "D1 input channel c: one-hot D2 bank (G > 1)" },
    RegionDef { region: Region::Weight, name: "WEIGHT", width: DCE_MAX_LANES, doc: "P sign bits, bit l: lane l subtracts. D2 word (block b, input i of the group) at b*(C_s/G) + i; D1 word at W1_BASE + b*(C_1/G)*k*k + i*k*k + t" },
];

/// A configuration address.
pub fn cfg_addr(region: Region, index: usize) -> u32 {
    debug_assert!(index < 1 << REGION_SHIFT);
    ((region as u32) << REGION_SHIFT) | index as u32
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
    // Channel maps in the source buffer and the D2 banks are at the source size.
    let hw = l.hws();
    let (icg1, icg2, taps) = (l.icg1(), l.icg2(), l.taps());
    let mut out = Vec::new();
    for (i, r) in REGS.iter().enumerate() {
        let v = (r.value)(l, w, p);
        if v >= 1 << r.width {
            return Err(GoldenError::out_of_range(
                r.name,
                v,
                format!("0..{} (a {}-bit register)", 1u64 << r.width, r.width),
            ));
        }
        out.push((cfg_addr(Region::Regs, i), v as u32));
    }
    let field = |x: i64| x as u16 as u32;
    let (pad, d) = (l.pad() as i64, l.dil as i64);
    for t in 0..taps {
        let (ky, kx) = ((t / l.k) as i64, (t % l.k) as i64);
        let (dy, dx) = (ky * d - pad, kx * d - pad);
        out.push((cfg_addr(Region::TapDy, t), field(dy)));
        out.push((cfg_addr(Region::TapDx, t), field(dx)));
    }
    for y in 0..l.h {
        out.push((cfg_addr(Region::RowBase, y), ((y / l.up) * l.ws()) as u32));
    }
    if l.has_d2() {
        let perm = shuffle_perm(l.ct, l.groups);
        for (c, &s) in perm.iter().enumerate() {
            out.push((cfg_addr(Region::ChanAddr, c), ((s / p) * hw) as u32));
            out.push((cfg_addr(Region::ChanBank, c), 1u32 << (s % p)));
        }
    } else {
        for c in 0..l.c1() {
            out.push((cfg_addr(Region::ChanAddr, c), (c * hw) as u32));
        }
    }
    for c in 0..l.cs {
        out.push((cfg_addr(Region::ChanAddr, sizes.chans + c), (c * hw) as u32));
    }
    let word = |signs: &[bool], per: usize, b: usize, i: usize| -> u32 {
        (0..p).fold(0u32, |a, lane| {
            a | ((signs[(b * p + lane) * per + i] as u32) << lane)
        })
    };
    if w.gen.is_some() {
        // Generated signs: the engine regenerates them, nothing is written.
        return Ok(out);
    }
    if let Some(d2) = &w.d2 {
        for b in 0..l.ct / p {
            for i in 0..icg2 {
                out.push((cfg_addr(Region::Weight, b * icg2 + i), word(d2, icg2, b, i)));
            }
        }
    }
    let per1 = icg1 * taps;
    for b in 0..l.ct / p {
        for i in 0..per1 {
            out.push((
                cfg_addr(Region::Weight, sizes.w2 + b * per1 + i),
                word(&w.d1, per1, b, i),
            ));
        }
    }
    Ok(out)
}

/// Generation-time constants a driver needs: (name, value, doc).
fn sizes_consts(sizes: &DceSizes) -> [(&'static str, usize, &'static str); 5] {
    [
        ("LANES", sizes.lanes, "parallel output channels P"),
        (
            "CHAN_D2_BASE",
            sizes.chans,
            "first CHAN_ADDR entry of D2's input channels",
        ),
        ("W1_BASE", sizes.w2, "first WEIGHT word of D1"),
        ("MAX_MAP", sizes.map, "largest map H*W the buffers hold"),
        (
            "MAX_ROWS",
            MAX_ROWS,
            "ROW_BASE entries (the largest map side)",
        ),
    ]
}

/// The register map of an engine of `sizes` as JSON.
pub fn regmap_json(sizes: &DceSizes) -> String {
    let regs: Vec<_> = REGS
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"name": r.name, "index": i, "width": r.width, "doc": r.doc}))
        .collect();
    let regions: Vec<_> = REGIONS
        .iter()
        .map(|r| json!({"name": r.name, "id": r.region as u32, "width": r.width, "doc": r.doc}))
        .collect();
    let consts: serde_json::Map<String, serde_json::Value> = sizes_consts(sizes)
        .iter()
        .map(|(n, v, _)| (n.to_string(), json!(v)))
        .collect();
    let doc = json!({
        "unit": "dce",
        "address": {"region_shift": REGION_SHIFT, "region_bits": REGION_BITS, "index_bits": REGION_SHIFT, "data_bits": CFG_DATA_BITS},
        "regions": regions,
        "registers": regs,
        "sizes": consts,
    });
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n"
}

/// The register map of an engine of `sizes` as a C header.
pub fn regmap_c_header(sizes: &DceSizes) -> String {
    use std::fmt::Write as _;
    let mut h = String::from(
        "/* Generated by hdfa: register map of the dilated-conv error-propagation engine (dce).\n * Write-only port: cfg_we, cfg_addr = HDFA_DCE_ADDR(region, index), cfg_data. */\n#ifndef HDFA_DCE_REGS_H\n#define HDFA_DCE_REGS_H\n\n",
    );
    let _ = writeln!(h, "#define HDFA_DCE_REGION_SHIFT {REGION_SHIFT}");
    let _ = writeln!(h, "#define HDFA_DCE_ADDR(region, index) (((unsigned long)(region) << HDFA_DCE_REGION_SHIFT) | (unsigned long)(index))\n");
    for r in REGIONS {
        let _ = writeln!(
            h,
            "/* {} ({} bits) */\n#define HDFA_DCE_REGION_{} {}",
            r.doc, r.width, r.name, r.region as u32
        );
    }
    h.push('\n');
    for (i, r) in REGS.iter().enumerate() {
        let _ = writeln!(
            h,
            "#define HDFA_DCE_REG_{} {i} /* {} ({} bits) */",
            r.name, r.doc, r.width
        );
    }
    h.push_str("\n/* This engine's generation-time sizes. */\n");
    for (n, v, doc) in sizes_consts(sizes) {
        let _ = writeln!(h, "#define HDFA_DCE_{n} {v} /* {doc} */");
    }
    h.push_str("\n#endif /* HDFA_DCE_REGS_H */\n");
    h
}
