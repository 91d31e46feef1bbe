//! `hdfa train` on a recurrent config (`network = "rnn"`): the Austen corpus at word
//! or character level, BPTT / DFA / HDFA with fixed-point Adam, per-epoch next-token
//! accuracy and perplexity (train, valid, test) as CSV, JSON and an SVG of the curves.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use golden::checkpoint::write_atomic;
use golden::rnn::checkpoint::{self, RnnEpoch};
use golden::rnn::config::RnnConfig;
use golden::rnn::float_train::FloatRnnTrainer;
use golden::rnn::train::{batchify, windows, LmTrainer, RnnEval};
use golden::text::Level;
use indicatif::{ProgressBar, ProgressStyle};

use crate::plot::{two_panel_svg, Series};
use crate::train::TrainArgs;

/// One epoch from zero states over `wins` of every stream: the epoch's training
/// sums; `each` sees the sums so far after every step.
fn train_epoch(
    tr: &mut dyn LmTrainer,
    streams: &[Vec<u32>],
    wins: &[(usize, usize)],
    mut each: impl FnMut(&RnnEval),
) -> RnnEval {
    tr.reset_state();
    let mut train = RnnEval::default();
    for &w in wins {
        train.add(&tr.train_step(streams, w));
        each(&train);
    }
    train
}

/// Run a recurrent config.
pub fn run(a: &TrainArgs) -> Result<()> {
    for (flag, set) in [
        ("--dump-step", a.dump_step.is_some()),
        ("--train-images", a.train_images.is_some()),
    ] {
        anyhow::ensure!(
            !set,
            "{flag} is not available for recurrent configs ({}) yet: valid for CNN configs only",
            a.config.display()
        );
    }
    let mut cfg = RnnConfig::load(&a.config)?;
    if let Some(e) = a.epochs {
        anyhow::ensure!(e >= 1, "--epochs {e} is out of range: valid range is >= 1");
        cfg.raw.epochs = e;
    }
    let mut suffix = String::new();
    if let Some(s) = a.seed {
        cfg.raw.seed = s;
        suffix = format!("-seed{s}");
    }
    if let Some(m) = &a.mode {
        cfg.raw.set_mode(
            crate::train::config_value("--mode", m)
                .with_context(|| format!("{}: a recurrent config", a.config.display()))?,
        );
        suffix += &format!("-{m}");
    }
    let cfg = RnnConfig::from_raw(&a.config, cfg.raw)?;
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("target/hdfa-out/train").join(format!(
            "{}{suffix}{}",
            cfg.raw.name,
            if a.f32 { "-f32" } else { "" }
        ))
    });
    let corpus = cfg.load_corpus()?;
    let (batch, t) = (cfg.hyper.batch, cfg.hyper.bptt);
    anyhow::ensure!(
        corpus.train.len() / batch >= 2,
        "{}: {} training tokens for batch = {batch}: valid is at least 2 tokens per stream",
        a.config.display(),
        corpus.train.len()
    );
    let mut fixed = cfg.trainer(corpus.vocab.len())?;
    // Only now, with the config and the data good, is anything written.
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let ckpt = out.join("checkpoint.bin");
    // The f32 path starts from the fixed-point trainer's weights, feedback and draw
    // (restored from its own checkpoint on --resume).
    let mut float = a.f32.then(|| FloatRnnTrainer::<f32>::from_fixed(&fixed));
    let mut history: Vec<RnnEpoch> = Vec::new();
    let mut done = 0;
    if a.resume && ckpt.exists() {
        let hash = cfg.trajectory_hash();
        (done, history) = match float.as_mut() {
            Some(f) => checkpoint::load(&ckpt, hash, f)?,
            None => checkpoint::load(&ckpt, hash, &mut fixed)?,
        };
        println!(
            "resumed {} at epoch {done} (step {})",
            ckpt.display(),
            history.last().map_or(0, |m| m.steps)
        );
    }
    let streams = batchify(&corpus.train, batch);
    let wins = windows(streams[0].len(), t);
    println!(
        "{}: {:?} cell, {} level, vocabulary {}, {} training / {} valid / {} test tokens, {} windows of {t} x {batch} streams per epoch, {:?} (BPTT share {}), {}",
        cfg.raw.name,
        cfg.kind,
        if cfg.level == Level::Word { "word" } else { "char" },
        corpus.vocab.len(),
        corpus.train.len(),
        corpus.valid.len(),
        corpus.test.len(),
        wins.len(),
        cfg.raw.mode,
        cfg.bp_ratio,
        if a.f32 {
            "f32 reference"
        } else {
            "fixed point"
        }
    );
    let epochs = cfg.raw.epochs;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((wins.len() * epochs.saturating_sub(done)) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("static template"),
    );
    for epoch in done + 1..=epochs {
        let tr: &mut dyn LmTrainer = match float.as_mut() {
            Some(f) => f,
            None => &mut fixed,
        };
        let t0 = std::time::Instant::now();
        let train = train_epoch(tr, &streams, &wins, |so_far| {
            bar.inc(1);
            bar.set_message(format!(
                "epoch {epoch} loss {:.3} ppl {:.1} acc {:.1}%",
                so_far.loss(),
                so_far.perplexity(),
                100.0 * so_far.accuracy()
            ));
        });
        let tokens_per_s = train.tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let (steps, bp_steps) = tr.steps();
        let m = RnnEpoch {
            epoch,
            steps,
            bp_steps,
            train,
            valid: tr.evaluate(&corpus.valid, batch),
            test: tr.evaluate(&corpus.test, batch),
            tokens_per_s,
        };
        let line = format!(
            "epoch {epoch:3}: train loss {:.4} ppl {:.2} acc {:.2}% | valid ppl {:.2} acc {:.2}% | test loss {:.4} ppl {:.2} acc {:.2}% | BPTT/DFA steps {}/{} | {:.0} tokens/s",
            m.train.loss(),
            m.train.perplexity(),
            100.0 * m.train.accuracy(),
            m.valid.perplexity(),
            100.0 * m.valid.accuracy(),
            m.test.loss(),
            m.test.perplexity(),
            100.0 * m.test.accuracy(),
            m.bp_steps,
            m.steps - m.bp_steps,
            m.tokens_per_s
        );
        if a.quiet {
            println!("{line}")
        } else {
            bar.println(line)
        }
        history.push(m);
        write_metrics(&out, &cfg.raw.name, &history)?;
        match float.as_ref() {
            Some(f) => checkpoint::save(&ckpt, cfg.trajectory_hash(), epoch, f, &history)?,
            None => checkpoint::save(&ckpt, cfg.trajectory_hash(), epoch, &fixed, &history)?,
        }
    }
    bar.finish_and_clear();
    let tr: &dyn LmTrainer = match float.as_ref() {
        Some(f) => f,
        None => &fixed,
    };
    if let Some(m) = history.last() {
        println!(
            "done: test perplexity {:.2}, next-token accuracy {:.2}%; weights and Adam checksum {:016x} ({}); outputs in {}",
            m.test.perplexity(),
            100.0 * m.test.accuracy(),
            tr.checksum(),
            if a.f32 { "f32" } else { "fixed point" },
            out.display()
        );
    }
    Ok(())
}

