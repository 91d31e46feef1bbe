//! One lane's feedback-weight generator ([`contract::fbgen`]): it regenerates the
//! signs of rows r0, r0 + P, r0 + 2P, … of a binary backward weight from a 32-bit seed,
//! so the weights are never stored.
//!
//! - `restart` (a pass starts): back to row r0; the row's start state
//!   seed ⊕ (base + (r0 + 1)·0x9E3779B9) (0 replaced by 1) is registered. `base` is
//!   b·0x9E3779B9 mod 2^32 for a matrix whose rows start at row b of the generator's
//!   streams (a 256-row tile of a larger matrix), written by the host; 0 otherwise.
//! - `next_row`: on to row r + P; its start state is registered (an XOR with the
//!   next row's (r + P + 1)·0x9E3779B9, which a 32-bit add of the constant
//!   P·0x9E3779B9 keeps one row ahead in a register: no multiplier, and the add is not
//!   on the path to the start state).
//! - `step`: one xorshift32 step (three XOR layers) from the row's start state when
//!   `from_row` (the walk restarts the row) or from the last state; `x` holds the new
//!   state from the next cycle on, like a memory's read data. Its bit 31 is the sign.

use contract::fbgen::ROW_STRIDE;
use rust_hdl::prelude::*;

/// Width of the generator's state.
pub const STATE_BITS: usize = 32;

/// The generator.
#[derive(LogicBlock)]
pub struct FbGen {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The matrix's seed.
    pub seed: Signal<In, Bits<STATE_BITS>>,
    /// b·0x9E3779B9 for a matrix whose row 0 is the generator's row b.
    pub base: Signal<In, Bits<STATE_BITS>>,
    /// Back to row r0.
    pub restart: Signal<In, Bit>,
    /// On to the next row of this lane (r + P).
    pub next_row: Signal<In, Bit>,
    /// Take one entry.
    pub step: Signal<In, Bit>,
    /// The entry is its row's first: step from the row's start state.
    pub from_row: Signal<In, Bit>,
    /// The state after the last step.
    pub x: Signal<Out, Bits<STATE_BITS>>,
    /// (r + P + 1)·0x9E3779B9: the next row's.
    nxt: DFF<Bits<STATE_BITS>>,
    /// base + (r0 + 1)·0x9E3779B9, registered (a run-time base: the add stays off the
    /// restart path; the base is written while the unit is empty).
    b0: DFF<Bits<STATE_BITS>>,
    /// base + (r0 + P + 1)·0x9E3779B9, registered.
    b1: DFF<Bits<STATE_BITS>>,
    /// Registered: row r0's start state from b0 (0 replaced by 1), so a restart with
    /// a run-time base only selects it (no add or compare behind the start pulse).
    rs: DFF<Bits<STATE_BITS>>,
    /// seed ⊕ b0.
    pre0: Signal<Local, Bits<STATE_BITS>>,
    /// The base is a run-time register (use b0, b1); else a constant 0 that folds.
    reg_base: Constant<Bit>,
    /// base + (r0 + 1)·0x9E3779B9 as the restart uses it.
    a0: Signal<Local, Bits<STATE_BITS>>,
    /// base + (r0 + P + 1)·0x9E3779B9 as the restart uses it.
    a1: Signal<Local, Bits<STATE_BITS>>,
    /// The current row's start state.
    start: DFF<Bits<STATE_BITS>>,
    /// The state.
    state: DFF<Bits<STATE_BITS>>,
    /// (r0 + 1)·0x9E3779B9.
    k0: Constant<Bits<STATE_BITS>>,
    /// P·0x9E3779B9.
    kp: Constant<Bits<STATE_BITS>>,
    /// (r0 + P + 1)·0x9E3779B9.
    k1: Constant<Bits<STATE_BITS>>,
    /// 0 and 1 (a zero start state becomes 1).
    zero: Constant<Bits<STATE_BITS>>,
    /// 1.
    one: Constant<Bits<STATE_BITS>>,
    /// The shift amounts 13, 17, 5.
    sh13: Constant<Bits<5>>,
    /// 17.
    sh17: Constant<Bits<5>>,
    /// 5.
    sh5: Constant<Bits<5>>,
    /// seed ⊕ acc of the row being entered.
    pre: Signal<Local, Bits<STATE_BITS>>,
    /// The state a step starts from.
    src: Signal<Local, Bits<STATE_BITS>>,
    /// After x ^= x << 13.
    t1: Signal<Local, Bits<STATE_BITS>>,
    /// After x ^= x >> 17.
    t2: Signal<Local, Bits<STATE_BITS>>,
}

impl FbGen {
    /// The generator of lane `lane` of `lanes`; `reg_base`: `base` is a run-time
    /// register (else it must be 0).
    pub fn new(lane: usize, lanes: usize, reg_base: bool) -> FbGen {
        let k = |r: usize| ((r as u32).wrapping_mul(ROW_STRIDE) as u64).to_bits();
        with_defaults!(FbGen {
            k0: Constant::new(k(lane + 1)),
            kp: Constant::new(k(lanes)),
            k1: Constant::new(k(lane + 1 + lanes)),
            zero: Constant::new(0u64.to_bits()),
            one: Constant::new(1u64.to_bits()),
            sh13: Constant::new(13u64.to_bits()),
            sh17: Constant::new(17u64.to_bits()),
            sh5: Constant::new(5u64.to_bits()),
            reg_base: Constant::new(reg_base),
        } defaults: clock, seed, base, restart, next_row, step, from_row, x, nxt, start, state,
            pre, src, t1, t2, b0, b1, a0, a1, rs, pre0)
    }
}

impl Logic for FbGen {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, nxt, start, state, b0, b1, rs);
        self.b0.d.next = self.base.val() + self.k0.val();
        self.b1.d.next = self.base.val() + self.k1.val();
        self.a0.next = self.k0.val();
        self.a1.next = self.k1.val();
        if self.reg_base.val() {
            self.a0.next = self.b0.q.val();
            self.a1.next = self.b1.q.val();
        }
        self.pre.next = self.seed.val() ^ self.nxt.q.val();
        if self.next_row.val() {
            self.nxt.d.next = self.nxt.q.val() + self.kp.val();
        }
        if self.restart.val() {
            self.pre.next = self.seed.val() ^ self.a0.val();
            self.nxt.d.next = self.a1.val();
        }
        self.pre0.next = self.seed.val() ^ self.b0.q.val();
        self.rs.d.next = self.pre0.val();
        if self.pre0.val() == self.zero.val() {
            self.rs.d.next = self.one.val();
        }
        if self.restart.val() | self.next_row.val() {
            self.start.d.next = self.pre.val();
            if self.pre.val() == self.zero.val() {
                self.start.d.next = self.one.val();
            }
        }
        if self.restart.val() & self.reg_base.val() {
            self.start.d.next = self.rs.q.val();
        }
        self.src.next = self.state.q.val();
        if self.from_row.val() {
            self.src.next = self.start.q.val();
        }
        self.t1.next = self.src.val() ^ (self.src.val() << self.sh13.val());
        self.t2.next = self.t1.val() ^ (self.t1.val() >> self.sh17.val());
        if self.step.val() {
            self.state.d.next = self.t2.val() ^ (self.t2.val() << self.sh5.val());
        }
        self.x.next = self.state.q.val();
    }
}
