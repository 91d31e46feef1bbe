//! One lane of the update unit: Algorithm 1 on one weight per cycle, as an 18-stage
//! pipeline that moves while `en` is high ([`LANE_LATENCY`]).
//!
//! | stages | BP step (`dfa` low) | DFA step (`dfa` high) |
//! |---|---|---|
//! | 1–5 | α·v_bp | α·v_dfa, and (1−γ)·v_bp |
//! | 6 | v' = sat(α·v_bp + g) | v' = sat(α·v_dfa + g) |
//! | 7–11 | (γ·v', unused) | γ·v' |
//! | 12 | u = v' | u = sat(γ·v' + (1−γ)·v_bp) |
//! | 13–17 | η·u | η·u |
//! | 18 | θ' = sat(θ − η·u) | θ' = sat(θ − η·u) |
//!
//! The velocity a step does not update (v_dfa in a BP step, v_bp in a DFA step) and
//! θ travel beside the multiplies in delay lines. The step kind and the coefficients
//! are the unit's registers, fixed while words are in flight.

use contract::update::{COEF_HW_BITS, IN_WORDS, OUT_WORDS, WORD_BITS};
use rust_hdl::prelude::*;

use crate::coef_mul::{CoefMul, COEF_MUL_STAGES};
use crate::delay::Delay;
use crate::sat_add::SatAdd;

/// Register stages from the lane's input register to its output.
pub const LANE_LATENCY: usize = 3 * (COEF_MUL_STAGES + 1);

/// Width of a lane's input slot: θ, v_bp, v_dfa, g.
pub const LANE_IN_BITS: usize = IN_WORDS * WORD_BITS;
/// Width of a lane's output slot: θ', v_bp', v_dfa'.
pub const LANE_OUT_BITS: usize = OUT_WORDS * WORD_BITS;

/// One lane.
#[derive(LogicBlock)]
pub struct UpdLane {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The pipeline moves this cycle.
    pub en: Signal<In, Bit>,
    /// The step is a DFA step (low: BP).
    pub dfa: Signal<In, Bit>,
    /// η.
    pub eta: Signal<In, Bits<COEF_HW_BITS>>,
    /// α.
    pub alpha: Signal<In, Bits<COEF_HW_BITS>>,
    /// γ.
    pub gamma: Signal<In, Bits<COEF_HW_BITS>>,
    /// 1 − γ.
    pub omg: Signal<In, Bits<COEF_HW_BITS>>,
    /// The lane's input slot (θ in the low word, then v_bp, v_dfa, g), taken into the
    /// input register while `en` is high.
    pub x: Signal<In, Bits<LANE_IN_BITS>>,
    /// The lane's output slot (θ' in the low word, then v_bp', v_dfa'), from the
    /// last stage's registers.
    pub y: Signal<Out, Bits<LANE_OUT_BITS>>,
    /// Input register (stage 0).
    xr: DFF<Bits<LANE_IN_BITS>>,
    /// Stage 0: θ.
    theta0: Signal<Local, Signed<WORD_BITS>>,
    /// Stage 0: v_bp.
    vbp0: Signal<Local, Signed<WORD_BITS>>,
    /// Stage 0: v_dfa.
    vdfa0: Signal<Local, Signed<WORD_BITS>>,
    /// Stage 0: g.
    g0: Signal<Local, Signed<WORD_BITS>>,
    /// Stages 1–5: α × the step's velocity.
    mul_a: CoefMul,
    /// Stages 1–5: (1 − γ) × v_bp (DFA steps).
    mul_c: CoefMul,
    /// g, to stage 5.
    g_d: Delay,
    /// Stage 6: v' = sat(α·v + g).
    add_v: SatAdd,
    /// Stages 7–11: γ × v'.
    mul_b: CoefMul,
    /// (1 − γ)·v_bp from stage 5 to stage 11.
    c_d: Delay,
    /// v' from stage 6 to stage 11.
    v_d1: Delay,
    /// Stage 12: u.
    add_u: SatAdd,
    /// v' from stage 11 to stage 18.
    v_d2: Delay,
    /// Stages 13–17: η × u.
    mul_d: CoefMul,
    /// θ from stage 0 to stage 17.
    theta_d: Delay,
    /// Stage 18: θ' = sat(θ − η·u).
    sub_t: SatAdd,
    /// The velocity the step keeps, from stage 0 to stage 18.
    keep_d: Delay,
    /// Zero (the second operand of u = v' in BP steps).
    zero: Constant<Signed<WORD_BITS>>,
    /// Stage 18's v_bp'.
    vbp_out: Signal<Local, Signed<WORD_BITS>>,
    /// Stage 18's v_dfa'.
    vdfa_out: Signal<Local, Signed<WORD_BITS>>,
}

