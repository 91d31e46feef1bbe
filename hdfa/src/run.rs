//! `hdfa run`: the main job. It trains a config's network four ways in the golden
//! model (BP, the original DFA, the revised DFA alone, and the config's HDFA), trains
//! a stretch of it with every DFA error propagation and every weight update on the
//! Verilated units (checked word for word and at the end against the all-golden
//! run), synthesizes the units that ran, prices the error propagation with the cost
//! model, and writes `report.md` and `report.html` with figures (plotters SVG) into
//! its output directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use golden::checkpoint::write_atomic;
use golden::cnn::num::Fx;
use golden::config::{Config, Mode};
use golden::cost::{self, CnnModel, Cost};
use golden::experiment::{load_data, EpochMetrics, Experiment};
use indicatif::{ProgressBar, ProgressStyle};

use crate::plot::{scatter_svg, two_panel_svg, Point, Series, PALETTE};

/// Options of `hdfa run`.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Config of the run's network (default: configs/fashion-run.toml; with --quick
    /// configs/digits-sparse.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory of the report, its figures and the runs' files.
    #[arg(long, default_value = "target/hdfa-out/run")]
    pub out: PathBuf,
    /// The short version (under a minute from a warm build): the 8×8 digits network,
    /// one epoch per training run, 4 steps on the hardware, and synthesis without
    /// place and route (area only, no Fmax).
    #[arg(long)]
    pub quick: bool,
    /// Steps trained with the units in the loop (default 10; --quick 4).
    #[arg(long)]
    pub hw_steps: Option<usize>,
    /// Epochs of each training run (default: the config's; --quick 1).
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// One golden training run.
struct TrainRun {
    /// Legend name.
    label: &'static str,
    /// Its mode.
    mode: Mode,
    /// Per-epoch metrics.
    history: Vec<EpochMetrics>,
    /// Training loss per step.
    losses: Vec<f64>,
    /// Weight checksum at the end.
    checksum: u64,
    /// Wall time (s).
    seconds: f64,
    /// The cost model's error-propagation cost per sample.
    cost: Cost,
}

/// One unit's synthesis.
struct SynthRow {
    unit: String,
    config: String,
    /// LUT4, FF, carry, BRAM; Fmax (None: not placed).
    area: Option<(u64, u64, u64, u64, Option<f64>)>,
    /// Why there is no result.
    note: String,
}

fn config_with_mode(base: &Config, mode: Mode, epochs: usize) -> Result<Config> {
    let mut raw = base.raw.clone();
    raw.mode = mode;
    if mode != Mode::Hdfa {
        raw.bp_ratio = None;
    }
    raw.epochs = epochs;
    Ok(Config::from_raw(&base.file, raw)?)
}

