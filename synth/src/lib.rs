//! # synth: yosys / nextpnr-ice40 flows with area and Fmax reports
//!
//! Main types:
//! - [`synthesize`]: runs two independent yosys sessions on an [`rtl::Emitted`] design
//!   (a generic gate-level mapping that keeps memories as `$mem_v2` cells, and
//!   `synth_ice40`), then `nextpnr-ice40` for placement, routing and timing.
//! - [`SynthReport`]: the numbers, written as JSON and as a markdown table row, with
//!   the critical path's start and end read from nextpnr's timing report.
//! - [`cell_counts`] and [`CellReport`]: a second and third family, so the design is
//!   not tuned to one device: yosys `synth_ecp5` and `synth_xilinx` (7-series) cell
//!   counts ([`Family`]). Debian ships no place-and-route for them, so no Fmax.
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
    /// Flip-flops of the synthesis wrapper included in `ffs` (0: none; see
    /// [`wrapper_ffs`]).
    pub wrapper_ffs: u64,
    /// The critical path as nextpnr reports it: its first source cell, its last sink
    /// cell and its delay (ns).
    pub critical_path: CriticalPath,
    /// Part and package.
    pub part: String,
    /// Files written.
    pub dir: PathBuf,
}

impl SynthReport {
    /// Markdown table header.
    pub const MD_HEADER: &'static str = "| unit | config | generic cells | LUT4 | FF | carry | BRAM | LCs used | Fmax (MHz) |\n|---|---|---|---|---|---|---|---|---|";

    /// One markdown table row (an FF count that includes the synthesis wrapper says
    /// so).
    pub fn md_row(&self) -> String {
        let ffs = match self.wrapper_ffs {
            0 => self.ffs.to_string(),
            w => format!("{} (wrapper {w})", self.ffs),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {}/{} | {:.1} |",
            self.unit,
            self.config,
            self.generic_cells,
            self.luts,
            ffs,
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

/// The number of cells whose type satisfies `pred`.
fn count_cells(by_type: &BTreeMap<String, u64>, pred: &dyn Fn(&str) -> bool) -> u64 {
    by_type
        .iter()
        .filter(|(k, _)| pred(k))
        .map(|(_, v)| v)
        .sum()
}

/// Most port bits a design may have and still go straight onto the package's pins
/// (the CT256 has 206 IOs; some stay free for the placer).
pub const IO_BUDGET: usize = 160;

/// Ports wider than this go through the synthesis wrapper's shift registers.
const SERIAL_ABOVE: usize = 8;

/// The flip-flops the synthesis wrapper adds for `design` (0: no wrapper).
///
/// A unit that sits beside on-chip memories (the update unit: 128·P input and 96·P
/// output bits) has more port bits than the package has pins. Synthesis then wraps it
/// in a `top` whose wide ports are serial: each input port wider than 8 bits is fed by
/// a shift register, each such output port is loaded into one and shifted out. The
/// wrapper adds exactly these flip-flops (and about as many LUTs), its paths are
/// register to register, and the reports include it.
pub fn wrapper_ffs(design: &Emitted) -> usize {
    let bits: usize = design.ports.iter().map(|p| p.width).sum();
    if bits <= IO_BUDGET {
        return 0;
    }
    design
        .ports
        .iter()
        .filter(|p| p.width > SERIAL_ABOVE)
        .map(|p| p.width)
        .sum()
}

/// The wrapper `top` around the unit (renamed `hdfa_core`), see [`wrapper_ffs`].
fn wrapper(design: &Emitted) -> String {
    use rtl::Dir;
    use std::fmt::Write as _;
    let mut ports = vec!["load".to_string()];
    let mut decl =
        String::from("  input wire load; // outputs: take the unit's words (else shift)\n");
    let mut body = String::new();
    let mut conns = Vec::new();
    for p in &design.ports {
        let n = p.name;
        conns.push(format!(".{n}({n})"));
        if p.width <= SERIAL_ABOVE {
            ports.push(n.to_string());
            let dir = if p.dir == Dir::In { "input" } else { "output" };
            let w = if p.width > 1 {
                format!(" [{}:0]", p.width - 1)
            } else {
                String::new()
            };
            let _ = writeln!(decl, "  {dir} wire{w} {n};");
            continue;
        }
        let w = p.width;
        ports.push(format!("{n}_s"));
        match p.dir {
            Dir::In => {
                let _ = writeln!(decl, "  input wire {n}_s;");
                let _ = writeln!(
                    body,
                    "  reg [{m}:0] {n} = 0;\n  always @(posedge clock) {n} <= {{{n}[{m1}:0], {n}_s}};",
                    m = w - 1,
                    m1 = w - 2
                );
            }
            Dir::Out => {
                let _ = writeln!(decl, "  output wire {n}_s;");
                let _ = writeln!(
                    body,
                    "  wire [{m}:0] {n};\n  reg [{m}:0] {n}_r = 0;\n  always @(posedge clock) {n}_r <= load ? {n} : {{1'b0, {n}_r[{m}:1]}};\n  assign {n}_s = {n}_r[0];",
                    m = w - 1
                );
            }
        }
    }
    format!(
        "\n// Synthesis wrapper (hdfa synth): the unit has more port bits than the package\n// has pins, so its wide ports are serial here; see synth::wrapper_ffs.\nmodule top({});\n{decl}{body}  hdfa_core core({});\nendmodule\n",
        ports.join(", "),
        conns.join(", ")
    )
}

/// Create `out` and write the design's Verilog there as `top.v` (wrapped when its
/// ports exceed the pins, see [`wrapper_ffs`]).
fn write_design(design: &Emitted, out: &Path) -> Result<(), SynthError> {
    fs::create_dir_all(out).map_err(io("creating", out))?;
    let v = out.join("top.v");
    let text = if wrapper_ffs(design) == 0 {
        design.verilog.clone()
    } else {
        let core = design
            .verilog
            .replacen("module top(", "module hdfa_core(", 1)
            .replacen("endmodule // top\n", "endmodule // hdfa_core\n", 1);
        core + &wrapper(design)
    };
    fs::write(&v, text).map_err(io("writing", &v))
}

/// Write a report as pretty JSON.
fn write_json<T: Serialize>(report: &T, path: &Path) -> Result<(), SynthError> {
    let text = serde_json::to_string_pretty(report).map_err(|e| SynthError::Report {
        file: path.display().to_string(),
        msg: e.to_string(),
    })?;
    fs::write(path, text).map_err(io("writing", path))
}

/// Synthesize `design` into `out` and report area and Fmax.
pub fn synthesize(design: &Emitted, config: &str, out: &Path) -> Result<SynthReport, SynthError> {
    tool::require("yosys")?;
    tool::require("nextpnr-ice40")?;
    write_design(design, out)?;
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
    let count = |pred: &dyn Fn(&str) -> bool| count_cells(&ice, pred);
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
        wrapper_ffs: wrapper_ffs(design) as u64,
        critical_path: critical_path(&out.join("nextpnr.log"))?,
        part: format!("iCE40 HX8K {PACKAGE}"),
        dir: out.to_path_buf(),
    };
    write_json(&report, &out.join("synth_report.json"))?;
    let md = out.join("synth_report.md");
    fs::write(
        &md,
        format!("{}\n{}\n", SynthReport::MD_HEADER, report.md_row()),
    )
    .map_err(io("writing", &md))?;
    Ok(report)
}

/// The critical path of the clock, from nextpnr's log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CriticalPath {
    /// The cell (and port) the path starts at.
    pub from: String,
    /// The cell (and port) the path ends at.
    pub to: String,
    /// Total delay (ns).
    pub ns: f64,
    /// Cells the path passes through (source and sink excluded; each carry cell of
    /// an adder's chain counts).
    pub cells: usize,
}

impl std::fmt::Display for CriticalPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} ({:.2} ns through {} cells)",
            self.from, self.to, self.ns, self.cells
        )
    }
}

