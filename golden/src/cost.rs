//! The cost model of the error-propagation stage (paper section 4, Tables 2 and 4,
//! appendix A.2 and eq. 13): memory transactions and operations of BP, the original
//! DFA, the revised DFA (this project's conv paths, or the RNN's triangular sparse
//! form) and HDFA mixes, for the paper's networks and for our configs; and the
//! traffic our two error-propagation units read for one of our paths, which a test
//! checks against the units' co-simulation counters.
//!
//! Main types: [`CnnModel`] and [`RnnModel`] (a network's shapes), [`Cost`] (weight
//! bits, error words, multiply-adds), [`CostRow`] (one method's row, serialized as
//! `hdfa cost --json` prints it), [`UnitTraffic`] ([`dce_path_traffic`],
//! [`bsbu_tile_traffic`]).
//!
//! ## Conventions (printed with every table by [`ASSUMPTIONS`])
//! - Only nonzero values count, as in the paper: a binary feedback weight is 1 bit,
//!   a real weight (BP's transposed forward weights, the original DFA's random
//!   matrices) 32 bits, and an error value 32 bits. A sparse binary matrix counts its
//!   expected nonzeros, (1 − s)·entries, at 1 bit each (no index bits; our backward-
//!   weight unit stores [`crate::bsbu::ENTRY_BITS`] bits per nonzero, which
//!   [`bsbu_tile_traffic`] counts).
//! - Memory transactions = weights read + error values read + error values written
//!   by the propagation's products. Intermediate results of one path (the conv
//!   path's D2 output) stay on chip, as in the dce's D2 banks. The element-wise
//!   ⊙ f'(p) is the same in every method and is not counted; neither are pooling's
//!   error routing and the RNN cell's element-wise gate derivatives.
//! - Operations: a multiply-add counts 2 (a binary weight's signed add too: the paper
//!   assumes binarization does not change the operation count). Products count every
//!   weight tap, padding taps included, as conv operation counts do.
//! - A weight is read once per use per unit of work: per sample for the CNNs, per
//!   time step for the RNNs (the batch's streams share each read). BPTT thus reads
//!   each recurrent matrix T times per mini-batch, and the RNN DFA reads each of its
//!   feedback blocks once.
//! - CNNs are reported per sample, RNNs per mini-batch (T steps × B streams), as in
//!   the paper's tables. MB = 10^6 bytes, GOP = 10^9 operations.
//! - BP propagates through every weighted layer but the first (no error is needed
//!   below the input). The original DFA sends e_L through one dense real matrix to
//!   every hidden weighted layer (eq. 5). The revised DFA of a CNN is this project's
//!   (eq. 6–8, [`crate::cnn::net`]): the classifier is its own module, a dense binary
//!   path from e_L reaches the last layer of the last conv module, and the last layer
//!   of each module reaches every other layer of its module and the previous module's
//!   last layer through D2 (1×1, G groups, at the source size) and D1 (k×k, G
//!   groups, at the target size; dilation adds no taps). The paper's count
//!   k²·ch_L·w·h·ch_i·(1/k² + ch_L/(ch_i·G)) has an ungrouped D2; ours is grouped.
//! - The RNN's revised DFA is the modularized, upper-triangular, binary sparse form
//!   (eq. 9–11): S^fc (H × V) per step, then T(T+1)/2 nonzero H × H blocks of S^rnn
//!   over the window; the original DFA is one real H × V block for every pair of
//!   output and hidden steps (T² blocks). Every method also propagates into the
//!   embedding through W_xᵀ (real). BPTT propagates through the decoder, the
//!   recurrent and the input weights at every step.
//! - HDFA mixes p·BP + (1 − p)·revised.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

use crate::cnn::net::{BackPath, BackWeight, Block, Weighted};
use crate::geom::ConvGeom;
use crate::GoldenError;

/// Bits of a real weight or an error value.
pub const REAL_BITS: f64 = 32.0;
/// Bytes per MB in the printed tables.
pub const MB: f64 = 1e6;
/// Operations per GOP in the printed tables.
pub const GOP: f64 = 1e9;
/// The revised DFA's group counts listed by default for the CNNs.
pub const GROUPS: [usize; 2] = [4, 8];
/// The HDFA mixes listed by default for the CNNs.
pub const CNN_RATIOS: [f64; 3] = [0.1, 0.2, 0.3];
/// The HDFA mixes listed by default for the RNNs.
pub const RNN_RATIOS: [f64; 2] = [0.1, 0.2];
/// The feedback sparsities listed by default for the RNNs.
pub const RNN_SPARSITIES: [f64; 4] = [0.0, 0.8, 0.95, 0.98];

