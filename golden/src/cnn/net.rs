//! Network structure, parameters and the three error-propagation modes.
//!
//! A network is a list of [`Block`]s. A block is one weighted layer (conv or dense)
//! followed optionally by ReLU, a 2×2 max-pool and a channel shuffle. The last block
//! is the dense classifier (no ReLU); softmax + cross-entropy follow it. Errors are
//! defined at each block's pre-activation p (the paper's e_i, with f'(p_{i+1})).
//!
//! ## Modules and backward paths (paper eq. 6–8)
//! Blocks are split into modules; the classifier is always the last module on its
//! own. For module i with last block L_i:
//! - the error of a block j < L_i inside the module comes from e_{i,L_i} through a
//!   backward path D_{i,j};
//! - the error of the previous module's last block comes from e_{i,L_i} through
//!   D_{i,−1} (for the classifier module this is a dense matrix from e_L).
//!
//! A conv backward path from a source map (C_s, H_s, W_s) to a target
//! pre-activation (C_t, H_t, W_t) is: D2, a 1×1 conv C_s → C_t with G groups (only
//! when G > 1); the channel shuffle with G groups (only when G > 1); nearest-neighbour
//! up-sampling by H_t / H_s (a power of two; this is how sizes are matched across
//! max-pools); D1, a k×k conv (C_s or C_t) → C_t with G groups, dilation d and "same"
//! padding. The dilation makes D1's receptive field cover the forward path's: with r
//! the receptive field (in target pixels) of one source pixel, d = ⌈(r − 1)/(k − 1)⌉;
//! a chain of m stride-1 3×3 convs gives r = 2m + 1 and d = m.
//!
//! Backward weights are fixed random values drawn from the seed: binary ±1 with a
//! power-of-two scaling shift ⌈log2 √fan_in⌉ (adds and subtracts only), or real
//! values U(−1, 1)/√fan_in in the weight format. Either way a path has about unit
//! gain, so a chain of module paths keeps the scale of e_L.
//!
//! ## Path gain
//! A path's gain 2^−gain is applied as an addition to its output's exponent
//! ([`crate::scale`]), so it costs no bits. It has two parts:
//! - the size gain ⌊½·log2(n_target / n_source) + ½⌋ (n: the element count of the
//!   target and source error maps), which keeps the error's L2 norm about that of
//!   its source. The fan-in shift keeps each *element* at the source's size, so
//!   without it a path into a map with many more elements (original DFA: 10 classes
//!   into 16×28×28) would multiply the norm, and the layer's gradient, by up to √n;
//! - `backward.extra_shift` on the paths whose source is e_L (the classifier
//!   module's, and all of original DFA's), so DFA errors have about the size of BP
//!   errors and one learning rate serves both kinds of step in HDFA. It is applied
//!   once: paths between modules have only their size gain, so it does not compound
//!   along the chain of module paths.

use super::num::Num;
use super::ops::{self, ConvGeom};
use crate::bsbu::{BsbuGen, SparseSign};
use crate::rng::SeedableRng;
use crate::rng::{Rng, RngCore};
use crate::GoldenError;

/// A weighted layer's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighted {
    /// Convolution.
    Conv,
    /// Dense (flattens its input).
    Dense,
}

/// One block: weighted layer, then optional ReLU, max-pool and shuffle.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Conv or dense.
    pub kind: Weighted,
    /// Its geometry (dense: a 1×1 conv over the flattened input).
    pub geom: ConvGeom,
    /// ReLU after the layer.
    pub relu: bool,
    /// 2×2 max-pool after the ReLU.
    pub pool: bool,
    /// Channel shuffle (groups) after the pool.
    pub shuffle: Option<usize>,
    /// Module index.
    pub module: usize,
}

impl Block {
    /// Shape (c, h, w) of the pre-activation p.
    pub fn p_shape(&self) -> (usize, usize, usize) {
        (self.geom.out_c, self.geom.out_h, self.geom.out_w)
    }
    /// Shape of the block's output (after pool).
    pub fn out_shape(&self) -> (usize, usize, usize) {
        let (c, h, w) = self.p_shape();
        if self.pool {
            (c, h / 2, w / 2)
        } else {
            (c, h, w)
        }
    }
}

