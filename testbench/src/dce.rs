//! Co-simulation of the dilated-conv error-propagation engine (DCE).
//!
//! A [`DceCase`] is one layer (a backward path: channels, map, k, d, G, shifts and
//! binary weights) with its vectors (source errors, ReLU mask, expected e_i). Cases
//! come from random draws with planted corners ([`DceCase::random`]) or from real
//! training steps ([`DceCase::from_captures`]). [`DceUnit`] is the engine as a
//! [`Unit`]: one generated engine that fits every case. [`sequence`] turns steps
//! (program a layer, run its vectors, send a malformed stream) into the passes of one
//! engine instance, which is how reprogramming and `len_err` are checked;
//! [`vector_sets`] and [`standard_cases`] are the standard stimulus.

use std::collections::BTreeMap;
use std::path::Path;

use golden::capture::PathCapture;
use golden::dce::{self, golden_traffic, DceLayer, DceSizes, DceTraffic, DceWeights};
use golden::format::ERROR;
use golden::rng::Rng;
use rtl::Emitted;
use sim::stream::{Pass, RunStats, StreamVectors};

use crate::mutation::{Mutant, VectorSet, DCE_MUTANTS};
use crate::unit::{TrafficCheck, Unit};
use crate::TbError;
use golden::rng::{RngCore, SeedableRng};

/// One input vector and its expected output.
#[derive(Clone, Debug)]
pub struct DceVector {
    /// What the vector is (corner name, or training step and sample).
    pub tag: String,
    /// Source errors (C_s·H·W, raw Q3.13).
    pub e_src: Vec<i16>,
    /// ReLU mask of the outputs (C_t·H·W).
    pub mask: Vec<bool>,
    /// Expected e_i (C_t·H·W).
    pub expected: Vec<i16>,
}

/// A layer and its vectors.
#[derive(Clone, Debug)]
pub struct DceCase {
    /// Name for reports (`d2_g4_k3`, `digits_t0_s2`, ...).
    pub name: String,
    /// The layer.
    pub layer: DceLayer,
    /// Its weights.
    pub weights: DceWeights,
    /// Vectors.
    pub vectors: Vec<DceVector>,
}

/// Names of the planted corner vectors, in order.
pub const CORNERS: [&str; 6] = [
    "all-zero errors",
    "all +max",
    "all min",
    "alternating ±full scale",
    "all-masked ReLU",
    "random full scale",
];

fn full_scale(rng: &mut Rng, n: usize) -> Vec<i16> {
    (0..n)
        .map(|_| rng.range_i64(ERROR.min_raw(), ERROR.max_raw() + 1) as i16)
        .collect()
}

impl DceCase {
    /// Random weights, the [`CORNERS`], then `n_random` random vectors (errors of
    /// random magnitude, about 3 in 4 outputs passing the mask); expected words from
    /// [`golden::dce::apply`].
    pub fn random(
        name: impl Into<String>,
        layer: DceLayer,
        n_random: usize,
        seed: u64,
    ) -> Result<Self, TbError> {
        let mut rng = Rng::seed_from_u64(seed);
        let weights = DceWeights::random(&layer, &mut rng);
        let (ni, no) = (layer.in_words(), layer.out_words());
        let mut inputs: Vec<(String, Vec<i16>, Vec<bool>)> = vec![
            (CORNERS[0].into(), vec![0; ni], vec![true; no]),
            (
                CORNERS[1].into(),
                vec![ERROR.max_raw() as i16; ni],
                vec![true; no],
            ),
            (
                CORNERS[2].into(),
                vec![ERROR.min_raw() as i16; ni],
                vec![true; no],
            ),
            (
                CORNERS[3].into(),
                (0..ni)
                    .map(|i| {
                        if (i / layer.w + i) % 2 == 0 {
                            ERROR.max_raw() as i16
                        } else {
                            ERROR.min_raw() as i16
                        }
                    })
                    .collect(),
                vec![true; no],
            ),
            (CORNERS[4].into(), full_scale(&mut rng, ni), vec![false; no]),
            (CORNERS[5].into(), full_scale(&mut rng, ni), vec![true; no]),
        ];
        for i in 0..n_random {
            // Magnitudes from 2^4 to 2^15, so both small and saturating sums occur.
            let bits = 4 + rng.below(12) as u32;
            let lim = (1i64 << bits) - 1;
            let e = (0..ni)
                .map(|_| rng.range_i64(-lim, lim + 1) as i16)
                .collect();
            let m = (0..no).map(|_| rng.below(4) != 0).collect();
            inputs.push((format!("random {i}"), e, m));
        }
        let vectors = inputs
            .into_iter()
            .map(|(tag, e_src, mask)| {
                let expected = dce::apply(&layer, &weights, &e_src, &mask)?;
                Ok(DceVector {
                    tag,
                    e_src,
                    mask,
                    expected,
                })
            })
            .collect::<Result<Vec<_>, golden::GoldenError>>()?;
        Ok(DceCase {
            name: name.into(),
            layer,
            weights,
            vectors,
        })
    }

