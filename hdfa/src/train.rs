//! `hdfa train`: run an experiment with a progress bar, per-epoch metrics (CSV and
//! JSON), an SVG of the learning curves, atomic checkpoints and optional step dumps.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use golden::checkpoint::write_atomic;
use golden::cnn::num::{Fx, F32};
use golden::cnn::train::Loss;
use golden::config::{Config, FormatPreset, Mode};
use golden::experiment::{EpochMetrics, Experiment};
use indicatif::{ProgressBar, ProgressStyle};

use crate::plot::{two_panel_svg, Series};

/// Options of `hdfa train`.
#[derive(Args, Clone)]
pub struct TrainArgs {
    /// Experiment config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory (default: target/hdfa-out/train/<name>[-f32]).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the output directory's checkpoint, if there is one.
    #[arg(long)]
    pub resume: bool,
    /// Write global step N's inputs, weights, errors and gradients as .npy files.
    #[arg(long)]
    pub dump_step: Option<u64>,
    /// Run the f32 reference path instead of fixed point.
    #[arg(long)]
    pub f32: bool,
    /// Override the config's epoch count.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override the config's seed (weights, backward weights, data order, BP/DFA draws).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the config's mode: bp, dfa, cdfa or hdfa for CNN configs; bptt, dfa
    /// or hdfa for recurrent ones (hdfa keeps the config's bp_ratio, or needs one).
    #[arg(long)]
    pub mode: Option<String>,
    /// No progress bar (logs one line per epoch).
    #[arg(long)]
    pub quiet: bool,
    /// Train on these IDX images instead of the config's data (needs all four IDX flags).
    #[arg(long, requires_all = ["train_labels", "test_images", "test_labels"])]
    pub train_images: Option<PathBuf>,
    /// IDX training labels.
    #[arg(long, requires = "train_images")]
    pub train_labels: Option<PathBuf>,
    /// IDX test images.
    #[arg(long, requires = "train_images")]
    pub test_images: Option<PathBuf>,
    /// IDX test labels.
    #[arg(long, requires = "train_images")]
    pub test_labels: Option<PathBuf>,
    /// Hardware in the loop: train `--steps` steps with every DFA error propagation
    /// on the Verilated dce (conv paths) and bsbu (dense paths) and every weight
    /// update on the Verilated update unit (their words become the trainer's errors
    /// and state), check each pass and step against the golden model and the end
    /// against an all-golden run, and report the checksums, the time in the RTL and
    /// the cycles per step per unit. Exits non-zero on any difference, naming the
    /// first step and word that differ.
    #[arg(long, value_enum)]
    pub hw: Option<HwArg>,
    /// --hw: steps to train (from step 0).
    #[arg(long, requires = "hw")]
    pub steps: Option<usize>,
    /// --hw: lanes of the update unit (1..=8).
    #[arg(long, default_value_t = 4, requires = "hw")]
    pub lanes: usize,
    /// --hw: lanes of the dce and the bsbu.
    #[arg(long, default_value_t = 4, requires = "hw")]
    pub path_lanes: usize,
    /// --hw: keep the DFA error propagation in the golden model (only the weight
    /// updates on the RTL).
    #[arg(long, requires = "hw")]
    pub golden_errors: bool,
    /// --hw: keep only the first N training images (IDX data).
    #[arg(long, requires = "hw")]
    pub train_limit: Option<usize>,
    /// --hw: use a faulty unit, `UNIT:NAME` (UNIT upd, dce or bsbu; NAME from `hdfa
    /// mutants --unit UNIT`; a bare NAME is the update unit's), to see how a
    /// difference is reported.
    #[arg(long, requires = "hw")]
    pub hw_mutant: Option<String>,
}

/// Where hardware-in-the-loop training runs its RTL.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum HwArg {
    /// Verilator through the FFI shim (one cached model, reprogrammed per step).
    Verilator,
}

