//! The binary sparse backward-weight unit (BSBU): e_i = sat(round((S·e_L) >> shift)) ⊙ f'.
//!
//! One pass over a vector has three phases, shown on the `phase` port:
//! 1. LOAD (0): the input stream delivers n_cols error words e_L, then n_rows
//!    derivative words f'(p) (Q2.14, carried on the same 16-bit stream). e_L is
//!    written to every lane's private copy; f' to the derivative memory.
//! 2. START (1) / COMPUTE (2): every lane walks its rows of S, one nonzero per cycle.
//!    The phase ends when no lane is busy, so it lasts (largest lane program) + 3 cycles.
//! 3. DRAIN (3): rows leave in order 0..n_rows on the output stream, one per cycle
//!    while `out_ready` is high. Row r is read from lane r mod P at local row r / P,
//!    multiplied by f'(p_r) (the unit's only multiplier) and narrowed by the
//!    derivative's fraction bits. `out_last` marks row n_rows − 1.

use contract::format::{ACC_BITS, DERIV, ERROR_BITS};
use contract::params::{BSBU_MAX_LANES, ROW_ADDR_BITS};
use rust_hdl::prelude::*;

use super::lane::BsbuLane;
use crate::narrow::{Narrow, SHIFT_BITS};
use crate::out_stage::OutStage;

