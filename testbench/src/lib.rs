//! # testbench: co-simulation scenarios built on the golden model
//!
//! Main types:
//! - [`BsbuScenario`]: one configuration of the backward-weight unit (lanes, sizes,
//!   sparsity, vector count, seed) and [`BsbuScenario::run`], which plants the
//!   corner cases, computes the expected words with `golden::bsbu::apply`, emits the
//!   RTL and runs it on the chosen simulators.
//! - [`dce::DceCase`] and [`dce::run_case`]: the dilated-conv error-propagation engine's
//!   layers and vectors (random with corners, or captured from training), run on
//!   either simulator; [`dce::DceReport`] with utilization and memory traffic.
//! - [`SimKind`]: Verilator or Icarus.
//! - [`BsbuReport`]: cycles, utilization against the ideal and the mismatch count,
//!   printed as one summary line ending in `mismatches: N`.

pub mod dce;

use std::path::{Path, PathBuf};

use golden::bsbu::{apply, FPrime, Nonzero, SparseSign};
use golden::format::{DerivFx, ErrorFx, DERIV, ERROR};
use golden::params::{check_sparsity, BsbuParams};
use golden::rng::Rng;
use sim::stream::{run_verilator, RunStats, Stall, StreamVectors};
use thiserror::Error;

/// Errors of a scenario.
#[derive(Debug, Error)]
pub enum TbError {
    /// Bad parameters.
    #[error(transparent)]
    Golden(#[from] golden::GoldenError),
    /// Generation failed.
    #[error(transparent)]
    Rtl(#[from] rtl::RtlError),
    /// Simulation failed.
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    /// A training run (for captured vectors) failed.
    #[error(transparent)]
    Exp(#[from] golden::experiment::ExpError),
}

/// Which simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimKind {
    /// Verilator through the FFI shim.
    Verilator,
    /// Icarus Verilog with the generated testbench.
    Icarus,
}

impl SimKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            SimKind::Verilator => "verilator",
            SimKind::Icarus => "icarus",
        }
    }
}

/// One configuration of the backward-weight unit to co-simulate.
#[derive(Clone, Debug)]
pub struct BsbuScenario {
    /// Validated unit parameters.
    pub params: BsbuParams,
    /// Sparsity of S, in [0, 1).
    pub sparsity: f64,
    /// Random vectors after the corner cases (total = corners + this).
    pub vectors: usize,
    /// Seed of S and of every vector.
    pub seed: u64,
    /// Stall pattern of the streams.
    pub stall: Stall,
    /// Plant the corner rows in S (empty row, full rows); off for benchmarks, whose
    /// utilization should reflect a purely random S of the given sparsity.
    pub corner_rows: bool,
}

/// Number of corner-case vectors that precede the random ones.
pub const CORNER_VECTORS: usize = 8;

impl BsbuScenario {
    /// A scenario with `lanes`, `rows` × `cols`, the default shift for the fan-in.
    pub fn new(
        lanes: usize,
        rows: usize,
        cols: usize,
        sparsity: f64,
        vectors: usize,
        seed: u64,
    ) -> Result<Self, TbError> {
        check_sparsity(sparsity)?;
        let params = BsbuParams::new(lanes, rows, cols, BsbuParams::default_shift(cols))?;
        Ok(BsbuScenario {
            params,
            sparsity,
            vectors,
            seed,
            stall: Stall::SOME,
            corner_rows: true,
        })
    }

    /// Short configuration text for reports.
    pub fn config(&self) -> String {
        let p = &self.params;
        format!(
            "P={} rows={} cols={} shift={} sparsity={} seed={}",
            p.lanes, p.n_rows, p.n_cols, p.shift, self.sparsity, self.seed
        )
    }

    /// S, with corner rows planted when `corner_rows` is set: row 0 all zero, row 1 every column nonzero
    /// (alternating signs), row 2 every column +1 (so full-scale inputs saturate).
    pub fn matrix(&self) -> Result<SparseSign, TbError> {
        let p = &self.params;
        let mut s = SparseSign::random(p.n_rows, p.n_cols, self.sparsity, self.seed)?;
        if self.corner_rows && p.n_rows >= 3 {
            let full = |alt: bool| {
                (0..p.n_cols)
                    .map(|c| Nonzero {
                        col: c as u16,
                        neg: alt && c % 2 == 1,
                    })
                    .collect()
            };
            s = s
                .with_row(0, vec![])?
                .with_row(1, full(true))?
                .with_row(2, full(false))?;
        }
        s.check_fits(p.lanes)?;
        Ok(s)
    }

