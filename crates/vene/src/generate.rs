//! Generation with interventions on the prompt, on generated steps, or both.

use vene_hooks::Component;
use vene_models::{BatchGeneration, GenerationConfig, LanguageModel};

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
        self.check_generation(on, cfg)?;
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
        let (mut hooks, _) = self.prepare(req, Some(phase_of(on)))?;
        Ok(vene_models::generate(
            &self.model,
            &prompt,
            cfg,
            &mut hooks,
        )?)
    }

    /// Generates after every prompt of a batch: the base of `req` is `[B, T]` with left
    /// padding marked by its mask (see [`vene_models::left_pad`]); each example stops on its
    /// own (a stop token, or `max_new_tokens`). Sources are `[B, ..]` too (one source
    /// example per base example, left-padded with their own masks) and the locations are per
    /// example, in the padded positions, as for [`Self::forward`].
    ///
    /// Each example gets the tokens and logits it gets alone: positions count its real tokens
    /// (Hugging Face's `cumsum(mask) - 1`), padding is never attended to, and every example
    /// has its own sampler seeded with `cfg.seed`.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use vene::{ForwardRequest, IntervenableConfig, IntervenableModel, Input, InterveneOn,
    ///     RepresentationConfig, UnitLocations};
    /// use vene::hooks::Component;
    /// use vene::models::{left_pad, GenerationConfig, Gpt2Config, Model};
    ///
    /// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(64, 16, 2, 2), DType::F32, &Device::Cpu)?;
    /// let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(0, Component::BlockOutput)]);
    /// let im = IntervenableModel::new(cfg, model)?;
    /// // two prompts of lengths 3 and 2; the second is padded to position 1..3
    /// let (base, base_mask) = left_pad(&[vec![1, 2, 3], vec![4, 5]], 0, &Device::Cpu)?;
    /// let (src, src_mask) = left_pad(&[vec![9, 8, 7], vec![6, 5]], 0, &Device::Cpu)?;
    /// // the last prompt token of each example takes its source's last token's block output
    /// let req = ForwardRequest::new(Input::with_mask(base, base_mask))
    ///     .source(Input::with_mask(src, src_mask))
    ///     .locations(UnitLocations::sources_to_base(vec![vec![vec![2], vec![2]]], vec![vec![vec![2], vec![2]]]));
    /// let gen = GenerationConfig { max_new_tokens: 3, ..Default::default() };
    /// let out = im.generate_batch(&req, InterveneOn::Prompt, &gen)?;
    /// assert_eq!(out.tokens.len(), 2);
    /// assert!(out.tokens.iter().all(|t| t.len() == 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn generate_batch(
        &self,
        req: &ForwardRequest,
        on: InterveneOn,
        cfg: &GenerationConfig,
    ) -> Result<BatchGeneration> {
        self.check_generation(on, cfg)?;
        if req.base.position_ids.is_some() {
            return Err(VeneError::Config(
                "generate_batch computes the position ids from the mask; give the base without \
                 position_ids"
                    .into(),
            ));
        }
        let (mut hooks, _) = self.prepare(req, Some(phase_of(on)))?;
        Ok(vene_models::generate_batch(
            &self.model,
            &req.base.ids,
            req.base.mask.as_ref(),
            cfg,
            &mut hooks,
        )?)
    }

    fn check_generation(&self, on: InterveneOn, cfg: &GenerationConfig) -> Result<()> {
        if cfg.max_new_tokens > MAX_NEW_TOKENS {
            return Err(VeneError::Config(format!(
                "max_new_tokens {} is more than the {MAX_NEW_TOKENS} allowed",
                cfg.max_new_tokens
            )));
        }
        if on != InterveneOn::Prompt {
            if let Some(s) = self
                .slots
                .iter()
                .find(|s| s.site.tap.component == Component::AttentionWeight)
            {
                return Err(VeneError::Config(format!(
                    "{}: attention_weight interventions act on the prompt only during \
                     generation (InterveneOn::Prompt)",
                    s.key
                )));
            }
        }
        Ok(())
    }
}

fn phase_of(on: InterveneOn) -> Phase {
    match on {
        InterveneOn::Prompt => Phase::PromptOnly,
        InterveneOn::GeneratedSteps => Phase::StepsOnly,
        InterveneOn::PromptAndSteps => Phase::PromptAndSteps,
    }
}
