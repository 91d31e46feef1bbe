//! # golden: the fixed-point reference model of HDFA training
//!
//! The trainer: CNN layers, error propagation (BP, DFA, conv-DFA) and the HDFA
//! optimizer in bit-exact fixed point and in f32, configs, data sets and experiments.
//! Number formats, rounding, limits and the unit models come from the hardware
//! contract (crate `contract`), re-exported here under the same paths
//! (`golden::format`, `golden::dce`, ...); the contract never depends on the trainer.
//!
//! Main types:
//! - [`cnn::train::Trainer`], [`cnn::net::Net`]: one network and its training step;
//!   [`cnn::train::update_word`]: Algorithm 1 on one weight word.
//! - [`adam::adam_word`]: fixed-point Adam on one weight word (the recurrent models'
//!   optimizer).
//! - [`config::Config`]: a validated TOML config.
//! - [`data::Dataset`], [`data::load_idx`], [`data::load_digits_csv`]: image datasets;
//!   [`text::Corpus`]: the Austen text at word or character level.
//! - [`rnn::cell`]: the recurrent language model (embedding, RNN / LSTM / GRU cell,
//!   decoder, softmax) in fixed point with BPTT; [`rnn::float`]: the same in f32 and
//!   f64; [`rnn::feedback::TriFeedback`]: the recurrent cell's upper-triangular
//!   binary sparse DFA feedback (eq. 9–11).
//! - [`experiment::Experiment`]: a run with metrics; [`checkpoint`] (atomic,
//!   bit-identical resume), [`npy`] (step dumps) and [`capture`] (error maps of conv
//!   paths for the engine) work on it; [`gradcheck`] compares a step's gradients
//!   with its own plain f64 reference.
//! - [`cost`]: the error-propagation cost model (memory transactions and operations
//!   of BP, DFA, the revised DFA and HDFA; the traffic our units read per path).

pub use contract::{
    act, bsbu, dce, error, fbgen, format, geom, hash, params, rng, scale, update, GoldenError,
};

pub mod adam;
pub mod capture;
pub mod checkpoint;
pub mod cnn;
pub mod config;
pub mod cost;
pub mod data;
pub mod experiment;
pub mod fuzz;
pub mod gradcheck;
pub mod mem;
pub mod npy;
pub mod rnn;
pub mod text;
