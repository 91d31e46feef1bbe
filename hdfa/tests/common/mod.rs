//! Running the `hdfa` binary as a user would, shared by the CLI test files.

use std::ffi::OsStr;
use std::process::Command;

/// Exit status (-1 when killed), stdout and stderr of `hdfa args`, run from the
/// repository root with RUST_BACKTRACE=0 and the extra environment `env`.
pub fn hdfa_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hdfa"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
