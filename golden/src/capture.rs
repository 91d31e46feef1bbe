//! Capture of real training vectors for the units: [`PathCapture`] (one conv
//! backward path's source error, ReLU mask and the trainer's target error at one
//! sample of one step, as ndarray maps) and [`Experiment::capture_paths`] for the conv
//! engine; [`path`] and [`from_path`] translate between the trainer's backward paths
//! and the engine's layers. [`DenseCapture`] and [`Experiment::capture_dense`] do the
//! same for the dense (matrix) paths and the backward-weight unit, whose S is the
//! trainer's own matrix, cut into tiles of the unit's row limit. [`UpdateCapture`] and
//! [`Experiment::capture_updates`] record the optimizer's inputs at real steps (BP and
//! DFA) for the update unit.

use ndarray::Array3;

use crate::bsbu::{BsbuGen, FPrime, Nonzero, SparseSign};
use crate::cnn::net::{BackPath, BackWeight};
use crate::cnn::num::Fx;
use crate::cnn::train::{StepKind, Trace, Trainer};
use crate::dce::{DceLayer, DceWeights};
use crate::experiment::{ExpError, Experiment};
use crate::format::ErrorFx;
use crate::geom::shuffle_perm;
use crate::update::{HwCoefs, WordState};
use crate::GoldenError;

/// One conv backward path's input and output at one sample of a real training step.
#[derive(Clone, Debug)]
pub struct PathCapture {
    /// Global training step (0 = before the first update).
    pub step: usize,
    /// Sample within the step's batch.
    pub sample: usize,
    /// Target block.
    pub target: usize,
    /// Source block.
    pub source: usize,
    /// The path as engine parameters.
    pub layer: DceLayer,
    /// Its binary weights.
    pub weights: DceWeights,
    /// e at the source block's pre-activation, raw Q3.13 words as normalized by the
    /// trainer (the engine's input), (C_s, H/up, W/up).
    pub e_src: Array3<i16>,
    /// ReLU mask of the target (p > 0; all true without ReLU), (C_t, H, W).
    pub mask: Array3<bool>,
    /// The trainer's e at the target's pre-activation, raw Q3.13, as computed (before
    /// its normalization: the engine's output), (C_t, H, W).
    pub expected: Array3<i16>,
}

