//! c·m narrowed: a Q8.24 word m times a coefficient c in [0, 1] (17-bit unsigned,
//! Q1.16), rounded half up at COEF's 16 fraction bits, in [`COEF_MUL_STAGES`]
//! register stages. This is the update unit's multiply
//! ([`contract::update::FixedOps::scale`] in hardware).
//!
//! The iCE40 HX has no multipliers, so the product is an adder tree over 2-bit
//! chunks of c, one carry chain per stage, as in [`crate::pipe_mul::PipeMul`]:
//! 1. q_j = m × c[2j+1:2j] for j < 7 (34 bits), q_7 = m × c[16:14] (3 bits, 36 bits);
//! 2. r_k = q_2k + 4·q_2k+1 (38 bits);
//! 3. s_m = r_2m + 16·r_2m+1 (42 bits);
//! 4. p = s_0 + 256·s_1 (50 bits; |m·c| ≤ 2^47);
//! 5. r = p[47:16] + p[15]: the round-half-up shift, as one 32-bit add with the
//!    half bit as the carry. Taking 32 bits is exact because a coefficient ≤ 1 never
//!    makes the narrowed product exceed m ([`contract::update::scale_fits`]), so no
//!    saturation is needed.
//!
//! Every stage moves only while `en` is high. A leaf with hand-written Verilog
//! (rust-hdl has no wide or mixed-sign multiply); the Rust `update` models the same
//! stages, and the update unit's co-simulation covers the Verilog.

use contract::update::{FixedOps, UpdateOps, COEF_HW_BITS, WORD_BITS};
use rust_hdl::prelude::*;

/// Register stages from (m, c) to r.
pub const COEF_MUL_STAGES: usize = 5;

/// The pipelined coefficient multiply.
#[derive(LogicBlock, Default)]
pub struct CoefMul {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Every stage moves this cycle.
    pub en: Signal<In, Bit>,
    /// The Q8.24 word.
    pub m: Signal<In, Signed<WORD_BITS>>,
    /// The coefficient, 0 ..= 2^16 (17 bits: 1.0 needs the 17th).
    pub c: Signal<In, Bits<COEF_HW_BITS>>,
    /// round(m·c / 2^16), [`COEF_MUL_STAGES`] enabled cycles after m and c.
    pub r: Signal<Out, Signed<WORD_BITS>>,
    /// Rust model of the stages (not emitted).
    _stages: [i64; COEF_MUL_STAGES],
}

impl Logic for CoefMul {
    fn update(&mut self) {
        if self.clock.pos_edge() && self.en.val() {
            for i in (1..COEF_MUL_STAGES).rev() {
                self._stages[i] = self._stages[i - 1];
            }
            let m = crate::signed_value(self.m.val()) as i32;
            self._stages[0] = FixedOps::scale(m, self.c.val().to_u64() as i64) as i64;
        }
        self.r.next = self._stages[COEF_MUL_STAGES - 1].to_signed_bits();
    }
    fn connect(&mut self) {
        self.r.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            "\
// Stage 1: m x 2-bit chunks of c, and m x c[16:14].
wire signed [33:0] a1 = {{2{m[31]}}, m};
wire signed [33:0] a2 = {m[31], m, 1'b0};
wire signed [35:0] b1 = {{4{m[31]}}, m};
wire signed [35:0] b2 = {{3{m[31]}}, m, 1'b0};
wire signed [35:0] b4 = {{2{m[31]}}, m, 2'b0};
reg signed [33:0] q0, q1, q2, q3, q4, q5, q6;
reg signed [35:0] q7;
// Stage 2: m x 4-bit chunks.
reg signed [37:0] r0, r1, r2, r3;
// Stage 3: m x 8-bit chunks.
reg signed [41:0] s0, s1;
// Stage 4: the exact product.
reg signed [49:0] p;
initial begin
   q0 = 0; q1 = 0; q2 = 0; q3 = 0; q4 = 0; q5 = 0; q6 = 0; q7 = 0;
   r0 = 0; r1 = 0; r2 = 0; r3 = 0; s0 = 0; s1 = 0; p = 0; r = 0;
end
always @(posedge clock) begin
   if (en) begin
      q0 <= (c[0] ? a1 : 34'sd0) + (c[1] ? a2 : 34'sd0);
      q1 <= (c[2] ? a1 : 34'sd0) + (c[3] ? a2 : 34'sd0);
      q2 <= (c[4] ? a1 : 34'sd0) + (c[5] ? a2 : 34'sd0);
      q3 <= (c[6] ? a1 : 34'sd0) + (c[7] ? a2 : 34'sd0);
      q4 <= (c[8] ? a1 : 34'sd0) + (c[9] ? a2 : 34'sd0);
      q5 <= (c[10] ? a1 : 34'sd0) + (c[11] ? a2 : 34'sd0);
      q6 <= (c[12] ? a1 : 34'sd0) + (c[13] ? a2 : 34'sd0);
      q7 <= (c[14] ? b1 : 36'sd0) + (c[15] ? b2 : 36'sd0) + (c[16] ? b4 : 36'sd0);
      r0 <= q0 + (q1 <<< 2);
      r1 <= q2 + (q3 <<< 2);
      r2 <= q4 + (q5 <<< 2);
      r3 <= q6 + (q7 <<< 2);
      s0 <= r0 + (r1 <<< 4);
      s1 <= r2 + (r3 <<< 4);
      p <= s0 + (s1 <<< 8);
      // Stage 5: round half up at bit 16 (the half bit is the carry in).
      r <= p[47:16] + {31'd0, p[15]};
   end
end
"
            .into(),
        )
    }
}
