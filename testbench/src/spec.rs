//! [`CosimSpec`]: one random co-simulation case as `hdfa cosim` runs it (a unit's
//! generation-time parameters, its run-time parameters, the seeds and the vector
//! count), built into [`Unit`]s in one place and printed as the `hdfa cosim` command
//! line that reruns it ([`CosimSpec::args`]). The CLI, the property runs and the soak
//! ([`crate::prop`]) all construct units through it, so a printed command reruns
//! exactly the case that failed.

use golden::dce::{DceLayer, DceSizes};
use golden::params::{check_sparsity, BsbuParams};
use sim::stream::Stall;

use crate::bsbu::{BsbuScenario, BsbuUnit};
use crate::dce::{DceCase, DceUnit};
use crate::upd::UpdUnit;
use crate::{TbError, Unit};

/// The units a spec can describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKind {
    /// Binary sparse backward-weight unit.
    Bsbu,
    /// Dilated-conv error-propagation engine.
    Dce,
    /// HDFA update unit.
    Upd,
}

impl UnitKind {
    /// Every unit, in report order.
    pub const ALL: [UnitKind; 3] = [UnitKind::Bsbu, UnitKind::Dce, UnitKind::Upd];

    /// The unit's name (`--unit` value).
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Bsbu => "bsbu",
            UnitKind::Dce => "dce",
            UnitKind::Upd => "upd",
        }
    }
}

/// A backward-weight unit case.
#[derive(Clone, Debug, PartialEq)]
pub struct BsbuSpec {
    /// Lanes P (generation time).
    pub lanes: usize,
    /// Rows of S (generation time).
    pub rows: usize,
    /// Columns of S (generation time).
    pub cols: usize,
    /// Sparsity of S: generation time for a stored S, the threshold register in
    /// generator mode.
    pub sparsity: f64,
    /// Scaling shift (generation time).
    pub shift: u32,
    /// Seed of S (stored: generation time; generator mode: the low 32 bits are the
    /// SEED register).
    pub seed: u64,
    /// Seed of the vectors.
    pub vector_seed: u64,
    /// Generator mode (S regenerated in the lanes; no weight memory).
    pub generator: bool,
    /// Generator mode: generator row of S's row 0 (ROW_BASE register).
    pub row0: usize,
    /// Random vectors after the corner vectors.
    pub vectors: usize,
}

/// A conv-engine case: one layer on an engine of given sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct DceSpec {
    /// Lanes P (generation time).
    pub lanes: usize,
    /// The layer, with explicit shifts (run time: programmed through the registers).
    pub layer: DceLayer,
    /// GEN mode: weights regenerated from seeds, none stored (run time).
    pub generator: bool,
    /// Seed of the weights and vectors.
    pub seed: u64,
    /// Random vectors after the corner vectors.
    pub vectors: usize,
    /// The engine's buffer sizes (generation time); None: the smallest that fits the
    /// layer.
    pub sizes: Option<DceSizes>,
}

/// An update-unit case.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdSpec {
    /// Lanes P (generation time).
    pub lanes: usize,
    /// Seed of the vectors (each carries its own η, α, γ and step kind).
    pub seed: u64,
    /// Random vectors after the corner vectors.
    pub vectors: usize,
}

/// One co-simulation case of one unit (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub enum CosimSpec {
    /// The backward-weight unit.
    Bsbu(BsbuSpec),
    /// The conv engine.
    Dce(DceSpec),
    /// The update unit.
    Upd(UpdSpec),
}

impl CosimSpec {
    /// Which unit.
    pub fn kind(&self) -> UnitKind {
        match self {
            CosimSpec::Bsbu(_) => UnitKind::Bsbu,
            CosimSpec::Dce(_) => UnitKind::Dce,
            CosimSpec::Upd(_) => UnitKind::Upd,
        }
    }

    /// Random vectors after the corners.
    pub fn vectors(&self) -> usize {
        match self {
            CosimSpec::Bsbu(s) => s.vectors,
            CosimSpec::Dce(s) => s.vectors,
            CosimSpec::Upd(s) => s.vectors,
        }
    }

    /// The same case with `n` random vectors.
    pub fn with_vectors(&self, n: usize) -> CosimSpec {
        let mut c = self.clone();
        match &mut c {
            CosimSpec::Bsbu(s) => s.vectors = n,
            CosimSpec::Dce(s) => s.vectors = n,
            CosimSpec::Upd(s) => s.vectors = n,
        }
        c
    }

    /// Corner vectors that precede the random ones.
    pub fn corners(&self) -> usize {
        match self {
            CosimSpec::Bsbu(_) => crate::bsbu::CORNER_VECTORS,
            CosimSpec::Dce(_) => crate::dce::CORNERS.len(),
            CosimSpec::Upd(s) => crate::upd::corners(s.seed).len(),
        }
    }

    /// The generation-time part, as text: two specs with equal keys share one design
    /// (one Verilator build).
    pub fn design_key(&self) -> String {
        match self {
            CosimSpec::Bsbu(s) if s.generator => {
                format!(
                    "bsbu gen P={} {}x{} shift={}",
                    s.lanes, s.rows, s.cols, s.shift
                )
            }
            CosimSpec::Bsbu(s) => format!(
                "bsbu P={} {}x{} shift={} sparsity={} seed={}",
                s.lanes, s.rows, s.cols, s.shift, s.sparsity, s.seed
            ),
            CosimSpec::Dce(s) => match self.dce_sizes() {
                Ok(z) => format!("dce P={} {}", s.lanes, z.text()),
                Err(e) => format!("dce invalid: {e}"),
            },
            CosimSpec::Upd(s) => format!("upd P={}", s.lanes),
        }
    }

