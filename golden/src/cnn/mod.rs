//! The fixed-point CNN: layer operations generic over the number system
//! ([`num::Fx`] bit-exact, [`num::F32`] reference), softmax + cross-entropy, and
//! geometry ([`ops::ConvGeom`]).

pub mod direct;
pub mod gemm;
pub mod net;
pub mod num;
pub mod ops;
pub mod softmax;
pub mod train;