/// Read the first "Critical path report for clock" block of a nextpnr log: the
/// first `Source` cell, the last `Sink` and the last cumulative delay. The block is
/// rows `<delay> <total> Source|Net|Setup <name>` and `Sink <name>` and ends with
/// the "ns logic, ... ns routing" line.
pub fn critical_path(log: &Path) -> Result<CriticalPath, SynthError> {
    let text = fs::read_to_string(log).map_err(io("reading", log))?;
    let bad = |m: &str| SynthError::Report {
        file: log.display().to_string(),
        msg: m.to_string(),
    };
    let start = text
        .find("Critical path report for clock")
        .ok_or_else(|| bad("no \"Critical path report for clock\""))?;
    let mut cp = CriticalPath::default();
    let mut sinks = 0usize;
    for line in text[start..].lines().skip(1) {
        let l = line.trim_start_matches("Info:").trim();
        if l.contains("ns logic") || l.starts_with("Critical path report") {
            break;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [_, total, kind, name, ..] if total.parse::<f64>().is_ok() => {
                cp.ns = total.parse().unwrap_or(cp.ns);
                if *kind == "Source" && cp.from.is_empty() {
                    cp.from = name.to_string();
                }
            }
            ["Sink", name, ..] => {
                sinks += 1;
                cp.to = name.to_string();
            }
            _ => {}
        }
    }
    if cp.from.is_empty() || cp.to.is_empty() {
        return Err(bad("the critical path report names no source or sink"));
    }
    // Every Sink but the last is a cell the path passes through.
    cp.cells = sinks - 1;
    Ok(cp)
}