/// The assumptions, printed with every table.
pub const ASSUMPTIONS: &str = "\
Error-propagation stage only. Memory transactions = weights read + error values read and written by the products; nonzero values only: real weight or error value 32 bit, binary feedback weight 1 bit (a sparse matrix counts (1 - s) of its entries, no index bits).
Operations: a multiply-add is 2 (a binary weight's signed add too); every weight tap counts, padding included. The element-wise f'(p), pooling's routing and the RNN's gate derivatives are the same in every method and not counted.
A weight is read once per use: per sample (CNN), per time step shared by the batch (RNN). CNNs per sample, RNNs per mini-batch (T steps x B streams). MB = 10^6 bytes, GOP = 10^9 operations.
BP: every weighted layer but the first. DFA: one dense real matrix from e_L to every hidden weighted layer (RNN: one real H x V block per pair of steps, T^2 blocks). Revised (CNN): classifier module alone with a dense binary path from e_L; each module's last layer to its other layers and to the previous module's last layer through D2 (1x1, G groups) and D1 (k x k, G groups, dilation adds no taps). Revised (RNN): modular, upper-triangular (T(T+1)/2 H x H blocks), binary, sparse S^fc (H x V per step) and S^rnn. Every RNN method also propagates into the embedding through W_x^T. HDFA: p*BP + (1 - p)*revised.";

/// A cost: weight bits, error words and multiply-adds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Weight bits read.
    pub weight_bits: f64,
    /// Error values read plus written (32 bits each).
    pub error_words: f64,
    /// Multiply-adds.
    pub macs: f64,
}

impl Cost {
    /// Memory transactions in bytes.
    pub fn bytes(&self) -> f64 {
        self.weight_bits / 8.0 + self.error_words * REAL_BITS / 8.0
    }
    /// Operations (a multiply-add is 2).
    pub fn ops(&self) -> f64 {
        2.0 * self.macs
    }
    fn plus(self, o: Cost) -> Cost {
        Cost {
            weight_bits: self.weight_bits + o.weight_bits,
            error_words: self.error_words + o.error_words,
            macs: self.macs + o.macs,
        }
    }
    fn times(self, f: f64) -> Cost {
        Cost {
            weight_bits: self.weight_bits * f,
            error_words: self.error_words * f,
            macs: self.macs * f,
        }
    }
    /// HDFA's mix p·bp + (1 − p)·revised.
    pub fn mix(bp: Cost, revised: Cost, p: f64) -> Cost {
        bp.times(p).plus(revised.times(1.0 - p))
    }
}

/// An error-propagation method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Back-propagation (BPTT for the RNNs).
    Bp,
    /// The original DFA.
    Dfa,
    /// The revised DFA.
    Revised,
    /// HDFA: p·BP + (1 − p)·revised.
    Hdfa,
}

/// What a row counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// One sample (CNNs).
    Sample,
    /// One mini-batch of T steps × B streams (RNNs).
    Batch,
}

/// One row of a cost table (the JSON object of `hdfa cost --json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostRow {
    /// Network name.
    pub network: String,
    /// Method.
    pub method: Method,
    /// Groups G of the revised CNN DFA (None where it does not apply).
    pub groups: Option<usize>,
    /// HDFA's BP ratio p.
    pub bp_ratio: Option<f64>,
    /// Sparsity of the binary feedback.
    pub sparsity: Option<f64>,
    /// Memory transactions in bytes.
    pub bytes: f64,
    /// Operations.
    pub ops: f64,
    /// Per sample or per mini-batch.
    pub per: Per,
    /// The cost itself (not serialized).
    #[serde(skip)]
    pub cost: Cost,
}

/// One weighted layer: its geometry (a dense layer is a 1×1 conv over its flattened
/// input) and its module.
#[derive(Clone, Debug, PartialEq)]
pub struct CostLayer {
    /// Name (`conv3`, `fc`).
    pub name: String,
    /// Geometry of the forward layer.
    pub geom: ConvGeom,
    /// Module index (the classifier's module holds it alone).
    pub module: usize,
}

impl CostLayer {
    /// Elements of the pre-activation p (the layer's error).
    fn out_len(&self) -> usize {
        self.geom.out_c * self.geom.out_h * self.geom.out_w
    }
    fn out_shape(&self) -> (usize, usize, usize) {
        (self.geom.out_c, self.geom.out_h, self.geom.out_w)
    }
}

