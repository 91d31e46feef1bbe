//! Crash-safe training: `hdfa train --resume` is killed with SIGKILL at random
//! points at least 20 times, kills inside checkpoint and metric writes included
//! (`HDFA_TEST_WRITE_PAUSE_MS` holds each write open for a while), resumed each time,
//! and must end bit-identical to an uninterrupted run: the same weights, the same
//! checkpoint bytes, the same metrics. After every kill the checkpoint, if there is
//! one yet, must load.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use golden::cnn::num::Fx;
use golden::config::Config;
use golden::experiment::Experiment;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn train(config: &Path, out: &Path, pause: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hdfa"));
    c.args(["train", "--quiet", "--resume", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .current_dir(root())
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if pause {
        c.env("HDFA_TEST_WRITE_PAUSE_MS", "15");
    }
    c
}

/// The weight checksum of a finished run's last line.
fn checksum(stdout: &str) -> String {
    let at = stdout
        .find("weight checksum ")
        .unwrap_or_else(|| panic!("no checksum in:\n{stdout}"));
    stdout[at + 16..at + 32].to_string()
}

fn temporaries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .count()
    })
}

#[test]
fn train_killed_20_times_with_sigkill_resumes_to_the_uninterrupted_result() {
    let dir = root().join("target/hdfa-test/crash");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // digits-small for 120 epochs: each run of the loop below gets about two epochs
    // done before its kill.
    let text = std::fs::read_to_string(root().join("configs/digits-small.toml")).unwrap();
    let config = dir.join("digits-120.toml");
    std::fs::write(&config, text.replacen("epochs = 20", "epochs = 120", 1)).unwrap();

    let (a, b) = (dir.join("straight"), dir.join("killed"));
    let out = train(&config, &a, false).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = checksum(&String::from_utf8_lossy(&out.stdout));

    // A seeded xorshift for the kill times (20..320 ms after the start).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    std::env::set_current_dir(root()).unwrap();
    let cfg = Config::load(&config).unwrap();
    let (mut kills, mut in_write, mut runs) = (0, 0, 0);
    while kills < 20 {
        runs += 1;
        assert!(runs < 200, "the run keeps finishing before its kill");
        let mut child = train(&config, &b, true).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(20 + next() % 300));
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            break; // finished before this kill: the rest of the loop has nothing to kill
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        in_write += (temporaries(&b) > 0) as usize;
        // Never an unreadable checkpoint.
        let ck = b.join("checkpoint.bin");
        if ck.exists() {
            let mut e = Experiment::<Fx>::new(cfg.clone()).unwrap();
            e.load_checkpoint(&ck)
                .unwrap_or_else(|err| panic!("after kill {kills}: {err}"));
        }
    }
    assert_eq!(kills, 20, "the run finished after {kills} kills");
    assert!(
        in_write >= 3,
        "only {in_write} of 20 kills landed inside a write"
    );

    let out = train(&config, &b, false).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(checksum(&String::from_utf8_lossy(&out.stdout)), want);
    for f in ["checkpoint.bin", "metrics.json", "metrics.csv"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs from the uninterrupted run's"
        );
    }
    assert_eq!(temporaries(&b), 0, "temporary files left behind");
    println!("{kills} kills ({in_write} inside a write) in {runs} runs: identical");
}
