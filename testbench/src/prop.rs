//! Property-based co-simulation and the soak: random [`CosimSpec`]s (unit
//! parameters across their supported ranges, random seeds and vector counts) run on
//! Verilator against the golden model; a failing case is shrunk ([`shrink`]) to a
//! minimal one and printed as the `hdfa cosim` command that reruns it.
//!
//! Main types: [`Limits`] (what a draw may cost), [`Pool`] (a fixed set of designs
//! per unit, so a long soak spends its time simulating cached models instead of
//! building), [`SoakConfig`] / [`soak`] / [`SoakReport`] (cycle through random cases
//! until a budget is spent; per-unit [`Tally`]), [`check`] / [`Outcome`] (one case),
//! [`shrink`] / [`Shrunk`].
//!
//! Why a shrinker of our own: proptest's shrinking walks every value by bisection
//! without knowing which parameters cost a Verilator build. Ours tries the run-time
//! simplifications (vectors, seeds, the layer on a pinned engine) before the
//! generation-time ones (lanes, sizes), so a shrink costs a few builds, not dozens,
//! and stops at a case none of whose one-step simplifications still fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use golden::dce::{DceLayer, DceSizes, GROUPS, KERNELS, MAX_CHANNELS, MAX_DIL, MAX_MAP, UPS};
use golden::format::fan_in_shift;
use golden::params::{BSBU_MAX_LANES, MAX_COLS, MAX_ROWS, MAX_SHIFT};
use golden::rng::{Rng, SeedableRng};
use sim::stream::Stall;

use crate::mutation::Mutated;
use crate::spec::{BsbuSpec, CosimSpec, DceSpec, UnitKind, UpdSpec};
use crate::unit::run_case;
use crate::{verdict, SimKind, TbError, Unit};

/// What one random case may cost. Draws beyond a limit are drawn again, so the
/// parameters are uniform (sizes log-uniform) over the supported ranges restricted
/// to these limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most simulated cycles per vector ([`CosimSpec::cycles_per_vector`]).
    pub max_cycles_per_vector: f64,
    /// Most nonzeros of a stored S (their count sets the design's size and its build
    /// time).
    pub max_stored_entries: usize,
    /// Simulated cycles a case aims for (its vector count is chosen to match).
    pub target_cycles: f64,
    /// Most random vectors of one case.
    pub max_vectors: usize,
}

impl Limits {
    /// Small cases for CI: about 0.05 s of simulation each.
    pub const CI: Limits = Limits {
        max_cycles_per_vector: 3_000.0,
        max_stored_entries: 2_048,
        target_cycles: 150_000.0,
        max_vectors: 400,
    };
    /// The soak's default: larger cases, about a second of simulation each.
    pub const SOAK: Limits = Limits {
        max_cycles_per_vector: 20_000.0,
        max_stored_entries: 8_192,
        target_cycles: 3_000_000.0,
        max_vectors: 20_000,
    };
}

/// An integer log-uniform in `lo..=hi`.
fn log_uniform(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    debug_assert!(1 <= lo && lo <= hi);
    let (a, b) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
    ((a + (b - a) * rng.uniform()).exp().floor() as usize).clamp(lo, hi)
}

/// A size in `lo..=hi`: one of the ends one time in eight (the supported range's
/// edges), else log-uniform.
fn size(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    match rng.below(16) {
        0 => lo,
        1 => hi,
        _ => log_uniform(rng, lo, hi),
    }
}

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

/// A shift near the default for `fan_in` (one below to two above), in range.
fn shift_near(rng: &mut Rng, fan_in: usize) -> u32 {
    let d = fan_in_shift(fan_in) as i64 + rng.range_i64(-1, 3);
    d.clamp(0, MAX_SHIFT as i64) as u32
}

fn seed32(rng: &mut Rng) -> u64 {
    rng.below(1 << 32)
}

/// A sparsity: one of the paper's levels or a random one (two decimals).
fn sparsity(rng: &mut Rng) -> f64 {
    match rng.below(3) {
        0 => pick(rng, &[0.0, 0.5, 0.8, 0.9, 0.95, 0.98]),
        _ => rng.below(99) as f64 / 100.0,
    }
}