fn write_metrics(out: &Path, name: &str, h: &[RnnEpoch]) -> Result<()> {
    let mut csv = String::from(
        "epoch,steps,bp_steps,train_loss,train_ppl,train_acc,valid_loss,valid_ppl,valid_acc,test_loss,test_ppl,test_acc,tokens_per_s\n",
    );
    let mut rows = Vec::new();
    for m in h {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.1}",
            m.epoch,
            m.steps,
            m.bp_steps,
            m.train.loss(),
            m.train.perplexity(),
            m.train.accuracy(),
            m.valid.loss(),
            m.valid.perplexity(),
            m.valid.accuracy(),
            m.test.loss(),
            m.test.perplexity(),
            m.test.accuracy(),
            m.tokens_per_s
        );
        rows.push(serde_json::json!({
            "epoch": m.epoch, "steps": m.steps, "bp_steps": m.bp_steps,
            "train_loss": m.train.loss(), "train_ppl": m.train.perplexity(), "train_acc": m.train.accuracy(),
            "valid_loss": m.valid.loss(), "valid_ppl": m.valid.perplexity(), "valid_acc": m.valid.accuracy(),
            "test_loss": m.test.loss(), "test_ppl": m.test.perplexity(), "test_acc": m.test.accuracy(),
            "tokens_per_s": m.tokens_per_s,
        }));
    }
    write_atomic(&out.join("metrics.csv"), csv.as_bytes())?;
    let json = serde_json::to_string_pretty(&rows)? + "\n";
    write_atomic(&out.join("metrics.json"), json.as_bytes())?;
    let pts =
        |f: &dyn Fn(&RnnEpoch) -> f64| h.iter().map(|m| (m.epoch as f64, f(m))).collect::<Vec<_>>();
    let series = |f: &dyn Fn(&RnnEval) -> f64| {
        [
            Series {
                name: "train",
                color: "#1f77b4",
                points: pts(&|m| f(&m.train)),
            },
            Series {
                name: "valid",
                color: "#2ca02c",
                points: pts(&|m| f(&m.valid)),
            },
            Series {
                name: "test",
                color: "#d62728",
                points: pts(&|m| f(&m.test)),
            },
        ]
    };
    let acc = series(&|e| 100.0 * e.accuracy());
    let ppl = series(&|e| e.perplexity());
    let svg = two_panel_svg(
        &format!("{name}: learning curves"),
        ("next-token accuracy (%) vs epoch", &acc),
        ("perplexity vs epoch", &ppl),
    )?;
    write_atomic(&out.join("curves.svg"), svg.as_bytes())?;
    Ok(())
}