/// A CNN's weighted layers in order; the last is the dense classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct CnnModel {
    /// Network name.
    pub name: String,
    /// The layers, input first.
    pub layers: Vec<CostLayer>,
    /// Output classes.
    pub classes: usize,
    /// Kernel size k of the revised DFA's D1.
    pub k: usize,
}

fn geom(
    name: &str,
    cin: usize,
    hw: usize,
    cout: usize,
    k: usize,
    stride: usize,
) -> Result<ConvGeom, GoldenError> {
    let _ = name;
    ConvGeom::new(cin, hw, hw, cout, k, stride, k / 2, 1, 1)
}

fn dense(cin: usize, cout: usize) -> Result<ConvGeom, GoldenError> {
    Ok(ConvGeom::dense(cin, cout))
}

impl CnnModel {
    /// VGG-16 for CIFAR-10 (32×32×3): 13 3×3 convs (64, 64 | 128, 128 | 256 ×3 |
    /// 512 ×3 | 512 ×3, a 2×2 max-pool after each group), then a 512 → 10 linear
    /// layer; modules {conv1–4}, {conv5–7}, {conv8–13}.
    pub fn vgg16() -> Result<Self, GoldenError> {
        let plan: [(usize, usize); 13] = [
            (64, 32),
            (64, 32),
            (128, 16),
            (128, 16),
            (256, 8),
            (256, 8),
            (256, 8),
            (512, 4),
            (512, 4),
            (512, 4),
            (512, 2),
            (512, 2),
            (512, 2),
        ];
        let mut layers = Vec::new();
        let mut cin = 3;
        for (i, &(c, hw)) in plan.iter().enumerate() {
            let name = format!("conv{}", i + 1);
            let module = match i {
                0..=3 => 0,
                4..=6 => 1,
                _ => 2,
            };
            layers.push(CostLayer {
                geom: geom(&name, cin, hw, c, 3, 1)?,
                name,
                module,
            });
            cin = c;
        }
        layers.push(CostLayer {
            name: "fc".into(),
            geom: dense(512, 10)?,
            module: 3,
        });
        Ok(CnnModel {
            name: "vgg16".into(),
            layers,
            classes: 10,
            k: 3,
        })
    }

    /// ResNet-18 (BasicBlock [2, 2, 2, 2]) or ResNet-50 (Bottleneck [3, 4, 6, 3]) for
    /// CIFAR-10: a 3×3 stem conv of 64 channels at 32×32, four stages at 32, 16, 8 and
    /// 4 pixels (the first conv of stages 2–4 has stride 2, and a 1×1 shortcut conv
    /// matches the first block of a stage whose shape changes), global average pool,
    /// then a linear layer to 10 classes. Modules: the stem with stage 1, then stages
    /// 2, 3 and 4.
    pub fn resnet(depth: usize) -> Result<Self, GoldenError> {
        let (bottleneck, blocks): (bool, [usize; 4]) = match depth {
            18 => (false, [2, 2, 2, 2]),
            50 => (true, [3, 4, 6, 3]),
            d => {
                return Err(GoldenError::out_of_range("ResNet depth", d, "18 or 50"));
            }
        };
        let expansion = if bottleneck { 4 } else { 1 };
        let mut layers = Vec::new();
        let mut n = 0;
        let mut push = |layers: &mut Vec<CostLayer>, g: ConvGeom, module: usize, tag: &str| {
            n += 1;
            layers.push(CostLayer {
                name: format!("{tag}{n}"),
                geom: g,
                module,
            });
        };
        push(&mut layers, geom("stem", 3, 32, 64, 3, 1)?, 0, "conv");
        let mut cin = 64;
        let mut hw = 32;
        for (stage, &nb) in blocks.iter().enumerate() {
            let width = 64 << stage;
            for b in 0..nb {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let cout = width * expansion;
                let out_hw = hw / stride;
                if bottleneck {
                    push(
                        &mut layers,
                        geom("1x1", cin, hw, width, 1, 1)?,
                        stage,
                        "conv",
                    );
                    push(
                        &mut layers,
                        geom("3x3", width, hw, width, 3, stride)?,
                        stage,
                        "conv",
                    );
                    push(
                        &mut layers,
                        geom("1x1", width, out_hw, cout, 1, 1)?,
                        stage,
                        "conv",
                    );
                } else {
                    push(
                        &mut layers,
                        geom("3x3", cin, hw, width, 3, stride)?,
                        stage,
                        "conv",
                    );
                    push(
                        &mut layers,
                        geom("3x3", width, out_hw, cout, 3, 1)?,
                        stage,
                        "conv",
                    );
                }
                if stride != 1 || cin != cout {
                    push(
                        &mut layers,
                        geom("short", cin, hw, cout, 1, stride)?,
                        stage,
                        "short",
                    );
                }
                cin = cout;
                hw = out_hw;
            }
        }
        layers.push(CostLayer {
            name: "fc".into(),
            geom: dense(cin, 10)?,
            module: 4,
        });
        Ok(CnnModel {
            name: format!("resnet{depth}"),
            layers,
            classes: 10,
            k: 3,
        })
    }

