//! One lane of the backward-weight unit: walks its compressed entries of S, one
//! nonzero per cycle, accumulates ±e_L[col] and writes each finished row, narrowed
//! into the error format, to its result memory.
//!
//! Both memories the lane shares with other phases hold two banks, so that the unit can
//! load vector n+1 while it computes vector n and drains vector n−1 (see the top):
//! - the e_L copy: bank `el_wbank` is written while bank `el_rbank` is read; the bank
//!   is the address's top bit (2^(CA−1) columns per bank);
//! - the result memory: vector n's rows are written to bank `el_rbank` while the
//!   drain reads bank `res_rbank`; the bank is address bit 7 (128 local rows per
//!   bank, one 256-word iCE40 block RAM). A lane with more than 128 local rows (only
//!   P = 1 with more than 128 rows) has one bank: `res_top` is 0 and the top lets
//!   compute wait for the drain instead.
//!
//! Pipeline (one entry per cycle, no stalls):
//! - A: the entry pointer addresses the entry ROM.
//! - B: the ROM word's column addresses this lane's copy of e_L; its flags move on.
//! - R: the e_L word is registered (the block RAM's read path stays out of the add).
//! - C: ±e_L[col] is added to the accumulator (add and subtract side by side, one
//!   carry chain); the row's last entry hands the row's sum on.
//! - D: the sum is narrowed ([`NarrowPipe`]: rounding and both saturation compares
//!   side by side into a register).
//! - E: the narrowed word is written to the result memory at the lane's local row.
//!
//! So a pass lasts (entries) + [`contract::bsbu::COMPUTE_PIPELINE`] cycles.
//!
//! **Generator mode** ([`contract::bsbu::BsbuGen`]): the lane has no entries; its
//! feedback-weight generator ([`FbGen`]) regenerates S. Stage A walks every column of
//! each of its rows (one generator step per column); in stage B the generator's state
//! gives the sign (bit 31) and the mask (bits 30..23 below THRESH: kept; else the entry
//! adds nothing, like an empty row's), and the column addresses e_L. So a pass lasts
//! (rows of the lane × columns) + the same pipeline, and no weight bit is stored.

use contract::bsbu::{ENTRY_BITS, ENTRY_EMPTY_BIT, ENTRY_LAST_BIT, ENTRY_NEG_BIT};
use contract::format::{ACC_BITS, ERROR_BITS};
use contract::params::ROW_ADDR_BITS;
use rust_hdl::prelude::*;
use std::collections::BTreeMap;

use super::regs::THRESH_BITS;
use crate::fbgen::{FbGen, STATE_BITS};
use crate::narrow::SHIFT_BITS;
use crate::narrow_pipe::NarrowPipe;

/// What a generator-mode lane walks.
#[derive(Clone, Copy, Debug)]
pub struct GenWalk {
    /// This lane's index.
    pub lane: usize,
    /// Lanes of the unit.
    pub lanes: usize,
    /// Rows this lane owns (its local rows).
    pub rows: usize,
    /// Columns of S.
    pub cols: usize,
}

