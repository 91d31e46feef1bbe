//! The HDFA update unit: Algorithm 1's BP and DFA steps on P weights per cycle.
//!
//! Each input beat carries P weights' slots (lane l in bits 128·l..: θ, v_bp, v_dfa,
//! g, Q8.24 each); each output beat the same P weights' θ', v_bp', v_dfa' (lane l in
//! bits 96·l..). Beats flow through the P lanes' 18-stage pipelines
//! ([`super::lane::UpdLane`]) and the shared output stage, all moving together when
//! the output can take a word, so the unit takes one beat per cycle without stalls:
//! its bound is one weight per lane per cycle. `in_last` marks a pass's last beat and
//! comes out as `out_last`.
//!
//! The step kind and η, α, γ are registers ([`super::regs::REGS`]); 1 − γ is formed
//! once from γ in a register. `phase` is 2 while words are in flight, else 0.

use contract::params::BSBU_MAX_LANES;
use contract::update::COEF_HW_BITS;
use rust_hdl::prelude::*;

use super::lane::{UpdLane, LANE_IN_BITS, LANE_LATENCY, LANE_OUT_BITS};
use super::regs::{CFG_ADDR_BITS, CFG_DATA_BITS, REGS};
use crate::out_stage::OutStage;

/// Datapath stages the output stage tracks: the lanes' pipelines fit.
const STAGE_MAX_LATENCY: usize = 32;
const _: () = assert!(LANE_LATENCY <= STAGE_MAX_LATENCY);
/// Width of the in-flight beat counter: at most the pipeline's depth (input register,
/// lanes, output register) is in flight.
const FLIGHT_BITS: usize = 6;
const _: () = assert!(LANE_LATENCY + 2 < 1 << FLIGHT_BITS);

/// The unit: IW = 128·P input bits, OW = 96·P output bits.
#[derive(LogicBlock)]
pub struct Upd<const IW: usize, const OW: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Input beat: P slots of θ, v_bp, v_dfa, g.
    pub in_data: Signal<In, Bits<IW>>,
    /// Input valid.
    pub in_valid: Signal<In, Bit>,
    /// Input ready.
    pub in_ready: Signal<Out, Bit>,
    /// Marks a pass's last input beat.
    pub in_last: Signal<In, Bit>,
    /// Output beat: P slots of θ', v_bp', v_dfa'.
    pub out_data: Signal<Out, Bits<OW>>,
    /// Output valid.
    pub out_valid: Signal<Out, Bit>,
    /// Output ready (backpressure).
    pub out_ready: Signal<In, Bit>,
    /// Marks a pass's last output beat.
    pub out_last: Signal<Out, Bit>,
    /// 2 while words are in flight, 0 when empty.
    pub phase: Signal<Out, Bits<2>>,
    /// Configuration write enable.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration address: a register's index in regs::REGS.
    pub cfg_addr: Signal<In, Bits<CFG_ADDR_BITS>>,
    /// Configuration data.
    pub cfg_data: Signal<In, Bits<CFG_DATA_BITS>>,
    /// The P lanes; lane l owns slot l of every beat.
    lanes: Vec<UpdLane>,
    /// The output stage (shared with the bsbu and the dce).
    drain: OutStage<Bits<OW>, STAGE_MAX_LATENCY>,
    /// The registers, in regs::REGS order (all 17 bits; DFA uses bit 0).
    regs: Vec<DFF<Bits<COEF_HW_BITS>>>,
    /// One-hot register select of a configuration write.
    reg_sel: Signal<Local, Bits<8>>,
    /// 1 (the one-hot select's seed).
    one8: Constant<Bits<8>>,
    /// 1.0 as a raw coefficient.
    one: Constant<Bits<COEF_HW_BITS>>,
    /// 1 − γ, one cycle after γ.
    omg: DFF<Bits<COEF_HW_BITS>>,
    /// ETA by name.
    r_eta: Signal<Local, Bits<COEF_HW_BITS>>,
    /// ALPHA by name.
    r_alpha: Signal<Local, Bits<COEF_HW_BITS>>,
    /// GAMMA by name.
    r_gamma: Signal<Local, Bits<COEF_HW_BITS>>,
    /// DFA by name.
    r_dfa: Signal<Local, Bit>,
    /// The lanes' output slots, packed.
    word: Signal<Local, Bits<OW>>,
    /// One lane's output slot.
    ly: Signal<Local, Bits<LANE_OUT_BITS>>,
    /// One lane's output slot, widened (before its shift into `word`).
    slot: Signal<Local, Bits<OW>>,
    /// Bit position of lane l's output slot, 96·l.
    slot_at: Vec<Constant<Bits<16>>>,
    /// Zero output beat.
    zero_w: Constant<Bits<OW>>,
    /// No lane select (the stage's fetch select is unused here).
    no_sel: Constant<Bits<BSBU_MAX_LANES>>,
    /// Beats in flight (taken, not yet left).
    flight: DFF<Bits<FLIGHT_BITS>>,
    /// An input beat is taken this cycle.
    in_fire: Signal<Local, Bit>,
    /// An output beat leaves this cycle.
    out_fire: Signal<Local, Bit>,
    /// Lanes (generation time).
    _lanes: usize,
    /// Registers (generation time).
    _nregs: usize,
}

