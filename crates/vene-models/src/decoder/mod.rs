//! The generic decoder: one block skeleton that places every hook call once, parameterised by
//! the parts a [`DecoderSpec`](spec::DecoderSpec) names (norms, residual layout, positions, attention details,
//! MLP, head). Every family is a way of filling the spec (see `families/`).

pub(crate) mod attention;
pub(crate) mod block;
pub(crate) mod build;
pub(crate) mod kernels;
mod linear;
mod mlp;
pub(crate) mod norm;
pub(crate) mod positions;
pub(crate) mod rotary;
pub mod spec;
