//! # synth: yosys / nextpnr-ice40 flows with area and Fmax reports
//!
//! Main types:
//! - [`synthesize`]: runs two independent yosys sessions on an [`rtl::Emitted`] design
//!   (a generic gate-level mapping that keeps memories as `$mem_v2` cells, and
//!   `synth_ice40`), then `nextpnr-ice40` for placement, routing and timing.
//! - [`SynthReport`]: the numbers, written as JSON and as a markdown table row.
//!
//! Target part: **iCE40 HX8K, package CT256** (7,680 logic cells, 32 BRAMs). It is
//! the largest HX part and needs no DSP blocks, so the unit's one multiplier maps to
//! logic cells and the numbers show its real cost. IOs are placed automatically
//! (there is no board pin file); the clock is constrained to [`TARGET_MHZ`] and the
//! report gives the achieved Fmax.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rtl::Emitted;
use serde::Serialize;
use serde_json::Value;
use sim::tool;
use thiserror::Error;

/// nextpnr device flag.
pub const DEVICE: &str = "--hx8k";
/// nextpnr package.
pub const PACKAGE: &str = "ct256";
/// Clock constraint given to nextpnr (MHz); Fmax is reported whether met or not.
pub const TARGET_MHZ: f64 = 12.0;
/// Seed of nextpnr's placer, so reports are reproducible.
pub const PNR_SEED: u32 = 1;

/// Errors of the synthesis flow.
#[derive(Debug, Error)]
pub enum SynthError {
    /// A tool is missing or failed (its output is kept).
    #[error(transparent)]
    Tool(#[from] sim::SimError),
    /// File trouble.
    #[error("{what} {path}: {source}")]
    Io {
        /// Action.
        what: &'static str,
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A report we could not read.
    #[error("cannot read {file}: {msg}")]
    Report {
        /// The report file.
        file: String,
        /// What was wrong.
        msg: String,
    },
}

/// Area and timing of one design.
#[derive(Clone, Debug, Serialize)]
pub struct SynthReport {
    /// Unit name.
    pub unit: String,
    /// Configuration text.
    pub config: String,
    /// Generic gate-level cells (memories counted as one cell each).
    pub generic_cells: u64,
    /// Generic cells by type.
    pub generic_by_type: BTreeMap<String, u64>,
    /// iCE40 LUT4s.
    pub luts: u64,
    /// iCE40 flip-flops (all SB_DFF* kinds).
    pub ffs: u64,
    /// iCE40 carry cells.
    pub carries: u64,
    /// iCE40 block RAMs (SB_RAM40_4K).
    pub brams: u64,
    /// Logic cells used after packing.
    pub lcs_used: u64,
    /// Logic cells available.
    pub lcs_available: u64,
    /// Achieved Fmax of the clock (MHz).
    pub fmax_mhz: f64,
    /// Part and package.
    pub part: String,
    /// Files written.
    pub dir: PathBuf,
}

impl SynthReport {
    /// Markdown table header.
    pub const MD_HEADER: &'static str = "| unit | config | generic cells | LUT4 | FF | carry | BRAM | LCs used | Fmax (MHz) |\n|---|---|---|---|---|---|---|---|---|";

    /// One markdown table row.
    pub fn md_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {}/{} | {:.1} |",
            self.unit,
            self.config,
            self.generic_cells,
            self.luts,
            self.ffs,
            self.carries,
            self.brams,
            self.lcs_used,
            self.lcs_available,
            self.fmax_mhz
        )
    }
}