/// A random layer for an engine of `lanes` lanes with at most `max_ch` channels and
/// `max_map` rows and columns (None: no valid layer in a few tries).
fn draw_layer(rng: &mut Rng, lanes: usize, max_ch: usize, max_map: usize) -> Option<DceLayer> {
    for _ in 0..64 {
        let groups = pick(rng, &GROUPS);
        let step = groups * lanes; // C_t / G must be a multiple of the lanes
        if step > max_ch {
            continue;
        }
        let ct = step * size(rng, 1, max_ch / step);
        let cs = groups * size(rng, 1, max_ch / groups);
        let up = pick(rng, &UPS);
        if up > max_map {
            continue;
        }
        let h = up * size(rng, 1, max_map / up);
        let w = up * size(rng, 1, max_map / up);
        let l = DceLayer {
            cs,
            ct,
            h,
            w,
            up,
            k: pick(rng, &KERNELS),
            dil: size(rng, 1, MAX_DIL),
            groups,
            shift2: 0,
            shift1: 0,
        };
        if let Ok(l) = l.validate() {
            let l = DceLayer {
                shift2: shift_near(rng, l.icg2()),
                shift1: shift_near(rng, l.fan_in1()),
                ..l
            };
            if l.validate().is_ok() {
                return Some(l);
            }
        }
    }
    None
}

/// A random case of `kind` with a fresh design, within `lim`.
pub fn draw(kind: UnitKind, rng: &mut Rng, lim: &Limits) -> CosimSpec {
    loop {
        let spec = match kind {
            UnitKind::Bsbu => {
                let rows = size(rng, 1, MAX_ROWS);
                let cols = size(rng, 1, MAX_COLS);
                let generator = rng.bit();
                let s = BsbuSpec {
                    lanes: size(rng, 1, BSBU_MAX_LANES),
                    rows,
                    cols,
                    sparsity: sparsity(rng),
                    shift: shift_near(rng, cols),
                    seed: seed32(rng),
                    vector_seed: seed32(rng),
                    generator,
                    row0: if generator {
                        log_uniform(rng, 1, 1 << 16) - 1
                    } else {
                        0
                    },
                    vectors: 0,
                };
                let nnz = (rows * cols) as f64 * (1.0 - s.sparsity);
                if !generator && nnz > lim.max_stored_entries as f64 {
                    continue;
                }
                CosimSpec::Bsbu(s)
            }
            UnitKind::Dce => {
                let lanes = size(rng, 1, golden::dce::DCE_MAX_LANES);
                let Some(layer) = draw_layer(rng, lanes, MAX_CHANNELS, MAX_MAP) else {
                    continue;
                };
                CosimSpec::Dce(DceSpec {
                    lanes,
                    layer,
                    generator: rng.bit(),
                    seed: seed32(rng),
                    vectors: 0,
                    sizes: None,
                })
            }
            UnitKind::Upd => CosimSpec::Upd(UpdSpec {
                lanes: 1 + rng.below(golden::update::UPD_MAX_LANES as u64) as usize,
                seed: seed32(rng),
                vectors: 0,
            }),
        };
        if spec.cycles_per_vector() <= lim.max_cycles_per_vector {
            return sized(spec, rng, lim);
        }
    }
}

/// `spec` with a vector count that aims at the limits' target cycles (random within
/// a factor of two, at least one random vector).
fn sized(spec: CosimSpec, rng: &mut Rng, lim: &Limits) -> CosimSpec {
    let n = (lim.target_cycles / spec.cycles_per_vector()) * (0.5 + rng.uniform());
    spec.with_vectors((n as usize).clamp(1, lim.max_vectors))
}

