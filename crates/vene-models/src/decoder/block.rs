//! The block skeleton shared by every family: each hook call is placed once, and the family's
//! parts (norms, residual layout, attention, MLP) fill it in.

use candle_core::Tensor;
use vene_hooks::{Component, Hooks};

use super::attention::Attention;
use super::mlp::Mlp;
use super::norm::Norm;
use super::positions::Positions;
use super::rotary::RotaryTables;
use super::spec::Residual;
use crate::cache::CacheSlot;
use crate::weights::hook;
use crate::Result;

/// One decoder layer.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub attn_pre: Option<Norm>,
    pub attn: Attention,
    pub attn_post: Option<Norm>,
    pub mlp_pre: Option<Norm>,
    pub mlp: Mlp,
    pub mlp_post: Option<Norm>,
    pub residual: Residual,
    pub layer: usize,
}

fn norm(n: &Option<Norm>, x: &Tensor) -> Result<Tensor> {
    match n {
        Some(n) => n.forward(x),
        None => Ok(x.clone()),
    }
}

impl Block {
    /// Runs the layer on the residual stream `x` `[B, T, d]` of the new tokens.
    ///
    /// Hooks, in order: block_input; attention_input (what enters the attention, after its
    /// pre-norm); query/key/value_output, attention_weight, attention_value_output,
    /// attention_output (before any post-norm); resid_mid (block_input plus the attention's
    /// contribution; sequential blocks only); mlp_input (what enters the MLP);
    /// mlp_activation, mlp_output (before any post-norm); block_output.
    pub(crate) fn forward(
        &self,
        x: Tensor,
        rotary: Option<&RotaryTables>,
        pos: &Positions,
        offset: usize,
        cache: CacheSlot<'_>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let l = self.layer;
        let x = hook(hooks, l, Component::BlockInput, offset, x)?;
        let h = hook(
            hooks,
            l,
            Component::AttentionInput,
            offset,
            norm(&self.attn_pre, &x)?,
        )?;
        let a = self.attn.forward(&h, rotary, pos, offset, cache, hooks)?;
        let a = norm(&self.attn_post, &a)?;
        let out = match self.residual {
            Residual::Sequential => {
                let x = hook(hooks, l, Component::ResidMid, offset, (x + a)?)?;
                let h = hook(
                    hooks,
                    l,
                    Component::MlpInput,
                    offset,
                    norm(&self.mlp_pre, &x)?,
                )?;
                let m = norm(&self.mlp_post, &self.mlp.forward(&h, offset, hooks)?)?;
                (x + m)?
            }
            Residual::Parallel => {
                let h = hook(
                    hooks,
                    l,
                    Component::MlpInput,
                    offset,
                    norm(&self.mlp_pre, &x)?,
                )?;
                let m = norm(&self.mlp_post, &self.mlp.forward(&h, offset, hooks)?)?;
                ((m + a)? + x)?
            }
        };
        hook(hooks, l, Component::BlockOutput, offset, out)
    }

    pub(crate) fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        let n = |n: &Option<Norm>| n.as_ref().map(|n| n.map(f)).transpose();
        Ok(Self {
            attn_pre: n(&self.attn_pre)?,
            attn: self.attn.map(f)?,
            attn_post: n(&self.attn_post)?,
            mlp_pre: n(&self.mlp_pre)?,
            mlp: self.mlp.map(f)?,
            mlp_post: n(&self.mlp_post)?,
            residual: self.residual,
            layer: self.layer,
        })
    }
}
