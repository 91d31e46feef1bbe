//! # golden: the fixed-point reference model of HDFA training
//!
//! This crate is the single source of truth for number formats, rounding and
//! saturation. The RTL generators (`rtl`) read their bit widths from here and
//! implement exactly the rounding steps defined here; the co-simulation (`sim`)
//! compares every hardware output word against the functions of this crate.
//!
//! Main types:
//! - [`format::Format`] and the `fixed` aliases [`format::ErrorFx`], [`format::ActFx`],
//!   [`format::WeightFx`], [`format::DerivFx`], [`format::AccFx`]; the rounding and
//!   saturation steps [`format::round_shift`], [`format::saturate`], [`format::narrow`],
//!   [`format::mul_narrow`].
//! - [`bsbu::SparseSign`]: the fixed random binary sparse backward weight S = sign(D ⊙ R)
//!   (paper eq. 10) and its compressed hardware layout [`bsbu::Entry`].
//! - [`bsbu::apply`]: e_i = sat(round((S·e_L) >> shift)) ⊙ f'(p), with [`bsbu::FPrime`].
//! - [`params::BsbuParams`]: validated parameters of the backward-weight unit.
//! - [`dce::DceLayer`], [`dce::DceSizes`], [`dce::apply`]: the dilated-conv
//!   error-propagation engine's parameters and expected output (paper eq. 7).
//! - [`rng::Rng`]: the seeded generator behind every random choice.
//! - [`data::Dataset`], [`data::load_idx`], [`data::load_digits_csv`]: image datasets.
//!
//! This crate depends on no hardware crate.

pub mod bsbu;
pub mod cnn;
pub mod config;
pub mod data;
pub mod dce;
pub mod error;
pub mod experiment;
pub mod format;
pub mod params;
pub mod rng;

pub use error::GoldenError;