/// How errors reach the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Back-propagation, eq. (2).
    Bp,
    /// Original DFA, eq. (5): a dense random matrix from e_L to every hidden layer.
    Dfa,
    /// Convolutional DFA within modules, eq. (6)–(8).
    Cdfa,
}

/// Options of the DFA backward paths.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DfaOptions {
    /// Binary ±1 weights with a scaling shift (else real values).
    pub binary: bool,
    /// Channel groups G of the conv backward paths (1: no D2 and no shuffle).
    pub groups: usize,
    /// Kernel size of D1.
    pub k: usize,
    /// Dilate D1 to match the receptive field (else dilation 1).
    pub dilate: bool,
    /// Gain 2^−extra_shift of the paths from e_L (see the module docs), so DFA errors
    /// have about the size of BP errors.
    pub extra_shift: u32,
    /// Sparsity s of the dense (matrix) paths' binary weights, S = sign(D ⊙ R)
    /// (eq. 10; 0: every entry ±1).
    pub sparsity: f64,
    /// Where binary weights come from.
    pub generator: Generator,
}

/// Where the binary backward weights come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generator {
    /// Drawn once from the experiment's generator and stored.
    #[default]
    Stored,
    /// Regenerated from one 32-bit seed per matrix ([`crate::fbgen`]): row r (a target
    /// unit, or an output channel of a conv path) is stream r, one step per entry in
    /// the weight layout's order; the mask keeps entries below the threshold of the
    /// sparsity. Only the seed is stored.
    Lfsr,
}

/// A fixed backward weight: binary signs with a shift, or real values.
#[derive(Clone, Debug, PartialEq)]
pub enum BackWeight<V> {
    /// ±1 (true = −1), the scaling shift, and the signs as ±1 values for the GEMM.
    Binary(Vec<bool>, u32, Vec<V>),
    /// Real values in the weight format.
    Real(Vec<V>),
}

impl<V: Copy> BackWeight<V> {
    fn draw<N: Num<V = V>>(n: usize, fan_in: usize, binary: bool, rng: &mut Rng) -> Self {
        if binary {
            let shift = crate::format::fan_in_shift(fan_in);
            let neg: Vec<bool> = (0..n).map(|_| rng.bit()).collect();
            let unit = neg.iter().map(|&b| N::unit(b)).collect();
            BackWeight::Binary(neg, shift, unit)
        } else {
            let scale = 1.0 / (fan_in as f64).sqrt();
            BackWeight::Real(
                (0..n)
                    .map(|_| N::weight_of(N::master_from_f64((rng.uniform() * 2.0 - 1.0) * scale)))
                    .collect(),
            )
        }
    }

    /// The weights of a conv path's D1 or D2 (`g`): [`BackWeight::draw`], or with the
    /// LFSR generator each output channel's signs from its stream (no mask).
    /// Returns the generator's seed too (None: stored).
    fn conv_weights<N: Num<V = V>>(
        g: &ConvGeom,
        o: DfaOptions,
        rng: &mut Rng,
    ) -> (Self, Option<u32>) {
        if !(o.binary && o.generator == Generator::Lfsr) {
            return (Self::draw::<N>(g.w_len(), g.fan_in(), o.binary, rng), None);
        }
        let seed = rng.next_u32();
        let neg = crate::dce::generated_signs(g, seed);
        let unit = neg.iter().map(|&b| N::unit(b)).collect();
        let w = BackWeight::Binary(neg, crate::format::fan_in_shift(g.fan_in()), unit);
        (w, Some(seed))
    }

