//! Checkpoints of recurrent training: the whole fixed-point state at the end of an
//! epoch (master weights, both Adam moments, the β powers, the step counters, the
//! BPTT/DFA draw's generator) and the metrics history, written atomically
//! ([`crate::checkpoint::write_atomic`]). Main type: [`RnnEpoch`]; functions
//! [`save`], [`load`].
//!
//! The feedback matrices are not stored: they are fixed at the start of training from
//! the seed and the initial weights (B.2), so [`load`] restores into a trainer freshly
//! built from the same config ([`super::config::RnnConfig::trainer`]), which has
//! drawn them again. The carried stream states are not stored either: every epoch
//! starts from zero states. A checkpoint names its config by
//! [`super::config::RnnConfig::trajectory_hash`].

use std::path::Path;

use super::train::{RnnEval, RnnTrainer};
use crate::adam::AdamSteps;
use crate::checkpoint::{sealed, write_atomic, Words};
use crate::experiment::{file_err, ExpError};
use crate::rng::Rng;

/// Magic and format version (02 added the checksum trailer).
const MAGIC: &[u8; 8] = b"HDFARN02";

/// One epoch's metrics of a recurrent run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnEpoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Steps taken so far.
    pub steps: u64,
    /// BPTT steps so far.
    pub bp_steps: u64,
    /// Training sums of the epoch (as seen while training).
    pub train: RnnEval,
    /// Validation sums.
    pub valid: RnnEval,
    /// Test sums.
    pub test: RnnEval,
    /// Training throughput.
    pub tokens_per_s: f64,
}

/// Write the trainer `t` after `epoch` epochs, with `history`, for the config whose
/// trajectory hash is `hash`.
pub fn save(
    path: &Path,
    hash: u64,
    epoch: usize,
    t: &RnnTrainer,
    history: &[RnnEpoch],
) -> Result<(), ExpError> {
    let mut buf: Vec<u8> = MAGIC.to_vec();
    let mut put = |x: u64| buf.extend_from_slice(&x.to_le_bytes());
    put(hash);
    put(epoch as u64);
    put(t.step);
    put(t.bp_steps);
    let (p1, p2) = t.steps.powers();
    put(p1.to_bits());
    put(p2.to_bits());
    for s in t.draw.state() {
        put(s);
    }
    for x in t.params.tensors().into_iter().chain(t.m.iter()) {
        put(x.len() as u64);
        for &w in x {
            put(w as u32 as u64);
        }
    }
    for x in &t.v {
        put(x.len() as u64);
        for &w in x {
            put(w as u64);
        }
    }
    put(history.len() as u64);
    for m in history {
        put(m.epoch as u64);
        put(m.steps);
        put(m.bp_steps);
        for e in [m.train, m.valid, m.test] {
            put(e.tokens);
            put(e.loss_raw as u64);
            put(e.hits);
        }
        put(m.tokens_per_s.to_bits());
    }
    write_atomic(path, &sealed(buf))
}

/// Restore a checkpoint written by [`save`] into `t`, a trainer freshly built from the
/// config whose trajectory hash is `hash`; returns the epochs done and the history.
/// Nothing in `t` changes unless the whole file is valid.
pub fn load(
    path: &Path,
    hash: u64,
    t: &mut RnnTrainer,
) -> Result<(usize, Vec<RnnEpoch>), ExpError> {
    let buf = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let mut words = Words::new(&buf, MAGIC, path, "recurrent checkpoint")?;
    if words.next()? != hash {
        return Err(words.bad("it was written for a different configuration"));
    }
    let epoch = words.next()? as usize;
    let (step, bp_steps) = (words.next()?, words.next()?);
    let (p1, p2) = (f64::from_bits(words.next()?), f64::from_bits(words.next()?));
    let draw = [words.next()?, words.next()?, words.next()?, words.next()?];
    let mut n = t.clone();
    {
        for x in n.params.tensors_mut().into_iter().chain(n.m.iter_mut()) {
            if words.next()? as usize != x.len() {
                return Err(words.bad("tensor shapes differ from the model"));
            }
            for w in x.iter_mut() {
                *w = words.next()? as u32 as i32;
            }
        }
    }
    for x in n.v.iter_mut() {
        if words.next()? as usize != x.len() {
            return Err(words.bad("tensor shapes differ from the model"));
        }
        for w in x.iter_mut() {
            *w = words.next()? as i64;
        }
    }
    let len = words.next()? as usize;
    if len > epoch {
        return Err(words.bad("more history than epochs"));
    }
    let mut history = Vec::with_capacity(len);
    for _ in 0..len {
        let (e, steps, bp) = (words.next()? as usize, words.next()?, words.next()?);
        let mut ev = [RnnEval::default(); 3];
        for x in ev.iter_mut() {
            *x = RnnEval {
                tokens: words.next()?,
                loss_raw: words.next()? as i64,
                hits: words.next()?,
            };
        }
        history.push(RnnEpoch {
            epoch: e,
            steps,
            bp_steps: bp,
            train: ev[0],
            valid: ev[1],
            test: ev[2],
            tokens_per_s: f64::from_bits(words.next()?),
        });
    }
    if !words.at_end() {
        return Err(words.bad("trailing bytes"));
    }
    n.step = step;
    n.bp_steps = bp_steps;
    n.steps = AdamSteps::from_powers(p1, p2);
    n.draw = Rng::from_state(draw);
    n.reset_state();
    *t = n;
    Ok((epoch, history))
}