/// A new case on `design`'s design: fresh run-time parameters, seeds and vectors
/// (bsbu stored: new vectors through the same S; generator mode: new seed, sparsity
/// threshold and row; dce: a new layer that fits the engine, GEN mode or not; upd:
/// new vectors).
pub fn redraw(design: &CosimSpec, rng: &mut Rng, lim: &Limits) -> CosimSpec {
    let spec = match design {
        CosimSpec::Bsbu(s) if s.generator => CosimSpec::Bsbu(BsbuSpec {
            seed: seed32(rng),
            sparsity: sparsity(rng),
            row0: log_uniform(rng, 1, 1 << 16) - 1,
            vector_seed: seed32(rng),
            ..s.clone()
        }),
        CosimSpec::Bsbu(s) => CosimSpec::Bsbu(BsbuSpec {
            vector_seed: seed32(rng),
            ..s.clone()
        }),
        CosimSpec::Dce(s) => {
            let sizes = s.sizes.unwrap_or_else(|| {
                DceSizes::fitting(s.lanes, &[s.layer]).expect("a drawn layer fits")
            });
            let max_ch = sizes.chans;
            let max_map = (sizes.map as f64).sqrt().ceil() as usize;
            let mut layer = s.layer;
            for _ in 0..32 {
                if let Some(l) = draw_layer(rng, s.lanes, max_ch, MAX_MAP.min(max_map * 2)) {
                    if sizes.check(&l).is_ok() {
                        layer = l;
                        break;
                    }
                }
            }
            CosimSpec::Dce(DceSpec {
                layer,
                generator: rng.bit(),
                seed: seed32(rng),
                sizes: Some(sizes),
                ..s.clone()
            })
        }
        CosimSpec::Upd(s) => CosimSpec::Upd(UpdSpec {
            seed: seed32(rng),
            ..s.clone()
        }),
    };
    sized(spec, rng, lim)
}

/// A fixed set of designs per unit (drawn from one seed), so that a long soak reuses
/// cached Verilator builds.
#[derive(Clone, Debug)]
pub struct Pool {
    /// Designs per unit.
    pub designs: BTreeMap<UnitKind, Vec<CosimSpec>>,
}

impl Pool {
    /// `per_unit` designs for each of `kinds`, drawn from `seed`.
    pub fn new(kinds: &[UnitKind], per_unit: usize, seed: u64, lim: &Limits) -> Pool {
        let mut rng = Rng::seed_from_u64(seed ^ 0x9001);
        let designs = kinds
            .iter()
            .map(|&k| (k, (0..per_unit).map(|_| draw(k, &mut rng, lim)).collect()))
            .collect();
        Pool { designs }
    }
}

/// The result of running one case.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Vectors run (corners included).
    pub vectors: usize,
    /// Simulated cycles.
    pub cycles: u64,
    /// Failed checks.
    pub mismatches: usize,
    /// What failed (the first mismatch, with unit, vector, cycle, expected and actual
    /// value, and the waveform), if anything did.
    pub failure: Option<String>,
    /// The first failing vector (pass index, corners included).
    pub failing_vector: Option<usize>,
    /// Build seconds (0: the model came from the cache).
    pub build_seconds: f64,
    /// Simulation seconds.
    pub sim_seconds: f64,
}

/// Run `spec` (with the mutant `mutant`, if given) on Verilator. A failed check, a
/// traffic count that differs from golden, or a hang is a failure in the outcome; an
/// `Err` means the case could not be built or run at all.
pub fn check(
    spec: &CosimSpec,
    mutant: Option<&str>,
    cache: &Path,
    work: &Path,
) -> Result<Outcome, TbError> {
    check_unit(spec.unit()?, mutant, cache, work)
}

/// [`check`] on a case's unit, already built.
fn check_unit(
    unit: Box<dyn Unit>,
    mutant: Option<&str>,
    cache: &Path,
    work: &Path,
) -> Result<Outcome, TbError> {
    let mutated;
    let u: &dyn Unit = match mutant {
        Some(m) => {
            mutated = Mutated::new(unit.as_ref(), m)?;
            &mutated
        }
        None => unit.as_ref(),
    };
    let mut o = Outcome {
        vectors: 0,
        cycles: 0,
        mismatches: 0,
        failure: None,
        failing_vector: None,
        build_seconds: 0.0,
        sim_seconds: 0.0,
    };
    for i in 0..u.cases() {
        let r = match run_case(u, i, SimKind::Verilator, Stall::SOME, cache, work) {
            Ok(r) => r,
            Err(TbError::Sim(e @ sim::SimError::Timeout { .. })) => {
                o.mismatches += 1;
                o.failure = Some(format!("{}: {e}", u.name()));
                return Ok(o);
            }
            Err(e) => return Err(e),
        };
        o.vectors += r.vectors;
        o.cycles += r.stats.cycles;
        o.mismatches += r.stats.mismatches;
        o.build_seconds += r.stats.build_seconds;
        o.sim_seconds += r.stats.sim_seconds;
        let mut problems = verdict(&[&r.stats]);
        problems.extend(r.traffic_problem());
        if !problems.is_empty() && o.failure.is_none() {
            o.failing_vector = r.stats.first.as_ref().map(|m| m.vector);
            o.failure = Some(format!("{}\n{}", r.summary(), problems.join("\n")));
        }
    }
    Ok(o)
}

