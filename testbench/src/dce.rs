//! Co-simulation of the dilated-conv error-propagation engine (DCE).
//!
//! A [`DceCase`] is one layer (a backward path: channels, map, k, d, G, shifts and
//! binary weights) with its vectors (source errors, ReLU mask, expected e_i). Cases
//! come from random draws with planted corners ([`DceCase::random`]) or from real
//! training steps ([`DceCase::from_captures`]). [`run_case`] configures an engine
//! through its register port and streams every vector through Verilator or Icarus;
//! [`DceReport`] holds the cycle counts, the utilization against the ideal and the
//! memory traffic next to the golden model's count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use golden::dce::{self, golden_traffic, DceLayer, DceSizes, DceTraffic, DceWeights};
use golden::experiment::PathCapture;
use golden::format::ERROR;
use golden::rng::Rng;
use rtl::Emitted;
use sim::stream::{run_verilator, RunStats, Stall, StreamVectors};

use crate::{SimKind, TbError};

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
        let mut rng = Rng::new(seed);
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

    /// One case per backward path (target ← source) of the captures, named
    /// `{prefix}_t{target}_s{source}`. The expected words are the trainer's own
    /// errors; each is also checked against [`golden::dce::apply`].
    pub fn from_captures(prefix: &str, caps: &[PathCapture]) -> Result<Vec<Self>, TbError> {
        let mut by_path: BTreeMap<(usize, usize), DceCase> = BTreeMap::new();
        for c in caps {
            let again = dce::apply(&c.layer, &c.weights, &c.e_src, &c.mask)?;
            if again != c.expected {
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
                e_src: c.e_src.clone(),
                mask: c.mask.clone(),
                expected: c.expected.clone(),
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
        format!(
            "{}: P={lanes} Cs={} Ct={} {}x{} k={} d={} G={} shifts={}/{}",
            self.name, l.cs, l.ct, l.h, l.w, l.k, l.dil, l.groups, l.shift2, l.shift1
        )
    }

    /// Stimulus (register writes, streams) and expected words for an engine of `sizes`.
    pub fn stream(&self, sizes: &DceSizes) -> Result<StreamVectors, TbError> {
        let setup = rtl::dce::regs::program(sizes, &self.layer, &self.weights)?;
        let (mut input, mut in_last, mut expected) = (Vec::new(), Vec::new(), Vec::new());
        for v in &self.vectors {
            let s = dce::pack_stream(&self.layer, &v.e_src, &v.mask)?;
            let n = s.len();
            input.extend(s.iter().map(|&w| w as u64));
            in_last.extend((0..n).map(|i| i + 1 == n));
            expected.extend(v.expected.iter().map(|&e| e as i64));
        }
        // The longest silence: the first block of D1 after D2, plus a drain.
        let l = &self.layer;
        let idle = (l.work() / sizes.lanes + 4 * l.out_words() + 1024) as u64;
        Ok(StreamVectors {
            unit: "dce",
            config: self.config(sizes.lanes),
            input,
            in_bits: ERROR.bits,
            expected,
            out_per_vector: l.out_words(),
            lanes: sizes.lanes,
            lane_stride: l.hw(),
            out_format: ERROR,
            idle_limit: idle,
            setup,
            in_last,
        })
    }
}

/// Outcome of one case on one simulator.
#[derive(Clone, Debug)]
pub struct DceReport {
    /// Configuration text.
    pub config: String,
    /// Lanes.
    pub lanes: usize,
    /// Vectors run.
    pub vectors: usize,
    /// Ideal cycles per pass: (nonzero taps × outputs) / P.
    pub ideal_per_vector: f64,
    /// The golden model's traffic per pass.
    pub golden: DceTraffic,
    /// Mask words per pass (the input stream's other words).
    pub mask_words: usize,
    /// Simulator statistics.
    pub stats: RunStats,
    /// Work directory (testbench files, waveforms).
    pub work: PathBuf,
}

impl crate::UnitReport for DceReport {
    fn unit(&self) -> &'static str {
        "dce"
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
        self.ideal_per_vector
    }
}

