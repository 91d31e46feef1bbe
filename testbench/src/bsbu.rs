//! The binary sparse backward-weight unit's scenarios: [`BsbuScenario`] (lanes,
//! sizes, sparsity, vectors, seed; corner rows and corner vectors planted) and
//! [`BsbuUnit`], its [`Unit`] (S drawn and the design generated once).

use std::path::Path;

use golden::bsbu::{apply, FPrime, Nonzero, SparseSign};
use golden::capture::DenseCapture;
use golden::format::{DerivFx, ErrorFx, DERIV, ERROR};
use golden::params::{check_sparsity, BsbuParams};
use golden::rng::Rng;
use rtl::Emitted;
use sim::stream::{Pass, RunStats, Stall, StreamVectors};

use crate::mutation::{Mutant, VectorSet, BSBU_MUTANTS};
use crate::unit::{run_case, CaseReport, TrafficCheck, Unit};
use crate::{SimKind, TbError};
use golden::rng::SeedableRng;

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

/// The corner-case vectors that precede the random ones, by name.
pub const BSBU_CORNERS: [&str; 8] = [
    "all +max, f' all 1",
    "all min, f' all 1",
    "alternating max/min",
    "all min, f' alternating extremes",
    "random full scale, f' all 0",
    "all-zero errors",
    "random full scale, f' all 1",
    "small errors, random full-range f'",
];

/// Number of corner-case vectors that precede the random ones.
pub const CORNER_VECTORS: usize = BSBU_CORNERS.len();

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
        let params = BsbuParams::new(lanes, rows, cols, golden::format::fan_in_shift(cols))?;
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

    /// The input vectors: corner cases first (named by [`BSBU_CORNERS`]), then
    /// random ones.
    pub fn inputs(&self) -> Vec<(Vec<ErrorFx>, FPrime)> {
        let p = &self.params;
        let mut rng = Rng::seed_from_u64(self.seed ^ 0x5EED_0F_E1);
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

    /// Stimulus and golden expectations: one pass per vector, tagged with the
    /// corner's name or `random N`.
    pub fn stream(&self, s: &SparseSign) -> Result<StreamVectors, TbError> {
        let p = &self.params;
        let vectors = self
            .inputs()
            .into_iter()
            .enumerate()
            .map(|(i, (e_l, fprime))| {
                Ok(Captured {
                    tag: BSBU_CORNERS.get(i).map_or_else(
                        || format!("random {}", i - CORNER_VECTORS),
                        |c| c.to_string(),
                    ),
                    expected: apply(s, &e_l, &fprime, p.shift)?,
                    e_l,
                    fprime,
                })
            })
            .collect::<Result<Vec<_>, golden::GoldenError>>()?;
        Ok(self.stream_of(s, &vectors))
    }

    /// The stream of given vectors with their expected words.
    /// The passes of `vectors` on S (each compared with its expected words).
    pub fn stream_of(&self, s: &SparseSign, vectors: &[Captured]) -> StreamVectors {
        let p = &self.params;
        let passes = vectors
            .iter()
            .map(|v| {
                let mut input: Vec<u64> = v.e_l.iter().map(|x| x.to_bits() as u16 as u64).collect();
                input.extend(v.fprime.words().iter().map(|x| x.to_bits() as u16 as u64));
                Pass {
                    tag: v.tag.clone(),
                    input,
                    expected: v.expected.iter().map(|x| x.to_bits() as i64).collect(),
                    compare: true,
                    lane_stride: 1,
                    ..Pass::default()
                }
            })
            .collect();
        let longest = s
            .lane_programs(p.lanes)
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0) as u64;
        StreamVectors {
            unit: "bsbu",
            config: self.config(),
            passes,
            in_bits: ERROR.bits,
            in_fields: 1,
            out_fields: 1,
            field_names: &[],
            lanes: p.lanes,
            out_format: ERROR,
            idle_limit: 4 * longest + 256,
            ports: &[],
        }
    }

    /// The standard vector sets for mutation testing: `corners` and `random`.
    pub fn vector_sets(&self, s: &SparseSign) -> Result<Vec<VectorSet>, TbError> {
        let v = self.stream(s)?;
        let (corners, random) = v.passes.split_at(CORNER_VECTORS.min(v.passes.len()));
        Ok([("corners", corners), ("random", random)]
            .into_iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(name, passes)| VectorSet {
                name: name.into(),
                vectors: StreamVectors {
                    passes: passes.to_vec(),
                    ..v.clone()
                },
            })
            .collect())
    }

    /// Total vectors (corners + random).
    pub fn total_vectors(&self) -> usize {
        CORNER_VECTORS + self.vectors
    }

    /// Emit, build and run on `sim` with the scenario's stall pattern; `work` holds
    /// the runs by configuration and their waveforms.
    pub fn run(&self, sim: SimKind, cache: &Path, work: &Path) -> Result<CaseReport, TbError> {
        run_case(
            &BsbuUnit::new(self.clone())?,
            0,
            sim,
            self.stall,
            cache,
            work,
        )
    }
}

