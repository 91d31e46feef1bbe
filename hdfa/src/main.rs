//! `hdfa`: emit, co-simulate, synthesize and benchmark HDFA training hardware.

mod cost;
mod gradcheck;
mod plot;
mod rnn;
mod run;
mod train;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use golden::dce::{DceLayer, DceSizes};
use golden::params::check_sparsity;
use sim::stream::Stall;
use testbench::dce::{self as dce_tb, DceCase, DceUnit};
use testbench::mutation::{self, Mutated};
use testbench::spec::{BsbuSpec, CosimSpec, DceSpec, UpdSpec};
use testbench::upd::UpdUnit;
use testbench::{run_case, verdict, BsbuScenario, BsbuUnit, SimKind, Unit};

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
    /// Exits non-zero on any failed check and, with `--sim both`, on any difference
    /// between the simulators' cycle, phase or traffic counts.
    Cosim {
        #[command(flatten)]
        unit: UnitArgs,
        /// Random vectors (the corner-case vectors come on top).
        #[arg(long, default_value_t = 1000)]
        vectors: usize,
        /// Simulator.
        #[arg(long, value_enum, default_value_t = SimArg::Verilator)]
        sim: SimArg,
        /// Simulate a deliberately faulty design instead (a mutant's name, see
        /// `hdfa mutants`), to see how a fault is reported.
        #[arg(long)]
        mutant: Option<String>,
        /// Directory for testbench files and waveforms.
        #[arg(long, default_value = "target/hdfa-out/cosim")]
        out: PathBuf,
    },
    /// Mutation testing: simulate each deliberate design fault against the unit's
    /// standard vector sets on Verilator and print which set kills which mutant;
    /// exits non-zero if one survives every set.
    Mutants {
        #[command(flatten)]
        unit: UnitArgs,
        /// Random vectors (the corner-case vectors come on top).
        #[arg(long, default_value_t = 200)]
        vectors: usize,
        /// Directory for runs and waveforms.
        #[arg(long, default_value = "target/hdfa-out/mutants")]
        out: PathBuf,
    },
    /// Synthesize a unit: iCE40 HX8K (yosys generic + synth_ice40, nextpnr-ice40) with
    /// area, Fmax and the critical path, or ECP5 / Xilinx 7-series cell counts.
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
    /// Benchmark. bsbu: cycles per vector against the bound for P = 1, 4, 8, 16 and
    /// Verilator vs Icarus throughput. dce: utilization per dilation d and groups G
    /// (no stalls). upd: P = 1, 2, 4, 8 against one beat per cycle (no stalls; per
    /// step `--vectors` tensors of 4,096 weights). Both end with the unit table (P, cycles, bound, utilization, iCE40
    /// LUT4/FF/BRAM/Fmax, throughput), also written to OUT/bench_UNIT.md.
    Bench {
        /// Unit to benchmark.
        #[arg(long, value_enum, default_value_t = UnitKind::Bsbu)]
        unit: UnitKind,
        /// dce: lanes P.
        #[arg(long, default_value_t = 4)]
        lanes: usize,
        /// dce: channels C_s = C_t.
        #[arg(long, default_value_t = 32)]
        channels: usize,
        /// dce: map side (H = W).
        #[arg(long, default_value_t = 16)]
        map: usize,
        /// bsbu: sparsities of S (a table each).
        #[arg(long, num_args = 1.., default_values_t = [0.9, 0.98])]
        sparsity: Vec<f64>,
        /// Output rows.
        #[arg(long, default_value_t = 64)]
        rows: usize,
        /// Columns.
        #[arg(long, default_value_t = 64)]
        cols: usize,
        /// Random vectors per configuration (default: bsbu 1000, dce 4: the first pass loads alone, the rest overlap).
        #[arg(long)]
        vectors: Option<usize>,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Skip synthesis: the unit table leaves LUT4, FF, BRAM, Fmax and throughput
        /// empty.
        #[arg(long)]
        no_synth: bool,
        /// bsbu: the generator-mode unit (S regenerated, no weight memory).
        #[arg(long)]
        generator: bool,
        /// Output directory.
        #[arg(long, default_value = "target/hdfa-out/bench")]
        out: PathBuf,
    },
    /// Train a network in fixed point (or f32) from a TOML config.
    Train(train::TrainArgs),
    /// Run the mode ladder on one network and print a table (original DFA → conv-DFA →
    /// modules → dilation → groups → HDFA → BP). DFA-only rungs use γ = 1 (plain
    /// momentum); HDFA rungs use γ = 1 (chosen on held-out images, see the README).
    Sweep(train::SweepArgs),
    /// Training throughput (samples/s) of the fixed-point and f32 paths on a config.
    TrainBench(train::TrainBenchArgs),
    /// Compare one fixed-point training step's weight and bias gradients, per layer,
    /// with an independent f64 computation of the same step (cosine, relative L2
    /// error; for DFA steps also the error words lost to zero).
    Gradcheck(gradcheck::GradcheckArgs),
    /// Memory transactions (MB) and operations (GOP) of the error-propagation stage:
    /// BP, the original DFA, the revised DFA and HDFA mixes, for the paper's networks
    /// or one of our configs, with every assumption printed.
    Cost(cost::CostArgs),
    /// The main job: train a config's network in the golden model with BP, DFA, the
    /// revised DFA and HDFA, train a stretch of it with the units in the loop
    /// (Verilator, bit-exact), synthesize the units, price the error propagation
    /// with the cost model, and write report.md and report.html with figures.
    Run(run::RunArgs),
    /// Property-based co-simulation and soak: random cases of the units (parameters
    /// across their supported ranges, random seeds, random vectors) on Verilator
    /// against the golden model until the budget is spent, then vectors, cycles and
    /// mismatches per unit. A failing case is shrunk to a minimal one and printed as
    /// the `hdfa cosim` command that reruns it; the exit status is non-zero on any
    /// failure. With a design pool (the default) the cases reuse a few cached
    /// Verilator models per unit and the time goes to simulation; `--pool 0` draws a
    /// fresh design for every case.
    Soak(SoakArgs),
    /// One unit's flow: emit, co-simulate on both simulators and synthesize, with a
    /// summary.
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

