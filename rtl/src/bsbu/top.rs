//! The binary sparse backward-weight unit (BSBU): e_i = sat(round((S·e_L) >> shift)) ⊙ f'.
//!
//! A vector passes three stages, and in a stream of vectors they overlap: vector n+1
//! loads while vector n computes and vector n−1 drains.
//! 1. LOAD: the input stream delivers n_cols error words e_L, then n_rows derivative
//!    words f'(p) (Q2.14, carried on the same 16-bit stream). e_L goes to every
//!    lane's private copy, f' to the derivative memory.
//! 2. COMPUTE: every lane walks its rows of S, one entry per cycle; a pass lasts
//!    (largest lane program) + [`contract::bsbu::COMPUTE_PIPELINE`] cycles from its
//!    start to the next pass's start.
//! 3. DRAIN: rows leave in order 0..n_rows on the output stream, one per cycle while
//!    `out_ready` is high. Row r is read from lane r mod P at local row r / P,
//!    multiplied by f'(p_r) (the unit's only multiplier) and narrowed by the
//!    derivative's fraction bits. `out_last` marks row n_rows − 1. The drain's
//!    datapath is a pipeline of [`DRAIN_LATENCY`] registers that moves with the
//!    output stage: the lane select, the multiply ([`PipeMul`], four stages) and the
//!    narrowing ([`NarrowPipe`]), so that no stage holds more than one carry chain.
//!
//! Buffers: the e_L copies and the result memories have two banks (vector parity),
//! the f' memory four (it lives from a vector's load to its drain). Three vector
//! counters (loaded, computed, drained; mod 8) order the stages: vector m loads once
//! vector m − 2 is computed (its e_L bank is free), computes once it is loaded and
//! vector m − 2 is drained (its result bank is free; m − 1 for single-bank lanes),
//! and drains once computed. These two conditions also keep at most four vectors
//! between load and drain, so the f' banks never collide.
//!
//! The `phase` port shows the busiest stage: 1 a compute pass starts from idle,
//! 2 computing, 3 draining only, 0 neither (loading or idle).
//!
//! The lanes hold S in ROM (stored weights) or regenerate it (generator mode,
//! [`super::lane`]), whose registers ([`super::regs::REGS`], written through `cfg_*`
//! while the unit is empty) hold the generator's seed, row base and mask threshold; a
//! stored-weight unit ignores the `cfg_*` port.

use contract::format::{DERIV, ERROR_BITS};
use contract::params::{BSBU_MAX_LANES, ROW_ADDR_BITS};
use rust_hdl::prelude::*;

use super::lane::{BsbuLane, GenWalk};
use super::regs::{CFG_ADDR_BITS, CFG_DATA_BITS, REGS, THRESH_BITS};
use crate::fbgen::STATE_BITS;
use crate::narrow::SHIFT_BITS;
use crate::narrow_pipe::NarrowPipe;
use crate::out_stage::ErrorOutStage;
use crate::pipe_mul::{PipeMul, PIPE_MUL_STAGES};

/// Width of the load and drain counters: they count up to MAX_ROWS (256) or MAX_COLS
/// (8,192) and need one bit more than an address.
const CNT_BITS: usize = 16;
/// Width of the one-hot lane select of the drain (one bit per possible lane).
const SEL_BITS: usize = BSBU_MAX_LANES;
/// Width of the vector counters: the stages are at most four vectors apart, so
/// differences mod 8 are exact.
const VEC_BITS: usize = 3;
/// Width of the traffic strobes `rd_err` and `rd_w`: each counts the lanes that read
/// a word this cycle, 0..=BSBU_MAX_LANES (16), so one bit more than a lane index.
pub const RD_BITS: usize = 5;
const _: () = assert!(BSBU_MAX_LANES < 1 << RD_BITS);
/// Banks of the f' memory (a power of two: its base address wraps).
const FP_BANKS: usize = 4;
/// Address bits of the f' memory: two bank bits above the row.
const FP_ADDR_BITS: usize = ROW_ADDR_BITS + 2;
const _: () = assert!(1 << (FP_ADDR_BITS - ROW_ADDR_BITS) == FP_BANKS);
/// Drain datapath registers from the fetched read data to the output register: the
/// selected row and its f' (1), the multiply, the narrowing (1).
pub const DRAIN_LATENCY: usize = 1 + PIPE_MUL_STAGES + 1;

