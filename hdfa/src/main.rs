//! `hdfa`: emit, co-simulate, synthesize and benchmark HDFA training hardware.

mod plot;
mod train;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use golden::params::{check_sparsity, BsbuParams};
use sim::stream::Stall;
use testbench::{BsbuScenario, SimKind};

/// HDFA hardware generator: emit Verilog, co-simulate it bit-exactly against the
/// fixed-point golden model on Verilator and Icarus, and synthesize it for iCE40.
#[derive(Parser)]
#[command(name = "hdfa", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Emit the Verilog of a unit into a directory.
    Emit {
        #[command(flatten)]
        unit: UnitArgs,
        /// Output directory.
        #[arg(long, default_value = "target/hdfa-out/emit")]
        out: PathBuf,
    },
    /// Co-simulate a unit against the golden model; the summary ends in `mismatches: N`.
    Cosim {
        #[command(flatten)]
        unit: UnitArgs,
        /// Random vectors (the corner-case vectors come on top).
        #[arg(long, default_value_t = 1000)]
        vectors: usize,
        /// Simulator.
        #[arg(long, value_enum, default_value_t = SimArg::Verilator)]
        sim: SimArg,
        /// Directory for testbench files and waveforms.
        #[arg(long, default_value = "target/hdfa-out/cosim")]
        out: PathBuf,
    },
    /// Synthesize a unit (yosys generic + synth_ice40, nextpnr-ice40 on HX8K).
    Synth {
        #[command(flatten)]
        unit: UnitArgs,
        /// Target family.
        #[arg(long, value_enum, default_value_t = Target::Ice40)]
        target: Target,
        /// Output directory for netlists and reports.
        #[arg(long, default_value = "target/hdfa-out/synth")]
        out: PathBuf,
    },
    /// Benchmark: utilization for P = 1, 4, 8, 16 and Verilator vs Icarus throughput.
    Bench {
        /// Sparsity of S.
        #[arg(long, default_value_t = 0.9)]
        sparsity: f64,
        /// Output rows.
        #[arg(long, default_value_t = 64)]
        rows: usize,
        /// Columns.
        #[arg(long, default_value_t = 64)]
        cols: usize,
        /// Random vectors per configuration.
        #[arg(long, default_value_t = 1000)]
        vectors: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long, default_value = "target/hdfa-out/bench")]
        out: PathBuf,
    },
    /// Train a network in fixed point (or f32) from a TOML config.
    Train(train::TrainArgs),
    /// Run the mode ladder on one network and print a table (original DFA → conv-DFA →
    /// modules → dilation → groups → HDFA → BP). DFA-only rungs use γ = 1 (plain
    /// momentum); HDFA rungs use γ = 1 − p.
    Sweep(train::SweepArgs),
    /// Training throughput (samples/s) of the fixed-point and f32 paths on a config.
    TrainBench(train::TrainBenchArgs),
    /// The main job: emit, co-simulate on both simulators and synthesize, with a summary.
    Flow {
        #[command(flatten)]
        unit: UnitArgs,
        /// Random vectors.
        #[arg(long, default_value_t = 1000)]
        vectors: usize,
        /// Output directory.
        #[arg(long, default_value = "target/hdfa-out/flow")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum UnitKind {
    /// Binary sparse backward-weight unit.
    Bsbu,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimArg {
    /// Verilator through the FFI shim.
    Verilator,
    /// Icarus Verilog.
    Icarus,
    /// Both, one after the other.
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// Lattice iCE40 HX8K (yosys synth_ice40 + nextpnr-ice40).
    Ice40,
}

#[derive(Args, Clone)]
struct UnitArgs {
    /// Unit to build.
    #[arg(long, value_enum, default_value_t = UnitKind::Bsbu)]
    unit: UnitKind,
    /// Parallel lanes P (1..=16).
    #[arg(long, default_value_t = 4)]
    lanes: usize,
    /// Output rows of S (length of e_i).
    #[arg(long, default_value_t = 64)]
    rows: usize,
    /// Columns of S (length of e_L).
    #[arg(long, default_value_t = 64)]
    cols: usize,
    /// Sparsity of S in [0, 1).
    #[arg(long, default_value_t = 0.9)]
    sparsity: f64,
    /// Scaling shift after accumulation (default: ceil(log2(sqrt(cols)))).
    #[arg(long)]
    shift: Option<u32>,
    /// Seed of S and of the vectors.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl UnitArgs {
    fn scenario(&self, vectors: usize) -> Result<BsbuScenario> {
        let UnitKind::Bsbu = self.unit;
        check_sparsity(self.sparsity)?;
        let shift = self.shift.unwrap_or(BsbuParams::default_shift(self.cols));
        let params = BsbuParams::new(self.lanes, self.rows, self.cols, shift)?;
        Ok(BsbuScenario {
            params,
            sparsity: self.sparsity,
            vectors,
            seed: self.seed,
            stall: Stall::SOME,
            corner_rows: true,
        })
    }
}

fn sims(s: SimArg) -> Vec<SimKind> {
    match s {
        SimArg::Verilator => vec![SimKind::Verilator],
        SimArg::Icarus => vec![SimKind::Icarus],
        SimArg::Both => vec![SimKind::Verilator, SimKind::Icarus],
    }
}

fn emit(u: &UnitArgs, out: &PathBuf) -> Result<PathBuf> {
    let sc = u.scenario(0)?;
    let s = sc.matrix()?;
    let design = rtl::bsbu::generate(&sc.params, &s)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("bsbu_p{}.v", sc.params.lanes));
    std::fs::write(&path, &design.verilog)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("emitted bsbu ({}) -> {}", sc.config(), path.display());
    Ok(path)
}

