//! Narrow: `contract::format::narrow(x, shift, ERROR)` in hardware, the one
//! round-half-up and saturate step of every unit. The shift is an input: a
//! configuration register (the conv engine) or a constant (the backward-weight unit;
//! yosys folds the shifter away).
//!
//! The half-LSB and the two saturation bounds are the constants 1, 2^15 and −2^15
//! shifted left by the run-time shift. They are formed in [`WIDE`] bits: with the
//! largest shift (16), (max + 1) << 16 = 2^31 does not fit the 32-bit accumulator.

use contract::format::{ACC_BITS, ERROR, ERROR_BITS};
use contract::params::MAX_SHIFT;
use rust_hdl::prelude::*;

/// Width of the shift input (MAX_SHIFT = 16 needs 5 bits).
pub const SHIFT_BITS: usize = 5;
/// Internal width: the bound (max + 1) << MAX_SHIFT = 2^31 needs 33 signed bits; two
/// more than the accumulator keep it and x + half exact.
pub const WIDE: usize = ACC_BITS + 2;

const _: () = assert!(MAX_SHIFT < (1 << SHIFT_BITS) && (MAX_SHIFT as usize) + ERROR_BITS < WIDE);

/// Round half up by `shift` and saturate into the error format.
#[derive(LogicBlock)]
pub struct Narrow {
    /// Accumulator value.
    pub x: Signal<In, Signed<ACC_BITS>>,
    /// Right shift, 0..=MAX_SHIFT.
    pub shift: Signal<In, Bits<SHIFT_BITS>>,
    /// Narrowed value (combinational).
    pub y: Signal<Out, Signed<ERROR_BITS>>,
    /// x sign-extended.
    xw: Signal<Local, Signed<WIDE>>,
    /// Half an output LSB: (1 << shift) >> 1.
    half: Signal<Local, Bits<WIDE>>,
    /// x + half.
    sum: Signal<Local, Signed<WIDE>>,
    /// sum >> shift, raw bits.
    shifted: Signal<Local, Bits<WIDE>>,
    /// (max + 1) << shift: sums at or above saturate high.
    hi: Signal<Local, Bits<WIDE>>,
    /// min << shift: sums below saturate low.
    lo: Signal<Local, Bits<WIDE>>,
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

impl Default for Narrow {
    fn default() -> Self {
        let wmask = (1u64 << WIDE) - 1;
        Narrow {
            x: Default::default(),
            shift: Default::default(),
            y: Default::default(),
            xw: Default::default(),
            half: Default::default(),
            sum: Default::default(),
            shifted: Default::default(),
            hi: Default::default(),
            lo: Default::default(),
            one: Constant::new(1u64.to_bits()),
            max_p1: Constant::new(((ERROR.max_raw() + 1) as u64).to_bits()),
            min_w: Constant::new((ERROR.min_raw() as u64 & wmask).to_bits()),
            max: Constant::new(ERROR.max_raw().to_signed_bits()),
            min: Constant::new(ERROR.min_raw().to_signed_bits()),
        }
    }
}

impl Logic for Narrow {
    #[hdl_gen]
    fn update(&mut self) {
        self.xw.next = signed_bit_cast::<WIDE, ACC_BITS>(self.x.val());
        self.half.next = (self.one.val() << self.shift.val()) >> 1;
        self.sum.next = self.xw.val() + signed_cast(self.half.val());
        self.shifted.next = unsigned_cast(self.sum.val()) >> self.shift.val();
        self.hi.next = self.max_p1.val() << self.shift.val();
        self.lo.next = self.min_w.val() << self.shift.val();
        if self.sum.val() >= signed_cast(self.hi.val()) {
            self.y.next = self.max.val();
        } else if self.sum.val() < signed_cast(self.lo.val()) {
            self.y.next = self.min.val();
        } else {
            self.y.next = signed_cast(self.shifted.val().get_bits::<ERROR_BITS>(0));
        }
    }
}