impl DceReport {
    /// Traffic measured in the simulation, per vector: buffer error words read and
    /// weight bits read (P per weight word).
    pub fn rtl_traffic(&self) -> DceTraffic {
        let n = self.vectors.max(1) as u64;
        DceTraffic {
            stream_words: (self.stats.inputs / n).saturating_sub(self.mask_words as u64),
            error_reads: self.stats.traffic[0] / n,
            weight_bits: self.stats.traffic[1] * self.lanes as u64 / n,
        }
    }
    /// The traffic line: RTL against golden.
    pub fn traffic_line(&self) -> String {
        let r = self.rtl_traffic();
        format!(
            "traffic per pass: input stream {} error words (golden {}); buffer error words read {} x {} lanes = {} (golden {}); weight bits read {} (golden {}; the engine also reads the signs of padding taps)",
            r.stream_words,
            self.golden.stream_words,
            r.error_reads,
            self.lanes,
            r.error_reads * self.lanes as u64,
            self.golden.error_reads,
            r.weight_bits,
            self.golden.weight_bits
        )
    }
}

/// Run `case` on the engine `design` (generated with `sizes`) under `sim`.
pub fn run_case(
    design: &Emitted,
    sizes: &DceSizes,
    case: &DceCase,
    sim: SimKind,
    stall: Stall,
    cache: &Path,
    work: &Path,
) -> Result<DceReport, TbError> {
    let v = case.stream(sizes)?;
    let dir = work.join(format!("dce_p{}_{}_{}", sizes.lanes, case.name, sim.name()));
    let stats = match sim {
        SimKind::Verilator => run_verilator(design, &v, stall, cache, &dir)?,
        SimKind::Icarus => sim::icarus::run_icarus(design, &v, stall, &dir)?,
    };
    let golden = golden_traffic(&case.layer);
    Ok(DceReport {
        config: case.config(sizes.lanes),
        lanes: sizes.lanes,
        vectors: case.vectors.len(),
        ideal_per_vector: case.layer.work() as f64 / sizes.lanes as f64,
        golden,
        mask_words: case.layer.mask_words(),
        stats,
        work: dir,
    })
}

/// Drive one pass whose input stream is cut or padded: the first `words` words of
/// `case`'s first vector's stream (extra words are zeros), with `in_last` on word
/// `last_at` (or on none), then let the engine finish the pass. Returns the engine's
/// `len_err` after the pass, so a test sees the hardware flag a stream that is
/// shorter or longer than the configured map. Runs on Verilator.
pub fn probe_len_err(
    design: &Emitted,
    sizes: &DceSizes,
    case: &DceCase,
    words: usize,
    last_at: Option<usize>,
    cache: &Path,
) -> Result<bool, TbError> {
    let v = case
        .vectors
        .first()
        .ok_or_else(|| golden::GoldenError::LengthMismatch {
            what: "vectors",
            expected: 1,
            actual: 0,
        })?;
    let full = dce::pack_stream(&case.layer, &v.e_src, &v.mask)?;
    let setup = rtl::dce::regs::program(sizes, &case.layer, &case.weights)?;
    let build = sim::verilator::build(design, cache)?;
    let mut m = sim::verilator::VerilatorModel::load(&build, &design.ports)?;
    let port = |m: &sim::verilator::VerilatorModel, n| m.port(n, "dce");
    let clk = port(&m, "clock")?;
    let (ind, inv, inl, inr) = (
        port(&m, "in_data")?,
        port(&m, "in_valid")?,
        port(&m, "in_last")?,
        port(&m, "in_ready")?,
    );
    let (ordy, phase, lerr) = (
        port(&m, "out_ready")?,
        port(&m, "phase")?,
        port(&m, "len_err")?,
    );
    let tick = |m: &mut sim::verilator::VerilatorModel| {
        m.eval();
        m.set(clk, 1);
        m.eval();
        m.set(clk, 0);
    };
    m.set(clk, 0);
    m.eval();
    sim::stream::configure(&mut m, &setup, "dce")?;
    m.set(ordy, 1);
    let mut i = 0;
    let mut left_load = false;
    let limit = 16 * (case.layer.work() + full.len() + 1024);
    for _ in 0..limit {
        let feeding = i < words && !left_load;
        m.set(inv, feeding as u64);
        m.set(ind, full.get(i).copied().unwrap_or(0) as u64);
        m.set(inl, (feeding && Some(i) == last_at) as u64);
        m.eval();
        let fire = feeding && m.get(inr) != 0;
        tick(&mut m);
        if fire {
            i += 1;
        }
        if m.get(phase) != 0 {
            left_load = true;
        }
        if left_load && m.get(phase) == 0 {
            return Ok(m.get(lerr) != 0);
        }
    }
    Err(TbError::Sim(sim::SimError::Protocol {
        sim: "verilator",
        msg: format!("the pass did not finish within {limit} cycles"),
    }))
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
    let mut exp = Experiment::<golden::cnn::num::Fx>::new(c)?;
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
    Ok(exp.capture_paths(&steps, samples)?)
}