/// One vector with its expected output words.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Name in reports (a corner's, `random N`, or the training step and sample).
    pub tag: String,
    /// e_L.
    pub e_l: Vec<ErrorFx>,
    /// f'(p) of the output rows.
    pub fprime: FPrime,
    /// The expected e_i.
    pub expected: Vec<ErrorFx>,
}

/// Capture a training config's dense paths (tiles) at `steps` (default: the first,
/// middle and last step of its run) for the first `samples` samples, keeping only
/// the first `train_limit` training images (IDX data) when given.
///
/// A recurrent config (`network = "rnn"`) gives its `product`'s vectors instead
/// ([`golden::rnn::train::RnnTrainer::capture_products`]: S^fc at every time step, or
/// S^rnn over each window in tiles): `train_limit` then cuts the training text to
/// that many tokens, the steps are windows of its first epoch, and `samples` streams
/// are captured. A CNN config ignores `product`.
pub fn capture(
    file: &Path,
    train_limit: Option<usize>,
    steps: Option<&[usize]>,
    samples: usize,
    product: RnnProduct,
) -> Result<Vec<DenseCapture>, TbError> {
    if let Ok(text) = std::fs::read_to_string(file) {
        if golden::rnn::config::is_rnn_config(&text) {
            return capture_rnn(file, train_limit, steps, samples, product);
        }
    }
    let mut exp = crate::dce::experiment(file, train_limit)?;
    let steps = crate::dce::run_steps(&exp, steps)?;
    Ok(exp.capture_dense(&steps, samples)?)
}

/// [`capture`] for a recurrent config.
fn capture_rnn(
    file: &Path,
    train_limit: Option<usize>,
    steps: Option<&[usize]>,
    samples: usize,
    product: RnnProduct,
) -> Result<Vec<DenseCapture>, TbError> {
    use golden::experiment::ExpError;
    use golden::rnn::config::RnnConfig;
    use golden::rnn::train::{batchify, windows};
    let mut cfg = RnnConfig::load(file).map_err(ExpError::from)?;
    if let Some(n) = train_limit {
        cfg.raw.data.train_limit = n;
    }
    let corpus = cfg.load_corpus().map_err(ExpError::from)?;
    let mut tr = cfg.trainer(corpus.vocab.len())?;
    let streams = batchify(&corpus.train, cfg.hyper.batch);
    let n = windows(streams[0].len(), cfg.hyper.bptt).len();
    let last = n.saturating_sub(1);
    let steps = steps.map_or_else(|| vec![0, last / 2, last], <[usize]>::to_vec);
    Ok(tr.capture_products(&streams, &steps, samples, product)?)
}

pub use golden::rnn::train::RnnProduct;

/// The backward-weight unit as a [`Unit`]: one scenario, its S and its design.
#[derive(Clone, Debug)]
pub struct BsbuUnit {
    /// The scenario.
    pub scenario: BsbuScenario,
    /// S, with the planted corner rows.
    pub s: SparseSign,
    /// The emitted design.
    pub design: Emitted,
    /// Vectors captured from training, which replace the scenario's own vectors
    /// (their expected words are the trainer's errors), and the tile's name.
    pub captured: Option<(String, Vec<Captured>)>,
}

