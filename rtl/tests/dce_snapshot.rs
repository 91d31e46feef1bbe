//! Snapshot of the emitted Verilog of one small engine (P = 2, buffers for a
//! 2 → 4 channel 3×3 map with G = 2, so D2 banks are present), so any change in the
//! generated hardware shows up in review.

use contract::dce::{DceLayer, DceSizes};

#[test]
fn dce_p2_c2to4_map3x3_verilog() {
    let l = DceLayer {
        cs: 2,
        ct: 4,
        w: 3,
        dil: 1,
        shift2: 0,
        shift1: 2,
        ..DceLayer::EXAMPLE
    }
    .validate()
    .unwrap();
    let sizes = DceSizes::fitting(2, &[l]).unwrap();
    let e = rtl::dce::generate(&sizes).unwrap();
    insta::assert_snapshot!("dce_p2_c2to4_map3x3", e.verilog);
}