/// A lane whose entry memory has 2^EA words and whose e_L copy has 2^CA words.
#[derive(LogicBlock)]
pub struct BsbuLane<const EA: usize, const CA: usize> {
    /// Clock of the whole unit.
    pub clock: Signal<In, Clock>,
    /// One-cycle pulse: walk the entries from address 0.
    pub start: Signal<In, Bit>,
    /// High while entries are being walked or are in the pipeline.
    pub busy: Signal<Out, Bit>,
    /// Traffic strobe: an e_L word is read this cycle (stage B holds an entry).
    pub rd_e: Signal<Out, Bit>,
    /// Traffic strobe: an entry word was read for this cycle's entry (stored weights
    /// only; a generator lane reads none).
    pub rd_w: Signal<Out, Bit>,
    /// e_L write address (shared by all lanes during the load phase).
    pub el_addr: Signal<In, Bits<CA>>,
    /// e_L write data.
    pub el_data: Signal<In, Signed<ERROR_BITS>>,
    /// e_L write enable.
    pub el_we: Signal<In, Bit>,
    /// Bank of e_L written by the load.
    pub el_wbank: Signal<In, Bit>,
    /// Bank of e_L read by the compute pass, which is also the result bank it writes.
    pub el_rbank: Signal<In, Bit>,
    /// Result bank read by the drain.
    pub res_rbank: Signal<In, Bit>,
    /// Result read address (local row), for the drain.
    pub res_addr: Signal<In, Bits<ROW_ADDR_BITS>>,
    /// Result read data, one cycle after the address.
    pub res_data: Signal<Out, Signed<ERROR_BITS>>,
    /// Generator mode: the seed (register SEED).
    pub seed: Signal<In, Bits<STATE_BITS>>,
    /// Generator mode: the row base (register ROW_BASE).
    pub base: Signal<In, Bits<STATE_BITS>>,
    /// Generator mode: the mask threshold (register THRESH); 9 bits, as T = 256 keeps all.
    pub thresh: Signal<In, Bits<THRESH_BITS>>,
    /// Generator mode: the generator (one; none for a stored-weight lane).
    gens: Vec<FbGen>,
    /// Generators (0 or 1; loop bound).
    _gen: usize,
    /// Generator mode.
    gen_mode: Constant<Bit>,
    /// Generator mode, stage A: the column being issued.
    col: DFF<Bits<CA>>,
    /// Generator mode, stage A: the local row being walked.
    lrow: DFF<Bits<ROW_ADDR_BITS>>,
    /// Generator mode, stage B: the entry's column.
    col1: DFF<Bits<CA>>,
    /// Generator mode, stage B: the entry closes its row.
    glast1: DFF<Bit>,
    /// Generator mode, stage A: step the generator.
    gstep: Signal<Local, Bit>,
    /// Generator mode, stage A: the row ends; on to the lane's next row.
    gnext: Signal<Local, Bit>,
    /// Generator mode: the state after the entry's step.
    gx: Signal<Local, Bits<STATE_BITS>>,
    /// Generator mode: its mask byte, bits 30..23.
    gbyte: Signal<Local, Bits<8>>,
    /// Generator mode: the last column, n_cols − 1.
    last_col: Constant<Bits<CA>>,
    /// Generator mode: this lane's last local row.
    last_lrow: Constant<Bits<ROW_ADDR_BITS>>,
    /// Zero column.
    zero_col: Constant<Bits<CA>>,
    /// Zero generator state.
    zero_x: Constant<Bits<STATE_BITS>>,
    /// Compressed entries of this lane's rows (layout: `contract::bsbu::Entry`).
    entries: SyncROM<Bits<ENTRY_BITS>, EA>,
    /// This lane's private copy of e_L, so every lane reads one word per cycle
    /// (2^CA words: two banks, each only as deep as the unit's columns need).
    el: RAM<Signed<ERROR_BITS>, CA>,
    /// Finished rows of this lane, at their local row index (two banks of 128).
    res: RAM<Signed<ERROR_BITS>, ROW_ADDR_BITS>,
    /// The e_L bank bit: 2^(CA−1).
    el_top: Constant<Bits<CA>>,
    /// The column bits of an e_L address: 2^(CA−1) − 1 (drops the entry's flags).
    col_mask: Constant<Bits<CA>>,
    /// The result bank bit: 2^7, or 0 for a single-bank lane.
    res_top: Constant<Bits<ROW_ADDR_BITS>>,
    /// e_L write address (column and bank).
    el_wa: Signal<Local, Bits<CA>>,
    /// e_L read address of stage B (column and bank).
    el_ra: Signal<Local, Bits<CA>>,
    /// Result write address (local row and bank).
    res_wa: Signal<Local, Bits<ROW_ADDR_BITS>>,
    /// Result read address (local row and bank).
    res_ra: Signal<Local, Bits<ROW_ADDR_BITS>>,
    /// Stage D: round/saturate with the layer's scaling shift.
    narrow: NarrowPipe,
    /// The layer's scaling shift (a generation-time constant: yosys folds the
    /// narrowing's bounds).
    shift: Constant<Bits<SHIFT_BITS>>,
    /// Stage A: address of the next entry.
    ptr: DFF<Bits<EA>>,
    /// Stage A: entries remain to be issued.
    running: DFF<Bit>,
    /// Stage B holds a valid entry.
    v1: DFF<Bit>,
    /// Stage C holds a valid entry.
    v2: DFF<Bit>,
    /// Stage C: subtract.
    neg2: DFF<Bit>,
    /// Stage C: the entry closes its row.
    last2: DFF<Bit>,
    /// Stage C: the entry stands for an empty row (adds nothing).
    empty2: DFF<Bit>,
    /// Row accumulator.
    acc: DFF<Signed<ACC_BITS>>,
    /// Local index of the row being accumulated.
    row: DFF<Bits<ROW_ADDR_BITS>>,
    /// Stage C holds a valid entry.
    v3: DFF<Bit>,
    /// Stage C: subtract.
    neg3: DFF<Bit>,
    /// Stage C: the entry closes its row.
    last3: DFF<Bit>,
    /// Stage C: the entry stands for an empty row.
    empty3: DFF<Bit>,
    /// Stage C: e_L[col].
    eword: DFF<Signed<ERROR_BITS>>,
    /// Stage D holds a finished row.
    wr1: DFF<Bit>,
    /// Stage D: the finished row's sum.
    closed: DFF<Signed<ACC_BITS>>,
    /// Stage D: its local row.
    row1: DFF<Bits<ROW_ADDR_BITS>>,
    /// Stage E holds a finished row.
    wr2: DFF<Bit>,
    /// Stage E: its local row.
    row2: DFF<Bits<ROW_ADDR_BITS>>,
    /// e_L[col] sign-extended to the accumulator width.
    term: Signal<Local, Signed<ACC_BITS>>,
    /// acc ± term.
    sum: Signal<Local, Signed<ACC_BITS>>,
    /// Address of this lane's last entry.
    last_ptr: Constant<Bits<EA>>,
    /// This lane owns at least one row (with fewer rows than lanes, some own none).
    has_work: Constant<Bit>,
    /// Mask of the entry's sign flag.
    neg_mask: Constant<Bits<ENTRY_BITS>>,
    /// Mask of the entry's end-of-row flag.
    last_mask: Constant<Bits<ENTRY_BITS>>,
    /// Mask of the entry's empty-row flag.
    empty_mask: Constant<Bits<ENTRY_BITS>>,
    /// Zero in the accumulator format.
    zero_acc: Constant<Signed<ACC_BITS>>,
    /// Zero entry pointer.
    zero_ptr: Constant<Bits<EA>>,
    /// Zero row index.
    zero_row: Constant<Bits<ROW_ADDR_BITS>>,
}