impl<const IW: usize, const OW: usize> Upd<IW, OW> {
    /// A unit of `lanes` lanes (IW = 128·lanes, OW = 96·lanes).
    pub fn new(lanes: usize) -> Self {
        assert!(IW == lanes * LANE_IN_BITS && OW == lanes * LANE_OUT_BITS);
        with_defaults!(Upd {
            lanes: (0..lanes).map(|_| UpdLane::default()).collect(),
            drain: OutStage::with_latency(LANE_LATENCY),
            regs: (0..REGS.len()).map(|_| Default::default()).collect(),
            one8: Constant::new(1u64.to_bits()),
            one: Constant::new((1u64 << (COEF_HW_BITS - 1)).to_bits()),
            zero_w: Constant::new(Bits::<OW>::default()),
            slot_at: (0..lanes).map(|l| Constant::new(((l * LANE_OUT_BITS) as u64).to_bits())).collect(),
            no_sel: Constant::new(0u64.to_bits()),
            _lanes: lanes,
            _nregs: REGS.len(),
        } defaults: clock, in_data, in_valid, in_ready, in_last, out_data, out_valid, out_ready,
            out_last, phase, cfg_we, cfg_addr, cfg_data, reg_sel, omg, r_eta, r_alpha, r_gamma,
            r_dfa, word, ly, slot, flight, in_fire, out_fire)
    }
}

impl<const IW: usize, const OW: usize> Logic for Upd<IW, OW> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, omg, flight);
        clock!(self, clock, drain);
        // Configuration writes: one register file, decoded one-hot by index.
        self.reg_sel.next = self.one8.val() << self.cfg_addr.val();
        for i in 0..self._nregs {
            self.regs[i].clock.next = self.clock.val();
            self.regs[i].d.next = self.regs[i].q.val();
            if self.cfg_we.val() & self.reg_sel.val().get_bit(i) {
                self.regs[i].d.next = self.cfg_data.val().get_bits::<COEF_HW_BITS>(0);
            }
        }
        // The registers by name (index = position in regs::REGS; a test checks this).
        self.r_eta.next = self.regs[0].q.val();
        self.r_alpha.next = self.regs[1].q.val();
        self.r_gamma.next = self.regs[2].q.val();
        self.r_dfa.next = self.regs[3].q.val().get_bit(0);
        self.omg.d.next = self.one.val() - self.r_gamma.val();
        // The stream: the lanes move with the output stage.
        self.drain.enable.next = true;
        self.drain.out_ready.next = self.out_ready.val();
        self.drain.fetch.next = self.in_valid.val();
        self.drain.fetch_sel.next = self.no_sel.val();
        self.drain.fetch_last.next = self.in_last.val();
        self.in_ready.next = self.drain.advance.val();
        self.word.next = self.zero_w.val();
        for l in 0..self._lanes {
            self.lanes[l].clock.next = self.clock.val();
            self.lanes[l].en.next = self.drain.advance.val();
            self.lanes[l].dfa.next = self.r_dfa.val();
            self.lanes[l].eta.next = self.r_eta.val();
            self.lanes[l].alpha.next = self.r_alpha.val();
            self.lanes[l].gamma.next = self.r_gamma.val();
            self.lanes[l].omg.next = self.omg.q.val();
            self.lanes[l].x.next = self.in_data.val().get_bits::<LANE_IN_BITS>(l * 128);
            self.ly.next = self.lanes[l].y.val();
            self.slot.next = bit_cast::<OW, LANE_OUT_BITS>(self.ly.val());
            self.word.next = self.word.val() | (self.slot.val() << self.slot_at[l].val());
        }
        self.drain.word.next = self.word.val();
        self.out_data.next = self.drain.out_data.val();
        self.out_valid.next = self.drain.out_valid.val();
        self.out_last.next = self.drain.out_last.val();
        // Beats in flight, for `phase`.
        self.in_fire.next = self.in_valid.val() & self.drain.advance.val();
        self.out_fire.next = self.drain.out_valid.val() & self.out_ready.val();
        if self.in_fire.val() & !self.out_fire.val() {
            self.flight.d.next = self.flight.q.val() + 1;
        }
        if !self.in_fire.val() & self.out_fire.val() {
            self.flight.d.next = self.flight.q.val() - 1;
        }
        self.phase.next = 0.into();
        if self.flight.q.val().any() {
            self.phase.next = 2.into();
        }
    }
}