/// A family synthesized for cell counts only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Family {
    /// Lattice ECP5 (`synth_ecp5`): LUT4, TRELLIS_FF, DP16KD block RAM, MULT18X18D.
    Ecp5,
    /// AMD/Xilinx 7-series (`synth_xilinx -family xc7`): LUT1–6, FD*, RAMB18E1 and
    /// RAMB36E1 (counted in RAMB36 equivalents), DSP48E1.
    Xilinx,
    /// Lattice iCE40 (`synth_ice40`) without place and route: SB_LUT4, SB_DFF*,
    /// SB_RAM40_4K, SB_MAC16, SB_CARRY (area only; [`synthesize`] also places,
    /// routes and times it).
    Ice40,
}

impl Family {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ecp5 => "ecp5",
            Family::Xilinx => "xilinx",
            Family::Ice40 => "ice40",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Family::Ecp5 => "read_verilog top.v; synth_ecp5 -top top; tee -q -o stat.json stat -json",
            Family::Xilinx => "read_verilog top.v; synth_xilinx -top top -family xc7 -flatten; tee -q -o stat.json stat -json",
            Family::Ice40 => "read_verilog top.v; synth_ice40 -top top; tee -q -o stat.json stat -json",
        }
    }
}

/// Cell counts of one design in one [`Family`].
#[derive(Clone, Debug, Serialize)]
pub struct CellReport {
    /// Unit name.
    pub unit: String,
    /// Configuration text.
    pub config: String,
    /// Family.
    pub family: Family,
    /// Look-up tables (ECP5 LUT4; Xilinx LUT1–LUT6).
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// LUTs used as distributed RAM (ECP5 TRELLIS_DPR16X4; Xilinx RAM32/64/128/256*).
    pub lutram: u64,
    /// Block RAMs: ECP5 DP16KD (18 kbit); Xilinx RAMB36 equivalents (a RAMB18E1 is ½).
    pub brams: f64,
    /// Multipliers: ECP5 MULT18X18D; Xilinx DSP48E1.
    pub dsps: u64,
    /// Carry cells (ECP5 CCU2C; Xilinx CARRY4).
    pub carries: u64,
    /// Every cell type.
    pub by_type: BTreeMap<String, u64>,
    /// Files written.
    pub dir: PathBuf,
}

impl CellReport {
    /// Markdown table header.
    pub const MD_HEADER: &'static str = "| unit | config | family | LUT | FF | LUT RAM | BRAM (ECP5 DP16KD / Xilinx RAMB36) | DSP (MULT18 / DSP48E1) | carry |\n|---|---|---|---|---|---|---|---|---|";

    /// One markdown table row.
    pub fn md_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.unit,
            self.config,
            self.family.name(),
            self.luts,
            self.ffs,
            self.lutram,
            self.brams,
            self.dsps,
            self.carries
        )
    }
}

/// Synthesize `design` for `family` with yosys into `out` and count its cells.
pub fn cell_counts(
    design: &Emitted,
    config: &str,
    family: Family,
    out: &Path,
) -> Result<CellReport, SynthError> {
    tool::require("yosys")?;
    write_design(design, out)?;
    tool::run(
        "yosys",
        Command::new("yosys").current_dir(out).args([
            "-q",
            "-l",
            "yosys.log",
            "-p",
            family.script(),
        ]),
    )?;
    let spath = out.join("stat.json");
    let (_, by_type) = cells_by_type(&read_json(&spath)?, &spath)?;
    let count = |pred: &dyn Fn(&str) -> bool| count_cells(&by_type, pred);
    // (LUT, FF, LUT RAM, block RAM, DSP, carry)
    let (luts, ffs, lutram, brams, dsps, carries) = match family {
        Family::Ecp5 => (
            count(&|k| k == "LUT4"),
            count(&|k| k == "TRELLIS_FF"),
            count(&|k| k == "TRELLIS_DPR16X4"),
            count(&|k| k == "DP16KD" || k == "PDPW16KD") as f64,
            count(&|k| k == "MULT18X18D" || k == "ALU54B"),
            count(&|k| k == "CCU2C"),
        ),
        Family::Xilinx => (
            count(&|k| k.starts_with("LUT")),
            count(&|k| k.starts_with("FD")),
            count(&|k| k.starts_with("RAM") && !k.starts_with("RAMB")),
            count(&|k| k == "RAMB36E1") as f64 + count(&|k| k == "RAMB18E1") as f64 / 2.0,
            count(&|k| k.starts_with("DSP48")),
            count(&|k| k == "CARRY4"),
        ),
        Family::Ice40 => (
            count(&|k| k == "SB_LUT4"),
            count(&|k| k.starts_with("SB_DFF")),
            0,
            count(&|k| k.starts_with("SB_RAM40")) as f64,
            count(&|k| k == "SB_MAC16"),
            count(&|k| k == "SB_CARRY"),
        ),
    };
    let report = CellReport {
        unit: design.unit.to_string(),
        config: config.to_string(),
        family,
        luts,
        ffs,
        lutram,
        brams,
        dsps,
        carries,
        by_type,
        dir: out.to_path_buf(),
    };
    write_json(&report, &out.join("cell_report.json"))?;
    Ok(report)
}