    /// The matrix of a dense path (`g` = ConvGeom::dense(source, target): one row per
    /// target element, one column per source element). Binary: S = sign(D ⊙ R) from
    /// the contract's generator ([`SparseSign::draw`], the one the backward-weight
    /// unit's matrices come from), masked entries 0, narrowed by the fan-in shift of
    /// the kept entries per row; at sparsity 0 the same bits as [`BackWeight::draw`].
    /// Real: as [`BackWeight::draw`] (sparsity applies to binary weights only).
    fn dense<N: Num<V = V>>(
        g: &ConvGeom,
        o: DfaOptions,
        rng: &mut Rng,
    ) -> Result<(Self, Option<BsbuGen>), GoldenError> {
        if !o.binary {
            return Ok((Self::draw::<N>(g.w_len(), g.in_c, false, rng), None));
        }
        let (s, gen) = match o.generator {
            Generator::Stored => (SparseSign::draw(g.out_c, g.in_c, o.sparsity, rng)?, None),
            Generator::Lfsr => {
                let gen = BsbuGen {
                    seed: rng.next_u32(),
                    threshold: crate::fbgen::threshold(o.sparsity)?,
                    row0: 0,
                };
                (gen.matrix(g.out_c, g.in_c)?, Some(gen))
            }
        };
        let kept = (g.in_c as f64 * (1.0 - o.sparsity)).round().max(1.0) as usize;
        let mut neg = vec![false; g.w_len()];
        let mut unit = vec![N::zero(); g.w_len()];
        for r in 0..g.out_c {
            for nz in s.row(r) {
                let k = r * g.in_c + nz.col as usize;
                neg[k] = nz.neg;
                unit[k] = N::unit(nz.neg);
            }
        }
        Ok((
            BackWeight::Binary(neg, crate::format::fan_in_shift(kept), unit),
            gen,
        ))
    }

    /// Apply as a convolution with geometry `g`.
    pub fn conv<N: Num<V = V>>(
        &self,
        g: &ConvGeom,
        e: &[V],
        out: &mut [V],
        s: &mut ops::Scratch<N>,
    ) {
        match self {
            BackWeight::Binary(_, shift, unit) => ops::conv_binary::<N>(g, e, unit, *shift, out, s),
            BackWeight::Real(w) => {
                ops::conv_map::<N>(g, e, w, &[], out, s, |_, a| N::bwd_out(a));
            }
        }
    }
}

/// One backward path into a target block's pre-activation.
#[derive(Clone, Debug, PartialEq)]
pub struct BackPath<V> {
    /// Target block.
    pub target: usize,
    /// Source block (whose error feeds this path).
    pub source: usize,
    /// D2 (1×1 grouped), when G > 1.
    pub d2: Option<(ConvGeom, BackWeight<V>)>,
    /// Shuffle permutation after D2, when G > 1.
    pub shuffle: Option<Vec<usize>>,
    /// Up-sampling factor before D1.
    pub up: usize,
    /// D1 (k×k dilated grouped conv, or a dense matrix for `dfa` and for the classifier).
    pub d1: (ConvGeom, BackWeight<V>),
    /// The path's gain 2^−gain, added to the output's exponent (see the module docs).
    pub gain: u32,
    /// The seeds of generated conv weights (`generator = "lfsr"`; None: stored).
    pub gen: Option<crate::dce::DceSeeds>,
    /// The generator of a dense path's S (`generator = "lfsr"`; None: stored).
    pub dense_gen: Option<BsbuGen>,
}

/// Network: blocks, parameters and backward paths.
#[derive(Clone, Debug)]
pub struct Net<N: Num> {
    /// Input shape (c, h, w).
    pub input: (usize, usize, usize),
    /// The blocks.
    pub blocks: Vec<Block>,
    /// Master weights per block.
    pub w: Vec<Vec<N::M>>,
    /// Master biases per block.
    pub b: Vec<Vec<N::M>>,
    /// Error-propagation mode of the DFA steps.
    pub propagation: Propagation,
    /// Backward paths (empty for BP).
    pub paths: Vec<BackPath<N::V>>,
    /// Normalize every error tensor (block floating point, [`crate::scale`]); off,
    /// errors keep the exponent they are computed at (the old fixed scaling, kept
    /// for comparison).
    pub normalize: bool,
    /// Wide activations in the forward pass (preset `q8.24-q4.12-q3.13`,
    /// [`crate::format::split_wide`]); the f32 path ignores it.
    pub wide: bool,
}