/// `hdfa soak` (at least one of --minutes, --cases, --vectors).
#[derive(Args)]
struct SoakArgs {
    /// Stop after this many minutes.
    #[arg(long)]
    minutes: Option<f64>,
    /// Stop after this many cases in all.
    #[arg(long)]
    cases: Option<usize>,
    /// Stop each unit once it has run this many vectors.
    #[arg(long)]
    vectors: Option<u64>,
    /// Soak one unit (default: all, in turn).
    #[arg(long, value_enum)]
    unit: Option<UnitKind>,
    /// Seed of the cases (case n draws from the seed and n).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Designs per unit in the pool the cases draw from (0: a fresh design, so a
    /// Verilator build, for every case).
    #[arg(long, default_value_t = 4)]
    pool: usize,
    /// Seed of the design pool.
    #[arg(long, default_value_t = 0)]
    pool_seed: u64,
    /// The CI limits: cases of at most 3,000 cycles per vector and about 150,000
    /// cycles (default: 20,000 per vector and about 3 million cycles per case).
    #[arg(long)]
    small: bool,
    /// Draw only cases of at most this many simulated cycles per vector (overrides
    /// the limit of --small or the default).
    #[arg(long)]
    max_cycles_per_vector: Option<f64>,
    /// Run a deliberate fault of the unit (a name from `hdfa mutants`; needs --unit),
    /// to see a failure found, shrunk and printed.
    #[arg(long, requires = "unit")]
    mutant: Option<String>,
    /// Most cases one shrink may run.
    #[arg(long, default_value_t = 200)]
    shrink_runs: usize,
    /// Directory for waveforms of failing cases.
    #[arg(long, default_value = "target/hdfa-out/soak")]
    out: PathBuf,
}

