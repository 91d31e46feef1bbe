//! Snapshot of the emitted Verilog for one small configuration, so any change in
//! the generated hardware shows up in review.

use contract::bsbu::{Nonzero, SparseSign};
use contract::params::BsbuParams;

#[test]
fn bsbu_p2_rows4_cols3_verilog() {
    // Row 0 empty, row 1 full with alternating signs, rows 2-3 one nonzero each.
    let nz = |col, neg| Nonzero { col, neg };
    let s = SparseSign::from_rows(
        3,
        vec![
            vec![],
            vec![nz(0, false), nz(1, true), nz(2, false)],
            vec![nz(2, true)],
            vec![nz(1, false)],
        ],
    )
    .unwrap();
    let p = BsbuParams::new(2, 4, 3, 1).unwrap();
    let e = rtl::bsbu::generate(&p, &s).unwrap();
    insta::assert_snapshot!("bsbu_p2_rows4_cols3", e.verilog);
}

#[test]
fn bsbu_generator_p2_rows4_cols3_verilog() {
    // No entry ROM contents: S is regenerated from the SEED/ROW_BASE/THRESH registers.
    let p = BsbuParams::new(2, 4, 3, 1).unwrap();
    let e = rtl::bsbu::generate_gen(&p).unwrap();
    insta::assert_snapshot!("bsbu_generator_p2_rows4_cols3", e.verilog);
}

/// The register map is one table: the top's decoder, the configuration writes, the
/// JSON and the C header agree with `rtl::bsbu::regs::REGS`.
#[test]
fn bsbu_top_reads_each_register_at_its_table_index_and_the_maps_list_them() {
    use contract::bsbu::BsbuGen;
    use rtl::bsbu::regs::{self, REGS};
    let p = BsbuParams::new(2, 4, 3, 1).unwrap();
    let e = rtl::bsbu::generate_gen(&p).unwrap();
    for (i, r) in REGS.iter().enumerate() {
        let want = format!(
            "r_{} = regs${i}$q",
            r.name.to_lowercase().replace("row_", "")
        );
        assert!(
            e.verilog.contains(&want),
            "the top does not read {} as `{want}`",
            r.name
        );
    }
    assert!(!e.verilog.contains(&format!("regs${}$q", REGS.len())));
    let gen = BsbuGen {
        seed: 0xABCD_0123,
        threshold: 26,
        row0: 256,
    };
    // Every register in table order.
    assert_eq!(
        regs::program(&gen),
        vec![
            (0, 0xABCD_0123),
            (1, 256u32.wrapping_mul(0x9E37_79B9)),
            (2, 26)
        ]
    );
    let json = &e.sidecars.iter().find(|s| s.0 == "_regs.json").unwrap().1;
    let header = &e.sidecars.iter().find(|s| s.0 == "_regs.h").unwrap().1;
    for (i, r) in REGS.iter().enumerate() {
        assert!(
            json.contains(&format!("\"name\": \"{}\"", r.name)),
            "{json}"
        );
        assert!(
            header.contains(&format!("#define HDFA_BSBU_REG_{} {i} ", r.name)),
            "{header}"
        );
    }
    assert!(header.contains("#define HDFA_BSBU_GENERATOR 1"));
    // Every value fits its register's width.
    for r in REGS {
        let v = (r.value)(&BsbuGen {
            threshold: 256,
            ..gen
        });
        assert!(r.width >= 32 || v < 1 << r.width, "{} = {v}", r.name);
    }
    // A stored-weight unit lists no register.
    let s = rtl::bsbu::generate(&p, &SparseSign::random(4, 3, 0.0, 1).unwrap()).unwrap();
    let h = &s.sidecars.iter().find(|s| s.0 == "_regs.h").unwrap().1;
    assert!(!h.contains("#define HDFA_BSBU_REG_") && h.contains("#define HDFA_BSBU_GENERATOR 0"));
}