/// Layer description before shapes are known (from the config).
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// Convolution.
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel size.
        k: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        pad: usize,
        /// Dilation.
        dilation: usize,
        /// Groups.
        groups: usize,
    },
    /// ReLU.
    Relu,
    /// 2×2 max-pool, stride 2.
    MaxPool,
    /// Channel shuffle.
    Shuffle {
        /// Groups.
        groups: usize,
    },
    /// Flatten (implicit before a dense layer; accepted for readability).
    Flatten,
    /// Dense.
    Dense {
        /// Outputs.
        out: usize,
    },
}

fn layer_err(i: usize, reason: impl Into<String>) -> GoldenError {
    GoldenError::BadMatrix(format!("layers[{i}]: {}", reason.into()))
}

/// Build blocks from layer specs; `modules[m]` = number of weighted layers in module m
/// (the classifier excluded; an empty list puts every hidden layer in one module).
pub fn build_blocks(
    input: (usize, usize, usize),
    layers: &[LayerSpec],
    modules: &[usize],
) -> Result<Vec<Block>, GoldenError> {
    let (mut c, mut h, mut w) = input;
    let mut blocks: Vec<Block> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        match l {
            LayerSpec::Conv {
                out,
                k,
                stride,
                pad,
                dilation,
                groups,
            } => {
                let geom = ConvGeom::new(c, h, w, *out, *k, *stride, *pad, *dilation, *groups)
                    .map_err(|e| layer_err(i, e.to_string()))?;
                (c, h, w) = (geom.out_c, geom.out_h, geom.out_w);
                blocks.push(Block {
                    kind: Weighted::Conv,
                    geom,
                    relu: false,
                    pool: false,
                    shuffle: None,
                    module: 0,
                });
            }
            LayerSpec::Dense { out } => {
                if *out == 0 {
                    return Err(layer_err(
                        i,
                        "dense out = 0 is out of range: valid range is >= 1",
                    ));
                }
                let geom = ConvGeom::dense(c * h * w, *out);
                (c, h, w) = (*out, 1, 1);
                blocks.push(Block {
                    kind: Weighted::Dense,
                    geom,
                    relu: false,
                    pool: false,
                    shuffle: None,
                    module: 0,
                });
            }
            LayerSpec::Flatten => {}
            other => {
                let b = blocks
                    .last_mut()
                    .ok_or_else(|| layer_err(i, "must follow a conv or dense layer"))?;
                match other {
                    LayerSpec::Relu => {
                        if b.relu || b.pool || b.shuffle.is_some() {
                            return Err(layer_err(
                                i,
                                "relu must come right after its conv/dense layer",
                            ));
                        }
                        b.relu = true;
                    }
                    LayerSpec::MaxPool => {
                        if b.pool || b.shuffle.is_some() {
                            return Err(layer_err(i, "one maxpool per block, before any shuffle"));
                        }
                        if h < 2 || w < 2 {
                            return Err(layer_err(
                                i,
                                format!("maxpool needs a map of at least 2x2, got {h}x{w}"),
                            ));
                        }
                        b.pool = true;
                        (h, w) = (h / 2, w / 2);
                    }
                    LayerSpec::Shuffle { groups } => {
                        if *groups == 0 || c % groups != 0 {
                            return Err(layer_err(i, format!("shuffle groups = {groups} is out of range: must divide the {c} channels")));
                        }
                        b.shuffle = Some(*groups);
                    }
                    _ => unreachable!(),
                }
            }
        }
    }
    let last = blocks
        .last()
        .ok_or_else(|| layer_err(0, "the network has no layer"))?;
    if last.kind != Weighted::Dense || last.relu || last.pool || last.shuffle.is_some() {
        return Err(layer_err(
            layers.len().saturating_sub(1),
            "the last layer must be a plain dense classifier",
        ));
    }
    let hidden = blocks.len() - 1;
    let split: Vec<usize> = if modules.is_empty() {
        vec![hidden]
    } else {
        modules.to_vec()
    };
    if split.iter().sum::<usize>() != hidden || split.contains(&0) {
        return Err(GoldenError::out_of_range(
            "modules",
            format!("{split:?}"),
            format!("positive counts of weighted layers summing to the {hidden} hidden layers"),
        ));
    }
    let mut m = 0;
    let mut left = split[0];
    for b in blocks.iter_mut().take(hidden) {
        if left == 0 {
            m += 1;
            left = split[m];
        }
        b.module = m;
        left -= 1;
    }
    blocks[hidden].module = split.len();
    Ok(blocks)
}