/// Run `hdfa run`.
pub fn run(a: &RunArgs) -> Result<()> {
    let t0 = Instant::now();
    let file = a.config.clone().unwrap_or_else(|| {
        PathBuf::from(if a.quick {
            "configs/digits-sparse.toml"
        } else {
            "configs/fashion-run.toml"
        })
    });
    let base = Config::load(&file)?;
    let epochs = a
        .epochs
        .unwrap_or(if a.quick { 1 } else { base.raw.epochs });
    anyhow::ensure!(
        epochs >= 1,
        "--epochs {epochs} is out of range: valid range is >= 1"
    );
    let hw_steps = a.hw_steps.unwrap_or(if a.quick { 4 } else { 10 });
    anyhow::ensure!(
        hw_steps >= 1,
        "--hw-steps {hw_steps} is out of range: valid range is >= 1"
    );
    // Nothing is written before the config and the data have loaded (write_atomic
    // creates the directory).
    let model = crate::cost::cnn_of_config(&base)?;
    let name = base.raw.name.clone();
    println!(
        "hdfa run: {name} ({}), report in {}",
        file.display(),
        a.out.display()
    );

    // 1. Golden training: BP, DFA, revised DFA, HDFA.
    let runs = train_all(&base, epochs, &model)?;
    for r in &runs {
        let m = r.history.last().expect("at least one epoch");
        println!(
            "  {:<12} test accuracy {:6.2}%  test loss {:.4}  ({:.1} s, weights {:016x})",
            r.label,
            100.0 * m.test_acc,
            m.test_loss,
            r.seconds,
            r.checksum
        );
    }

    // 2. A stretch of training with the units in the loop.
    println!("hardware in the loop: {hw_steps} steps on Verilator ...");
    let o = testbench::hil::HilOptions {
        steps: hw_steps,
        train_limit: None,
        upd_lanes: 1,
        path_lanes: 4,
        propagation: true,
        mutant: None,
        progress: false,
    };
    let hil = testbench::hil::train_on_hardware(&file, &o, &sim::verilator::default_cache_dir())?;
    println!("{}", hil.text().lines().next().unwrap_or(""));
    write_atomic(
        &a.out.join("hil_report.txt"),
        format!("{}\n", hil.text()).as_bytes(),
    )?;

    // 3. Synthesis of the units that ran.
    let synth = synthesize(&hil.designs, &a.out.join("synth"), a.quick);
    for s in &synth {
        println!("  synth {} {}: {}", s.unit, s.config, s.summary());
    }

    // 4. Cost tables.
    let cost_args = crate::cost::CostArgs {
        network: file.display().to_string(),
        groups: None,
        sparsity: None,
        bp_ratio: None,
        json: false,
    };
    let mut tables = vec![cost::table(&crate::cost::rows_of(
        &cost_args,
        &cost_args.network,
    )?)];
    for n in crate::cost::PAPER {
        tables.push(cost::table(&crate::cost::rows_of(&cost_args, n)?));
    }

    // 5. Figures and report.
    let seconds = t0.elapsed().as_secs_f64();
    write_figures(&a.out, &name, &runs)?;
    let r = Report {
        name: &name,
        file: &file,
        quick: a.quick,
        runs: &runs,
        hil: &hil,
        synth: &synth,
        tables: &tables,
        seconds,
    };
    write_atomic(&a.out.join("report.md"), r.markdown().as_bytes())?;
    write_atomic(&a.out.join("report.html"), r.html().as_bytes())?;
    println!(
        "report: {} and {} ({seconds:.0} s)",
        a.out.join("report.md").display(),
        a.out.join("report.html").display()
    );
    if !hil.identical() {
        anyhow::bail!(
            "the run with the units in the loop differs from the golden run (see the report)"
        );
    }
    Ok(())
}

fn train_all(base: &Config, epochs: usize, model: &CnnModel) -> Result<Vec<TrainRun>> {
    let (train, test) = load_data(base)?;
    let own_g = base.dfa.groups;
    let s = base.dfa.sparsity;
    let revised = model.revised(own_g, s)?;
    let p = base.raw.bp_ratio.unwrap_or(0.5);
    let plan: [(&'static str, Mode, Cost); 4] = [
        ("BP", Mode::Bp, model.bp()),
        ("DFA", Mode::Dfa, model.dfa()),
        ("revised DFA", Mode::Cdfa, revised),
        ("HDFA", Mode::Hdfa, Cost::mix(model.bp(), revised, p)),
    ];
    let mut exps = Vec::new();
    for (label, mode, cost) in plan {
        let mut c = config_with_mode(base, mode, epochs)?;
        if mode == Mode::Hdfa && c.raw.bp_ratio.is_none() {
            c.raw.bp_ratio = Some(p);
            c = Config::from_raw(&base.file, c.raw)?;
        }
        exps.push((
            label,
            mode,
            cost,
            Experiment::<Fx>::with_data(c, &train, &test)?,
        ));
    }
    let total: u64 = exps.iter().map(|e| (e.3.batches() * epochs) as u64).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("static template"),
    );
    let mut runs = Vec::new();
    for (label, mode, cost, mut exp) in exps {
        let t = Instant::now();
        let mut losses = Vec::new();
        while exp.epoch < epochs {
            exp.run_epoch(&mut |r| {
                losses.push(r.stats.loss);
                bar.inc(1);
                bar.set_message(format!(
                    "{label}: epoch {} loss {:.4}",
                    r.epoch, r.stats.loss
                ));
            });
        }
        runs.push(TrainRun {
            label,
            mode,
            history: exp.history.clone(),
            losses,
            checksum: exp.weight_checksum(),
            seconds: t.elapsed().as_secs_f64(),
            cost,
        });
    }
    bar.finish_and_clear();
    Ok(runs)
}

impl SynthRow {
    /// What stands in the Fmax column when there is none.
    fn fmax_note(&self) -> String {
        if self.note.is_empty() {
            "– (not placed: --quick)".into()
        } else {
            format!("– ({})", self.note)
        }
    }