/// The unit, with 2^EA-word entry memories and 2^CA-word e_L copies in each lane.
#[derive(LogicBlock)]
pub struct Bsbu<const EA: usize, const CA: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Input stream data: e_L words, then f' words.
    pub in_data: Signal<In, Signed<ERROR_BITS>>,
    /// Input stream valid.
    pub in_valid: Signal<In, Bit>,
    /// Input stream ready (high during LOAD).
    pub in_ready: Signal<Out, Bit>,
    /// Output stream data: e_i rows in order.
    pub out_data: Signal<Out, Signed<ERROR_BITS>>,
    /// Output stream valid.
    pub out_valid: Signal<Out, Bit>,
    /// Output stream ready (backpressure).
    pub out_ready: Signal<In, Bit>,
    /// Marks the last row of a vector.
    pub out_last: Signal<Out, Bit>,
    /// Busiest stage: 0 load or idle, 1 compute starts, 2 compute, 3 drain only.
    pub phase: Signal<Out, Bits<2>>,
    /// Configuration write enable.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration address: a register's index in regs::REGS.
    pub cfg_addr: Signal<In, Bits<CFG_ADDR_BITS>>,
    /// Configuration data (the register's value in its low bits).
    pub cfg_data: Signal<In, Bits<CFG_DATA_BITS>>,
    /// Traffic: e_L words read this cycle, summed over the lanes (each lane reads its
    /// own copy).
    pub rd_err: Signal<Out, Bits<RD_BITS>>,
    /// Traffic: entry words read this cycle, summed over the lanes (0 in generator
    /// mode).
    pub rd_w: Signal<Out, Bits<RD_BITS>>,
    /// The lanes' e_L reads, counted.
    n_rd_e: Signal<Local, Bits<RD_BITS>>,
    /// The lanes' entry reads, counted.
    n_rd_w: Signal<Local, Bits<RD_BITS>>,
    /// Zero count.
    zero_rd: Constant<Bits<RD_BITS>>,
    /// The registers, in regs::REGS order (32 bits each; each reads its low bits).
    regs: Vec<DFF<Bits<CFG_DATA_BITS>>>,
    /// One-hot register select of the configuration address.
    reg_sel: Signal<Local, Bits<8>>,
    /// 1, shifted by the address into the select.
    one8: Constant<Bits<8>>,
    /// SEED by name.
    r_seed: Signal<Local, Bits<STATE_BITS>>,
    /// ROW_BASE by name.
    r_base: Signal<Local, Bits<STATE_BITS>>,
    /// THRESH by name.
    r_thresh: Signal<Local, Bits<THRESH_BITS>>,
    /// Registers (loop bound).
    _nregs: usize,
    /// The P lanes; lane l owns rows l, l+P, l+2P, ...
    lanes: Vec<BsbuLane<EA, CA>>,
    /// f'(p) per output row, four banks of 2^8 rows (a vector's bank is its load
    /// count mod 4).
    fp: RAM<Signed<ERROR_BITS>, FP_ADDR_BITS>,
    /// Drain stage 1: the fetched row's value.
    me: DFF<Signed<ERROR_BITS>>,
    /// Drain stage 1: its f'.
    mf: DFF<Signed<ERROR_BITS>>,
    /// Drain stages 2–5: e × f'.
    mul: PipeMul,
    /// Drain stage 6: narrows e × f' by the derivative's fraction bits.
    fnarrow: NarrowPipe,
    /// The derivative's fraction bits: the shift after e × f'.
    fshift: Constant<Bits<SHIFT_BITS>>,
    /// The output stage (shared with the dce): fetch -> multiply/narrow -> output register.
    drain: ErrorOutStage,
    /// Vectors loaded (mod 8); bit 0 is the e_L bank being written.
    ld: DFF<Bits<VEC_BITS>>,
    /// Vectors computed (mod 8); bit 0 is the e_L bank read and the result bank
    /// written by the current (or next) compute pass.
    cd: DFF<Bits<VEC_BITS>>,
    /// Vectors drained (mod 8); bit 0 is the result bank being read.
    dd: DFF<Bits<VEC_BITS>>,
    /// A compute pass is running.
    cbusy: DFF<Bit>,
    /// A drain is running.
    dbusy: DFF<Bit>,
    /// Base address of the f' bank being loaded.
    fp_wbase: DFF<Bits<FP_ADDR_BITS>>,
    /// Base address of the f' bank being drained.
    fp_rbase: DFF<Bits<FP_ADDR_BITS>>,
    /// LOAD: the e_L words are done, f' words are arriving.
    loading_fp: DFF<Bit>,
    /// LOAD: next e_L address.
    lcnt: DFF<Bits<CNT_BITS>>,
    /// LOAD: next f' address.
    fcnt: DFF<Bits<CNT_BITS>>,
    /// DRAIN: rows remain to be fetched.
    fetching: DFF<Bit>,
    /// DRAIN: next row to fetch.
    rd_row: DFF<Bits<CNT_BITS>>,
    /// DRAIN: local row of the next fetch.
    rd_local: DFF<Bits<ROW_ADDR_BITS>>,
    /// DRAIN: one-hot lane of the next fetch.
    rd_sel: DFF<Bits<SEL_BITS>>,
    /// DRAIN: local row address presented last cycle (held while stalled).
    pa_local: DFF<Bits<ROW_ADDR_BITS>>,
    /// DRAIN: row address presented last cycle (held while stalled).
    pa_row: DFF<Bits<CNT_BITS>>,
    /// Some lane is still busy.
    any_busy: Signal<Local, Bit>,
    /// The running compute pass ends this cycle.
    cfinish: Signal<Local, Bit>,
    /// A compute pass starts this cycle (the lanes' start pulse).
    cstart: Signal<Local, Bit>,
    /// A drain starts this cycle.
    dstart: Signal<Local, Bit>,
    /// The input stream is taken this cycle.
    take: Signal<Local, Bit>,
    /// Local row address presented to the result memories this cycle.
    a_local: Signal<Local, Bits<ROW_ADDR_BITS>>,
    /// Row address presented to the f' memory this cycle.
    a_row: Signal<Local, Bits<CNT_BITS>>,
    /// The fetched row's value, selected from its lane.
    sel_data: Signal<Local, Signed<ERROR_BITS>>,
    /// Phase codes.
    ph_load: Constant<Bits<2>>,
    ph_start: Constant<Bits<2>>,
    ph_compute: Constant<Bits<2>>,
    ph_drain: Constant<Bits<2>>,
    /// Two vectors: the e_L banks.
    two_vec: Constant<Bits<VEC_BITS>>,
    /// Result banks per lane (2, or 1 when a lane holds more than 128 rows).
    res_banks: Constant<Bits<VEC_BITS>>,
    /// Size of one f' bank (2^8 rows).
    fp_step: Constant<Bits<FP_ADDR_BITS>>,
    /// n_cols − 1.
    last_col: Constant<Bits<CNT_BITS>>,
    /// n_rows − 1.
    last_row: Constant<Bits<CNT_BITS>>,
    /// One-hot bit of the highest lane (P − 1).
    top_sel: Constant<Bits<SEL_BITS>>,
    /// One-hot bit of lane 0.
    first_sel: Constant<Bits<SEL_BITS>>,
    /// Zero counter value.
    zero_cnt: Constant<Bits<CNT_BITS>>,
    /// Zero local row.
    zero_local: Constant<Bits<ROW_ADDR_BITS>>,
    /// Zero error word.
    zero_err: Constant<Signed<ERROR_BITS>>,
    /// Number of lanes (loop bound).
    _lanes: usize,
}