    /// The case with its weights regenerated from seeds drawn from `seed` (the
    /// feedback-weight generator: the engine runs in GEN mode and stores no weight),
    /// and its expected words recomputed.
    pub fn generated(mut self, seed: u64) -> Result<Self, TbError> {
        let mut rng = Rng::seed_from_u64(seed ^ 0x6E_4E);
        let seeds = golden::dce::DceSeeds {
            d2: rng.next_u32(),
            d1: rng.next_u32(),
        };
        self.weights = DceWeights::generated(&self.layer, seeds);
        for v in &mut self.vectors {
            v.expected = dce::apply(&self.layer, &self.weights, &v.e_src, &v.mask)?;
        }
        self.name = format!("{}_gen", self.name);
        Ok(self)
    }

    /// [`DceCase::random`] without the corners: `n_random` random vectors only (for
    /// throughput and utilization runs).
    pub fn random_only(
        name: impl Into<String>,
        layer: DceLayer,
        n_random: usize,
        seed: u64,
    ) -> Result<Self, TbError> {
        let mut c = DceCase::random(name, layer, n_random, seed)?;
        c.vectors.drain(..CORNERS.len());
        Ok(c)
    }

    /// One case per backward path (target ← source) of the captures, named
    /// `{prefix}_t{target}_s{source}`. The expected words are the trainer's own
    /// errors; each is also checked against [`golden::dce::apply`].
    pub fn from_captures(prefix: &str, caps: &[PathCapture]) -> Result<Vec<Self>, TbError> {
        let mut by_path: BTreeMap<(usize, usize), DceCase> = BTreeMap::new();
        for c in caps {
            let (e_src, mask, expected) = (
                c.e_src.iter().copied().collect::<Vec<i16>>(),
                c.mask.iter().copied().collect::<Vec<bool>>(),
                c.expected.iter().copied().collect::<Vec<i16>>(),
            );
            let again = dce::apply(&c.layer, &c.weights, &e_src, &mask)?;
            if again != expected {
                return Err(TbError::Golden(golden::GoldenError::BadMatrix(format!(
                    "{prefix}: the engine model disagrees with the trainer on path {} <- {} at step {}",
                    c.target, c.source, c.step
                ))));
            }
            let case = by_path
                .entry((c.target, c.source))
                .or_insert_with(|| DceCase {
                    name: format!("{prefix}_t{}_s{}", c.target, c.source),
                    layer: c.layer,
                    weights: c.weights.clone(),
                    vectors: Vec::new(),
                });
            case.vectors.push(DceVector {
                tag: format!("step {} sample {}", c.step, c.sample),
                e_src,
                mask,
                expected,
            });
        }
        Ok(by_path.into_values().collect())
    }

    /// Keep only the first `n` vectors.
    pub fn truncated(mut self, n: usize) -> Self {
        self.vectors.truncate(n);
        self
    }

    /// Configuration text for reports.
    pub fn config(&self, lanes: usize) -> String {
        let l = &self.layer;
        let up = if l.up > 1 {
            format!(" (source {}x{}, up {})", l.hs(), l.ws(), l.up)
        } else {
            String::new()
        };
        format!(
            "{}: P={lanes} Cs={} Ct={} {}x{}{up} k={} d={} G={} shifts={}/{}",
            self.name, l.cs, l.ct, l.h, l.w, l.k, l.dil, l.groups, l.shift2, l.shift1
        )
    }