/// A shrunk failure.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The minimal failing case found.
    pub spec: CosimSpec,
    /// Its failure.
    pub failure: String,
    /// Cases run while shrinking.
    pub runs: usize,
    /// Simplifications accepted, in order.
    pub steps: Vec<String>,
    /// True when every one-step simplification of `spec` was tried and passes (a
    /// local minimum); false when the run budget ran out first.
    pub minimal: bool,
}

/// Halve `x` towards `lo`, keeping it a multiple of `m`.
fn half(x: usize, lo: usize, m: usize) -> usize {
    ((x / 2) / m * m).max(lo)
}

/// A conv-engine spec whose sizes are the smallest that fit its layer says so with
/// `sizes: None` (one spelling per design, so the shrinker does not go round in
/// circles between the two).
fn canonical(c: CosimSpec) -> CosimSpec {
    match c {
        CosimSpec::Dce(mut s) => {
            if s.sizes.is_some() && s.sizes == DceSizes::fitting(s.lanes, &[s.layer]).ok() {
                s.sizes = None;
            }
            CosimSpec::Dce(s)
        }
        c => c,
    }
}

/// One-step simplifications of `spec`, cheapest first: the ones that keep the
/// design (fewer vectors, zero seeds, a smaller layer on the same engine) before the
/// ones that need another build (lanes, sizes, S's shape).
fn candidates(spec: &CosimSpec, failing_vector: Option<usize>) -> Vec<(String, CosimSpec)> {
    let mut out: Vec<(String, CosimSpec)> = Vec::new();
    let n = spec.vectors();
    let mut ns = vec![0, n / 2, n.saturating_sub(1)];
    if let Some(v) = failing_vector {
        ns.insert(1, (v + 1).saturating_sub(spec.corners()));
    }
    for m in ns {
        if m < n {
            out.push((format!("vectors {n} -> {m}"), spec.with_vectors(m)));
        }
    }
    let mut push = |what: String, c: CosimSpec| {
        let c = canonical(c);
        if c != canonical(spec.clone()) && !out.iter().any(|(_, x)| *x == c) {
            out.push((what, c));
        }
    };
    match spec {
        CosimSpec::Bsbu(s) => {
            let b = |f: &dyn Fn(&mut BsbuSpec)| {
                let mut c = s.clone();
                f(&mut c);
                CosimSpec::Bsbu(c)
            };
            push("vector seed -> 0".into(), b(&|c| c.vector_seed = 0));
            // Run time in generator mode; a new S (a build) when stored.
            push("seed -> 0".into(), b(&|c| c.seed = 0));
            push("row0 -> 0".into(), b(&|c| c.row0 = 0));
            push("row0 halved".into(), b(&|c| c.row0 /= 2));
            push("sparsity -> 0".into(), b(&|c| c.sparsity = 0.0));
            push(
                "sparsity halved".into(),
                b(&|c| c.sparsity = (c.sparsity * 50.0).floor() / 100.0),
            );
            for (what, f) in [
                (
                    "lanes -> 1",
                    (&|c: &mut BsbuSpec| c.lanes = 1) as &dyn Fn(&mut BsbuSpec),
                ),
                ("lanes halved", &|c| c.lanes = half(c.lanes, 1, 1)),
                ("lanes - 1", &|c| c.lanes = c.lanes.saturating_sub(1).max(1)),
                ("rows -> 1", &|c| c.rows = 1),
                ("rows halved", &|c| c.rows = half(c.rows, 1, 1)),
                ("rows - 1", &|c| c.rows = c.rows.saturating_sub(1).max(1)),
                ("cols -> 1", &|c| c.cols = 1),
                ("cols halved", &|c| c.cols = half(c.cols, 1, 1)),
                ("cols - 1", &|c| c.cols = c.cols.saturating_sub(1).max(1)),
                ("shift -> 0", &|c| c.shift = 0),
                ("shift - 1", &|c| c.shift = c.shift.saturating_sub(1)),
            ] {
                push(what.into(), b(f));
            }
        }
        CosimSpec::Dce(s) => {
            // Pin the engine first, so the layer shrinks without a build.
            let pinned = s
                .sizes
                .or_else(|| DceSizes::fitting(s.lanes, &[s.layer]).ok());
            // A layer that outgrows the pinned engine in some buffer (up -> 1 makes
            // the source map larger) gets the smallest engine that fits it.
            let l = |f: &dyn Fn(&mut DceLayer)| {
                let mut c = s.clone();
                f(&mut c.layer);
                c.sizes = pinned.filter(|z| z.check(&c.layer).is_ok());
                CosimSpec::Dce(c)
            };
            let p = s.lanes;
            for (what, f) in [
                (
                    "groups -> 1",
                    (&|x: &mut DceLayer| x.groups = 1) as &dyn Fn(&mut DceLayer),
                ),
                ("groups halved", &|x| x.groups = (x.groups / 2).max(1)),
                ("source channels -> G", &|x| x.cs = x.groups),
                ("source channels halved", &|x| {
                    x.cs = half(x.cs, x.groups, x.groups)
                }),
                ("target channels -> G*P", &|x| x.ct = x.groups * p),
                ("target channels halved", &|x| {
                    x.ct = half(x.ct, x.groups * p, x.groups * p)
                }),
                ("up -> 1", &|x| x.up = 1),
                ("height -> up", &|x| x.h = x.up),
                ("height halved", &|x| x.h = half(x.h, x.up, x.up)),
                ("width -> up", &|x| x.w = x.up),
                ("width halved", &|x| x.w = half(x.w, x.up, x.up)),
                ("k -> 1", &|x| x.k = 1),
                ("k - 2", &|x| x.k = x.k.saturating_sub(2).max(1)),
                ("dilation -> 1", &|x| x.dil = 1),
                ("dilation halved", &|x| x.dil = (x.dil / 2).max(1)),
                ("shift2 -> 0", &|x| x.shift2 = 0),
                ("shift2 - 1", &|x| x.shift2 = x.shift2.saturating_sub(1)),
                ("shift1 -> 0", &|x| x.shift1 = 0),
                ("shift1 - 1", &|x| x.shift1 = x.shift1.saturating_sub(1)),
            ] {
                push(what.into(), l(f));
            }
            let c = |f: &dyn Fn(&mut DceSpec)| {
                let mut c = s.clone();
                c.sizes = pinned;
                f(&mut c);
                CosimSpec::Dce(c)
            };
            push("seed -> 0".into(), c(&|c| c.seed = 0));
            push("stored weights".into(), c(&|c| c.generator = false));
            // Another engine: the smallest that fits, then fewer lanes.
            let fitted = |f: &dyn Fn(&mut DceSpec)| {
                let mut c = s.clone();
                c.sizes = None;
                f(&mut c);
                CosimSpec::Dce(c)
            };
            push("sizes fitted to the layer".into(), fitted(&|_| {}));
            push("lanes -> 1".into(), fitted(&|c| c.lanes = 1));
            push(
                "lanes halved".into(),
                fitted(&|c| c.lanes = half(c.lanes, 1, 1)),
            );
            push(
                "lanes - 1".into(),
                fitted(&|c| c.lanes = c.lanes.saturating_sub(1).max(1)),
            );
        }
        CosimSpec::Upd(s) => {
            let c = |f: &dyn Fn(&mut UpdSpec)| {
                let mut c = s.clone();
                f(&mut c);
                CosimSpec::Upd(c)
            };
            push("seed -> 0".into(), c(&|c| c.seed = 0));
            push("lanes -> 1".into(), c(&|c| c.lanes = 1));
            push("lanes halved".into(), c(&|c| c.lanes = half(c.lanes, 1, 1)));
            push(
                "lanes - 1".into(),
                c(&|c| c.lanes = c.lanes.saturating_sub(1).max(1)),
            );
        }
    }
    out
}

