//! The dilated-conv error-propagation engine (DCE) as the golden model sees it:
//! paper eq. (7), e_i = (D1 ⊗^g up(shuffle(D2 ⊗^g e_L))) ⊙ f'(p), for one backward
//! path: inside a module (source and target maps of one size), or across pools, where
//! the source map is smaller by an up-sampling factor `up` of 2 or 4 and `up` repeats
//! each source word over its up × up block of the target (nearest neighbour, as the
//! trainer does). D2 is a 1×1 conv, so it runs at the source size. The engine's D1
//! reads each source word for every target pixel it covers and stores no up-sampled
//! copy; [`apply`] up-samples explicitly, as the trainer does.
//!
//! Main types:
//! - [`DceLayer`]: the run-time parameters of one pass (channels, target map,
//!   up-sampling, k, d, G and the two scaling shifts), validated against the ranges
//!   below.
//! - [`DceSizes`]: the generation-time buffer sizes and lane count P of an engine;
//!   [`DceSizes::check`] says whether a layer fits.
//! - [`DceWeights`]: the binary backward weights D2 and D1 as sign bits in the
//!   layout `[out_c][in_c / G][k][k]` ([`crate::geom::ConvGeom`]).
//! - [`apply`]: the expected e_i, from the taps of [`crate::geom::ConvGeom`],
//!   [`crate::geom::shuffle_perm`] and [`crate::format::narrow`], the same definitions
//!   the trainer's cdfa path uses (the trainer checks that its paths equal this model,
//!   and every captured training vector is checked against it).
//! - [`DceTraffic`]: the golden model's memory traffic for a layer.
//!
//! ## Stream layout of one pass
//! The input stream carries the C_s·(H/up)·(W/up) source error words in (c, y, x)
//! order, then the ReLU mask of the C_t·H·W outputs packed [`MASK_BITS`] to a word,
//! output o in bit o mod 16 of word o / 16 (1 = p > 0, the error passes). The output
//! stream carries the C_t·H·W words of e_i in (c, y, x) order.

use crate::format::{narrow, ERROR};
use crate::geom::{permute_channels, shuffle_perm, upsample, ConvGeom};
use crate::params::MAX_SHIFT;
use crate::rng::Rng;
use crate::GoldenError;

/// Most parallel output channels P.
pub const DCE_MAX_LANES: usize = 8;
/// Largest map side.
pub const MAX_MAP: usize = 32;
/// Kernel sizes of D1.
pub const KERNELS: [usize; 3] = [1, 3, 5];
/// Largest dilation of D1. A path's dilation follows its receptive field, which
/// grows across pools: fashion-deep's path from conv 3 into conv 1 needs 5. The
/// hardware only stores the tap offsets, so the limit is a range check, not a size.
pub const MAX_DIL: usize = 8;
/// Channel group counts G.
pub const GROUPS: [usize; 4] = [1, 2, 4, 8];
/// Up-sampling factors from the source map to the target map (1: same size; 2 and 4:
/// a path across one or two 2×2 pools).
pub const UPS: [usize; 3] = [1, 2, 4];
/// Most channels on either side (the channel tables have this many entries).
pub const MAX_CHANNELS: usize = 256;
/// Address bits of every buffer, table and weight memory.
pub const ADDR_BITS: usize = 16;
/// Most words in one buffer or weight memory.
pub const MAX_WORDS: usize = 1 << ADDR_BITS;
/// Mask bits per input-stream word.
pub const MASK_BITS: usize = 16;
/// Largest fan-in of one output: the 32-bit accumulator must hold
/// fan_in · 2^15 without wrapping.
pub const MAX_FAN_IN: usize = (1 << 16) - 1;

/// Run-time parameters of one pass of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DceLayer {
    /// Source channels C_s (channels of e_L).
    pub cs: usize,
    /// Target channels C_t (channels of e_i).
    pub ct: usize,
    /// Target map height (the source map's is `h / up`).
    pub h: usize,
    /// Target map width (the source map's is `w / up`).
    pub w: usize,
    /// Up-sampling factor from the source map to the target map (one of [`UPS`]).
    pub up: usize,
    /// Kernel size of D1.
    pub k: usize,
    /// Dilation of D1 (taps d apart; "same" padding d(k−1)/2).
    pub dil: usize,
    /// Channel groups G of D2 and D1 (G = 1: no D2 and no shuffle).
    pub groups: usize,
    /// Scaling shift after D2.
    pub shift2: u32,
    /// Scaling shift after D1.
    pub shift1: u32,
}

