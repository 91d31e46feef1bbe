//! The cost model against the hardware: for every DFA path of our configs, the
//! traffic `golden::cost` predicts from the path's shape and weights (input-stream
//! error words, error words read from the unit's buffers, weight bits read) equals
//! the counters of the unit that runs it, the dce for conv paths and the bsbu for the
//! dense path from e_L (one 256-row tile per design), in co-simulation on
//! Verilator. digits-sparse has stored weights (a 90%-sparse dense path), and
//! digits-lfsr the generated ones, whose weight reads must be zero: a mutated dce that
//! also reads its weight memory in GEN mode (its output words still right) must fail
//! the comparison.

use std::path::{Path, PathBuf};

use golden::cnn::num::Fx;
use golden::config::Config;
use golden::cost::{bsbu_tile_traffic, dce_path_traffic, UnitTraffic};
use golden::experiment::Experiment;
use sim::stream::Stall;
use testbench::dce::{DceCase, DceUnit};
use testbench::{run_case, BsbuUnit, CaseReport, SimKind, Unit};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs every path of `config`'s step 0 (one sample) on units of `lanes` lanes and
/// compares counters with the model; returns (conv paths, dense tiles) checked.
fn check_config(config: &str, lanes: usize) -> (usize, usize) {
    std::env::set_current_dir(root()).unwrap();
    let c = Config::load(Path::new(config)).unwrap();
    let mut exp = Experiment::<Fx>::new(c).unwrap();
    let paths = exp.trainer.net.paths.clone();
    let conv = exp.capture_paths(&[0], 1).unwrap();
    let dense = exp.capture_dense(&[0], 1).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let work = root().join("target/hdfa-test/cost_counters");
    let path_of = |t: usize, s: Option<usize>| {
        paths
            .iter()
            .find(|p| p.target == t && s.is_none_or(|s| p.source == s))
            .unwrap_or_else(|| panic!("{config}: no path into block {t}"))
    };

    let cases = DceCase::from_captures("cost", &conv).unwrap();
    let unit = DceUnit::new(lanes, cases).unwrap();
    // (measured, predicted) traffic of case i on `u`.
    let measure = |u: &DceUnit, i: usize| {
        let case = &u.cases[i];
        // Case names are cost_t{target}_s{source}.
        let ts: Vec<usize> = case.name["cost_t".len()..]
            .split("_s")
            .map(|x| x.parse().unwrap())
            .collect();
        let want = dce_path_traffic(path_of(ts[0], Some(ts[1])), lanes).expect("a conv path");
        let r = run_clean(u, i, &cache, &work);
        let n = case.vectors.len() as u64;
        // The stream also carries the ReLU mask words, which are not errors.
        let got = UnitTraffic {
            stream_words: r.stats.inputs - n * case.layer.mask_words() as u64,
            error_reads: r.stats.traffic[0] * lanes as u64,
            weight_bits: r.stats.traffic[1] * lanes as u64,
        };
        (got, times(want, n))
    };
    for i in 0..unit.cases.len() {
        let (got, want) = measure(&unit, i);
        assert_eq!(got, want, "{config} {}", unit.cases[i].name);
    }
    // A real fault the check must catch: an engine that reads its weight memory in
    // GEN mode too. Its words stay right (the signs come from the generator), so
    // only the traffic shows it.
    if paths.iter().any(|p| p.gen.is_some()) {
        let (v, fault) = (&unit.design.verilog, "rd_w = go & ~r_gen;");
        assert!(v.contains(fault), "the dce's weight-read strobe changed");
        let bad = DceUnit {
            design: rtl::Emitted {
                verilog: v.replace(fault, "rd_w = go;"),
                ..unit.design.clone()
            },
            ..unit.clone()
        };
        let (got, want) = measure(&bad, 0);
        assert!(
            want.weight_bits == 0 && got.weight_bits > 0,
            "{got:?} vs {want:?}"
        );
    }

    let units = BsbuUnit::from_captures(lanes, &dense).unwrap();
    for u in &units {
        // Captured tiles are named p{lanes}_layer{target}_rows{start}_{end}.
        let name = &u.captured.as_ref().unwrap().0;
        let nums: Vec<usize> = name
            .split(|ch: char| !ch.is_ascii_digit())
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().unwrap())
            .collect();
        let (target, rows) = (nums[1], nums[2]..nums[3]);
        let want = bsbu_tile_traffic(path_of(target, None), rows).expect("a dense path");
        let r = run_clean(u, 0, &cache, &work);
        let n = u.stream(0).unwrap().passes.len() as u64;
        let got = UnitTraffic {
            stream_words: r.stats.inputs,
            error_reads: r.stats.traffic[0],
            weight_bits: r.stats.traffic[1] * golden::bsbu::ENTRY_BITS as u64,
        };
        assert_eq!(got, times(want, n), "{config} {name}");
    }
    (unit.cases.len(), units.len())
}

/// Case `i` of `unit` on Verilator, bit-exact.
fn run_clean(unit: &dyn Unit, i: usize, cache: &Path, work: &Path) -> CaseReport {
    let r = run_case(unit, i, SimKind::Verilator, Stall::SOME, cache, work)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}\n  {}", r.summary(), r.traffic_line().unwrap());
    assert!(
        r.stats.first.is_none() && r.stats.mismatches == 0,
        "{}",
        r.summary()
    );
    r
}

fn times(t: UnitTraffic, n: u64) -> UnitTraffic {
    UnitTraffic {
        stream_words: t.stream_words * n,
        error_reads: t.error_reads * n,
        weight_bits: t.weight_bits * n,
    }
}

#[test]
fn cost_model_traffic_equals_the_dce_and_bsbu_counters_on_digits_sparse_and_lfsr() {
    let (conv, tiles) = check_config("configs/digits-sparse.toml", 4);
    assert_eq!(
        (conv, tiles),
        (2, 4),
        "two conv paths, four tiles of the dense path"
    );
    let (conv, tiles) = check_config("configs/digits-lfsr.toml", 4);
    assert_eq!((conv, tiles), (2, 4));
}