/// Shrink the failing case `spec` (whose run gave `first`): repeatedly take the
/// first one-step simplification ([`candidates`]) that still fails, until none does
/// or `max_runs` cases have run. A simplification that cannot be built (a parameter
/// out of range, a layer that does not fit, a mutant absent from that design) counts
/// as passing.
pub fn shrink(
    spec: &CosimSpec,
    first: &Outcome,
    mutant: Option<&str>,
    cache: &Path,
    work: &Path,
    max_runs: usize,
) -> Shrunk {
    let mut cur = spec.clone();
    let mut failure = first.failure.clone().unwrap_or_default();
    let mut fv = first.failing_vector;
    let (mut runs, mut steps) = (0, Vec::new());
    'outer: loop {
        for (what, c) in candidates(&cur, fv) {
            if runs >= max_runs {
                return Shrunk {
                    spec: cur,
                    failure,
                    runs,
                    steps,
                    minimal: false,
                };
            }
            let Ok(unit) = c.unit() else {
                continue;
            };
            runs += 1;
            if let Ok(o) = check_unit(unit, mutant, cache, work) {
                if let Some(f) = o.failure {
                    steps.push(what);
                    cur = c;
                    failure = f;
                    fv = o.failing_vector;
                    continue 'outer;
                }
            }
        }
        return Shrunk {
            spec: cur,
            failure,
            runs,
            steps,
            minimal: true,
        };
    }
}

