//! The HDFA update unit's scenarios: [`UpdVector`] (one pass: a step kind, the
//! coefficients, and the words of one parameter tensor), corner and random vectors
//! ([`corners`], [`random`]), vectors captured from real training steps
//! ([`from_captures`]), and [`UpdUnit`], its [`Unit`].
//!
//! A pass programs the step's registers, then streams the tensor's words P per beat
//! (the last beat padded with zero words, whose update is zero); every output word
//! (θ', v_bp', v_dfa' of every lane) is compared with `update::apply`.

use golden::capture::UpdateCapture;
use golden::format::MASTER;
use golden::rng::{Rng, RngCore, SeedableRng};
use golden::update::{apply, HwCoefs, StepKind, WordState, COEF_ONE, IN_WORDS, OUT_WORDS};
use rtl::upd::{regs, LANE_LATENCY};
use rtl::Emitted;
use sim::stream::{Pass, RunStats, StreamVectors};

use crate::mutation::{Mutant, VectorSet, UPD_MUTANTS};
use crate::unit::{TrafficCheck, Unit};
use crate::TbError;

/// One pass through the unit: a step's update of one tensor.
#[derive(Clone, Debug)]
pub struct UpdVector {
    /// Where it came from (a corner's name, `random 17`, `step 5 dfa w0`).
    pub tag: String,
    /// BP or DFA.
    pub kind: StepKind,
    /// η, α, γ.
    pub coefs: HwCoefs,
    /// θ, v_bp, v_dfa of each word.
    pub state: Vec<WordState>,
    /// The gradient of each word.
    pub grad: Vec<i32>,
}

/// Names of a lane's output words, in order.
pub const UPD_FIELDS: &[&str] = &["theta", "v_bp", "v_dfa"];

const MAX: i32 = i32::MAX;
const MIN: i32 = i32::MIN;

/// The corner vectors, each as a BP and a DFA step: saturation of every sum in both
/// directions, coefficients 0 and 1.0, rounding ties of both signs, and zeros.
pub fn corners(seed: u64) -> Vec<UpdVector> {
    let mut r = Rng::seed_from_u64(seed ^ 0xC0_4E75);
    let half = COEF_ONE / 2;
    let c = |eta, alpha, gamma| HwCoefs::new(eta, alpha, gamma).expect("in range");
    let word = |theta, v_bp, v_dfa| WordState { theta, v_bp, v_dfa };
    // (name, coefficients, words with their gradients)
    let mut sets: Vec<(&str, HwCoefs, Vec<(WordState, i32)>)> = vec![
        (
            "velocity saturates up and down (alpha 1, g extreme)",
            c(COEF_ONE, COEF_ONE, half),
            vec![
                (word(0, MAX, MAX), MAX),
                (word(0, MIN, MIN), MIN),
                (word(0, MAX - 5, MAX - 5), 7),
                (word(0, MIN + 5, MIN + 5), -7),
            ],
        ),
        (
            "theta saturates up and down (eta 1)",
            c(COEF_ONE, COEF_ONE, COEF_ONE),
            vec![
                (word(MIN, MAX, MAX), MAX),
                (word(MAX, MIN, MIN), MIN),
                (word(MIN + 1, 3, 3), 0),
                (word(MAX - 1, -3, -3), 0),
            ],
        ),
        (
            "coefficients 0 (nothing moves but the velocity takes g)",
            c(0, 0, 0),
            vec![(word(12345, -999, 777), -4242), (word(MIN, MAX, MIN), MAX)],
        ),
        (
            "gamma 0 and 1 (u is one velocity)",
            c(COEF_ONE, half, 0),
            vec![(word(1 << 24, 3 << 20, -(5 << 20)), 1 << 18)],
        ),
        (
            "rounding ties of both signs (coefficients 0.5)",
            c(half, half, half),
            vec![
                (word(0, 1, 1), 0),
                (word(0, -1, -1), 0),
                (word(0, 3, -3), 1),
                (word(0, -5, 5), -1),
                (word(7, 1 << 16 | 1, -(1 << 16) - 1), 2),
            ],
        ),
        ("all zero", c(655, 58982, half), vec![(word(0, 0, 0), 0); 5]),
    ];
    // gamma 1.0 as well.
    sets.push((
        "gamma 1 (u is v_dfa)",
        c(COEF_ONE, half, COEF_ONE),
        vec![(word(-(1 << 24), 3 << 20, -(5 << 20)), 1 << 18)],
    ));
    // Near-extreme random words at full coefficients.
    let near: Vec<(WordState, i32)> = (0..9)
        .map(|_| {
            let w = |r: &mut Rng| {
                if r.bit() {
                    MAX - (r.below(1 << 20) as i32)
                } else {
                    MIN + (r.below(1 << 20) as i32)
                }
            };
            (word(w(&mut r), w(&mut r), w(&mut r)), w(&mut r))
        })
        .collect();
    sets.push((
        "near-extreme words",
        c(COEF_ONE, COEF_ONE - 1, half + 1),
        near,
    ));
    let mut out = Vec::new();
    for (name, coefs, words) in sets {
        for kind in [StepKind::Bp, StepKind::Dfa] {
            out.push(UpdVector {
                tag: format!("{name}, {}", kind_name(kind)),
                kind,
                coefs,
                state: words.iter().map(|w| w.0).collect(),
                grad: words.iter().map(|w| w.1).collect(),
            });
        }
    }
    out
}