impl Default for UpdLane {
    fn default() -> Self {
        const M: usize = COEF_MUL_STAGES;
        with_defaults!(UpdLane {
            g_d: Delay::new(M),
            add_v: SatAdd::new(false),
            c_d: Delay::new(M + 1),
            v_d1: Delay::new(M),
            add_u: SatAdd::new(false),
            v_d2: Delay::new(M + 2),
            theta_d: Delay::new(2 * (M + 1) + M),
            sub_t: SatAdd::new(true),
            keep_d: Delay::new(LANE_LATENCY),
            zero: Constant::new(0i64.to_signed_bits()),
        } defaults: clock, en, dfa, eta, alpha, gamma, omg, x, y, xr, theta0, vbp0, vdfa0, g0,
            mul_a, mul_c, mul_b, mul_d, vbp_out, vdfa_out)
    }
}

impl Logic for UpdLane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, xr);
        clock!(
            self, clock, mul_a, mul_c, g_d, add_v, mul_b, c_d, v_d1, add_u, v_d2, mul_d, theta_d,
            sub_t, keep_d
        );
        if self.en.val() {
            self.xr.d.next = self.x.val();
        }
        self.theta0.next = signed_cast(self.xr.q.val().get_bits::<WORD_BITS>(0));
        self.vbp0.next = signed_cast(self.xr.q.val().get_bits::<WORD_BITS>(32));
        self.vdfa0.next = signed_cast(self.xr.q.val().get_bits::<WORD_BITS>(64));
        self.g0.next = signed_cast(self.xr.q.val().get_bits::<WORD_BITS>(96));
        self.mul_a.en.next = self.en.val();
        self.mul_c.en.next = self.en.val();
        self.g_d.en.next = self.en.val();
        self.add_v.en.next = self.en.val();
        self.mul_b.en.next = self.en.val();
        self.c_d.en.next = self.en.val();
        self.v_d1.en.next = self.en.val();
        self.add_u.en.next = self.en.val();
        self.v_d2.en.next = self.en.val();
        self.mul_d.en.next = self.en.val();
        self.theta_d.en.next = self.en.val();
        self.sub_t.en.next = self.en.val();
        self.keep_d.en.next = self.en.val();
        // Stages 1–6: the step's velocity.
        self.mul_a.m.next = self.vbp0.val();
        self.keep_d.d.next = self.vdfa0.val();
        if self.dfa.val() {
            self.mul_a.m.next = self.vdfa0.val();
            self.keep_d.d.next = self.vbp0.val();
        }
        self.mul_a.c.next = self.alpha.val();
        self.mul_c.m.next = self.vbp0.val();
        self.mul_c.c.next = self.omg.val();
        self.g_d.d.next = self.g0.val();
        self.add_v.a.next = self.mul_a.r.val();
        self.add_v.b.next = self.g_d.q.val();
        // Stages 7–12: u.
        self.mul_b.m.next = self.add_v.y.val();
        self.mul_b.c.next = self.gamma.val();
        self.c_d.d.next = self.mul_c.r.val();
        self.v_d1.d.next = self.add_v.y.val();
        self.add_u.a.next = self.v_d1.q.val();
        self.add_u.b.next = self.zero.val();
        if self.dfa.val() {
            self.add_u.a.next = self.mul_b.r.val();
            self.add_u.b.next = self.c_d.q.val();
        }
        // Stages 13–18: θ.
        self.v_d2.d.next = self.v_d1.q.val();
        self.mul_d.m.next = self.add_u.y.val();
        self.mul_d.c.next = self.eta.val();
        self.theta_d.d.next = self.theta0.val();
        self.sub_t.a.next = self.theta_d.q.val();
        self.sub_t.b.next = self.mul_d.r.val();
        // Stage 18's words.
        self.vbp_out.next = self.v_d2.q.val();
        self.vdfa_out.next = self.keep_d.q.val();
        if self.dfa.val() {
            self.vbp_out.next = self.keep_d.q.val();
            self.vdfa_out.next = self.v_d2.q.val();
        }
        self.y.next = bit_cast::<LANE_OUT_BITS, WORD_BITS>(unsigned_cast(self.sub_t.y.val()))
            | (bit_cast::<LANE_OUT_BITS, WORD_BITS>(unsigned_cast(self.vbp_out.val())) << 32)
            | (bit_cast::<LANE_OUT_BITS, WORD_BITS>(unsigned_cast(self.vdfa_out.val())) << 64);
    }
}