/// How long a soak runs: it stops at the first limit reached.
#[derive(Clone, Copy, Debug, Default)]
pub struct Budget {
    /// Wall time.
    pub time: Option<Duration>,
    /// Cases in all.
    pub cases: Option<usize>,
    /// Vectors per unit: a unit that reached it stops drawing.
    pub vectors_per_unit: Option<u64>,
}

/// What a soak should run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Units, visited in turn.
    pub kinds: Vec<UnitKind>,
    /// Seed of the case draws (case `n` draws from `seed` and `n`).
    pub seed: u64,
    /// Designs per unit, drawn from `pool_seed` (cases then draw run-time parameters
    /// on them); None: a fresh design for every case.
    pub pool: Option<(u64, usize)>,
    /// Per-case limits.
    pub limits: Limits,
    /// When to stop.
    pub budget: Budget,
    /// Run a mutant of the (single) unit instead of its design.
    pub mutant: Option<String>,
    /// Most cases a shrink may run.
    pub shrink_runs: usize,
}

/// One unit's totals.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Cases run.
    pub cases: usize,
    /// Cases skipped because the mutant under test is absent from their design.
    pub skipped: usize,
    /// Distinct designs.
    pub designs: BTreeSet<String>,
    /// Vectors run (corners included).
    pub vectors: u64,
    /// Simulated cycles.
    pub cycles: u64,
    /// Failed checks.
    pub mismatches: u64,
    /// Verilator builds (cache misses) and their seconds.
    pub builds: usize,
    /// Build seconds.
    pub build_seconds: f64,
    /// Simulation seconds.
    pub sim_seconds: f64,
}

/// A failing case and its shrunk form.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The case as drawn.
    pub original: CosimSpec,
    /// Its failure.
    pub original_failure: String,
    /// The shrunk case.
    pub shrunk: Shrunk,
    /// The ready-to-run command of the shrunk case.
    pub command: String,
}

/// What a soak did.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    /// Per unit.
    pub tallies: BTreeMap<UnitKind, Tally>,
    /// Failures (a unit stops at its first).
    pub failures: Vec<Failure>,
    /// Wall seconds.
    pub seconds: f64,
}

impl SoakReport {
    /// The per-unit table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<6} {:>7} {:>8} {:>12} {:>14} {:>10} {:>7} {:>9} {:>9} {:>11}\n",
            "unit",
            "cases",
            "designs",
            "vectors",
            "cycles",
            "mismatches",
            "builds",
            "build s",
            "sim s",
            "vectors/s"
        );
        for (k, t) in &self.tallies {
            s.push_str(&format!(
                "{:<6} {:>7} {:>8} {:>12} {:>14} {:>10} {:>7} {:>9.1} {:>9.1} {:>11.0}\n",
                k.name(),
                t.cases,
                t.designs.len(),
                t.vectors,
                t.cycles,
                t.mismatches,
                t.builds,
                t.build_seconds,
                t.sim_seconds,
                t.vectors as f64 / self.seconds.max(1e-9)
            ));
        }
        for (k, t) in self.tallies.iter().filter(|(_, t)| t.skipped > 0) {
            s.push_str(&format!(
                "{}: {} case(s) skipped: the mutant's code is not in their design\n",
                k.name(),
                t.skipped
            ));
        }
        s
    }
}

