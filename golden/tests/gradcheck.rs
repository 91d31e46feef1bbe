//! The gradient check: its f64 reference is right (finite differences of its own
//! loss), the fixed-point backward pass tracks it, block scaling is what makes it
//! track, and a faulty gradient fails the check.

use std::path::{Path, PathBuf};

use golden::cnn::num::Fx;
use golden::cnn::train::StepKind;
use golden::config::{Config, ErrorScaling, FormatPreset};
use golden::experiment::Experiment;
use golden::format::ACT;
use golden::gradcheck::{compare, GradReport, Reference};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn experiment(name: &str, scaling: ErrorScaling) -> Experiment<Fx> {
    let path = root().join("configs").join(name);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "csv = \"data/",
        &format!("csv = \"{}/data/", root().display()),
    );
    let mut cfg = Config::parse(&path, &text).unwrap();
    cfg.raw.error_scaling = scaling;
    // The Q8.8 preset: the tests that round the reference to 8 fraction bits model it.
    cfg.raw.format = FormatPreset::Default;
    Experiment::<Fx>::new(cfg).unwrap()
}

fn worst(r: &GradReport) -> (f64, f64, f64, f64) {
    r.layers
        .iter()
        .fold((1.0f64, 0.0f64, 0.0f64, 0.0f64), |a, l| {
            (
                a.0.min(l.w_cos).min(l.b_cos),
                a.1.max(l.w_rel),
                a.2.max(l.b_rel),
                a.3.max(l.lost as f64 / l.nonzero_f64.max(1) as f64),
            )
        })
}

#[test]
fn gradcheck_reference_bp_gradients_match_finite_differences_of_its_own_loss() {
    let exp = experiment("digits-hdfa.toml", ErrorScaling::Block);
    let order = exp.order(1);
    let batch: Vec<(Vec<f64>, usize)> = exp
        .batch(&order, 0)
        .iter()
        .take(4)
        .map(|(x, y)| (x.iter().map(|&v| ACT.to_real(v as i64)).collect(), *y))
        .collect();
    let mut r = Reference::new(&exp.trainer.net);
    // Initial biases are 0, and so is every pre-activation over the images' zero
    // background: a kink of ReLU right at the point. Move the biases off it.
    for (blk, b) in r.b.iter_mut().enumerate() {
        for (c, v) in b.iter_mut().enumerate() {
            *v = 0.01 + 0.003 * ((c + blk) % 5) as f64;
        }
    }
    let (gw, gb, _) = r.gradients(&batch, StepKind::Bp);
    let loss = |r: &Reference| -> f64 {
        batch
            .iter()
            .map(|(x, y)| r.sample(x, *y, StepKind::Bp).loss)
            .sum::<f64>()
            / batch.len() as f64
    };
    let h = 1e-6;
    let mut checked = 0;
    for blk in 0..r.w.len() {
        let n = r.w[blk].len();
        for j in (0..n).step_by(n / 7 + 1) {
            let w0 = r.w[blk][j];
            r.w[blk][j] = w0 + h;
            let lp = loss(&r);
            r.w[blk][j] = w0 - h;
            let lm = loss(&r);
            r.w[blk][j] = w0;
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (fd - gw[blk][j]).abs() <= 1e-6 + 1e-4 * fd.abs(),
                "block {blk} weight {j}: finite difference {fd} vs reference {}",
                gw[blk][j]
            );
            checked += 1;
        }
        let b0 = r.b[blk][0];
        r.b[blk][0] = b0 + h;
        let lp = loss(&r);
        r.b[blk][0] = b0 - h;
        let lm = loss(&r);
        r.b[blk][0] = b0;
        let fd = (lp - lm) / (2.0 * h);
        assert!(
            (fd - gb[blk][0]).abs() <= 1e-6 + 1e-4 * fd.abs(),
            "bias {blk}: finite difference {fd} vs reference {}",
            gb[blk][0]
        );
    }
    assert!(checked >= 20);
}

#[test]
fn gradcheck_fixed_point_backward_tracks_f64_with_the_same_forward_rounding_on_digits() {
    // With the reference's pre-activations rounded as the fixed-point forward pass
    // rounds them (8 fraction bits), what is left is the backward pass: BP and DFA
    // steps, at step 0 and after 20 steps of HDFA training.
    let mut exp = experiment("digits-hdfa.toml", ErrorScaling::Block);
    for step in [0, 20] {
        for kind in [StepKind::Bp, StepKind::Dfa] {
            let mut fresh = experiment("digits-hdfa.toml", ErrorScaling::Block);
            let r = fresh.gradcheck(step, Some(kind), Some(8)).unwrap();
            let (cos, w, b, lost) = worst(&r);
            println!("{}", r.table());
            assert!(cos >= 0.9999, "step {step} {kind:?}: cosine {cos}");
            assert!(
                w <= 0.01 && b <= 0.01,
                "step {step} {kind:?}: rel L2 {w} / {b}"
            );
            assert!(
                lost <= 0.01,
                "step {step} {kind:?}: {lost} of the error words lost"
            );
        }
    }
    // Against plain f64 the forward pass's rounding shows, and the check reports it.
    let r = exp.gradcheck(0, Some(StepKind::Bp), None).unwrap();
    assert!(
        worst(&r).1 > 0.01,
        "the Q8.8 forward rounding is visible in f64"
    );
}