/// Run `hdfa train --hw`: see [`TrainArgs::hw`].
fn run_hw(a: &TrainArgs) -> Result<()> {
    let steps = a
        .steps
        .context("--hw needs --steps N (the steps to train with the RTL in the loop)")?;
    let mutant = match a.hw_mutant.as_deref() {
        None => None,
        Some(m) => Some(match m.split_once(':') {
            Some((u, name)) => (testbench::hil::HilUnit::parse(u)?, name.to_string()),
            None => (testbench::hil::HilUnit::Upd, m.to_string()),
        }),
    };
    let o = testbench::hil::HilOptions {
        steps,
        train_limit: a.train_limit,
        upd_lanes: a.lanes,
        path_lanes: a.path_lanes,
        propagation: !a.golden_errors,
        mutant,
        progress: true,
    };
    let cache = sim::verilator::default_cache_dir();
    let r = testbench::hil::train_on_hardware(&a.config, &o, &cache)?;
    let text = r.text();
    println!("{text}");
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/hdfa-out/train-hw").join(&r.config));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let p = out.join("hil_report.txt");
    write_atomic(&p, format!("{text}\n").as_bytes())?;
    println!("report: {}", p.display());
    if !r.identical() {
        anyhow::bail!("the run with the RTL in the loop differs from the golden run (see above)");
    }
    Ok(())
}

/// Run `hdfa train`.
pub fn run(a: &TrainArgs) -> Result<()> {
    if a.hw.is_some() {
        return run_hw(a);
    }
    // A recurrent config (`network = "rnn"`) has its own run; an unreadable file is
    // left to the CNN loader, whose error names it.
    if let Ok(text) = std::fs::read_to_string(&a.config) {
        if golden::rnn::config::is_rnn_config(&text) {
            return crate::rnn::run(a);
        }
    }
    let mut cfg = Config::load(&a.config)?;
    if let (Some(ti), Some(tl), Some(si), Some(sl)) = (
        &a.train_images,
        &a.train_labels,
        &a.test_images,
        &a.test_labels,
    ) {
        let mut raw = cfg.raw.clone();
        raw.data = golden::config::DataToml::Idx {
            train_images: ti.clone(),
            train_labels: tl.clone(),
            test_images: si.clone(),
            test_labels: sl.clone(),
            train_limit: 0,
            test_limit: 0,
        };
        cfg = Config::from_raw(&a.config, raw)?;
    }
    if let Some(e) = a.epochs {
        anyhow::ensure!(e >= 1, "--epochs {e} is out of range: valid range is >= 1");
        cfg.raw.epochs = e;
    }
    let mut suffix = String::new();
    if a.seed.is_some() || a.mode.is_some() {
        let mut raw = cfg.raw.clone();
        if let Some(s) = a.seed {
            raw.seed = s;
            suffix += &format!("-seed{s}");
        }
        if let Some(m) = &a.mode {
            raw.mode = config_value("--mode", m)?;
            if raw.mode != Mode::Hdfa {
                raw.bp_ratio = None;
            }
            suffix += &format!("-{m}");
        }
        cfg = Config::from_raw(&a.config, raw)?;
    }
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("target/hdfa-out/train").join(format!(
            "{}{suffix}{}",
            cfg.raw.name,
            if a.f32 { "-f32" } else { "" }
        ))
    });
    if a.f32 {
        go::<F32>(cfg, a, &out)
    } else {
        go::<Fx>(cfg, a, &out)
    }
}