impl<N: Num> Net<N> {
    /// A network with He-uniform initial weights and zero biases, and backward paths
    /// for `propagation`, all drawn from `seed`.
    pub fn new(
        input: (usize, usize, usize),
        blocks: Vec<Block>,
        propagation: Propagation,
        dfa: DfaOptions,
        seed: u64,
    ) -> Result<Self, GoldenError> {
        let mut rng = Rng::seed_from_u64(seed);
        let mut wrng = rng.fork(1);
        let w = blocks
            .iter()
            .map(|b| {
                let lim = (6.0 / b.geom.fan_in() as f64).sqrt();
                (0..b.geom.w_len())
                    .map(|_| N::master_from_f64((wrng.uniform() * 2.0 - 1.0) * lim))
                    .collect()
            })
            .collect();
        let b = blocks
            .iter()
            .map(|b| vec![N::M::default(); b.geom.out_c])
            .collect();
        let mut prng = rng.fork(2);
        let paths = match propagation {
            Propagation::Bp => Vec::new(),
            Propagation::Dfa => dense_paths::<N>(&blocks, dfa, &mut prng)?,
            Propagation::Cdfa => conv_paths::<N>(&blocks, dfa, &mut prng)?,
        };
        Ok(Net {
            input,
            blocks,
            w,
            b,
            propagation,
            paths,
            normalize: true,
            wide: false,
        })
    }

    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.w.iter().chain(self.b.iter()).map(Vec::len).sum()
    }
}

fn dense_paths<N: Num>(
    blocks: &[Block],
    o: DfaOptions,
    rng: &mut Rng,
) -> Result<Vec<BackPath<N::V>>, GoldenError> {
    let last = blocks.len() - 1;
    let classes = blocks[last].geom.out_c;
    (0..last)
        .map(|t| {
            let (c, h, w) = blocks[t].p_shape();
            let g = ConvGeom::dense(classes, c * h * w);
            let (bw, dense_gen) = BackWeight::dense::<N>(&g, o, rng)?;
            Ok(BackPath {
                target: t,
                source: last,
                d2: None,
                shuffle: None,
                up: 1,
                d1: (g, bw),
                gain: size_gain(c * h * w, classes) + o.extra_shift,
                gen: None,
                dense_gen,
            })
        })
        .collect()
}

/// The size gain of a path from `n_source` to `n_target` error elements:
/// ⌊½·log2(n_target / n_source) + ½⌋, at least 0 (see the module docs).
pub fn size_gain(n_target: usize, n_source: usize) -> u32 {
    let x = 0.5 * (n_target as f64 / n_source.max(1) as f64).log2();
    (x + 0.5).floor().max(0.0) as u32
}

/// Receptive field, in target pixels, of one pixel of `source`'s pre-activation.
fn receptive_field(blocks: &[Block], target: usize, source: usize) -> usize {
    let (mut r, mut jump) = (1usize, 1usize);
    if blocks[target].pool {
        r += jump;
        jump *= 2;
    }
    for (l, b) in blocks.iter().enumerate().take(source + 1).skip(target + 1) {
        let g = &b.geom;
        r += (g.k - 1) * g.dil * jump;
        jump *= g.stride;
        // The source error sits at its pre-activation, before its own pool.
        if b.pool && l != source {
            r += jump;
            jump *= 2;
        }
    }
    r
}

