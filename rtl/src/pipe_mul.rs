//! A signed 16 × 16 → 32-bit multiply in [`PIPE_MUL_STAGES`] register stages, for a
//! clock that one LUT multiplier would not meet: the iCE40 HX has no multipliers, and
//! yosys builds `a * b` as a chain of sixteen adders (the backward-weight unit's
//! critical path before this block).
//!
//! The product is an adder tree over 2-bit chunks of b, one carry chain per stage:
//! 1. q_j = a × b[2j+1:2j] (chunks 0..6 unsigned, chunk 7 = b[15:14] signed), 18 bits;
//! 2. r_k = q_2k + 4·q_2k+1 (a × 4-bit chunk), 21 bits;
//! 3. s_m = r_2m + 16·r_2m+1 (a × 8-bit chunk), 25 bits;
//! 4. p = s_0 + 256·s_1, 32 bits (|a·b| ≤ 2^30: exact).
//!
//! Every stage moves only while `en` is high, so the block sits inside a stalled
//! pipeline. This is a leaf with hand-written Verilog (rust-hdl's `*` exists only as
//! one combinational 16 × 16 multiply and has no shifts on signed values); the Rust
//! `update` models the same four enabled stages, and the co-simulation of every unit
//! that uses it covers the Verilog.

use contract::format::{ACC_BITS, ERROR_BITS};
use rust_hdl::prelude::*;

/// Register stages from (a, b) to p.
pub const PIPE_MUL_STAGES: usize = 4;

/// The pipelined multiplier.
#[derive(LogicBlock, Default)]
pub struct PipeMul {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Every stage moves this cycle.
    pub en: Signal<In, Bit>,
    /// Multiplicand (an error word).
    pub a: Signal<In, Signed<ERROR_BITS>>,
    /// Multiplier (a Q2.14 derivative word).
    pub b: Signal<In, Signed<ERROR_BITS>>,
    /// a × b, [`PIPE_MUL_STAGES`] enabled cycles after a and b.
    pub p: Signal<Out, Signed<ACC_BITS>>,
    /// Rust model of the stages (not emitted).
    _stages: [i64; PIPE_MUL_STAGES],
}

impl Logic for PipeMul {
    fn update(&mut self) {
        if self.clock.pos_edge() && self.en.val() {
            for i in (1..PIPE_MUL_STAGES).rev() {
                self._stages[i] = self._stages[i - 1];
            }
            self._stages[0] = crate::signed_value(self.a.val()) * crate::signed_value(self.b.val());
        }
        self.p.next = self._stages[PIPE_MUL_STAGES - 1].to_signed_bits();
    }
    fn connect(&mut self) {
        self.p.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            "\
// Stage 1: a x 2-bit chunks of b (chunk 7 signed).
wire signed [17:0] a1 = {{2{a[15]}}, a};
wire signed [17:0] a2 = {a[15], a, 1'b0};
reg signed [17:0] q0, q1, q2, q3, q4, q5, q6, q7;
// Stage 2: a x 4-bit chunks.
reg signed [20:0] r0, r1, r2, r3;
// Stage 3: a x 8-bit chunks.
reg signed [24:0] s0, s1;
// Stage 4: the product, in the output register p.
initial begin
   q0 = 0; q1 = 0; q2 = 0; q3 = 0; q4 = 0; q5 = 0; q6 = 0; q7 = 0;
   r0 = 0; r1 = 0; r2 = 0; r3 = 0; s0 = 0; s1 = 0; p = 0;
end
always @(posedge clock) begin
   if (en) begin
      q0 <= (b[0] ? a1 : 18'sd0) + (b[1] ? a2 : 18'sd0);
      q1 <= (b[2] ? a1 : 18'sd0) + (b[3] ? a2 : 18'sd0);
      q2 <= (b[4] ? a1 : 18'sd0) + (b[5] ? a2 : 18'sd0);
      q3 <= (b[6] ? a1 : 18'sd0) + (b[7] ? a2 : 18'sd0);
      q4 <= (b[8] ? a1 : 18'sd0) + (b[9] ? a2 : 18'sd0);
      q5 <= (b[10] ? a1 : 18'sd0) + (b[11] ? a2 : 18'sd0);
      q6 <= (b[12] ? a1 : 18'sd0) + (b[13] ? a2 : 18'sd0);
      q7 <= (b[14] ? a1 : 18'sd0) - (b[15] ? a2 : 18'sd0);
      r0 <= q0 + (q1 <<< 2);
      r1 <= q2 + (q3 <<< 2);
      r2 <= q4 + (q5 <<< 2);
      r3 <= q6 + (q7 <<< 2);
      s0 <= r0 + (r1 <<< 4);
      s1 <= r2 + (r3 <<< 4);
      p <= s0 + (s1 <<< 8);
   end
end
"
            .into(),
        )
    }
}
