//! Hardware-in-the-loop training: a config trains for N steps with the golden model
//! doing the forward pass, the loss and the error propagation, and every weight
//! update running on the Verilated update unit ([`crate::upd`]): the trainer hands
//! each parameter tensor's θ, v_bp, v_dfa and gradient to the unit and takes the
//! unit's output words as its new state. One model instance is built once (cached)
//! and reprogrammed between steps, never rebuilt.
//!
//! Every step is checked against the golden optimizer run from the same state, so a
//! difference is named by step, tensor and word at once ([`HilReport::first_diff`]);
//! at the end the state's checksum must equal an all-golden run's.
//!
//! Still golden (not yet on the RTL): the DFA error propagation (the dce and the bsbu
//! run captured vectors of it in co-simulation, not inside this loop).

use std::path::Path;
use std::time::Instant;

use golden::cnn::num::Fx;
use golden::cnn::train::Trainer;
use golden::update::{HwCoefs, StepKind, WordState};
use sim::stream::{Session, Stall};

use crate::mutation::Mutated;
use crate::upd::{self, UpdUnit, UpdVector};
use crate::{TbError, Unit};

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
    /// The first difference between the hardware's update and the golden optimizer's
    /// (step, kind, tensor, word, which value, golden and hardware), if any.
    pub first_diff: Option<String>,
    /// Checksum of θ, v_bp, v_dfa after the run with updates on the hardware.
    pub hw_checksum: u64,
    /// The same after the all-golden run of the same steps (None when the run stopped
    /// at a difference).
    pub golden_checksum: Option<u64>,
    /// Wall time of the hardware run (s), golden forward/backward included.
    pub wall_seconds: f64,
    /// Wall time inside the Verilated model (s).
    pub rtl_seconds: f64,
    /// Update-unit cycles over the run.
    pub upd_cycles: u64,
    /// Verilator build time (0 when cached).
    pub build_seconds: f64,
}

impl HilReport {
    /// Whether the hardware run ended bit-identical to the golden one.
    pub fn identical(&self) -> bool {
        self.first_diff.is_none() && self.golden_checksum == Some(self.hw_checksum)
    }

    /// The report as text: the verdict line first.
    pub fn text(&self) -> String {
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
        format!(
            "{verdict}\n\
             hardware in the loop: {} steps of {} ({} BP, {} DFA), every weight update on the Verilated update unit (P = {}), {} words per step\n\
             wall {:.2} s, in the RTL {:.2} s ({:.1}%), build {:.1} s; update unit {} cycles, {:.0} cycles per step (bound {} = words / P)",
            self.steps,
            self.config,
            self.kinds[0],
            self.kinds[1],
            self.lanes,
            self.words_per_step,
            self.wall_seconds,
            self.rtl_seconds,
            100.0 * self.rtl_seconds / self.wall_seconds.max(1e-9),
            self.build_seconds,
            self.upd_cycles,
            self.upd_cycles as f64 / steps,
            self.words_per_step.div_ceil(self.lanes),
        )
    }
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

/// Train config `file` (its first `train_limit` images when given) for `steps` steps
/// with every weight update on a Verilated update unit of `lanes` lanes (with the
/// update-unit mutant `mutant`, to show how a fault is reported), checking each step
/// against the golden optimizer and the end against an all-golden run.
pub fn train_updates_on_hardware(
    file: &Path,
    train_limit: Option<usize>,
    steps: usize,
    lanes: usize,
    mutant: Option<&str>,
    cache: &Path,
) -> Result<HilReport, TbError> {
    if steps == 0 {
        return Err(golden::GoldenError::out_of_range("steps", 0, "1 or more").into());
    }
    let unit = UpdUnit::new(lanes, 0, 1)?;
    let design = match mutant {
        Some(name) => Mutated::new(&unit, name)?.design,
        None => unit.design().clone(),
    };
    let mut exp = crate::dce::experiment(file, train_limit)?;
    let last = crate::dce::run_steps(&exp, Some(&[steps - 1]))?[0];
    let threads = exp.config.raw.threads;
    let config = exp.config.raw.name.clone();
    let t0 = Instant::now();
    let mut session = Session::open(&design, cache)?;
    let build_seconds = session.build.seconds;
    let mut report = HilReport {
        config,
        lanes,
        steps: 0,
        kinds: [0, 0],
        words_per_step: 0,
        first_diff: None,
        hw_checksum: 0,
        golden_checksum: None,
        wall_seconds: 0.0,
        rtl_seconds: 0.0,
        upd_cycles: 0,
        build_seconds,
    };
    // The registers of the last pass (written again only when they change).
    let mut programmed: Option<(StepKind, HwCoefs)> = None;
    exp.train_steps_with(last, |t, s, batch| -> Result<(), TbError> {
        if report.first_diff.is_some() {
            return Ok(());
        }
        let before = t.clone();
        let mut words = 0;
        let mut kind_seen = StepKind::Bp;
        t.train_step_with(batch, threads, &mut |kind, h, k, theta, vb, vd, g| {
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
            let mut stream = upd::stream(lanes, &[v], "hardware in the loop");
            let pass = &mut stream.passes[0];
            if programmed == Some((kind, coefs)) {
                pass.setup.clear();
            }
            programmed = Some((kind, coefs));
            // The unit's words drive training: nothing is compared here.
            pass.compare = false;
            let (_, out) = session.run(&stream, Stall::NONE)?;
            for j in 0..g.len() {
                theta[j] = out[3 * j] as i32;
                vb[j] = out[3 * j + 1] as i32;
                vd[j] = out[3 * j + 2] as i32;
            }
            words += g.len();
            Ok::<(), TbError>(())
        })?;
        report.words_per_step = words;
        report.kinds[(kind_seen == StepKind::Dfa) as usize] += 1;
        report.steps += 1;
        let mut gold = before;
        gold.train_step(batch, threads);
        if let Some((name, j, which, a, b)) = first_difference(&gold, t) {
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
    report.rtl_seconds = session.seconds;
    report.upd_cycles = session.cycles;
    report.hw_checksum = exp.state_checksum();
    if report.first_diff.is_none() {
        let mut gold = crate::dce::experiment(file, train_limit)?;
        gold.walk_steps(last, true, |_, _, _| Ok(()))?;
        report.golden_checksum = Some(gold.state_checksum());
    }
    Ok(report)
}