fn io(what: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> SynthError {
    let path = p.display().to_string();
    move |source| SynthError::Io { what, path, source }
}

fn read_json(p: &Path) -> Result<Value, SynthError> {
    let text = fs::read_to_string(p).map_err(io("reading", p))?;
    serde_json::from_str(&text).map_err(|e| SynthError::Report {
        file: p.display().to_string(),
        msg: e.to_string(),
    })
}

fn cells_by_type(stat: &Value, file: &Path) -> Result<(u64, BTreeMap<String, u64>), SynthError> {
    let top = &stat["modules"]["\\top"];
    let bad = |m: &str| SynthError::Report {
        file: file.display().to_string(),
        msg: m.to_string(),
    };
    let total = top["num_cells"]
        .as_u64()
        .ok_or_else(|| bad("no modules.\\top.num_cells"))?;
    let by = top["num_cells_by_type"]
        .as_object()
        .ok_or_else(|| bad("no num_cells_by_type"))?;
    Ok((
        total,
        by.iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect(),
    ))
}

/// Synthesize `design` into `out` and report area and Fmax.
pub fn synthesize(design: &Emitted, config: &str, out: &Path) -> Result<SynthReport, SynthError> {
    tool::require("yosys")?;
    tool::require("nextpnr-ice40")?;
    fs::create_dir_all(out).map_err(io("creating", out))?;
    let v = out.join("top.v");
    fs::write(&v, &design.verilog).map_err(io("writing", &v))?;
    // Generic mapping: memories stay as cells (mapping them to flip-flops is slow and
    // says nothing about a real target).
    tool::run(
        "yosys",
        Command::new("yosys").current_dir(out).args([
            "-q",
            "-l",
            "yosys_generic.log",
            "-p",
            "read_verilog top.v; hierarchy -top top; proc; flatten; opt; memory -nomap; opt; techmap; opt; abc; opt_clean; tee -q -o generic_stat.json stat -json",
        ]),
    )?;
    // iCE40 mapping in a fresh session.
    tool::run(
        "yosys",
        Command::new("yosys").current_dir(out).args([
            "-q",
            "-l",
            "yosys_ice40.log",
            "-p",
            "read_verilog top.v; synth_ice40 -top top -json ice40.json; tee -q -o ice40_stat.json stat -json",
        ]),
    )?;
    tool::run(
        "nextpnr-ice40",
        Command::new("nextpnr-ice40").current_dir(out).args([
            DEVICE,
            "--package",
            PACKAGE,
            "--json",
            "ice40.json",
            "--asc",
            "top.asc",
            "--report",
            "pnr_report.json",
            "--freq",
            &TARGET_MHZ.to_string(),
            "--seed",
            &PNR_SEED.to_string(),
            "-l",
            "nextpnr.log",
            "-q",
        ]),
    )?;
    let gpath = out.join("generic_stat.json");
    let (generic_cells, generic_by_type) = cells_by_type(&read_json(&gpath)?, &gpath)?;
    let ipath = out.join("ice40_stat.json");
    let (_, ice) = cells_by_type(&read_json(&ipath)?, &ipath)?;
    let count = |pred: &dyn Fn(&str) -> bool| {
        ice.iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, v)| v)
            .sum::<u64>()
    };
    let rpath = out.join("pnr_report.json");
    let rep = read_json(&rpath)?;
    let bad = |m: &str| SynthError::Report {
        file: rpath.display().to_string(),
        msg: m.to_string(),
    };
    let fmax_mhz = rep["fmax"]
        .as_object()
        .and_then(|m| {
            m.values()
                .filter_map(|c| c["achieved"].as_f64())
                .reduce(f64::min)
        })
        .ok_or_else(|| bad("no fmax"))?;
    let lc = &rep["utilization"]["ICESTORM_LC"];
    let report = SynthReport {
        unit: design.unit.to_string(),
        config: config.to_string(),
        generic_cells,
        generic_by_type,
        luts: count(&|k| k == "SB_LUT4"),
        ffs: count(&|k| k.starts_with("SB_DFF")),
        carries: count(&|k| k == "SB_CARRY"),
        brams: count(&|k| k.starts_with("SB_RAM40")),
        lcs_used: lc["used"]
            .as_u64()
            .ok_or_else(|| bad("no utilization.ICESTORM_LC.used"))?,
        lcs_available: lc["available"].as_u64().unwrap_or(0),
        fmax_mhz,
        part: format!("iCE40 HX8K {PACKAGE}"),
        dir: out.to_path_buf(),
    };
    let j = out.join("synth_report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| SynthError::Report {
        file: j.display().to_string(),
        msg: e.to_string(),
    })?;
    fs::write(&j, text).map_err(io("writing", &j))?;
    let md = out.join("synth_report.md");
    fs::write(
        &md,
        format!("{}\n{}\n", SynthReport::MD_HEADER, report.md_row()),
    )
    .map_err(io("writing", &md))?;
    Ok(report)
}
