//! Memory bounds: what the machine has ([`available`]) and a check that a data file
//! or a network fits ([`check`]) before anything large is allocated, so a dataset or
//! a config too big for the machine gets a clear error instead of an out-of-memory
//! kill.
//!
//! The budget is the kernel's `MemAvailable` (`/proc/meminfo`), or the environment
//! variable `HDFA_MEM_LIMIT` (bytes) to plan for a smaller machine. Where neither is
//! known nothing is refused.

use crate::GoldenError;

/// The memory budget in bytes: `HDFA_MEM_LIMIT`, else `MemAvailable`, else None.
pub fn available() -> Option<u64> {
    if let Some(v) = std::env::var_os("HDFA_MEM_LIMIT") {
        return v.to_str().and_then(|s| s.trim().parse().ok());
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Where the budget comes from, for messages.
fn source() -> &'static str {
    if std::env::var_os("HDFA_MEM_LIMIT").is_some() {
        "HDFA_MEM_LIMIT"
    } else {
        "this machine's MemAvailable"
    }
}

/// Refuse `need` bytes for `what` when they exceed the budget.
pub fn check(what: &str, need: u64) -> Result<(), GoldenError> {
    match available() {
        Some(have) if need > have => Err(GoldenError::out_of_range(
            "memory",
            format!("{need} bytes ({:.2} GiB) for {what}", gib(need)),
            format!("at most {have} bytes ({:.2} GiB, {})", gib(have), source()),
        )),
        _ => Ok(()),
    }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_and_a_need_beyond_it_is_refused_by_name() {
        // This test process does not set HDFA_MEM_LIMIT (the catalogue test sets it
        // on the binary only).
        let have = available().expect("Linux has /proc/meminfo");
        assert!(have > 1 << 20);
        assert!(check("a small thing", 1 << 10).is_ok());
        let e = check("a network", have + 1).unwrap_err().to_string();
        assert!(e.contains(&format!("memory = {} bytes", have + 1)), "{e}");
        assert!(e.contains("for a network") && e.contains("at most"), "{e}");
    }
}