    /// A conv-engine spec's sizes: given, or the smallest that fit its layer.
    fn dce_sizes(&self) -> Result<DceSizes, TbError> {
        match self {
            CosimSpec::Dce(s) => Ok(match s.sizes {
                Some(z) => z,
                None => DceSizes::fitting(s.lanes, &[s.layer.validate()?])?,
            }),
            _ => unreachable!("dce_sizes of a {} spec", self.kind().name()),
        }
    }

    /// Rough simulated cycles per vector (to size a run by its cycles).
    pub fn cycles_per_vector(&self) -> f64 {
        match self {
            CosimSpec::Bsbu(s) => {
                let cells = (s.rows * s.cols) as f64 / s.lanes as f64;
                let work = if s.generator {
                    cells
                } else {
                    cells * (1.0 - s.sparsity)
                };
                (s.rows + s.cols) as f64 + work
            }
            CosimSpec::Dce(s) => {
                let l = &s.layer;
                (l.work() / s.lanes + l.in_words() + l.mask_words()) as f64
            }
            CosimSpec::Upd(_) => 40.0,
        }
    }

    /// Build the case's unit (validating every parameter; a bad one is an error that
    /// names it and its range).
    pub fn unit(&self) -> Result<Box<dyn Unit>, TbError> {
        Ok(match self {
            CosimSpec::Bsbu(s) => {
                check_sparsity(s.sparsity)?;
                let params = BsbuParams::new(s.lanes, s.rows, s.cols, s.shift)?;
                let sc = BsbuScenario {
                    params,
                    sparsity: s.sparsity,
                    vectors: s.vectors,
                    seed: s.seed,
                    vector_seed: s.vector_seed,
                    stall: Stall::SOME,
                    corner_rows: true,
                    gen: None,
                };
                let sc = if s.generator {
                    sc.generated(s.seed as u32, s.row0)?
                } else {
                    sc
                };
                Box::new(BsbuUnit::new(sc)?)
            }
            CosimSpec::Dce(s) => {
                let l = s.layer.validate()?;
                let name = format!("k{}_d{}_g{}", l.k, l.dil, l.groups);
                let mut case = DceCase::random(name, l, s.vectors, s.seed)?;
                if s.generator {
                    case = case.generated(s.seed)?;
                }
                Box::new(match s.sizes {
                    Some(z) => DceUnit::with_sizes(z, vec![case])?,
                    None => DceUnit::new(s.lanes, vec![case])?,
                })
            }
            CosimSpec::Upd(s) => Box::new(UpdUnit::new(s.lanes, s.vectors, s.seed)?),
        })
    }

    /// The `hdfa cosim` arguments that run this case (without `hdfa cosim`).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut flag = |k: &str, v: String| {
            a.push(format!("--{k}"));
            a.push(v);
        };
        match self {
            CosimSpec::Bsbu(s) => {
                flag("unit", "bsbu".into());
                flag("lanes", s.lanes.to_string());
                flag("rows", s.rows.to_string());
                flag("cols", s.cols.to_string());
                flag("sparsity", s.sparsity.to_string());
                flag("shift", s.shift.to_string());
                flag("seed", s.seed.to_string());
                flag("vector-seed", s.vector_seed.to_string());
                flag("vectors", s.vectors.to_string());
                if s.generator {
                    flag("row0", s.row0.to_string());
                    a.push("--generator".into());
                }
            }
            CosimSpec::Dce(s) => {
                let l = &s.layer;
                flag("unit", "dce".into());
                flag("lanes", s.lanes.to_string());
                flag("cs", l.cs.to_string());
                flag("ct", l.ct.to_string());
                flag("height", l.h.to_string());
                flag("width", l.w.to_string());
                flag("up", l.up.to_string());
                flag("k", l.k.to_string());
                flag("dil", l.dil.to_string());
                flag("groups", l.groups.to_string());
                flag("shift2", l.shift2.to_string());
                flag("shift1", l.shift1.to_string());
                flag("seed", s.seed.to_string());
                flag("vectors", s.vectors.to_string());
                if let Some(z) = s.sizes {
                    flag("sizes", z.text());
                }
                if s.generator {
                    a.push("--generator".into());
                }
            }
            CosimSpec::Upd(s) => {
                flag("unit", "upd".into());
                flag("lanes", s.lanes.to_string());
                flag("seed", s.seed.to_string());
                flag("vectors", s.vectors.to_string());
            }
        }
        a
    }

    /// The ready-to-run command line: `hdfa cosim ARGS [--mutant NAME]`.
    pub fn command(&self, mutant: Option<&str>) -> String {
        let mut s = format!("hdfa cosim {}", self.args().join(" "));
        if let Some(m) = mutant {
            s.push_str(&format!(" --mutant {m}"));
        }
        s
    }
}

impl std::fmt::Display for CosimSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.args().join(" "))
    }
}
