//! The recurrent half of the paper: the language model in fixed point
//! ([`cell`]: embedding, RNN / LSTM / GRU cell, decoder, softmax, BPTT) and in
//! floating point ([`float`]: the f32 path, and the f64 reference its tests use;
//! [`float_train::FloatRnnTrainer`] trains on it), and
//! the cell's triangular DFA feedback ([`feedback::TriFeedback`], eq. 9–11).

pub mod cell;
pub mod checkpoint;
pub mod config;
pub mod dfa;
pub mod feedback;
pub mod float;
pub mod float_train;
pub mod train;
