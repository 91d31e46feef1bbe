//! The engine's top level. One pass over a vector:
//! 1. LOAD (phase 0): the input stream fills the source buffer (C_s·H·W words) and
//!    the mask buffer. `in_last` must come with the configured stream's last word;
//!    early or missing, the pass still runs and `len_err` is raised.
//! 2. D2 (phase 1, only when G > 1): a 1×1 grouped binary conv from the source
//!    buffer into the P D2-result banks, narrowed by SH2.
//! 3. D1 (phase 2): the k×k grouped binary conv with dilation d over the target
//!    map. The channel table maps each D1 input channel through the shuffle to its
//!    D2 bank and address (or to the source buffer when G = 1); the tap table lists
//!    only the k² real taps, so the dilation's inserted zeros are never fetched. Taps
//!    that fall into the padding read nothing and add zero. Each finished output is
//!    narrowed by SH1 into one half of the ping-pong output buffer.
//!
//! Across a pool the source map is smaller than the target by `up` = 2^UP_LOG2 (2
//! or 4). D2 is a 1×1 conv, so it runs at the source size (HWS_M1 pixels). D1 runs
//! at the target size and reads, for a tap at target row y and column x, the source
//! word at row base ROW_BASE[y] = (y / up)·(W / up) plus column x >> UP_LOG2: each
//! source word serves every target pixel of its up × up block (nearest neighbour),
//! and no up-sampled copy is stored. With up = 1 the same path reads y·W + x.
//! 4. TAIL (phase 3): everything issued; the last blocks drain.
//!
//! **GEN mode** (register GEN = 1): no weight word is written or read. Each lane has
//! a feedback-weight generator ([`crate::fbgen::FbGen`], contract::fbgen) for its
//! output channels blk·P + l of the pass's D2 or D1 (seeds SEED2, SEED1): a pass
//! restarts it, a block moves it to the next channel, and each tap steps it, from the
//! channel's start state at the walk's first weight (per pixel), so the signs arrive in
//! the weight layout's order exactly when the weight memory's read data would.
//!
//! With G > 1 the source buffer is free once D2 is done (D1 reads the D2 banks), so
//! the next pass's error words load during D1 and TAIL. Its mask words wait for
//! LOAD (the drain still reads the mask buffer), and so does a word with `in_last`
//! (its length check starts the next pass). With G = 1, D1 reads the source buffer
//! and the next pass loads after the drain, as before.
//!
//! The drain runs beside D1: a finished block of P channels leaves in (c, y, x)
//! order, each word ANDed with its ReLU mask bit, while the next block computes in
//! the other half.
//!
//! Compute pipeline (one tap per cycle; it never stalls inside a block, a block only
//! waits at its start for its output half to be free):
//! - S0: counters address the tap, channel and weight tables.
//! - S1: tap row and column (table reads plus offsets); the row table is read.
//! - S1b: tap row/column range check; the buffer address (channel base + row base
//!   + column).
//! - S1c: the buffer read is issued.
//! - S2: the word is selected from its buffer (or D2 bank) and goes to the P lanes.
//! - S3, S4 (and the lanes' stage R before them): the lanes add or subtract the word
//!   by their sign bits, then narrow each finished sum ([`DCE_LANE_LATENCY`]).
//! - S5: on an output's last tap, the narrowed sums are written (D2 bank or output
//!   half).

use contract::dce::{DceSizes, ADDR_BITS, DCE_MAX_LANES, MASK_BITS};
use contract::format::ERROR_BITS;
use rust_hdl::prelude::*;

use super::lane::{DceLane, DCE_LANE_LATENCY};
use super::mem::DceMem;
use super::regs::{self, Region, CFG_ADDR_BITS, CFG_DATA_BITS, REGION_BITS, REGS};
use crate::fbgen::{FbGen, STATE_BITS};
use crate::narrow::SHIFT_BITS;
use crate::out_stage::ErrorOutStage;

// The write stage S5 is S2 + the lanes' latency: v3..v5 carry an output's flags
// alongside the lanes' three stages.
const _: () = assert!(DCE_LANE_LATENCY == 3);

/// Bits of a mask bit's index within its MASK_BITS-bit word.
const MASK_INDEX_BITS: usize = MASK_BITS.trailing_zeros() as usize;
/// Width of the drain's one-hot lane select: the output stage's, for the widest unit.
const SEL_BITS: usize = contract::params::BSBU_MAX_LANES;

