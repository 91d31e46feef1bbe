//! # contract: the hardware contract of hdfa
//!
//! What the trainer (`golden`), the RTL generators (`rtl`) and the co-simulation
//! must agree on bit for bit, defined once and depending on no other hdfa crate:
//! number formats, rounding and saturation, limits, geometry, and the unit models
//! that compute every expected hardware word.
//!
//! Main types:
//! - [`format::Format`] and the `fixed` aliases [`format::ErrorFx`], [`format::ActFx`],
//!   [`format::WeightFx`], [`format::DerivFx`], [`format::AccFx`]; the rounding and
//!   saturation steps [`format::round_shift`], [`format::saturate`], [`format::narrow`],
//!   [`format::mul_narrow`]; the binary fan-in shift [`format::fan_in_shift`].
//! - [`geom::ConvGeom`] and [`geom::shuffle_perm`]: conv shapes, weight layout, taps and
//!   the channel shuffle.
//! - [`bsbu::SparseSign`]: the fixed random binary sparse backward weight S = sign(D ⊙ R)
//!   (paper eq. 10), its compressed hardware layout [`bsbu::Entry`] and
//!   [`bsbu::apply`]: e_i = sat(round((S·e_L) >> shift)) ⊙ f'(p).
//! - [`params::BsbuParams`]: validated parameters of the backward-weight unit.
//! - [`dce::DceLayer`], [`dce::DceSizes`], [`dce::DceWeights`], [`dce::apply`]: the
//!   dilated-conv error-propagation engine's parameters and expected output (eq. 7).
//! - [`fbgen`]: the feedback-weight generator (xorshift32 streams per row, a sign bit
//!   and a mask byte per entry): backward weights regenerated, never stored.
//! - [`rng::Rng`]: the seeded generator behind every random choice (and the one
//!   shuffle, [`rng::Rng::shuffle`]); [`hash::Fnv1a`]: the one hash.
//! - [`scale`]: block floating point for errors: the per-tensor exponent, its
//!   normalization [`scale::normalize`] and the gradient alignment [`scale::align`].
//! - [`update`]: the HDFA optimizer's per-word update (Algorithm 1), [`update::update_word`]
//!   for any arithmetic, [`update::apply`] bit-exact with the update unit's coefficient
//!   range [`update::HwCoefs`].
//! - [`act`]: the recurrent cells' tanh and sigmoid (one interpolated table) and their
//!   derivatives, in fixed point.
//! - [`GoldenError`]: a bad value, named with its valid range.

pub mod act;
pub mod bsbu;
pub mod dce;
pub mod error;
pub mod fbgen;
pub mod format;
pub mod geom;
pub mod hash;
pub mod params;
pub mod rng;
pub mod scale;
pub mod update;

pub use error::GoldenError;
