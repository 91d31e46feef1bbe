//! The register map is one table: the engine's decoder, the configuration writes,
//! the JSON and the C header must all agree with `rtl::dce::regs::{REGS, REGIONS}`.

use contract::dce::{DceLayer, DceSizes, DceWeights};
use contract::rng::Rng;
use contract::rng::SeedableRng;
use rtl::dce::regs::{self, Region, REGIONS, REGS};

/// The layer, an engine of two lanes that fits it, and the engine.
fn design() -> (DceLayer, DceSizes, rtl::Emitted) {
    let l = DceLayer {
        h: 5,
        ..DceLayer::EXAMPLE
    }
    .validate()
    .unwrap();
    let sizes = DceSizes::fitting(2, &[l]).unwrap();
    (l, sizes, rtl::dce::generate(&sizes).unwrap())
}

#[test]
fn dce_top_reads_each_scalar_register_at_its_table_index() {
    let (_, _, e) = design();
    for (i, r) in REGS.iter().enumerate() {
        let want = format!("r_{} = regs${i}$q", r.name.to_lowercase());
        assert!(
            e.verilog.contains(&want),
            "the top does not read {} as `{want}`",
            r.name
        );
    }
    // No register file entry beyond the table.
    assert!(!e.verilog.contains(&format!("regs${}$q", REGS.len())));
    // The region constants and the address split come from the same table.
    assert!(e.verilog.contains(&format!(
        "localparam  region_shift = 5'b{:b};",
        regs::REGION_SHIFT
    )));
    for r in REGIONS {
        assert_eq!(
            regs::cfg_addr(r.region, 3) >> regs::REGION_SHIFT,
            r.region as u32
        );
    }
}

#[test]
fn dce_program_writes_every_scalar_register_in_table_order_and_checks_widths() {
    let (l, sizes, _) = design();
    let w = DceWeights::random(&l, &mut Rng::seed_from_u64(1));
    let writes = regs::program(&sizes, &l, &w).unwrap();
    for (i, r) in REGS.iter().enumerate() {
        assert_eq!(
            writes[i],
            (regs::cfg_addr(Region::Regs, i), (r.value)(&l, &w, 2) as u32),
            "{}",
            r.name
        );
    }
    let (h, sh1) = (
        regs::reg_index("H").unwrap(),
        regs::reg_index("SH1").unwrap(),
    );
    assert_eq!((writes[h].1, writes[sh1].1), (5, 3));
}

#[test]
fn dce_program_of_generated_weights_writes_gen_and_the_seeds_and_no_weight_word() {
    let (l, sizes, _) = design();
    let seeds = contract::dce::DceSeeds {
        d2: 0x1234_5678,
        d1: 0x9abc_def0,
    };
    let w = DceWeights::generated(&l, seeds);
    let writes = regs::program(&sizes, &l, &w).unwrap();
    let reg = |n: &str| writes[regs::reg_index(n).unwrap()].1;
    assert_eq!(reg("GEN"), 1);
    assert_eq!((reg("SEED2_HI"), reg("SEED2_LO")), (0x1234, 0x5678));
    assert_eq!((reg("SEED1_HI"), reg("SEED1_LO")), (0x9abc, 0xdef0));
    let weight = |a: &u32| a >> regs::REGION_SHIFT == Region::Weight as u32;
    assert!(
        !writes.iter().any(|(a, _)| weight(a)),
        "a weight word was written"
    );
    // Stored weights write GEN = 0 and their words.
    let stored = DceWeights::random(&l, &mut Rng::seed_from_u64(1));
    let writes = regs::program(&sizes, &l, &stored).unwrap();
    assert_eq!(writes[regs::reg_index("GEN").unwrap()].1, 0);
    assert!(writes.iter().any(|(a, _)| weight(a)));
    // Signs that do not match their seeds are refused.
    let mut bad = w.clone();
    bad.d1[0] = !bad.d1[0];
    assert!(regs::program(&sizes, &l, &bad).is_err());
}

#[test]
fn dce_regmap_json_and_c_header_match_the_table() {
    let (_, sizes, e) = design();
    let json = &e
        .sidecars
        .iter()
        .find(|(s, _)| *s == "_regs.json")
        .unwrap()
        .1;
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let names: Vec<&str> = v["registers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, REGS.iter().map(|r| r.name).collect::<Vec<_>>());
    assert_eq!(v["address"]["region_shift"], regs::REGION_SHIFT);
    assert_eq!(v["sizes"]["W1_BASE"], sizes.w2);

    // Compile the header with a real C compiler and print what it defines.
    let header = &e.sidecars.iter().find(|(s, _)| *s == "_regs.h").unwrap().1;
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/hdfa-test/regmap_c");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dce_regs.h"), header).unwrap();
    let mut c = String::from("#include <stdio.h>\n#include \"dce_regs.h\"\nint main(void) {\n");
    for r in REGS {
        c.push_str(&format!(
            "  printf(\"REG {0} %d\\n\", HDFA_DCE_REG_{0});\n",
            r.name
        ));
    }
    for r in REGIONS {
        c.push_str(&format!(
            "  printf(\"REGION {0} %d\\n\", HDFA_DCE_REGION_{0});\n",
            r.name
        ));
    }
    c.push_str("  printf(\"ADDR %lu\\n\", HDFA_DCE_ADDR(HDFA_DCE_REGION_WEIGHT, HDFA_DCE_W1_BASE + 3));\n  return 0;\n}\n");
    std::fs::write(dir.join("main.c"), c).unwrap();
    let cc = std::process::Command::new("g++")
        .current_dir(&dir)
        .args(["-x", "c", "-Wall", "-Werror", "-o", "main", "main.c"])
        .output()
        .unwrap_or_else(|e| {
            panic!("g++ not found ({e}); install it with: sudo apt-get install g++")
        });
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = std::process::Command::new(dir.join("main"))
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let mut want = String::new();
    for (i, r) in REGS.iter().enumerate() {
        want.push_str(&format!("REG {} {i}\n", r.name));
    }
    for r in REGIONS {
        want.push_str(&format!("REGION {} {}\n", r.name, r.region as u32));
    }
    want.push_str(&format!(
        "ADDR {}\n",
        regs::cfg_addr(Region::Weight, sizes.w2 + 3)
    ));
    assert_eq!(out, want);
}