/// The engine.
#[derive(LogicBlock)]
pub struct Dce {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Input stream: source errors, then packed mask words.
    pub in_data: Signal<In, Signed<ERROR_BITS>>,
    /// Input stream valid.
    pub in_valid: Signal<In, Bit>,
    /// Marks the last word of a pass's input (checked against the configured length).
    pub in_last: Signal<In, Bit>,
    /// Input stream ready (high in LOAD, and for the next pass's error words during
    /// D1 and TAIL when G > 1).
    pub in_ready: Signal<Out, Bit>,
    /// Output stream: e_i in (c, y, x) order.
    pub out_data: Signal<Out, Signed<ERROR_BITS>>,
    /// Output stream valid.
    pub out_valid: Signal<Out, Bit>,
    /// Output stream ready (backpressure).
    pub out_ready: Signal<In, Bit>,
    /// Marks a pass's last output.
    pub out_last: Signal<Out, Bit>,
    /// Phase: 0 LOAD, 1 D2, 2 D1, 3 TAIL.
    pub phase: Signal<Out, Bits<2>>,
    /// The last input stream's length disagreed with the configured map (in_last early or missing).
    pub len_err: Signal<Out, Bit>,
    /// Configuration write strobe.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration address: region (4 bits) and index (16 bits).
    pub cfg_addr: Signal<In, Bits<CFG_ADDR_BITS>>,
    /// Configuration data.
    pub cfg_data: Signal<In, Bits<CFG_DATA_BITS>>,
    /// A buffer error word is read this cycle (traffic counter).
    pub rd_err: Signal<Out, Bit>,
    /// A weight word (P sign bits) is read this cycle (traffic counter).
    pub rd_w: Signal<Out, Bit>,
    /// Source errors e_L, C_s·H·W words.
    ebuf: DceMem<Signed<ERROR_BITS>>,
    /// D2 results, one bank per lane: D2 output channel c sits in bank c mod P at (c / P)·H·W.
    mbuf: Vec<DceMem<Signed<ERROR_BITS>>>,
    /// Finished outputs, one bank per lane, two halves (ping-pong between compute and drain).
    obuf: Vec<DceMem<Signed<ERROR_BITS>>>,
    /// ReLU mask words.
    maskm: DceMem<Bits<ERROR_BITS>>,
    /// Tap table: row offset dy, two's complement.
    tapdy: DceMem<Bits<ADDR_BITS>>,
    /// Tap table: column offset dx, two's complement.
    tapdx: DceMem<Bits<ADDR_BITS>>,
    /// Row table: offset (y / up)·(W / up) of target row y's source row in a channel's map.
    rowbase: DceMem<Bits<ADDR_BITS>>,
    /// Channel table: base address of a channel's map; D1 entries first, D2 entries from the channel capacity `DceSizes::chans`. With the bank table, the shuffle.
    chan_addr: DceMem<Bits<ADDR_BITS>>,
    /// Channel table: one-hot D2 bank holding a D1 input channel.
    chan_bank: DceMem<Bits<DCE_MAX_LANES>>,
    /// Weight signs, P bits per word: D2 words, then D1 words.
    wmem: DceMem<Bits<DCE_MAX_LANES>>,
    /// The P lanes; lane l computes output channel blk·P + l.
    lanes: Vec<DceLane>,
    /// The output stage (shared with the bsbu): fetch -> mask -> output register.
    drain: ErrorOutStage,
    /// The scalar registers, in regs::REGS order (all ADDR_BITS wide; SH1/SH2 and HAS_D2 use their low bits).
    regs: Vec<DFF<Bits<ADDR_BITS>>>,
    /// One-hot select of the scalar register being written (bit = its index).
    reg_sel: Signal<Local, Bits<32>>,
    /// Phase register.
    state: DFF<Bits<2>>,
    /// S0: taps remain to be issued in this pass.
    run: DFF<Bit>,
    /// LOAD: the error words are in, mask words are arriving.
    lmask: DFF<Bit>,
    /// LOAD: next source-buffer address.
    lcnt: DFF<Bits<ADDR_BITS>>,
    /// LOAD: next mask-buffer address.
    mcnt: DFF<Bits<ADDR_BITS>>,
    /// The last input stream was shorter or longer than the configured map.
    len_err_r: DFF<Bit>,
    /// S0: tap index ky·k + kx.
    tap: DFF<Bits<ADDR_BITS>>,
    /// S0: input channel within the group.
    icl: DFF<Bits<ADDR_BITS>>,
    /// S0: first input channel of the current group.
    icbase: DFF<Bits<ADDR_BITS>>,
    /// S0: weight word within the block's row of (channel, tap).
    widx: DFF<Bits<ADDR_BITS>>,
    /// S0: first weight word of the current block.
    wbase: DFF<Bits<ADDR_BITS>>,
    /// S0: output pixel y·W + x.
    pix: DFF<Bits<ADDR_BITS>>,
    /// S0: output row.
    oy: DFF<Bits<ADDR_BITS>>,
    /// S0: output column.
    ox: DFF<Bits<ADDR_BITS>>,
    /// S0: block index within its group.
    bing: DFF<Bits<ADDR_BITS>>,
    /// S0: block of P output channels.
    blk: DFF<Bits<ADDR_BITS>>,
    /// S0: running output index blk·H·W + pix (D2 result address).
    bpix: DFF<Bits<ADDR_BITS>>,
    /// Output-buffer half 0 holds a block being computed or drained.
    busy0: DFF<Bit>,
    /// Output-buffer half 1 holds a block being computed or drained.
    busy1: DFF<Bit>,
    /// Output-buffer half 0 holds a finished block.
    full0: DFF<Bit>,
    /// Output-buffer half 1 holds a finished block.
    full1: DFF<Bit>,
    /// DRAIN: half 0's last word was fetched; the half is freed at the output stage's
    /// next advance, which takes that word's read data (a stalled stage re-reads the
    /// address, so the half must not be rewritten before).
    free0: DFF<Bit>,
    /// DRAIN: the same for half 1.
    free1: DFF<Bit>,
    /// S1 holds a tap.
    v1: DFF<Bit>,
    /// S1: first tap of an output.
    first1: DFF<Bit>,
    /// S1: last tap of an output.
    last1: DFF<Bit>,
    /// S1: last tap of the block.
    bend1: DFF<Bit>,
    /// S1: output-buffer half.
    half1: DFF<Bit>,
    /// S1: output row.
    oy1: DFF<Bits<ADDR_BITS>>,
    /// S1: output column.
    ox1: DFF<Bits<ADDR_BITS>>,
    /// S1: output pixel.
    pix1: DFF<Bits<ADDR_BITS>>,
    /// S1: running output index.
    bpix1: DFF<Bits<ADDR_BITS>>,
    /// S1b holds a tap.
    vb: DFF<Bit>,
    /// S1b: first tap of an output.
    firstb: DFF<Bit>,
    /// S1b: last tap of an output.
    lastb: DFF<Bit>,
    /// S1b: last tap of the block.
    bendb: DFF<Bit>,
    /// S1b: output-buffer half.
    halfb: DFF<Bit>,
    /// S1b: input row of the tap.
    tyb: DFF<Bits<ADDR_BITS>>,
    /// S1b: input column of the tap.
    txb: DFF<Bits<ADDR_BITS>>,
    /// S1b: base address of the tap's channel map.
    chanb: DFF<Bits<ADDR_BITS>>,
    /// S1b: the address's column part: source column (D1) or pixel (D2).
    colb: DFF<Bits<ADDR_BITS>>,
    /// S1b: the P weight signs of the tap.
    signsb: DFF<Bits<DCE_MAX_LANES>>,
    /// S1b: one-hot D2-result bank holding the tap's channel.
    bankb: DFF<Bits<DCE_MAX_LANES>>,
    /// S1b: output pixel.
    pixb: DFF<Bits<ADDR_BITS>>,
    /// S1b: running output index.
    bpixb: DFF<Bits<ADDR_BITS>>,
    /// S1c holds a tap.
    vc: DFF<Bit>,
    /// S1c: first tap of an output.
    firstc: DFF<Bit>,
    /// S1c: last tap of an output.
    lastc: DFF<Bit>,
    /// S1c: last tap of the block.
    bendc: DFF<Bit>,
    /// S1c: output-buffer half.
    halfc: DFF<Bit>,
    /// S1c: the tap lies inside the map.
    inbc: DFF<Bit>,
    /// S1c: buffer address of the tap.
    addrc: DFF<Bits<ADDR_BITS>>,
    /// S1c: the P weight signs of the tap.
    signsc: DFF<Bits<DCE_MAX_LANES>>,
    /// S1c: one-hot D2-result bank holding the tap's channel.
    bankc: DFF<Bits<DCE_MAX_LANES>>,
    /// S1c: output pixel.
    pixc: DFF<Bits<ADDR_BITS>>,
    /// S1c: running output index.
    bpixc: DFF<Bits<ADDR_BITS>>,
    /// S2 holds a tap.
    v2: DFF<Bit>,
    /// S2: first tap of an output.
    first2: DFF<Bit>,
    /// S2: last tap of an output.
    last2: DFF<Bit>,
    /// S2: last tap of the block.
    bend2: DFF<Bit>,
    /// S2: output-buffer half.
    half2: DFF<Bit>,
    /// S2: the tap lies inside the map (else it adds zero).
    inb2: DFF<Bit>,
    /// S2: the P weight signs of the tap (bit l: lane l subtracts).
    signs2: DFF<Bits<DCE_MAX_LANES>>,
    /// S2: one-hot D2-result bank holding the tap's channel.
    bank2: DFF<Bits<DCE_MAX_LANES>>,
    /// S2: output pixel.
    pix2: DFF<Bits<ADDR_BITS>>,
    /// S2: running output index.
    bpix2: DFF<Bits<ADDR_BITS>>,
    /// The lanes' narrowing shift: SH1 in D1, SH2 in D2.
    lshift: DFF<Bits<SHIFT_BITS>>,
    /// S3: the lanes closed an output (their inputs are in stage R).
    v3: DFF<Bit>,
    /// S3: it is the block's last output.
    bend3: DFF<Bit>,
    /// S3: output-buffer half.
    half3: DFF<Bit>,
    /// S3: output pixel.
    pix3: DFF<Bits<ADDR_BITS>>,
    /// S3: running output index.
    bpix3: DFF<Bits<ADDR_BITS>>,
    /// S4: the lanes closed an output (their sum is being narrowed).
    v4: DFF<Bit>,
    /// S4: it is the block's last output.
    bend4: DFF<Bit>,
    /// S4: output-buffer half.
    half4: DFF<Bit>,
    /// S4: output pixel.
    pix4: DFF<Bits<ADDR_BITS>>,
    /// S4: running output index.
    bpix4: DFF<Bits<ADDR_BITS>>,
    /// S5: the lanes' narrowed outputs are valid on their `y`.
    v5: DFF<Bit>,
    /// S5: it is the block's last output.
    bend5: DFF<Bit>,
    /// S5: output-buffer half.
    half5: DFF<Bit>,
    /// S5: output pixel.
    pix5: DFF<Bits<ADDR_BITS>>,
    /// S5: running output index.
    bpix5: DFF<Bits<ADDR_BITS>>,
    /// DRAIN: half being drained.
    d_half: DFF<Bit>,
    /// DRAIN: one-hot lane (channel within the block) of the next fetch.
    dl: DFF<Bits<SEL_BITS>>,
    /// DRAIN: pixel of the next fetch.
    dp: DFF<Bits<ADDR_BITS>>,
    /// DRAIN: output index of the next fetch (mask bit).
    o: DFF<Bits<ADDR_BITS>>,
    /// DRAIN: output-buffer address presented last cycle (held while stalled).
    pa_addr: DFF<Bits<ADDR_BITS>>,
    /// DRAIN: mask address presented last cycle (held while stalled).
    pa_maddr: DFF<Bits<ADDR_BITS>>,
    /// DRAIN: mask bit of the fetched output within its mask word.
    s1_bit: DFF<Bits<MASK_INDEX_BITS>>,
    /// Register H: map height.
    r_h: Signal<Local, Bits<ADDR_BITS>>,
    /// Register W: map width.
    r_w: Signal<Local, Bits<ADDR_BITS>>,
    /// Register HW: H·W (offset of output-buffer half 1).
    r_hw: Signal<Local, Bits<ADDR_BITS>>,
    /// Register HW_M1: H·W − 1.
    r_hw_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register W_M1: W − 1.
    r_w_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register EIN_M1: C_s·H·W − 1 (last source word).
    r_ein_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register MASK_M1: mask words − 1.
    r_mask_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register OUT_M1: C_t·H·W − 1 (last output).
    r_out_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register NTAP_M1: k² − 1.
    r_ntap_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register ICG1_M1: D1 input channels per group − 1.
    r_icg1_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register ICG2_M1: D2 input channels per group − 1.
    r_icg2_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register NBLK_M1: C_t / P − 1 (last block).
    r_nblk_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register BPG_M1: blocks per group − 1.
    r_bpg_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register ICG1: D1 input channels per group.
    r_icg1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register ICG2: D2 input channels per group.
    r_icg2: Signal<Local, Bits<ADDR_BITS>>,
    /// Register WS1: D1 weight words per block (channels per group · k²).
    r_ws1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register WS2: D2 weight words per block.
    r_ws2: Signal<Local, Bits<ADDR_BITS>>,
    /// Register SH1: scaling shift after D1.
    r_sh1: Signal<Local, Bits<SHIFT_BITS>>,
    /// Register SH2: scaling shift after D2.
    r_sh2: Signal<Local, Bits<SHIFT_BITS>>,
    /// Register HAS_D2: 1: run D2 and the shuffle (G > 1).
    r_has_d2: Signal<Local, Bit>,
    /// Register HWS_M1: source H·W − 1 (D2's last pixel).
    r_hws_m1: Signal<Local, Bits<ADDR_BITS>>,
    /// Register UP_LOG2: log2 of the up-sampling factor (0, 1 or 2).
    r_up_log2: Signal<Local, Bits<2>>,
    /// GEN by name: the weight signs are regenerated, not read from `wmem`.
    r_gen: Signal<Local, Bit>,
    /// SEED2_LO by name.
    r_seed2_lo: Signal<Local, Bits<ADDR_BITS>>,
    /// SEED2_HI by name.
    r_seed2_hi: Signal<Local, Bits<ADDR_BITS>>,
    /// SEED1_LO by name.
    r_seed1_lo: Signal<Local, Bits<ADDR_BITS>>,
    /// SEED1_HI by name.
    r_seed1_hi: Signal<Local, Bits<ADDR_BITS>>,
    /// The pass's generator seed (D2's or D1's), 32 bits from two registers.
    gseed: Signal<Local, Bits<STATE_BITS>>,
    /// 16: the high half's place in a seed.
    sh16: Constant<Bits<5>>,
    /// 0: the generators' row base (a conv path's channels are rows from 0).
    gzero: Constant<Bits<STATE_BITS>>,
    /// The lanes' generated signs (bit l: lane l's state bit 31).
    gsigns: Signal<Local, Bits<DCE_MAX_LANES>>,
    /// No signs set.
    zero_signs: Constant<Bits<DCE_MAX_LANES>>,
    /// One lane's generated sign.
    gsign: Signal<Local, Bit>,
    /// The walk moves to the next block of P output channels this cycle.
    blk_inc: Signal<Local, Bit>,
    /// The weight index is 0: the next tap restarts its output channel's weights.
    wz: DFF<Bit>,
    /// Per lane, the feedback-weight generator of its output channels (GEN mode).
    gens: Vec<FbGen>,
    /// Current compute pass: 0 = D2, 1 = D1 (phase bit 1: D1 and TAIL).
    pass_d1: Signal<Local, Bit>,
    /// S0: output-buffer half of the current block: the block's parity.
    half: Signal<Local, Bit>,
    /// S0: input channel (channel-table index): the group's first channel + icl.
    ic: Signal<Local, Bits<ADDR_BITS>>,
    /// Configuration address shifted down to its region.
    addr_hi: Signal<Local, Bits<CFG_ADDR_BITS>>,
    /// Configuration address: region.
    region: Signal<Local, Bits<REGION_BITS>>,
    /// Configuration address: index within the region.
    idx: Signal<Local, Bits<ADDR_BITS>>,
    /// A configuration write to a scalar register.
    cfg_reg: Signal<Local, Bit>,
    /// An input word is taken.
    in_fire: Signal<Local, Bit>,
    /// The next pass's error words may load during this pass (G > 1, D2 done).
    early: Signal<Local, Bit>,
    /// The word at the input is the configured stream's last.
    in_final: Signal<Local, Bit>,
    /// Start a compute pass: zero the S0 counters (the cycle after the phase changes).
    seq_reset: Signal<Local, Bit>,
    /// The phase changed to D2 or D1 last cycle: the pass starts now, once its limits below are registered.
    start: DFF<Bit>,
    /// Last tap of the current pass (registered from the phase: off the counters' enable path).
    lim_tap: DFF<Bits<ADDR_BITS>>,
    /// Last input channel within a group, current pass.
    lim_icl: DFF<Bits<ADDR_BITS>>,
    /// Input channels per group, current pass.
    icg: DFF<Bits<ADDR_BITS>>,
    /// Weight words per block, current pass.
    ws: DFF<Bits<ADDR_BITS>>,
    /// The current block's output half is taken.
    busy_h: Signal<Local, Bit>,
    /// S0 is at a block's first tap.
    bstart: Signal<Local, Bit>,
    /// S0 issues a tap this cycle.
    go: Signal<Local, Bit>,
    /// S0: last tap.
    tap_last: Signal<Local, Bit>,
    /// S0: last input channel of the group.
    icl_last: Signal<Local, Bit>,
    /// Last pixel of the current pass: the source map's in D2, the target's in D1.
    lim_pix: DFF<Bits<ADDR_BITS>>,
    /// S0: last pixel.
    pix_last: Signal<Local, Bit>,
    /// S0: last block.
    blk_last: Signal<Local, Bit>,
    /// Taps read the D2 result (D1 pass with G > 1), else the source buffer.
    src_m: Signal<Local, Bit>,
    /// S1: tap row offset (two's complement).
    sdy: Signal<Local, Bits<ADDR_BITS>>,
    /// S1: tap column offset.
    sdx: Signal<Local, Bits<ADDR_BITS>>,
    /// S1: input row; out of range (also when negative: it wraps) means padding.
    ty: Signal<Local, Bits<ADDR_BITS>>,
    /// S1: input column.
    tx: Signal<Local, Bits<ADDR_BITS>>,
    /// S1b: the tap lies inside the map.
    inb: Signal<Local, Bit>,
    /// S1: the address's column part: source column tx >> UP_LOG2 in D1, the pixel in D2.
    col: Signal<Local, Bits<ADDR_BITS>>,
    /// S1b: the address's row part: ROW_BASE[ty] in D1, 0 in D2.
    rowv: Signal<Local, Bits<ADDR_BITS>>,
    /// S1c: a buffer word is read.
    ren_src: Signal<Local, Bit>,
    /// S2: the tap's error word (0 for padding).
    word: Signal<Local, Signed<ERROR_BITS>>,
    /// S3: output-buffer address.
    oaddr: Signal<Local, Bits<ADDR_BITS>>,
    /// No tap in S1..S5 (S1b and S1c included).
    pipe_empty: Signal<Local, Bit>,
    /// DRAIN: the half being drained is finished.
    full_h: Signal<Local, Bit>,
    /// DRAIN: output-buffer address presented this cycle.
    a_addr: Signal<Local, Bits<ADDR_BITS>>,
    /// DRAIN: mask address presented this cycle.
    a_maddr: Signal<Local, Bits<ADDR_BITS>>,
    /// DRAIN: the fetched output, from its lane's bank.
    sel_data: Signal<Local, Signed<ERROR_BITS>>,
    /// DRAIN: the mask word shifted to the fetched output's bit (a slice of an expression does not emit valid Verilog).
    mshift: Signal<Local, Bits<ERROR_BITS>>,
    /// DRAIN: the fetched output's mask bit.
    mbit: Signal<Local, Bit>,
    /// Phase LOAD.
    st_load: Constant<Bits<2>>,
    /// Phase D2.
    st_d2: Constant<Bits<2>>,
    /// Phase D1.
    st_d1: Constant<Bits<2>>,
    /// Phase TAIL: all taps issued, the last blocks drain.
    st_tail: Constant<Bits<2>>,
    /// Region of the scalar registers.
    rg_regs: Constant<Bits<REGION_BITS>>,
    /// Region of the tap table's dy.
    rg_tapdy: Constant<Bits<REGION_BITS>>,
    /// Region of the tap table's dx.
    rg_tapdx: Constant<Bits<REGION_BITS>>,
    /// Region of the row table.
    rg_rowbase: Constant<Bits<REGION_BITS>>,
    /// Region of the channel table's addresses.
    rg_chanaddr: Constant<Bits<REGION_BITS>>,
    /// Region of the channel table's banks.
    rg_chanbank: Constant<Bits<REGION_BITS>>,
    /// Region of the weight memory.
    rg_weight: Constant<Bits<REGION_BITS>>,
    /// Where the region starts in the configuration address (regs::REGION_SHIFT).
    region_shift: Constant<Bits<5>>,
    /// 1, shifted to the written register's one-hot select.
    one32: Constant<Bits<32>>,
    /// Zero counter.
    zero16: Constant<Bits<ADDR_BITS>>,
    /// log2 MASK_BITS: output index -> mask word.
    mask_shift: Constant<Bits<MASK_INDEX_BITS>>,
    /// Channel-table index of D2's first entry (the engine's channel capacity).
    chan_d2: Constant<Bits<ADDR_BITS>>,
    /// Weight-memory index of D1's first word.
    w1_base: Constant<Bits<ADDR_BITS>>,
    /// One-hot bit of lane P − 1.
    top_sel: Constant<Bits<SEL_BITS>>,
    /// One-hot bit of lane 0.
    first_sel: Constant<Bits<SEL_BITS>>,
    /// Zero error word.
    zero_err: Constant<Signed<ERROR_BITS>>,
    /// Lanes (loop bound).
    _lanes: usize,
    /// D2 banks (loop bound): P, or 0 when the engine has no D2.
    _mbanks: usize,
    /// Scalar registers (loop bound).
    _nregs: usize,
}