    fn summary(&self) -> String {
        match self.area {
            Some((l, f, c, b, fmax)) => format!(
                "{l} LUT4, {f} FF, {c} carry, {b} BRAM, {}",
                fmax.map_or(self.fmax_note(), |m| format!("{m:.1} MHz"))
            ),
            None => self.note.clone(),
        }
    }
}

/// Synthesize each design for iCE40 HX8K (quick: yosys only, no place and route). A
/// design that does not fit or fails keeps its tool's first error line as the note;
/// the run goes on.
fn synthesize(designs: &[(String, rtl::Emitted)], dir: &Path, quick: bool) -> Vec<SynthRow> {
    // One thread per design: the tools are single-threaded processes.
    std::thread::scope(|sc| {
        let jobs: Vec<_> = designs
            .iter()
            .map(|(config, d)| sc.spawn(move || synth_one(config, d, dir, quick)))
            .collect();
        jobs.into_iter()
            .map(|j| j.join().expect("a synthesis thread panicked"))
            .collect()
    })
}

fn synth_one(config: &str, d: &rtl::Emitted, dir: &Path, quick: bool) -> SynthRow {
    let out = dir.join(d.unit);
    let mut row = SynthRow {
        unit: d.unit.to_string(),
        config: config.to_string(),
        area: None,
        note: String::new(),
    };
    if quick {
        match synth::cell_counts(d, config, synth::Family::Ice40, &out) {
            Ok(r) => row.area = Some((r.luts, r.ffs, r.carries, r.brams as u64, None)),
            Err(e) => row.note = first_error(&e.to_string()),
        }
    } else {
        match synth::synthesize(d, config, &out) {
            Ok(r) => row.area = Some((r.luts, r.ffs, r.carries, r.brams, Some(r.fmax_mhz))),
            Err(e) => {
                // Place and route failed (a design too big for the part): keep
                // the tool's reason and give the area yosys maps.
                row.note = format!("not placed: {}", first_error(&e.to_string()));
                if let Ok(r) =
                    synth::cell_counts(d, config, synth::Family::Ice40, &out.join("area"))
                {
                    row.area = Some((r.luts, r.ffs, r.carries, r.brams as u64, None));
                }
            }
        }
    }
    row
}

/// The line of a tool failure that says what went wrong.
fn first_error(e: &str) -> String {
    e.lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| e.lines().next().unwrap_or(""))
        .trim()
        .to_string()
}

/// Steps' training loss averaged over windows of `w` steps, as (step, loss).
fn smoothed(v: &[f64], w: usize) -> Vec<(f64, f64)> {
    let w = w.max(1);
    v.chunks(w)
        .enumerate()
        .map(|(i, c)| {
            (
                (i * w + c.len()) as f64,
                c.iter().sum::<f64>() / c.len() as f64,
            )
        })
        .collect()
}

fn write_figures(out: &Path, name: &str, runs: &[TrainRun]) -> Result<()> {
    let steps = runs.iter().map(|r| r.losses.len()).max().unwrap_or(1);
    let w = (steps / 60).max(1);
    let loss: Vec<Series> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            name: r.label,
            color: PALETTE[i],
            points: smoothed(&r.losses, w),
        })
        .collect();
    let acc: Vec<Series> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            name: r.label,
            color: PALETTE[i],
            points: r
                .history
                .iter()
                .map(|m| (m.epoch as f64, 100.0 * m.test_acc))
                .collect(),
        })
        .collect();
    let curves = two_panel_svg(
        &format!("{name}: learning curves (golden model, fixed point)"),
        (&format!("training loss vs step (mean of {w} steps)"), &loss),
        ("test accuracy (%) vs epoch", &acc),
    )?;
    write_atomic(&out.join("curves.svg"), curves.as_bytes())?;
    let points: Vec<Point> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Point {
            label: format!(" {}", r.label),
            color: PALETTE[i],
            x: r.cost.bytes() / cost::MB,
            y: 100.0 * r.history.last().map_or(0.0, |m| m.test_acc),
        })
        .collect();
    let scatter = scatter_svg(
        &format!("{name}: test accuracy vs error-propagation memory transactions"),
        "memory transactions per sample (MB, cost model)",
        "test accuracy (%)",
        &points,
    )?;
    write_atomic(&out.join("accuracy_vs_memory.svg"), scatter.as_bytes())?;
    Ok(())
}