/// `hdfa sweep` on a recurrent config: the ladder of section 4.2 (original DFA with
/// real-valued feedback, + modules, + upper-triangular feedback, + binary, + sparse
/// at 80 / 95 / 98%, + B.2 initialization, HDFA at p = 0.1 and 0.2, BPTT), each
/// trained for the config's epochs; one markdown row per rung with test perplexity
/// and accuracy (and the f32 path's with `--f32`).
pub fn sweep(a: &crate::train::SweepArgs) -> Result<()> {
    use crate::train::{mean_std, pct};
    use golden::rnn::config::RnnMode;
    let base = RnnConfig::load(&a.config)?;
    type Edit = Box<dyn Fn(&mut golden::rnn::config::RnnConfigToml)>;
    let dfa = |modular: bool, triangular: bool, init: bool, binary: bool, sparsity: f64| -> Edit {
        Box::new(move |r| {
            r.set_mode(RnnMode::Dfa);
            r.feedback.modular = modular;
            r.feedback.triangular = triangular;
            r.feedback.init = init;
            r.feedback.binary = binary;
            r.feedback.sparsity = sparsity;
            // The shift sets the mix of DFA and BPTT steps in one Adam state; with DFA
            // steps only, Adam's normalization cancels it (up to ε): the paper's rungs.
            r.feedback.grad_shift = 0;
        })
    };
    let hdfa = |p: f64| -> Edit {
        Box::new(move |r| {
            r.mode = RnnMode::Hdfa;
            r.bp_ratio = Some(p);
            r.feedback.modular = true;
            r.feedback.triangular = true;
            r.feedback.init = true;
            r.feedback.binary = true;
        })
    };
    let sp = base.raw.feedback.sparsity;
    let rungs: Vec<(String, Edit)> = vec![
        (
            "original DFA (real-valued)".into(),
            dfa(false, false, false, false, 0.0),
        ),
        ("+ modules".into(), dfa(true, false, false, false, 0.0)),
        (
            "+ upper-triangular".into(),
            dfa(true, true, false, false, 0.0),
        ),
        ("+ binary".into(), dfa(true, true, false, true, 0.0)),
        ("+ sparsity 0.8".into(), dfa(true, true, false, true, 0.8)),
        ("+ sparsity 0.95".into(), dfa(true, true, false, true, 0.95)),
        ("+ sparsity 0.98".into(), dfa(true, true, false, true, 0.98)),
        (
            format!("+ init (B.2), sparsity {sp}"),
            dfa(true, true, true, true, sp),
        ),
        (format!("HDFA p = 0.1 (sparsity {sp})"), hdfa(0.1)),
        (format!("HDFA p = 0.2 (sparsity {sp})"), hdfa(0.2)),
        ("BPTT".into(), Box::new(|r| r.set_mode(RnnMode::Bptt))),
    ];
    let corpus = base.load_corpus()?;
    let mut table = String::from(if a.f32 {
        "| variant | test perplexity | test acc | valid perplexity | train acc | tokens/s | f32 test perplexity | f32 test acc |\n|---|---|---|---|---|---|---|---|\n"
    } else {
        "| variant | test perplexity | test acc | valid perplexity | train acc | tokens/s |\n|---|---|---|---|---|---|\n"
    });
    println!("{}", table.trim_end());
    // Train one rung for its epochs: (test, valid, last epoch's train) sums, tokens
    // trained and seconds.
    let run_rung = |tr: &mut dyn LmTrainer, cfg: &RnnConfig| {
        let streams = batchify(&corpus.train, cfg.hyper.batch);
        let wins = windows(streams[0].len(), cfg.hyper.bptt);
        let t0 = std::time::Instant::now();
        let (mut train, mut tokens) = (RnnEval::default(), 0u64);
        for _ in 0..cfg.raw.epochs {
            train = train_epoch(tr, &streams, &wins, |_| {});
            tokens += train.tokens;
        }
        let secs = t0.elapsed().as_secs_f64();
        let test = tr.evaluate(&corpus.test, cfg.hyper.batch);
        let valid = tr.evaluate(&corpus.valid, cfg.hyper.batch);
        (test, valid, train, tokens, secs)
    };
    for (name, edit) in rungs {
        let mut raw = base.raw.clone();
        if let Some(e) = a.epochs {
            raw.epochs = e;
        }
        edit(&mut raw);
        let mut cols: [Vec<f64>; 6] = Default::default();
        let (mut tokens, mut secs) = (0u64, 0.0);
        for k in 0..a.seeds {
            let mut r = raw.clone();
            r.seed = raw.seed.wrapping_add(k);
            let cfg = RnnConfig::from_raw(&a.config, r)
                .with_context(|| format!("sweep variant `{name}`"))?;
            let mut tr = cfg.trainer(corpus.vocab.len())?;
            if a.f32 {
                let mut fl = FloatRnnTrainer::<f32>::from_fixed(&tr);
                let (test, ..) = run_rung(&mut fl, &cfg);
                cols[4].push(test.perplexity());
                cols[5].push(test.accuracy());
            }
            let (test, valid, train, n, s) = run_rung(&mut tr, &cfg);
            tokens += n;
            secs += s;
            cols[0].push(test.perplexity());
            cols[1].push(test.accuracy());
            cols[2].push(valid.perplexity());
            cols[3].push(train.accuracy());
        }
        let ppl = |v: &[f64]| {
            let (m, s) = mean_std(v);
            if v.len() > 1 {
                format!("{m:.2} ± {s:.2}")
            } else {
                format!("{m:.2}")
            }
        };
        let mut row = format!(
            "| {name} | {} | {} | {} | {} | {:.0} |",
            ppl(&cols[0]),
            pct(&cols[1]),
            ppl(&cols[2]),
            pct(&cols[3]),
            tokens as f64 / secs.max(1e-9)
        );
        if a.f32 {
            row += &format!(" {} | {} |", ppl(&cols[4]), pct(&cols[5]));
        }
        println!("{row}");
        table.push_str(&row);
        table.push('\n');
    }
    crate::train::write_table(&a.out, &base.raw.name, &table)
}