    /// The input vectors: corner cases first, then random ones.
    pub fn inputs(&self) -> Vec<(Vec<ErrorFx>, FPrime)> {
        let p = &self.params;
        let mut rng = Rng::new(self.seed ^ 0x5EED_0F_E1);
        let (rows, cols) = (p.n_rows, p.n_cols);
        let e = |raw: i64| ErrorFx::from_bits(raw as i16);
        let d = |raw: i64| DerivFx::from_bits(raw as i16);
        let mut v: Vec<(Vec<ErrorFx>, FPrime)> = vec![
            (
                vec![e(ERROR.max_raw()); cols],
                FPrime::Relu(vec![true; rows]),
            ),
            (
                vec![e(ERROR.min_raw()); cols],
                FPrime::Relu(vec![true; rows]),
            ),
            (
                (0..cols)
                    .map(|c| {
                        e(if c % 2 == 0 {
                            ERROR.max_raw()
                        } else {
                            ERROR.min_raw()
                        })
                    })
                    .collect(),
                FPrime::Relu(vec![true; rows]),
            ),
            (
                vec![e(ERROR.min_raw()); cols],
                FPrime::Deriv(
                    (0..rows)
                        .map(|r| {
                            d(if r % 2 == 0 {
                                DERIV.max_raw()
                            } else {
                                DERIV.min_raw()
                            })
                        })
                        .collect(),
                ),
            ),
            (
                (0..cols)
                    .map(|_| e(rng.range_i64(ERROR.min_raw(), ERROR.max_raw())))
                    .collect(),
                FPrime::Relu(vec![false; rows]),
            ),
            (vec![ErrorFx::ZERO; cols], FPrime::Relu(vec![true; rows])),
            (
                (0..cols)
                    .map(|_| e(rng.range_i64(ERROR.min_raw(), ERROR.max_raw())))
                    .collect(),
                FPrime::Relu(vec![true; rows]),
            ),
            (
                (0..cols).map(|_| e(rng.range_i64(-64, 64))).collect(),
                FPrime::Deriv(
                    (0..rows)
                        .map(|_| d(rng.range_i64(DERIV.min_raw(), DERIV.max_raw())))
                        .collect(),
                ),
            ),
        ];
        debug_assert_eq!(v.len(), CORNER_VECTORS);
        for _ in 0..self.vectors {
            // Mix magnitudes: full scale (saturation), typical e_L (|e| <= 1) and tiny.
            let span = match rng.below(4) {
                0 => ERROR.max_raw(),
                1 | 2 => 1 << ERROR.frac,
                _ => 64,
            };
            let el: Vec<ErrorFx> = (0..cols)
                .map(|_| e(rng.range_i64(-span - 1, span).max(ERROR.min_raw())))
                .collect();
            let fp = if rng.bit() {
                FPrime::Relu((0..rows).map(|_| rng.bit()).collect())
            } else {
                // tanh' = 1 − tanh² lies in [0, 1]; sometimes the whole derivative range.
                let full = rng.below(4) == 0;
                FPrime::Deriv(
                    (0..rows)
                        .map(|_| {
                            d(if full {
                                rng.range_i64(DERIV.min_raw(), DERIV.max_raw())
                            } else {
                                rng.range_i64(0, 1 << DERIV.frac)
                            })
                        })
                        .collect(),
                )
            };
            v.push((el, fp));
        }
        v
    }

