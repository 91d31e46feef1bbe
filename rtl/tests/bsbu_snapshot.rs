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