fn go<N: Loss>(cfg: Config, a: &TrainArgs, out: &Path) -> Result<()> {
    let epochs = cfg.raw.epochs;
    let name = cfg.raw.name.clone();
    let mut exp = Experiment::<N>::new(cfg)?;
    // Only now, with the config and the data good, is anything written.
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ckpt = out.join("checkpoint.bin");
    if a.resume && ckpt.exists() {
        exp.load_checkpoint(&ckpt)?;
        println!(
            "resumed {} at epoch {} (step {})",
            ckpt.display(),
            exp.epoch,
            exp.trainer.step
        );
    }
    println!(
        "{name}: {} parameters, {} training / {} test images, {} batches of {} per epoch, {}",
        exp.trainer.net.n_params(),
        exp.train_x.len(),
        exp.test_x.len(),
        exp.batches(),
        exp.config.raw.batch,
        if a.f32 {
            "f32 reference"
        } else {
            "fixed point"
        }
    );
    let nb = exp.batches() as u64;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(nb * (epochs.saturating_sub(exp.epoch)) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("static template"),
    );
    let t0 = std::time::Instant::now();
    let mut samples = 0usize;
    while exp.epoch < epochs {
        // A dump is taken inside the epoch, right before its step is trained.
        let first = exp.epoch as u64 * nb;
        let dump_dir = a.dump_step.map(|ds| out.join(format!("dump-step{ds}")));
        let dump = a
            .dump_step
            .filter(|&ds| ds >= first && ds < first + nb)
            .map(|ds| {
                (
                    (ds - first) as usize,
                    dump_dir.as_deref().expect("set with the step"),
                )
            });
        let (mut run_loss, mut run_n, mut run_c) = (0.0, 0usize, 0usize);
        let bs = exp.config.raw.batch;
        let (m, dumped) = exp.run_epoch_dumping(dump, &mut |r| {
            run_loss += r.stats.loss;
            run_n += 1;
            run_c += r.stats.correct;
            bar.inc(1);
            bar.set_message(format!(
                "epoch {} loss {:.4} acc {:.1}%",
                r.epoch,
                run_loss / run_n as f64,
                100.0 * run_c as f64 / (run_n * bs) as f64
            ));
        })?;
        if let (Some(ds), false) = (a.dump_step, dumped.is_empty()) {
            let msg = format!(
                "dumped step {ds}: {} files in {}",
                dumped.len(),
                out.join(format!("dump-step{ds}")).display()
            );
            if a.quiet {
                println!("{msg}")
            } else {
                bar.println(msg)
            }
        }
        samples += exp.batches() * bs;
        if a.quiet {
            println!("{}", epoch_line(&m))
        } else {
            bar.println(epoch_line(&m))
        }
        exp.save_checkpoint(&ckpt)?;
        write_metrics(out, &name, &exp.history)?;
    }
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let last = exp.history.last().copied();
    if let Some(m) = last {
        println!(
            "done: test accuracy {:.2}%, test loss {:.4}; weight checksum {:016x}; {:.0} samples/s; outputs in {}",
            100.0 * m.test_acc,
            m.test_loss,
            exp.weight_checksum(),
            samples as f64 / secs.max(1e-9),
            out.display()
        );
    }
    Ok(())
}

fn epoch_line(m: &EpochMetrics) -> String {
    format!(
        "epoch {:3}: train loss {:.4} acc {:6.2}% | test loss {:.4} acc {:6.2}% | BP/DFA steps {}/{}",
        m.epoch,
        m.train_loss,
        100.0 * m.train_acc,
        m.test_loss,
        100.0 * m.test_acc,
        m.bp_steps,
        m.dfa_steps
    )
}

fn write_metrics(out: &Path, name: &str, h: &[EpochMetrics]) -> Result<()> {
    let mut csv =
        String::from("epoch,train_loss,train_acc,test_loss,test_acc,bp_steps,dfa_steps\n");
    let mut json = String::from("[\n");
    for (i, m) in h.iter().enumerate() {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{}",
            m.epoch, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.bp_steps, m.dfa_steps
        );
        let _ = write!(
            json,
            "  {{\"epoch\": {}, \"train_loss\": {}, \"train_acc\": {}, \"test_loss\": {}, \"test_acc\": {}, \"bp_steps\": {}, \"dfa_steps\": {}}}{}\n",
            m.epoch,
            m.train_loss,
            m.train_acc,
            m.test_loss,
            m.test_acc,
            m.bp_steps,
            m.dfa_steps,
            if i + 1 < h.len() { "," } else { "" }
        );
    }
    json.push_str("]\n");
    write_atomic(&out.join("metrics.csv"), csv.as_bytes())?;
    write_atomic(&out.join("metrics.json"), json.as_bytes())?;
    let pts =
        |f: fn(&EpochMetrics) -> f64| h.iter().map(|m| (m.epoch as f64, f(m))).collect::<Vec<_>>();
    let acc = [
        Series {
            name: "train",
            color: "#1f77b4",
            points: pts(|m| 100.0 * m.train_acc),
        },
        Series {
            name: "test",
            color: "#d62728",
            points: pts(|m| 100.0 * m.test_acc),
        },
    ];
    let loss = [
        Series {
            name: "train",
            color: "#1f77b4",
            points: pts(|m| m.train_loss),
        },
        Series {
            name: "test",
            color: "#d62728",
            points: pts(|m| m.test_loss),
        },
    ];
    let svg = two_panel_svg(
        &format!("{name}: learning curves"),
        ("accuracy (%) vs epoch", &acc),
        ("loss vs epoch", &loss),
    )?;
    write_atomic(&out.join("curves.svg"), svg.as_bytes())?;
    Ok(())
}

