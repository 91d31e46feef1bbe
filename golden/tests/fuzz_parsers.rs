//! The parsers of user input under proptest, on a fixed, seeded budget (CI): configs
//! (CNN and RNN), IDX files, gzip streams, text splits, the digits CSV and
//! checkpoints, each from arbitrary bytes and from mutations of a valid input. Every
//! call must return, error or not, without panicking ([`golden::fuzz`]). The same
//! entry points run under cargo-fuzz outside CI (`fuzz/`).

use golden::fuzz;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Cases per target: enough to reach past the headers, small enough for CI.
const CASES: u32 = 10_000;

fn config() -> Config {
    Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(0x48444641),
        failure_persistence: None,
        ..Config::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// `base` with up to 8 edits: (position, new bytes, bytes removed).
fn mutated(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<u16>(), bytes(8), 0usize..8), 0..8).prop_map(move |edits| {
        let mut v = base.to_vec();
        for (at, ins, del) in edits {
            let at = at as usize % (v.len() + 1);
            let end = (at + del).min(v.len());
            v.splice(at..end, ins);
        }
        v
    })
}

const CNN: &[u8] = include_bytes!("../../configs/fashion-run.toml");
const RNN: &[u8] = include_bytes!("../../configs/austen-word-gru.toml");

fn idx_valid() -> Vec<u8> {
    // Split byte (so the images are the first half), 3 images of 2x2, 3 labels.
    let mut v = vec![128];
    for x in [0x803u32, 3, 2, 2] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&[0; 12]);
    for x in [0x801u32, 3] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&[1, 2, 3]);
    v
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_config_bytes(d in bytes(2048)) { fuzz::config(&d); }

    #[test]
    fn fuzz_config_mutated_cnn(d in mutated(CNN)) { fuzz::config(&d); }

    #[test]
    fn fuzz_config_mutated_rnn(d in mutated(RNN)) { fuzz::config(&d); }

    #[test]
    fn fuzz_idx_bytes(d in bytes(256)) { fuzz::idx(&d); }

    #[test]
    fn fuzz_idx_mutated(d in mutated(Box::leak(idx_valid().into_boxed_slice()))) { fuzz::idx(&d); }

    #[test]
    fn fuzz_gzip_bytes(d in bytes(512)) { fuzz::gzip(&d); }

    #[test]
    fn fuzz_text_bytes(d in bytes(1024)) { fuzz::text(&d); }

    #[test]
    fn fuzz_digits_csv_bytes(d in bytes(1024)) { fuzz::digits_csv(&d); }

    #[test]
    fn fuzz_checkpoint_bytes(d in bytes(512)) { fuzz::checkpoint(&d); }

    #[test]
    fn fuzz_checkpoint_resealed(d in bytes(64)) { fuzz::checkpoint_resealed(&d); }
}

#[test]
fn fuzz_regressions_return() {
    // cargo-fuzz's finds, each a panic before its fix.
    // idx: zero images of 0xf7000010 x 0x90ff0020 pixels (ndarray shape overflow).
    fuzz::idx(&[
        0xaf, 0x0, 0x0, 0x8, 0x3, 0x0, 0x0, 0x0, 0x0, 0xf7, 0x0, 0x0, 0x10, 0x90, 0xff, 0x0, 0x20,
        0x0, 0x0, 0x8, 0x1, 0x0, 0x0, 0x0, 0x0,
    ]);
}

#[test]
fn a_gzip_stream_is_unpacked_and_a_valid_idx_loads() {
    // The mutation bases are valid inputs, so the fuzzing starts from real parses.
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"Emma Woodhouse").unwrap();
    let packed = gz.finish().unwrap();
    let p = std::path::Path::new("t");
    assert_eq!(
        golden::data::unpack_maybe_gz(p, packed, Some(1 << 20)).unwrap(),
        b"Emma Woodhouse"
    );
    let v = idx_valid();
    let (img, lab) = v[1..].split_at(28);
    assert_eq!(
        golden::data::parse_idx(p, img, p, lab, 10).unwrap().len(),
        3
    );
    assert!(golden::config::Config::parse(p, std::str::from_utf8(CNN).unwrap()).is_ok());
}
