//! Exactness of BP on a tiny network:
//! - fixed point: the trainer's gradients equal, bit for bit, those of an independent
//!   plain-loop reference (dense matrices built from the convolution's definition,
//!   inverse index mapping, own ReLU/pool code, own block-exponent normalization by
//!   plain max search, per-sample gradients aligned by their exponents);
//! - f32: the gradients match central finite differences.

use golden::cnn::net::{build_blocks, DfaOptions, Generator, LayerSpec, Net, Propagation};
use golden::cnn::num::{Coef, Fx, Num, F32};
use golden::cnn::ops::ConvGeom;
use golden::cnn::softmax::softmax_xent_fx;
use golden::cnn::train::{Hyper, StepKind, Trainer};
use golden::rng::Rng;
use golden::rng::SeedableRng;

fn layers() -> Vec<LayerSpec> {
    vec![
        LayerSpec::Conv {
            out: 4,
            k: 3,
            stride: 1,
            pad: 1,
            dilation: 1,
            groups: 1,
        },
        LayerSpec::Relu,
        LayerSpec::MaxPool,
        LayerSpec::Conv {
            out: 4,
            k: 3,
            stride: 2,
            pad: 2,
            dilation: 2,
            groups: 2,
        },
        LayerSpec::Relu,
        LayerSpec::Dense { out: 10 },
    ]
}

fn hyper() -> Hyper {
    Hyper {
        eta: Coef::new(0.05),
        alpha: Coef::new(0.9),
        gamma: Coef::new(0.5),
        bp_ratio: 1.0,
        log2_batch: 2,
    }
}

/// Dense matrix M[o][i] of a conv from its definition, iterating over (output, input)
/// position pairs and solving for the tap (the inverse of the layer code's mapping).
fn dense_matrix(g: &ConvGeom, w: &[i16]) -> (Vec<Vec<i64>>, Vec<Vec<Option<usize>>>) {
    let icg = g.in_c / g.groups;
    let ocg = g.out_c / g.groups;
    let mut m = vec![vec![0i64; g.in_len()]; g.out_len()];
    let mut widx = vec![vec![None; g.in_len()]; g.out_len()];
    for oc in 0..g.out_c {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let o = oc * g.out_h * g.out_w + oy * g.out_w + ox;
                for ic in 0..g.in_c {
                    if ic / icg != oc / ocg {
                        continue;
                    }
                    for iy in 0..g.in_h {
                        for ix in 0..g.in_w {
                            let dy = iy as i64 + g.pad as i64 - (oy * g.stride) as i64;
                            let dx = ix as i64 + g.pad as i64 - (ox * g.stride) as i64;
                            if dy < 0 || dx < 0 || dy % g.dil as i64 != 0 || dx % g.dil as i64 != 0
                            {
                                continue;
                            }
                            let (ky, kx) =
                                ((dy / g.dil as i64) as usize, (dx / g.dil as i64) as usize);
                            if ky >= g.k || kx >= g.k {
                                continue;
                            }
                            let i = ic * g.in_h * g.in_w + iy * g.in_w + ix;
                            let wi = oc * icg * g.k * g.k + (ic % icg) * g.k * g.k + ky * g.k + kx;
                            m[o][i] = w[wi] as i64;
                            widx[o][i] = Some(wi);
                        }
                    }
                }
            }
        }
    }
    (m, widx)
}

/// The block-exponent shift by plain search: the largest |w| (one's complement for
/// negatives), its bit length, 13 minus that if positive, the exponent kept <= 31.
fn normalize_shift(e: &[i16], exp: i32) -> i32 {
    let m = e
        .iter()
        .map(|&w| if w < 0 { -(w as i64) - 1 } else { w as i64 })
        .max()
        .unwrap_or(0);
    let len = (0..64).find(|b| m >> b == 0).unwrap() as i32;
    (13 - len).max(0).min(31 - exp)
}

