//! Checkpoints of recurrent training: the whole training state at the end of an epoch
//! (master weights, both Adam moments, the β powers, the step counters, the BPTT/DFA
//! draw's generator) and the metrics history, written atomically
//! ([`crate::checkpoint::write_atomic`]). Both paths have them: the fixed-point
//! trainer ([`RnnTrainer`], its raw words) and the f32 reference
//! ([`FloatRnnTrainer<f32>`], the bits of its floats), each in its own file format
//! (its own magic), so one is never resumed as the other. Main types: [`RnnEpoch`],
//! [`RnnState`]; functions [`save`], [`load`].
//!
//! The feedback matrices are not stored: they are fixed at the start of training from
//! the seed and the initial weights (B.2), so [`load`] restores into a trainer freshly
//! built from the same config ([`super::config::RnnConfig::trainer`], and for f32
//! [`FloatRnnTrainer::from_fixed`] of it), which has drawn them again. The carried
//! stream states are not stored either: every epoch starts from zero states. A
//! checkpoint names its config by [`super::config::RnnConfig::trajectory_hash`].

use std::path::Path;

use super::float_train::FloatRnnTrainer;
use super::train::{RnnEval, RnnTrainer};
use crate::adam::AdamSteps;
use crate::checkpoint::{sealed, write_atomic, Words};
use crate::experiment::{file_err, ExpError};
use crate::rng::Rng;

/// The counters a recurrent trainer carries from step to step.
#[derive(Clone, Debug)]
pub struct Counters {
    /// Steps taken.
    pub step: u64,
    /// BPTT steps taken.
    pub bp_steps: u64,
    /// Adam's β powers.
    pub adam: AdamSteps,
    /// The generator of the BPTT/DFA draw.
    pub draw: Rng,
}

/// A recurrent trainer whose whole state a checkpoint holds.
pub trait RnnState {
    /// Magic and format version of its files.
    const MAGIC: &'static [u8; 8];
    /// What its files are called in errors.
    const WHAT: &'static str;
    /// The step counters, the β powers and the draw.
    fn counters(&self) -> Counters;
    /// Set what [`RnnState::counters`] gives, and forget the carried states.
    fn restore_counters(&mut self, c: Counters);
    /// Every state tensor (weights, then the optimizer's), as 64-bit words, in a fixed
    /// order.
    fn state_words(&self) -> Vec<Vec<u64>>;
    /// Overwrite the state tensors from words in [`RnnState::state_words`]'s order and
    /// lengths ([`load`] checks them against the model before it calls this).
    fn restore_words(&mut self, t: &[Vec<u64>]);
}

/// [`RnnState::counters`] and [`RnnState::restore_counters`] of a trainer whose fields
/// `step`, `bp_steps`, `steps` (Adam's powers) and `draw` they are (both trainers).
macro_rules! counter_fields {
    () => {
        fn counters(&self) -> Counters {
            Counters {
                step: self.step,
                bp_steps: self.bp_steps,
                adam: self.steps,
                draw: self.draw.clone(),
            }
        }
        fn restore_counters(&mut self, c: Counters) {
            (self.step, self.bp_steps, self.steps) = (c.step, c.bp_steps, c.adam);
            self.draw = c.draw;
            super::train::LmTrainer::reset_state(self);
        }
    };
}

impl RnnState for RnnTrainer {
    /// 02 added the checksum trailer.
    const MAGIC: &'static [u8; 8] = b"HDFARN02";
    const WHAT: &'static str = "recurrent checkpoint";
    counter_fields!();
    fn state_words(&self) -> Vec<Vec<u64>> {
        // Weights and m: i32 words; v: i64 words.
        let w32 = |x: &[i32]| -> Vec<u64> { x.iter().map(|&w| w as u32 as u64).collect() };
        let mut out: Vec<Vec<u64>> = self.params.tensors().into_iter().map(|x| w32(x)).collect();
        out.extend(self.m.iter().map(|x| w32(x)));
        out.extend(self.v.iter().map(|x| x.iter().map(|&w| w as u64).collect()));
        out
    }
    fn restore_words(&mut self, t: &[Vec<u64>]) {
        let mut it = t.iter();
        for x in self
            .params
            .tensors_mut()
            .into_iter()
            .chain(self.m.iter_mut())
        {
            for (w, &s) in x.iter_mut().zip(it.next().expect("counted")) {
                *w = s as u32 as i32;
            }
        }
        for x in self.v.iter_mut() {
            for (w, &s) in x.iter_mut().zip(it.next().expect("counted")) {
                *w = s as i64;
            }
        }
    }
}