/// Width of the load and drain counters: they count up to MAX_ROWS (256) or MAX_COLS
/// (8,192) and need one bit more than an address.
const CNT_BITS: usize = 16;
/// Width of the one-hot lane select of the drain (one bit per possible lane).
const SEL_BITS: usize = BSBU_MAX_LANES;

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
    /// Current phase: 0 LOAD, 1 START, 2 COMPUTE, 3 DRAIN.
    pub phase: Signal<Out, Bits<2>>,
    /// The P lanes; lane l owns rows l, l+P, l+2P, ...
    lanes: Vec<BsbuLane<EA, CA>>,
    /// f'(p) per output row.
    fp: RAM<Signed<ERROR_BITS>, ROW_ADDR_BITS>,
    /// Narrows e × f' by the derivative's fraction bits.
    fnarrow: Narrow,
    /// The derivative's fraction bits: the shift after e × f'.
    fshift: Constant<Bits<SHIFT_BITS>>,
    /// The output stage (shared with the dce): fetch -> multiply/narrow -> output register.
    drain: OutStage,
    /// Phase register.
    state: DFF<Bits<2>>,
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
    /// Local row address presented to the result memories this cycle.
    a_local: Signal<Local, Bits<ROW_ADDR_BITS>>,
    /// Row address presented to the f' memory this cycle.
    a_row: Signal<Local, Bits<CNT_BITS>>,
    /// The fetched row's value, selected from its lane.
    sel_data: Signal<Local, Signed<ERROR_BITS>>,
    /// Exact product e × f'.
    prod: Signal<Local, Signed<ACC_BITS>>,
    /// Phase codes.
    st_load: Constant<Bits<2>>,
    st_start: Constant<Bits<2>>,
    st_compute: Constant<Bits<2>>,
    st_drain: Constant<Bits<2>>,
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
    /// A unit with one lane per program (`programs[l]` = packed entries of lane l).
    pub fn new(programs: &[Vec<u32>], n_rows: usize, n_cols: usize, shift: u32) -> Self {
        let lanes = programs.len();
        assert!((1..=BSBU_MAX_LANES).contains(&lanes));
        with_defaults!(Bsbu {
            lanes: programs.iter().map(|p| BsbuLane::new(p, shift)).collect(),
            fp: RAM::default(),
            fnarrow: Narrow::default(),
            fshift: Constant::new((DERIV.frac as u64).to_bits()),
            drain: OutStage::default(),
            st_load: Constant::new(0u64.to_bits()),
            st_start: Constant::new(1u64.to_bits()),
            st_compute: Constant::new(2u64.to_bits()),
            st_drain: Constant::new(3u64.to_bits()),
            last_col: Constant::new(((n_cols - 1) as u64).to_bits()),
            last_row: Constant::new(((n_rows - 1) as u64).to_bits()),
            top_sel: Constant::new((1u64 << (lanes - 1)).to_bits()),
            first_sel: Constant::new(1u64.to_bits()),
            zero_cnt: Constant::new(0u64.to_bits()),
            zero_local: Constant::new(0u64.to_bits()),
            zero_err: Constant::new(0i64.to_signed_bits()),
            _lanes: lanes,
        } defaults:
            clock, in_data, in_valid, in_ready, out_data, out_valid, out_ready,
            out_last, phase, state, loading_fp, lcnt, fcnt, fetching, rd_row, rd_local,
            rd_sel, pa_local, pa_row, any_busy, a_local, a_row, sel_data, prod
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
            self, clock, state, loading_fp, lcnt, fcnt, fetching, rd_row, rd_local, rd_sel,
            pa_local, pa_row
        );
        // Ports.
        self.phase.next = self.state.q.val();
        self.in_ready.next = self.state.q.val() == self.st_load.val();
        self.out_valid.next = self.drain.out_valid.val();
        self.out_data.next = self.drain.out_data.val();
        self.out_last.next = self.drain.out_last.val();
        // Lanes: shared e_L write port, start pulse, busy.
        self.any_busy.next = false;
        for l in 0..self._lanes {
            self.lanes[l].clock.next = self.clock.val();
            self.lanes[l].el_addr.next = self.lcnt.q.val().get_bits::<CA>(0);
            self.lanes[l].el_data.next = self.in_data.val();
            self.lanes[l].el_we.next = false;
            self.lanes[l].start.next = self.state.q.val() == self.st_start.val();
            if self.lanes[l].busy.val() {
                self.any_busy.next = true;
            }
        }
        self.fp.write_address.next = self.fcnt.q.val().get_bits::<ROW_ADDR_BITS>(0);
        self.fp.write_data.next = self.in_data.val();
        self.fp.write_enable.next = false;
        // LOAD.
        if (self.state.q.val() == self.st_load.val()) & self.in_valid.val() {
            if self.loading_fp.q.val() {
                self.fp.write_enable.next = true;
                self.fcnt.d.next = self.fcnt.q.val() + 1;
                if self.fcnt.q.val() == self.last_row.val() {
                    self.loading_fp.d.next = false;
                    self.fcnt.d.next = self.zero_cnt.val();
                    self.state.d.next = self.st_start.val();
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
        // START: lanes see the start pulse this cycle.
        if self.state.q.val() == self.st_start.val() {
            self.state.d.next = self.st_compute.val();
        }
        // COMPUTE: wait for every lane.
        if (self.state.q.val() == self.st_compute.val()) & !self.any_busy.val() {
            self.state.d.next = self.st_drain.val();
            self.fetching.d.next = true;
            self.rd_row.d.next = self.zero_cnt.val();
            self.rd_local.d.next = self.zero_local.val();
            self.rd_sel.d.next = self.first_sel.val();
        }
        // DRAIN: fetch (memories, 1 cycle) -> multiply/narrow -> output stage.
        self.drain.clock.next = self.clock.val();
        self.drain.enable.next = self.state.q.val() == self.st_drain.val();
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
        self.prod.next = self.sel_data.val() * self.fp.read_data.val();
        self.fnarrow.x.next = self.prod.val();
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
        // The last row leaves: back to LOAD.
        if self.drain.done.val() {
            self.state.d.next = self.st_load.val();
        }
        self.fp.read_address.next = self.a_row.val().get_bits::<ROW_ADDR_BITS>(0);
        self.pa_local.d.next = self.a_local.val();
        for l in 0..self._lanes {
            self.lanes[l].res_addr.next = self.a_local.val();
        }
        self.pa_row.d.next = self.a_row.val();
    }
}