/// Options of `hdfa sweep`.
#[derive(Args, Clone)]
pub struct SweepArgs {
    /// Base experiment config (its network, data and optimizer are kept).
    #[arg(long)]
    pub config: PathBuf,
    /// Override the epoch count of every run.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Where to write the table (markdown).
    #[arg(long, default_value = "target/hdfa-out/sweep")]
    pub out: PathBuf,
    /// Also run every rung on the f32 path (a column each), to show what fixed point
    /// costs per rung.
    #[arg(long)]
    pub f32: bool,
    /// Run every rung with this many seeds (the config's seed, seed + 1, ...) and
    /// report mean ± standard deviation: neighbouring rungs often differ by less
    /// than one seed's noise.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub seeds: u64,
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// "m%" for one seed, "m% ± s" for several.
pub fn pct(v: &[f64]) -> String {
    let (m, s) = mean_std(v);
    if v.len() > 1 {
        format!("{:.2}% ± {:.2}", 100.0 * m, 100.0 * s)
    } else {
        format!("{:.2}%", 100.0 * m)
    }
}

/// Run the ladder and print a markdown table.
pub fn sweep(a: &SweepArgs) -> Result<()> {
    if let Ok(text) = std::fs::read_to_string(&a.config) {
        if golden::rnn::config::is_rnn_config(&text) {
            return crate::rnn::sweep(a);
        }
    }
    let base = Config::load(&a.config)?;
    let mut rows: Vec<(String, Config)> = Vec::new();
    let variant =
        |name: &str, f: &dyn Fn(&mut golden::config::ConfigToml)| -> Result<(String, Config)> {
            let mut raw = base.raw.clone();
            if let Some(e) = a.epochs {
                raw.epochs = e;
            }
            raw.bp_ratio = None;
            f(&mut raw);
            let c = Config::from_raw(&base.file, raw)
                .with_context(|| format!("sweep variant `{name}`"))?;
            Ok((name.to_string(), c))
        };
    let modules = base.raw.modules.clone();
    rows.push(variant("original DFA", &|r| {
        r.mode = Mode::Dfa;
        r.gamma = 1.0;
    })?);
    // Conv-DFA rungs (plain momentum, γ = 1): (name, modules, dilation, groups).
    let rungs: [(&str, bool, bool, usize); 5] = [
        ("conv-DFA (one module, no dilation)", false, false, 1),
        ("+ modules", true, false, 1),
        ("+ dilation", true, true, 1),
        ("+ groups G = 4", true, true, 4),
        ("+ groups G = 8", true, true, 8),
    ];
    for (name, use_modules, dilate, groups) in rungs {
        rows.push(variant(name, &|r| {
            r.mode = Mode::Cdfa;
            r.gamma = 1.0;
            r.modules = if use_modules { modules.clone() } else { vec![] };
            r.backward.dilate = dilate;
            r.backward.groups = groups;
        })?);
    }
    for p in [0.1, 0.3, 0.5] {
        rows.push(variant(&format!("HDFA p = {p} (γ = 1)"), &|r| {
            r.mode = Mode::Hdfa;
            r.bp_ratio = Some(p);
            // γ chosen on held-out training images (README, "Choosing γ"): between
            // two BP steps the stale BP velocity is applied at every DFA step with
            // weight 1 − γ. At p = 0.1 any γ ≤ 0.8 diverged on some seed, and no
            // γ < 1 beat γ = 1 at p = 0.1, 0.3 or 0.5 beyond the seeds' spread.
            r.gamma = 1.0;
            r.modules = modules.clone();
            r.backward.dilate = true;
        })?);
    }
    rows.push(variant("BP", &|r| {
        r.mode = Mode::Bp;
    })?);
    let mut table = if a.f32 {
        String::from(
            "| variant | test acc | train acc | test loss | samples/s | f32 test acc | f32 test loss |\n|---|---|---|---|---|---|---|\n",
        )
    } else {
        String::from(
            "| variant | test acc | train acc | test loss | samples/s |\n|---|---|---|---|---|\n",
        )
    };
    println!("{}", table.trim_end());
    for (name, cfg) in rows {
        let (mut acc, mut train, mut loss, mut facc, mut floss) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut steps, mut secs) = (0, 0.0);
        for k in 0..a.seeds {
            let mut c = cfg.clone();
            c.raw.seed = cfg.raw.seed.wrapping_add(k);
            let t0 = std::time::Instant::now();
            let m = run_to_end::<Fx>(&c)?;
            secs += t0.elapsed().as_secs_f64();
            steps += m.1;
            acc.push(m.0.test_acc);
            train.push(m.0.train_acc);
            loss.push(m.0.test_loss);
            if a.f32 {
                let f = run_to_end::<F32>(&c)?;
                facc.push(f.0.test_acc);
                floss.push(f.0.test_loss);
            }
        }
        // Throughput of the fixed-point runs.
        let sps = (steps * cfg.raw.batch) as f64 / secs;
        let mut row = format!(
            "| {name} | {} | {} | {:.4} | {sps:.0} |",
            pct(&acc),
            pct(&train),
            mean_std(&loss).0
        );
        if a.f32 {
            row += &format!(" {} | {:.4} |", pct(&facc), mean_std(&floss).0);
        }
        println!("{row}");
        table.push_str(&row);
        table.push('\n');
    }
    write_table(&a.out, &base.raw.name, &table)
}

