//! The backward-weight unit's model against the trainer's own dense DFA paths on
//! real training steps: S is taken from the trainer (not drawn again), e_L and the
//! ReLU mask from the step, and the model's e_i must equal the trainer's errors.

use std::path::{Path, PathBuf};

use golden::bsbu::apply;
use golden::cnn::num::Fx;
use golden::config::Config;
use golden::experiment::Experiment;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// digits-hdfa with the dense paths' sparsity set.
fn experiment(sparsity: f64) -> Experiment<Fx> {
    let path = root().join("configs/digits-hdfa.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "csv = \"data/",
            &format!("csv = \"{}/data/", root().display()),
        )
        .replace("[backward]", &format!("[backward]\nsparsity = {sparsity}"));
    Experiment::<Fx>::new(Config::parse(&path, &text).unwrap()).unwrap()
}

#[test]
fn bsbu_model_reproduces_the_trainers_dense_paths_on_real_steps() {
    for sparsity in [0.0, 0.9] {
        let caps = experiment(sparsity).capture_dense(&[0, 42, 83], 2).unwrap();
        assert!(!caps.is_empty(), "digits-hdfa has a dense path from e_L");
        let (mut words, mut nonzero, mut nnz, mut entries) = (0, 0, 0, 0);
        for c in &caps {
            let got = apply(&c.s, &c.e_l, &c.fprime, c.shift).unwrap();
            assert_eq!(
                got, c.expected,
                "step {} sample {} target {} rows {:?}",
                c.step, c.sample, c.target, c.rows
            );
            assert!(c.rows.len() <= golden::params::MAX_ROWS);
            words += got.len();
            nonzero += got.iter().filter(|v| v.to_bits() != 0).count();
            nnz += c.s.nnz();
            entries += c.s.n_rows() * c.s.n_cols();
        }
        let density = nnz as f64 / entries as f64;
        println!(
            "sparsity {sparsity}: {} tiles, {nonzero} of {words} words nonzero, S density {density:.3}",
            caps.len()
        );
        assert!(nonzero > 0, "the checked errors are not all zero");
        assert!((density - (1.0 - sparsity)).abs() < 0.03, "{density}");
    }
}