fn conv_paths<N: Num>(
    blocks: &[Block],
    o: DfaOptions,
    rng: &mut Rng,
) -> Result<Vec<BackPath<N::V>>, GoldenError> {
    let last = blocks.len() - 1;
    let classes = blocks[last].geom.out_c;
    let mut paths = Vec::new();
    let n_mod = blocks[last].module;
    // Last block of each hidden module.
    let module_last: Vec<usize> = (0..n_mod)
        .map(|m| blocks.iter().rposition(|b| b.module == m).unwrap_or(0))
        .collect();
    for t in 0..last {
        let m = blocks[t].module;
        let source = if t == module_last[m] {
            if m + 1 < n_mod {
                module_last[m + 1]
            } else {
                last
            }
        } else {
            module_last[m]
        };
        let (ct, ht, wt) = blocks[t].p_shape();
        if source == last {
            // Classifier module: a dense matrix from e_L.
            let g = ConvGeom::dense(classes, ct * ht * wt);
            let (w, dense_gen) = BackWeight::dense::<N>(&g, o, rng)?;
            paths.push(BackPath {
                target: t,
                source,
                d2: None,
                shuffle: None,
                up: 1,
                d1: (g, w),
                gain: size_gain(ct * ht * wt, classes) + o.extra_shift,
                gen: None,
                dense_gen,
            });
            continue;
        }
        let (cs, hs, ws) = blocks[source].p_shape();
        if ht % hs != 0 || wt % ws != 0 || !(ht / hs).is_power_of_two() || ht / hs != wt / ws {
            return Err(GoldenError::BadMatrix(format!(
                "backward path from layer {source} ({hs}x{ws}) to layer {t} ({ht}x{wt}) needs a power-of-two size ratio"
            )));
        }
        let up = ht / hs;
        let gcount = o.groups;
        let (d2, shuffle, c1) = if gcount > 1 {
            let g2 = ConvGeom::new(cs, hs, ws, ct, 1, 1, 0, 1, gcount)
                .map_err(|e| GoldenError::BadMatrix(format!("D2 of layer {t}: {e}")))?;
            let (w2, s2) = BackWeight::conv_weights::<N>(&g2, o, rng);
            (Some((g2, w2, s2)), Some(ops::shuffle_perm(ct, gcount)), ct)
        } else {
            (None, None, cs)
        };
        let d = if o.dilate {
            (receptive_field(blocks, t, source) - 1)
                .div_ceil(o.k - 1)
                .max(1)
        } else {
            1
        };
        let pad = d * (o.k - 1) / 2;
        let g1 = ConvGeom::new(c1, ht, wt, ct, o.k, 1, pad, d, gcount)
            .map_err(|e| GoldenError::BadMatrix(format!("D1 of layer {t} (dilation {d}): {e}")))?;
        let (w1, s1) = BackWeight::conv_weights::<N>(&g1, o, rng);
        let gen = s1.map(|d1| crate::dce::DceSeeds {
            d2: d2.as_ref().and_then(|d| d.2).unwrap_or(0),
            d1,
        });
        paths.push(BackPath {
            target: t,
            source,
            d2: d2.map(|(g, w, _)| (g, w)),
            shuffle,
            up,
            d1: (g1, w1),
            gain: size_gain(ct * ht * wt, cs * hs * ws),
            gen,
            dense_gen: None,
        });
    }
    Ok(paths)
}

