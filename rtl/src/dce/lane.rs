//! One lane of the engine: the accumulator of one output channel. Each cycle it
//! adds or subtracts the broadcast error word by its weight's sign bit (binary
//! weights: no multiplier), and on an output's last tap it keeps the sum and narrows
//! it. Three register stages, so that no buffer read, carry chain or saturation
//! compare shares a clock cycle with another:
//! - R: the inputs are registered: the word comes straight from a block RAM through
//!   the bank select. The lane registers ~word where it subtracts (−w = ~w + 1), so
//!   each lane keeps its own copy (equal registers would be merged by yosys into one
//!   that fans out to every lane, and the routing would dominate the clock).
//! - A: acc + (±word): one carry chain, the subtraction's + 1 entering as the carry
//!   in of an extra low bit; on close the sum is kept.
//! - N: [`NarrowRt`] shifts, takes the round bit and compares for saturation
//!   into its register (the shift is a run-time register).
//!
//! The narrowed sum of an output closed at cycle t (its `close` input high) is on
//! `y` at cycle t + [`DCE_LANE_LATENCY`].

use contract::format::{ACC_BITS, ERROR_BITS};
use rust_hdl::prelude::*;

use crate::narrow::SHIFT_BITS;
use crate::narrow_rt::NarrowRt;

/// Cycles from a lane's `close` input to its narrowed `y`.
pub const DCE_LANE_LATENCY: usize = 3;

/// The accumulator and one extra low bit that carries the subtraction's + 1 in.
const ACC_CIN_BITS: usize = ACC_BITS + 1;

/// Accumulate ±word; narrow each finished sum.
#[derive(LogicBlock)]
pub struct DceLane {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The error word of this cycle's tap (0 for padding taps), shared by all lanes.
    pub word: Signal<In, Signed<ERROR_BITS>>,
    /// This lane's weight sign: subtract.
    pub neg: Signal<In, Bit>,
    /// First tap of an output: start from zero.
    pub first: Signal<In, Bit>,
    /// A tap is present this cycle.
    pub en: Signal<In, Bit>,
    /// Last tap of an output: keep the sum for `y`.
    pub close: Signal<In, Bit>,
    /// Scaling shift of the current stage (held through the pass).
    pub shift: Signal<In, Bits<SHIFT_BITS>>,
    /// The last closed sum, narrowed.
    pub y: Signal<Out, Signed<ERROR_BITS>>,
    /// Stage R: the word, or ~word where the lane subtracts.
    wr: DFF<Bits<ERROR_BITS>>,
    /// Stage R: subtract (the + 1 of −w = ~w + 1).
    negr: DFF<Bit>,
    /// Stage R: first tap.
    firstr: DFF<Bit>,
    /// Stage R: a tap is present.
    enr: DFF<Bit>,
    /// Stage R: last tap.
    closer: DFF<Bit>,
    /// Running sum.
    acc: DFF<Signed<ACC_BITS>>,
    /// Closed sum.
    res: DFF<Signed<ACC_BITS>>,
    /// `res` holds a sum closed last cycle: the narrowing takes it.
    closed: DFF<Bit>,
    /// The registered word (or ~word), sign-extended.
    wsx: Signal<Local, Signed<ACC_BITS>>,
    /// wsx shifted up by the carry-in bit.
    wide: Signal<Local, Bits<ACC_CIN_BITS>>,
    /// acc, or 0 on the first tap.
    base: Signal<Local, Signed<ACC_BITS>>,
    /// (base << 1 | 1) + (wide | negr): bit 0 carries negr into bit 1.
    total: Signal<Local, Bits<ACC_CIN_BITS>>,
    /// base ± word: total >> 1.
    sum: Signal<Local, Signed<ACC_BITS>>,
    /// 1 in the carry-in bit.
    one: Constant<Bits<ACC_CIN_BITS>>,
    /// Round and saturate, registered.
    narrow: NarrowRt,
    /// Zero accumulator.
    zero: Constant<Signed<ACC_BITS>>,
}

impl Default for DceLane {
    fn default() -> Self {
        DceLane {
            clock: Default::default(),
            word: Default::default(),
            neg: Default::default(),
            first: Default::default(),
            en: Default::default(),
            close: Default::default(),
            shift: Default::default(),
            y: Default::default(),
            wr: Default::default(),
            negr: Default::default(),
            firstr: Default::default(),
            enr: Default::default(),
            closer: Default::default(),
            acc: Default::default(),
            res: Default::default(),
            closed: Default::default(),
            wsx: Default::default(),
            wide: Default::default(),
            base: Default::default(),
            total: Default::default(),
            sum: Default::default(),
            one: Constant::new(1u64.to_bits()),
            narrow: Default::default(),
            zero: Constant::new(0i64.to_signed_bits()),
        }
    }
}

impl Logic for DceLane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, wr, negr, firstr, enr, closer, acc, res, closed);
        // Stage R.
        self.wr.d.next = unsigned_cast(self.word.val());
        if self.neg.val() {
            self.wr.d.next = !unsigned_cast(self.word.val());
        }
        self.negr.d.next = self.neg.val();
        self.firstr.d.next = self.first.val();
        self.enr.d.next = self.en.val();
        self.closer.d.next = self.close.val();
        // Stage A.
        // Sign extension happens in the assignment to the signed ACC_BITS local: a
        // cast inside a wider unsigned expression would zero-extend in Verilog.
        self.wsx.next = signed_bit_cast::<ACC_BITS, ERROR_BITS>(signed_cast(self.wr.q.val()));
        self.wide.next = bit_cast::<ACC_CIN_BITS, ACC_BITS>(unsigned_cast(self.wsx.val())) << 1;
        if self.negr.q.val() {
            self.wide.next = (bit_cast::<ACC_CIN_BITS, ACC_BITS>(unsigned_cast(self.wsx.val()))
                << 1)
                | self.one.val();
        }
        self.base.next = self.acc.q.val();
        if self.firstr.q.val() {
            self.base.next = self.zero.val();
        }
        self.total.next = ((bit_cast::<ACC_CIN_BITS, ACC_BITS>(unsigned_cast(self.base.val()))
            << 1)
            | self.one.val())
            + self.wide.val();
        self.sum.next = signed_cast(self.total.val().get_bits::<ACC_BITS>(1));
        if self.enr.q.val() {
            self.acc.d.next = self.sum.val();
        }
        if self.closer.q.val() {
            self.res.d.next = self.sum.val();
        }
        self.closed.d.next = self.closer.q.val();
        // Stage N.
        self.narrow.clock.next = self.clock.val();
        self.narrow.en.next = self.closed.q.val();
        self.narrow.x.next = self.res.q.val();
        self.narrow.shift.next = self.shift.val();
        self.y.next = self.narrow.y.val();
    }
}