#[test]
fn fixed_point_bp_gradients_equal_plain_loop_reference_bit_for_bit() {
    let blocks = build_blocks((1, 8, 8), &layers(), &[]).unwrap();
    let opts = DfaOptions {
        binary: true,
        groups: 1,
        k: 3,
        dilate: true,
        extra_shift: 0,
        sparsity: 0.0,
        generator: Generator::Stored,
    };
    let mut net = Net::<Fx>::new((1, 8, 8), blocks.clone(), Propagation::Bp, opts, 5).unwrap();
    let mut rng = Rng::seed_from_u64(9);
    for b in net.b.iter_mut() {
        for v in b.iter_mut() {
            *v = Fx::master_from_f64(rng.uniform() * 0.2 - 0.1);
        }
    }
    let trainer = Trainer::new(net, hyper(), 1);
    let xs: Vec<Vec<i16>> = (0..4)
        .map(|_| (0..64).map(|_| rng.range_i64(0, 256) as i16).collect())
        .collect();
    let labels = [3usize, 7, 0, 9];
    let batch: Vec<(&[i16], usize)> = xs.iter().map(|x| x.as_slice()).zip(labels).collect();
    let (grads, _) = trainer.gradients(StepKind::Bp, &batch, 2);

    // Reference.
    let f = trainer.net.forward_copy();
    let mats: Vec<_> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| dense_matrix(&b.geom, &f.w[i]))
        .collect();
    let nb = blocks.len();
    let mut gw: Vec<Vec<i128>> = blocks.iter().map(|b| vec![0; b.geom.w_len()]).collect();
    let mut gb: Vec<Vec<i128>> = blocks.iter().map(|b| vec![0; b.geom.out_c]).collect();
    let mut shifted = 0;
    for (x, &label) in xs.iter().zip(&labels) {
        let mut ins: Vec<Vec<i16>> = Vec::new();
        let mut ps: Vec<Vec<i16>> = Vec::new();
        let mut cur = x.clone();
        for (i, b) in blocks.iter().enumerate() {
            let g = &b.geom;
            let per = g.out_h * g.out_w;
            let p: Vec<i16> = (0..g.out_len())
                .map(|o| {
                    let s: i64 = (0..g.in_len())
                        .map(|k| mats[i].0[o][k] * cur[k] as i64)
                        .sum();
                    Fx::fwd_out(s, f.b[i][o / per])
                })
                .collect();
            ins.push(cur.clone());
            let mut o: Vec<i16> = if b.relu {
                p.iter().map(|&v| v.max(0)).collect()
            } else {
                p.clone()
            };
            if b.pool {
                let (c, h, w) = (g.out_c, g.out_h, g.out_w);
                let mut y = Vec::new();
                for ch in 0..c {
                    for yy in 0..h / 2 {
                        for xx in 0..w / 2 {
                            let q = |dy: usize, dx: usize| {
                                o[ch * h * w + (2 * yy + dy) * w + 2 * xx + dx]
                            };
                            y.push(q(0, 0).max(q(0, 1)).max(q(1, 0)).max(q(1, 1)));
                        }
                    }
                }
                o = y;
            }
            ps.push(p);
            cur = o;
        }
        let mut e = vec![vec![]; nb];
        let mut exps = vec![0i32; nb];
        let mut el = vec![0i16; 10];
        exps[nb - 1] = softmax_xent_fx(&ps[nb - 1], label, &mut el, true).1;
        e[nb - 1] = el;
        for i in (0..nb - 1).rev() {
            let nx = &blocks[i + 1].geom;
            let ex: Vec<i16> = (0..nx.in_len())
                .map(|k| {
                    Fx::bwd_out(
                        (0..nx.out_len())
                            .map(|o| mats[i + 1].0[o][k] * e[i + 1][o] as i64)
                            .sum(),
                    )
                })
                .collect();
            let g = &blocks[i].geom;
            let mut ep = vec![0i16; g.out_len()];
            if blocks[i].pool {
                let (h, w) = (g.out_h, g.out_w);
                // Route to the first maximum in row-major order, then mask by ReLU.
                let relu: Vec<i16> = ps[i].iter().map(|&v| v.max(0)).collect();
                for ch in 0..g.out_c {
                    for yy in 0..h / 2 {
                        for xx in 0..w / 2 {
                            let cands = [(0, 0), (0, 1), (1, 0), (1, 1)]
                                .map(|(dy, dx)| ch * h * w + (2 * yy + dy) * w + 2 * xx + dx);
                            let mut best = cands[0];
                            for &c in &cands[1..] {
                                if relu[c] > relu[best] {
                                    best = c;
                                }
                            }
                            ep[best] = ex[ch * (h / 2) * (w / 2) + yy * (w / 2) + xx];
                        }
                    }
                }
            } else {
                ep = ex;
            }
            for (v, &p) in ep.iter_mut().zip(&ps[i]) {
                if p <= 0 {
                    *v = 0;
                }
            }
            let s = normalize_shift(&ep, exps[i + 1]);
            shifted += (s != 0) as usize;
            exps[i] = exps[i + 1] + s;
            e[i] = ep.iter().map(|&v| v * (1 << s)).collect();
        }
        for i in 0..nb {
            let g = &blocks[i].geom;
            let per = g.out_h * g.out_w;
            let mut sw = vec![0i64; g.w_len()];
            let mut sb = vec![0i64; g.out_c];
            for o in 0..g.out_len() {
                sb[o / per] += e[i][o] as i64;
                for k in 0..g.in_len() {
                    if let Some(wi) = mats[i].1[o][k] {
                        sw[wi] += e[i][o] as i64 * ins[i][k] as i64;
                    }
                }
            }
            // Align to exponent 31 (the batch LSB): multiply by 2^(31 - exp).
            let up = 1i128 << (31 - exps[i]);
            for (a, v) in gw[i].iter_mut().zip(&sw) {
                *a += *v as i128 * up;
            }
            for (a, v) in gb[i].iter_mut().zip(&sb) {
                *a += *v as i128 * up;
            }
        }
    }
    let mut want: Vec<Vec<i32>> = gw
        .iter()
        .map(|w| w.iter().map(|&a| Fx::grad_out(a, 2)).collect())
        .collect();
    want.extend(gb.iter().map(|b| {
        b.iter()
            .map(|&a| Fx::bias_grad_out(a, 2))
            .collect::<Vec<_>>()
    }));
    assert_eq!(grads.len(), want.len());
    let mut nonzero = 0;
    for (k, (g, w)) in grads.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "gradient tensor {k} differs");
        nonzero += g.iter().filter(|&&v| v != 0).count();
    }
    assert!(
        shifted >= 2,
        "the errors must be renormalized ({shifted} shifts)"
    );
    assert!(
        nonzero > 50,
        "the test must exercise real gradients ({nonzero} nonzero)"
    );
}

