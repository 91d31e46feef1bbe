//! Checkpoints: the whole training state (master weights, both velocities, the step
//! RNG, the metrics history) written atomically (temporary file, fsync, rename), so a
//! crash leaves the old or the new checkpoint, never half of one, and restored
//! bit-identically. A checkpoint names the configuration it belongs to by a hash that
//! leaves out the epoch and thread counts, and ends with an FNV-1a checksum of all
//! bytes before it ([`sealed`]), so a corrupted file is refused, never resumed from.

use std::io::Write;
use std::path::Path;

use crate::cnn::train::Loss;
use crate::config::Config;
use crate::experiment::{file_err, EpochMetrics, ExpError, Experiment};
use crate::hash::Fnv1a;
use crate::rng::Rng;

impl<N: Loss> Experiment<N> {
    /// Write a checkpoint atomically (temporary file in the same directory, fsync,
    /// rename), so a crash leaves either the old or the new checkpoint, never half.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), ExpError> {
        let mut buf: Vec<u8> = Vec::new();
        buf.extend_from_slice(CKPT_MAGIC);
        let put = |buf: &mut Vec<u8>, x: u64| buf.extend_from_slice(&x.to_le_bytes());
        put(&mut buf, config_hash(&self.config));
        put(&mut buf, self.epoch as u64);
        put(&mut buf, self.trainer.step);
        for s in self.trainer.step_rng.state() {
            put(&mut buf, s);
        }
        let t = &self.trainer;
        for tensor in t
            .net
            .w
            .iter()
            .chain(t.net.b.iter())
            .chain(t.opt.v_bp.iter())
            .chain(t.opt.v_dfa.iter())
        {
            put(&mut buf, tensor.len() as u64);
            for v in tensor {
                put(&mut buf, N::master_bits(*v) as u64);
            }
        }
        put(&mut buf, self.history.len() as u64);
        for m in &self.history {
            for x in [
                m.epoch as f64,
                m.train_loss,
                m.train_acc,
                m.test_loss,
                m.test_acc,
                m.bp_steps as f64,
                m.dfa_steps as f64,
            ] {
                put(&mut buf, x.to_bits());
            }
        }
        write_atomic(path, &sealed(buf))
    }

    /// Restore a checkpoint written by [`Experiment::save_checkpoint`] for the same config.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<(), ExpError> {
        let buf = std::fs::read(path).map_err(|e| file_err(path, e))?;
        self.load_checkpoint_bytes(path, &buf)
    }

    /// Restore a checkpoint from its bytes (`path` names it in errors). On an error
    /// the experiment is left as it was.
    pub fn load_checkpoint_bytes(&mut self, path: &Path, buf: &[u8]) -> Result<(), ExpError> {
        let mut words = Words::new(buf, CKPT_MAGIC, path, "checkpoint")?;
        if words.next()? != config_hash(&self.config) {
            return Err(words.bad("it was written for a different configuration"));
        }
        let epoch = words.next()? as usize;
        let step = words.next()?;
        let rng = [words.next()?, words.next()?, words.next()?, words.next()?];
        let t = &self.trainer;
        let shapes: Vec<usize> = t
            .net
            .w
            .iter()
            .chain(t.net.b.iter())
            .chain(t.opt.v_bp.iter())
            .chain(t.opt.v_dfa.iter())
            .map(Vec::len)
            .collect();
        let mut tensors = Vec::new();
        for &len in &shapes {
            if words.next()? as usize != len {
                return Err(words.bad("tensor shapes differ from the network"));
            }
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                v.push(N::master_from_bits(words.next()? as i64));
            }
            tensors.push(v);
        }
        let n_hist = words.next()? as usize;
        let mut history = Vec::new();
        for _ in 0..n_hist {
            let mut f = [0f64; 7];
            for x in f.iter_mut() {
                *x = f64::from_bits(words.next()?);
            }
            history.push(EpochMetrics {
                epoch: f[0] as usize,
                train_loss: f[1],
                train_acc: f[2],
                test_loss: f[3],
                test_acc: f[4],
                bp_steps: f[5] as usize,
                dfa_steps: f[6] as usize,
            });
        }
        let nw = self.trainer.net.w.len();
        let nb = self.trainer.net.b.len();
        let mut it = tensors.into_iter();
        let t = &mut self.trainer;
        for k in 0..nw {
            t.net.w[k] = it.next().expect("shape checked");
        }
        for k in 0..nb {
            t.net.b[k] = it.next().expect("shape checked");
        }
        for k in 0..nw + nb {
            t.opt.v_bp[k] = it.next().expect("shape checked");
        }
        for k in 0..nw + nb {
            t.opt.v_dfa[k] = it.next().expect("shape checked");
        }
        t.step = step;
        t.step_rng = Rng::from_state(rng);
        self.epoch = epoch;
        self.history = history;
        Ok(())
    }
}