fn oor(name: &'static str, v: impl ToString, range: impl ToString) -> GoldenError {
    GoldenError::out_of_range(name, v, range)
}

impl DceLayer {
    /// A small valid layer to start from (`DceLayer { h: 7, ..DceLayer::EXAMPLE }`):
    /// 4 → 8 channels, a 3×5 map, k 3, d 2, G 2, shifts 1 and 3.
    pub const EXAMPLE: DceLayer = DceLayer {
        cs: 4,
        ct: 8,
        h: 3,
        w: 5,
        up: 1,
        k: 3,
        dil: 2,
        groups: 2,
        shift2: 1,
        shift1: 3,
    };

    /// The layer, if every field is in range (each error names the field, its value
    /// and the valid range).
    pub fn validate(self) -> Result<Self, GoldenError> {
        if !KERNELS.contains(&self.k) {
            return Err(oor("k", self.k, "one of 1, 3, 5"));
        }
        if !(1..=MAX_DIL).contains(&self.dil) {
            return Err(oor("d", self.dil, format!("1..={MAX_DIL}")));
        }
        if !GROUPS.contains(&self.groups) {
            return Err(oor("groups", self.groups, "one of 1, 2, 4, 8"));
        }
        if !(1..=MAX_MAP).contains(&self.h) {
            return Err(oor("height", self.h, format!("1..={MAX_MAP}")));
        }
        if !(1..=MAX_MAP).contains(&self.w) {
            return Err(oor("width", self.w, format!("1..={MAX_MAP}")));
        }
        if !UPS.contains(&self.up) {
            return Err(oor("up", self.up, "one of 1, 2, 4"));
        }
        for (name, side) in [("height", self.h), ("width", self.w)] {
            if side % self.up != 0 {
                return Err(oor(
                    name,
                    side,
                    format!("a multiple of the up-sampling factor {}", self.up),
                ));
            }
        }
        for (name, c) in [("source channels", self.cs), ("target channels", self.ct)] {
            if !(1..=MAX_CHANNELS).contains(&c) {
                return Err(oor(name, c, format!("1..={MAX_CHANNELS}")));
            }
            if c % self.groups != 0 {
                return Err(oor(
                    "groups",
                    self.groups,
                    format!("a divisor of the {name} {c}"),
                ));
            }
        }
        for (name, s) in [("shift2", self.shift2), ("shift1", self.shift1)] {
            if s > MAX_SHIFT {
                return Err(oor(name, s, format!("0..={MAX_SHIFT}")));
            }
        }
        if self.fan_in1() > MAX_FAN_IN {
            return Err(oor(
                "D1 fan-in",
                self.fan_in1(),
                format!("1..={MAX_FAN_IN}"),
            ));
        }
        Ok(self)
    }