    /// Stimulus (register writes, streams) and expected words for an engine of
    /// `sizes`: the case's programming, then every vector.
    pub fn stream(&self, sizes: &DceSizes) -> Result<StreamVectors, TbError> {
        sequence(sizes, &[Step::Program(self), Step::Vectors(self)])
    }

    /// The cycles an engine of `lanes` may stay silent in a pass of this layer: the
    /// first block of D1 after D2, plus a drain.
    fn idle_limit(&self, lanes: usize) -> u64 {
        let l = &self.layer;
        (l.work() / lanes + 4 * l.out_words() + 1024) as u64
    }
}

/// The extra ports the engine's harness requires (a missing one is an error).
pub const DCE_PORTS: &[&str] = &[
    "cfg_we", "cfg_addr", "cfg_data", "in_last", "len_err", "rd_err", "rd_w",
];

/// One step of a run on one engine instance.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// Write the case's layer and weights (before the next pass).
    Program(&'a DceCase),
    /// Every vector of the case, each compared word for word, `len_err` low after each.
    Vectors(&'a DceCase),
    /// A malformed pass of the case's first vector: its stream cut to `words` words
    /// (at most the configured length), with `in_last` on word `last_at` (or on
    /// none). The engine still emits a whole pass; its words are counted and
    /// `out_last` checked, not compared, and `len_err` must be high after it.
    Malformed {
        /// The case whose layer the engine holds.
        case: &'a DceCase,
        /// Input words sent.
        words: usize,
        /// The word that carries `in_last`.
        last_at: Option<usize>,
    },
}

/// The passes of `steps` on one engine of `sizes`.
pub fn sequence(sizes: &DceSizes, steps: &[Step]) -> Result<StreamVectors, TbError> {
    let mut passes: Vec<Pass> = Vec::new();
    let mut setup = Vec::new();
    let (mut names, mut idle) = (Vec::new(), 0u64);
    for step in steps {
        match *step {
            Step::Program(c) => {
                setup.extend(rtl::dce::regs::program(sizes, &c.layer, &c.weights)?);
                names.push(c.config(sizes.lanes));
                idle = idle.max(c.idle_limit(sizes.lanes));
            }
            Step::Vectors(c) => {
                for v in &c.vectors {
                    let s = dce::pack_stream(&c.layer, &v.e_src, &v.mask)?;
                    let n = s.len();
                    passes.push(Pass {
                        tag: format!("{}: {}", c.name, v.tag),
                        setup: std::mem::take(&mut setup),
                        input: s.iter().map(|&w| w as u64).collect(),
                        in_last: (0..n).map(|i| i + 1 == n).collect(),
                        expected: v.expected.iter().map(|&e| e as i64).collect(),
                        compare: true,
                        len_err: Some(false),
                        lane_stride: c.layer.hw(),
                    });
                }
            }
            Step::Malformed {
                case,
                words,
                last_at,
            } => {
                let v =
                    case.vectors
                        .first()
                        .ok_or_else(|| golden::GoldenError::LengthMismatch {
                            what: "vectors",
                            expected: 1,
                            actual: 0,
                        })?;
                let s = dce::pack_stream(&case.layer, &v.e_src, &v.mask)?;
                if words == 0 || words > s.len() {
                    return Err(golden::GoldenError::out_of_range(
                        "malformed pass words",
                        words,
                        format!("1..={} (the configured stream)", s.len()),
                    )
                    .into());
                }
                passes.push(Pass {
                    tag: format!(
                        "{}: malformed, {words} of {} words, in_last at {last_at:?}",
                        case.name,
                        s.len()
                    ),
                    setup: std::mem::take(&mut setup),
                    input: s[..words].iter().map(|&w| w as u64).collect(),
                    in_last: (0..words).map(|i| Some(i) == last_at).collect(),
                    expected: vec![0; case.layer.out_words()],
                    compare: false,
                    len_err: Some(true),
                    lane_stride: case.layer.hw(),
                });
            }
        }
    }
    if !setup.is_empty() {
        return Err(golden::GoldenError::BadMatrix(
            "a Program step must be followed by a pass".into(),
        )
        .into());
    }
    Ok(StreamVectors {
        unit: "dce",
        config: names.join(" | "),
        passes,
        in_bits: ERROR.bits,
        in_fields: 1,
        out_fields: 1,
        field_names: &[],
        lanes: sizes.lanes,
        out_format: ERROR,
        idle_limit: idle,
        ports: DCE_PORTS,
    })
}

/// Odd map (H, W) per dilation of the standard matrix.
fn standard_map(d: usize) -> (usize, usize) {
    [(5, 7), (7, 5), (3, 9), (5, 5)][d - 1]
}

/// The standard case matrix for `lanes`, each case with the [`CORNERS`] and
/// `random` random vectors: d ∈ {1..4} × G ∈ {1, 2, 4, 8} with k = 3 (named
/// `d{d}_g{G}`), k = 1 and k = 5 cases, the shift range's ends 0 and 16, and two
/// paths across pools (up-sampling 2 with D2, 4 without), and two of them again with
/// weights the engine regenerates (GEN mode, `_gen`). C_t =
/// lanes·G·(1 or 2) so P divides the channels per group, C_s ≠ C_t; D2 unscaled and
/// D1 at its plain fan-in shift, so full-scale corners saturate.
pub fn standard_cases(lanes: usize, random: usize) -> Result<Vec<DceCase>, TbError> {
    type Shape = (
        &'static str,
        usize,
        usize,
        (usize, usize),
        usize,
        usize,
        usize,
        usize,
        Option<(u32, u32)>,
    );
    let p = lanes;
    let mut shapes: Vec<(String, Shape)> = Vec::new();
    for d in 1..=4 {
        for g in [1, 2, 4, 8] {
            let ct = if p == 1 { 2 * g } else { p * g };
            shapes.push((
                format!("d{d}_g{g}"),
                ("", g * 2, ct, standard_map(d), 1, 3, d, g, None),
            ));
        }
    }
    let fixed: [Shape; 7] = [
        ("k1_g4", 8, 4 * p, (5, 3), 1, 1, 1, 4, None),
        ("k5_d2_g2", 4, 2 * p, (7, 7), 1, 5, 2, 2, None),
        // The shift range's ends: 0 (everything saturates) and 16 (MAX_SHIFT).
        ("shift0", 4, 2 * p, (3, 3), 1, 3, 1, 2, Some((0, 0))),
        ("shift16_d2", 4, 2 * p, (3, 3), 1, 3, 1, 2, Some((16, 0))),
        ("shift16_d1", 4, 2 * p, (3, 3), 1, 3, 1, 2, Some((0, 16))),
        // Across pools: a 3 × 5 source up-sampled to 6 × 10 (D2 at the source size,
        // then the shuffle), and a 2 × 1 source up-sampled to 8 × 4 without D2.
        ("up2_d2_g2", 4, 2 * p, (6, 10), 2, 3, 2, 2, None),
        ("up4_d1_g1", 3, 2 * p, (8, 4), 4, 3, 1, 1, None),
    ];
    shapes.extend(fixed.into_iter().map(|s| (s.0.to_string(), s)));
    shapes
        .into_iter()
        .map(|(name, (_, cs, ct, (h, w), up, k, d, g, shifts))| {
            let l = DceLayer {
                cs,
                ct,
                h,
                w,
                up,
                k,
                dil: d,
                groups: g,
                shift2: 0,
                shift1: 0,
            }
            .with_default_shifts()?;
            let (shift2, shift1) = shifts.unwrap_or((0, l.shift1));
            let l = DceLayer {
                shift2,
                shift1,
                ..l
            };
            DceCase::random(name, l, random, (1000 * lanes + 10 * d + g) as u64)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|mut cases| {
            // GEN mode: two of the cases again with generated weights (D2 with its
            // shuffle and D1 across a pool; D1 alone at G = 4).
            for name in ["up2_d2_g2", "d3_g4"] {
                let c = cases
                    .iter()
                    .find(|c| c.name == name)
                    .expect("a standard case");
                let g = c.clone().generated(7 + lanes as u64)?;
                cases.push(g);
            }
            Ok(cases)
        })
}

/// The engine's standard vector sets for mutation testing, on an engine of `sizes`:
/// `corners` (the cases' [`CORNERS`] vectors), `random` (their random vectors),
/// `captured` (vectors from training steps) and `len_err` (good, short and
/// unterminated streams on the first case, which shows `len_err` rising and
/// clearing). Each set programs every case it runs on one instance; empty sets are
/// left out.
pub fn vector_sets(sizes: &DceSizes, cases: &[DceCase]) -> Result<Vec<VectorSet>, TbError> {
    let kind = |tag: &str| {
        if CORNERS.contains(&tag) {
            0
        } else if tag.starts_with("random") {
            1
        } else {
            2
        }
    };
    let pick = |k: usize| -> Vec<DceCase> {
        cases
            .iter()
            .map(|c| DceCase {
                vectors: c
                    .vectors
                    .iter()
                    .filter(|v| kind(&v.tag) == k)
                    .cloned()
                    .collect(),
                ..c.clone()
            })
            .filter(|c| !c.vectors.is_empty())
            .collect()
    };
    let all = |cs: &[DceCase]| -> Result<StreamVectors, TbError> {
        let steps: Vec<Step> = cs
            .iter()
            .flat_map(|c| [Step::Program(c), Step::Vectors(c)])
            .collect();
        sequence(sizes, &steps)
    };
    let mut sets = Vec::new();
    for (k, name) in ["corners", "random", "captured"].into_iter().enumerate() {
        let cs = pick(k);
        if !cs.is_empty() {
            sets.push((name, all(&cs)?));
        }
    }
    if let Some(c) = cases.first() {
        let n = c.layer.stream_words();
        // The good passes run the case's last vector (random or captured, with
        // nonzero words).
        let one = DceCase {
            vectors: c.vectors.last().into_iter().cloned().collect(),
            ..c.clone()
        };
        sets.push((
            "len_err",
            sequence(
                sizes,
                &[
                    Step::Program(c),
                    Step::Vectors(&one),
                    Step::Malformed {
                        case: c,
                        words: n - 1,
                        last_at: Some(n - 2),
                    },
                    Step::Vectors(&one),
                    Step::Malformed {
                        case: c,
                        words: n,
                        last_at: None,
                    },
                    Step::Vectors(&one),
                ],
            )?,
        ));
    }
    Ok(sets
        .into_iter()
        .map(|(name, vectors)| VectorSet {
            name: name.into(),
            vectors,
        })
        .collect())
}

/// The engine as a [`Unit`]: one generated engine that fits every case's layer, and
/// the cases (each reprograms the engine at run time).
#[derive(Clone, Debug)]
pub struct DceUnit {
    /// Generation-time sizes.
    pub sizes: DceSizes,
    /// The cases.
    pub cases: Vec<DceCase>,
    /// The emitted engine.
    pub design: Emitted,
}

impl DceUnit {
    /// Size an engine of `lanes` for `cases` and generate it.
    pub fn new(lanes: usize, cases: Vec<DceCase>) -> Result<Self, TbError> {
        let layers: Vec<DceLayer> = cases.iter().map(|c| c.layer).collect();
        let sizes = DceSizes::fitting(lanes, &layers)?;
        let design = rtl::dce::generate(&sizes)?;
        Ok(DceUnit {
            sizes,
            cases,
            design,
        })
    }

    /// An engine of the given `sizes` (an envelope larger than the cases need, as a
    /// real engine is generated once for many layers) running `cases`; a case that
    /// does not fit is an error naming the buffer it overflows.
    pub fn with_sizes(sizes: DceSizes, cases: Vec<DceCase>) -> Result<Self, TbError> {
        sizes.validate()?;
        for c in &cases {
            sizes.check(&c.layer)?;
        }
        let design = rtl::dce::generate(&sizes)?;
        Ok(DceUnit {
            sizes,
            cases,
            design,
        })
    }
}

impl Unit for DceUnit {
    fn name(&self) -> &'static str {
        "dce"
    }
    fn design(&self) -> &Emitted {
        &self.design
    }
    fn stem(&self) -> String {
        format!("dce_p{}", self.sizes.lanes)
    }
    fn config(&self) -> String {
        self.cases.first().map_or_else(
            || format!("P={}", self.sizes.lanes),
            |c| c.config(self.sizes.lanes),
        )
    }
    fn cases(&self) -> usize {
        self.cases.len()
    }
    fn case_name(&self, i: usize) -> String {
        format!("p{}_{}", self.sizes.lanes, self.cases[i].name)
    }
    fn stream(&self, i: usize) -> Result<StreamVectors, TbError> {
        self.cases[i].stream(&self.sizes)
    }
    fn ideal_per_vector(&self, i: usize) -> f64 {
        self.cases[i].layer.work() as f64 / self.sizes.lanes as f64
    }
    fn traffic(&self, i: usize, passes: usize, stats: &RunStats) -> Option<TrafficCheck> {
        let l = &self.cases[i].layer;
        let n = passes as u64;
        let g = golden_traffic(l, &self.cases[i].weights);
        Some(TrafficCheck {
            rtl: DceTraffic {
                stream_words: stats.inputs.saturating_sub(n * l.mask_words() as u64),
                error_reads: stats.traffic[0],
                weight_bits: stats.traffic[1] * self.sizes.lanes as u64,
            },
            golden: DceTraffic {
                stream_words: g.stream_words * n,
                error_reads: g.error_reads * n,
                weight_bits: g.weight_bits * n,
            },
            lanes: self.sizes.lanes,
            weight_bits_exact: false,
        })
    }
    fn vector_sets(&self) -> Result<Vec<VectorSet>, TbError> {
        vector_sets(&self.sizes, &self.cases)
    }
    fn mutants(&self) -> &'static [Mutant] {
        DCE_MUTANTS
    }
}

