//! NarrowRt: [`crate::narrow::Narrow`] for a run-time shift and a fast clock.
//!
//! [`crate::narrow_pipe::NarrowPipe`] suits a shift fixed at generation time (yosys
//! folds the bounds). With a shift from a configuration register, the bounds
//! `(max + 1) << s` and `min << s` less half, the rounding add and the shift would
//! all chain behind the register. Here:
//! - half an LSB, then the bounds, are registered from the shift every cycle (the
//!   shift is held through a pass, and a narrowing comes at least two cycles after it
//!   settles);
//! - rounding half up is done after the shift, not before:
//!   (x + 2^(s−1)) >> s = (x >> s) + bit s−1 of x (exact for every x and s ≥ 0,
//!   with bit −1 = 0), so the shift and the round bit are taken from x side by side
//!   with both saturation compares, into one register;
//! - after the register only the 16-bit increment and the select remain.
//!
//! Same words as `Narrow`, one enabled cycle later.

use contract::format::{ACC_BITS, ERROR, ERROR_BITS};
use rust_hdl::prelude::*;

use crate::narrow::{SHIFT_BITS, WIDE};

/// Round half up by a run-time `shift` and saturate into the error format, registered.
#[derive(LogicBlock)]
pub struct NarrowRt {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The register takes x this cycle.
    pub en: Signal<In, Bit>,
    /// Accumulator value.
    pub x: Signal<In, Signed<ACC_BITS>>,
    /// Right shift, 0..=MAX_SHIFT (held at least two cycles before `en`).
    pub shift: Signal<In, Bits<SHIFT_BITS>>,
    /// Narrowed value of the x taken at the last enabled edge.
    pub y: Signal<Out, Signed<ERROR_BITS>>,
    /// x sign-extended.
    xw: Signal<Local, Signed<WIDE>>,
    /// Registered: half an output LSB, (1 << shift) >> 1.
    half: DFF<Bits<WIDE>>,
    /// x >> shift, raw bits (the low ERROR_BITS are those of the arithmetic shift,
    /// as shift + ERROR_BITS < WIDE).
    shifted: Signal<Local, Bits<WIDE>>,
    /// (x << 1) >> shift: bit 0 is x's bit shift − 1, the round bit (0 at shift 0).
    rbits: Signal<Local, Bits<WIDE>>,
    /// The round bit as a word, for the increment.
    rword: Signal<Local, Bits<ERROR_BITS>>,
    /// Registered: ((max + 1) << shift) − half: x at or above saturates high.
    hi: DFF<Bits<WIDE>>,
    /// Registered: (min << shift) − half: x below saturates low.
    lo: DFF<Bits<WIDE>>,
    /// Registered: the shifted word's low bits.
    word: DFF<Bits<ERROR_BITS>>,
    /// Registered: the round bit.
    rb: DFF<Bit>,
    /// Registered: saturate high.
    sat_hi: DFF<Bit>,
    /// Registered: saturate low.
    sat_lo: DFF<Bit>,
    /// 1.
    one: Constant<Bits<WIDE>>,
    /// 1 as a word.
    one_w: Constant<Bits<ERROR_BITS>>,
    /// 0 as a word.
    zero_w: Constant<Bits<ERROR_BITS>>,
    /// max + 1 = 2^15.
    max_p1: Constant<Bits<WIDE>>,
    /// min = −2^15 in WIDE-bit two's complement.
    min_w: Constant<Bits<WIDE>>,
    /// Largest error word.
    max: Constant<Signed<ERROR_BITS>>,
    /// Smallest error word.
    min: Constant<Signed<ERROR_BITS>>,
}

impl Default for NarrowRt {
    fn default() -> Self {
        let wmask = (1u64 << WIDE) - 1;
        NarrowRt {
            clock: Default::default(),
            en: Default::default(),
            x: Default::default(),
            shift: Default::default(),
            y: Default::default(),
            xw: Default::default(),
            half: Default::default(),
            shifted: Default::default(),
            rbits: Default::default(),
            rword: Default::default(),
            hi: Default::default(),
            lo: Default::default(),
            word: Default::default(),
            rb: Default::default(),
            sat_hi: Default::default(),
            sat_lo: Default::default(),
            one: Constant::new(1u64.to_bits()),
            one_w: Constant::new(1u64.to_bits()),
            zero_w: Constant::new(0u64.to_bits()),
            max_p1: Constant::new(((ERROR.max_raw() + 1) as u64).to_bits()),
            min_w: Constant::new((ERROR.min_raw() as u64 & wmask).to_bits()),
            max: Constant::new(ERROR.max_raw().to_signed_bits()),
            min: Constant::new(ERROR.min_raw().to_signed_bits()),
        }
    }
}

impl Logic for NarrowRt {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, half, hi, lo, word, rb, sat_hi, sat_lo);
        // The bounds, from the shift alone.
        self.half.d.next = (self.one.val() << self.shift.val()) >> 1;
        self.hi.d.next = (self.max_p1.val() << self.shift.val()) - self.half.q.val();
        self.lo.d.next = (self.min_w.val() << self.shift.val()) - self.half.q.val();
        // Shift, round bit and both compares side by side.
        self.xw.next = signed_bit_cast::<WIDE, ACC_BITS>(self.x.val());
        self.shifted.next = unsigned_cast(self.xw.val()) >> self.shift.val();
        self.rbits.next = (unsigned_cast(self.xw.val()) << 1) >> self.shift.val();
        if self.en.val() {
            self.word.d.next = self.shifted.val().get_bits::<ERROR_BITS>(0);
            self.rb.d.next = self.rbits.val().get_bit(0);
            self.sat_hi.d.next = self.xw.val() >= signed_cast(self.hi.q.val());
            self.sat_lo.d.next = self.xw.val() < signed_cast(self.lo.q.val());
        }
        // After the register: round up by the bit, or saturate.
        self.rword.next = self.zero_w.val();
        if self.rb.q.val() {
            self.rword.next = self.one_w.val();
        }
        if self.sat_hi.q.val() {
            self.y.next = self.max.val();
        } else if self.sat_lo.q.val() {
            self.y.next = self.min.val();
        } else {
            self.y.next = signed_cast(self.word.q.val() + self.rword.val());
        }
    }
}