impl Experiment<Fx> {
    /// Train from the current state up to the largest of `steps` (global step
    /// indices, epochs in order) and, before each listed step's update, record every
    /// conv path the engine can run (binary weights; inside a module or across pools)
    /// for the first `samples` samples of that step's batch, with DFA propagation at
    /// that step's weights.
    pub fn capture_paths(
        &mut self,
        steps: &[usize],
        samples: usize,
    ) -> Result<Vec<PathCapture>, ExpError> {
        let file = self.config.file.clone();
        let mut out = Vec::new();
        self.walk_dfa_samples(steps, samples, |t, s, i, tr| {
            for p in &t.net.paths {
                let Some(r) = from_path(p) else {
                    continue;
                };
                let (layer, weights) = r.map_err(|err| ExpError::Net {
                    file: file.clone(),
                    err,
                })?;
                out.push(PathCapture {
                    step: s,
                    sample: i,
                    target: p.target,
                    source: p.source,
                    layer,
                    weights,
                    e_src: map3((layer.cs, layer.hs(), layer.ws()), tr.e[p.source].clone()),
                    mask: map3((layer.ct, layer.h, layer.w), t.net.relu_pass(tr, p.target)),
                    expected: map3((layer.ct, layer.h, layer.w), tr.pre[p.target].clone()),
                });
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Walk the steps up to the largest of `steps`; at each listed step, run the
    /// first `samples` samples of its batch with DFA propagation at that step's
    /// weights (errors kept before normalization) and hand each to `visit(trainer,
    /// step, sample, trace)`.
    fn walk_dfa_samples(
        &mut self,
        steps: &[usize],
        samples: usize,
        mut visit: impl FnMut(&Trainer<Fx>, usize, usize, &Trace<Fx>) -> Result<(), ExpError>,
    ) -> Result<(), ExpError> {
        let Some(&last) = steps.iter().max() else {
            return Ok(());
        };
        self.walk_steps(last, true, |t, s, batch| {
            if !steps.contains(&s) {
                return Ok(());
            }
            let f = t.net.forward_copy();
            let mut tr = Trace {
                keep_pre: true,
                ..Trace::default()
            };
            for (i, (x, y)) in batch.iter().take(samples).enumerate() {
                t.net.sample(&f, x, *y, Some(StepKind::Dfa), &mut tr);
                visit(t, s, i, &tr)?;
            }
            Ok(())
        })
    }
}

/// One tile of a dense backward path (rows `rows` of its matrix) at one sample of a
/// real training step: what the backward-weight unit takes and must give.
#[derive(Clone, Debug)]
pub struct DenseCapture {
    /// Global training step (0 = before the first update).
    pub step: usize,
    /// Sample within the step's batch.
    pub sample: usize,
    /// Target block.
    pub target: usize,
    /// The rows of the path's matrix (target elements) in this tile.
    pub rows: std::ops::Range<usize>,
    /// The trainer's S for these rows (its own matrix, not a second draw).
    pub s: SparseSign,
    /// The path's narrowing shift.
    pub shift: u32,
    /// The generator of these rows (`generator = "lfsr"`; None: stored).
    pub gen: Option<BsbuGen>,
    /// e_L, as normalized by the trainer (the unit's input).
    pub e_l: Vec<ErrorFx>,
    /// ReLU mask of the target rows (p > 0; all true without ReLU).
    pub fprime: FPrime,
    /// The trainer's target error for these rows, before its normalization.
    pub expected: Vec<ErrorFx>,
}

impl Experiment<Fx> {
    /// Train up to the largest of `steps` and, before each listed step's update,
    /// record every binary dense path (from e_L) for the first `samples` samples,
    /// with DFA propagation at that step's weights, in tiles of at most
    /// [`crate::params::MAX_ROWS`] rows.
    pub fn capture_dense(
        &mut self,
        steps: &[usize],
        samples: usize,
    ) -> Result<Vec<DenseCapture>, ExpError> {
        let file = self.config.file.clone();
        let mut out = Vec::new();
        self.walk_dfa_samples(steps, samples, |t, s, i, tr| {
            for p in &t.net.paths {
                let Some(tiles) = dense_tiles(p) else {
                    continue;
                };
                let tiles = tiles.map_err(|err| ExpError::Net {
                    file: file.clone(),
                    err,
                })?;
                let pass = t.net.relu_pass(tr, p.target);
                let word = |v: i16| ErrorFx::from_bits(v);
                for tile in tiles {
                    let rows = tile.rows;
                    out.push(DenseCapture {
                        step: s,
                        sample: i,
                        target: p.target,
                        rows: rows.clone(),
                        s: tile.s,
                        shift: tile.shift,
                        gen: tile.gen,
                        e_l: tr.e[p.source].iter().map(|&v| word(v)).collect(),
                        fprime: FPrime::Relu(pass[rows.clone()].to_vec()),
                        expected: tr.pre[p.target][rows].iter().map(|&v| word(v)).collect(),
                    });
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// One tile of a dense backward path: rows `rows` of its sign matrix (at most
/// [`crate::params::MAX_ROWS`], what one backward-weight unit pass produces).
#[derive(Clone, Debug)]
pub struct DenseTile {
    /// The path's rows this tile covers.
    pub rows: std::ops::Range<usize>,
    /// Those rows of S.
    pub s: SparseSign,
    /// The path's scaling shift.
    pub shift: u32,
    /// The generator of these rows (`generator = "lfsr"`; None: stored).
    pub gen: Option<BsbuGen>,
}

/// A trainer path the backward-weight unit can run, cut into tiles: a dense path
/// (the classifier module's, from e_L) with binary weights. `None` for any other path.
pub fn dense_tiles(p: &BackPath<i16>) -> Option<Result<Vec<DenseTile>, GoldenError>> {
    let (g, BackWeight::Binary(_, shift, unit)) = &p.d1 else {
        return None;
    };
    if p.d2.is_some() || g.in_h != 1 || g.in_w != 1 || g.k != 1 {
        return None;
    }
    let tiles = (0..g.out_c)
        .step_by(crate::params::MAX_ROWS)
        .map(|r0| {
            let rows = r0..(r0 + crate::params::MAX_ROWS).min(g.out_c);
            let s_rows = rows
                .clone()
                .map(|r| {
                    (0..g.in_c)
                        .filter(|&c| unit[r * g.in_c + c] != 0)
                        .map(|c| Nonzero {
                            col: c as u16,
                            neg: unit[r * g.in_c + c] < 0,
                        })
                        .collect()
                })
                .collect();
            Ok(DenseTile {
                gen: p.dense_gen.map(|d| d.offset(r0)),
                rows,
                s: SparseSign::from_rows(g.in_c, s_rows)?,
                shift: *shift,
            })
        })
        .collect();
    Some(tiles)
}

/// One parameter tensor's optimizer inputs at a real step.
#[derive(Clone, Debug)]
pub struct UpdateTensor {
    /// Its name: `w{block}` or `b{block}`.
    pub name: String,
    /// θ, v_bp, v_dfa of every word before the step.
    pub state: Vec<WordState>,
    /// The step's gradient (raw Q8.24, the batch mean).
    pub grad: Vec<i32>,
}

/// The weight update of one real training step: what the update unit receives.
#[derive(Clone, Debug)]
pub struct UpdateCapture {
    /// Global training step.
    pub step: usize,
    /// BP or DFA.
    pub kind: StepKind,
    /// η (this epoch's), α, γ as the unit takes them.
    pub coefs: HwCoefs,
    /// Every parameter tensor, weights then biases (the trainer's order).
    pub tensors: Vec<UpdateTensor>,
}

impl Experiment<Fx> {
    /// Train up to the largest of `steps` and, before each listed step's update,
    /// record its kind, coefficients, and every parameter word's θ, v_bp, v_dfa and
    /// gradient. Training is unchanged: the recorded gradient is the one the step
    /// applies (a test checks the trained state against [`crate::update::apply`]).
    pub fn capture_updates(&mut self, steps: &[usize]) -> Result<Vec<UpdateCapture>, ExpError> {
        let Some(&last) = steps.iter().max() else {
            return Ok(Vec::new());
        };
        let file = self.config.file.clone();
        let threads = self.config.raw.threads;
        let mut out = Vec::new();
        self.walk_steps(last, true, |t, s, batch| {
            if !steps.contains(&s) {
                return Ok(());
            }
            let kind = t.next_kind();
            let h = t.hyper;
            let coefs =
                HwCoefs::new(h.eta.raw, h.alpha.raw, h.gamma.raw).map_err(|err| ExpError::Net {
                    file: file.clone(),
                    err,
                })?;
            let (grads, _) = t.gradients(kind, batch, threads);
            let nw = t.net.w.len();
            let tensors = grads
                .into_iter()
                .enumerate()
                .map(|(k, grad)| {
                    let (theta, name) = if k < nw {
                        (&t.net.w[k], format!("w{k}"))
                    } else {
                        (&t.net.b[k - nw], format!("b{}", k - nw))
                    };
                    let state = (0..grad.len())
                        .map(|j| WordState {
                            theta: theta[j],
                            v_bp: t.opt.v_bp[k][j],
                            v_dfa: t.opt.v_dfa[k][j],
                        })
                        .collect();
                    UpdateTensor { name, state, grad }
                })
                .collect();
            out.push(UpdateCapture {
                step: s,
                kind,
                coefs,
                tensors,
            });
            Ok(())
        })?;
        Ok(out)
    }
}

/// The path's maps as (C, H, W): the source's at the source size, the target's at the
/// target size.
fn map3<T>(shape: (usize, usize, usize), v: Vec<T>) -> Array3<T> {
    Array3::from_shape_vec(shape, v).expect("the path's maps have the layer's sizes")
}

fn binary(neg: &[bool], shift: u32) -> BackWeight<i16> {
    BackWeight::Binary(
        neg.to_vec(),
        shift,
        neg.iter().map(|&b| if b { -1 } else { 1 }).collect(),
    )
}

/// The trainer's backward path for the engine layer `l` with weights `w`.
pub fn path(l: &DceLayer, w: &DceWeights) -> BackPath<i16> {
    BackPath {
        target: 0,
        source: 1,
        d2: l
            .d2_geom()
            .zip(w.d2.as_ref())
            .map(|(g, n)| (g, binary(n, l.shift2))),
        shuffle: l.has_d2().then(|| shuffle_perm(l.ct, l.groups)),
        up: l.up,
        d1: (l.d1_geom(), binary(&w.d1, l.shift1)),
        gain: 0,
        gen: w.gen,
        dense_gen: None,
    }
}

/// A trainer path the engine can run, as a layer and its weights: a conv path with
/// binary weights (inside a module, or across pools with up-sampling 2 or 4). `None`
/// for any other path; an error when the path is outside the engine's ranges.
pub fn from_path(p: &BackPath<i16>) -> Option<Result<(DceLayer, DceWeights), GoldenError>> {
    let (g1, w1) = &p.d1;
    let BackWeight::Binary(n1, s1, _) = w1 else {
        return None;
    };
    // A dense path (from the classifier) is not a conv path.
    let dense = g1.in_h == 1 && g1.in_w == 1 && g1.out_h == 1 && g1.out_w == 1;
    if dense {
        return None;
    }
    let (cs, d2, s2) = match &p.d2 {
        Some((g2, BackWeight::Binary(n2, s2, _))) => (g2.in_c, Some(n2.clone()), *s2),
        Some(_) => return None,
        None => (g1.in_c, None, 0),
    };
    Some(
        DceLayer {
            cs,
            ct: g1.out_c,
            h: g1.out_h,
            w: g1.out_w,
            up: p.up,
            k: g1.k,
            dil: g1.dil,
            groups: g1.groups,
            shift2: s2,
            shift1: *s1,
        }
        .validate()
        .map(|l| {
            (
                l,
                DceWeights {
                    d2,
                    d1: n1.clone(),
                    gen: p.gen,
                },
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::num::Fx;
    use crate::cnn::ops::Scratch;
    use crate::rng::Rng;
    use crate::rng::SeedableRng;

    #[test]
    fn the_trainers_cdfa_path_equals_the_contracts_engine_model() {
        // The engine's expected words come from contract::dce::apply; training runs
        // its own cdfa code. They must be the same computation, bit for bit.
        let base = DceLayer {
            cs: 8,
            ct: 16,
            h: 6,
            dil: 1,
            groups: 1,
            ..DceLayer::EXAMPLE
        };
        let mut rng = Rng::seed_from_u64(100);
        let sweep = [1, 2, 4, 8].into_iter().flat_map(|g| {
            (1..=3).flat_map(move |d| {
                [1, 3, 5]
                    .into_iter()
                    .flat_map(move |k| [1, 2].map(move |u| (g, d, k, u)))
            })
        });
        let sweep = sweep.chain([(2, 1, 3, 4), (1, 2, 3, 4)]);
        for (g, d, k, up) in sweep {
            // 6 × 7 has no 2 × 2 blocks: across a pool the map is 8 × 8.
            let (h, w) = if up == 1 { (6, 7) } else { (8, 8) };
            let l = DceLayer {
                groups: g,
                dil: d,
                k,
                h,
                w,
                up,
                ..base
            }
            .validate()
            .unwrap();
            let w = DceWeights::random(&l, &mut rng);
            let e: Vec<i16> = (0..l.in_words())
                .map(|_| rng.range_i64(-32768, 32768) as i16)
                .collect();
            let mut trainer = vec![0i16; l.out_words()];
            path(&l, &w).apply::<Fx>(&e, &mut trainer, &mut Scratch::<Fx>::default());
            let all = vec![true; l.out_words()];
            assert_eq!(
                crate::dce::apply(&l, &w, &e, &all).unwrap(),
                trainer,
                "G={g} d={d} k={k} up={up}"
            );
            let (back, wb) = from_path(&path(&l, &w)).unwrap().unwrap();
            // Without D2 (G = 1) the path has no second shift: it comes back as 0.
            let want = if l.has_d2() {
                l
            } else {
                DceLayer { shift2: 0, ..l }
            };
            assert_eq!((back, wb), (want, w));
        }
    }
}
