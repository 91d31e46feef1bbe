//! The output stage every stream unit shares: a one-word fetch pipeline into the
//! output register of a valid/ready stream with backpressure and `out_last`.
//!
//! Each cycle in which the stage `advance`s, the output register takes the word
//! fetched the cycle before (`word`, which the unit forms from its lanes' read data,
//! selecting the lane by `sel`), and the unit's next fetch (`fetch` with its lane and
//! last flag) enters the pipeline; the unit presents that fetch's memory address in
//! the same cycle and must hold its last address while the stage does not advance.
//! The word at that address must not change until the stage advances: a stalled
//! stage re-reads it (a unit frees a buffer only after the advance that follows its
//! last fetch, or when `done` pulses).
//! `done` pulses when a pass's last word leaves.
//!
//! A unit whose word needs more than one cycle from the fetched read data (the
//! backward-weight unit's pipelined multiply and narrowing) builds the stage with
//! [`OutStage::with_latency`]: its datapath registers move on `advance`, and the
//! stage delays each word's valid and last flags by the same number of advances.
//!
//! The stage is generic over the word (`T`: the 16-bit error word of the bsbu and the
//! dce, [`ErrorOutStage`]; the update unit's beat of 3·P Q8.24 words) and over `ML`,
//! the most datapath register stages it can track.

use contract::format::ERROR_BITS;
use contract::params::BSBU_MAX_LANES;
use rust_hdl::prelude::*;

/// Most datapath register stages between the fetched read data and `word` in the
/// error-word stage.
pub const MAX_LATENCY: usize = 8;

/// The output stage of the units that emit error words (bsbu, dce).
pub type ErrorOutStage = OutStage<Signed<ERROR_BITS>, MAX_LATENCY>;

/// The output stage: words of type `T`, up to `ML` datapath register stages.
#[derive(LogicBlock)]
pub struct OutStage<T: Synth, const ML: usize> {
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
    pub word: Signal<In, T>,
    /// The stage takes a fetch and moves its register this cycle.
    pub advance: Signal<Out, Bit>,
    /// One-hot lane of the word fetched last cycle (its read data is valid now).
    pub sel: Signal<Out, Bits<BSBU_MAX_LANES>>,
    /// A pass's last word leaves this cycle.
    pub done: Signal<Out, Bit>,
    /// Output stream data.
    pub out_data: Signal<Out, T>,
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
    o_data: DFF<T>,
    /// Output register: last.
    o_last: DFF<Bit>,
    /// Valid flags of the words in the unit's datapath registers (bit i: i + 1
    /// advances after the fetch's read data).
    pv: DFF<Bits<ML>>,
    /// Last flags of the same words.
    pl: DFF<Bits<ML>>,
    /// The unit's word comes straight from the read data (no datapath registers).
    direct: Constant<Bit>,
    /// The flag bit of the word that `word` carries: bit latency − 1.
    lat_bit: Constant<Bits<ML>>,
    /// Bit 0 of the flag registers.
    first_bit: Constant<Bits<ML>>,
}

impl<T: Synth, const ML: usize> Default for OutStage<T, ML> {
    fn default() -> Self {
        Self::with_latency(0)
    }
}

impl<T: Synth, const ML: usize> OutStage<T, ML> {
    /// A stage whose unit forms `word` through `latency` register stages that move
    /// on `advance` (0: `word` is formed from the read data directly).
    pub fn with_latency(latency: usize) -> Self {
        assert!(latency <= ML && ML <= 64);
        OutStage {
            clock: Default::default(),
            enable: Default::default(),
            out_ready: Default::default(),
            fetch: Default::default(),
            fetch_sel: Default::default(),
            fetch_last: Default::default(),
            word: Default::default(),
            advance: Default::default(),
            sel: Default::default(),
            done: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_last: Default::default(),
            s1_valid: Default::default(),
            s1_sel: Default::default(),
            s1_last: Default::default(),
            o_valid: Default::default(),
            o_data: Default::default(),
            o_last: Default::default(),
            pv: Default::default(),
            pl: Default::default(),
            direct: Constant::new(latency == 0),
            lat_bit: Constant::new(((1u64 << latency) >> 1).to_bits()),
            first_bit: Constant::new(1u64.to_bits()),
        }
    }
}

impl<T: Synth, const ML: usize> Logic for OutStage<T, ML> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, s1_valid, s1_sel, s1_last, o_valid, o_data, o_last, pv, pl);
        self.advance.next = self.enable.val() & (!self.o_valid.q.val() | self.out_ready.val());
        self.sel.next = self.s1_sel.q.val();
        if self.advance.val() {
            self.pv.d.next = self.pv.q.val() << 1;
            self.pl.d.next = self.pl.q.val() << 1;
            if self.s1_valid.q.val() {
                self.pv.d.next = (self.pv.q.val() << 1) | self.first_bit.val();
            }
            if self.s1_last.q.val() {
                self.pl.d.next = (self.pl.q.val() << 1) | self.first_bit.val();
            }
            if self.direct.val() {
                self.o_valid.d.next = self.s1_valid.q.val();
                self.o_last.d.next = self.s1_last.q.val();
            } else {
                self.o_valid.d.next = (self.pv.q.val() & self.lat_bit.val()).any();
                self.o_last.d.next = (self.pl.q.val() & self.lat_bit.val()).any();
            }
            self.o_data.d.next = self.word.val();
            self.s1_valid.d.next = false;
            if self.fetch.val() {
                self.s1_valid.d.next = true;
                self.s1_sel.d.next = self.fetch_sel.val();
                self.s1_last.d.next = self.fetch_last.val();
            }
        }
        // A pass's last word leaves. The output register has already taken the next
        // word (or none): `done` implies `advance`, so a pass that follows back to back
        // loses no word.
        self.done.next =
            self.enable.val() & self.o_valid.q.val() & self.out_ready.val() & self.o_last.q.val();
        self.out_valid.next = self.o_valid.q.val();
        self.out_data.next = self.o_data.q.val();
        self.out_last.next = self.o_last.q.val();
    }
}
