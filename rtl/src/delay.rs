//! A delay line of Q8.24 words: q is d from `depth` enabled cycles earlier. The
//! update unit keeps each weight's θ and velocities beside the multiplies with these.
//!
//! A leaf with hand-written Verilog because rust-hdl cannot size an array of
//! registers at run time (a depth per instance); the Rust `update` models it, and the
//! update unit's co-simulation covers the Verilog.

use std::collections::VecDeque;

use contract::update::WORD_BITS;
use rust_hdl::prelude::*;

/// The delay line.
#[derive(LogicBlock)]
pub struct Delay {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The line moves this cycle.
    pub en: Signal<In, Bit>,
    /// Word in.
    pub d: Signal<In, Signed<WORD_BITS>>,
    /// d, `depth` enabled cycles later.
    pub q: Signal<Out, Signed<WORD_BITS>>,
    /// Registers in the line (generation time, ≥ 1).
    _depth: usize,
    /// Rust model of the registers (not emitted).
    _line: VecDeque<i64>,
}

impl Delay {
    /// A line of `depth` ≥ 1 registers.
    pub fn new(depth: usize) -> Delay {
        assert!(depth >= 1, "a delay line needs a register");
        Delay {
            clock: Default::default(),
            en: Default::default(),
            d: Default::default(),
            q: Default::default(),
            _depth: depth,
            _line: VecDeque::from(vec![0; depth]),
        }
    }
}

impl Logic for Delay {
    fn update(&mut self) {
        if self.clock.pos_edge() && self.en.val() {
            self._line.push_front(crate::signed_value(self.d.val()));
            self._line.pop_back();
        }
        self.q.next = self._line[self._depth - 1].to_signed_bits();
    }
    fn connect(&mut self) {
        self.q.connect();
    }
    fn hdl(&self) -> Verilog {
        let n = self._depth;
        let body = if n == 1 {
            "initial q = 0;\nalways @(posedge clock) begin\n   if (en) q <= d;\nend\n".to_string()
        } else {
            format!(
                "\
reg signed [31:0] sr [0:{m}];
integer i;
initial begin
   for (i = 0; i < {n1}; i = i + 1) sr[i] = 0;
   q = 0;
end
always @(posedge clock) begin
   if (en) begin
      sr[0] <= d;
      for (i = 1; i < {n1}; i = i + 1) sr[i] <= sr[i - 1];
      q <= sr[{m}];
   end
end
",
                m = n - 2,
                n1 = n - 1
            )
        };
        Verilog::Custom(body)
    }
}
