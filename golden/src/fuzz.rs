//! Entry points for fuzzing the parsers of everything a user hands in: each takes
//! arbitrary bytes and must return (an error is fine) without panicking, hanging or
//! allocating beyond the input's size. `golden/tests/fuzz_parsers.rs` runs them with
//! proptest on a fixed budget in CI; `fuzz/` (cargo-fuzz, libFuzzer) runs them for as
//! long as wanted outside it.
//!
//! Main functions: [`config`], [`idx`], [`gzip`], [`text`], [`digits_csv`],
//! [`checkpoint`], [`checkpoint_resealed`].

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::cnn::num::Fx;
use crate::experiment::Experiment;

const FILE: &str = "fuzz-input";

/// A CNN config and a recurrent config from the same text.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::config::Config::parse(Path::new(FILE), &text);
    let _ = crate::rnn::config::RnnConfig::parse(Path::new(FILE), &text);
}

/// An IDX image file and a label file: the first byte picks where `data` is split.
pub fn idx(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let at = (k as usize * rest.len()) / 255;
    let (img, lab) = rest.split_at(at.min(rest.len()));
    let _ = crate::data::parse_idx(Path::new(FILE), img, Path::new(FILE), lab, 10);
}

/// A file that may be gzip'd, unpacked with a 16 MiB budget.
pub fn gzip(data: &[u8]) {
    let _ = crate::data::unpack_maybe_gz(Path::new(FILE), data.to_vec(), Some(16 << 20));
}

/// A text split, tokenized at word and character level.
pub fn text(data: &[u8]) {
    if let Ok(t) = crate::text::text_of(Path::new(FILE), data.to_vec()) {
        for level in [crate::text::Level::Word, crate::text::Level::Char] {
            let _ = crate::text::Corpus::from_texts(&t, &t, &t, level, 1);
        }
    }
}

/// The digits CSV.
pub fn digits_csv(data: &[u8]) {
    let _ = crate::data::parse_digits_csv(Path::new(FILE), data.to_vec(), 8, 10);
}

/// A small network (digits-small's layers on 16 blank 8×8 images) and a valid
/// checkpoint of it, built once.
fn subject() -> &'static (Mutex<Experiment<Fx>>, Vec<u8>) {
    static S: OnceLock<(Mutex<Experiment<Fx>>, Vec<u8>)> = OnceLock::new();
    S.get_or_init(|| {
        let text = include_str!("../../configs/digits-small.toml");
        let c = crate::config::Config::parse(Path::new("digits-small.toml"), text)
            .expect("the shipped config parses");
        let d = crate::data::Dataset::new(
            8,
            8,
            16,
            10,
            vec![0; 16 * 64],
            (0..16).map(|i| i % 10).collect(),
        );
        let e = Experiment::<Fx>::with_data(c, &d, &d).expect("a 16-image experiment");
        let dir = std::env::temp_dir().join(format!("hdfa-fuzz-{}", std::process::id()));
        let p = dir.join("checkpoint.bin");
        e.save_checkpoint(&p).expect("a checkpoint in the temp dir");
        let bytes = std::fs::read(&p).expect("just written");
        let _ = std::fs::remove_dir_all(&dir);
        (Mutex::new(e), bytes)
    })
}

/// Arbitrary bytes as a checkpoint of the small network.
pub fn checkpoint(data: &[u8]) {
    let mut e = subject().0.lock().unwrap_or_else(|p| p.into_inner());
    let _ = e.load_checkpoint_bytes(Path::new(FILE), data);
}

/// A valid checkpoint with `data` spliced into its body (the first two bytes pick
/// where, the third whether it replaces or inserts), then sealed with a correct
/// checksum, so the parser behind the checksum sees malformed fields.
pub fn checkpoint_resealed(data: &[u8]) {
    let (e, good) = subject();
    if data.len() < 3 {
        return;
    }
    let body = &good[..good.len() - 8];
    let at = 8 + (u16::from_le_bytes([data[0], data[1]]) as usize % (body.len() - 8));
    let patch = &data[3..];
    let mut b = body[..at].to_vec();
    b.extend_from_slice(patch);
    let skip = if data[2] & 1 == 0 { patch.len() } else { 0 };
    b.extend_from_slice(body.get(at + skip..).unwrap_or(&[]));
    let sealed = crate::checkpoint::sealed(b);
    let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
    let _ = e.load_checkpoint_bytes(Path::new(FILE), &sealed);
}