impl Dce {
    /// An engine with the generation-time `sizes` (validated by the caller).
    pub fn new(sizes: &DceSizes) -> Self {
        let mbanks = if sizes.mbuf > 0 { sizes.lanes } else { 0 };
        with_defaults!(Dce {
            ebuf: DceMem::new(sizes.ebuf),
            mbuf: (0..mbanks).map(|_| DceMem::new(sizes.mbuf)).collect(),
            obuf: (0..sizes.lanes)
                .map(|_| DceMem::new(2 * sizes.map))
                .collect(),
            maskm: DceMem::new(sizes.mask),
            tapdy: DceMem::new(sizes.taps),
            tapdx: DceMem::new(sizes.taps),
            rowbase: DceMem::new(regs::MAX_ROWS),
            chan_addr: DceMem::new(2 * sizes.chans),
            chan_bank: DceMem::new(sizes.chans),
            wmem: DceMem::new(sizes.w2 + sizes.w1),
            lanes: (0..sizes.lanes).map(|_| DceLane::default()).collect(),
            gens: (0..sizes.lanes).map(|l| FbGen::new(l, sizes.lanes, false)).collect(),
            sh16: Constant::new(16u64.to_bits()),
            gzero: Constant::new(0u64.to_bits()),
            zero_signs: Constant::new(0u64.to_bits()),
            drain: ErrorOutStage::default(),
            regs: (0..REGS.len()).map(|_| Default::default()).collect(),
            st_load: Constant::new(0u64.to_bits()),
            st_d2: Constant::new(1u64.to_bits()),
            st_d1: Constant::new(2u64.to_bits()),
            st_tail: Constant::new(3u64.to_bits()),
            rg_regs: Constant::new((Region::Regs as u64).to_bits()),
            rg_tapdy: Constant::new((Region::TapDy as u64).to_bits()),
            rg_tapdx: Constant::new((Region::TapDx as u64).to_bits()),
            rg_rowbase: Constant::new((Region::RowBase as u64).to_bits()),
            rg_chanaddr: Constant::new((Region::ChanAddr as u64).to_bits()),
            rg_chanbank: Constant::new((Region::ChanBank as u64).to_bits()),
            rg_weight: Constant::new((Region::Weight as u64).to_bits()),
            region_shift: Constant::new((regs::REGION_SHIFT as u64).to_bits()),
            one32: Constant::new(1u64.to_bits()),
            zero16: Constant::new(0u64.to_bits()),
            mask_shift: Constant::new((MASK_INDEX_BITS as u64).to_bits()),
            chan_d2: Constant::new((sizes.chans as u64).to_bits()),
            w1_base: Constant::new((sizes.w2 as u64).to_bits()),
            top_sel: Constant::new((1u64 << (sizes.lanes - 1)).to_bits()),
            first_sel: Constant::new(1u64.to_bits()),
            zero_err: Constant::new(0i64.to_signed_bits()),
            _lanes: sizes.lanes,
            _mbanks: mbanks,
            _nregs: REGS.len(),
        } defaults:
            clock, in_data, in_valid, in_last, in_ready, out_data, out_valid, out_ready,
            out_last, phase, len_err, cfg_we, cfg_addr, cfg_data, rd_err, rd_w, reg_sel,
            state, run, lmask, lcnt, mcnt, len_err_r, tap, icl, icbase, widx, wbase,
            pix, oy, ox, bing, blk, bpix, busy0, busy1, full0, full1, free0, free1, v1, first1, last1,
            bend1, half1, oy1, ox1, pix1, bpix1, vb, firstb, lastb, bendb, halfb, tyb, txb,
            chanb, colb, signsb, bankb, pixb, bpixb, vc, firstc, lastc, bendc, halfc, inbc,
            addrc, signsc, bankc, pixc, bpixc, lshift, v2, first2, last2, bend2, half2, inb2,
            signs2, bank2, pix2, bpix2, v3, bend3, half3, pix3, bpix3, v4, bend4, half4,
            pix4, bpix4, v5, bend5, half5, pix5, bpix5, d_half, dl, dp,
            o, pa_addr, pa_maddr, s1_bit, r_h, r_w, r_hw, r_hw_m1, r_w_m1, r_ein_m1,
            r_mask_m1, r_out_m1, r_ntap_m1, r_icg1_m1, r_icg2_m1, r_nblk_m1, r_bpg_m1,
            r_icg1, r_icg2, r_ws1, r_ws2, r_sh1, r_sh2, r_has_d2, r_hws_m1, r_up_log2, pass_d1,
            r_gen, r_seed2_lo, r_seed2_hi, r_seed1_lo, r_seed1_hi, gseed, gsigns, gsign,
            blk_inc, wz,
            half, ic,
            addr_hi, region, idx, cfg_reg, in_fire, early, in_final, seq_reset, start, lim_tap,
            lim_icl, icg, ws, busy_h, bstart, go, tap_last, icl_last, lim_pix, pix_last,
            blk_last, src_m, sdy, sdx, ty, tx, inb, col, rowv, ren_src, word, oaddr,
            pipe_empty, full_h, a_addr, a_maddr, sel_data, mshift, mbit
        )
    }
}