    /// One of our networks from its blocks (their geometry and modules).
    pub fn from_blocks(name: &str, blocks: &[Block], classes: usize, k: usize) -> Self {
        let layers = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| CostLayer {
                name: match b.kind {
                    Weighted::Conv => format!("conv{}", i + 1),
                    Weighted::Dense => format!("fc{}", i + 1),
                },
                geom: b.geom.clone(),
                module: b.module,
            })
            .collect();
        CnnModel {
            name: name.into(),
            layers,
            classes,
            k,
        }
    }

    /// BP: every weighted layer but the first propagates its error to its input
    /// through its transposed weights.
    pub fn bp(&self) -> Cost {
        self.layers
            .iter()
            .skip(1)
            .map(|l| {
                let g = &l.geom;
                let weights = (g.out_c * (g.in_c / g.groups) * g.k * g.k) as f64;
                Cost {
                    weight_bits: weights * REAL_BITS,
                    error_words: (l.out_len() + g.in_c * g.in_h * g.in_w) as f64,
                    macs: weights * (g.out_h * g.out_w) as f64,
                }
            })
            .fold(Cost::default(), Cost::plus)
    }

    /// The original DFA: one dense real classes × n_i matrix per hidden layer.
    pub fn dfa(&self) -> Cost {
        let hidden = &self.layers[..self.layers.len() - 1];
        hidden
            .iter()
            .map(|l| {
                let n = (l.out_len() * self.classes) as f64;
                Cost {
                    weight_bits: n * REAL_BITS,
                    error_words: (self.classes + l.out_len()) as f64,
                    macs: n,
                }
            })
            .fold(Cost::default(), Cost::plus)
    }

    /// The revised DFA's paths (source layer, target layer), in the trainer's order.
    pub fn revised_paths(&self) -> Vec<(usize, usize)> {
        let n = self.layers.len();
        let last_of = |m: usize| (0..n).rev().find(|&i| self.layers[i].module == m);
        let mut paths = Vec::new();
        let modules = self.layers[n - 1].module;
        for m in 0..=modules {
            let Some(src) = last_of(m) else { continue };
            for t in 0..src {
                if self.layers[t].module == m {
                    paths.push((src, t));
                }
            }
            if m > 0 {
                if let Some(prev) = (0..m).rev().find_map(last_of) {
                    paths.push((src, prev));
                }
            }
        }
        paths
    }

    /// The revised DFA with G groups and dense-path sparsity s.
    pub fn revised(&self, groups: usize, sparsity: f64) -> Result<Cost, GoldenError> {
        let dense_src = self.layers.len() - 1;
        let mut total = Cost::default();
        for (src, tgt) in self.revised_paths() {
            let t = &self.layers[tgt];
            let (ct, ht, wt) = t.out_shape();
            if src == dense_src {
                let kept = (1.0 - sparsity) * (t.out_len() * self.classes) as f64;
                total = total.plus(Cost {
                    weight_bits: kept,
                    error_words: (self.classes + t.out_len()) as f64,
                    macs: kept,
                });
                continue;
            }
            let (cs, hs, ws) = self.layers[src].out_shape();
            if cs % groups != 0 || ct % groups != 0 {
                return Err(GoldenError::out_of_range(
                    "groups",
                    groups,
                    format!(
                        "a divisor of both channel counts of the path {} -> {} ({cs} and {ct})",
                        self.layers[src].name, t.name
                    ),
                ));
            }
            let (d2_w, d2_macs, c1) = if groups > 1 {
                let w = (ct * cs / groups) as f64;
                (w, w * (hs * ws) as f64, ct)
            } else {
                (0.0, 0.0, cs)
            };
            let d1_w = (ct * (c1 / groups) * self.k * self.k) as f64;
            total = total.plus(Cost {
                weight_bits: d2_w + d1_w,
                error_words: (cs * hs * ws + t.out_len()) as f64,
                macs: d2_macs + d1_w * (ht * wt) as f64,
            });
        }
        Ok(total)
    }

    /// The rows: BP, DFA, revised at each of `groups`, HDFA at each ratio × group.
    pub fn rows(
        &self,
        groups: &[usize],
        ratios: &[f64],
        sparsity: f64,
    ) -> Result<Vec<CostRow>, GoldenError> {
        let row = |method, groups, bp_ratio, sparsity, cost: Cost| CostRow {
            network: self.name.clone(),
            method,
            groups,
            bp_ratio,
            sparsity,
            bytes: cost.bytes(),
            ops: cost.ops(),
            per: Per::Sample,
            cost,
        };
        let bp = self.bp();
        let mut rows = vec![
            row(Method::Bp, None, None, None, bp),
            row(Method::Dfa, None, None, None, self.dfa()),
        ];
        let s = (sparsity > 0.0).then_some(sparsity);
        let mut revised = Vec::new();
        for &g in groups {
            let r = self.revised(g, sparsity)?;
            rows.push(row(Method::Revised, Some(g), None, s, r));
            revised.push((g, r));
        }
        for &p in ratios {
            for &(g, r) in &revised {
                rows.push(row(Method::Hdfa, Some(g), Some(p), s, Cost::mix(bp, r, p)));
            }
        }
        Ok(rows)
    }
}

