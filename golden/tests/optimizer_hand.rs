//! Algorithm 1's update of one weight word, against values worked out by hand (not by
//! the trainer's code): θ, v_bp, v_dfa and g in Q8.24 raw units, η, α, γ in Q15.16.
//! Every product is rounded half up (⌊x + ½⌋) once; sums saturate.

use golden::cnn::num::{Coef, Fx};
use golden::cnn::train::{update_word, Hyper, StepKind};

fn hyper(eta: f64, alpha: f64, gamma: f64) -> Hyper {
    Hyper {
        eta: Coef::new(eta),
        alpha: Coef::new(alpha),
        gamma: Coef::new(gamma),
        bp_ratio: 0.5,
        log2_batch: 0,
    }
}

/// One step from (θ, v_bp, v_dfa) with gradient g; returns the new triple.
fn step(kind: StepKind, h: &Hyper, s: (i32, i32, i32), g: i32) -> (i32, i32, i32) {
    let (mut t, mut vb, mut vd) = s;
    update_word::<Fx>(kind, h, &mut t, &mut vb, &mut vd, g);
    (t, vb, vd)
}

#[test]
fn dfa_step_updates_v_dfa_mixes_both_velocities_and_keeps_v_bp() {
    const ONE: i32 = 1 << 24;
    // η = 0.25, α = 0.5, γ = 0.75; θ = 1, v_bp = 0.5, v_dfa = 0.25, g = 0.125.
    // v_dfa ← 0.5·0.25 + 0.125 = 0.25
    // u     = 0.75·0.25 + 0.25·0.5 = 0.1875 + 0.125 = 0.3125
    // θ     ← 1 − 0.25·0.3125 = 0.921875 (= 15466496 / 2^24)
    let h = hyper(0.25, 0.5, 0.75);
    let got = step(StepKind::Dfa, &h, (ONE, ONE / 2, ONE / 4), ONE / 8);
    assert_eq!(got, (15_466_496, ONE / 2, ONE / 4));
    assert_eq!(15_466_496.0 / ONE as f64, 0.921875);
}

#[test]
fn dfa_step_rounds_each_product_half_up_including_negative_halves() {
    // η = 0.5, α = 0.5, γ = 0.25 (1 − γ = 0.75); θ = 1000, v_bp = −7, v_dfa = −3,
    // g = 10 (raw LSBs):
    // α·v_dfa      = −1.5  → ⌊−1.0⌋  = −1;   v_dfa ← −1 + 10 = 9
    // γ·v_dfa      =  2.25 → ⌊2.75⌋  =  2
    // (1−γ)·v_bp   = −5.25 → ⌊−4.75⌋ = −5;   u = 2 − 5 = −3
    // η·u          = −1.5  → ⌊−1.0⌋  = −1;   θ ← 1000 − (−1) = 1001
    let h = hyper(0.5, 0.5, 0.25);
    assert_eq!(step(StepKind::Dfa, &h, (1000, -7, -3), 10), (1001, -7, 9));
}

#[test]
fn bp_step_updates_v_bp_only_and_theta_saturates() {
    // BP: α·v_bp = −3.5 → ⌊−3.0⌋ = −3;  v_bp ← −3 + 10 = 7;
    //     η·v_bp = 3.5 → ⌊4.0⌋ = 4;     θ ← 1000 − 4 = 996;  v_dfa stays −3.
    let h = hyper(0.5, 0.5, 0.25);
    assert_eq!(step(StepKind::Bp, &h, (1000, -7, -3), 10), (996, 7, -3));
    // θ at the most negative Q8.24 value moving further down saturates there.
    assert_eq!(
        step(StepKind::Bp, &h, (i32::MIN, 0, 0), 1000).0,
        i32::MIN,
        "θ − η·u saturates"
    );
}