/// Load the training config `file` (relative data paths resolve against the current
/// directory), optionally keep only its first `train_limit` training images (IDX
/// data; the test set is then cut to 256), train, and capture the engine-runnable
/// paths at global `steps` (None: the run's first, middle and last step) for the
/// first `samples` samples of each step's batch (see
/// [`golden::experiment::Experiment::capture_paths`]). Steps past the run's last
/// step are an error naming the range.
pub fn capture(
    file: &Path,
    train_limit: Option<usize>,
    steps: Option<&[usize]>,
    samples: usize,
) -> Result<Vec<PathCapture>, TbError> {
    let mut exp = experiment(file, train_limit)?;
    let steps = run_steps(&exp, steps)?;
    Ok(exp.capture_paths(&steps, samples)?)
}

/// The experiment of config `file`, keeping only the first `train_limit` training
/// images (IDX data; the test set is then cut to 256) when given.
pub(crate) fn experiment(
    file: &Path,
    train_limit: Option<usize>,
) -> Result<golden::experiment::Experiment<golden::cnn::num::Fx>, TbError> {
    use golden::experiment::{ExpError, Experiment};
    let mut c = golden::config::Config::load(file).map_err(ExpError::from)?;
    if let Some(n) = train_limit {
        let mut raw = c.raw.clone();
        if let golden::config::DataToml::Idx {
            train_limit,
            test_limit,
            ..
        } = &mut raw.data
        {
            *train_limit = n;
            *test_limit = 256;
        }
        c = golden::config::Config::from_raw(file, raw).map_err(ExpError::from)?;
    }
    Ok(Experiment::new(c)?)
}

/// `steps`, or the run's first, middle and last step; a step past the run is an
/// error naming the range.
pub(crate) fn run_steps(
    exp: &golden::experiment::Experiment<golden::cnn::num::Fx>,
    steps: Option<&[usize]>,
) -> Result<Vec<usize>, TbError> {
    let last = exp.batches() * exp.config.raw.epochs - 1;
    let steps = steps.map_or_else(|| vec![0, last / 2, last], <[usize]>::to_vec);
    if let Some(&s) = steps.iter().find(|&&s| s > last) {
        return Err(golden::GoldenError::out_of_range(
            "capture step",
            s,
            format!("0..={last} (the run's steps)"),
        )
        .into());
    }
    Ok(steps)
}