impl<const EA: usize, const CA: usize> BsbuLane<EA, CA> {
    /// A lane holding the packed `entries` (at most 2^EA), or, with `gen`, a
    /// generator-mode lane (no entries), narrowing by `shift`; `res_banks` is 2, or 1
    /// for a lane with more than 128 local rows.
    pub fn new(entries: &[u32], shift: u32, res_banks: usize, gen: Option<GenWalk>) -> Self {
        assert!(
            entries.len() <= 1 << EA,
            "lane program larger than its entry memory"
        );
        assert!((1..=2).contains(&res_banks));
        // A generator-mode lane's ROM is one unused zero word (pruned by the tools).
        let words: &[u32] = if gen.is_some() { &[0] } else { entries };
        let rom: BTreeMap<Bits<EA>, Bits<ENTRY_BITS>> = words
            .iter()
            .enumerate()
            .map(|(i, &w)| ((i as u64).to_bits(), (w as u64).to_bits()))
            .collect();
        let last = entries.len().saturating_sub(1) as u64;
        let has_work = match gen {
            Some(g) => g.rows > 0,
            None => !entries.is_empty(),
        };
        let (gens, last_col, last_lrow) = match gen {
            Some(g) => {
                assert!(g.cols <= 1 << (CA - 1) && g.rows <= 1 << ROW_ADDR_BITS);
                (
                    vec![FbGen::new(g.lane, g.lanes, true)],
                    g.cols as u64 - 1,
                    g.rows.saturating_sub(1) as u64,
                )
            }
            None => (Vec::new(), 0, 0),
        };
        BsbuLane {
            clock: Default::default(),
            start: Default::default(),
            busy: Default::default(),
            rd_e: Default::default(),
            rd_w: Default::default(),
            el_addr: Default::default(),
            el_data: Default::default(),
            el_we: Default::default(),
            el_wbank: Default::default(),
            el_rbank: Default::default(),
            res_rbank: Default::default(),
            res_addr: Default::default(),
            res_data: Default::default(),
            seed: Default::default(),
            base: Default::default(),
            thresh: Default::default(),
            _gen: gens.len(),
            gen_mode: Constant::new(!gens.is_empty()),
            gens,
            col: Default::default(),
            lrow: Default::default(),
            col1: Default::default(),
            glast1: Default::default(),
            gstep: Default::default(),
            gnext: Default::default(),
            gx: Default::default(),
            gbyte: Default::default(),
            last_col: Constant::new(last_col.to_bits()),
            last_lrow: Constant::new(last_lrow.to_bits()),
            zero_col: Constant::new(0u64.to_bits()),
            zero_x: Constant::new(0u64.to_bits()),
            entries: SyncROM::new(rom),
            el: RAM::default(),
            res: RAM::default(),
            el_top: Constant::new((1u64 << (CA - 1)).to_bits()),
            col_mask: Constant::new(((1u64 << (CA - 1)) - 1).to_bits()),
            res_top: Constant::new(((res_banks as u64 - 1) << (ROW_ADDR_BITS - 1)).to_bits()),
            el_wa: Default::default(),
            el_ra: Default::default(),
            res_wa: Default::default(),
            res_ra: Default::default(),
            narrow: NarrowPipe::default(),
            shift: Constant::new((shift as u64).to_bits()),
            ptr: Default::default(),
            running: Default::default(),
            v1: Default::default(),
            v2: Default::default(),
            neg2: Default::default(),
            last2: Default::default(),
            empty2: Default::default(),
            acc: Default::default(),
            row: Default::default(),
            v3: Default::default(),
            neg3: Default::default(),
            last3: Default::default(),
            empty3: Default::default(),
            eword: Default::default(),
            wr1: Default::default(),
            closed: Default::default(),
            row1: Default::default(),
            wr2: Default::default(),
            row2: Default::default(),
            term: Default::default(),
            sum: Default::default(),
            last_ptr: Constant::new(last.to_bits()),
            has_work: Constant::new(has_work),
            neg_mask: Constant::new((1u64 << ENTRY_NEG_BIT).to_bits()),
            last_mask: Constant::new((1u64 << ENTRY_LAST_BIT).to_bits()),
            empty_mask: Constant::new((1u64 << ENTRY_EMPTY_BIT).to_bits()),
            zero_acc: Constant::new(0i64.to_signed_bits()),
            zero_ptr: Constant::new(0u64.to_bits()),
            zero_row: Constant::new(0u64.to_bits()),
        }
    }
}