impl Logic for Dce {
    #[hdl_gen]
    fn update(&mut self) {
        // Clocks, and every register holds unless assigned below.
        clock!(self, clock, ebuf, maskm, tapdy, tapdx, rowbase, chan_addr, chan_bank, wmem);
        for l in 0..self._mbanks {
            self.mbuf[l].clock.next = self.clock.val();
        }
        for l in 0..self._lanes {
            self.obuf[l].clock.next = self.clock.val();
            self.lanes[l].clock.next = self.clock.val();
        }
        dff_setup!(
            self, clock, state, run, lmask, lcnt, mcnt, len_err_r, tap, icl, icbase, widx, wbase,
            pix, oy, ox, bing, blk, bpix, busy0, busy1, full0, full1, free0, free1, v1, first1,
            last1, bend1, half1, oy1, ox1, pix1, bpix1, vb, firstb, lastb, bendb, halfb, tyb, txb,
            chanb, colb, signsb, bankb, pixb, bpixb, vc, firstc, lastc, bendc, halfc, inbc, addrc,
            signsc, bankc, pixc, bpixc, lshift, v2, first2, last2, bend2, half2, inb2, signs2,
            bank2, pix2, bpix2, v3, bend3, half3, pix3, bpix3, v4, bend4, half4, pix4, bpix4, v5,
            bend5, half5, pix5, bpix5, d_half, dl, dp, o, pa_addr, pa_maddr, s1_bit, start,
            lim_tap, lim_icl, icg, ws, lim_pix, wz
        );
        // Configuration writes.
        self.addr_hi.next = self.cfg_addr.val() >> self.region_shift.val();
        self.region.next = self.addr_hi.val().get_bits::<REGION_BITS>(0);
        self.idx.next = self.cfg_addr.val().get_bits::<ADDR_BITS>(0);
        self.cfg_reg.next = self.cfg_we.val() & (self.region.val() == self.rg_regs.val());
        // Scalar registers: one register file, decoded one-hot by index (REGS order).
        self.reg_sel.next = self.one32.val() << self.idx.val();
        for i in 0..self._nregs {
            self.regs[i].clock.next = self.clock.val();
            self.regs[i].d.next = self.regs[i].q.val();
            if self.cfg_reg.val() & self.reg_sel.val().get_bit(i) {
                self.regs[i].d.next = self.cfg_data.val().get_bits::<ADDR_BITS>(0);
            }
        }
        // The registers by name (index = position in regs::REGS; a test checks this).
        self.r_h.next = self.regs[0].q.val();
        self.r_w.next = self.regs[1].q.val();
        self.r_hw.next = self.regs[2].q.val();
        self.r_hw_m1.next = self.regs[3].q.val();
        self.r_w_m1.next = self.regs[4].q.val();
        self.r_ein_m1.next = self.regs[5].q.val();
        self.r_mask_m1.next = self.regs[6].q.val();
        self.r_out_m1.next = self.regs[7].q.val();
        self.r_ntap_m1.next = self.regs[8].q.val();
        self.r_icg1_m1.next = self.regs[9].q.val();
        self.r_icg2_m1.next = self.regs[10].q.val();
        self.r_nblk_m1.next = self.regs[11].q.val();
        self.r_bpg_m1.next = self.regs[12].q.val();
        self.r_icg1.next = self.regs[13].q.val();
        self.r_icg2.next = self.regs[14].q.val();
        self.r_ws1.next = self.regs[15].q.val();
        self.r_ws2.next = self.regs[16].q.val();
        self.r_sh1.next = self.regs[17].q.val().get_bits::<SHIFT_BITS>(0);
        self.r_sh2.next = self.regs[18].q.val().get_bits::<SHIFT_BITS>(0);
        self.r_has_d2.next = self.regs[19].q.val().get_bit(0);
        self.r_hws_m1.next = self.regs[20].q.val();
        self.r_up_log2.next = self.regs[21].q.val().get_bits::<2>(0);
        self.r_gen.next = self.regs[22].q.val().get_bit(0);
        self.r_seed2_lo.next = self.regs[23].q.val();
        self.r_seed2_hi.next = self.regs[24].q.val();
        self.r_seed1_lo.next = self.regs[25].q.val();
        self.r_seed1_hi.next = self.regs[26].q.val();
        self.tapdy.waddr.next = self.idx.val();
        self.tapdy.wdata.next = self.cfg_data.val().get_bits::<ADDR_BITS>(0);
        self.tapdy.we.next = self.cfg_we.val() & (self.region.val() == self.rg_tapdy.val());
        self.tapdx.waddr.next = self.idx.val();
        self.tapdx.wdata.next = self.cfg_data.val().get_bits::<ADDR_BITS>(0);
        self.tapdx.we.next = self.cfg_we.val() & (self.region.val() == self.rg_tapdx.val());
        self.rowbase.waddr.next = self.idx.val();
        self.rowbase.wdata.next = self.cfg_data.val().get_bits::<ADDR_BITS>(0);
        self.rowbase.we.next = self.cfg_we.val() & (self.region.val() == self.rg_rowbase.val());
        self.chan_addr.waddr.next = self.idx.val();
        self.chan_addr.wdata.next = self.cfg_data.val().get_bits::<ADDR_BITS>(0);
        self.chan_addr.we.next = self.cfg_we.val() & (self.region.val() == self.rg_chanaddr.val());
        self.chan_bank.waddr.next = self.idx.val();
        self.chan_bank.wdata.next = self.cfg_data.val().get_bits::<DCE_MAX_LANES>(0);
        self.chan_bank.we.next = self.cfg_we.val() & (self.region.val() == self.rg_chanbank.val());
        self.wmem.waddr.next = self.idx.val();
        self.wmem.wdata.next = self.cfg_data.val().get_bits::<DCE_MAX_LANES>(0);
        self.wmem.we.next = self.cfg_we.val() & (self.region.val() == self.rg_weight.val());
        // Derived state.
        self.pass_d1.next = self.state.q.val().get_bit(1);
        self.half.next = self.blk.q.val().get_bit(0);
        self.ic.next = self.icbase.q.val() + self.icl.q.val();
        // Ports.
        self.phase.next = self.state.q.val();
        self.len_err.next = self.len_err_r.q.val();
        self.early.next =
            self.r_has_d2.val() & self.pass_d1.val() & !self.lmask.q.val() & !self.in_last.val();
        self.in_ready.next = (self.state.q.val() == self.st_load.val()) | self.early.val();
        self.out_valid.next = self.drain.out_valid.val();
        self.out_data.next = self.drain.out_data.val();
        self.out_last.next = self.drain.out_last.val();
        // LOAD: source errors, then mask words.
        self.seq_reset.next = self.start.q.val();
        self.start.d.next = false;
        self.in_fire.next = self.in_valid.val() & self.in_ready.val();
        self.in_final.next = self.lmask.q.val() & (self.mcnt.q.val() == self.r_mask_m1.val());
        self.ebuf.waddr.next = self.lcnt.q.val();
        self.ebuf.wdata.next = self.in_data.val();
        self.ebuf.we.next = false;
        self.maskm.waddr.next = self.mcnt.q.val();
        self.maskm.wdata.next = unsigned_cast(self.in_data.val());
        self.maskm.we.next = false;
        if self.in_fire.val() {
            if self.lmask.q.val() {
                self.maskm.we.next = true;
                self.mcnt.d.next = self.mcnt.q.val() + 1;
            } else {
                self.ebuf.we.next = true;
                self.lcnt.d.next = self.lcnt.q.val() + 1;
                if self.lcnt.q.val() == self.r_ein_m1.val() {
                    self.lmask.d.next = true;
                    self.lcnt.d.next = self.zero16.val();
                }
            }
            if self.in_last.val() | self.in_final.val() {
                self.lmask.d.next = false;
                self.lcnt.d.next = self.zero16.val();
                self.mcnt.d.next = self.zero16.val();
                self.len_err_r.d.next = !(self.in_last.val() & self.in_final.val());
                self.start.d.next = true;
                self.o.d.next = self.zero16.val();
                self.dp.d.next = self.zero16.val();
                self.dl.d.next = self.first_sel.val();
                self.d_half.d.next = false;
                if self.r_has_d2.val() {
                    self.state.d.next = self.st_d2.val();
                } else {
                    self.state.d.next = self.st_d1.val();
                }
            }
        }
        // S0: issue one tap per cycle.
        // The pass's limits, registered (the pass starts a cycle after its phase).
        self.lim_tap.d.next = self.zero16.val();
        self.lim_icl.d.next = self.r_icg2_m1.val();
        self.icg.d.next = self.r_icg2.val();
        self.ws.d.next = self.r_ws2.val();
        self.lim_pix.d.next = self.r_hws_m1.val();
        if self.pass_d1.val() {
            self.lim_pix.d.next = self.r_hw_m1.val();
            self.lim_tap.d.next = self.r_ntap_m1.val();
            self.lim_icl.d.next = self.r_icg1_m1.val();
            self.icg.d.next = self.r_icg1.val();
            self.ws.d.next = self.r_ws1.val();
        }
        self.busy_h.next = self.busy0.q.val();
        if self.half.val() {
            self.busy_h.next = self.busy1.q.val();
        }
        self.bstart.next = (self.pix.q.val() == self.zero16.val())
            & (self.icl.q.val() == self.zero16.val())
            & (self.tap.q.val() == self.zero16.val());
        self.go.next =
            self.run.q.val() & !(self.pass_d1.val() & self.bstart.val() & self.busy_h.val());
        self.tap_last.next = self.tap.q.val() == self.lim_tap.q.val();
        self.icl_last.next = self.icl.q.val() == self.lim_icl.q.val();
        // D2 walks the source pixels with the target's row length W: its rows and
        // columns are then never out of range (source pixels < H·W), and D2 reads
        // the pixel index itself.
        self.pix_last.next = self.pix.q.val() == self.lim_pix.q.val();
        self.blk_last.next = self.blk.q.val() == self.r_nblk_m1.val();
        self.tapdy.raddr.next = self.tap.q.val();
        self.tapdy.ren.next = true;
        self.tapdx.raddr.next = self.tap.q.val();
        self.tapdx.ren.next = true;
        self.chan_addr.raddr.next = self.ic.val() + self.chan_d2.val();
        if self.pass_d1.val() {
            self.chan_addr.raddr.next = self.ic.val();
        }
        self.chan_addr.ren.next = true;
        self.chan_bank.raddr.next = self.ic.val();
        self.chan_bank.ren.next = true;
        self.wmem.raddr.next = self.wbase.q.val() + self.widx.q.val();
        if self.pass_d1.val() {
            self.wmem.raddr.next = self.wbase.q.val() + self.widx.q.val() + self.w1_base.val();
        }
        // Generated weights are not read: the lanes' generators step instead.
        self.wmem.ren.next = self.go.val() & !self.r_gen.val();
        self.rd_w.next = self.go.val() & !self.r_gen.val();
        self.blk_inc.next = false;
        self.v1.d.next = self.go.val();
        self.first1.d.next =
            (self.icl.q.val() == self.zero16.val()) & (self.tap.q.val() == self.zero16.val());
        self.last1.d.next = self.tap_last.val() & self.icl_last.val();
        self.bend1.d.next = self.tap_last.val() & self.icl_last.val() & self.pix_last.val();
        self.half1.d.next = self.half.val();
        self.oy1.d.next = self.oy.q.val();
        self.ox1.d.next = self.ox.q.val();
        self.pix1.d.next = self.pix.q.val();
        self.bpix1.d.next = self.bpix.q.val();
        if self.go.val() {
            if self.pass_d1.val() & self.bstart.val() {
                if self.half.val() {
                    self.busy1.d.next = true;
                } else {
                    self.busy0.d.next = true;
                }
            }
            if !self.tap_last.val() {
                self.tap.d.next = self.tap.q.val() + 1;
                self.widx.d.next = self.widx.q.val() + 1;
                self.wz.d.next = false;
            } else {
                self.tap.d.next = self.zero16.val();
                if !self.icl_last.val() {
                    self.icl.d.next = self.icl.q.val() + 1;
                    self.widx.d.next = self.widx.q.val() + 1;
                    self.wz.d.next = false;
                } else {
                    self.icl.d.next = self.zero16.val();
                    self.widx.d.next = self.zero16.val();
                    self.wz.d.next = true;
                    self.bpix.d.next = self.bpix.q.val() + 1;
                    if !self.pix_last.val() {
                        self.pix.d.next = self.pix.q.val() + 1;
                        if self.ox.q.val() == self.r_w_m1.val() {
                            self.ox.d.next = self.zero16.val();
                            self.oy.d.next = self.oy.q.val() + 1;
                        } else {
                            self.ox.d.next = self.ox.q.val() + 1;
                        }
                    } else {
                        self.pix.d.next = self.zero16.val();
                        self.ox.d.next = self.zero16.val();
                        self.oy.d.next = self.zero16.val();
                        self.blk.d.next = self.blk.q.val() + 1;
                        self.blk_inc.next = true;
                        self.wbase.d.next = self.wbase.q.val() + self.ws.q.val();
                        if self.bing.q.val() == self.r_bpg_m1.val() {
                            self.bing.d.next = self.zero16.val();
                            self.icbase.d.next = self.icbase.q.val() + self.icg.q.val();
                        } else {
                            self.bing.d.next = self.bing.q.val() + 1;
                        }
                        if self.blk_last.val() {
                            self.run.d.next = false;
                        }
                    }
                }
            }
        }
        // The lanes' generators (GEN mode): lane l's rows are output channels
        // blk·P + l of the pass's D2 or D1; a pass restarts them, a block moves them on,
        // each tap steps them (from the row's start when the weight index is 0), and
        // their sign bits arrive with the cycle a weight memory's read data would.
        self.gseed.next = (bit_cast::<STATE_BITS, ADDR_BITS>(self.r_seed2_hi.val())
            << self.sh16.val())
            | bit_cast::<STATE_BITS, ADDR_BITS>(self.r_seed2_lo.val());
        if self.pass_d1.val() {
            self.gseed.next = (bit_cast::<STATE_BITS, ADDR_BITS>(self.r_seed1_hi.val())
                << self.sh16.val())
                | bit_cast::<STATE_BITS, ADDR_BITS>(self.r_seed1_lo.val());
        }
        self.gsigns.next = self.zero_signs.val();
        for l in 0..self._lanes {
            self.gens[l].clock.next = self.clock.val();
            self.gens[l].seed.next = self.gseed.val();
            // A conv path's output channels are its rows from 0.
            self.gens[l].base.next = self.gzero.val();
            self.gens[l].restart.next = self.seq_reset.val();
            self.gens[l].next_row.next = self.blk_inc.val();
            self.gens[l].step.next = self.go.val() & self.r_gen.val();
            self.gens[l].from_row.next = self.wz.q.val();
            self.gsign.next = self.gens[l].x.val().get_bit(31);
            self.gsigns.next = self.gsigns.val().replace_bit(l, self.gsign.val());
        }
        // S1: tap row and column; the row table is read.
        self.sdy.next = self.zero16.val();
        self.sdx.next = self.zero16.val();
        if self.pass_d1.val() {
            self.sdy.next = self.tapdy.rdata.val();
            self.sdx.next = self.tapdx.rdata.val();
        }
        self.ty.next = self.oy1.q.val() + self.sdy.val();
        self.tx.next = self.ox1.q.val() + self.sdx.val();
        // A padding row (negative: it wraps) reads some entry; the tap is dropped at S2.
        self.rowbase.raddr.next = self.ty.val();
        self.rowbase.ren.next = true;
        self.col.next = self.pix1.q.val();
        if self.pass_d1.val() {
            self.col.next = self.tx.val() >> self.r_up_log2.val();
        }
        self.vb.d.next = self.v1.q.val();
        self.firstb.d.next = self.first1.q.val();
        self.lastb.d.next = self.last1.q.val();
        self.bendb.d.next = self.bend1.q.val();
        self.halfb.d.next = self.half1.q.val();
        self.tyb.d.next = self.ty.val();
        self.txb.d.next = self.tx.val();
        self.chanb.d.next = self.chan_addr.rdata.val();
        self.colb.d.next = self.col.val();
        self.signsb.d.next = self.wmem.rdata.val();
        if self.r_gen.val() {
            self.signsb.d.next = self.gsigns.val();
        }
        self.bankb.d.next = self.chan_bank.rdata.val();
        self.pixb.d.next = self.pix1.q.val();
        self.bpixb.d.next = self.bpix1.q.val();
        // S1b: range check; the buffer address.
        self.inb.next = (self.tyb.q.val() < self.r_h.val()) & (self.txb.q.val() < self.r_w.val());
        self.rowv.next = self.zero16.val();
        if self.pass_d1.val() {
            self.rowv.next = self.rowbase.rdata.val();
        }
        self.addrc.d.next = self.chanb.q.val() + self.rowv.val() + self.colb.q.val();
        self.vc.d.next = self.vb.q.val();
        self.firstc.d.next = self.firstb.q.val();
        self.lastc.d.next = self.lastb.q.val();
        self.bendc.d.next = self.bendb.q.val();
        self.halfc.d.next = self.halfb.q.val();
        self.inbc.d.next = self.inb.val();
        self.signsc.d.next = self.signsb.q.val();
        self.bankc.d.next = self.bankb.q.val();
        self.pixc.d.next = self.pixb.q.val();
        self.bpixc.d.next = self.bpixb.q.val();
        // S1c: the read is issued.
        self.src_m.next = self.pass_d1.val() & self.r_has_d2.val();
        self.ren_src.next = self.vc.q.val() & self.inbc.q.val();
        self.rd_err.next = self.ren_src.val();
        self.ebuf.raddr.next = self.addrc.q.val();
        // The buffers read on every tap (a padding tap's word is dropped at S2 by
        // inb2), so the range compare stays off the read enables' path; `rd_err`
        // counts the reads the golden model makes.
        self.ebuf.ren.next = self.vc.q.val() & !self.src_m.val();
        for l in 0..self._mbanks {
            self.mbuf[l].raddr.next = self.addrc.q.val();
            self.mbuf[l].ren.next = self.vc.q.val() & self.src_m.val();
        }
        self.v2.d.next = self.vc.q.val();
        self.first2.d.next = self.firstc.q.val();
        self.last2.d.next = self.lastc.q.val();
        self.bend2.d.next = self.bendc.q.val();
        self.half2.d.next = self.halfc.q.val();
        self.inb2.d.next = self.inbc.q.val();
        self.signs2.d.next = self.signsc.q.val();
        self.bank2.d.next = self.bankc.q.val();
        self.pix2.d.next = self.pixc.q.val();
        self.bpix2.d.next = self.bpixc.q.val();
        // S2: the lanes add or subtract the word.
        self.word.next = self.zero_err.val();
        if self.inb2.q.val() {
            if self.src_m.val() {
                for l in 0..self._mbanks {
                    if self.bank2.q.val().get_bit(l) {
                        self.word.next = self.mbuf[l].rdata.val();
                    }
                }
            } else {
                self.word.next = self.ebuf.rdata.val();
            }
        }
        for l in 0..self._lanes {
            self.lanes[l].word.next = self.word.val();
            self.lanes[l].neg.next = self.signs2.q.val().get_bit(l);
            self.lanes[l].first.next = self.first2.q.val();
            self.lanes[l].en.next = self.v2.q.val();
            self.lanes[l].close.next = self.v2.q.val() & self.last2.q.val();
            self.lanes[l].shift.next = self.lshift.q.val();
        }
        // The pass's shift, registered (a pass changes only with the pipeline empty,
        // and its first narrowing comes cycles later).
        self.lshift.d.next = self.r_sh2.val();
        if self.pass_d1.val() {
            self.lshift.d.next = self.r_sh1.val();
        }
        self.v3.d.next = self.v2.q.val() & self.last2.q.val();
        self.bend3.d.next = self.v2.q.val() & self.bend2.q.val();
        self.half3.d.next = self.half2.q.val();
        self.pix3.d.next = self.pix2.q.val();
        self.bpix3.d.next = self.bpix2.q.val();
        // S3, S4: the lanes' stages R and A, then the narrowing (DCE_LANE_LATENCY).
        self.v4.d.next = self.v3.q.val();
        self.bend4.d.next = self.bend3.q.val();
        self.half4.d.next = self.half3.q.val();
        self.pix4.d.next = self.pix3.q.val();
        self.bpix4.d.next = self.bpix3.q.val();
        self.v5.d.next = self.v4.q.val();
        self.bend5.d.next = self.bend4.q.val();
        self.half5.d.next = self.half4.q.val();
        self.pix5.d.next = self.pix4.q.val();
        self.bpix5.d.next = self.bpix4.q.val();
        // S5: write the narrowed outputs.
        self.oaddr.next = self.pix5.q.val();
        if self.half5.q.val() {
            self.oaddr.next = self.pix5.q.val() + self.r_hw.val();
        }
        for l in 0..self._mbanks {
            self.mbuf[l].waddr.next = self.bpix5.q.val();
            self.mbuf[l].wdata.next = self.lanes[l].y.val();
            self.mbuf[l].we.next = self.v5.q.val() & !self.pass_d1.val();
        }
        for l in 0..self._lanes {
            self.obuf[l].waddr.next = self.oaddr.val();
            self.obuf[l].wdata.next = self.lanes[l].y.val();
            self.obuf[l].we.next = self.v5.q.val() & self.pass_d1.val();
        }
        if self.v5.q.val() & self.pass_d1.val() & self.bend5.q.val() {
            if self.half5.q.val() {
                self.full1.d.next = true;
            } else {
                self.full0.d.next = true;
            }
        }
        // Pass transitions.
        self.pipe_empty.next = !self.v1.q.val()
            & !self.vb.q.val()
            & !self.vc.q.val()
            & !self.v2.q.val()
            & !self.v3.q.val()
            & !self.v4.q.val()
            & !self.v5.q.val();
        // (Not in the cycle a pass starts: run rises only after it.)
        if (self.state.q.val() == self.st_d2.val())
            & !self.run.q.val()
            & !self.start.q.val()
            & self.pipe_empty.val()
        {
            self.state.d.next = self.st_d1.val();
            self.start.d.next = true;
        }
        if (self.state.q.val() == self.st_d1.val())
            & !self.run.q.val()
            & !self.start.q.val()
            & self.pipe_empty.val()
        {
            self.state.d.next = self.st_tail.val();
        }
        if self.seq_reset.val() {
            self.run.d.next = true;
            self.tap.d.next = self.zero16.val();
            self.icl.d.next = self.zero16.val();
            self.icbase.d.next = self.zero16.val();
            self.widx.d.next = self.zero16.val();
            self.wz.d.next = true;
            self.wbase.d.next = self.zero16.val();
            self.pix.d.next = self.zero16.val();
            self.oy.d.next = self.zero16.val();
            self.ox.d.next = self.zero16.val();
            self.bing.d.next = self.zero16.val();
            self.blk.d.next = self.zero16.val();
            self.bpix.d.next = self.zero16.val();
        }
        // DRAIN: fetch (memories, 1 cycle) -> mask -> output stage.
        self.full_h.next = self.full0.q.val();
        if self.d_half.q.val() {
            self.full_h.next = self.full1.q.val();
        }
        self.drain.clock.next = self.clock.val();
        self.drain.enable.next = true;
        self.drain.out_ready.next = self.out_ready.val();
        self.drain.fetch.next = self.full_h.val();
        self.drain.fetch_sel.next = self.dl.q.val();
        self.drain.fetch_last.next = self.o.q.val() == self.r_out_m1.val();
        self.a_addr.next = self.pa_addr.q.val();
        self.a_maddr.next = self.pa_maddr.q.val();
        self.sel_data.next = self.zero_err.val();
        for l in 0..self._lanes {
            if self.drain.sel.val().get_bit(l) {
                self.sel_data.next = self.obuf[l].rdata.val();
            }
        }
        self.mshift.next = self.maskm.rdata.val() >> self.s1_bit.q.val();
        self.mbit.next = self.mshift.val().get_bit(0);
        self.drain.word.next = self.zero_err.val();
        if self.mbit.val() {
            self.drain.word.next = self.sel_data.val();
        }
        // A drained half is free once the stage has taken its last word: the advance
        // after that word's fetch. (Freed at the fetch itself, a stalled stage re-read
        // the word after the next block had overwritten it: a 1×1 map under
        // backpressure, found by the soak.)
        if self.drain.advance.val() {
            if self.free0.q.val() {
                self.free0.d.next = false;
                self.full0.d.next = false;
                self.busy0.d.next = false;
            }
            if self.free1.q.val() {
                self.free1.d.next = false;
                self.full1.d.next = false;
                self.busy1.d.next = false;
            }
        }
        if self.drain.advance.val() & self.full_h.val() {
            self.a_addr.next = self.dp.q.val();
            if self.d_half.q.val() {
                self.a_addr.next = self.dp.q.val() + self.r_hw.val();
            }
            // Mask words hold MASK_BITS outputs: word o / MASK_BITS, bit o mod MASK_BITS.
            self.a_maddr.next = self.o.q.val() >> self.mask_shift.val();
            self.s1_bit.d.next = self.o.q.val().get_bits::<MASK_INDEX_BITS>(0);
            self.o.d.next = self.o.q.val() + 1;
            if self.dp.q.val() == self.r_hw_m1.val() {
                self.dp.d.next = self.zero16.val();
                if (self.dl.q.val() & self.top_sel.val()).any() {
                    self.dl.d.next = self.first_sel.val();
                    self.d_half.d.next = !self.d_half.q.val();
                    if self.d_half.q.val() {
                        self.free1.d.next = true;
                    } else {
                        self.free0.d.next = true;
                    }
                } else {
                    self.dl.d.next = self.dl.q.val() << 1;
                }
            } else {
                self.dp.d.next = self.dp.q.val() + 1;
            }
        }
        // The last output leaves: back to LOAD.
        if self.drain.done.val() {
            self.state.d.next = self.st_load.val();
        }
        self.pa_addr.d.next = self.a_addr.val();
        self.pa_maddr.d.next = self.a_maddr.val();
        for l in 0..self._lanes {
            self.obuf[l].raddr.next = self.a_addr.val();
            self.obuf[l].ren.next = true;
        }
        self.maskm.raddr.next = self.a_maddr.val();
        self.maskm.ren.next = true;
    }
}