#[cfg(test)]
mod tests {
    use super::super::train::tests::{corpus, hdfa_feedback, trainer};
    use super::super::train::{batchify, windows};
    use super::*;
    use crate::rng::SeedableRng;

    fn epoch(t: &mut RnnTrainer, text: &[u32]) {
        let streams = batchify(text, t.hyper.batch);
        t.reset_state();
        for w in windows(streams[0].len(), t.hyper.bptt) {
            t.train_step(&streams, w);
        }
    }

    /// Two epochs straight, or one, a checkpoint, a fresh trainer restored from it and
    /// one more: the same weights and Adam state, bit for bit (HDFA, so the draw's
    /// generator and the feedback must come back too). Damaged files are refused and
    /// leave the trainer as it was.
    #[test]
    fn resumed_training_is_bit_identical_and_bad_files_are_refused() {
        use super::super::cell::CellKind;
        let text = corpus(900, 4);
        let o = hdfa_feedback();
        let fresh = || trainer(CellKind::Lstm, 2).with_dfa(o, 0.5, 9).unwrap();
        let mut straight = fresh();
        epoch(&mut straight, &text);
        epoch(&mut straight, &text);
        let dir = std::env::temp_dir().join(format!("hdfa-rnn-ckpt-{}", std::process::id()));
        let path = dir.join("checkpoint.bin");
        let mut first = fresh();
        epoch(&mut first, &text);
        let hist = [RnnEpoch {
            epoch: 1,
            steps: first.step,
            bp_steps: first.bp_steps,
            train: RnnEval::default(),
            valid: RnnEval {
                tokens: 3,
                loss_raw: -5,
                hits: 1,
            },
            test: RnnEval::default(),
            tokens_per_s: 12.5,
        }];
        save(&path, 77, 1, &first, &hist).unwrap();
        let mut resumed = fresh();
        let (e, h) = load(&path, 77, &mut resumed).unwrap();
        assert_eq!((e, h.as_slice()), (1, &hist[..]));
        epoch(&mut resumed, &text);
        assert_eq!(resumed.checksum(), straight.checksum());
        assert_eq!(
            (resumed.step, resumed.bp_steps),
            (straight.step, straight.bp_steps)
        );
        assert_ne!(first.checksum(), straight.checksum());

        let bytes = std::fs::read(&path).unwrap();
        let untouched = fresh().checksum();
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (bytes[..bytes.len() - 3].to_vec(), "truncated"),
            (bytes[..40].to_vec(), "truncated"),
            (b"HDFACK01".to_vec(), "wrong magic"),
            ([bytes.clone(), vec![0; 8]].concat(), "corrupt"),
            (
                b"HDFARN01".to_vec(),
                "format version 01 (this hdfa reads version 02)",
            ),
        ];
        // One flipped bit anywhere after the magic.
        for k in [9, bytes.len() / 2, bytes.len() - 9] {
            let mut b = bytes.clone();
            b[k] ^= 4;
            cases.push((b, "checksum mismatch"));
        }
        let mut rng = Rng::seed_from_u64(1);
        for _ in 0..5 {
            // A random cut anywhere.
            let k = rng.below(bytes.len() as u64) as usize;
            cases.push((bytes[..k].to_vec(), ""));
        }
        for (b, want) in cases {
            std::fs::write(&path, &b).unwrap();
            let mut t = fresh();
            let err = load(&path, 77, &mut t).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("checkpoint.bin"),
                "{err}"
            );
            assert_eq!(
                t.checksum(),
                untouched,
                "a refused file changed the trainer"
            );
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = load(&path, 78, &mut fresh()).unwrap_err().to_string();
        assert!(err.contains("different configuration"), "{err}");
        let mut gru = trainer(CellKind::Gru, 1);
        let err = load(&path, 77, &mut gru).unwrap_err().to_string();
        assert!(err.contains("tensor shapes"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
