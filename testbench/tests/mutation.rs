//! Mutation testing: every deliberate design fault in `testbench::mutation` must be
//! killed by the units' standard vector sets on Verilator (a failed check or a hang),
//! while the unmutated designs pass every set. The table printed here (run with
//! `--nocapture`) says which set kills which mutant.

use std::path::PathBuf;

use testbench::dce::{self, DceCase};
use testbench::mutation::{
    self, MutantReport, Outcome, BSBU_DESIGN_MUTANTS, BSBU_GEN_DESIGN_MUTANTS, BSBU_GEN_MUTANTS,
    BSBU_MUTANTS, DCE_DESIGN_MUTANTS, DCE_MUTANTS, UPD_DESIGN_MUTANTS, UPD_MUTANTS,
};
use testbench::upd::UpdUnit;
use testbench::{BsbuScenario, BsbuUnit, Unit};

fn work(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/hdfa-test/mutation")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn check(reports: &[MutantReport], design_sets: &[&str], design_faults: usize) {
    println!("{}", mutation::table(reports));
    for r in reports {
        assert!(
            r.killed(),
            "mutant {} survived every set: {:?}",
            r.mutant.name,
            r.outcomes
        );
    }
    // The design faults (all but the framing faults) must fall to the data vectors
    // themselves.
    for r in reports.iter().take(design_faults) {
        assert!(
            r.outcomes
                .iter()
                .any(|(n, o)| design_sets.contains(&n.as_str())
                    && matches!(o, Outcome::Killed(..) | Outcome::Hung)),
            "design fault {} not killed by {design_sets:?}: {:?}",
            r.mutant.name,
            r.outcomes
        );
    }
}

#[test]
fn bsbu_generator_mode_mutants_are_killed_by_the_corner_and_random_vectors() {
    // The second 256-row tile of a generated matrix, so a unit that ignores ROW_BASE
    // regenerates the wrong rows.
    let sc = BsbuScenario::new(4, 16, 12, 0.5, 200, 7)
        .unwrap()
        .generated(0x0BAD_CAFE, 256)
        .unwrap();
    let unit = BsbuUnit::new(sc).unwrap();
    assert_eq!(unit.mutants().len(), BSBU_GEN_MUTANTS.len());
    // The generator's own faults; the others edit the top and drain the stored unit
    // shares, and are killed in `bsbu_mutants_are_killed_...` (`hdfa mutants --unit
    // bsbu --generator` runs all of them: all killed).
    let gen: Vec<_> = BSBU_GEN_MUTANTS[..BSBU_GEN_DESIGN_MUTANTS]
        .iter()
        .filter(|m| m.name.starts_with("gen-"))
        .copied()
        .collect();
    assert_eq!(gen.len(), 4);
    let sets = unit.vector_sets().unwrap();
    let cache = sim::verilator::default_cache_dir();
    let reports = mutation::run(unit.design(), &gen, &sets, &cache, &work("bsbu_gen"))
        .unwrap_or_else(|e| panic!("{e}"));
    check(&reports, &["corners", "random"], gen.len());
}

#[test]
fn bsbu_mutants_are_killed_by_the_corner_and_random_vectors() {
    let unit = BsbuUnit::new(BsbuScenario::new(4, 16, 12, 0.5, 200, 7).unwrap()).unwrap();
    let design = unit.design().clone();
    let sets = unit.vector_sets().unwrap();
    let cache = sim::verilator::default_cache_dir();
    let reports = mutation::run(&design, unit.mutants(), &sets, &cache, &work("bsbu"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), BSBU_MUTANTS.len());
    check(&reports, &["corners", "random"], BSBU_DESIGN_MUTANTS);
    // On a single vector the extra word can only be seen by the silent-tail check.
    let extra = BSBU_MUTANTS
        .iter()
        .find(|m| m.name == "extra-word")
        .unwrap();
    let mut one = sets[0].vectors.clone();
    one.passes.truncate(1);
    let r = sim::stream::run_verilator(
        &extra.apply(&design).unwrap(),
        &one,
        sim::stream::Stall::SOME,
        &cache,
        Some(&work("bsbu_tail")),
    )
    .unwrap();
    let m = r.first.expect("the extra word must be caught");
    assert_eq!(
        (r.mismatches, m.check),
        (1, sim::stream::Check::Trailing),
        "{m}"
    );
    assert!(
        m.to_string().contains("after the last expected word"),
        "{m}"
    );
}

#[test]
fn dce_mutants_are_killed_by_the_standard_captured_and_len_err_sets() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).unwrap();
    let caps = dce::capture(
        &root.join("configs/digits-hdfa.toml"),
        None,
        Some(&[0, 83]),
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut cases = dce::standard_cases(4, 4).unwrap();
    cases.extend(DceCase::from_captures("digits", &caps).unwrap());
    let unit = dce::DceUnit::new(4, cases).unwrap();
    let sets = unit.vector_sets().unwrap();
    assert_eq!(
        sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["corners", "random", "captured", "len_err"]
    );
    let cache = sim::verilator::default_cache_dir();
    let reports = mutation::run(unit.design(), unit.mutants(), &sets, &cache, &work("dce"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), DCE_MUTANTS.len());
    assert_eq!(unit.mutants().len(), DCE_MUTANTS.len());
    check(
        &reports,
        &["corners", "random", "captured"],
        DCE_DESIGN_MUTANTS,
    );
}

#[test]
fn upd_mutants_are_killed_by_the_corner_and_random_vectors() {
    let unit = UpdUnit::new(2, 64, 9).unwrap();
    let sets = unit.vector_sets().unwrap();
    let cache = sim::verilator::default_cache_dir();
    let reports = mutation::run(unit.design(), unit.mutants(), &sets, &cache, &work("upd"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), UPD_MUTANTS.len());
    check(&reports, &["corners", "random"], UPD_DESIGN_MUTANTS);
    // The saturation faults fall to the corner vectors themselves (random words
    // rarely saturate).
    for name in ["theta-wrap", "velocity-wrap"] {
        let r = reports.iter().find(|r| r.mutant.name == name).unwrap();
        assert!(r.outcomes[0].1.killed(), "{name}: {:?}", r.outcomes);
    }
}

#[test]
fn a_mutant_whose_text_is_missing_is_an_error_not_the_clean_design() {
    let sc = BsbuScenario::new(1, 8, 8, 0.5, 0, 1).unwrap();
    let design = rtl::bsbu::generate(&sc.params, &sc.matrix().unwrap()).unwrap();
    // P = 1 has no lane 1: the lane-swap mutant cannot be made.
    let swap = BSBU_MUTANTS.iter().find(|m| m.name == "lane-swap").unwrap();
    let e = swap.apply(&design).unwrap_err().to_string();
    assert!(
        e.contains("lane-swap") && e.contains("occurs 0 times"),
        "{e}"
    );
}