    /// The engine runs D2 and the shuffle (G > 1).
    pub fn has_d2(&self) -> bool {
        self.groups > 1
    }
    /// Input channels of D1.
    pub fn c1(&self) -> usize {
        if self.has_d2() {
            self.ct
        } else {
            self.cs
        }
    }
    /// D1 input channels per group.
    pub fn icg1(&self) -> usize {
        self.c1() / self.groups
    }
    /// D2 input channels per group.
    pub fn icg2(&self) -> usize {
        self.cs / self.groups
    }
    /// Output channels per group (D1 and D2).
    pub fn ocg(&self) -> usize {
        self.ct / self.groups
    }
    /// Taps of D1 (k²).
    pub fn taps(&self) -> usize {
        self.k * self.k
    }
    /// D1 fan-in.
    pub fn fan_in1(&self) -> usize {
        self.icg1() * self.taps()
    }
    /// "Same" padding of D1.
    pub fn pad(&self) -> usize {
        self.dil * (self.k - 1) / 2
    }
    /// Pixels per target map.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Source map height.
    pub fn hs(&self) -> usize {
        self.h / self.up
    }
    /// Source map width.
    pub fn ws(&self) -> usize {
        self.w / self.up
    }
    /// Pixels per source map (and per D2 result map).
    pub fn hws(&self) -> usize {
        self.hs() * self.ws()
    }
    /// Error words at the input.
    pub fn in_words(&self) -> usize {
        self.cs * self.hws()
    }
    /// Mask words at the input.
    pub fn mask_words(&self) -> usize {
        (self.ct * self.hw()).div_ceil(MASK_BITS)
    }
    /// Words of one pass's input stream.
    pub fn stream_words(&self) -> usize {
        self.in_words() + self.mask_words()
    }
    /// Output words.
    pub fn out_words(&self) -> usize {
        self.ct * self.hw()
    }
    /// Geometry of D2 (when G > 1).
    pub fn d2_geom(&self) -> Option<ConvGeom> {
        self.has_d2().then(|| {
            ConvGeom::new(
                self.cs,
                self.hs(),
                self.ws(),
                self.ct,
                1,
                1,
                0,
                1,
                self.groups,
            )
            .expect("validated")
        })
    }
    /// Geometry of D1.
    pub fn d1_geom(&self) -> ConvGeom {
        ConvGeom::new(
            self.c1(),
            self.h,
            self.w,
            self.ct,
            self.k,
            1,
            self.pad(),
            self.dil,
            self.groups,
        )
        .expect("validated: same padding")
    }
    /// Nonzero taps times outputs: D2's ct·(source hw)·icg2 plus D1's ct·hw·icg1·k²,
    /// padding taps included (the engine spends a cycle on them).
    pub fn work(&self) -> usize {
        let d2 = if self.has_d2() { self.icg2() } else { 0 };
        self.ct * self.hws() * d2 + self.out_words() * self.fan_in1()
    }
    /// The layer with the default shifts for binary weights, ⌈log2 √fan_in⌉ after each
    /// stage ([`crate::format::fan_in_shift`], no extra shift), validated.
    pub fn with_default_shifts(self) -> Result<Self, GoldenError> {
        let l = DceLayer {
            shift2: 0,
            shift1: 0,
            ..self
        }
        .validate()?;
        Ok(DceLayer {
            shift2: crate::format::fan_in_shift(l.icg2()),
            shift1: crate::format::fan_in_shift(l.fan_in1()),
            ..l
        })
    }
}

/// Generation-time sizes of an engine: lanes and buffer depths (words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DceSizes {
    /// Parallel output channels P.
    pub lanes: usize,
    /// Source-error buffer (C_s·(H/up)·(W/up)).
    pub ebuf: usize,
    /// Each lane's bank of the D2 result ((C_t / P)·(H/up)·(W/up)); 0: the engine
    /// has no D2.
    pub mbuf: usize,
    /// Largest target map (H·W); each lane's output bank holds two maps (ping-pong).
    pub map: usize,
    /// Mask buffer words.
    pub mask: usize,
    /// D2 weight words (P sign bits each).
    pub w2: usize,
    /// D1 weight words (P sign bits each).
    pub w1: usize,
    /// Most taps (k²).
    pub taps: usize,
    /// Most channels on either side (the channel table holds twice this many entries:
    /// D1's input channels, then D2's).
    pub chans: usize,
}

/// The buffer fields of [`DceSizes`] as errors name them, in the order of
/// [`DceSizes::fields`].
const FIELD_NAMES: [&str; 8] = [
    "map (H*W words)",
    "source words (C_s*H/up*W/up)",
    "D2 bank words (C_t/P*H/up*W/up)",
    "mask words",
    "D2 weight words",
    "D1 weight words",
    "taps (k*k)",
    "channels",
];

/// The largest value of each field (the address space, the map and channel limits).
const FIELD_LIMITS: [usize; 8] = [
    MAX_MAP * MAX_MAP,
    MAX_WORDS,
    MAX_WORDS,
    MAX_WORDS,
    MAX_WORDS,
    MAX_WORDS,
    MAX_WORDS,
    MAX_CHANNELS,
];

