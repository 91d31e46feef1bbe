//! NarrowPipe: [`crate::narrow::Narrow`] with one register stage, for a fast clock.
//!
//! The combinational step rounds (x + half, one carry chain), then compares the
//! rounded sum with the saturation bounds (a second chain) and selects. Here the two
//! compares are taken on x itself, against the bounds less half:
//! x + half ≥ hi ⟺ x ≥ hi − half, and x + half < lo ⟺ x < lo − half (exact: every
//! value fits [`WIDE`] bits), so the add and both compares run side by side into the
//! register, and only the select follows it. Same words as `Narrow`, one enabled
//! cycle later.

use contract::format::{ACC_BITS, ERROR, ERROR_BITS};
use rust_hdl::prelude::*;

use crate::narrow::{SHIFT_BITS, WIDE};

/// Round half up by `shift` and saturate into the error format, registered.
#[derive(LogicBlock)]
pub struct NarrowPipe {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The register takes x this cycle.
    pub en: Signal<In, Bit>,
    /// Accumulator value.
    pub x: Signal<In, Signed<ACC_BITS>>,
    /// Right shift, 0..=MAX_SHIFT (held constant).
    pub shift: Signal<In, Bits<SHIFT_BITS>>,
    /// Narrowed value of the x taken at the last enabled edge.
    pub y: Signal<Out, Signed<ERROR_BITS>>,
    /// x sign-extended.
    xw: Signal<Local, Signed<WIDE>>,
    /// Half an output LSB: (1 << shift) >> 1.
    half: Signal<Local, Bits<WIDE>>,
    /// x + half.
    sum: Signal<Local, Signed<WIDE>>,
    /// sum >> shift, raw bits.
    shifted: Signal<Local, Bits<WIDE>>,
    /// (max + 1) << shift, less half: x at or above saturates high.
    hi: Signal<Local, Bits<WIDE>>,
    /// (min << shift) − half: x below saturates low.
    lo: Signal<Local, Bits<WIDE>>,
    /// Registered: the rounded, shifted word's low bits.
    word: DFF<Bits<ERROR_BITS>>,
    /// Registered: saturate high.
    sat_hi: DFF<Bit>,
    /// Registered: saturate low.
    sat_lo: DFF<Bit>,
    /// 1.
    one: Constant<Bits<WIDE>>,
    /// max + 1 = 2^15.
    max_p1: Constant<Bits<WIDE>>,
    /// min = −2^15 in WIDE-bit two's complement.
    min_w: Constant<Bits<WIDE>>,
    /// Largest error word.
    max: Constant<Signed<ERROR_BITS>>,
    /// Smallest error word.
    min: Constant<Signed<ERROR_BITS>>,
}

impl Default for NarrowPipe {
    fn default() -> Self {
        let wmask = (1u64 << WIDE) - 1;
        NarrowPipe {
            clock: Default::default(),
            en: Default::default(),
            x: Default::default(),
            shift: Default::default(),
            y: Default::default(),
            xw: Default::default(),
            half: Default::default(),
            sum: Default::default(),
            shifted: Default::default(),
            hi: Default::default(),
            lo: Default::default(),
            word: Default::default(),
            sat_hi: Default::default(),
            sat_lo: Default::default(),
            one: Constant::new(1u64.to_bits()),
            max_p1: Constant::new(((ERROR.max_raw() + 1) as u64).to_bits()),
            min_w: Constant::new((ERROR.min_raw() as u64 & wmask).to_bits()),
            max: Constant::new(ERROR.max_raw().to_signed_bits()),
            min: Constant::new(ERROR.min_raw().to_signed_bits()),
        }
    }
}

impl Logic for NarrowPipe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, word, sat_hi, sat_lo);
        self.xw.next = signed_bit_cast::<WIDE, ACC_BITS>(self.x.val());
        self.half.next = (self.one.val() << self.shift.val()) >> 1;
        self.sum.next = self.xw.val() + signed_cast(self.half.val());
        self.hi.next = (self.max_p1.val() << self.shift.val()) - self.half.val();
        self.lo.next = (self.min_w.val() << self.shift.val()) - self.half.val();
        self.shifted.next = unsigned_cast(self.sum.val()) >> self.shift.val();
        if self.en.val() {
            self.word.d.next = self.shifted.val().get_bits::<ERROR_BITS>(0);
            self.sat_hi.d.next = self.xw.val() >= signed_cast(self.hi.val());
            self.sat_lo.d.next = self.xw.val() < signed_cast(self.lo.val());
        }
        if self.sat_hi.q.val() {
            self.y.next = self.max.val();
        } else if self.sat_lo.q.val() {
            self.y.next = self.min.val();
        } else {
            self.y.next = signed_cast(self.word.q.val());
        }
    }
}