impl BsbuUnit {
    /// Draw S and generate the design.
    pub fn new(scenario: BsbuScenario) -> Result<Self, TbError> {
        let s = scenario.matrix()?;
        let design = rtl::bsbu::generate(&scenario.params, &s)?;
        Ok(BsbuUnit {
            scenario,
            s,
            design,
            captured: None,
        })
    }

    /// The unit for a given S (a trainer's matrix) and shift on `lanes` lanes, with
    /// no vectors of its own.
    pub fn of_matrix(lanes: usize, s: &SparseSign, shift: u32) -> Result<Self, TbError> {
        let params = BsbuParams::new(lanes, s.n_rows(), s.n_cols(), shift)?;
        s.check_fits(lanes)?;
        let zeros = s.n_rows() * s.n_cols() - s.nnz();
        let scenario = BsbuScenario {
            params,
            sparsity: zeros as f64 / (s.n_rows() * s.n_cols()) as f64,
            vectors: 0,
            seed: 0,
            stall: Stall::SOME,
            corner_rows: false,
        };
        Ok(BsbuUnit {
            design: rtl::bsbu::generate(&params, s)?,
            s: s.clone(),
            scenario,
            captured: None,
        })
    }

    /// One unit per tile of the trainer's dense paths in `caps` (one matrix each),
    /// with `lanes` lanes, running every captured vector of that tile; the expected
    /// words are the trainer's own errors.
    pub fn from_captures(lanes: usize, caps: &[DenseCapture]) -> Result<Vec<BsbuUnit>, TbError> {
        let mut units: Vec<BsbuUnit> = Vec::new();
        for c in caps {
            let found = units
                .iter()
                .position(|u| u.s == c.s && u.scenario.params.shift == c.shift);
            let i = match found {
                Some(i) => i,
                None => {
                    let mut u = BsbuUnit::of_matrix(lanes, &c.s, c.shift)?;
                    u.captured = Some((
                        format!(
                            "p{lanes}_layer{}_rows{}_{}",
                            c.target, c.rows.start, c.rows.end
                        ),
                        Vec::new(),
                    ));
                    units.push(u);
                    units.len() - 1
                }
            };
            let list = &mut units[i].captured.as_mut().expect("a captured unit").1;
            list.push(Captured {
                tag: format!(
                    "step {} sample {} layer {} rows {}..{}",
                    c.step, c.sample, c.target, c.rows.start, c.rows.end
                ),
                e_l: c.e_l.clone(),
                fprime: c.fprime.clone(),
                expected: c.expected.clone(),
            });
        }
        Ok(units)
    }
}

impl Unit for BsbuUnit {
    fn name(&self) -> &'static str {
        "bsbu"
    }
    fn design(&self) -> &Emitted {
        &self.design
    }
    fn stem(&self) -> String {
        match &self.captured {
            Some((name, _)) => format!("bsbu_{name}"),
            None => format!("bsbu_p{}", self.scenario.params.lanes),
        }
    }
    fn config(&self) -> String {
        self.scenario.config()
    }
    fn cases(&self) -> usize {
        1
    }
    fn case_name(&self, _: usize) -> String {
        if let Some((name, _)) = &self.captured {
            return name.clone();
        }
        let sc = &self.scenario;
        format!("p{}_s{}_seed{}", sc.params.lanes, sc.sparsity, sc.seed)
    }
    fn stream(&self, _: usize) -> Result<StreamVectors, TbError> {
        match &self.captured {
            Some((_, v)) => Ok(self.scenario.stream_of(&self.s, v)),
            None => self.scenario.stream(&self.s),
        }
    }
    fn ideal_per_vector(&self, _: usize) -> f64 {
        *self
            .s
            .lane_nnz(self.scenario.params.lanes)
            .iter()
            .max()
            .unwrap_or(&0) as f64
    }
    fn traffic(&self, _: usize, _: &RunStats) -> Option<TrafficCheck> {
        None
    }
    fn vector_sets(&self) -> Result<Vec<VectorSet>, TbError> {
        match &self.captured {
            Some(_) => Ok(vec![VectorSet {
                name: "captured".into(),
                vectors: self.stream(0)?,
            }]),
            None => self.scenario.vector_sets(&self.s),
        }
    }
    fn mutants(&self) -> &'static [Mutant] {
        BSBU_MUTANTS
    }
}