/// The keys of [`DceSizes::text`] (the CLI's `--sizes`), in the order of
/// [`DceSizes::fields`].
pub const SIZE_KEYS: [&str; 8] = ["map", "ebuf", "mbuf", "mask", "w2", "w1", "taps", "chans"];

impl DceSizes {
    /// The buffer depths as `map=64,ebuf=1024,...` (every key of [`SIZE_KEYS`] once;
    /// the lanes apart): the text `hdfa cosim --unit dce --sizes` takes.
    pub fn text(&self) -> String {
        SIZE_KEYS
            .iter()
            .zip(self.fields())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parse [`DceSizes::text`] for an engine of `lanes` lanes, and validate it.
    pub fn parse(lanes: usize, text: &str) -> Result<Self, GoldenError> {
        let mut f: [Option<usize>; 8] = [None; 8];
        let keys = SIZE_KEYS.join(", ");
        for item in text.split(',') {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| oor("sizes item", item, format!("KEY=WORDS, KEY one of {keys}")))?;
            let i = SIZE_KEYS
                .iter()
                .position(|&x| x == k.trim())
                .ok_or_else(|| oor("sizes key", k, format!("one of {keys}")))?;
            let v: usize = v
                .trim()
                .parse()
                .map_err(|_| oor(SIZE_KEYS[i], v, "a word count 0..=65536"))?;
            if f[i].replace(v).is_some() {
                return Err(oor("sizes key", k, "each key once"));
            }
        }
        let mut out = [0usize; 8];
        for (i, v) in f.iter().enumerate() {
            out[i] = v.ok_or_else(|| oor("sizes", text, format!("every key of {keys}")))?;
        }
        let s = Self::from_fields(lanes, out);
        s.validate()?;
        Ok(s)
    }

    /// The buffer fields, in the order of [`FIELD_NAMES`].
    fn fields(&self) -> [usize; 8] {
        [
            self.map, self.ebuf, self.mbuf, self.mask, self.w2, self.w1, self.taps, self.chans,
        ]
    }

    fn from_fields(lanes: usize, f: [usize; 8]) -> Self {
        let [map, ebuf, mbuf, mask, w2, w1, taps, chans] = f;
        DceSizes {
            lanes,
            ebuf,
            mbuf,
            map,
            mask,
            w2,
            w1,
            taps,
            chans,
        }
    }

    /// What layer `l` needs of an engine with `lanes` lanes (0 for an absent D2).
    fn needs(lanes: usize, l: &DceLayer) -> Result<[usize; 8], GoldenError> {
        if l.ocg() % lanes != 0 {
            return Err(oor(
                "lanes",
                lanes,
                format!(
                    "a divisor of the {} output channels per group (C_t {} / G {})",
                    l.ocg(),
                    l.ct,
                    l.groups
                ),
            ));
        }
        let blocks = l.ct / lanes;
        let d2 = l.has_d2() as usize;
        Ok([
            l.hw(),
            l.in_words(),
            d2 * blocks * l.hws(),
            l.mask_words(),
            d2 * blocks * l.icg2(),
            blocks * l.fan_in1(),
            l.taps(),
            l.cs.max(l.c1()),
        ])
    }

    /// The smallest engine with `lanes` lanes that runs every layer in `layers`.
    pub fn fitting(lanes: usize, layers: &[DceLayer]) -> Result<Self, GoldenError> {
        if !(1..=DCE_MAX_LANES).contains(&lanes) {
            return Err(oor("lanes", lanes, format!("1..={DCE_MAX_LANES}")));
        }
        let mut f = [0usize; 8];
        for l in layers {
            for (have, need) in f.iter_mut().zip(Self::needs(lanes, l)?) {
                *have = (*have).max(need);
            }
        }
        let s = Self::from_fields(lanes, f);
        s.validate()?;
        Ok(s)
    }

    /// Lanes and every memory within their limits.
    pub fn validate(&self) -> Result<(), GoldenError> {
        if !(1..=DCE_MAX_LANES).contains(&self.lanes) {
            return Err(oor("lanes", self.lanes, format!("1..={DCE_MAX_LANES}")));
        }
        for ((name, v), lim) in FIELD_NAMES.iter().zip(self.fields()).zip(FIELD_LIMITS) {
            if v > lim {
                return Err(oor(name, v, format!("at most {lim}")));
            }
        }
        if self.w1 + self.w2 > MAX_WORDS {
            return Err(oor(
                "weight words (D2 + D1)",
                self.w1 + self.w2,
                format!("at most {MAX_WORDS}"),
            ));
        }
        Ok(())
    }

