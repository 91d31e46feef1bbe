//! Narrow: round-half-up right shift and saturation into the error format, i.e.
//! `golden::format::narrow(x, shift, ERROR)` in hardware.
//!
//! One adder with a constant half-LSB, two comparisons against constant bounds
//! (precomputed from the shift, so the comparisons happen before the shift), and a
//! bit slice. The shift is fixed at generation time.

use golden::format::{ACC_BITS, ERROR, ERROR_BITS};
use rust_hdl::prelude::*;

/// Width of the shift-amount constant: enough for any shift < 64.
const SHIFT_BITS: usize = 6;

/// Round and saturate a [`ACC_BITS`]-wide signed value into the error format.
#[derive(LogicBlock)]
pub struct Narrow {
    /// Wide input (accumulator or product).
    pub x: Signal<In, Signed<ACC_BITS>>,
    /// Narrowed output, valid in the same cycle (combinational).
    pub y: Signal<Out, Signed<ERROR_BITS>>,
    /// x plus half an output LSB.
    sum: Signal<Local, Signed<ACC_BITS>>,
    /// sum shifted right, as raw bits; only its low ERROR_BITS are used when in range.
    shifted: Signal<Local, Bits<ACC_BITS>>,
    /// Half an output LSB: 1 << (shift − 1), or 0 for shift 0.
    half: Constant<Signed<ACC_BITS>>,
    /// (max + 1) << shift: sums at or above saturate high.
    hi: Constant<Signed<ACC_BITS>>,
    /// min << shift: sums below saturate low.
    lo: Constant<Signed<ACC_BITS>>,
    /// The shift amount.
    shift: Constant<Bits<SHIFT_BITS>>,
    /// Largest error word.
    max: Constant<Signed<ERROR_BITS>>,
    /// Smallest error word.
    min: Constant<Signed<ERROR_BITS>>,
}

impl Narrow {
    /// A narrowing step with a fixed `shift` (≤ ACC_BITS − ERROR_BITS, checked by the caller).
    pub fn new(shift: u32) -> Self {
        let half = if shift == 0 { 0 } else { 1i64 << (shift - 1) };
        Narrow {
            x: Default::default(),
            y: Default::default(),
            sum: Default::default(),
            shifted: Default::default(),
            half: Constant::new(half.to_signed_bits()),
            hi: Constant::new(((ERROR.max_raw() + 1) << shift).to_signed_bits()),
            lo: Constant::new((ERROR.min_raw() << shift).to_signed_bits()),
            shift: Constant::new((shift as u64).to_bits()),
            max: Constant::new(ERROR.max_raw().to_signed_bits()),
            min: Constant::new(ERROR.min_raw().to_signed_bits()),
        }
    }
}

impl Logic for Narrow {
    #[hdl_gen]
    fn update(&mut self) {
        self.sum.next = self.x.val() + self.half.val();
        self.shifted.next = unsigned_cast(self.sum.val()) >> self.shift.val();
        if self.sum.val() >= self.hi.val() {
            self.y.next = self.max.val();
        } else if self.sum.val() < self.lo.val() {
            self.y.next = self.min.val();
        } else {
            self.y.next = signed_cast(self.shifted.val().get_bits::<ERROR_BITS>(0));
        }
    }
}