fn cosim(u: &UnitArgs, vectors: usize, which: SimArg, out: &PathBuf) -> Result<bool> {
    let sc = u.scenario(vectors)?;
    let cache = sim::verilator::default_cache_dir();
    let mut clean = true;
    for k in sims(which) {
        let r = sc.run(k, &cache, out)?;
        println!("{}", r.summary());
        if let Some(m) = &r.stats.first {
            println!("{m}");
            clean = false;
        }
    }
    Ok(clean)
}

fn synth(u: &UnitArgs, out: &PathBuf) -> Result<synth::SynthReport> {
    let sc = u.scenario(0)?;
    let s = sc.matrix()?;
    let design = rtl::bsbu::generate(&sc.params, &s)?;
    let dir = out.join(format!("bsbu_p{}", sc.params.lanes));
    let r = synth::synthesize(&design, &sc.config(), &dir)?;
    println!("{}\n{}", synth::SynthReport::MD_HEADER, r.md_row());
    println!("reports: {}/synth_report.{{json,md}}", dir.display());
    Ok(r)
}

fn bench(
    sparsity: f64,
    rows: usize,
    cols: usize,
    vectors: usize,
    seed: u64,
    out: &PathBuf,
) -> Result<()> {
    let cache = sim::verilator::default_cache_dir();
    println!("## Utilization (no stalls, sparsity {sparsity}, {rows}x{cols}, {vectors} random + {} corner vectors)", testbench::CORNER_VECTORS);
    println!("| P | ideal cycles/matrix | compute cycles/matrix | utilization | total cycles/vector | total utilization |");
    println!("|---|---|---|---|---|---|");
    for p in [1usize, 4, 8, 16] {
        let mut sc = BsbuScenario::new(p, rows, cols, sparsity, vectors, seed)?;
        sc.stall = Stall::NONE;
        sc.corner_rows = false;
        let r = sc.run(SimKind::Verilator, &cache, out)?;
        if r.stats.mismatches != 0 {
            bail!("bench run had mismatches: {}", r.summary());
        }
        println!(
            "| {p} | {} | {:.1} | {:.1}% | {:.1} | {:.1}% |",
            r.ideal_per_vector,
            r.compute_per_vector(),
            100.0 * r.utilization(),
            r.cycles_per_vector(),
            100.0 * r.ideal_per_vector as f64 / r.cycles_per_vector()
        );
    }
    println!("\n## Simulator throughput (same vectors, P = 4, with stalls)");
    println!("| simulator | cycles | sim seconds | cycles/s | build seconds |");
    println!("|---|---|---|---|---|");
    let mut sc = BsbuScenario::new(4, rows, cols, sparsity, vectors, seed)?;
    sc.corner_rows = false;
    let mut rates = Vec::new();
    for k in [SimKind::Verilator, SimKind::Icarus] {
        let r = sc.run(k, &cache, out)?;
        if r.stats.mismatches != 0 {
            bail!("bench run had mismatches: {}", r.summary());
        }
        println!(
            "| {} | {} | {:.3} | {:.0} | {:.2} |",
            k.name(),
            r.stats.cycles,
            r.stats.sim_seconds,
            r.stats.cycles_per_second(),
            r.stats.build_seconds
        );
        rates.push(r.stats.cycles_per_second());
    }
    println!(
        "\nVerilator / Icarus throughput ratio: {:.0}x",
        rates[0] / rates[1]
    );
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Train(a) => train::run(&a)?,
        Cmd::Sweep(a) => train::sweep(&a)?,
        Cmd::TrainBench(a) => train::train_bench(&a)?,
        Cmd::Emit { unit, out } => {
            emit(&unit, &out)?;
        }
        Cmd::Cosim {
            unit,
            vectors,
            sim,
            out,
        } => {
            if !cosim(&unit, vectors, sim, &out)? {
                bail!("co-simulation found mismatches (see the report and waveform above)");
            }
        }
        Cmd::Synth {
            unit,
            target: Target::Ice40,
            out,
        } => {
            synth(&unit, &out)?;
        }
        Cmd::Bench {
            sparsity,
            rows,
            cols,
            vectors,
            seed,
            out,
        } => bench(sparsity, rows, cols, vectors, seed, &out)?,
        Cmd::Flow { unit, vectors, out } => {
            emit(&unit, &out.join("emit"))?;
            let clean = cosim(&unit, vectors, SimArg::Both, &out.join("cosim"))?;
            let r = synth(&unit, &out.join("synth"))?;
            println!(
                "flow summary: bsbu P={} co-simulation {} on verilator and icarus; iCE40 HX8K {} LUT4, {} FF, {} BRAM, Fmax {:.1} MHz",
                unit.lanes,
                if clean { "bit-exact" } else { "MISMATCHED" },
                r.luts,
                r.ffs,
                r.brams,
                r.fmax_mhz
            );
            if !clean {
                bail!("co-simulation found mismatches");
            }
        }
    }
    Ok(())
}