/// Cycle through random cases of `cfg.kinds` until the budget is spent (a time
/// budget only once every unit has run a case). A failing case is shrunk and
/// recorded, and its unit stops; the other units go on.
/// `progress` gets one line per finished case.
pub fn soak(
    cfg: &SoakConfig,
    cache: &Path,
    work: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<SoakReport, TbError> {
    if cfg.mutant.is_some() && cfg.kinds.len() != 1 {
        return Err(TbError::Mutation(format!(
            "a mutant belongs to one unit; {} units were given",
            cfg.kinds.len()
        )));
    }
    if let (Some(m), [kind]) = (&cfg.mutant, cfg.kinds.as_slice()) {
        use crate::mutation::{BSBU_GEN_MUTANTS, BSBU_MUTANTS, DCE_MUTANTS, UPD_MUTANTS};
        let lists: &[&[crate::mutation::Mutant]] = match kind {
            UnitKind::Bsbu => &[BSBU_MUTANTS, BSBU_GEN_MUTANTS],
            UnitKind::Dce => &[DCE_MUTANTS],
            UnitKind::Upd => &[UPD_MUTANTS],
        };
        let names: BTreeSet<&str> = lists
            .iter()
            .flat_map(|l| l.iter().map(|m| m.name))
            .collect();
        if !names.contains(m.as_str()) {
            return Err(TbError::Mutation(format!(
                "mutant = {m} is not a mutant of {}; valid: {}",
                kind.name(),
                names.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let start = Instant::now();
    let pool = cfg
        .pool
        .map(|(seed, k)| Pool::new(&cfg.kinds, k.max(1), seed, &cfg.limits));
    let mut report = SoakReport::default();
    let mut live: Vec<UnitKind> = cfg.kinds.clone();
    let mut n: u64 = 0;
    while !live.is_empty() {
        // Time runs out only once every unit has had a case (the first cases wait
        // for builds); the case count is exact.
        let all_ran = cfg.kinds.iter().all(|k| report.tallies.contains_key(k));
        if (all_ran && cfg.budget.time.is_some_and(|t| start.elapsed() >= t))
            || cfg.budget.cases.is_some_and(|c| n as usize >= c)
        {
            break;
        }
        let kind = live[(n as usize) % live.len()];
        let mut rng = Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n);
        n += 1;
        let spec = match &pool {
            Some(p) => {
                let designs = &p.designs[&kind];
                let d = &designs[rng.below(designs.len() as u64) as usize];
                redraw(d, &mut rng, &cfg.limits)
            }
            None => draw(kind, &mut rng, &cfg.limits),
        };
        let o = match check(&spec, cfg.mutant.as_deref(), cache, work) {
            Ok(o) => o,
            // The fault's code is not in this design (a lane fault on one lane).
            Err(TbError::Mutation(m)) if cfg.mutant.is_some() => {
                report.tallies.entry(kind).or_default().skipped += 1;
                progress(&format!("case {n} {}: skipped: {m}: {spec}", kind.name()));
                continue;
            }
            Err(e) => return Err(e),
        };
        let t = report.tallies.entry(kind).or_default();
        t.cases += 1;
        t.designs.insert(spec.design_key());
        t.vectors += o.vectors as u64;
        t.cycles += o.cycles;
        t.mismatches += o.mismatches as u64;
        if o.build_seconds > 0.0 {
            t.builds += 1;
        }
        t.build_seconds += o.build_seconds;
        t.sim_seconds += o.sim_seconds;
        progress(&format!(
            "case {n} {}: {} vectors, {} cycles, mismatches {}: {spec}",
            kind.name(),
            o.vectors,
            o.cycles,
            o.mismatches
        ));
        if let Some(f) = &o.failure {
            progress(&format!("FAILED: {f}\nshrinking ..."));
            let shrunk = shrink(
                &spec,
                &o,
                cfg.mutant.as_deref(),
                cache,
                work,
                cfg.shrink_runs,
            );
            let command = shrunk.spec.command(cfg.mutant.as_deref());
            report.failures.push(Failure {
                original: spec,
                original_failure: f.clone(),
                shrunk,
                command,
            });
            live.retain(|&k| k != kind);
        }
        if let Some(v) = cfg.budget.vectors_per_unit {
            if t_vectors(&report, kind) >= v {
                live.retain(|&k| k != kind);
            }
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn t_vectors(r: &SoakReport, k: UnitKind) -> u64 {
    r.tallies.get(&k).map_or(0, |t| t.vectors)
}