/// `n` random vectors: random kind, coefficients in [0, 1.0], 1–64 words of random
/// magnitude (2^0 to 2^31), so the last beat is often partial.
pub fn random(n: usize, seed: u64) -> Vec<UpdVector> {
    let mut r = Rng::seed_from_u64(seed ^ 0x0_4A_D0);
    (0..n)
        .map(|i| {
            let coef = |r: &mut Rng| match r.below(8) {
                0 => 0,
                1 => COEF_ONE,
                _ => r.below(COEF_ONE as u64 + 1) as i64,
            };
            let coefs = HwCoefs::new(coef(&mut r), coef(&mut r), coef(&mut r)).expect("in range");
            let kind = if r.bit() { StepKind::Dfa } else { StepKind::Bp };
            let words = 1 + r.below(64) as usize;
            let w = |r: &mut Rng| ((r.next_u64() as i64) >> (32 + r.below(32))) as i32;
            let state = (0..words)
                .map(|_| WordState {
                    theta: w(&mut r),
                    v_bp: w(&mut r),
                    v_dfa: w(&mut r),
                })
                .collect();
            let grad = (0..words).map(|_| w(&mut r)).collect();
            UpdVector {
                tag: format!("random {i}"),
                kind,
                coefs,
                state,
                grad,
            }
        })
        .collect()
}

/// Two training steps' worth of random words for throughput runs: `tensors` tensors
/// of `words` words updated by one BP step, then the same by one DFA step (the
/// registers change once, between the steps).
pub fn bench_vectors(tensors: usize, words: usize, seed: u64) -> Vec<UpdVector> {
    let mut v = random(2 * tensors, seed);
    let mut r = Rng::seed_from_u64(seed ^ 0xBE_4C);
    let coefs = HwCoefs::new(655, 58982, COEF_ONE / 2).expect("in range");
    for (i, x) in v.iter_mut().enumerate() {
        x.kind = if i < tensors {
            StepKind::Bp
        } else {
            StepKind::Dfa
        };
        x.coefs = coefs;
        let w = |r: &mut Rng| ((r.next_u64() as i64) >> (32 + r.below(32))) as i32;
        x.state = (0..words)
            .map(|_| WordState {
                theta: w(&mut r),
                v_bp: w(&mut r),
                v_dfa: w(&mut r),
            })
            .collect();
        x.grad = (0..words).map(|_| w(&mut r)).collect();
    }
    v
}

fn kind_name(k: StepKind) -> &'static str {
    match k {
        StepKind::Bp => "bp",
        StepKind::Dfa => "dfa",
    }
}

/// One vector per parameter tensor of each captured step, at most `max_words` words
/// each (the first ones; None: all).
pub fn from_captures(caps: &[UpdateCapture], max_words: Option<usize>) -> Vec<UpdVector> {
    let mut out = Vec::new();
    for c in caps {
        for t in &c.tensors {
            let n = max_words.map_or(t.grad.len(), |m| m.min(t.grad.len()));
            out.push(UpdVector {
                tag: format!("step {} {} {}", c.step, kind_name(c.kind), t.name),
                kind: c.kind,
                coefs: c.coefs,
                state: t.state[..n].to_vec(),
                grad: t.grad[..n].to_vec(),
            });
        }
    }
    out
}

/// Capture the optimizer inputs of config `file`'s steps `steps` (default: the first
/// four, the middle and the last step, so BP and DFA steps both appear in an HDFA run),
/// keeping only the first `train_limit` training images when given.
pub fn capture(
    file: &std::path::Path,
    train_limit: Option<usize>,
    steps: Option<&[usize]>,
) -> Result<Vec<UpdateCapture>, TbError> {
    let mut exp = crate::dce::experiment(file, train_limit)?;
    let steps = match steps {
        Some(s) => crate::dce::run_steps(&exp, Some(s))?,
        None => {
            let ends = crate::dce::run_steps(&exp, None)?;
            let last = ends[ends.len() - 1];
            let mut s: Vec<usize> = (0..4).filter(|&x| x <= last).chain(ends).collect();
            s.sort_unstable();
            s.dedup();
            s
        }
    };
    Ok(exp.capture_updates(&steps)?)
}