/// A recurrent language model's shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnModel {
    /// Network name.
    pub name: String,
    /// Gate blocks of the cell: 1 (RNN), 4 (LSTM), 3 (GRU).
    pub gates: usize,
    /// Embedding width E.
    pub embed: usize,
    /// Hidden width H.
    pub hidden: usize,
    /// Vocabulary V.
    pub vocab: usize,
    /// Time steps T per mini-batch.
    pub steps: usize,
    /// Streams B per mini-batch.
    pub batch: usize,
}

impl RnnModel {
    /// The paper's RNN (`rnn`, `lstm`, `gru`): 200 embedding, 200 hidden, 35 steps,
    /// batch 20, vocabulary 33,278 (WikiText-2).
    pub fn paper(cell: &str) -> Result<Self, GoldenError> {
        let gates = Self::gates_of(cell)?;
        Ok(RnnModel {
            name: cell.into(),
            gates,
            embed: 200,
            hidden: 200,
            vocab: 33_278,
            steps: 35,
            batch: 20,
        })
    }

    /// The gate blocks of a cell name.
    pub fn gates_of(cell: &str) -> Result<usize, GoldenError> {
        match cell {
            "rnn" => Ok(1),
            "lstm" => Ok(4),
            "gru" => Ok(3),
            c => Err(GoldenError::out_of_range("cell", c, "rnn, lstm or gru")),
        }
    }

    fn tb(&self) -> (f64, f64) {
        (self.steps as f64, self.batch as f64)
    }

    /// The input path into the embedding (every method): W_xᵀ (E × gH, real) per step.
    fn input_path(&self) -> Cost {
        let (t, b) = self.tb();
        let gh = (self.gates * self.hidden) as f64;
        let w = gh * self.embed as f64;
        Cost {
            weight_bits: t * w * REAL_BITS,
            error_words: t * b * (gh + self.embed as f64),
            macs: t * b * w,
        }
    }

    /// BPTT: decoder W_dᵀ, recurrent W_hᵀ and input W_xᵀ at every step.
    pub fn bp(&self) -> Cost {
        let (t, b) = self.tb();
        let (h, v) = (self.hidden as f64, self.vocab as f64);
        let gh = self.gates as f64 * h;
        let w = v * h + gh * h;
        Cost {
            weight_bits: t * w * REAL_BITS,
            error_words: t * b * (v + h + gh + h),
            macs: t * b * w,
        }
        .plus(self.input_path())
    }

    /// The original DFA: one real H × V block per (output step, hidden step) pair.
    pub fn dfa(&self) -> Cost {
        let (t, b) = self.tb();
        let blocks = t * t * (self.hidden * self.vocab) as f64;
        Cost {
            weight_bits: blocks * REAL_BITS,
            error_words: b * t * (self.vocab + self.hidden) as f64,
            macs: b * blocks,
        }
        .plus(self.input_path())
    }