impl<V: Copy + Default> BackPath<V> {
    /// e_target (before ⊙ f') from e_source.
    pub fn apply<N: Num<V = V>>(&self, e_src: &[V], out: &mut [V], acc: &mut ops::Scratch<N>) {
        let mut cur: Vec<V> = e_src.to_vec();
        if let Some((g2, w2)) = &self.d2 {
            let mut y = vec![V::default(); g2.out_len()];
            w2.conv::<N>(g2, &cur, &mut y, acc);
            cur = y;
            if let Some(p) = &self.shuffle {
                let mut z = vec![V::default(); cur.len()];
                ops::permute_channels(p, g2.out_h * g2.out_w, &cur, &mut z);
                cur = z;
            }
        }
        let g1 = &self.d1.0;
        if self.up > 1 {
            let mut z = vec![V::default(); g1.in_len()];
            ops::upsample(
                g1.in_c,
                g1.in_h / self.up,
                g1.in_w / self.up,
                self.up,
                &cur,
                &mut z,
            );
            cur = z;
        }
        self.d1.1.conv::<N>(g1, &cur, out, acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::num::Fx;

    fn conv(out: usize) -> LayerSpec {
        LayerSpec::Conv {
            out,
            k: 3,
            stride: 1,
            pad: 1,
            dilation: 1,
            groups: 1,
        }
    }

    #[test]
    fn lfsr_generated_weights_are_each_rows_xorshift_stream_with_only_a_seed_drawn() {
        let o = DfaOptions {
            binary: true,
            groups: 1,
            k: 3,
            dilate: true,
            extra_shift: 0,
            sparsity: 0.9,
            generator: Generator::Lfsr,
        };
        // Dense: row r, column c is entry c of stream r under the seed drawn first.
        let g = ConvGeom::dense(10, 300);
        let seed = Rng::seed_from_u64(4).next_u32();
        let (BackWeight::Binary(neg, shift, unit), Some(gen)) =
            BackWeight::<i16>::dense::<Fx>(&g, o, &mut Rng::seed_from_u64(4)).unwrap()
        else {
            panic!("binary, generated")
        };
        assert_eq!((gen.seed, gen.threshold, gen.row0), (seed, 26, 0));
        // The reference steps xorshift32 by hand from the row's start state.
        let mut kept = 0;
        for r in 0..300 {
            let mut x = seed ^ ((r as u32 + 1).wrapping_mul(0x9E37_79B9));
            for c in 0..10 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let (n, keep) = (x >> 31 == 1, (x >> 23) & 0xff < 26);
                let k = r * 10 + c;
                assert_eq!(unit[k] != 0, keep, "row {r} col {c}");
                if keep {
                    assert_eq!((neg[k], unit[k] < 0), (n, n), "row {r} col {c}");
                    kept += 1;
                }
            }
        }
        assert!((kept as f64 / 3000.0 - 0.1).abs() < 0.02, "{kept}");
        assert_eq!(shift, crate::format::fan_in_shift(1));
        // Conv: output channel o's signs are stream o over its fan-in, unmasked.
        let g = ConvGeom::new(4, 5, 5, 6, 3, 1, 1, 1, 1).unwrap();
        let (BackWeight::Binary(neg, _, _), Some(_)) =
            BackWeight::<i16>::conv_weights::<Fx>(&g, o, &mut Rng::seed_from_u64(9))
        else {
            panic!("binary")
        };
        let seed = Rng::seed_from_u64(9).next_u32();
        let want: Vec<bool> = (0..6)
            .flat_map(|r| crate::fbgen::row(seed, r, 36, 256))
            .map(|e| e.neg)
            .collect();
        assert_eq!(neg, want);
        // The stored generator is unchanged by the option's existence.
        let stored = DfaOptions {
            generator: Generator::Stored,
            ..o
        };
        let (a, none) =
            BackWeight::<i16>::conv_weights::<Fx>(&g, stored, &mut Rng::seed_from_u64(9));
        assert_eq!(none, None);
        let b =
            BackWeight::<i16>::draw::<Fx>(g.w_len(), g.fan_in(), true, &mut Rng::seed_from_u64(9));
        assert_eq!(a, b);
    }

    #[test]
    fn dense_paths_come_from_the_contract_generator_and_follow_the_sparsity() {
        let g = ConvGeom::dense(10, 300);
        let opts = |sparsity: f64| DfaOptions {
            binary: true,
            groups: 1,
            k: 3,
            dilate: true,
            extra_shift: 0,
            sparsity,
            generator: Generator::Stored,
        };
        // Sparsity 0: the same bits as the plain ±1 draw (one fair bit per entry).
        let (mut r1, mut r2) = (Rng::seed_from_u64(4), Rng::seed_from_u64(4));
        let (a, none) = BackWeight::<i16>::dense::<Fx>(&g, opts(0.0), &mut r1).unwrap();
        assert_eq!(none, None);
        let b = BackWeight::<i16>::draw::<Fx>(g.w_len(), 10, true, &mut r2);
        assert_eq!(a, b);
        // Sparsity 0.9: the contract's S from the same generator state, masked
        // entries 0, and the fan-in shift of the kept entries per row (1 of 10).
        let (mut r1, mut r2) = (Rng::seed_from_u64(5), Rng::seed_from_u64(5));
        let (BackWeight::Binary(neg, shift, unit), None) =
            BackWeight::<i16>::dense::<Fx>(&g, opts(0.9), &mut r1).unwrap()
        else {
            panic!("binary")
        };
        let s = SparseSign::draw(300, 10, 0.9, &mut r2).unwrap();
        for r in 0..300 {
            for c in 0..10 {
                let want = s.dense(r, c) as i16;
                assert_eq!(unit[r * 10 + c], want, "({r}, {c})");
                if want != 0 {
                    assert_eq!(neg[r * 10 + c], want < 0);
                }
            }
        }
        let density = unit.iter().filter(|&&u| u != 0).count() as f64 / 3000.0;
        assert!((density - 0.1).abs() < 0.02, "{density}");
        assert_eq!(shift, crate::format::fan_in_shift(1));
    }

    #[test]
    fn modules_and_dilations_follow_the_receptive_field() {
        use LayerSpec::*;
        let layers = vec![
            conv(8),
            Relu,
            conv(8),
            Relu,
            conv(8),
            Relu,
            MaxPool,
            conv(16),
            Relu,
            conv(16),
            Relu,
            Dense { out: 10 },
        ];
        let blocks = build_blocks((1, 8, 8), &layers, &[3, 2]).unwrap();
        assert_eq!(
            blocks.iter().map(|b| b.module).collect::<Vec<_>>(),
            vec![0, 0, 0, 1, 1, 2]
        );
        let o = DfaOptions {
            binary: true,
            groups: 1,
            k: 3,
            dilate: true,
            extra_shift: 0,
            sparsity: 0.0,
            generator: Generator::Stored,
        };
        let net = Net::<Fx>::new((1, 8, 8), blocks, Propagation::Cdfa, o, 1).unwrap();
        let by_t = |t: usize| net.paths.iter().find(|p| p.target == t).unwrap();
        assert_eq!((by_t(0).source, by_t(0).d1.0.dil), (2, 2)); // two 3x3 layers: d = 2
        assert_eq!((by_t(1).source, by_t(1).d1.0.dil), (2, 1));
        // Module boundary: layer 2 (8x8, pooled) from layer 4 (4x4): up x2.
        assert_eq!((by_t(2).source, by_t(2).up), (4, 2));
        assert_eq!(by_t(3).source, 4);
        assert_eq!(by_t(4).source, 5); // classifier: dense from e_L
        assert_eq!(by_t(4).d1.0.in_c, 10);
        // Size gains: 10 -> 16x4x4 = 256 elements: sqrt(25.6) = 5.1 ~ 2^2; 16x4x4 ->
        // 8x8x8 = 512: sqrt(2) = 1.41 ~ 2^1 (half up); equal sizes: 1.
        assert_eq!(by_t(4).gain, 2);
        assert_eq!(by_t(2).gain, 1);
        assert_eq!(by_t(0).gain, 0);
    }

    #[test]
    fn bad_layer_lists_get_named_errors() {
        use LayerSpec::*;
        assert!(build_blocks((1, 8, 8), &[conv(4), Relu], &[])
            .unwrap_err()
            .to_string()
            .contains("dense classifier"));
        assert!(build_blocks((1, 8, 8), &[Relu, Dense { out: 10 }], &[])
            .unwrap_err()
            .to_string()
            .contains("must follow"));
        assert!(
            build_blocks((1, 1, 1), &[conv(4), MaxPool, Dense { out: 10 }], &[])
                .unwrap_err()
                .to_string()
                .contains("at least 2x2")
        );
        assert_eq!(
            build_blocks((1, 7, 7), &[conv(4), MaxPool, Dense { out: 10 }], &[]).unwrap()[1]
                .geom
                .in_c,
            4 * 3 * 3
        );
        let e = build_blocks((1, 8, 8), &[conv(4), conv(4), Dense { out: 10 }], &[3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("modules"), "{e}");
        let e = build_blocks(
            (3, 8, 8),
            &[
                LayerSpec::Conv {
                    out: 4,
                    k: 3,
                    stride: 1,
                    pad: 1,
                    dilation: 1,
                    groups: 2,
                },
                Dense { out: 10 },
            ],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("groups = 2"), "{e}");
        let e = build_blocks(
            (4, 8, 8),
            &[
                LayerSpec::Conv {
                    out: 4,
                    k: 3,
                    stride: 1,
                    pad: 1,
                    dilation: 0,
                    groups: 1,
                },
                Dense { out: 10 },
            ],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dilation = 0"), "{e}");
    }
}