impl<const EA: usize, const CA: usize> Bsbu<EA, CA> {
    /// A unit with one lane per program (`programs[l]` = packed entries of lane l),
    /// or, with `generated`, a generator-mode unit of `programs.len()` lanes (the
    /// programs are empty), narrowing by `shift`.
    pub fn new(
        programs: &[Vec<u32>],
        n_rows: usize,
        n_cols: usize,
        shift: u32,
        generated: bool,
    ) -> Self {
        let lanes = programs.len();
        assert!((1..=BSBU_MAX_LANES).contains(&lanes));
        assert!(2 * n_cols <= 1 << CA, "e_L copy too small for two banks");
        // A lane holds ceil(n_rows / P) rows; two banks fit its 256 words up to 128.
        let res_banks = if n_rows.div_ceil(lanes) <= 1 << (ROW_ADDR_BITS - 1) {
            2
        } else {
            1
        };
        let walk = |l: usize| {
            generated.then_some(GenWalk {
                lane: l,
                lanes,
                rows: (l..n_rows).step_by(lanes).count(),
                cols: n_cols,
            })
        };
        with_defaults!(Bsbu {
            lanes: programs
                .iter()
                .enumerate()
                .map(|(l, p)| BsbuLane::new(p, shift, res_banks, walk(l)))
                .collect(),
            fp: RAM::default(),
            mul: PipeMul::default(),
            fnarrow: NarrowPipe::default(),
            fshift: Constant::new((DERIV.frac as u64).to_bits()),
            drain: ErrorOutStage::with_latency(DRAIN_LATENCY),
            ph_load: Constant::new(0u64.to_bits()),
            ph_start: Constant::new(1u64.to_bits()),
            ph_compute: Constant::new(2u64.to_bits()),
            ph_drain: Constant::new(3u64.to_bits()),
            two_vec: Constant::new(2u64.to_bits()),
            res_banks: Constant::new((res_banks as u64).to_bits()),
            fp_step: Constant::new((1u64 << ROW_ADDR_BITS).to_bits()),
            last_col: Constant::new(((n_cols - 1) as u64).to_bits()),
            last_row: Constant::new(((n_rows - 1) as u64).to_bits()),
            top_sel: Constant::new((1u64 << (lanes - 1)).to_bits()),
            first_sel: Constant::new(1u64.to_bits()),
            zero_cnt: Constant::new(0u64.to_bits()),
            zero_local: Constant::new(0u64.to_bits()),
            zero_err: Constant::new(0i64.to_signed_bits()),
            _lanes: lanes,
            regs: (0..REGS.len()).map(|_| Default::default()).collect(),
            one8: Constant::new(1u64.to_bits()),
            zero_rd: Constant::new(0u64.to_bits()),
            _nregs: REGS.len(),
        } defaults:
            clock, in_data, in_valid, in_ready, out_data, out_valid, out_ready,
            out_last, phase, cfg_we, cfg_addr, cfg_data, rd_err, rd_w, n_rd_e, n_rd_w, reg_sel, r_seed, r_base,
            r_thresh, ld, cd, dd, cbusy, dbusy, fp_wbase, fp_rbase, loading_fp,
            lcnt, fcnt, fetching, rd_row, rd_local, rd_sel, pa_local, pa_row, any_busy,
            cfinish, cstart, dstart, take, a_local, a_row, sel_data, me, mf
        )
    }
}