impl RnnState for FloatRnnTrainer<f32> {
    const MAGIC: &'static [u8; 8] = b"HDFARF01";
    const WHAT: &'static str = "recurrent f32 checkpoint";
    counter_fields!();
    fn state_words(&self) -> Vec<Vec<u64>> {
        // The floats' bits: a resumed run continues bit for bit.
        [&self.params, &self.m, &self.v]
            .into_iter()
            .flat_map(|p| p.tensors())
            .map(|x| x.iter().map(|v| v.to_bits() as u64).collect())
            .collect()
    }
    fn restore_words(&mut self, t: &[Vec<u64>]) {
        let tensors = [&mut self.params, &mut self.m, &mut self.v]
            .into_iter()
            .flat_map(|p| p.tensors_mut());
        for (x, s) in tensors.zip(t) {
            for (v, &b) in x.iter_mut().zip(s) {
                *v = f32::from_bits(b as u32);
            }
        }
    }
}

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
pub fn save<T: RnnState>(
    path: &Path,
    hash: u64,
    epoch: usize,
    t: &T,
    history: &[RnnEpoch],
) -> Result<(), ExpError> {
    let mut buf: Vec<u8> = T::MAGIC.to_vec();
    let mut put = |x: u64| buf.extend_from_slice(&x.to_le_bytes());
    put(hash);
    put(epoch as u64);
    let c = t.counters();
    put(c.step);
    put(c.bp_steps);
    let (p1, p2) = c.adam.powers();
    put(p1.to_bits());
    put(p2.to_bits());
    for s in c.draw.state() {
        put(s);
    }
    for x in t.state_words() {
        put(x.len() as u64);
        for w in x {
            put(w);
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
pub fn load<T: RnnState>(
    path: &Path,
    hash: u64,
    t: &mut T,
) -> Result<(usize, Vec<RnnEpoch>), ExpError> {
    let buf = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let mut words = Words::new(&buf, T::MAGIC, path, T::WHAT)?;
    if words.next()? != hash {
        return Err(words.bad("it was written for a different configuration"));
    }
    let epoch = words.next()? as usize;
    let (step, bp_steps) = (words.next()?, words.next()?);
    let (p1, p2) = (f64::from_bits(words.next()?), f64::from_bits(words.next()?));
    let draw = [words.next()?, words.next()?, words.next()?, words.next()?];
    let model: Vec<usize> = t.state_words().iter().map(Vec::len).collect();
    let mut state = Vec::with_capacity(model.len());
    for &n in &model {
        // Checked before reading, so a damaged length cannot ask for a huge tensor.
        if words.next()? as usize != n {
            return Err(words.bad("tensor shapes differ from the model"));
        }
        state.push(
            (0..n)
                .map(|_| words.next())
                .collect::<Result<Vec<_>, _>>()?,
        );
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
    // The whole file is good: only now does `t` change.
    t.restore_words(&state);
    t.restore_counters(Counters {
        step,
        bp_steps,
        adam: AdamSteps::from_powers(p1, p2),
        draw: Rng::from_state(draw),
    });
    Ok((epoch, history))
}

#[cfg(test)]
mod tests {
    use super::super::cell::CellKind;
    use super::super::train::tests::{corpus, hdfa_feedback, trainer};
    use super::super::train::{batchify, windows, LmTrainer};
    use super::*;
    use crate::rng::SeedableRng;

    fn epoch(t: &mut impl LmTrainer, text: &[u32]) {
        let streams = batchify(text, 4);
        t.reset_state();
        for w in windows(streams[0].len(), 10) {
            t.train_step(&streams, w);
        }
    }

    /// Two epochs straight, or one, a checkpoint, a fresh trainer restored from it and
    /// one more: the same weights and Adam state, bit for bit (HDFA, so the draw's
    /// generator and the feedback must come back too). Damaged files are refused and
    /// leave the trainer as it was.
    #[test]
    fn resumed_training_is_bit_identical_and_bad_files_are_refused() {
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

    /// The f32 path the same way: one epoch, a checkpoint, a fresh twin restored from
    /// it and one more equal two epochs straight, bit for bit (HDFA: the draw comes
    /// back). A fixed-point checkpoint is refused by the f32 trainer and the other way
    /// round, by name, and leaves it as it was.
    #[test]
    fn f32_training_resumes_bit_identically_and_the_paths_do_not_mix() {
        let text = corpus(900, 4);
        let o = hdfa_feedback();
        let fixed = || trainer(CellKind::Gru, 2).with_dfa(o, 0.5, 9).unwrap();
        let fresh = || FloatRnnTrainer::<f32>::from_fixed(&fixed());
        let mut straight = fresh();
        epoch(&mut straight, &text);
        epoch(&mut straight, &text);
        let dir = std::env::temp_dir().join(format!("hdfa-rnn-f32-{}", std::process::id()));
        let (fpath, xpath) = (dir.join("f32.bin"), dir.join("fixed.bin"));
        let mut first = fresh();
        epoch(&mut first, &text);
        save(&fpath, 5, 1, &first, &[]).unwrap();
        let mut resumed = fresh();
        assert_eq!(load(&fpath, 5, &mut resumed).unwrap(), (1, vec![]));
        assert_eq!(resumed.checksum(), first.checksum());
        epoch(&mut resumed, &text);
        assert_eq!(resumed.checksum(), straight.checksum());
        assert_eq!(resumed.steps(), straight.steps());
        assert!(straight.steps().1 > 0 && straight.steps().1 < straight.steps().0);
        assert_ne!(first.checksum(), straight.checksum());

        save(&xpath, 5, 1, &fixed(), &[]).unwrap();
        let mut f = fresh();
        let err = load(&xpath, 5, &mut f).unwrap_err().to_string();
        assert!(
            err.contains("recurrent f32 checkpoint") && err.contains("HDFARF01"),
            "{err}"
        );
        assert_eq!(
            f.checksum(),
            fresh().checksum(),
            "a refused file changed the trainer"
        );
        let mut x = fixed();
        let err = load(&fpath, 5, &mut x).unwrap_err().to_string();
        assert!(err.contains("wrong magic (expected HDFARN02)"), "{err}");
        let bytes = std::fs::read(&fpath).unwrap();
        for k in [9, bytes.len() / 2, bytes.len() - 9] {
            let mut b = bytes.clone();
            b[k] ^= 1;
            std::fs::write(&fpath, &b).unwrap();
            let err = load(&fpath, 5, &mut f).unwrap_err().to_string();
            assert!(err.contains("checksum mismatch"), "{err}");
        }
        assert_eq!(f.checksum(), fresh().checksum());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