#[test]
fn f32_bp_gradients_match_finite_differences() {
    let blocks = build_blocks((1, 8, 8), &layers(), &[]).unwrap();
    let opts = DfaOptions {
        binary: true,
        groups: 1,
        k: 3,
        dilate: true,
        extra_shift: 0,
        sparsity: 0.0,
        generator: Generator::Stored,
    };
    let net = Net::<F32>::new((1, 8, 8), blocks, Propagation::Bp, opts, 5).unwrap();
    let mut trainer = Trainer::new(net, hyper(), 1);
    let mut rng = Rng::seed_from_u64(2);
    let xs: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..64).map(|_| rng.uniform() as f32).collect())
        .collect();
    let labels = [1usize, 4, 4, 8];
    let batch: Vec<(&[f32], usize)> = xs.iter().map(|x| x.as_slice()).zip(labels).collect();
    let (grads, _) = trainer.gradients(StepKind::Bp, &batch, 1);
    let loss = |t: &Trainer<F32>| -> f64 { t.gradients(StepKind::Bp, &batch, 1).1.loss };
    let h = 1e-3f32;
    let mut checked = 0;
    for blk in 0..trainer.net.w.len() {
        for j in (0..trainer.net.w[blk].len()).step_by(7) {
            let g = grads[blk][j] as f64;
            let w0 = trainer.net.w[blk][j];
            trainer.net.w[blk][j] = w0 + h;
            let lp = loss(&trainer);
            trainer.net.w[blk][j] = w0 - h;
            let lm = loss(&trainer);
            trainer.net.w[blk][j] = w0;
            let fd = (lp - lm) / (2.0 * h as f64);
            assert!(
                (fd - g).abs() <= 2e-3 + 0.05 * g.abs(),
                "block {blk} weight {j}: fd {fd} vs bp {g}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20);
}
