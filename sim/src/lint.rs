//! `verilator --lint-only -Wall` with the documented waiver list (`rtl::LINT_WAIVERS`).

use std::fs;
use std::path::Path;
use std::process::Command;

use rtl::{Emitted, LINT_WAIVERS};

use crate::{io_err, tool, SimError};

/// Lint `design` in `work`. Returns the waivers that were actually needed (each
/// documented in [`LINT_WAIVERS`]); any other warning or error fails.
pub fn lint(design: &Emitted, work: &Path) -> Result<Vec<&'static str>, SimError> {
    fs::create_dir_all(work).map_err(io_err("creating", work))?;
    let v = work.join(format!("{}.v", design.unit));
    fs::write(&v, &design.verilog).map_err(io_err("writing", &v))?;
    // First pass without waivers, to report which waivers are needed.
    let raw = Command::new("verilator")
        .args(["--lint-only", "-Wall", "--top-module", "top"])
        .arg(&v)
        .output();
    tool::require("verilator")?;
    let raw = raw.map_err(io_err("running verilator on", &v))?;
    let text = String::from_utf8_lossy(&raw.stderr);
    let needed: Vec<&'static str> = LINT_WAIVERS
        .iter()
        .map(|w| w.0)
        .filter(|w| text.contains(&format!("%Warning-{w}")))
        .collect();
    // Second pass with the waivers: must be clean.
    let mut cmd = Command::new("verilator");
    cmd.args(["--lint-only", "-Wall", "--top-module", "top"]);
    for (w, _) in LINT_WAIVERS {
        cmd.arg(format!("-Wno-{w}"));
    }
    cmd.arg(&v);
    match tool::run("verilator", &mut cmd) {
        Ok(out) if out.stderr.contains("%Warning") || out.stderr.contains("%Error") => {
            Err(SimError::Lint {
                unit: design.unit,
                report: out.stderr,
            })
        }
        Ok(_) => Ok(needed),
        Err(SimError::ToolFailed { stderr, stdout, .. }) => Err(SimError::Lint {
            unit: design.unit,
            report: format!("{stdout}{stderr}"),
        }),
        Err(e) => Err(e),
    }
}
