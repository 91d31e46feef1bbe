//! The soak, in 16 slots that a sharded run splits between machines with
//! cargo-nextest's counted partitioning. Slot `i` draws its cases from seed `i`, so
//! shard K of N (`--partition count:K/N`) runs the seeds i ≡ K − 1 (mod N) and no two
//! shards run the same case; every slot uses the same design pool, so each machine
//! builds a few models and then only simulates.
//!
//! In CI each slot runs one case per unit on the CI limits. Outside CI set
//! `HDFA_SOAK_MINUTES` (minutes per slot; the soak limits then apply):
//!
//! ```text
//! HDFA_SOAK_MINUTES=30 cargo nextest run --release -p testbench --test soak --partition count:K/N
//! ```

use std::time::Duration;

use testbench::prop::{self, Budget, Limits, SoakConfig};
use testbench::spec::UnitKind;

fn slot(i: u64) {
    let minutes: Option<f64> = std::env::var("HDFA_SOAK_MINUTES").ok().map(|m| {
        m.parse()
            .ok()
            .filter(|m: &f64| m.is_finite() && *m > 0.0)
            .unwrap_or_else(|| panic!("HDFA_SOAK_MINUTES = {m:?}: valid range (0, inf) minutes"))
    });
    let cfg = SoakConfig {
        kinds: UnitKind::ALL.to_vec(),
        seed: i,
        pool: Some((0, if minutes.is_some() { 4 } else { 1 })),
        limits: if minutes.is_some() {
            Limits::SOAK
        } else {
            Limits::CI
        },
        budget: match minutes {
            Some(m) => Budget {
                time: Some(Duration::from_secs_f64(m * 60.0)),
                ..Budget::default()
            },
            None => Budget {
                cases: Some(3),
                ..Budget::default()
            },
        },
        mutant: None,
        shrink_runs: 200,
    };
    let work = testbench::fresh_test_dir(&format!("soak_slot_{i:02}"));
    let cache = sim::verilator::default_cache_dir();
    let r = prop::soak(&cfg, &cache, &work, &mut |_| {}).expect("soak runs");
    println!("slot {i}: seed {i}, {:.1} s\n{}", r.seconds, r.table());
    for f in &r.failures {
        println!(
            "FAILURE {}\n{}\nreproduce: {}",
            f.original, f.shrunk.failure, f.command
        );
    }
    assert!(
        r.failures.is_empty(),
        "slot {i}: {} failing unit(s)",
        r.failures.len()
    );
    for k in UnitKind::ALL {
        let t = &r.tallies[&k];
        assert!(
            t.cases >= 1 && t.vectors > 0 && t.mismatches == 0,
            "slot {i} {}: {t:?}",
            k.name()
        );
    }
}

macro_rules! slots {
    ($($name:ident = $i:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                slot($i);
            }
        )*
    };
}

slots!(
    soak_slot_00 = 0,
    soak_slot_01 = 1,
    soak_slot_02 = 2,
    soak_slot_03 = 3,
    soak_slot_04 = 4,
    soak_slot_05 = 5,
    soak_slot_06 = 6,
    soak_slot_07 = 7,
    soak_slot_08 = 8,
    soak_slot_09 = 9,
    soak_slot_10 = 10,
    soak_slot_11 = 11,
    soak_slot_12 = 12,
    soak_slot_13 = 13,
    soak_slot_14 = 14,
    soak_slot_15 = 15,
);
