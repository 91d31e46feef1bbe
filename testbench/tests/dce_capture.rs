//! The engine against error maps from real training steps: the digits-hdfa config
//! (G = 2, dilations 2 and 1, 8×8 maps) and the fashion-deep config (G = 1, 28×28,
//! 14×14 and 7×7 maps, and the two paths across its pools: 14×14 → 28×28 and 7×7 →
//! 14×14, dilation 5), captured at the first, a middle and the last step of a run.
//! Expected words are the trainer's own errors (cdfa propagation at that step's
//! weights). Verilator runs every captured vector of every conv path; Icarus runs
//! every digits vector (fashion's vectors take minutes each on Icarus; see the test).

use std::path::{Path, PathBuf};

use golden::capture::PathCapture;
use sim::stream::Stall;
use testbench::dce::{DceCase, DceUnit};
use testbench::{run_case, verdict, CaseReport, SimKind};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn work() -> PathBuf {
    root().join("target/hdfa-test/dce_capture")
}

fn capture(
    config: &str,
    train_limit: Option<usize>,
    steps: &[usize],
    samples: usize,
) -> Vec<PathCapture> {
    // Relative data paths in the configs are relative to the repository root.
    std::env::set_current_dir(root()).unwrap();
    testbench::dce::capture(&root().join(config), train_limit, Some(steps), samples)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn check(r: &CaseReport) {
    println!("{}\n  {}", r.summary(), r.traffic_line().unwrap());
    assert!(r.traffic.unwrap().exact(), "{}", r.traffic_line().unwrap());
    assert!(
        r.stats.first.is_none(),
        "{}",
        r.stats.first.as_ref().unwrap()
    );
    assert_eq!(r.stats.mismatches, 0);
    assert!(r.stats.outputs > 0);
}

/// Every case on Verilator; the cases `icarus` gives a vector count (its first
/// vectors) also on Icarus and again on Verilator, and the two must agree on cycles,
/// phases and traffic. Returns the Icarus runs.
fn run_all(
    name: &str,
    caps: &[PathCapture],
    lanes: usize,
    icarus: &dyn Fn(&DceCase) -> Option<usize>,
) -> usize {
    let cases = DceCase::from_captures(name, caps).unwrap();
    assert!(!cases.is_empty(), "{name}: no conv path the engine can run");
    let unit = DceUnit::new(lanes, cases).unwrap();
    // The same engine, each case cut to its Icarus vectors (as in dce_cosim).
    let short = DceUnit {
        cases: unit
            .cases
            .iter()
            .map(|c| {
                let n = icarus(c).unwrap_or(c.vectors.len());
                c.clone().truncated(n)
            })
            .collect(),
        ..unit.clone()
    };
    let cache = sim::verilator::default_cache_dir();
    let mut icarus_runs = 0;
    let mut nonzero_cases = 0;
    for (i, c) in unit.cases.iter().enumerate() {
        // Deep in a chain of backward paths the trainer's errors can round to zero
        // (fashion-deep's path into conv 0 does); such a case still checks the zeros.
        let nonzero = c
            .vectors
            .iter()
            .flat_map(|v| &v.expected)
            .filter(|&&e| e != 0)
            .count();
        let total = c.vectors.iter().map(|v| v.expected.len()).sum::<usize>();
        println!("{}: {nonzero} of {total} expected words nonzero", c.name);
        nonzero_cases += (nonzero > 0) as usize;
        let v = run_case(&unit, i, SimKind::Verilator, Stall::SOME, &cache, &work())
            .unwrap_or_else(|e| panic!("{e}"));
        check(&v);
        if icarus(c).is_some() {
            let [vs, ic] = [SimKind::Verilator, SimKind::Icarus].map(|k| {
                let r = run_case(&short, i, k, Stall::SOME, &cache, &work())
                    .unwrap_or_else(|e| panic!("{e}"));
                check(&r);
                r
            });
            let problems = verdict(&[&vs.stats, &ic.stats]);
            assert!(problems.is_empty(), "{problems:?}");
            icarus_runs += 1;
        }
    }
    assert!(nonzero_cases > 0, "{name}: every captured error is zero");
    icarus_runs
}

#[test]
fn dce_matches_digits_training_steps_0_42_83_on_verilator_and_icarus() {
    // 1348 training images / batch 16 = 84 steps in the one-epoch run.
    let caps = capture("configs/digits-hdfa.toml", None, &[0, 42, 83], 2);
    let paths: std::collections::BTreeSet<_> = caps
        .iter()
        .map(|c| (c.target, c.source, c.layer.dil, c.layer.groups))
        .collect();
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        vec![(0, 2, 2, 2), (1, 2, 1, 2)]
    );
    assert_eq!(run_all("digits", &caps, 4, &|c| Some(c.vectors.len())), 2);
}

#[test]
fn dce_matches_fashion_training_steps_0_32_63_on_verilator_and_icarus() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    assert!(dir.exists(), "Fashion-MNIST is missing: install it with `sudo apt-get install dataset-fashion-mnist` (or run scripts/deps.sh)");
    // The fashion-deep network on its first 4096 training images: 64 steps of 64.
    let caps = capture("configs/fashion-deep.toml", Some(4096), &[0, 32, 63], 1);
    let targets: Vec<usize> = caps
        .iter()
        .map(|c| c.target)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Every conv layer: the paths inside the modules (0, 2, 4) and across the pools
    // (1 from 3, 3 from 5). Layer 5's errors come from the classifier (dense).
    assert_eq!(targets, vec![0, 1, 2, 3, 4]);
    let ups: Vec<(usize, usize, usize)> = caps
        .iter()
        .filter(|c| c.layer.up > 1)
        .map(|c| (c.target, c.layer.up, c.layer.dil))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(ups, vec![(1, 2, 5), (3, 2, 5)]);
    // Verilator only: one vector of a path across a pool is 457k cycles or more, about
    // 6 minutes on Icarus (which runs this design at about 1.3k cycles/s), too long for
    // CI's budget. Icarus runs such paths in dce_cosim (random up-2 and up-4 layers),
    // the digits paths above, and outside CI with `hdfa cosim --unit dce --lanes 8
    // --from-config configs/fashion-deep.toml --train-limit 4096 --sim icarus --case
    // t3_s5` (README: 13 min 52 s for 3 vectors, 0 mismatches).
    assert_eq!(run_all("fashion", &caps, 8, &|_: &DceCase| None), 0);
}

#[test]
fn dce_gen_mode_runs_the_trainers_generated_weights_from_digits_steps_0_and_40() {
    // digits-hdfa with `generator = "lfsr"`: the trainer regenerates its conv paths'
    // signs from seeds, and the engine (the same design as above) regenerates them in
    // GEN mode, reading no weight word.
    let root = root();
    let text = std::fs::read_to_string(root.join("configs/digits-hdfa.toml"))
        .unwrap()
        .replace("[backward]", "[backward]\ngenerator = \"lfsr\"");
    let file = std::env::temp_dir().join(format!("digits-hdfa-lfsr-{}.toml", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let caps = capture(file.to_str().unwrap(), None, &[0, 40], 2);
    let _ = std::fs::remove_file(&file);
    assert!(
        caps.iter().all(|c| c.weights.gen.is_some()),
        "the captured weights are generated"
    );
    assert_eq!(
        run_all("digits_lfsr", &caps, 4, &|c| Some(c.vectors.len())),
        2
    );
}