impl<const EA: usize, const CA: usize> Logic for Bsbu<EA, CA> {
    #[hdl_gen]
    fn update(&mut self) {
        // Clocks, and every register holds unless assigned below.
        self.fp.read_clock.next = self.clock.val();
        self.fp.write_clock.next = self.clock.val();
        dff_setup!(
            self, clock, ld, cd, dd, cbusy, dbusy, fp_wbase, fp_rbase, loading_fp, lcnt, fcnt,
            fetching, rd_row, rd_local, rd_sel, pa_local, pa_row, me, mf
        );
        // Registers: one write port, selected one-hot by the address.
        self.reg_sel.next = self.one8.val() << self.cfg_addr.val();
        for i in 0..self._nregs {
            self.regs[i].clock.next = self.clock.val();
            self.regs[i].d.next = self.regs[i].q.val();
            if self.cfg_we.val() & self.reg_sel.val().get_bit(i) {
                self.regs[i].d.next = self.cfg_data.val();
            }
        }
        // The registers by name (index = position in regs::REGS; a test checks this).
        self.r_seed.next = self.regs[0].q.val();
        self.r_base.next = self.regs[1].q.val();
        self.r_thresh.next = self.regs[2].q.val().get_bits::<THRESH_BITS>(0);
        // Ports.
        self.out_valid.next = self.drain.out_valid.val();
        self.out_data.next = self.drain.out_data.val();
        self.out_last.next = self.drain.out_last.val();
        // Traffic strobes: the lanes' reads this cycle.
        self.n_rd_e.next = self.zero_rd.val();
        self.n_rd_w.next = self.zero_rd.val();
        for l in 0..self._lanes {
            if self.lanes[l].rd_e.val() {
                self.n_rd_e.next = self.n_rd_e.val() + 1;
            }
            if self.lanes[l].rd_w.val() {
                self.n_rd_w.next = self.n_rd_w.val() + 1;
            }
        }
        self.rd_err.next = self.n_rd_e.val();
        self.rd_w.next = self.n_rd_w.val();
        // COMPUTE: a pass ends when no lane is busy; the next starts in the cycle
        // after, once its vector is loaded and its result bank is drained.
        self.any_busy.next = false;
        for l in 0..self._lanes {
            if self.lanes[l].busy.val() {
                self.any_busy.next = true;
            }
        }
        self.cfinish.next = self.cbusy.q.val() & !self.any_busy.val();
        if self.cfinish.val() {
            self.cd.d.next = self.cd.q.val() + 1;
            self.cbusy.d.next = false;
        }
        // Registered inputs only: the start pulse fans out to every lane, so it must
        // not wait for the lanes' busy flags (the pass's last cycle is one more).
        self.cstart.next = !self.cbusy.q.val()
            & (self.ld.q.val() != self.cd.q.val())
            & ((self.cd.q.val() - self.dd.q.val()) < self.res_banks.val());
        if self.cstart.val() {
            self.cbusy.d.next = true;
        }
        // LOAD: vector m may fill e_L bank m mod 2 once vector m − 2 is computed.
        self.in_ready.next = (self.ld.q.val() - self.cd.q.val()) < self.two_vec.val();
        self.take.next = self.in_ready.val() & self.in_valid.val();
        for l in 0..self._lanes {
            self.lanes[l].clock.next = self.clock.val();
            self.lanes[l].el_addr.next = self.lcnt.q.val().get_bits::<CA>(0);
            self.lanes[l].el_data.next = self.in_data.val();
            self.lanes[l].el_we.next = false;
            self.lanes[l].el_wbank.next = self.ld.q.val().get_bit(0);
            self.lanes[l].el_rbank.next = self.cd.q.val().get_bit(0);
            self.lanes[l].res_rbank.next = self.dd.q.val().get_bit(0);
            self.lanes[l].start.next = self.cstart.val();
            self.lanes[l].seed.next = self.r_seed.val();
            self.lanes[l].base.next = self.r_base.val();
            self.lanes[l].thresh.next = self.r_thresh.val();
        }
        self.fp.write_address.next =
            self.fp_wbase.q.val() | self.fcnt.q.val().get_bits::<FP_ADDR_BITS>(0);
        self.fp.write_data.next = self.in_data.val();
        self.fp.write_enable.next = false;
        if self.take.val() {
            if self.loading_fp.q.val() {
                self.fp.write_enable.next = true;
                self.fcnt.d.next = self.fcnt.q.val() + 1;
                if self.fcnt.q.val() == self.last_row.val() {
                    self.loading_fp.d.next = false;
                    self.fcnt.d.next = self.zero_cnt.val();
                    self.ld.d.next = self.ld.q.val() + 1;
                    self.fp_wbase.d.next = self.fp_wbase.q.val() + self.fp_step.val();
                }
            } else {
                for l in 0..self._lanes {
                    self.lanes[l].el_we.next = true;
                }
                self.lcnt.d.next = self.lcnt.q.val() + 1;
                if self.lcnt.q.val() == self.last_col.val() {
                    self.loading_fp.d.next = true;
                    self.lcnt.d.next = self.zero_cnt.val();
                }
            }
        }
        // DRAIN: starts once a computed vector waits; fetch (memories, 1 cycle) ->
        // multiply/narrow -> output stage.
        self.dstart.next = !self.dbusy.q.val() & (self.cd.q.val() != self.dd.q.val());
        if self.dstart.val() {
            self.dbusy.d.next = true;
            self.fetching.d.next = true;
            self.rd_row.d.next = self.zero_cnt.val();
            self.rd_local.d.next = self.zero_local.val();
            self.rd_sel.d.next = self.first_sel.val();
        }
        self.drain.clock.next = self.clock.val();
        self.drain.enable.next = self.dbusy.q.val();
        self.drain.out_ready.next = self.out_ready.val();
        self.drain.fetch.next = self.fetching.q.val();
        self.drain.fetch_sel.next = self.rd_sel.q.val();
        self.drain.fetch_last.next = self.rd_row.q.val() == self.last_row.val();
        self.a_local.next = self.pa_local.q.val();
        self.a_row.next = self.pa_row.q.val();
        self.sel_data.next = self.zero_err.val();
        for l in 0..self._lanes {
            if self.drain.sel.val().get_bit(l) {
                self.sel_data.next = self.lanes[l].res_data.val();
            }
        }
        // The datapath moves with the output stage.
        if self.drain.advance.val() {
            self.me.d.next = self.sel_data.val();
            self.mf.d.next = self.fp.read_data.val();
        }
        self.mul.clock.next = self.clock.val();
        self.mul.en.next = self.drain.advance.val();
        self.mul.a.next = self.me.q.val();
        self.mul.b.next = self.mf.q.val();
        self.fnarrow.clock.next = self.clock.val();
        self.fnarrow.en.next = self.drain.advance.val();
        self.fnarrow.x.next = self.mul.p.val();
        self.fnarrow.shift.next = self.fshift.val();
        self.drain.word.next = self.fnarrow.y.val();
        if self.drain.advance.val() & self.fetching.q.val() {
            self.a_local.next = self.rd_local.q.val();
            self.a_row.next = self.rd_row.q.val();
            self.rd_row.d.next = self.rd_row.q.val() + 1;
            if (self.rd_sel.q.val() & self.top_sel.val()).any() {
                self.rd_sel.d.next = self.first_sel.val();
                self.rd_local.d.next = self.rd_local.q.val() + 1;
            } else {
                self.rd_sel.d.next = self.rd_sel.q.val() << 1;
            }
            if self.rd_row.q.val() == self.last_row.val() {
                self.fetching.d.next = false;
            }
        }
        // The last row leaves: the drain is free, the next vector's banks follow.
        if self.drain.done.val() {
            self.dbusy.d.next = false;
            self.dd.d.next = self.dd.q.val() + 1;
            self.fp_rbase.d.next = self.fp_rbase.q.val() + self.fp_step.val();
        }
        self.fp.read_address.next =
            self.fp_rbase.q.val() | self.a_row.val().get_bits::<FP_ADDR_BITS>(0);
        self.pa_local.d.next = self.a_local.val();
        for l in 0..self._lanes {
            self.lanes[l].res_addr.next = self.a_local.val();
        }
        self.pa_row.d.next = self.a_row.val();
        // The busiest stage.
        self.phase.next = self.ph_load.val();
        if self.dbusy.q.val() {
            self.phase.next = self.ph_drain.val();
        }
        if self.cstart.val() {
            self.phase.next = self.ph_start.val();
        }
        if self.cbusy.q.val() {
            self.phase.next = self.ph_compute.val();
        }
    }
}
