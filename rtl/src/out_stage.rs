//! The output stage every stream unit shares: a one-word fetch pipeline into the
//! output register of a valid/ready stream with backpressure and `out_last`.
//!
//! Each cycle in which the stage `advance`s, the output register takes the word
//! fetched the cycle before (`word`, which the unit forms from its lanes' read data,
//! selecting the lane by `sel`), and the unit's next fetch (`fetch` with its lane and
//! last flag) enters the pipeline; the unit presents that fetch's memory address in
//! the same cycle and must hold its last address while the stage does not advance.
//! `done` pulses when a pass's last word leaves.

use contract::format::ERROR_BITS;
use contract::params::BSBU_MAX_LANES;
use rust_hdl::prelude::*;

/// The output stage.
#[derive(LogicBlock, Default)]
pub struct OutStage {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The stage runs (the bsbu's DRAIN phase; always for the dce).
    pub enable: Signal<In, Bit>,
    /// Output stream ready (backpressure).
    pub out_ready: Signal<In, Bit>,
    /// The unit has a word to fetch this cycle (taken when `advance` is high).
    pub fetch: Signal<In, Bit>,
    /// One-hot lane of the word being fetched.
    pub fetch_sel: Signal<In, Bits<BSBU_MAX_LANES>>,
    /// The word being fetched is its pass's last.
    pub fetch_last: Signal<In, Bit>,
    /// The fetched word, formed by the unit from the lane `sel` (masked or scaled).
    pub word: Signal<In, Signed<ERROR_BITS>>,
    /// The stage takes a fetch and moves its register this cycle.
    pub advance: Signal<Out, Bit>,
    /// One-hot lane of the word fetched last cycle (its read data is valid now).
    pub sel: Signal<Out, Bits<BSBU_MAX_LANES>>,
    /// A pass's last word leaves this cycle.
    pub done: Signal<Out, Bit>,
    /// Output stream data.
    pub out_data: Signal<Out, Signed<ERROR_BITS>>,
    /// Output stream valid.
    pub out_valid: Signal<Out, Bit>,
    /// Marks a pass's last word.
    pub out_last: Signal<Out, Bit>,
    /// The memories' read data is a fetched word.
    s1_valid: DFF<Bit>,
    /// One-hot lane of the fetched word.
    s1_sel: DFF<Bits<BSBU_MAX_LANES>>,
    /// The fetched word is its pass's last.
    s1_last: DFF<Bit>,
    /// Output register: valid.
    o_valid: DFF<Bit>,
    /// Output register: data.
    o_data: DFF<Signed<ERROR_BITS>>,
    /// Output register: last.
    o_last: DFF<Bit>,
}

impl Logic for OutStage {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, s1_valid, s1_sel, s1_last, o_valid, o_data, o_last);
        self.advance.next = self.enable.val() & (!self.o_valid.q.val() | self.out_ready.val());
        self.sel.next = self.s1_sel.q.val();
        if self.advance.val() {
            self.o_valid.d.next = self.s1_valid.q.val();
            self.o_data.d.next = self.word.val();
            self.o_last.d.next = self.s1_last.q.val();
            self.s1_valid.d.next = false;
            if self.fetch.val() {
                self.s1_valid.d.next = true;
                self.s1_sel.d.next = self.fetch_sel.val();
                self.s1_last.d.next = self.fetch_last.val();
            }
        }
        self.done.next =
            self.enable.val() & self.o_valid.q.val() & self.out_ready.val() & self.o_last.q.val();
        if self.done.val() {
            self.o_valid.d.next = false;
            self.o_last.d.next = false;
        }
        self.out_valid.next = self.o_valid.q.val();
        self.out_data.next = self.o_data.q.val();
        self.out_last.next = self.o_last.q.val();
    }
}
