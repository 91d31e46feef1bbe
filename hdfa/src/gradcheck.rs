//! `hdfa gradcheck`: one fixed-point step's gradients against an f64 reference.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use golden::cnn::num::Fx;
use golden::cnn::train::StepKind;
use golden::config::{Config, ErrorScaling};
use golden::experiment::Experiment;

/// Which propagation the checked step uses.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    /// Back-propagation.
    Bp,
    /// The config's DFA paths.
    Dfa,
    /// Whatever the step draws (HDFA: BP with probability p).
    Drawn,
}

/// Scaling override.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScalingArg {
    /// Block floating point (one exponent per error tensor).
    Block,
    /// No normalization.
    Fixed,
}

/// Options of `hdfa gradcheck`.
#[derive(Args, Clone)]
pub struct GradcheckArgs {
    /// Experiment config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Global step to check (0: before the first update); steps before it are trained.
    #[arg(long, default_value_t = 0)]
    pub step: usize,
    /// Propagation of the checked step.
    #[arg(long, value_enum, default_value_t = KindArg::Drawn)]
    pub kind: KindArg,
    /// Override the config's error scaling.
    #[arg(long, value_enum)]
    pub error_scaling: Option<ScalingArg>,
    /// Let the reference round every pre-activation to BITS fraction bits, as the
    /// fixed-point forward pass does (8 for the q8.8 preset, 24 for q8.24), to
    /// separate the backward pass's error from the forward pass's rounding.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u32).range(0..=40))]
    pub round_p: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run `hdfa gradcheck`.
pub fn run(a: &GradcheckArgs) -> Result<()> {
    let mut cfg = Config::load(&a.config)?;
    if let Some(s) = a.error_scaling {
        cfg.raw.error_scaling = match s {
            ScalingArg::Block => ErrorScaling::Block,
            ScalingArg::Fixed => ErrorScaling::Fixed,
        };
    }
    let mut exp = Experiment::<Fx>::new(cfg)?;
    // The forward pass rounds pre-activations to this many fraction bits.
    let fwd_bits = if exp.trainer.net.is_wide() { 24 } else { 8 };
    if let Some(b) = a.round_p.filter(|&b| b != fwd_bits) {
        eprintln!(
            "note: --round-p {b} does not model this config's forward pass, which rounds to {fwd_bits} fraction bits"
        );
    }
    let kind = match a.kind {
        KindArg::Bp => Some(StepKind::Bp),
        KindArg::Dfa => Some(StepKind::Dfa),
        KindArg::Drawn => None,
    };
    let r = exp.gradcheck(a.step, kind, a.round_p)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.table());
    }
    Ok(())
}
