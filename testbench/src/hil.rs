//! Hardware-in-the-loop training: a config trains for N steps with the golden model
//! doing the forward pass and the loss, and the training's backward work on
//! Verilated RTL:
//! - every DFA error propagation of a DFA step: conv paths on the dce ([`crate::dce`]),
//!   dense paths (the classifier module's, from e_L) on the bsbu ([`crate::bsbu`]),
//!   256-row tile by tile; the unit's words are the path's error, ReLU mask included,
//!   before the trainer normalizes it;
//! - every weight update on the update unit ([`crate::upd`]): the trainer hands each
//!   parameter tensor's θ, v_bp, v_dfa and gradient to the unit and takes the unit's
//!   output words as its new state.
//!
//! One model per unit is built once (cached) and reprogrammed between passes, never
//! rebuilt: the dce by its register and weight writes when the path changes, the
//! update unit by its coefficient registers, the generator-mode bsbu by its seed, row
//! base and threshold registers (one model runs every 256-row tile of a dense path).
//! The stored-weight bsbu holds its S in ROM, so there each tile of a dense path is
//! its own model, built once for the run.
//! BP steps propagate by backprop in the golden model (BP is not a DFA path).
//!
//! Every path's words are compared with the golden model's for the same input, and
//! every step's state with the golden optimizer run from the same state, so a
//! difference is named at once by step, sample, path and word, or by step, tensor and
//! word ([`HilReport::first_diff`]); at the end the state's checksum must equal an
//! all-golden run's.

use std::path::Path;
use std::time::Instant;

use golden::bsbu::FPrime;
use golden::capture::{dense_tiles, from_path};
use golden::cnn::num::Fx;
use golden::cnn::train::{PathHook, Trainer};
use golden::dce::DceSizes;
use golden::format::ErrorFx;
use golden::update::{HwCoefs, StepKind, WordState};
use rtl::Emitted;
use sim::stream::{Session, Stall};

use crate::bsbu::{BsbuUnit, Captured};
use crate::dce::{sequence, DceCase, DceUnit, DceVector, Step};
use crate::mutation::Mutated;
use crate::upd::{self, UpdUnit, UpdVector};
use crate::{TbError, Unit};

/// A unit of the loop, for choosing where a mutant goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HilUnit {
    /// The update unit.
    Upd,
    /// The conv error-propagation engine.
    Dce,
    /// The binary sparse backward-weight unit.
    Bsbu,
}

impl HilUnit {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            HilUnit::Upd => "upd",
            HilUnit::Dce => "dce",
            HilUnit::Bsbu => "bsbu",
        }
    }

    /// Parse `upd`, `dce` or `bsbu`.
    pub fn parse(s: &str) -> Result<Self, TbError> {
        [HilUnit::Upd, HilUnit::Dce, HilUnit::Bsbu]
            .into_iter()
            .find(|u| u.name() == s)
            .ok_or_else(|| {
                TbError::Mutation(format!(
                    "unit = {s} is not a unit of the loop; valid: upd, dce, bsbu"
                ))
            })
    }
}

/// What a hardware-in-the-loop run does.
#[derive(Clone, Debug)]
pub struct HilOptions {
    /// Steps to train, from step 0 (at least 1).
    pub steps: usize,
    /// Keep only the first N training images (IDX data).
    pub train_limit: Option<usize>,
    /// Lanes of the update unit (1..=8).
    pub upd_lanes: usize,
    /// Lanes of the dce and the bsbu.
    pub path_lanes: usize,
    /// Run the DFA error propagation on the dce and the bsbu (false: golden).
    pub propagation: bool,
    /// A faulty unit (its mutant's name), to see how a difference is reported.
    pub mutant: Option<(HilUnit, String)>,
    /// Print a line per step to stderr (long runs).
    pub progress: bool,
}

impl HilOptions {
    /// `steps` steps with every unit on 4 lanes, propagation on the RTL.
    pub fn new(steps: usize) -> Self {
        HilOptions {
            steps,
            train_limit: None,
            upd_lanes: 4,
            path_lanes: 4,
            propagation: true,
            mutant: None,
            progress: false,
        }
    }
}

