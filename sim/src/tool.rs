//! Finding and running external tools (Verilator, Icarus, yosys, nextpnr).

use std::path::Path;
use std::process::Command;

use crate::SimError;

/// The apt command that installs the whole simulation and synthesis tool set.
pub const APT_INSTALL: &str =
    "sudo apt-get install -y verilator g++ make perl zlib1g-dev iverilog yosys nextpnr-ice40 fpga-icestorm";

/// Fail with an install hint when `tool` is not on PATH.
pub fn require(tool: &'static str) -> Result<(), SimError> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(tool))))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(SimError::ToolMissing {
            tool,
            install: APT_INSTALL,
        })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Output of a finished tool run.
pub struct ToolOutput {
    /// stdout as text.
    pub stdout: String,
    /// stderr as text.
    pub stderr: String,
}

/// Run `cmd` (whose program is `tool`); any non-zero exit becomes
/// [`SimError::ToolFailed`] carrying the tool's stdout and stderr.
pub fn run(tool: &'static str, cmd: &mut Command) -> Result<ToolOutput, SimError> {
    require(tool)?;
    let line = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| SimError::ToolFailed {
        tool,
        cmd: line.clone(),
        status: "could not start".into(),
        stdout: String::new(),
        stderr: e.to_string(),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(SimError::ToolFailed {
            tool,
            cmd: line,
            status: out.status.to_string(),
            stdout,
            stderr,
        });
    }
    Ok(ToolOutput { stdout, stderr })
}

/// `tool --version`, first line (part of cache keys and reports).
pub fn version(tool: &'static str) -> Result<String, SimError> {
    let out = run(tool, Command::new(tool).arg("--version"))?;
    let text = if out.stdout.trim().is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}