    /// The revised DFA at sparsity s: S^fc per step, then S^rnn's T(T+1)/2 blocks.
    pub fn revised(&self, sparsity: f64) -> Cost {
        let (t, b) = self.tb();
        let keep = 1.0 - sparsity;
        let (h, v) = (self.hidden as f64, self.vocab as f64);
        let fc = t * keep * h * v;
        let tri = t * (t + 1.0) / 2.0 * keep * h * h;
        Cost {
            weight_bits: fc + tri,
            // e_L in, e^rnn out; e^rnn in, the hidden errors out.
            error_words: b * t * (v + h + h + h),
            macs: b * (fc + tri),
        }
        .plus(self.input_path())
    }

    /// The rows: BPTT, DFA, revised at each sparsity, HDFA at each ratio × sparsity.
    pub fn rows(&self, ratios: &[f64], sparsities: &[f64]) -> Vec<CostRow> {
        let row = |method, bp_ratio, sparsity, cost: Cost| CostRow {
            network: self.name.clone(),
            method,
            groups: None,
            bp_ratio,
            sparsity,
            bytes: cost.bytes(),
            ops: cost.ops(),
            per: Per::Batch,
            cost,
        };
        let bp = self.bp();
        let mut rows = vec![
            row(Method::Bp, None, None, bp),
            row(Method::Dfa, None, None, self.dfa()),
        ];
        for &s in sparsities {
            rows.push(row(Method::Revised, None, Some(s), self.revised(s)));
        }
        for &p in ratios {
            for &s in sparsities {
                rows.push(row(
                    Method::Hdfa,
                    Some(p),
                    Some(s),
                    Cost::mix(bp, self.revised(s), p),
                ));
            }
        }
        rows
    }
}