/// One unit's share of a run.
#[derive(Clone, Debug, Default)]
pub struct UnitUse {
    /// Unit name.
    pub unit: &'static str,
    /// Lanes.
    pub lanes: usize,
    /// Models built or loaded (one per unit; one per tile for the stored-weight bsbu).
    pub models: usize,
    /// Passes streamed.
    pub passes: usize,
    /// Cycles simulated, each configuration write counted as one.
    pub cycles: u64,
    /// Of them, configuration writes (registers, and the dce's stored weights).
    pub cfg_writes: u64,
    /// Wall time inside the models (s).
    pub seconds: f64,
    /// Verilator build time (0 when cached).
    pub build_seconds: f64,
    /// The bound: ideal compute cycles of the passes (dce: taps / P; bsbu: the
    /// busiest lane's entries; upd: words / P per step).
    pub ideal_cycles: f64,
}

impl UnitUse {
    /// Utilization over the run: the bound over the cycles simulated.
    pub fn utilization(&self) -> f64 {
        self.ideal_cycles / self.cycles.max(1) as f64
    }
}

/// Outcome of a hardware-in-the-loop run.
#[derive(Clone, Debug)]
pub struct HilReport {
    /// Config name.
    pub config: String,
    /// Update-unit lanes.
    pub lanes: usize,
    /// Steps trained (fewer than asked when a step differed).
    pub steps: usize,
    /// Steps that were BP and DFA steps.
    pub kinds: [usize; 2],
    /// Parameter words updated per step.
    pub words_per_step: usize,
    /// The first difference between the hardware and the golden model: (step,
    /// sample, path, word, golden and hardware) for an error, (step, kind, tensor,
    /// word, which value, golden and hardware) for an update; None if none.
    pub first_diff: Option<String>,
    /// The unit that produced the first difference (`upd`, `dce`, `bsbu`).
    pub first_diff_unit: Option<&'static str>,
    /// Checksum of θ, v_bp, v_dfa after the run with the hardware in the loop.
    pub hw_checksum: u64,
    /// The same after the all-golden run of the same steps (None when the run stopped
    /// at a difference).
    pub golden_checksum: Option<u64>,
    /// Wall time of the hardware run (s), golden forward passes included.
    pub wall_seconds: f64,
    /// Where each DFA path ran (`t0 <- s2: dce`, ...); empty when propagation is golden.
    pub paths: Vec<String>,
    /// Each unit's share (update unit first).
    pub units: Vec<UnitUse>,
    /// Backward-weight bits the path units store (dce weight memory, bsbu entry
    /// ROMs; 0 for generated weights).
    pub weight_bits_stored: u64,
    /// Backward-weight bits the path units read over the run.
    pub weight_bits_read: u64,
    /// The designs that ran, for synthesis: the update unit, the dce and the first
    /// bsbu tile (configuration text, design; mutants never included).
    pub designs: Vec<(String, rtl::Emitted)>,
}

impl HilReport {
    /// Wall time inside the Verilated models (s), all units.
    pub fn rtl_seconds(&self) -> f64 {
        self.units.iter().map(|u| u.seconds).sum()
    }

    /// Update-unit cycles over the run (its register writes included).
    pub fn upd_cycles(&self) -> u64 {
        self.units
            .iter()
            .filter(|u| u.unit == "upd")
            .map(|u| u.cycles)
            .sum()
    }

    /// Verilator build time of all models (0 when cached).
    pub fn build_seconds(&self) -> f64 {
        self.units.iter().map(|u| u.build_seconds).sum()
    }

    /// Whether the hardware run ended bit-identical to the golden one.
    pub fn identical(&self) -> bool {
        self.first_diff.is_none() && self.golden_checksum == Some(self.hw_checksum)
    }