#[test]
fn gradcheck_block_scaling_is_what_keeps_the_deep_backward_pass_faithful() {
    // fashion-deep, BP at step 0, against f64 with the forward rounding: block
    // floating point keeps every layer within 0.5%, with less than half the error
    // of the fixed scale.
    let run = |s| {
        let mut e = experiment_fashion(s);
        worst(&e.gradcheck(0, Some(StepKind::Bp), Some(8)).unwrap())
    };
    let (block, fixed) = (run(ErrorScaling::Block), run(ErrorScaling::Fixed));
    println!("block {block:?}, fixed {fixed:?}");
    assert!(block.1 <= 0.005 && block.2 <= 0.005, "block {block:?}");
    assert!(
        fixed.1 >= 2.0 * block.1,
        "fixed {fixed:?} vs block {block:?}"
    );
}

#[test]
fn gradcheck_wide_activations_track_plain_f64_where_q8_8_does_not() {
    // Against plain f64 (no rounding in the reference at all), BP on the
    // fashion-deep network at step 0 and after 20 HDFA steps: with Q8.24 activations
    // every layer is within 1% (weights) and 1% (biases); the Q8.8 preset, whose
    // rounding flips ReLU and max-pool decisions, is off by more than 5% somewhere.
    for step in [0, 20] {
        let run = |f: FormatPreset| {
            let mut e = experiment_fashion_as(ErrorScaling::Block, f);
            let r = e.gradcheck(step, Some(StepKind::Bp), None).unwrap();
            println!("{}", r.table());
            worst(&r)
        };
        let (wide, narrow) = (run(FormatPreset::Wide), run(FormatPreset::Default));
        println!("step {step}: wide {wide:?}, q8.8 {narrow:?}");
        assert!(wide.0 >= 0.9999, "step {step}: wide cosine {wide:?}");
        assert!(
            wide.1 <= 0.01 && wide.2 <= 0.01,
            "step {step}: wide {wide:?}"
        );
        assert!(narrow.2 > 0.05, "step {step}: q8.8 {narrow:?}");
    }
}

/// The Q8.8 preset: the tests below that round the reference's pre-activations to
/// 8 fraction bits model its forward pass.
fn experiment_fashion(scaling: ErrorScaling) -> Experiment<Fx> {
    experiment_fashion_as(scaling, FormatPreset::Default)
}

/// The fashion-deep config on 256 training images, with its number-format preset
/// set to `format`.
fn experiment_fashion_as(scaling: ErrorScaling, format: FormatPreset) -> Experiment<Fx> {
    let path = root().join("configs/fashion-deep.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "test_labels = \"/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\"",
        "test_labels = \"/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\"\ntrain_limit = 256\ntest_limit = 64",
    );
    let mut cfg = Config::parse(&path, &text).unwrap_or_else(|e| {
        panic!("{e}\nFashion-MNIST is needed: sudo apt-get install dataset-fashion-mnist")
    });
    cfg.raw.error_scaling = scaling;
    cfg.raw.format = format;
    Experiment::<Fx>::new(cfg).unwrap_or_else(|e| {
        panic!("{e}\nFashion-MNIST is needed: sudo apt-get install dataset-fashion-mnist")
    })
}

#[test]
fn gradcheck_fails_faulty_gradients() {
    let exp = experiment("digits-hdfa.toml", ErrorScaling::Block);
    let order = exp.order(1);
    let batch = exp.batch(&order, 0);
    let t = &exp.trainer;
    let (bp, _) = t.gradients(StepKind::Bp, &batch, 2);
    let ok = worst(&compare(&t.net, &batch, StepKind::Bp, &bp, Some(8), 0));
    assert!(
        ok.0 >= 0.9999 && ok.1 <= 0.01,
        "the true gradients pass: {ok:?}"
    );
    // The DFA step's gradients are not the BP gradients.
    let (dfa, _) = t.gradients(StepKind::Dfa, &batch, 2);
    let bad = worst(&compare(&t.net, &batch, StepKind::Bp, &dfa, Some(8), 0));
    assert!(bad.0 < 0.99, "wrong propagation must fail: {bad:?}");
    // One sample's exponent off by one in the alignment: the layer's gradient gets a
    // term twice too large. Modelled on the sums: double one sample's contribution.
    let one: Vec<(&[i16], usize)> = batch[..1].to_vec();
    let (g1, _) = t.gradients(StepKind::Bp, &one, 1);
    let lb = t.hyper.log2_batch;
    let mut skewed = bp.clone();
    for (k, g) in skewed.iter_mut().enumerate() {
        for (v, a) in g.iter_mut().zip(&g1[k]) {
            // g1 is one sample's gradient (batch of 1); in a batch of 2^lb it is
            // worth a / 2^lb; add it once more.
            *v += a >> lb;
        }
    }
    let bad = worst(&compare(&t.net, &batch, StepKind::Bp, &skewed, Some(8), 0));
    assert!(bad.1 > 0.01, "a misaligned sample must fail: {bad:?}");
}