/// Everything the report shows.
struct Report<'a> {
    name: &'a str,
    file: &'a Path,
    quick: bool,
    runs: &'a [TrainRun],
    hil: &'a testbench::hil::HilReport,
    synth: &'a [SynthRow],
    tables: &'a [String],
    seconds: f64,
}

impl Report<'_> {
    /// The tables as (title, header, rows), shared by the markdown and the HTML.
    fn tables(&self) -> Vec<(String, Vec<&'static str>, Vec<Vec<String>>)> {
        let train = self
            .runs
            .iter()
            .map(|r| {
                let m = r.history.last().expect("an epoch");
                vec![
                    r.label.to_string(),
                    format!("{:?}", r.mode).to_lowercase(),
                    r.history.len().to_string(),
                    format!("{:.2}", 100.0 * m.test_acc),
                    format!("{:.4}", m.test_loss),
                    format!("{:.3}", r.cost.bytes() / cost::MB),
                    cost::sig(r.cost.ops() / cost::GOP),
                    format!("{:.1}", r.seconds),
                    format!("{:016x}", r.checksum),
                ]
            })
            .collect();
        let h = self.hil;
        let cosim = h
            .units
            .iter()
            .map(|u| {
                // The run stops at its first difference.
                let mism = if h.first_diff_unit == Some(u.unit) {
                    "≥ 1"
                } else {
                    "0"
                };
                vec![
                    u.unit.to_string(),
                    u.lanes.to_string(),
                    u.models.to_string(),
                    u.passes.to_string(),
                    mism.to_string(),
                    u.cycles.to_string(),
                    format!("{:.0}", u.ideal_cycles),
                    format!("{:.1}%", 100.0 * u.utilization()),
                    format!("{:.2}", u.seconds),
                ]
            })
            .collect();
        let synth = self
            .synth
            .iter()
            .map(|s| {
                let mut v = vec![s.unit.clone(), s.config.clone()];
                match s.area {
                    Some((l, f, c, b, fmax)) => v.extend([
                        l.to_string(),
                        f.to_string(),
                        c.to_string(),
                        b.to_string(),
                        fmax.map_or(s.fmax_note(), |m| format!("{m:.1}")),
                    ]),
                    None => v.extend([
                        "–".into(),
                        "–".into(),
                        "–".into(),
                        "–".into(),
                        s.note.clone(),
                    ]),
                }
                v
            })
            .collect();
        vec![
            (
                "Training (golden model)".into(),
                vec![
                    "run",
                    "mode",
                    "epochs",
                    "test acc (%)",
                    "test loss",
                    "MB/sample",
                    "GOP/sample",
                    "time (s)",
                    "weights checksum",
                ],
                train,
            ),
            (
                format!(
                    "Co-simulation: {} steps with the units in the loop (Verilator)",
                    h.steps
                ),
                vec![
                    "unit",
                    "P",
                    "models",
                    "vectors (passes)",
                    "mismatches",
                    "cycles",
                    "bound (cycles)",
                    "utilization",
                    "time in RTL (s)",
                ],
                cosim,
            ),
            (
                if self.quick {
                    "Synthesis (iCE40, yosys synth_ice40 only: --quick)".into()
                } else {
                    "Synthesis (iCE40 HX8K CT256: yosys + nextpnr-ice40)".into()
                },
                vec![
                    "unit",
                    "config",
                    "LUT4",
                    "FF",
                    "carry",
                    "BRAM",
                    "Fmax (MHz)",
                ],
                synth,
            ),
        ]
    }

    fn intro(&self) -> Vec<String> {
        let h = self.hil;
        vec![
            format!(
                "Config `{}` ({}), {} training runs of {} epoch(s) each in the fixed-point golden model; wall time {:.0} s.",
                self.name,
                self.file.display(),
                self.runs.len(),
                self.runs[0].history.len(),
                self.seconds
            ),
            format!(
                "Hardware in the loop: {} steps ({} BP, {} DFA) with every DFA error propagation on the dce and the bsbu and every weight update on the update unit; {}",
                h.steps,
                h.kinds[0],
                h.kinds[1],
                match (&h.first_diff, h.golden_checksum) {
                    (None, Some(g)) if g == h.hw_checksum => format!(
                        "every output word matched the golden model and the run ended **bit-identical** to the all-golden run (state checksum {:016x}).",
                        h.hw_checksum
                    ),
                    (Some(d), _) => format!("**DIFFERS**: {d}."),
                    _ => "**the end state differs from the all-golden run**.".into(),
                }
            ),
            format!(
                "Backward weights: {} bits stored in the units, {:.0} bits read per DFA step.",
                h.weight_bits_stored,
                h.weight_bits_read as f64 / h.kinds[1].max(1) as f64
            ),
        ]
    }

    fn markdown(&self) -> String {
        let mut s = format!("# hdfa run: {}\n\n", self.name);
        for p in self.intro() {
            let _ = writeln!(s, "{p}\n");
        }
        let _ = writeln!(s, "![learning curves](curves.svg)\n");
        let _ = writeln!(
            s,
            "![accuracy vs memory transactions](accuracy_vs_memory.svg)\n"
        );
        for (title, head, rows) in self.tables() {
            let _ = writeln!(s, "## {title}\n");
            let _ = writeln!(s, "| {} |", head.join(" | "));
            let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
            for r in rows {
                let _ = writeln!(s, "| {} |", r.join(" | "));
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "## Cost of the error propagation (cost model, `hdfa cost`)\n"
        );
        let _ = writeln!(s, "```\n{}\n```\n", cost::ASSUMPTIONS);
        for t in self.tables {
            let _ = writeln!(s, "```\n{}```\n", t);
        }
        s
    }

    fn html(&self) -> String {
        let esc = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let bold = |t: &str| {
            let mut out = String::new();
            for (i, part) in esc(t).split("**").enumerate() {
                if i % 2 == 1 {
                    let _ = write!(out, "<b>{part}</b>");
                } else {
                    out.push_str(part);
                }
            }
            out.replace('`', "")
        };
        let mut s =
            String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        let _ = writeln!(s, "<title>hdfa run: {}</title>", esc(self.name));
        s.push_str(
            "<style>body{font-family:sans-serif;max-width:1060px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}\
th{background:#eee}td:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}\
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}pre.wrap{white-space:pre-wrap}</style>\n",
        );
        // Marks the figures that loaded, so a headless browser can check them.
        s.push_str(
            "<script>window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);\
var ok=i.filter(function(x){return x.complete&&x.naturalWidth>0;}).length;\
document.body.setAttribute('data-figures',ok+'/'+i.length);});</script>\n</head>\n<body data-figures=\"pending\">\n",
        );
        let _ = writeln!(s, "<h1>hdfa run: {}</h1>", esc(self.name));
        for p in self.intro() {
            let _ = writeln!(s, "<p>{}</p>", bold(&p));
        }
        s.push_str(
            "<img src=\"curves.svg\" alt=\"learning curves\" width=\"1000\" height=\"420\">\n",
        );
        s.push_str("<img src=\"accuracy_vs_memory.svg\" alt=\"accuracy vs memory transactions\" width=\"760\" height=\"480\">\n");
        for (title, head, rows) in self.tables() {
            let _ = writeln!(s, "<h2>{}</h2>\n<table>\n<tr>", esc(&title));
            for h in head {
                let _ = write!(s, "<th>{}</th>", esc(h));
            }
            s.push_str("</tr>\n");
            for r in rows {
                s.push_str("<tr>");
                for c in r {
                    let _ = write!(s, "<td>{}</td>", esc(&c));
                }
                s.push_str("</tr>\n");
            }
            s.push_str("</table>\n");
        }
        s.push_str("<h2>Cost of the error propagation (cost model, hdfa cost)</h2>\n");
        let _ = writeln!(s, "<pre class=\"wrap\">{}</pre>", esc(cost::ASSUMPTIONS));
        for t in self.tables {
            let _ = writeln!(s, "<pre>{}</pre>", esc(t));
        }
        s.push_str("</body></html>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothed_means_each_window() {
        let v = [1.0, 3.0, 5.0, 7.0, 9.0];
        assert_eq!(smoothed(&v, 2), vec![(2.0, 2.0), (4.0, 6.0), (5.0, 9.0)]);
    }

    #[test]
    fn first_error_picks_the_tools_error_line() {
        let e = "nextpnr-ice40 failed\n--- stderr ---\nWarning: x\nERROR: Unable to place cell\n";
        assert_eq!(first_error(e), "ERROR: Unable to place cell");
        assert_eq!(first_error("plain"), "plain");
    }
}