    /// Whether `l` runs on this engine; names the first buffer it overflows.
    pub fn check(&self, l: &DceLayer) -> Result<(), GoldenError> {
        let needs = Self::needs(self.lanes, l)?;
        for ((name, need), have) in FIELD_NAMES.iter().zip(needs).zip(self.fields()) {
            if need > have {
                return Err(oor(
                    name,
                    need,
                    format!("at most {have}, the size this engine was generated with"),
                ));
            }
        }
        Ok(())
    }
}

/// The binary backward weights of one path (true = −1), golden layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DceWeights {
    /// D2 signs, `[C_t][C_s / G]` (None when G = 1).
    pub d2: Option<Vec<bool>>,
    /// D1 signs, `[C_t][C_1 / G][k][k]`.
    pub d1: Vec<bool>,
    /// The seeds the signs were generated from ([`DceWeights::generated`]): the engine
    /// then regenerates them instead of storing them (None: stored signs).
    pub gen: Option<DceSeeds>,
}

/// Seeds of generated conv-path weights ([`crate::fbgen`]): output channel o of D2
/// (D1) is stream o under `d2` (`d1`), one step per weight in layout order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DceSeeds {
    /// D2's seed (unused when G = 1).
    pub d2: u32,
    /// D1's seed.
    pub d1: u32,
}

/// The signs of a conv weight of geometry `g` generated from `seed`: output channel
/// o's fan-in is stream o, unmasked.
pub fn generated_signs(g: &ConvGeom, seed: u32) -> Vec<bool> {
    (0..g.out_c)
        .flat_map(|r| crate::fbgen::row(seed, r, g.fan_in(), crate::fbgen::THRESHOLD_ONE))
        .map(|e| e.neg)
        .collect()
}

impl DceWeights {
    /// Random signs from `rng`.
    pub fn random(l: &DceLayer, rng: &mut Rng) -> Self {
        let d2 = l
            .d2_geom()
            .map(|g| (0..g.w_len()).map(|_| rng.bit()).collect());
        let d1 = (0..l.d1_geom().w_len()).map(|_| rng.bit()).collect();
        DceWeights { d2, d1, gen: None }
    }

    /// Signs regenerated from `seeds` by the feedback-weight generator.
    pub fn generated(l: &DceLayer, seeds: DceSeeds) -> Self {
        DceWeights {
            d2: l.d2_geom().map(|g| generated_signs(&g, seeds.d2)),
            d1: generated_signs(&l.d1_geom(), seeds.d1),
            gen: Some(seeds),
        }
    }