    /// The report as text: the verdict line first.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let verdict = match (&self.first_diff, self.golden_checksum) {
            (Some(d), _) => format!("DIFFERS: {d}"),
            (None, Some(g)) if g == self.hw_checksum => format!(
                "IDENTICAL: state checksum {:016x} (hardware) = {g:016x} (all golden)",
                self.hw_checksum
            ),
            (None, g) => format!(
                "DIFFERS: state checksum {:016x} (hardware) != {} (all golden)",
                self.hw_checksum,
                g.map_or("none".into(), |g| format!("{g:016x}"))
            ),
        };
        let steps = self.steps.max(1) as f64;
        let on_hw = if self.paths.is_empty() {
            "DFA error propagation in the golden model".to_string()
        } else {
            format!(
                "every DFA error propagation on the RTL ({})",
                self.paths.join(", ")
            )
        };
        let mut t = format!(
            "{verdict}\n\
             hardware in the loop: {} steps of {} ({} BP, {} DFA); every weight update on the Verilated update unit (P = {}, {} words per step); {on_hw}\n\
             wall {:.2} s, in the RTL {:.2} s ({:.1}%), build {:.1} s",
            self.steps,
            self.config,
            self.kinds[0],
            self.kinds[1],
            self.lanes,
            self.words_per_step,
            self.wall_seconds,
            self.rtl_seconds(),
            100.0 * self.rtl_seconds() / self.wall_seconds.max(1e-9),
            self.build_seconds(),
        );
        if !self.paths.is_empty() {
            let _ = write!(
                t,
                "\nbackward weights: {} bits stored, {:.0} bits read per DFA step",
                self.weight_bits_stored,
                self.weight_bits_read as f64 / self.kinds[1].max(1) as f64
            );
        }
        for u in &self.units {
            let (per, n) = if u.unit == "upd" {
                ("training step", steps)
            } else {
                ("DFA step", self.kinds[1].max(1) as f64)
            };
            let _ = write!(
                t,
                "\n  {:<4} P = {}: {} model(s), {} passes, {} cycles ({} of them configuration writes), {:.0} cycles per {per}, utilization {:.1}% of the bound, {:.2} s in the RTL",
                u.unit,
                u.lanes,
                u.models,
                u.passes,
                u.cycles,
                u.cfg_writes,
                u.cycles as f64 / n,
                100.0 * u.utilization(),
                u.seconds
            );
            if u.unit == "upd" {
                let _ = write!(
                    t,
                    " (bound {} = words / P)",
                    self.words_per_step.div_ceil(self.lanes)
                );
            }
        }
        t
    }
}

/// Where one DFA path of the net runs.
enum PathRun {
    /// A conv path on the dce: its case (layer and weights; the vector is set per
    /// pass).
    Dce(DceCase),
    /// A dense path on the bsbu, tile by tile: (rows, the tile's unit, its model's
    /// index in the bsbu models).
    Bsbu(Vec<(std::ops::Range<usize>, BsbuUnit, usize)>),
}

/// The design of `unit`, with the mutant when it is aimed at `which`.
fn design_of(
    unit: &dyn Unit,
    which: HilUnit,
    mutant: &Option<(HilUnit, String)>,
) -> Result<Emitted, TbError> {
    match mutant {
        Some((u, name)) if *u == which => Ok(Mutated::new(unit, name)?.design),
        _ => Ok(unit.design().clone()),
    }
}

/// The entry-ROM bits of a bsbu tile (each read once per pass): its packed entries,
/// or none in generator mode.
fn bsbu_weight_bits(u: &BsbuUnit) -> u64 {
    if u.scenario.gen.is_some() {
        return 0;
    }
    let entries: usize =
        u.s.lane_programs(u.scenario.params.lanes)
            .iter()
            .map(Vec::len)
            .sum();
    (entries * golden::bsbu::ENTRY_BITS) as u64
}

/// The first word where two error vectors differ: (word, golden, hardware).
fn first_word_diff(gold: &[i16], hw: &[i16]) -> Option<(usize, i16, i16)> {
    (0..gold.len())
        .find(|&j| gold[j] != hw[j])
        .map(|j| (j, gold[j], hw[j]))
}

/// The first word where two trainers' optimizer state differs: (tensor name, word,
/// which, golden, hardware).
fn first_difference(
    gold: &Trainer<Fx>,
    hw: &Trainer<Fx>,
) -> Option<(String, usize, &'static str, i32, i32)> {
    let nw = gold.net.w.len();
    let n = nw + gold.net.b.len();
    for k in 0..n {
        let name = if k < nw {
            format!("w{k}")
        } else {
            format!("b{}", k - nw)
        };
        let pick = |t: &Trainer<Fx>| -> [Vec<i32>; 3] {
            let theta = if k < nw {
                &t.net.w[k]
            } else {
                &t.net.b[k - nw]
            };
            [theta.clone(), t.opt.v_bp[k].clone(), t.opt.v_dfa[k].clone()]
        };
        let (g, h) = (pick(gold), pick(hw));
        for (which, (a, b)) in ["theta", "v_bp", "v_dfa"].into_iter().zip(g.iter().zip(&h)) {
            if let Some(j) = (0..a.len()).find(|&j| a[j] != b[j]) {
                return Some((name, j, which, a[j], b[j]));
            }
        }
    }
    None
}