fn soak_cmd(a: SoakArgs) -> Result<()> {
    use testbench::prop::{self, Budget, Limits, SoakConfig};
    use testbench::spec::UnitKind as K;
    if a.minutes.is_none() && a.cases.is_none() && a.vectors.is_none() {
        bail!("hdfa soak needs a budget: --minutes M, --cases N or --vectors V");
    }
    if let Some(m) = a.minutes.filter(|m| !(m.is_finite() && *m > 0.0)) {
        bail!("--minutes = {m}: valid range (0, inf)");
    }
    let kinds = match a.unit {
        None => K::ALL.to_vec(),
        Some(UnitKind::Bsbu) => vec![K::Bsbu],
        Some(UnitKind::Dce) => vec![K::Dce],
        Some(UnitKind::Upd) => vec![K::Upd],
    };
    let cfg = SoakConfig {
        kinds,
        seed: a.seed,
        pool: (a.pool > 0).then_some((a.pool_seed, a.pool)),
        limits: {
            let l = if a.small { Limits::CI } else { Limits::SOAK };
            match a.max_cycles_per_vector {
                Some(m) if !(m.is_finite() && m >= 20.0) => {
                    bail!("--max-cycles-per-vector = {m}: valid range [20, inf)")
                }
                Some(m) => Limits {
                    max_cycles_per_vector: m,
                    ..l
                },
                None => l,
            }
        },
        budget: Budget {
            time: a
                .minutes
                .map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
            cases: a.cases,
            vectors_per_unit: a.vectors,
        },
        mutant: a.mutant.clone(),
        shrink_runs: a.shrink_runs,
    };
    let cache = sim::verilator::default_cache_dir();
    let mut last = std::time::Instant::now();
    let mut say = |line: &str| {
        if line.starts_with("FAILED") || last.elapsed().as_secs() >= 10 {
            println!("{line}");
            last = std::time::Instant::now();
        }
    };
    let r = prop::soak(&cfg, &cache, &a.out, &mut say)?;
    println!(
        "soak: {:.1} minutes, seed {}, {}",
        r.seconds / 60.0,
        a.seed,
        match cfg.pool {
            Some((s, k)) => format!("{k} designs per unit (pool seed {s})"),
            None => "a fresh design per case".into(),
        }
    );
    print!("{}", r.table());
    for f in &r.failures {
        println!(
            "\nFAILURE {}: {}\n{}\nshrunk in {} runs{} by: {}\n{}\nreproduce: {}",
            f.original.kind().name(),
            f.original,
            f.original_failure,
            f.shrunk.runs,
            if f.shrunk.minimal {
                " to a minimal case (no one-step simplification fails)"
            } else {
                " (run budget spent before a minimal case)"
            },
            if f.shrunk.steps.is_empty() {
                "nothing".to_string()
            } else {
                f.shrunk.steps.join(", ")
            },
            f.shrunk.failure,
            f.command
        );
    }
    if !r.failures.is_empty() {
        bail!("soak found {} failing unit(s)", r.failures.len());
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum UnitKind {
    /// Binary sparse backward-weight unit.
    Bsbu,
    /// Dilated-conv error-propagation engine (D2, shuffle, dilated D1, ReLU mask).
    Dce,
    /// HDFA update unit: Algorithm 1's BP and DFA steps on θ, v_bp, v_dfa (P weights
    /// per cycle).
    Upd,
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
    /// Lattice iCE40 HX8K (yosys synth_ice40 + nextpnr-ice40): area and Fmax.
    Ice40,
    /// Lattice ECP5 (yosys synth_ecp5): cell counts only (no place-and-route in Debian).
    Ecp5,
    /// AMD/Xilinx 7-series (yosys synth_xilinx): cell counts only.
    Xilinx,
}

#[derive(Args, Clone)]
struct UnitArgs {
    /// Unit to build.
    #[arg(long, value_enum, default_value_t = UnitKind::Bsbu)]
    unit: UnitKind,
    /// Parallel lanes P (bsbu: 1..=16; dce: parallel output channels, 1..=8; upd:
    /// weights per cycle, 1..=8).
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
    /// bsbu: seed of the vectors (default: --seed). S stays drawn from --seed, so a
    /// stored-weight design runs new vectors without another build.
    #[arg(long)]
    vector_seed: Option<u64>,
    /// Generator mode. bsbu: S is regenerated in the lanes from a seed (the low 32
    /// bits of --seed) and the mask threshold of --sparsity; no weight bit is stored,
    /// and each lane walks every column of its rows. dce: GEN mode, the weights are
    /// regenerated from seeds drawn from --seed and none is stored.
    #[arg(long)]
    generator: bool,
    /// bsbu --generator: the generator row of S's row 0 (S is rows row0.. of a larger
    /// generated matrix, one 256-row tile of it).
    #[arg(long, default_value_t = 0, requires = "generator")]
    row0: usize,
    #[command(flatten)]
    dce: DceArgs,
}

/// The conv engine's layer (with `--unit dce`).
#[derive(Args, Clone)]
struct DceArgs {
    /// dce: source channels C_s (channels of e_L).
    #[arg(long, default_value_t = 16)]
    cs: usize,
    /// dce: target channels C_t (channels of e_i).
    #[arg(long, default_value_t = 16)]
    ct: usize,
    /// dce: target map height (1..=32, a multiple of --up).
    #[arg(long, default_value_t = 8)]
    height: usize,
    /// dce: target map width (1..=32, a multiple of --up).
    #[arg(long, default_value_t = 8)]
    width: usize,
    /// dce: up-sampling factor from the source map to the target map (1, 2 or 4; a
    /// path across pools reads a (height/up) × (width/up) source).
    #[arg(long, default_value_t = 1)]
    up: usize,
    /// dce: kernel size of D1 (1, 3 or 5).
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// dce: dilation of D1 (1..=8).
    #[arg(long, default_value_t = 2)]
    dil: usize,
    /// dce: channel groups G (1, 2, 4 or 8; 1 = no D2 and no shuffle).
    #[arg(long, default_value_t = 4)]
    groups: usize,
    /// dce: shift after D2 (default ceil(log2 sqrt(C_s / G))).
    #[arg(long)]
    shift2: Option<u32>,
    /// dce: shift after D1 (default ceil(log2 sqrt(fan-in))).
    #[arg(long)]
    shift1: Option<u32>,
    /// dce: the engine's buffer depths in words, generated once for many layers:
    /// map=..,ebuf=..,mbuf=..,mask=..,w2=..,w1=..,taps=..,chans=.. (default: the
    /// smallest engine that fits the layer or the config's paths).
    #[arg(long)]
    sizes: Option<String>,
    /// Instead of random vectors, capture a training config's paths at its first,
    /// middle and last step and run those: dce: its conv paths; upd: every parameter
    /// word's update (also steps 1–3, so BP and DFA steps both occur); bsbu: its binary
    /// dense paths from e_L (the trainer's own S, in tiles of at most 256 rows, one
    /// design per tile); for a recurrent config, the product `--rnn-product` names,
    /// on the first stream.
    #[arg(long)]
    from_config: Option<PathBuf>,
    /// --from-config: keep only the first N training images (IDX data), or the first
    /// N training tokens (recurrent configs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// dce --from-config: run only the paths whose case name contains this text (the
    /// names are CONFIG_tTARGET_sSOURCE, e.g. `t3_s5` for the path from layer 5 into
    /// layer 3); the design still fits every path of the config.
    #[arg(long)]
    case: Option<String>,
    /// --from-config on a recurrent config with the bsbu: which binary product to
    /// run, S^fc (every time step's e_L) or S^rnn (the cell's upper-triangular
    /// feedback over each window, in tiles of 256 rows, one design each).
    #[arg(long, value_enum, default_value_t = RnnProductArg::Fc)]
    rnn_product: RnnProductArg,
}

/// The recurrent DFA's binary products.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum RnnProductArg {
    /// S^fc: decoder errors to the cell outputs (H x vocabulary).
    Fc,
    /// S^rnn: cell outputs to every hidden step (HT x HT, upper triangular).
    Cell,
}

impl DceArgs {
    fn layer(&self) -> Result<DceLayer> {
        let l = DceLayer {
            cs: self.cs,
            ct: self.ct,
            h: self.height,
            w: self.width,
            up: self.up,
            k: self.k,
            dil: self.dil,
            groups: self.groups,
            shift2: 0,
            shift1: 0,
        }
        .with_default_shifts()?;
        Ok(DceLayer {
            shift2: self.shift2.unwrap_or(l.shift2),
            shift1: self.shift1.unwrap_or(l.shift1),
            ..l
        }
        .validate()?)
    }

    /// The cases captured from the training config `file`.
    fn config_cases(&self, file: &Path) -> Result<Vec<DceCase>> {
        let caps = dce_tb::capture(file, self.train_limit, None, 1)?;
        let stem = file
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or("config");
        let name = stem.replace('-', "_");
        let cases = DceCase::from_captures(&name, &caps)?;
        if cases.is_empty() {
            bail!("{}: the config has no conv backward path the engine runs (binary weights, mode hdfa/cdfa)", file.display());
        }
        Ok(cases)
    }

    /// The `--sizes` of an engine with `lanes` lanes, if given.
    fn sizes(&self, lanes: usize) -> Result<Option<DceSizes>> {
        self.sizes
            .as_deref()
            .map(|t| DceSizes::parse(lanes, t).context("--sizes"))
            .transpose()
    }
}

impl UnitArgs {
    /// The random case these flags describe (no training config), as the property
    /// runs and the soak describe theirs: one construction for all of them.
    fn spec(&self, vectors: usize) -> Result<CosimSpec> {
        Ok(match self.unit {
            UnitKind::Bsbu => {
                check_sparsity(self.sparsity)?;
                CosimSpec::Bsbu(BsbuSpec {
                    lanes: self.lanes,
                    rows: self.rows,
                    cols: self.cols,
                    sparsity: self.sparsity,
                    shift: self
                        .shift
                        .unwrap_or(golden::format::fan_in_shift(self.cols)),
                    seed: self.seed,
                    vector_seed: self.vector_seed.unwrap_or(self.seed),
                    generator: self.generator,
                    row0: self.row0,
                    vectors,
                })
            }
            UnitKind::Dce => CosimSpec::Dce(DceSpec {
                lanes: self.lanes,
                layer: self.dce.layer()?,
                generator: self.generator,
                seed: self.seed,
                vectors,
                sizes: self.dce.sizes(self.lanes)?,
            }),
            UnitKind::Upd => CosimSpec::Upd(UpdSpec {
                lanes: self.lanes,
                seed: self.seed,
                vectors,
            }),
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

/// The one dispatch on the unit kind: its scenario or cases, generated once (a
/// config's training vectors are captured once for emit, cosim and synth). One
/// design, except for the bsbu from a config: one per tile of S.
fn build_units(u: &UnitArgs, vectors: usize) -> Result<Vec<Box<dyn Unit>>> {
    Ok(match (u.unit, &u.dce.from_config) {
        (UnitKind::Bsbu, Some(file)) => {
            let product = match u.dce.rnn_product {
                RnnProductArg::Fc => testbench::bsbu::RnnProduct::Fc,
                RnnProductArg::Cell => testbench::bsbu::RnnProduct::Cell,
            };
            let caps = testbench::bsbu::capture(file, u.dce.train_limit, None, 1, product)?;
            let units = BsbuUnit::from_captures(u.lanes, &caps)?;
            if units.is_empty() {
                bail!("{}: the config has no binary dense backward path (from e_L) for the bsbu (mode dfa, cdfa or hdfa, binary = true)", file.display());
            }
            units
                .into_iter()
                .map(|x| Box::new(x) as Box<dyn Unit>)
                .collect()
        }
        (_, None) => vec![u.spec(vectors)?.unit()?],
        (UnitKind::Dce, Some(file)) => {
            let cases = u.dce.config_cases(file)?;
            let mut unit = match u.dce.sizes(u.lanes)? {
                Some(z) => DceUnit::with_sizes(z, cases)?,
                None => DceUnit::new(u.lanes, cases)?,
            };
            if let Some(f) = &u.dce.case {
                let names: Vec<String> = unit.cases.iter().map(|c| c.name.clone()).collect();
                unit.cases.retain(|c| c.name.contains(f.as_str()));
                if unit.cases.is_empty() {
                    bail!(
                        "--case {f:?} matches no case; the cases are: {}",
                        names.join(", ")
                    );
                }
            }
            vec![Box::new(unit)]
        }
        (UnitKind::Upd, Some(file)) => {
            let caps = testbench::upd::capture(file, u.dce.train_limit, None)?;
            let steps: Vec<String> = caps
                .iter()
                .map(|c| {
                    format!(
                        "{}{}",
                        c.step,
                        if c.kind == golden::update::StepKind::Bp {
                            "bp"
                        } else {
                            "dfa"
                        }
                    )
                })
                .collect();
            let name = file
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or("config");
            let case = format!("{}_steps_{}", name.replace('-', "_"), steps.join("_"));
            let unit = UpdUnit::new(u.lanes, 0, u.seed)?;
            vec![Box::new(unit.with_cases(vec![(
                case,
                testbench::upd::from_captures(&caps, None),
            )]))]
        }
    })
}

fn emit(unit: &dyn Unit, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("{}.v", unit.stem()));
    std::fs::write(&path, &unit.design().verilog)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "emitted {} ({}) -> {}",
        unit.name(),
        unit.config(),
        path.display()
    );
    for (suffix, text) in &unit.design().sidecars {
        let p = out.join(format!("{}{suffix}", unit.stem()));
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        println!("  {}", p.display());
    }
    Ok(path)
}

/// Run every case on the chosen simulators; the problems found (failed checks, and
/// any disagreement between the simulators on cycles, phases or traffic; traffic
/// that differs from golden).
fn cosim(unit: &dyn Unit, which: SimArg, out: &Path) -> Result<Vec<String>> {
    let cache = sim::verilator::default_cache_dir();
    let mut problems = Vec::new();
    for i in 0..unit.cases() {
        let mut runs = Vec::new();
        for k in sims(which) {
            let r = run_case(unit, i, k, Stall::SOME, &cache, out)?;
            println!("{}", r.summary());
            if let Some(line) = r.traffic_line() {
                println!("  {line}");
            }
            if let Some(m) = &r.stats.first {
                println!("{m}");
            }
            problems.extend(r.traffic_problem());
            runs.push(r);
        }
        let stats: Vec<&sim::stream::RunStats> = runs.iter().map(|r| &r.stats).collect();
        problems.extend(
            verdict(&stats)
                .into_iter()
                .map(|p| format!("{} {}: {p}", unit.name(), unit.case_name(i))),
        );
    }
    for p in &problems {
        println!("PROBLEM {p}");
    }
    Ok(problems)
}

fn synth(unit: &dyn Unit, out: &Path) -> Result<synth::SynthReport> {
    let dir = out.join(unit.stem());
    let r = synth::synthesize(unit.design(), &unit.config(), &dir)?;
    println!("{}\n{}", synth::SynthReport::MD_HEADER, r.md_row());
    println!("critical path: {}", r.critical_path);
    println!("reports: {}/synth_report.{{json,md}}", dir.display());
    Ok(r)
}

fn cells(unit: &dyn Unit, family: synth::Family, out: &Path) -> Result<()> {
    let dir = out.join(format!("{}_{}", unit.stem(), family.name()));
    let r = synth::cell_counts(unit.design(), &unit.config(), family, &dir)?;
    println!("{}\n{}", synth::CellReport::MD_HEADER, r.md_row());
    println!("report: {}/cell_report.json", dir.display());
    Ok(())
}

/// One row of a unit table: a lane count's measured cycles, its bound and the work
/// done per vector (nonzero terms), with its iCE40 synthesis.
struct UnitRow {
    lanes: usize,
    cycles: f64,
    bound: f64,
    work: f64,
    synth: Option<std::result::Result<synth::SynthReport, String>>,
}

/// Synthesize a bench design when `run` (not `--no-synth`); a design that does not
/// fit the part is a row with the tool's reason, not a failed bench.
fn synth_row(
    unit: &dyn Unit,
    run: bool,
    out: &Path,
) -> Option<std::result::Result<synth::SynthReport, String>> {
    run.then(|| {
        synth::synthesize(
            unit.design(),
            &unit.config(),
            &out.join("synth").join(unit.stem()),
        )
        .map_err(|e| {
            let t = e.to_string();
            t.lines()
                .find(|l| l.contains("ERROR") || l.contains("rror:"))
                .unwrap_or("synthesis failed")
                .trim()
                .to_string()
        })
    })
}

/// The first line a command prints, or "unknown" (the bench report's date and
/// commit are information, not a reason to fail).
fn tool_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The checkout's commit, marked `-dirty` when the tree has uncommitted changes.
fn commit() -> String {
    let head = tool_line("git", &["rev-parse", "--short=12", "HEAD"]);
    // `git status --porcelain` prints a line per changed file, nothing when clean.
    let dirty = tool_line("git", &["status", "--porcelain", "--untracked-files=no"]);
    if head != "unknown" && dirty != "unknown" {
        format!("{head}-dirty")
    } else {
        head
    }
}

/// Print the unit table and write it to OUT/bench_UNIT.md.
/// Utilization = work / (P × cycles); throughput = utilization × Fmax × P, the
/// terms (error word × backward weight) per second.
fn write_unit_table(
    unit: &str,
    what: &str,
    terms: &str,
    rows: &[UnitRow],
    out: &Path,
) -> Result<()> {
    let mut t = format!(
        "## {unit}: cycles, area, Fmax and throughput ({what}; iCE40 HX8K)\n\n\
         Measured {} at commit {}.\n\n\
         Utilization = terms per vector / (P × cycles per vector), a term being {terms}; throughput = utilization × Fmax × P (terms per second).\n\n\
         | P | cycles/vector | bound | utilization | LUT4 | FF | BRAM | Fmax (MHz) | throughput (terms/s) | vectors/s | critical path |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        tool_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        commit()
    );
    for r in rows {
        let util = r.work / (r.lanes as f64 * r.cycles);
        let area = match &r.synth {
            None => "| – | – | – | – | – | – | not synthesized (--no-synth) |".to_string(),
            Some(Err(e)) => format!("| – | – | – | – | – | – | {e} |"),
            Some(Ok(s)) => format!(
                "| {} | {} | {} | {:.1} | {:.3e} | {:.3e} | {} |",
                s.luts,
                match s.wrapper_ffs {
                    0 => s.ffs.to_string(),
                    w => format!("{} (wrapper {w})", s.ffs),
                },
                s.brams,
                s.fmax_mhz,
                util * s.fmax_mhz * 1e6 * r.lanes as f64,
                s.fmax_mhz * 1e6 / r.cycles,
                s.critical_path
            ),
        };
        t += &format!(
            "| {} | {:.2} | {:.0} | {:.1}% {area}\n",
            r.lanes,
            r.cycles,
            r.bound,
            100.0 * util
        );
    }
    println!("\n{t}");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let p = out.join(format!("bench_{unit}.md"));
    std::fs::write(&p, &t).with_context(|| format!("writing {}", p.display()))?;
    println!("written: {}", p.display());
    Ok(())
}

fn bench(
    sparsity: f64,
    rows: usize,
    cols: usize,
    vectors: usize,
    seed: u64,
    generator: bool,
    throughput: bool,
    mut unit_table: Option<&mut Vec<UnitRow>>,
    do_synth: bool,
    out: &PathBuf,
) -> Result<()> {
    check_sparsity(sparsity)?;
    let cache = sim::verilator::default_cache_dir();
    println!("## Cycles per vector against the bound (no stalls, sparsity {sparsity}, {rows}x{cols}, {vectors} random + {} corner vectors)", testbench::CORNER_VECTORS);
    println!();
    println!("The stages overlap (load n+1, compute n, drain n−1), so the bound per vector is max(load words, most nonzeros of a lane + {}, drain words).", golden::bsbu::COMPUTE_PIPELINE);
    println!();
    println!("| P | load | compute (nnz + pipeline) | drain | bound | measured cycles/vector | measured / bound | compute cycles/vector | compute utilization |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in [1usize, 4, 8, 16] {
        let mut sc = BsbuScenario::new(p, rows, cols, sparsity, vectors, seed)?;
        sc.stall = Stall::NONE;
        sc.corner_rows = false;
        if generator {
            sc = sc.generated(seed as u32, 0)?;
        }
        let unit = BsbuUnit::new(sc.clone())?;
        let b = sc.bound(&unit.s);
        let r = run_case(&unit, 0, SimKind::Verilator, Stall::NONE, &cache, out)?;
        if r.stats.mismatches != 0 {
            bail!("bench run had mismatches: {}", r.summary());
        }
        if let Some(t) = unit_table.as_mut() {
            t.push(UnitRow {
                lanes: p,
                cycles: r.cycles_per_vector(),
                bound: b.cycles() as f64,
                work: unit.s.nnz() as f64,
                synth: synth_row(&unit, do_synth, out),
            });
        }
        println!(
            "| {p} | {} | {} | {} | {} | {:.2} | {:.3} | {:.1} | {:.1}% |",
            b.load,
            b.compute,
            b.drain,
            b.cycles(),
            r.cycles_per_vector(),
            r.cycles_per_vector() / b.cycles() as f64,
            r.compute_per_vector(),
            100.0 * r.utilization(),
        );
    }
    if !throughput {
        return Ok(());
    }
    println!("\n## Simulator throughput (same vectors, P = 4, with stalls)");
    println!("| simulator | cycles | sim seconds | cycles/s | build seconds |");
    println!("|---|---|---|---|---|");
    let mut sc = BsbuScenario::new(4, rows, cols, sparsity, vectors, seed)?;
    sc.corner_rows = false;
    if generator {
        sc = sc.generated(seed as u32, 0)?;
    }
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

/// The update unit's table: P = 1, 2, 4, 8 on two steps' worth of words (no
/// stalls), cycles against the bound of one beat (P weights) per cycle, and iCE40
/// synthesis.
fn upd_bench(vectors: usize, seed: u64, do_synth: bool, out: &Path) -> Result<()> {
    let cache = sim::verilator::default_cache_dir();
    let words = 4096;
    let v = testbench::upd::bench_vectors(vectors.max(1), words, seed);
    let mut rows = Vec::new();
    for p in [1usize, 2, 4, 8] {
        let unit = UpdUnit::new(p, 0, seed)?.with_cases(vec![("bench".into(), v.clone())]);
        let r = run_case(&unit, 0, SimKind::Verilator, Stall::NONE, &cache, out)?;
        r.expect_clean(unit.out_words(0))
            .map_err(anyhow::Error::msg)?;
        println!("{}", r.summary());
        rows.push(UnitRow {
            lanes: p,
            cycles: r.cycles_per_vector(),
            bound: words.div_ceil(p) as f64,
            work: words as f64,
            synth: synth_row(&unit, do_synth, out),
        });
    }
    write_unit_table(
        "upd",
        &format!(
            "{} tensors of {words} weights, one BP and one DFA step",
            vectors.max(1)
        ),
        "one weight's update",
        &rows,
        out,
    )
}

fn dce_bench(
    lanes: usize,
    channels: usize,
    map: usize,
    vectors: usize,
    seed: u64,
    do_synth: bool,
    out: &PathBuf,
) -> Result<()> {
    let cache = sim::verilator::default_cache_dir();
    let mut layers = Vec::new();
    for g in [1usize, 2, 4, 8] {
        for d in 1..=4 {
            layers.push(
                DceLayer {
                    cs: channels,
                    ct: channels,
                    h: map,
                    w: map,
                    up: 1,
                    k: 3,
                    dil: d,
                    groups: g,
                    shift2: 0,
                    shift1: 0,
                }
                .with_default_shifts()?,
            );
        }
    }
    let cases = layers
        .iter()
        .map(|&l| {
            Ok(DceCase::random_only(
                format!("bench_d{}_g{}", l.dil, l.groups),
                l,
                vectors,
                seed,
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    let unit = DceUnit::new(lanes, cases)?;
    println!("## DCE utilization (P = {lanes}, C_s = C_t = {channels}, {map}x{map}, k = 3, no stalls, {vectors} vectors per row)");
    println!("| d | G | ideal cycles/pass | compute cycles/pass | utilization | total cycles/pass | total utilization | buffer reads over the run (x P = golden) | weight bits over the run (golden) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, c) in unit.cases.iter().enumerate() {
        let r = run_case(&unit, i, SimKind::Verilator, Stall::NONE, &cache, out)?;
        let t = r.traffic.context("the engine counts traffic")?;
        if r.stats.mismatches != 0 || !t.exact() {
            bail!("bench run failed its checks: {}", r.summary());
        }
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.2}% | {:.1} | {:.1}% | {} ({}) | {} ({}) |",
            c.layer.dil,
            c.layer.groups,
            r.ideal_per_vector,
            r.compute_per_vector(),
            100.0 * r.utilization(),
            r.cycles_per_vector(),
            100.0 * r.ideal_per_vector / r.cycles_per_vector(),
            t.rtl.error_reads,
            t.golden.error_reads,
            t.rtl.weight_bits,
            t.golden.weight_bits
        );
    }
    // The unit table: one layer at P = 1, 4, 8, each on its own design. It is the
    // synth default's layer (16 channels, 8×8, k = 3, d = 2) at G = 2, so that P = 8
    // divides the channels per group and the buffers fit the HX8K's 32 block RAMs
    // (the 32-channel 16×16 layer above needs 128 kbit for its source buffer alone).
    let layer = DceLayer {
        cs: 16,
        ct: 16,
        h: 8,
        w: 8,
        up: 1,
        k: 3,
        dil: 2,
        groups: 2,
        shift2: 0,
        shift1: 0,
    }
    .with_default_shifts()?;
    let mut table = Vec::new();
    for p in [1usize, 4, 8] {
        let case = DceCase::random_only(format!("unit_p{p}"), layer, vectors, seed)?;
        let unit = DceUnit::new(p, vec![case])?;
        let r = run_case(&unit, 0, SimKind::Verilator, Stall::NONE, &cache, out)?;
        if r.stats.mismatches != 0 {
            bail!("bench run failed its checks: {}", r.summary());
        }
        table.push(UnitRow {
            lanes: p,
            cycles: r.cycles_per_vector(),
            bound: r.ideal_per_vector,
            work: r.ideal_per_vector * p as f64,
            synth: synth_row(&unit, do_synth, out),
        });
    }
    write_unit_table(
        "dce",
        &format!("C_s = C_t = 16, 8x8, k = 3, d = 2, G = 2, {vectors} back-to-back passes, no stalls; bound = tap cycles at P lanes"),
        "one tap of D2 or D1 (k² per input and output channel, padding taps included, as the engine issues them) times its error word",
        &table,
        out,
    )
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Train(a) => train::run(&a)?,
        Cmd::Sweep(a) => train::sweep(&a)?,
        Cmd::TrainBench(a) => train::train_bench(&a)?,
        Cmd::Gradcheck(a) => gradcheck::run(&a)?,
        Cmd::Cost(a) => cost::run(&a)?,
        Cmd::Run(a) => run::run(&a)?,
        Cmd::Emit { unit, out } => {
            for u in build_units(&unit, 0)? {
                emit(u.as_ref(), &out)?;
            }
        }
        Cmd::Soak(a) => soak_cmd(a)?,
        Cmd::Cosim {
            unit,
            vectors,
            sim,
            mutant,
            out,
        } => {
            let mut problems = Vec::new();
            for u in build_units(&unit, vectors)? {
                problems.extend(match &mutant {
                    Some(name) => cosim(&Mutated::new(u.as_ref(), name)?, sim, &out)?,
                    None => cosim(u.as_ref(), sim, &out)?,
                });
            }
            if !problems.is_empty() {
                bail!(
                    "co-simulation found {} problem(s) (see the report and waveform above)",
                    problems.len()
                );
            }
        }
        Cmd::Mutants { unit, vectors, out } => {
            let mut survivors: Vec<&str> = Vec::new();
            for u in build_units(&unit, vectors)? {
                let sets = u.vector_sets()?;
                let cache = sim::verilator::default_cache_dir();
                let reports = mutation::run(u.design(), u.mutants(), &sets, &cache, &out)?;
                println!("{}", mutation::table(&reports));
                survivors.extend(
                    reports
                        .iter()
                        .filter(|r| !r.killed())
                        .map(|r| r.mutant.name),
                );
            }
            if !survivors.is_empty() {
                bail!(
                    "mutants survived every vector set: {}",
                    survivors.join(", ")
                );
            }
        }
        Cmd::Synth { unit, target, out } => {
            for u in build_units(&unit, 0)? {
                match target {
                    Target::Ice40 => {
                        synth(u.as_ref(), &out)?;
                    }
                    Target::Ecp5 => cells(u.as_ref(), synth::Family::Ecp5, &out)?,
                    Target::Xilinx => cells(u.as_ref(), synth::Family::Xilinx, &out)?,
                }
            }
        }
        Cmd::Bench {
            unit: UnitKind::Upd,
            vectors,
            seed,
            out,
            no_synth,
            ..
        } => upd_bench(vectors.unwrap_or(4), seed, !no_synth, &out)?,
        Cmd::Bench {
            unit: UnitKind::Dce,
            lanes,
            channels,
            map,
            vectors,
            seed,
            out,
            no_synth,
            ..
        } => dce_bench(
            lanes,
            channels,
            map,
            vectors.unwrap_or(4),
            seed,
            !no_synth,
            &out,
        )?,
        Cmd::Bench {
            unit: UnitKind::Bsbu,
            sparsity,
            rows,
            cols,
            vectors,
            seed,
            out,
            no_synth,
            generator,
            ..
        } => {
            let mut table = Vec::new();
            for (i, &s) in sparsity.iter().enumerate() {
                bench(
                    s,
                    rows,
                    cols,
                    vectors.unwrap_or(1000),
                    seed,
                    generator,
                    i == 0,
                    (i == 0).then_some(&mut table),
                    !no_synth,
                    &out,
                )?;
            }
            write_unit_table(
                "bsbu",
                &format!(
                    "{rows}x{cols}, sparsity {}, no stalls{}",
                    sparsity[0],
                    if generator { ", generator mode" } else { "" }
                ),
                if generator {
                    "one entry of S (zero or not) times its e_L word"
                } else {
                    "one nonzero of S times its e_L word"
                },
                &table,
                &out,
            )?;
        }
        Cmd::Flow { unit, vectors, out } => {
            let units = build_units(&unit, vectors)?;
            anyhow::ensure!(
                units.len() == 1,
                "flow runs one design; this bsbu config has {} tiles: run emit, cosim and synth instead",
                units.len()
            );
            let u = &units[0];
            emit(u.as_ref(), &out.join("emit"))?;
            let problems = cosim(u.as_ref(), SimArg::Both, &out.join("cosim"))?;
            let r = synth(u.as_ref(), &out.join("synth"))?;
            println!(
                "flow summary: {} P={} co-simulation {} on verilator and icarus; iCE40 HX8K {} LUT4, {} FF, {} BRAM, Fmax {:.1} MHz",
                u.name(),
                unit.lanes,
                if problems.is_empty() { "bit-exact" } else { "FAILED" },
                r.luts,
                r.ffs,
                r.brams,
                r.fmax_mhz
            );
            if !problems.is_empty() {
                bail!("co-simulation found {} problem(s)", problems.len());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use golden::rng::{Rng, SeedableRng};
    use testbench::prop::{self, Limits};

    /// The printed command line is the case: every drawn case (fresh designs, and
    /// new run-time parameters on a pooled engine with explicit `--sizes`) parses
    /// back, through the real `hdfa cosim` flags, into exactly the same case.
    #[test]
    fn every_drawn_case_prints_a_cosim_command_that_parses_back_into_it() {
        let mut rng = Rng::seed_from_u64(11);
        for k in testbench::spec::UnitKind::ALL {
            for _ in 0..300 {
                let d = prop::draw(k, &mut rng, &Limits::SOAK);
                for spec in [d.clone(), prop::redraw(&d, &mut rng, &Limits::SOAK)] {
                    let mut argv = vec!["hdfa".to_string(), "cosim".to_string()];
                    argv.extend(spec.args());
                    let cli = Cli::try_parse_from(&argv)
                        .unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
                    let Cmd::Cosim { unit, vectors, .. } = cli.cmd else {
                        panic!("not cosim: {}", argv.join(" "))
                    };
                    let back = unit
                        .spec(vectors)
                        .unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
                    assert_eq!(back, spec, "{}", argv.join(" "));
                }
            }
        }
    }
}