    /// Check the lengths against `l`.
    pub fn check(&self, l: &DceLayer) -> Result<(), GoldenError> {
        let want2 = l.d2_geom().map(|g| g.w_len());
        let have2 = self.d2.as_ref().map(Vec::len);
        if want2 != have2 {
            return Err(GoldenError::LengthMismatch {
                what: "D2 weights",
                expected: want2.unwrap_or(0),
                actual: have2.unwrap_or(0),
            });
        }
        if let Some(seeds) = self.gen {
            if *self != DceWeights::generated(l, seeds) {
                return Err(GoldenError::BadMatrix(format!(
                    "the weights are marked generated from seeds {seeds:?} but differ from them"
                )));
            }
        }
        let want1 = l.d1_geom().w_len();
        if self.d1.len() != want1 {
            return Err(GoldenError::LengthMismatch {
                what: "D1 weights",
                expected: want1,
                actual: self.d1.len(),
            });
        }
        Ok(())
    }
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), GoldenError> {
    if expected != actual {
        return Err(GoldenError::LengthMismatch {
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

/// A grouped binary conv: each output sums its taps' inputs with sign (true = −1),
/// exactly, then narrows once by `shift` into the error format.
fn binary_conv(g: &ConvGeom, neg: &[bool], x: &[i16], shift: u32) -> Vec<i16> {
    let mut acc = vec![0i64; g.out_len()];
    g.for_each_tap(|o, i, wi| {
        let v = x[i] as i64;
        acc[o] += if neg[wi] { -v } else { v };
    });
    acc.into_iter()
        .map(|a| narrow(a, shift, ERROR) as i16)
        .collect()
}

/// e_i = (D1 ⊗ up(shuffle(D2 ⊗ e_src))) ⊙ mask.
pub fn apply(
    l: &DceLayer,
    w: &DceWeights,
    e_src: &[i16],
    mask: &[bool],
) -> Result<Vec<i16>, GoldenError> {
    w.check(l)?;
    check_len("source errors", l.in_words(), e_src.len())?;
    check_len("ReLU mask", l.out_words(), mask.len())?;
    let mid = match (l.d2_geom(), &w.d2) {
        (Some(g2), Some(n2)) => {
            let y = binary_conv(&g2, n2, e_src, l.shift2);
            let mut z = vec![0i16; y.len()];
            permute_channels(&shuffle_perm(l.ct, l.groups), l.hws(), &y, &mut z);
            z
        }
        _ => e_src.to_vec(),
    };
    let mid = if l.up > 1 {
        let mut z = vec![0i16; l.c1() * l.hw()];
        upsample(l.c1(), l.hs(), l.ws(), l.up, &mid, &mut z);
        z
    } else {
        mid
    };
    let mut out = binary_conv(&l.d1_geom(), &w.d1, &mid, l.shift1);
    for (y, &m) in out.iter_mut().zip(mask) {
        if !m {
            *y = 0;
        }
    }
    Ok(out)
}

/// The input stream of one pass: errors, then the packed mask.
pub fn pack_stream(l: &DceLayer, e_src: &[i16], mask: &[bool]) -> Result<Vec<u16>, GoldenError> {
    check_len("source errors", l.in_words(), e_src.len())?;
    check_len("ReLU mask", l.out_words(), mask.len())?;
    let mut s: Vec<u16> = e_src.iter().map(|&e| e as u16).collect();
    for chunk in mask.chunks(MASK_BITS) {
        s.push(
            chunk
                .iter()
                .enumerate()
                .fold(0u16, |a, (i, &m)| a | ((m as u16) << i)),
        );
    }
    Ok(s)
}

/// Memory traffic of one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DceTraffic {
    /// Error words taken from the input stream.
    pub stream_words: u64,
    /// Error words read from a buffer (padding taps read nothing).
    pub error_reads: u64,
    /// Weight bits read.
    pub weight_bits: u64,
}

/// The golden model's traffic for `l` with weights `w`: one error word and one weight
/// bit per in-range tap of each output (D2, then D1; no weight bits when `w` is
/// generated), and each input word once. Across a pool
/// a D1 tap reads the source word it up-samples from: still one read per tap.
pub fn golden_traffic(l: &DceLayer, w: &DceWeights) -> DceTraffic {
    let mut t = DceTraffic {
        stream_words: l.in_words() as u64,
        ..Default::default()
    };
    let geoms = l.d2_geom().into_iter().chain(std::iter::once(l.d1_geom()));
    for g in geoms {
        g.for_each_tap(|_, _, _| t.error_reads += 1);
    }
    // Generated weights are never read from memory.
    t.weight_bits = if w.gen.is_some() { 0 } else { t.error_reads };
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedableRng;

    #[test]
    fn sizes_text_parses_back_and_bad_text_names_the_key_and_the_range() {
        let z = DceSizes::fitting(2, &[DceLayer::EXAMPLE]).unwrap();
        assert_eq!(DceSizes::parse(2, &z.text()).unwrap(), z);
        assert!(z.text().starts_with("map=") && z.text().split(',').count() == 8);
        let t = z.text();
        for (bad, want) in [
            (format!("{t},map=3"), "sizes key = map"),
            (t.replace("taps=", "tops="), "sizes key = tops"),
            (t.replace(",chans", ";chans"), "chans"),
            (t.replacen("map=", "map=x", 1), "map = x"),
            (
                t.split(',').skip(1).collect::<Vec<_>>().join(","),
                "every key",
            ),
            (t.replacen("map=", "map=9999", 1), "at most 1024"),
        ] {
            let e = DceSizes::parse(2, &bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_layers_name_the_value_and_range() {
        let ok = DceLayer {
            cs: 8,
            h: 7,
            w: 7,
            dil: 1,
            groups: 1,
            shift1: 1,
            ..DceLayer::EXAMPLE
        };
        let e = DceLayer {
            dil: 9,
            groups: 2,
            ..ok
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("d = 9") && e.contains("1..=8"), "{e}");
        for (bad, name) in [
            (DceLayer { dil: 0, ..ok }, "d = 0"),
            (DceLayer { k: 7, ..ok }, "k = 7"),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        let e = DceLayer {
            k: 4,
            groups: 2,
            ..ok
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("k = 4"), "{e}");
        let e = DceLayer {
            cs: 6,
            groups: 4,
            ..ok
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("groups = 4") && e.contains("source channels 6"),
            "{e}"
        );
        let e = DceLayer { h: 33, ..ok }.validate().unwrap_err().to_string();
        assert!(e.contains("height = 33"), "{e}");
        let e = DceLayer { up: 3, ..ok }.validate().unwrap_err().to_string();
        assert!(e.contains("up = 3") && e.contains("one of 1, 2, 4"), "{e}");
        // 7 × 7 does not split into 2 × 2 blocks.
        let e = DceLayer { up: 2, ..ok }.validate().unwrap_err().to_string();
        assert!(
            e.contains("height = 7") && e.contains("multiple of the up-sampling factor 2"),
            "{e}"
        );
        let e = DceLayer { groups: 3, ..ok }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("groups = 3"), "{e}");
        let e = DceLayer { shift2: 17, ..ok }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("shift2 = 17"), "{e}");
    }

    #[test]
    fn sizes_reject_layers_that_do_not_fit() {
        let small = DceLayer {
            cs: 8,
            h: 5,
            ..DceLayer::EXAMPLE
        }
        .validate()
        .unwrap();
        let s = DceSizes::fitting(4, &[small]).unwrap();
        s.check(&small).unwrap();
        let big = DceLayer {
            cs: 8,
            h: 7,
            w: 7,
            ..DceLayer::EXAMPLE
        }
        .validate()
        .unwrap();
        let e = s.check(&big).unwrap_err().to_string();
        assert!(
            e.contains("map (H*W words) = 49") && e.contains("at most 25"),
            "{e}"
        );
        let e = DceSizes::fitting(
            4,
            &[DceLayer {
                cs: 8,
                h: 5,
                dil: 1,
                groups: 8,
                ..DceLayer::EXAMPLE
            }
            .validate()
            .unwrap()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("lanes = 4") && e.contains("1 output channels per group"),
            "{e}"
        );
        assert!(DceSizes::fitting(9, &[small])
            .unwrap_err()
            .to_string()
            .contains("lanes = 9"));
    }

    #[test]
    fn apply_checks_lengths_and_masks() {
        let l = DceLayer {
            ct: 4,
            w: 3,
            dil: 1,
            shift1: 2,
            ..DceLayer::EXAMPLE
        }
        .validate()
        .unwrap();
        let w = DceWeights::random(&l, &mut Rng::seed_from_u64(3));
        let e = vec![1000i16; l.in_words()];
        let all = apply(&l, &w, &e, &vec![true; l.out_words()]).unwrap();
        assert!(all.iter().any(|&v| v != 0));
        let none = apply(&l, &w, &e, &vec![false; l.out_words()]).unwrap();
        assert!(none.iter().all(|&v| v == 0));
        let err = apply(&l, &w, &e[1..], &vec![true; l.out_words()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source errors") && err.contains("35") && err.contains("36"),
            "{err}"
        );
    }

    /// D2 → shuffle → D1 by hand, tap by tap, from the paper's definitions (an
    /// independent reference of the trainer's path).
    #[test]
    fn apply_equals_a_tap_by_tap_reference() {
        use crate::format::{narrow, ERROR};
        for (g, d, k, up) in [
            (1, 1, 3, 1),
            (2, 2, 3, 1),
            (4, 3, 3, 1),
            (8, 4, 3, 1),
            (2, 1, 5, 1),
            (4, 2, 1, 1),
            (1, 2, 3, 2),
            (2, 1, 3, 2),
            (4, 3, 5, 4),
            (1, 1, 1, 4),
        ] {
            let (h, w) = if up == 1 { (5, 7) } else { (3 * up, 2 * up) };
            let l = DceLayer {
                cs: 8,
                ct: 16,
                h,
                w,
                up,
                k,
                dil: d,
                groups: g,
                shift2: 2,
                shift1: 4,
            }
            .validate()
            .unwrap();
            let mut rng = Rng::seed_from_u64(g as u64 * 10 + d as u64);
            let w = DceWeights::random(&l, &mut rng);
            let e: Vec<i16> = (0..l.in_words())
                .map(|_| rng.range_i64(-30000, 30000) as i16)
                .collect();
            let mask: Vec<bool> = (0..l.out_words()).map(|_| rng.below(4) != 0).collect();
            let (h, wd, hw) = (l.h as i64, l.w as i64, l.hws());
            let mid: Vec<i16> = if let Some(n2) = &w.d2 {
                let mut y = vec![0i16; l.ct * hw];
                for oc in 0..l.ct {
                    let grp = oc / l.ocg();
                    for px in 0..hw {
                        let mut a = 0i64;
                        for i in 0..l.icg2() {
                            let v = e[(grp * l.icg2() + i) * hw + px] as i64;
                            a += if n2[oc * l.icg2() + i] { -v } else { v };
                        }
                        y[oc * hw + px] = narrow(a, l.shift2, ERROR) as i16;
                    }
                }
                // Shuffle: out channel i·G + grp = in channel grp·(C/G) + i.
                let mut z = vec![0i16; y.len()];
                let per = l.ct / g;
                for grp in 0..g {
                    for i in 0..per {
                        z[(i * g + grp) * hw..][..hw]
                            .copy_from_slice(&y[(grp * per + i) * hw..][..hw]);
                    }
                }
                z
            } else {
                e.clone()
            };
            let pad = l.pad() as i64;
            let mut want = vec![0i16; l.out_words()];
            for oc in 0..l.ct {
                let grp = oc / l.ocg();
                for y in 0..h {
                    for x in 0..wd {
                        let mut a = 0i64;
                        for i in 0..l.icg1() {
                            for ky in 0..k as i64 {
                                for kx in 0..k as i64 {
                                    let (iy, ix) =
                                        (y + ky * d as i64 - pad, x + kx * d as i64 - pad);
                                    if iy < 0 || iy >= h || ix < 0 || ix >= wd {
                                        continue;
                                    }
                                    // Nearest-neighbour up-sampling: the source
                                    // word under the target tap.
                                    let (sy, sx) = (iy as usize / up, ix as usize / up);
                                    let v = mid[((grp * l.icg1() + i) * l.hs() + sy) * l.ws() + sx]
                                        as i64;
                                    let wi =
                                        ((oc * l.icg1() + i) * k + ky as usize) * k + kx as usize;
                                    a += if w.d1[wi] { -v } else { v };
                                }
                            }
                        }
                        let o = (oc * l.h + y as usize) * l.w + x as usize;
                        want[o] = if mask[o] {
                            narrow(a, l.shift1, ERROR) as i16
                        } else {
                            0
                        };
                    }
                }
            }
            assert_eq!(
                apply(&l, &w, &e, &mask).unwrap(),
                want,
                "G={g} d={d} k={k} up={up}"
            );
        }
    }

    #[test]
    fn stream_packs_the_mask_lsb_first() {
        let l = DceLayer {
            cs: 1,
            ct: 1,
            w: 6,
            k: 1,
            dil: 1,
            groups: 1,
            shift2: 0,
            shift1: 0,
            ..DceLayer::EXAMPLE
        }
        .validate()
        .unwrap();
        let mut mask = vec![false; 18];
        mask[0] = true;
        mask[17] = true;
        let s = pack_stream(&l, &[5i16; 18], &mask).unwrap();
        assert_eq!(s.len(), 18 + 2);
        assert_eq!((s[18], s[19]), (1, 2));
    }
}
