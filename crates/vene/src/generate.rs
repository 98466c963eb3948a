//! Generation with interventions on the prompt, on generated steps, or both.

use vene_models::{GenerationConfig, LanguageModel};

use crate::hooks_impl::Phase;
use crate::{ForwardRequest, IntervenableModel, Result, VeneError};

/// The most tokens [`IntervenableModel::generate`] generates in one call; a
/// `max_new_tokens` above it is refused before anything is allocated.
pub const MAX_NEW_TOKENS: usize = 1 << 20;

/// When interventions act during [`IntervenableModel::generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InterveneOn {
    /// The prompt only, at the request's base locations (pyvene `intervene_on_prompt=True`).
    #[default]
    Prompt,
    /// Every generated step only, on the step's new token (pyvene `intervene_on_prompt=False`).
    GeneratedSteps,
    /// The prompt at the base locations, then every generated token.
    PromptAndSteps,
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// Runs the sources of `req`, then generates after its base (one sequence, `[1, T]`)
    /// with the interventions active as `on` says; returns the new tokens.
    ///
    /// In generated steps (run through a KV cache, `seq_offset` > 0) each step's token is
    /// intervened with the source units (one unit per example, or a constant source).
    pub fn generate(
        &self,
        req: &ForwardRequest,
        on: InterveneOn,
        cfg: &GenerationConfig,
    ) -> Result<Vec<u32>> {
        if cfg.max_new_tokens > MAX_NEW_TOKENS {
            return Err(VeneError::Config(format!(
                "max_new_tokens {} is more than the {MAX_NEW_TOKENS} allowed",
                cfg.max_new_tokens
            )));
        }
        let ids = &req.base.ids;
        let (b, _) = ids.dims2()?;
        if b != 1 {
            return Err(VeneError::Config(format!(
                "generate takes one sequence ([1, T]); got a batch of {b}"
            )));
        }
        let prompt: Vec<u32> = ids
            .to_dtype(candle_core::DType::U32)?
            .squeeze(0)?
            .to_vec1::<u32>()?;
        let phase = match on {
            InterveneOn::Prompt => Phase::PromptOnly,
            InterveneOn::GeneratedSteps => Phase::StepsOnly,
            InterveneOn::PromptAndSteps => Phase::PromptAndSteps,
        };
        let (mut hooks, _) = self.prepare(req, Some(phase))?;
        Ok(vene_models::generate(
            &self.model,
            &prompt,
            cfg,
            &mut hooks,
        )?)
    }
}