    /// Stimulus and golden expectations.
    pub fn stream(&self, s: &SparseSign) -> Result<StreamVectors, TbError> {
        let p = &self.params;
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (el, fp) in self.inputs() {
            input.extend(el.iter().map(|x| x.to_bits() as u16 as u64));
            input.extend(fp.words().iter().map(|x| x.to_bits() as u16 as u64));
            expected.extend(
                apply(s, &el, &fp, p.shift)?
                    .iter()
                    .map(|x| x.to_bits() as i64),
            );
        }
        let longest = s
            .lane_programs(p.lanes)
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0) as u64;
        Ok(StreamVectors {
            unit: "bsbu",
            config: self.config(),
            input,
            in_bits: ERROR.bits,
            expected,
            out_per_vector: p.n_rows,
            lanes: p.lanes,
            lane_stride: 1,
            out_format: ERROR,
            idle_limit: 4 * longest + 256,
            setup: Vec::new(),
            in_last: Vec::new(),
        })
    }

    /// Total vectors (corners + random).
    pub fn total_vectors(&self) -> usize {
        CORNER_VECTORS + self.vectors
    }

    /// Emit, build and run on `sim`; `work` holds builds-by-config and waveforms.
    pub fn run(&self, sim: SimKind, cache: &Path, work: &Path) -> Result<BsbuReport, TbError> {
        let s = self.matrix()?;
        let design = rtl::bsbu::generate(&self.params, &s)?;
        let v = self.stream(&s)?;
        let dir = work.join(format!(
            "bsbu_p{}_s{}_seed{}_{}",
            self.params.lanes,
            self.sparsity,
            self.seed,
            sim.name()
        ));
        let stats = match sim {
            SimKind::Verilator => run_verilator(&design, &v, self.stall, cache, &dir)?,
            SimKind::Icarus => sim::icarus::run_icarus(&design, &v, self.stall, &dir)?,
        };
        let ideal = *s.lane_nnz(self.params.lanes).iter().max().unwrap_or(&0) as u64;
        Ok(BsbuReport {
            config: self.config(),
            vectors: self.total_vectors(),
            ideal_per_vector: ideal,
            stats,
            work: dir,
        })
    }
}

/// Outcome of one scenario on one simulator.
#[derive(Clone, Debug)]
pub struct BsbuReport {
    /// Configuration text.
    pub config: String,
    /// Vectors run.
    pub vectors: usize,
    /// Ideal cycles per matrix pass: the largest per-lane nonzero count.
    pub ideal_per_vector: u64,
    /// Simulator statistics.
    pub stats: RunStats,
    /// Work directory (testbench files, waveforms).
    pub work: PathBuf,
}

impl UnitReport for BsbuReport {
    fn unit(&self) -> &'static str {
        "bsbu"
    }
    fn config(&self) -> &str {
        &self.config
    }
    fn vectors(&self) -> usize {
        self.vectors
    }
    fn stats(&self) -> &RunStats {
        &self.stats
    }
    fn ideal_per_vector(&self) -> f64 {
        self.ideal_per_vector as f64
    }
}

/// Cycle figures and the summary line shared by the units' reports. Phases 1 and 2
/// are the compute phases of both units (bsbu: START + COMPUTE, dce: D2 + D1).
pub trait UnitReport {
    /// Unit name.
    fn unit(&self) -> &'static str;
    /// Configuration text.
    fn config(&self) -> &str;
    /// Vectors run.
    fn vectors(&self) -> usize;
    /// Simulator statistics.
    fn stats(&self) -> &RunStats;
    /// Ideal compute cycles per vector.
    fn ideal_per_vector(&self) -> f64;

    /// Compute-phase cycles per vector.
    fn compute_per_vector(&self) -> f64 {
        let s = self.stats();
        (s.phase_cycles[1] + s.phase_cycles[2]) as f64 / self.vectors() as f64
    }
    /// Utilization of the compute phases: ideal / compute cycles.
    fn utilization(&self) -> f64 {
        self.ideal_per_vector() / self.compute_per_vector()
    }
    /// All cycles per vector (load, compute, drain, with stalls).
    fn cycles_per_vector(&self) -> f64 {
        self.stats().cycles as f64 / self.vectors() as f64
    }
    /// The summary line; it ends with `mismatches: N`.
    fn summary(&self) -> String {
        let s = self.stats();
        format!(
            "{} {} vectors={} [{}]: cycles {} ({:.1}/vector, compute {:.1}/vector, ideal {:.1}), utilization {:.1}%, {:.2} Mcycles/s, mismatches: {}",
            self.unit(),
            self.config(),
            self.vectors(),
            s.sim,
            s.cycles,
            self.cycles_per_vector(),
            self.compute_per_vector(),
            self.ideal_per_vector(),
            100.0 * self.utilization(),
            s.cycles_per_second() / 1e6,
            s.mismatches
        )
    }
}