/// Train config `file` as `o` says with the hardware in the loop (see the module
/// docs), checking each path pass and each step against the golden model and the end
/// against an all-golden run.
pub fn train_on_hardware(file: &Path, o: &HilOptions, cache: &Path) -> Result<HilReport, TbError> {
    if o.steps == 0 {
        return Err(golden::GoldenError::out_of_range("steps", 0, "1 or more").into());
    }
    let t0 = Instant::now();
    let mut exp = crate::dce::experiment(file, o.train_limit)?;
    let last = crate::dce::run_steps(&exp, Some(&[o.steps - 1]))?[0];
    let threads = exp.config.raw.threads;
    let config = exp.config.raw.name.clone();

    // The update unit.
    let upd_unit = UpdUnit::new(o.upd_lanes, 0, 1)?;
    let mut designs = vec![(upd_unit.config(), upd_unit.design().clone())];
    let mut session = Session::open(&design_of(&upd_unit, HilUnit::Upd, &o.mutant)?, cache)?;

    // The path units: one dce for every conv path, the bsbu tiles of every dense one.
    let net = &exp.trainer.net;
    let mut runs: Vec<PathRun> = Vec::new();
    let mut paths = Vec::new();
    let mut dce_models = 0;
    let mut dce: Option<(DceSizes, Session)> = None;
    let mut bsbu: Vec<(String, Session)> = Vec::new();
    if o.propagation {
        for p in &net.paths {
            let name = format!("t{} <- s{}", p.target, p.source);
            if let Some(r) = from_path(p) {
                let (layer, weights) = r?;
                runs.push(PathRun::Dce(DceCase {
                    name: format!("{config}_t{}_s{}", p.target, p.source),
                    layer,
                    weights,
                    vectors: Vec::new(),
                }));
                paths.push(format!("{name}: dce"));
            } else if let Some(tiles) = dense_tiles(p) {
                let mut v = Vec::new();
                let mut gen = false;
                for tile in tiles? {
                    gen |= tile.gen.is_some();
                    let unit = BsbuUnit::of_matrix(o.path_lanes, &tile.s, tile.shift, tile.gen)?;
                    if !designs.iter().any(|(_, d)| d.unit == "bsbu") {
                        designs.push((unit.config(), unit.design().clone()));
                    }
                    let design = design_of(&unit, HilUnit::Bsbu, &o.mutant)?;
                    // Tiles whose designs are the same share a model (generator mode:
                    // every full tile; the registers pick the tile).
                    let m = match bsbu.iter().position(|(v, _)| *v == design.verilog) {
                        Some(m) => m,
                        None => {
                            let model = Session::open(&design, cache)?;
                            bsbu.push((design.verilog, model));
                            bsbu.len() - 1
                        }
                    };
                    v.push((tile.rows, unit, m));
                }
                paths.push(format!(
                    "{name}: bsbu{} x{}",
                    if gen { " (generator)" } else { "" },
                    v.len()
                ));
                runs.push(PathRun::Bsbu(v));
            } else {
                return Err(TbError::Golden(golden::GoldenError::BadMatrix(format!(
                    "{config}: path {name} has real (not binary) backward weights; no unit runs it (set backward.binary = true, or train without --hw)"
                ))));
            }
        }
        let cases: Vec<DceCase> = runs
            .iter()
            .filter_map(|r| match r {
                PathRun::Dce(c) => Some(c.clone()),
                PathRun::Bsbu(_) => None,
            })
            .collect();
        if !cases.is_empty() {
            let unit = DceUnit::new(o.path_lanes, cases)?;
            designs.push((unit.config(), unit.design().clone()));
            let model = Session::open(&design_of(&unit, HilUnit::Dce, &o.mutant)?, cache)?;
            dce_models = 1;
            dce = Some((unit.sizes, model));
        }
    }
    let n_paths = net.paths.len();

    let mut report = HilReport {
        config,
        lanes: o.upd_lanes,
        steps: 0,
        kinds: [0, 0],
        words_per_step: 0,
        first_diff: None,
        first_diff_unit: None,
        hw_checksum: 0,
        golden_checksum: None,
        designs,
        wall_seconds: 0.0,
        paths,
        units: Vec::new(),
        weight_bits_stored: 0,
        weight_bits_read: 0,
    };
    // The weight bits each path's pass reads, and what the units store.
    let pass_bits: Vec<u64> = runs
        .iter()
        .map(|r| match r {
            PathRun::Dce(c) => golden::dce::golden_traffic(&c.layer, &c.weights).weight_bits,
            PathRun::Bsbu(tiles) => tiles.iter().map(|(_, u, _)| bsbu_weight_bits(u)).sum(),
        })
        .collect();
    for r in &runs {
        report.weight_bits_stored += match r {
            PathRun::Dce(c) if c.weights.gen.is_none() => {
                (c.weights.d1.len() + c.weights.d2.as_ref().map_or(0, Vec::len)) as u64
            }
            PathRun::Dce(_) => 0,
            PathRun::Bsbu(tiles) => tiles.iter().map(|(_, u, _)| bsbu_weight_bits(u)).sum(),
        };
    }
    let mut bits_read = 0u64;
    let mut upd_passes = 0;
    let (mut dce_passes, mut bsbu_passes) = (0, 0);
    let (mut dce_ideal, mut bsbu_ideal) = (0.0, 0.0);
    // The path the dce holds, and the update unit's registers (each written again
    // only when it changes).
    let mut dce_holds: Option<usize> = None;
    let mut programmed: Option<(StepKind, HwCoefs)> = None;
    let mut path_diff: Option<(&'static str, String)> = None;
    exp.train_steps_with(last, |t, s, batch| -> Result<(), TbError> {
        if report.first_diff.is_some() {
            return Ok(());
        }
        let before = t.clone();
        let mut words = 0;
        let mut kind_seen = StepKind::Bp;
        let mut calls = 0usize;
        let on_hw = !runs.is_empty();
        // A DFA path: on its unit, compared with the golden words it replaces.
        let mut hook = |k: usize, src: &[i16], active: &[bool], e: &mut [i16]| -> Result<(), TbError> {
            let sample = calls / n_paths;
            calls += 1;
            bits_read += pass_bits[k];
            let p = &before.net.paths[k];
            let (unit, hw): (&str, Vec<i16>) = match &mut runs[k] {
                PathRun::Dce(case) => {
                    let (sizes, model) = dce.as_mut().expect("a dce for the conv paths");
                    case.vectors = vec![DceVector {
                        tag: format!("step {s} sample {sample}"),
                        e_src: src.to_vec(),
                        mask: active.to_vec(),
                        expected: e.to_vec(),
                    }];
                    let steps = if dce_holds == Some(k) {
                        vec![Step::Vectors(case)]
                    } else {
                        vec![Step::Program(case), Step::Vectors(case)]
                    };
                    let mut v = sequence(sizes, &steps)?;
                    v.passes[0].compare = false;
                    let (_, out) = model.run(&v, Stall::NONE)?;
                    dce_holds = Some(k);
                    dce_passes += 1;
                    dce_ideal += case.layer.work() as f64 / o.path_lanes as f64;
                    ("dce", out.iter().map(|&w| w as i16).collect())
                }
                PathRun::Bsbu(tiles) => {
                    let mut hw = vec![0i16; e.len()];
                    for (rows, unit, m) in tiles.iter() {
                        let model = &mut bsbu[*m].1;
                        let c = Captured {
                            tag: format!("step {s} sample {sample} rows {}..{}", rows.start, rows.end),
                            e_l: src.iter().map(|&w| ErrorFx::from_bits(w)).collect(),
                            fprime: FPrime::Relu(active[rows.clone()].to_vec()),
                            expected: e[rows.clone()].iter().map(|&w| ErrorFx::from_bits(w)).collect(),
                        };
                        let mut v = unit.scenario.stream_of(&unit.s, &[c]);
                        v.passes[0].compare = false;
                        let (_, out) = model.run(&v, Stall::NONE)?;
                        for (j, w) in rows.clone().zip(out) {
                            hw[j] = w as i16;
                        }
                        bsbu_passes += 1;
                        bsbu_ideal += unit.ideal_per_vector(0);
                    }
                    ("bsbu", hw)
                }
            };
            if hw.len() != e.len() {
                return Err(TbError::Golden(golden::GoldenError::LengthMismatch {
                    what: "path output words",
                    expected: e.len(),
                    actual: hw.len(),
                }));
            }
            if path_diff.is_none() {
                if let Some((j, g, h)) = first_word_diff(e, &hw) {
                    path_diff = Some((unit, format!(
                        "step {s} (dfa), sample {sample}, path t{} <- s{} ({unit}), error word {j}: golden {g} ({:#06x}), hardware {h} ({:#06x})",
                        p.target, p.source, g as u16, h as u16
                    )));
                }
            }
            e.copy_from_slice(&hw);
            Ok(())
        };
        let hook: Option<&mut PathHook<'_, i16, TbError>> = if on_hw { Some(&mut hook) } else { None };
        t.train_step_hw(batch, threads, hook, &mut |kind, h, k, theta, vb, vd, g| {
            kind_seen = kind;
            let coefs = HwCoefs::new(h.eta.raw, h.alpha.raw, h.gamma.raw)?;
            let v = UpdVector {
                tag: format!("step {s} tensor {k}"),
                kind,
                coefs,
                state: (0..g.len())
                    .map(|j| WordState {
                        theta: theta[j],
                        v_bp: vb[j],
                        v_dfa: vd[j],
                    })
                    .collect(),
                grad: g.to_vec(),
            };
            let mut stream = upd::stream(o.upd_lanes, &[v], "hardware in the loop");
            let pass = &mut stream.passes[0];
            if programmed == Some((kind, coefs)) {
                pass.setup.clear();
            }
            programmed = Some((kind, coefs));
            // The unit's words drive training; the step is checked as a whole below.
            pass.compare = false;
            let (_, out) = session.run(&stream, Stall::NONE)?;
            for j in 0..g.len() {
                theta[j] = out[3 * j] as i32;
                vb[j] = out[3 * j + 1] as i32;
                vd[j] = out[3 * j + 2] as i32;
            }
            words += g.len();
            upd_passes += 1;
            Ok::<(), TbError>(())
        })?;
        report.words_per_step = words;
        report.kinds[(kind_seen == StepKind::Dfa) as usize] += 1;
        report.steps += 1;
        if o.progress {
            eprintln!(
                "hil: step {}/{} ({}) done, {:.1} s",
                s + 1,
                o.steps,
                if kind_seen == StepKind::Bp { "bp" } else { "dfa" },
                t0.elapsed().as_secs_f64()
            );
        }
        if let Some((unit, d)) = path_diff.take() {
            report.first_diff_unit = Some(unit);
            report.first_diff = Some(d);
            return Ok(());
        }
        let mut gold = before;
        gold.train_step(batch, threads);
        if let Some((name, j, which, a, b)) = first_difference(&gold, t) {
            report.first_diff_unit = Some("upd");
            report.first_diff = Some(format!(
                "step {s} ({}), tensor {name}, word {j}: {which} golden {a} ({:#010x}), hardware {b} ({:#010x})",
                if kind_seen == StepKind::Bp { "bp" } else { "dfa" },
                a as u32,
                b as u32
            ));
        }
        Ok(())
    })?;
    report.wall_seconds = t0.elapsed().as_secs_f64();
    report.units.push(UnitUse {
        unit: "upd",
        lanes: o.upd_lanes,
        models: 1,
        passes: upd_passes,
        cycles: session.cycles + session.cfg_writes,
        cfg_writes: session.cfg_writes,
        seconds: session.seconds,
        build_seconds: session.build.seconds,
        ideal_cycles: (report.steps * report.words_per_step.div_ceil(o.upd_lanes)) as f64,
    });
    if let Some((_, model)) = &dce {
        report.units.push(UnitUse {
            unit: "dce",
            lanes: o.path_lanes,
            models: dce_models,
            passes: dce_passes,
            cycles: model.cycles + model.cfg_writes,
            cfg_writes: model.cfg_writes,
            seconds: model.seconds,
            build_seconds: model.build.seconds,
            ideal_cycles: dce_ideal,
        });
    }
    if !bsbu.is_empty() {
        let mut u = UnitUse {
            unit: "bsbu",
            lanes: o.path_lanes,
            models: bsbu.len(),
            passes: bsbu_passes,
            ideal_cycles: bsbu_ideal,
            ..UnitUse::default()
        };
        for (_, m) in &bsbu {
            u.cycles += m.cycles + m.cfg_writes;
            u.cfg_writes += m.cfg_writes;
            u.seconds += m.seconds;
            u.build_seconds += m.build.seconds;
        }
        report.units.push(u);
    }
    report.weight_bits_read = bits_read;
    report.hw_checksum = exp.state_checksum();
    if report.first_diff.is_none() {
        let mut gold = crate::dce::experiment(file, o.train_limit)?;
        gold.walk_steps(last, true, |_, _, _| Ok(()))?;
        report.golden_checksum = Some(gold.state_checksum());
    }
    Ok(report)
}