/// Magic and format version (the last two digits; 02 added the checksum).
const CKPT_MAGIC: &[u8; 8] = b"HDFACK02";

/// The checksum a checkpoint ends with: FNV-1a of the bytes before it.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.write(bytes);
    h.finish()
}

/// `buf` followed by its [`checksum`] (little-endian u64).
pub fn sealed(mut buf: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&buf);
    buf.extend_from_slice(&sum.to_le_bytes());
    buf
}

/// Hash of everything that shapes the training trajectory: the thread count is left
/// out, and so is the epoch count under a constant learning rate, so a run can be
/// extended or resumed on another machine. A learning-rate schedule depends on the
/// epoch count, so there it is kept: a resume with another count is refused.
fn config_hash(c: &Config) -> u64 {
    let mut raw = c.raw.clone();
    if raw.eta_schedule == crate::config::EtaSchedule::Constant {
        raw.epochs = 0;
    }
    raw.threads = 0;
    let mut h = Fnv1a::new();
    h.write(format!("{raw:?}").as_bytes());
    h.finish()
}

/// The little-endian u64 words of a checkpoint file after its 8-byte magic, read in
/// order; every error names the file and what is wrong with it.
pub(crate) struct Words<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    what: &'static str,
}

impl<'a> Words<'a> {
    /// Check the magic; `what` names the kind of file in errors.
    pub(crate) fn new(
        buf: &'a [u8],
        magic: &[u8; 8],
        path: &'a Path,
        what: &'static str,
    ) -> Result<Self, ExpError> {
        let mut w = Words {
            buf,
            pos: magic.len(),
            path,
            what,
        };
        if !buf.starts_with(magic) {
            // The same kind of file in another format version, or something else.
            let (family, version) = magic.split_at(6);
            if buf.len() >= 8 && buf.starts_with(family) {
                return Err(w.bad(&format!(
                    "format version {} (this hdfa reads version {}): train again, or resume with the hdfa that wrote it",
                    String::from_utf8_lossy(&buf[6..8]),
                    String::from_utf8_lossy(version)
                )));
            }
            return Err(w.bad(&format!(
                "wrong magic (expected {})",
                String::from_utf8_lossy(magic)
            )));
        }
        // The checksum trailer: the file must be whole and unchanged.
        let body = buf.len().checked_sub(8).filter(|&n| n >= magic.len());
        let Some(n) = body else {
            return Err(w.bad("truncated"));
        };
        let stored = u64::from_le_bytes(buf[n..].try_into().expect("8 bytes"));
        let computed = checksum(&buf[..n]);
        if computed != stored {
            return Err(w.bad(&format!(
                "checksum mismatch (stored {stored:016x}, computed {computed:016x}): the file is truncated or corrupt"
            )));
        }
        w.buf = &buf[..n];
        Ok(w)
    }

    /// "not a valid {what}: {reason}", naming the file.
    pub(crate) fn bad(&self, reason: &str) -> ExpError {
        file_err(self.path, format!("not a valid {}: {reason}", self.what))
    }

    /// The next word.
    pub(crate) fn next(&mut self) -> Result<u64, ExpError> {
        let b = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| self.bad("truncated"))?;
        self.pos += 8;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// Whether every byte was read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Write `bytes` to `path` atomically: a temporary file `.NAME.tmpPID` in the same
/// directory, fsync, rename. A process killed on the way leaves the old file and its
/// temporary one; the next successful write of the same file removes such leftovers.
///
/// Test hook: `HDFA_TEST_WRITE_PAUSE_MS=N` pauses N ms after half of the bytes and
/// again before the rename, so that a test's kills land inside writes
/// (`hdfa/tests/crash.rs`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExpError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let prefix = format!(".{name}.tmp");
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let pause = std::env::var("HDFA_TEST_WRITE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis);
    let mut f = std::fs::File::create(&tmp).map_err(|e| file_err(&tmp, e))?;
    let (a, b) = bytes.split_at(bytes.len() / 2);
    f.write_all(a).map_err(|e| file_err(&tmp, e))?;
    if let Some(d) = pause {
        f.flush().map_err(|e| file_err(&tmp, e))?;
        std::thread::sleep(d);
    }
    f.write_all(b).map_err(|e| file_err(&tmp, e))?;
    f.sync_all().map_err(|e| file_err(&tmp, e))?;
    drop(f);
    if let Some(d) = pause {
        std::thread::sleep(d);
    }
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))?;
    // Leftovers of writers killed mid-write (other PIDs) are garbage now.
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}