/// `hdfa train-bench` on recurrent configs: training tokens/s of the fixed-point and
/// f32 paths, in the config's mode and in BPTT only (the work PyTorch does), and
/// PyTorch CPU on the same shapes in the same run (`--torch`).
pub fn bench(paths: &[&PathBuf], a: &crate::train::TrainBenchArgs) -> Result<()> {
    use golden::rnn::config::RnnMode;
    anyhow::ensure!(
        a.format.is_empty(),
        "--format applies to CNN configs only (a recurrent model has one set of formats)"
    );
    println!("| config | mode | threads | batch x T | fixed point tokens/s | f32 tokens/s | PyTorch tokens/s (BPTT) | fixed / PyTorch |");
    println!("|---|---|---|---|---|---|---|---|");
    for path in paths {
        let base = RnnConfig::load(path)?;
        let corpus = base.load_corpus()?;
        let threads: Vec<usize> = if a.threads.is_empty() {
            vec![base.raw.threads]
        } else {
            a.threads.clone()
        };
        for th in threads {
            let torch = if a.torch {
                Some(crate::train::torch_samples_per_s(
                    path,
                    th,
                    a.steps,
                    Some(corpus.vocab.len()),
                )?)
            } else {
                None
            };
            let modes = if base.raw.mode == RnnMode::Bptt {
                vec![RnnMode::Bptt]
            } else {
                vec![base.raw.mode, RnnMode::Bptt]
            };
            for mode in modes {
                let mut raw = base.raw.clone();
                raw.threads = th;
                raw.set_mode(mode);
                let cfg = RnnConfig::from_raw(path, raw)?;
                let streams = batchify(&corpus.train, cfg.hyper.batch);
                let wins = windows(streams[0].len(), cfg.hyper.bptt);
                anyhow::ensure!(
                    wins.len() > a.steps,
                    "{} has only {} windows per epoch: valid --steps is at most {}",
                    path.display(),
                    wins.len(),
                    wins.len() - 1
                );
                let time = |tr: &mut dyn LmTrainer| {
                    tr.train_step(&streams, wins[0]);
                    let t0 = std::time::Instant::now();
                    let mut tokens = 0;
                    for &w in &wins[1..=a.steps] {
                        tokens += tr.train_step(&streams, w).tokens;
                    }
                    tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9)
                };
                let mut fixed = cfg.trainer(corpus.vocab.len())?;
                let f32_rate =
                    (!a.fixed_only).then(|| time(&mut FloatRnnTrainer::<f32>::from_fixed(&fixed)));
                let fx = time(&mut fixed);
                let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
                println!(
                    "| {} | {} | {th} | {} x {} | {fx:.0} | {} | {} | {} |",
                    cfg.raw.name,
                    match mode {
                        RnnMode::Hdfa => format!("hdfa p = {}", cfg.bp_ratio),
                        m => format!("{m:?}").to_lowercase(),
                    },
                    cfg.hyper.batch,
                    cfg.hyper.bptt,
                    show(f32_rate),
                    show(torch),
                    torch.map_or("-".to_string(), |p| format!("{:.2}x", fx / p)),
                );
            }
        }
    }
    Ok(())
}
