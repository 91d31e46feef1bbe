//! Property-based co-simulation: random unit parameters across the supported ranges
//! and random vectors on Verilator against the golden model (a fixed budget, fixed
//! seeds), and a real fault found, shrunk to the smallest case and printed as the
//! `hdfa cosim` command that reruns it.

use std::collections::BTreeSet;

use golden::dce::{DceLayer, GROUPS, KERNELS, MAX_DIL, UPS};
use golden::rng::{Rng, SeedableRng};
use testbench::prop::{self, Budget, Limits, SoakConfig};
use testbench::spec::{CosimSpec, DceSpec, UnitKind};

fn cache() -> std::path::PathBuf {
    sim::verilator::default_cache_dir()
}

#[test]
fn random_cases_of_every_unit_with_fresh_designs_match_golden_on_verilator() {
    let cfg = SoakConfig {
        kinds: UnitKind::ALL.to_vec(),
        seed: 2026,
        pool: None,
        limits: Limits::CI,
        budget: Budget {
            cases: Some(9),
            ..Budget::default()
        },
        mutant: None,
        shrink_runs: 50,
    };
    let work = testbench::fresh_test_dir("property_fresh");
    let r = prop::soak(&cfg, &cache(), &work, &mut |l| println!("{l}")).expect("soak runs");
    println!("{}", r.table());
    for f in &r.failures {
        println!("{}\nreproduce: {}", f.shrunk.failure, f.command);
    }
    assert!(
        r.failures.is_empty(),
        "{} failing unit(s)",
        r.failures.len()
    );
    for k in UnitKind::ALL {
        let t = &r.tallies[&k];
        assert_eq!(t.cases, 3, "{}", k.name());
        assert_eq!(t.mismatches, 0, "{}", k.name());
        assert!(t.vectors >= 3 * 7, "{}: {} vectors", k.name(), t.vectors);
        // Every case drew its own design (upd has 8 designs, so two may coincide).
        assert!(t.designs.len() >= 2, "{}: {:?}", k.name(), t.designs);
    }
}

#[test]
fn the_draws_cover_every_parameter_value_and_both_ends_of_every_range() {
    let mut rng = Rng::seed_from_u64(7);
    let (mut lanes, mut rows, mut cols, mut modes) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    let (mut sp0, mut sp_hi) = (false, false);
    for _ in 0..3000 {
        if let CosimSpec::Bsbu(s) = prop::draw(UnitKind::Bsbu, &mut rng, &Limits::SOAK) {
            lanes.insert(s.lanes);
            rows.insert(s.rows);
            cols.insert(s.cols);
            modes.insert(s.generator);
            sp0 |= s.sparsity == 0.0;
            sp_hi |= s.sparsity >= 0.95;
            assert!(s.vectors >= 1);
        }
    }
    for (what, set, lo, hi) in [
        ("bsbu lanes", &lanes, 1, 16),
        ("bsbu rows", &rows, 1, 256),
        ("bsbu cols", &cols, 1, 8192),
    ] {
        assert!(
            set.contains(&lo) && set.contains(&hi),
            "{what}: {:?}..{:?}",
            set.first(),
            set.last()
        );
    }
    assert_eq!(modes.len(), 2, "stored and generator mode");
    assert!(sp0 && sp_hi, "sparsity 0 and >= 0.95");

    let mut seen: [BTreeSet<usize>; 8] = Default::default();
    let mut gen = BTreeSet::new();
    for _ in 0..3000 {
        if let CosimSpec::Dce(DceSpec {
            lanes,
            layer,
            generator,
            ..
        }) = prop::draw(UnitKind::Dce, &mut rng, &Limits::SOAK)
        {
            let DceLayer {
                groups,
                k,
                up,
                dil,
                h,
                w,
                cs,
                ct,
                ..
            } = layer.validate().expect("a drawn layer is valid");
            for (i, v) in [lanes, groups, k, up, dil, h.max(w), cs, ct]
                .into_iter()
                .enumerate()
            {
                seen[i].insert(v);
            }
            gen.insert(generator);
        }
    }
    let want: [(&str, Vec<usize>); 5] = [
        ("dce lanes", vec![1, 8]),
        ("groups", GROUPS.to_vec()),
        ("k", KERNELS.to_vec()),
        ("up", UPS.to_vec()),
        ("dilation", vec![1, MAX_DIL]),
    ];
    for (i, (what, vals)) in want.iter().enumerate() {
        for v in vals {
            assert!(
                seen[i].contains(v),
                "{what}: {v} never drawn: {:?}",
                seen[i]
            );
        }
    }
    assert!(
        seen[5].contains(&1) && seen[5].contains(&32),
        "map sides: {:?}",
        seen[5]
    );
    assert!(
        *seen[6].last().unwrap() >= 128 && *seen[7].last().unwrap() >= 64,
        "channels: {:?} {:?}",
        seen[6].last(),
        seen[7].last()
    );
    assert_eq!(gen.len(), 2, "stored and GEN mode");

    let upd: BTreeSet<usize> = (0..500)
        .filter_map(
            |_| match prop::draw(UnitKind::Upd, &mut rng, &Limits::SOAK) {
                CosimSpec::Upd(s) => Some(s.lanes),
                _ => None,
            },
        )
        .collect();
    assert_eq!(upd, (1..=8).collect(), "upd lanes");
}

/// The conv engine with its centre tap dropped (a real fault: the mutant
/// `tap-drop`) fails on every layer, so the shrinker must reach the smallest case of
/// all: one lane, one channel each side, a 1 x 1 map, k = d = G = 1, shifts and seed
/// 0, the corner vectors only, the engine fitted to the layer.
#[test]
fn a_dropped_tap_is_found_and_shrunk_to_the_smallest_layer_and_its_cosim_command() {
    let cfg = SoakConfig {
        kinds: vec![UnitKind::Dce],
        seed: 3,
        pool: None,
        limits: Limits::CI,
        budget: Budget {
            cases: Some(1),
            ..Budget::default()
        },
        mutant: Some("tap-drop".into()),
        shrink_runs: 100,
    };
    let work = testbench::fresh_test_dir("property_shrink");
    let r = prop::soak(&cfg, &cache(), &work, &mut |l| println!("{l}")).expect("soak runs");
    assert_eq!(r.failures.len(), 1, "the fault must be found");
    let f = &r.failures[0];
    println!(
        "{}\nshrunk in {} runs: {:?}\nreproduce: {}",
        f.original, f.shrunk.runs, f.shrunk.steps, f.command
    );
    assert!(
        f.original.cycles_per_vector() > 100.0,
        "the drawn case was not already small: {}",
        f.original
    );
    assert!(
        f.shrunk.minimal,
        "the shrink ran out of runs: {:?}",
        f.shrunk.steps
    );
    assert!(
        f.shrunk.failure.contains("MISMATCH [verilator] unit dce"),
        "{}",
        f.shrunk.failure
    );
    assert_eq!(
        f.command,
        "hdfa cosim --unit dce --lanes 1 --cs 1 --ct 1 --height 1 --width 1 --up 1 --k 1 --dil 1 --groups 1 --shift2 0 --shift1 0 --seed 0 --vectors 0 --mutant tap-drop"
    );
    // The shrunk case passes on the real design: the failure is the fault's.
    let o = prop::check(&f.shrunk.spec, None, &cache(), &work).expect("runs");
    assert!(o.failure.is_none() && o.vectors == 6, "{:?}", o.failure);
}
