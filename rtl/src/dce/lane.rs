//! One lane of the engine: the accumulator of one output channel. Each cycle it
//! adds or subtracts the broadcast error word by its weight's sign bit (binary
//! weights: no multiplier), and on an output's last tap it keeps the sum; the
//! narrowed sum is on `y` in the following cycle.

use contract::format::{ACC_BITS, ERROR_BITS};
use rust_hdl::prelude::*;

use crate::narrow::{Narrow, SHIFT_BITS};

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
    /// Scaling shift of the current stage.
    pub shift: Signal<In, Bits<SHIFT_BITS>>,
    /// The last closed sum, narrowed.
    pub y: Signal<Out, Signed<ERROR_BITS>>,
    /// Running sum.
    acc: DFF<Signed<ACC_BITS>>,
    /// Closed sum.
    res: DFF<Signed<ACC_BITS>>,
    /// ±word, sign-extended.
    term: Signal<Local, Signed<ACC_BITS>>,
    /// acc (or 0 on the first tap) + term.
    sum: Signal<Local, Signed<ACC_BITS>>,
    /// Round and saturate.
    narrow: Narrow,
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
            acc: Default::default(),
            res: Default::default(),
            term: Default::default(),
            sum: Default::default(),
            narrow: Default::default(),
            zero: Constant::new(0i64.to_signed_bits()),
        }
    }
}

impl Logic for DceLane {
    #[hdl_gen]
    fn update(&mut self) {
        self.acc.clock.next = self.clock.val();
        self.res.clock.next = self.clock.val();
        self.acc.d.next = self.acc.q.val();
        self.res.d.next = self.res.q.val();
        self.term.next = signed_bit_cast::<ACC_BITS, ERROR_BITS>(self.word.val());
        if self.neg.val() {
            self.term.next = -signed_bit_cast::<ACC_BITS, ERROR_BITS>(self.word.val());
        }
        self.sum.next = self.acc.q.val() + self.term.val();
        if self.first.val() {
            self.sum.next = self.zero.val() + self.term.val();
        }
        if self.en.val() {
            self.acc.d.next = self.sum.val();
        }
        if self.close.val() {
            self.res.d.next = self.sum.val();
        }
        self.narrow.x.next = self.res.q.val();
        self.narrow.shift.next = self.shift.val();
        self.y.next = self.narrow.y.val();
    }
}