/// Write a sweep's markdown table atomically as `out/NAME.md` and say where.
pub fn write_table(out: &Path, name: &str, table: &str) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("{name}.md"));
    write_atomic(&path, table.as_bytes())?;
    println!("table: {}", path.display());
    Ok(())
}

/// Train `cfg` to its last epoch; its final metrics and the steps taken.
fn run_to_end<N: Loss>(cfg: &Config) -> Result<(EpochMetrics, usize)> {
    let mut exp = Experiment::<N>::new(cfg.clone())?;
    let epochs = exp.config.raw.epochs;
    while exp.epoch < epochs {
        exp.run_epoch(&mut |_| {});
    }
    let m = *exp.history.last().expect("at least one epoch");
    Ok((m, epochs * exp.batches()))
}

/// Options of `hdfa train-bench`.
#[derive(Args, Clone)]
pub struct TrainBenchArgs {
    /// Experiment configs to measure (network, batch, threads and data come from each;
    /// recurrent configs get their own table, in tokens/s).
    #[arg(long, num_args = 1.., default_values = ["configs/reference-cnn.toml", "configs/fashion-deep.toml"])]
    pub config: Vec<PathBuf>,
    /// Training steps to time per path (after one warm-up step).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Thread counts to measure (default: each config's own).
    #[arg(long, num_args = 1..)]
    pub threads: Vec<usize>,
    /// Measure only the fixed-point path.
    #[arg(long)]
    pub fixed_only: bool,
    /// Also time PyTorch (CPU) on the same network, batch and thread count, in the
    /// same run (`scripts/torch_bench.py`; needs python3-torch), and print the ratio.
    #[arg(long)]
    pub torch: bool,
    /// Number-format presets to measure, by the config's names
    /// (q8.8-q4.12-q3.13, q8.24-q4.12-q3.13; default: each config's own).
    #[arg(long, num_args = 1..)]
    pub format: Vec<String>,
}

fn bench_path<N: Loss>(cfg: &Config, steps: usize) -> Result<f64> {
    let exp = Experiment::<N>::new(cfg.clone())?;
    let order = exp.order(1);
    let mut trainer = exp.trainer.clone();
    let threads = cfg.raw.threads;
    let nb = exp.batches();
    anyhow::ensure!(
        nb >= steps + 1,
        "{} has only {nb} batches; use fewer --steps",
        cfg.file.display()
    );
    trainer.train_step(&exp.batch(&order, 0), threads);
    let t0 = std::time::Instant::now();
    for b in 1..=steps {
        trainer.train_step(&exp.batch(&order, b), threads);
    }
    Ok((steps * cfg.raw.batch) as f64 / t0.elapsed().as_secs_f64())
}