/// A table of rows as aligned text: method, G, p, s, MB, GOP, and each against BP.
pub fn table(rows: &[CostRow]) -> String {
    let mut s = String::new();
    let Some(first) = rows.first() else {
        return s;
    };
    let per = match first.per {
        Per::Sample => "per sample",
        Per::Batch => "per mini-batch",
    };
    let bp = rows.iter().find(|r| r.method == Method::Bp).map(|r| r.cost);
    let _ = writeln!(s, "{} ({per})", first.network);
    let _ = writeln!(
        s,
        "  {:<8} {:>3} {:>5} {:>5} {:>14} {:>12} {:>12} {:>11} {:>9} {:>9}",
        "method", "G", "p", "s", "MB", "weight MB", "error MB", "GOP", "MB/BP", "GOP/BP"
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for r in rows {
        let c = r.cost;
        let (mb_r, op_r) = match bp {
            Some(b) => (
                format!("{:.3}", c.bytes() / b.bytes()),
                format!("{:.3}", c.ops() / b.ops()),
            ),
            None => ("-".into(), "-".into()),
        };
        let method = match r.method {
            Method::Bp => "bp",
            Method::Dfa => "dfa",
            Method::Revised => "revised",
            Method::Hdfa => "hdfa",
        };
        let _ = writeln!(
            s,
            "  {:<8} {:>3} {:>5} {:>5} {:>14} {:>12} {:>12} {:>11} {:>9} {:>9}",
            method,
            opt(r.groups.map(|g| g.to_string())),
            opt(r.bp_ratio.map(|p| format!("{p}"))),
            opt(r.sparsity.map(|p| format!("{p}"))),
            sig(c.bytes() / MB),
            sig(c.weight_bits / 8.0 / MB),
            sig(c.error_words * REAL_BITS / 8.0 / MB),
            sig(c.ops() / GOP),
            mb_r,
            op_r
        );
    }
    s
}

/// `v` with four significant digits (fixed notation down to 10^-4, then scientific).
pub fn sig(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if mag < -4 {
        return format!("{v:.3e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Traffic our units read for one pass of one path: input-stream error words, error
/// words read from the unit's buffers, and weight bits read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitTraffic {
    /// Error words taken from the input stream.
    pub stream_words: u64,
    /// Error words read from the unit's buffers.
    pub error_reads: u64,
    /// Weight bits read.
    pub weight_bits: u64,
}

/// In-range taps of a stride-1 conv `g` along one axis of length n: Σ over the k taps
/// of the outputs whose input index y + tap·d − pad falls in 0..n.
fn in_range(n: usize, k: usize, dil: usize, pad: usize) -> u64 {
    (0..k)
        .map(|t| {
            let off = (t * dil) as i64 - pad as i64;
            (n as i64 - off.abs()).max(0) as u64
        })
        .sum()
}

/// The dce's traffic for one pass of conv path `p` on P = `lanes` lanes:
/// - stream: the source map once, C_s·H_s·W_s words (the mask words are not errors);
/// - error reads: one buffer read per in-range tap of D2 (1×1 at the source size:
///   C_t·H_s·W_s·C_s/G) and of D1 (at the target size; a padding tap reads nothing),
///   counted per output channel;
/// - weight bits: one P-bit weight word per compute cycle of each block of P output
///   channels, padding taps included (⌈C_t/P⌉·P·(H_s·W_s·C_s/G + H·W·k²·C_1/G)); a
///   path whose signs are generated (`gen`) reads none.
pub fn dce_path_traffic<V>(p: &BackPath<V>, lanes: usize) -> Option<UnitTraffic> {
    let (g1, _) = &p.d1;
    if g1.k == 1 && g1.in_h == 1 && p.d2.is_none() {
        return None; // a dense path: the bsbu's
    }
    let (cs, hs, ws) = match &p.d2 {
        Some((g2, _)) => (g2.in_c, g2.in_h, g2.in_w),
        None => (g1.in_c, g1.in_h / p.up, g1.in_w / p.up),
    };
    let ct = g1.out_c;
    let blocks = ct.div_ceil(lanes) as u64 * lanes as u64;
    let (mut reads, mut cycles) = (0u64, 0u64);
    if let Some((g2, _)) = &p.d2 {
        let per_out = (hs * ws * (cs / g2.groups)) as u64;
        reads += ct as u64 * per_out;
        cycles += per_out;
    }
    let taps = in_range(g1.in_h, g1.k, g1.dil, g1.pad) * in_range(g1.in_w, g1.k, g1.dil, g1.pad);
    let c1 = (g1.in_c / g1.groups) as u64;
    reads += ct as u64 * c1 * taps;
    cycles += (g1.out_h * g1.out_w * g1.k * g1.k) as u64 * c1;
    Some(UnitTraffic {
        stream_words: (cs * hs * ws) as u64,
        error_reads: reads,
        weight_bits: if p.gen.is_some() { 0 } else { blocks * cycles },
    })
}

/// The bsbu's traffic for one pass of dense path `p`'s rows `rows` (one tile of at
/// most [`crate::params::MAX_ROWS`] rows): the stream carries e_L (the columns) and
/// one f' word per row; a stored matrix reads one entry word of
/// [`crate::bsbu::ENTRY_BITS`] bits and one e_L word per nonzero, and one of each for
/// an empty row's marker; a generated matrix (`dense_gen`) reads no weight bit and
/// one e_L word per entry, kept or masked, because its lanes walk every column.
pub fn bsbu_tile_traffic(p: &BackPath<i16>, rows: Range<usize>) -> Option<UnitTraffic> {
    let (g, BackWeight::Binary(_, _, unit)) = &p.d1 else {
        return None;
    };
    if p.d2.is_some() || g.k != 1 || g.in_h != 1 {
        return None;
    }
    let cols = g.in_c;
    let n = rows.len() as u64;
    let stream_words = n + cols as u64;
    if p.dense_gen.is_some() {
        return Some(UnitTraffic {
            stream_words,
            error_reads: n * cols as u64,
            weight_bits: 0,
        });
    }
    let entries: u64 = rows
        .map(|r| {
            let nnz = unit[r * cols..(r + 1) * cols]
                .iter()
                .filter(|&&u| u != 0)
                .count();
            nnz.max(1) as u64
        })
        .sum();
    Some(UnitTraffic {
        stream_words,
        error_reads: entries,
        weight_bits: entries * crate::bsbu::ENTRY_BITS as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdfa_is_the_mix_of_bp_and_revised() {
        let m = CnnModel::vgg16().unwrap();
        let rows = m.rows(&[4], &[0.2], 0.0).unwrap();
        let get = |meth| rows.iter().find(|r| r.method == meth).unwrap().bytes;
        let want = 0.2 * get(Method::Bp) + 0.8 * get(Method::Revised);
        assert!((get(Method::Hdfa) - want).abs() < 1e-6 * want);
    }

    #[test]
    fn vgg16_has_13_convs_and_its_bp_macs_equal_the_forward_macs_but_the_first() {
        let m = CnnModel::vgg16().unwrap();
        assert_eq!(m.layers.len(), 14);
        // The forward MACs of VGG-16 at 32×32, by hand per layer: h·w·cin·cout·9.
        let hand: f64 = [
            (32, 64, 64),
            (16, 64, 128),
            (16, 128, 128),
            (8, 128, 256),
            (8, 256, 256),
            (8, 256, 256),
            (4, 256, 512),
            (4, 512, 512),
            (4, 512, 512),
            (2, 512, 512),
            (2, 512, 512),
            (2, 512, 512),
        ]
        .iter()
        .map(|&(hw, ci, co)| (hw * hw * ci * co * 9) as f64)
        .sum::<f64>()
            + 5120.0;
        assert_eq!(m.bp().macs, hand);
    }

    #[test]
    fn dfa_over_revised_weights_follows_eq_13_on_one_path() {
        // One path into a w×h×ich layer from och channels at G = 1: the original
        // DFA's class·w·h·ich real weights against k²·och·ich binary ones.
        let m = CnnModel {
            name: "t".into(),
            layers: vec![
                CostLayer {
                    name: "a".into(),
                    geom: geom("a", 3, 16, 8, 3, 1).unwrap(),
                    module: 0,
                },
                CostLayer {
                    name: "b".into(),
                    geom: geom("b", 8, 16, 12, 3, 1).unwrap(),
                    module: 0,
                },
                CostLayer {
                    name: "fc".into(),
                    geom: dense(12 * 256, 10).unwrap(),
                    module: 1,
                },
            ],
            classes: 10,
            k: 3,
        };
        assert_eq!(m.revised_paths(), vec![(1, 0), (2, 1)]);
        let d = m.dfa();
        let r = m.revised(1, 0.0).unwrap();
        // Weight counts: DFA 10·256·(8 + 12); revised 9·12·8 (conv, 1 bit) + 10·256·12.
        assert_eq!(d.weight_bits, 10.0 * 256.0 * 20.0 * 32.0);
        assert_eq!(r.weight_bits, 9.0 * 12.0 * 8.0 + 10.0 * 256.0 * 12.0);
        // eq. 13 for the conv path alone: (w·h)/(k·k)·(class/och).
        // The model's own counts: DFA's weights into layer a over the conv path's.
        let dense_path = 10.0 * 256.0 * 12.0;
        let ratio: f64 = (d.weight_bits / 32.0 - dense_path) / (r.weight_bits - dense_path);
        assert!((ratio - 256.0 / 9.0 * 10.0 / 12.0).abs() < 1e-12, "{ratio}");
        assert!(m
            .revised(5, 0.0)
            .unwrap_err()
            .to_string()
            .contains("groups = 5"));
    }

    #[test]
    fn resnets_have_their_layer_counts() {
        // ResNet-18: stem + 16 convs + 3 shortcuts + fc; ResNet-50: stem + 48 + 4 + fc.
        assert_eq!(CnnModel::resnet(18).unwrap().layers.len(), 1 + 16 + 3 + 1);
        assert_eq!(CnnModel::resnet(50).unwrap().layers.len(), 1 + 48 + 4 + 1);
        assert!(CnnModel::resnet(34).is_err());
    }

    #[test]
    fn rnn_triangle_keeps_t_t_plus_1_over_2_blocks() {
        let m = RnnModel::paper("gru").unwrap();
        let (t, h) = (35.0, 200.0);
        let r0 = m.revised(0.0);
        let r9 = m.revised(0.9);
        let input = m.input_path();
        // Weight bits beyond the input path scale with 1 − s.
        let a = r0.weight_bits - input.weight_bits;
        let b = r9.weight_bits - input.weight_bits;
        assert!((b - 0.1 * a).abs() < 1e-6 * a);
        assert_eq!(a, t * h * 33_278.0 + t * (t + 1.0) / 2.0 * h * h);
        assert!(RnnModel::paper("tcn").is_err());
    }

    #[test]
    fn in_range_counts_taps_inside_the_map() {
        // By enumeration: outputs y in 0..n, taps t with 0 <= y + t·d − pad < n.
        for (n, k, d) in [(8, 3, 1), (8, 3, 2), (7, 3, 5), (4, 3, 4), (28, 3, 3)] {
            let pad = d * (k - 1) / 2;
            let mut c = 0;
            for y in 0..n as i64 {
                for t in 0..k as i64 {
                    let i = y + t * d as i64 - pad as i64;
                    c += (0..n as i64).contains(&i) as u64;
                }
            }
            assert_eq!(in_range(n, k, d, pad), c, "n {n} k {k} d {d}");
        }
    }
}
