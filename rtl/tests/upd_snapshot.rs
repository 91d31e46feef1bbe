//! Snapshot of the update unit's emitted Verilog at P = 1 (the lane, its leaves, the
//! register file and the output stage), so any change in the generated hardware
//! shows up in review; and its register map against the table.

#[test]
fn upd_p1_verilog() {
    let e = rtl::upd::generate(1).unwrap();
    insta::assert_snapshot!("upd_p1", e.verilog);
}

#[test]
fn upd_lanes_out_of_range_are_refused_by_name() {
    for bad in [0, 9] {
        let e = rtl::upd::generate(bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!("lanes = {bad}")) && e.contains("1..=8"),
            "{e}"
        );
    }
}