/// A flag's value parsed by the config's own names and parser (so both accept the
/// same values), with an error naming the flag, the value and the valid ones.
pub fn config_value<T: serde::de::DeserializeOwned>(flag: &str, value: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|e| anyhow::anyhow!("{flag} {value} is out of range: {e}"))
}

/// PyTorch's samples/s on the same config, from `scripts/torch_bench.py` (`vocab`:
/// the corpus vocabulary of a recurrent config).
pub fn torch_samples_per_s(
    config: &Path,
    threads: usize,
    steps: usize,
    vocab: Option<usize>,
) -> Result<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/torch_bench.py");
    // The system interpreter, where apt-get puts python3-torch (a pyenv or venv
    // python3 earlier in PATH would not see it).
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg("--config")
        .arg(config)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--steps")
        .arg(steps.to_string())
        .args(
            vocab
                .map(|v| ["--vocab".to_string(), v.to_string()])
                .into_iter()
                .flatten(),
        )
        .output()
        .context("running python3 (install: sudo apt-get install python3 python3-torch)")?;
    if !out.status.success() {
        anyhow::bail!(
            "{} failed ({}); install PyTorch with: sudo apt-get install python3-torch\nstdout:\n{}\nstderr:\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .with_context(|| format!("torch_bench.py printed no JSON: {text}"))?;
    v["samples_per_s"]
        .as_f64()
        .with_context(|| format!("no samples_per_s in {text}"))
}

/// Measure and print samples/s.
pub fn train_bench(a: &TrainBenchArgs) -> Result<()> {
    let isa = golden::cnn::gemm::isa_name();
    println!("GEMM instruction set: {isa}");
    let (rnn, cnn): (Vec<&PathBuf>, Vec<&PathBuf>) = a.config.iter().partition(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| golden::rnn::config::is_rnn_config(&t))
    });
    if !rnn.is_empty() {
        crate::rnn::bench(&rnn, a)?;
        if cnn.is_empty() {
            return Ok(());
        }
        println!();
    }
    println!(
        "| config | format | threads | batch | fixed point samples/s | f32 samples/s | PyTorch samples/s | fixed / PyTorch | GEMM rows: 1 pass / chunked / i64 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let formats = a
        .format
        .iter()
        .map(|f| config_value::<FormatPreset>("--format", f).map(Some))
        .collect::<Result<Vec<_>>>()?;
    let formats = if formats.is_empty() {
        vec![None]
    } else {
        formats
    };
    let thread_list: Vec<Option<usize>> = if a.threads.is_empty() {
        vec![None]
    } else {
        a.threads.iter().map(|&t| Some(t)).collect()
    };
    for path in cnn {
        for (t, fmt) in thread_list
            .iter()
            .flat_map(|t| formats.iter().map(move |f| (t, f)))
        {
            let mut cfg = Config::load(path)?;
            if let Some(t) = t {
                cfg.raw.threads = *t;
            }
            if let Some(f) = fmt {
                cfg.raw.format = *f;
            }
            let fmt_name = serde_json::to_value(cfg.raw.format)?;
            let before = golden::cnn::gemm::row_stats();
            let fx = bench_path::<Fx>(&cfg, a.steps)?;
            let after = golden::cnn::gemm::row_stats();
            let (one, chunked, wide) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
            let total = (one + chunked + wide).max(1) as f64;
            let rows = format!(
                "{:.2}% / {:.2}% / {:.3}%",
                100.0 * one as f64 / total,
                100.0 * chunked as f64 / total,
                100.0 * wide as f64 / total
            );
            let f = if a.fixed_only {
                "-".to_string()
            } else {
                format!("{:.0}", bench_path::<F32>(&cfg, a.steps)?)
            };
            let (torch, ratio) = if a.torch {
                let p = torch_samples_per_s(path, cfg.raw.threads, a.steps, None)?;
                (format!("{p:.0}"), format!("{:.2}x", fx / p))
            } else {
                ("-".to_string(), "-".to_string())
            };
            println!(
                "| {} | {} | {} | {} | {fx:.0} | {f} | {torch} | {ratio} | {rows} |",
                cfg.raw.name,
                fmt_name.as_str().unwrap_or("?"),
                cfg.raw.threads,
                cfg.raw.batch
            );
        }
    }
    Ok(())
}
