//! A simple dual-port memory (one synchronous read port, one write port) whose
//! depth is chosen at generation time, unlike rust-hdl's `RAM<D, N>`, whose depth is
//! a const generic 2^N. The engine needs many memories whose depths follow the
//! layer sizes, and a const generic per memory would multiply the monomorphized
//! designs. The body is emitted as custom Verilog with `(* ram_style = "block" *)`,
//! so yosys maps it to block RAM on iCE40 even when it is small.

use contract::dce::ADDR_BITS;
use rust_hdl::prelude::*;
use std::collections::BTreeMap;

/// A `depth`-word memory of `D`, addressed by [`ADDR_BITS`]-bit ports.
#[derive(LogicBlock)]
pub struct DceMem<D: Synth> {
    /// Clock of both ports.
    pub clock: Signal<In, Clock>,
    /// Read address (only its low ⌈log2 depth⌉ bits are used).
    pub raddr: Signal<In, Bits<ADDR_BITS>>,
    /// Read enable: `rdata` is updated only when high.
    pub ren: Signal<In, Bit>,
    /// Read data, one cycle after the address.
    pub rdata: Signal<Out, D>,
    /// Write address.
    pub waddr: Signal<In, Bits<ADDR_BITS>>,
    /// Write enable.
    pub we: Signal<In, Bit>,
    /// Write data.
    pub wdata: Signal<In, D>,
    /// Words.
    _depth: usize,
    /// Contents for rust-hdl's own simulator.
    _sim: BTreeMap<u64, D>,
}

impl<D: Synth> DceMem<D> {
    /// An empty memory of `depth` words (at least 2).
    pub fn new(depth: usize) -> Self {
        DceMem {
            clock: Default::default(),
            raddr: Default::default(),
            ren: Default::default(),
            rdata: Default::default(),
            waddr: Default::default(),
            we: Default::default(),
            wdata: Default::default(),
            _depth: depth.max(2),
            _sim: BTreeMap::new(),
        }
    }

    /// Address bits actually decoded.
    pub fn abits(&self) -> usize {
        (usize::BITS - (self._depth - 1).leading_zeros()) as usize
    }
}

impl<D: Synth> Logic for DceMem<D> {
    fn update(&mut self) {
        let mask = (1u64 << self.abits()) - 1;
        if self.clock.pos_edge() {
            if self.ren.val() {
                let a = self.raddr.val().index() as u64 & mask;
                self.rdata.next = self._sim.get(&a).copied().unwrap_or_default();
            }
            if self.we.val() {
                let a = self.waddr.val().index() as u64 & mask;
                self._sim.insert(a, self.wdata.val());
            }
        }
    }

    fn connect(&mut self) {
        self.rdata.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "\
(* ram_style = \"block\" *) reg [{top}:0] mem[0:{last}];

always @(posedge clock) begin
   if (ren) begin
      rdata <= mem[raddr[{ab}:0]];
   end
   if (we) begin
      mem[waddr[{ab}:0]] <= wdata;
   end
end
",
            top = D::BITS - 1,
            last = self._depth - 1,
            ab = self.abits() - 1,
        ))
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "dce_mem".into(),
            clock: "clock".into(),
            inputs: vec![
                "raddr".into(),
                "ren".into(),
                "waddr".into(),
                "we".into(),
                "wdata".into(),
            ],
            outputs: vec!["rdata".into()],
        }]
    }
}
