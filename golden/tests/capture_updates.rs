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

/// The propagation hook of hardware in the loop: a hook that leaves the golden result
/// in place trains exactly as the plain trainer (DFA steps included, on one thread
/// against two), it is called once per sample and DFA path with e already masked by
/// the ReLU mask it gets, and a hook that changes one word changes the training.
#[test]
fn path_hook_sees_every_dfa_path_of_every_sample_and_its_result_is_used() {
    use golden::cnn::train::PathHook;
    let path = root().join("configs/digits-hdfa.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "csv = \"data/",
        &format!("csv = \"{}/data/", root().display()),
    );
    let config = Config::parse(&path, &text).unwrap();
    let run = |perturb: bool| {
        let mut e = Experiment::<Fx>::new(config.clone()).unwrap();
        let n_paths = e.trainer.net.paths.len();
        let (mut calls, mut dfa_steps) = (0usize, 0usize);
        e.train_steps_with(7, |t, _, batch| -> Result<(), String> {
            let dfa = t.next_kind() == StepKind::Dfa;
            dfa_steps += dfa as usize;
            let mut hook = |k: usize, src: &[i16], active: &[bool], e: &mut [i16]| {
                calls += 1;
                assert!(k < n_paths && !src.is_empty());
                assert_eq!(active.len(), e.len());
                for j in 0..e.len() {
                    assert!(active[j] || e[j] == 0, "path {k} word {j} not masked");
                }
                if perturb && k == 0 {
                    if let Some(j) = (0..e.len()).find(|&j| active[j]) {
                        e[j] = e[j].wrapping_add(64);
                    }
                }
                Ok::<(), String>(())
            };
            t.train_step_hw(
                batch,
                2,
                Some(&mut hook as &mut PathHook<'_, i16, String>),
                &mut |kind, h, _, th, vb, vd, g| {
                    for j in 0..g.len() {
                        golden::cnn::train::update_word::<Fx>(
                            kind, h, &mut th[j], &mut vb[j], &mut vd[j], g[j],
                        );
                    }
                    Ok(())
                },
            )?;
            Ok(())
        })
        .unwrap();
        let batch = e.config.raw.batch;
        assert!(dfa_steps > 0);
        assert_eq!(calls, dfa_steps * batch * n_paths);
        e.state_checksum()
    };
    let mut plain = Experiment::<Fx>::new(config.clone()).unwrap();
    plain.walk_steps(7, true, |_, _, _| Ok(())).unwrap();
    assert_eq!(run(false), plain.state_checksum());
    assert_ne!(run(true), plain.state_checksum());
}