impl<const EA: usize, const CA: usize> Logic for BsbuLane<EA, CA> {
    #[hdl_gen]
    fn update(&mut self) {
        // Clocks.
        self.entries.clock.next = self.clock.val();
        self.el.read_clock.next = self.clock.val();
        self.el.write_clock.next = self.clock.val();
        self.res.read_clock.next = self.clock.val();
        self.res.write_clock.next = self.clock.val();
        self.ptr.clock.next = self.clock.val();
        self.running.clock.next = self.clock.val();
        self.v1.clock.next = self.clock.val();
        self.v2.clock.next = self.clock.val();
        self.neg2.clock.next = self.clock.val();
        self.last2.clock.next = self.clock.val();
        self.empty2.clock.next = self.clock.val();
        self.acc.clock.next = self.clock.val();
        self.row.clock.next = self.clock.val();
        dff_setup!(
            self, clock, v3, neg3, last3, empty3, eword, wr1, closed, row1, wr2, row2, col, lrow,
            col1, glast1
        );
        // Hold by default.
        self.ptr.d.next = self.ptr.q.val();
        self.running.d.next = self.running.q.val();
        self.acc.d.next = self.acc.q.val();
        self.row.d.next = self.row.q.val();
        // e_L copy: written by the load into one bank, read by column in stage B
        // from the other.
        self.el_wa.next = self.el_addr.val();
        if self.el_wbank.val() {
            self.el_wa.next = self.el_addr.val() | self.el_top.val();
        }
        self.el.write_address.next = self.el_wa.val();
        self.el.write_data.next = self.el_data.val();
        self.el.write_enable.next = self.el_we.val();
        // Results: read by the drain from its bank.
        self.res_ra.next = self.res_addr.val();
        if self.res_rbank.val() {
            self.res_ra.next = self.res_addr.val() | self.res_top.val();
        }
        self.res.read_address.next = self.res_ra.val();
        self.res_data.next = self.res.read_data.val();
        // Stage A: issue one entry per cycle.
        self.entries.address.next = self.ptr.q.val();
        self.v1.d.next = false;
        if self.running.q.val() {
            self.v1.d.next = true;
            if self.ptr.q.val() == self.last_ptr.val() {
                self.running.d.next = false;
            } else {
                self.ptr.d.next = self.ptr.q.val() + 1;
            }
        }
        // Generator mode, stage A: every column of every local row, one generator step
        // each (the stored walk's stop is overridden).
        self.col1.d.next = self.col.q.val();
        self.glast1.d.next = self.col.q.val() == self.last_col.val();
        self.gstep.next = false;
        self.gnext.next = false;
        if self.gen_mode.val() & self.running.q.val() {
            self.gstep.next = true;
            self.running.d.next = true;
            if self.col.q.val() == self.last_col.val() {
                self.col.d.next = self.zero_col.val();
                self.gnext.next = true;
                if self.lrow.q.val() == self.last_lrow.val() {
                    self.running.d.next = false;
                } else {
                    self.lrow.d.next = self.lrow.q.val() + 1;
                }
            } else {
                self.col.d.next = self.col.q.val() + 1;
            }
        }
        for g in 0..self._gen {
            self.gens[g].clock.next = self.clock.val();
            self.gens[g].seed.next = self.seed.val();
            self.gens[g].base.next = self.base.val();
            self.gens[g].restart.next = self.start.val();
            self.gens[g].next_row.next = self.gnext.val();
            self.gens[g].step.next = self.gstep.val();
            self.gens[g].from_row.next = self.col.q.val() == self.zero_col.val();
        }
        if self.start.val() & self.has_work.val() {
            self.running.d.next = true;
            self.ptr.d.next = self.zero_ptr.val();
            self.row.d.next = self.zero_row.val();
            self.acc.d.next = self.zero_acc.val();
            self.col.d.next = self.zero_col.val();
            self.lrow.d.next = self.zero_row.val();
        }
        // Stage B: the entry word addresses e_L.
        // The entry's column field is COL_ADDR_BITS wide; a unit's columns fit the low
        // CA − 1 bits, and the top bit selects the bank.
        self.el_ra.next = self.entries.data.val().get_bits::<CA>(0) & self.col_mask.val();
        if self.el_rbank.val() {
            self.el_ra.next = (self.entries.data.val().get_bits::<CA>(0) & self.col_mask.val())
                | self.el_top.val();
        }
        self.el.read_address.next = self.el_ra.val();
        self.v2.d.next = self.v1.q.val();
        self.neg2.d.next = (self.entries.data.val() & self.neg_mask.val()).any();
        self.last2.d.next = (self.entries.data.val() & self.last_mask.val()).any();
        self.empty2.d.next = (self.entries.data.val() & self.empty_mask.val()).any();
        // Generator mode, stage B: the generator's state is the entry.
        self.gx.next = self.zero_x.val();
        for g in 0..self._gen {
            self.gx.next = self.gens[g].x.val();
        }
        self.gbyte.next = self.gx.val().get_bits::<8>(23);
        if self.gen_mode.val() {
            self.el_ra.next = self.col1.q.val() & self.col_mask.val();
            if self.el_rbank.val() {
                self.el_ra.next = (self.col1.q.val() & self.col_mask.val()) | self.el_top.val();
            }
            self.el.read_address.next = self.el_ra.val();
            self.neg2.d.next = self.gx.val().get_bit(31);
            self.last2.d.next = self.glast1.q.val();
            self.empty2.d.next = true;
            if bit_cast::<THRESH_BITS, 8>(self.gbyte.val()) < self.thresh.val() {
                self.empty2.d.next = false;
            }
        }
        // Stage R: register the e_L word and the entry's flags.
        self.v3.d.next = self.v2.q.val();
        self.neg3.d.next = self.neg2.q.val();
        self.last3.d.next = self.last2.q.val();
        self.empty3.d.next = self.empty2.q.val();
        self.eword.d.next = self.el.read_data.val();
        // Stage C: accumulate ±e_L[col]; the row's last entry hands its sum to D.
        self.term.next = signed_bit_cast::<ACC_BITS, ERROR_BITS>(self.eword.q.val());
        self.sum.next = self.acc.q.val() + self.term.val();
        if self.neg3.q.val() {
            self.sum.next = self.acc.q.val() - self.term.val();
        }
        if self.empty3.q.val() {
            self.sum.next = self.acc.q.val();
        }
        self.wr1.d.next = false;
        if self.v3.q.val() {
            if self.last3.q.val() {
                self.wr1.d.next = true;
                self.closed.d.next = self.sum.val();
                self.row1.d.next = self.row.q.val();
                self.acc.d.next = self.zero_acc.val();
                self.row.d.next = self.row.q.val() + 1;
            } else {
                self.acc.d.next = self.sum.val();
            }
        }
        // Stage D: the narrowing's register.
        self.narrow.clock.next = self.clock.val();
        self.narrow.en.next = true;
        self.narrow.x.next = self.closed.q.val();
        self.narrow.shift.next = self.shift.val();
        self.wr2.d.next = self.wr1.q.val();
        self.row2.d.next = self.row1.q.val();
        // Stage E: write the narrowed row into the compute pass's result bank.
        self.res_wa.next = self.row2.q.val();
        if self.el_rbank.val() {
            self.res_wa.next = self.row2.q.val() | self.res_top.val();
        }
        self.res.write_address.next = self.res_wa.val();
        self.res.write_data.next = self.narrow.y.val();
        self.res.write_enable.next = self.wr2.q.val();
        self.rd_e.next = self.v1.q.val();
        self.rd_w.next = self.v1.q.val() & !self.gen_mode.val();
        self.busy.next = self.running.q.val()
            | self.v1.q.val()
            | self.v2.q.val()
            | self.v3.q.val()
            | self.wr1.q.val()
            | self.wr2.q.val();
    }
}
