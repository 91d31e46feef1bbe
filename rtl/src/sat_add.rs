//! A registered saturating sum or difference of two Q8.24 words: y = sat(a ± b),
//! moving while `en` is high (one 33-bit carry chain and a clamp). The update unit's
//! three sums ([`contract::update::FixedOps`]'s `add` and `sub`).
//!
//! A leaf with hand-written Verilog: rust-hdl's `Signed` has no widening add, and the
//! sign extension it would need (`signed_bit_cast`) emits the wrong Verilog for the
//! most negative value (see the project's rust-hdl notes). The Rust `update` models it,
//! and the update unit's co-simulation covers the Verilog.

use contract::update::{FixedOps, UpdateOps, WORD_BITS};
use rust_hdl::prelude::*;

/// The saturating adder (or subtractor).
#[derive(LogicBlock)]
pub struct SatAdd {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The register moves this cycle.
    pub en: Signal<In, Bit>,
    /// First operand.
    pub a: Signal<In, Signed<WORD_BITS>>,
    /// Second operand.
    pub b: Signal<In, Signed<WORD_BITS>>,
    /// sat(a + b), or sat(a − b) for a subtractor, one enabled cycle later.
    pub y: Signal<Out, Signed<WORD_BITS>>,
    /// Subtract instead of add (generation time).
    _sub: bool,
    /// Rust model of the register (not emitted).
    _y: i64,
}

impl SatAdd {
    /// An adder (`sub` false) or a subtractor.
    pub fn new(sub: bool) -> SatAdd {
        SatAdd {
            clock: Default::default(),
            en: Default::default(),
            a: Default::default(),
            b: Default::default(),
            y: Default::default(),
            _sub: sub,
            _y: 0,
        }
    }
}

impl Logic for SatAdd {
    fn update(&mut self) {
        if self.clock.pos_edge() && self.en.val() {
            let a = crate::signed_value(self.a.val()) as i32;
            let b = crate::signed_value(self.b.val()) as i32;
            self._y = if self._sub {
                FixedOps::sub(a, b)
            } else {
                FixedOps::add(a, b)
            } as i64;
        }
        self.y.next = self._y.to_signed_bits();
    }
    fn connect(&mut self) {
        self.y.connect();
    }
    fn hdl(&self) -> Verilog {
        let op = if self._sub { '-' } else { '+' };
        Verilog::Custom(format!(
            "\
// The exact sum in 33 bits, then clamped to 32.
wire signed [32:0] s = {{a[31], a}} {op} {{b[31], b}};
initial y = 0;
always @(posedge clock) begin
   if (en) begin
      if (s[32] != s[31]) y <= s[32] ? 32'sh80000000 : 32'sh7fffffff;
      else y <= s[31:0];
   end
end
"
        ))
    }
}