/// The stream of `vectors` on a unit of `lanes` lanes.
pub fn stream(lanes: usize, vectors: &[UpdVector], config: &str) -> StreamVectors {
    let mask = |x: i32| x as u32 as u64;
    let passes = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // The registers are written only when the step changes (a write waits
            // for the unit to empty); the tensors of one step stream back to back.
            let same = i > 0 && {
                let p = &vectors[i - 1];
                (p.kind, p.coefs) == (v.kind, v.coefs)
            };
            let beats = v.grad.len().div_ceil(lanes);
            let (mut input, mut expected) = (Vec::new(), Vec::new());
            for j in 0..beats * lanes {
                let (s, g) = match (v.state.get(j), v.grad.get(j)) {
                    (Some(&s), Some(&g)) => (s, g),
                    _ => (WordState::default(), 0),
                };
                input.extend([mask(s.theta), mask(s.v_bp), mask(s.v_dfa), mask(g)]);
                let o = apply(v.kind, &v.coefs, s, g);
                expected.extend([o.theta as i64, o.v_bp as i64, o.v_dfa as i64]);
            }
            Pass {
                tag: v.tag.clone(),
                setup: if same {
                    Vec::new()
                } else {
                    regs::program(v.kind, &v.coefs)
                },
                input,
                in_last: (0..beats).map(|b| b + 1 == beats).collect(),
                expected,
                compare: true,
                len_err: None,
                lane_stride: OUT_WORDS,
            }
        })
        .collect();
    StreamVectors {
        unit: "upd",
        config: config.to_string(),
        passes,
        in_bits: MASTER.bits,
        in_fields: IN_WORDS * lanes,
        out_fields: OUT_WORDS * lanes,
        field_names: UPD_FIELDS,
        lanes,
        out_format: MASTER,
        idle_limit: 200 + 4 * LANE_LATENCY as u64,
        ports: &["cfg_we", "cfg_addr", "cfg_data", "in_last"],
    }
}

/// The update unit under verification: one design and its cases (each a list of
/// vectors: `corners+random`, or captured steps).
pub struct UpdUnit {
    /// Lanes.
    pub lanes: usize,
    /// The design.
    pub design: Emitted,
    /// (name, vectors) per case.
    pub cases: Vec<(String, Vec<UpdVector>)>,
    /// Seed of the random vectors (for reports).
    pub seed: u64,
    /// The standard random vectors' count.
    pub random: usize,
}

impl UpdUnit {
    /// The unit of `lanes` lanes with the standard case: corners, then `random`
    /// random vectors.
    pub fn new(lanes: usize, random: usize, seed: u64) -> Result<UpdUnit, TbError> {
        let design = rtl::upd::generate(lanes)?;
        let mut v = corners(seed);
        v.extend(self::random(random, seed));
        Ok(UpdUnit {
            lanes,
            design,
            cases: vec![("corners_random".into(), v)],
            seed,
            random,
        })
    }

    /// The same design with one case per (name, vectors), e.g. captured steps.
    pub fn with_cases(&self, cases: Vec<(String, Vec<UpdVector>)>) -> UpdUnit {
        UpdUnit {
            lanes: self.lanes,
            design: self.design.clone(),
            cases,
            seed: self.seed,
            random: self.random,
        }
    }

    /// Output words of case `i` (every lane slot of every beat).
    pub fn out_words(&self, i: usize) -> usize {
        self.cases[i]
            .1
            .iter()
            .map(|v| v.grad.len().div_ceil(self.lanes) * self.lanes * OUT_WORDS)
            .sum()
    }
}

impl Unit for UpdUnit {
    fn name(&self) -> &'static str {
        "upd"
    }
    fn design(&self) -> &Emitted {
        &self.design
    }
    fn stem(&self) -> String {
        format!("upd_p{}", self.lanes)
    }
    fn config(&self) -> String {
        format!("P={} seed={}", self.lanes, self.seed)
    }
    fn cases(&self) -> usize {
        self.cases.len()
    }
    fn case_name(&self, i: usize) -> String {
        format!("p{}_{}", self.lanes, self.cases[i].0)
    }
    fn stream(&self, i: usize) -> Result<StreamVectors, TbError> {
        Ok(stream(
            self.lanes,
            &self.cases[i].1,
            &format!("{} case={}", self.config(), self.cases[i].0),
        ))
    }
    /// One beat per cycle: the bound.
    fn ideal_per_vector(&self, i: usize) -> f64 {
        let v = &self.cases[i].1;
        let beats: usize = v.iter().map(|v| v.grad.len().div_ceil(self.lanes)).sum();
        beats as f64 / v.len().max(1) as f64
    }
    fn traffic(&self, _: usize, _: usize, _: &RunStats) -> Option<TrafficCheck> {
        None
    }
    fn vector_sets(&self) -> Result<Vec<VectorSet>, TbError> {
        let c = corners(self.seed);
        let r = random(self.random.min(64), self.seed);
        Ok(vec![
            VectorSet {
                name: "corners".into(),
                vectors: stream(self.lanes, &c, "corners"),
            },
            VectorSet {
                name: "random".into(),
                vectors: stream(self.lanes, &r, "random"),
            },
        ])
    }
    fn mutants(&self) -> &'static [Mutant] {
        UPD_MUTANTS
    }
}
