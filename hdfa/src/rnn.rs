//! `hdfa train` on a recurrent config (`network = "rnn"`): the Austen corpus at word
//! or character level, BPTT / DFA / HDFA with fixed-point Adam, per-epoch next-token
//! accuracy and perplexity (train, valid, test) as CSV, JSON and an SVG of the curves.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use golden::checkpoint::write_atomic;
use golden::rnn::config::RnnConfig;
use golden::rnn::train::{batchify, windows, RnnEval};
use golden::text::Level;
use indicatif::{ProgressBar, ProgressStyle};

use crate::plot::{two_panel_svg, Series};
use crate::train::TrainArgs;

/// One epoch's metrics.
#[derive(Clone, Copy, Debug)]
struct RnnEpoch {
    epoch: usize,
    steps: u64,
    bp_steps: u64,
    train: RnnEval,
    valid: RnnEval,
    test: RnnEval,
    tokens_per_s: f64,
}

/// Run a recurrent config.
pub fn run(a: &TrainArgs) -> Result<()> {
    for (flag, set) in [
        ("--f32", a.f32),
        ("--resume", a.resume),
        ("--dump-step", a.dump_step.is_some()),
        ("--mode", a.mode.is_some()),
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
    let cfg = RnnConfig::from_raw(&a.config, cfg.raw)?;
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("target/hdfa-out/train").join(format!("{}{suffix}", cfg.raw.name))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let corpus = cfg.load_corpus()?;
    let (batch, t) = (cfg.hyper.batch, cfg.hyper.bptt);
    anyhow::ensure!(
        corpus.train.len() / batch >= 2,
        "{}: {} training tokens for batch = {batch}: valid is at least 2 tokens per stream",
        a.config.display(),
        corpus.train.len()
    );
    let mut tr = cfg.trainer(corpus.vocab.len())?;
    let streams = batchify(&corpus.train, batch);
    let wins = windows(streams[0].len(), t);
    println!(
        "{}: {:?} cell, {} level, vocabulary {}, {} training / {} valid / {} test tokens, {} windows of {t} x {batch} streams per epoch, {:?} (BPTT share {}), fixed point",
        cfg.raw.name,
        cfg.kind,
        if cfg.level == Level::Word { "word" } else { "char" },
        corpus.vocab.len(),
        corpus.train.len(),
        corpus.valid.len(),
        corpus.test.len(),
        wins.len(),
        cfg.raw.mode,
        cfg.bp_ratio
    );
    let epochs = cfg.raw.epochs;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((wins.len() * epochs) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("static template"),
    );
    let mut history: Vec<RnnEpoch> = Vec::new();
    for epoch in 1..=epochs {
        let t0 = std::time::Instant::now();
        tr.reset_state();
        let mut train = RnnEval::default();
        for &w in &wins {
            let ev = tr.train_step(&streams, w);
            train.tokens += ev.tokens;
            train.loss_raw += ev.loss_raw;
            train.hits += ev.hits;
            bar.inc(1);
            bar.set_message(format!(
                "epoch {epoch} loss {:.3} ppl {:.1} acc {:.1}%",
                train.loss(),
                train.perplexity(),
                100.0 * train.accuracy()
            ));
        }
        let tokens_per_s = train.tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let m = RnnEpoch {
            epoch,
            steps: tr.step,
            bp_steps: tr.bp_steps,
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
    }
    bar.finish_and_clear();
    if let Some(m) = history.last() {
        println!(
            "done: test perplexity {:.2}, next-token accuracy {:.2}%; outputs in {}",
            m.test.perplexity(),
            100.0 * m.test.accuracy(),
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
    );
    write_atomic(&out.join("curves.svg"), svg.as_bytes())?;
    Ok(())
}
