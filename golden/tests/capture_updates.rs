//! The update unit's model against the trainer on real steps: the inputs captured
//! before step s (θ, v_bp, v_dfa, g, kind, η, α, γ), run through the unit's model
//! `update::apply`, must give exactly the state the trainer holds before step s + 1.
//! This checks that the capture records the gradient the step applies, for BP and
//! DFA steps both.

use std::path::{Path, PathBuf};

use golden::cnn::num::Fx;
use golden::config::Config;
use golden::experiment::Experiment;
use golden::update::{apply, StepKind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn update_model_reproduces_the_trainers_optimizer_on_real_bp_and_dfa_steps() {
    let path = root().join("configs/digits-hdfa.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "csv = \"data/",
        &format!("csv = \"{}/data/", root().display()),
    );
    let mut e = Experiment::<Fx>::new(Config::parse(&path, &text).unwrap()).unwrap();
    let steps: Vec<usize> = (0..12).collect();
    let caps = e.capture_updates(&steps).unwrap();
    assert_eq!(caps.len(), steps.len());
    let kinds: Vec<StepKind> = caps.iter().map(|c| c.kind).collect();
    assert!(
        kinds.contains(&StepKind::Bp) && kinds.contains(&StepKind::Dfa),
        "{kinds:?}"
    );
    let mut words = 0;
    for w in caps.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert_eq!(a.tensors.len(), b.tensors.len());
        for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
            assert!(
                ta.grad.iter().any(|&g| g != 0),
                "step {} {}: zero gradient",
                a.step,
                ta.name
            );
            for j in 0..ta.grad.len() {
                let got = apply(a.kind, &a.coefs, ta.state[j], ta.grad[j]);
                assert_eq!(
                    got, tb.state[j],
                    "step {} ({:?}) {} word {j}",
                    a.step, a.kind, ta.name
                );
                words += 1;
            }
        }
    }
    assert!(words > 10_000, "{words}");
    // A capture whose gradient is off by one LSB in one word fails the check.
    let (a, b) = (&caps[0], &caps[1]);
    let t = &a.tensors[0];
    let bad = apply(a.kind, &a.coefs, t.state[0], t.grad[0] ^ (1 << 8));
    assert_ne!(bad, b.tensors[0].state[0]);
}
