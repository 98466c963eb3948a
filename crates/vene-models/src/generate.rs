//! Autoregressive generation with a KV cache, hooks active at every step.

use candle_core::Tensor;
use candle_transformers::generation::Sampling;
use vene_hooks::Hooks;

use crate::{LanguageModel, ModelError, Result};

/// How to pick the new tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 means greedy (argmax).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p` before sampling.
    pub top_p: Option<f64>,
    /// Seed of the sampler (same seed, same tokens).
    pub seed: u64,
    /// Generation stops after any of these tokens (which is returned).
    pub stop_tokens: Vec<u32>,
}

impl Default for GenerationConfig {
    /// Greedy, 20 new tokens, no stop token.
    fn default() -> Self {
        Self {
            max_new_tokens: 20,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            stop_tokens: Vec::new(),
        }
    }
}

impl GenerationConfig {
    pub(crate) fn sampling(&self) -> Result<Sampling> {
        let t = self.temperature;
        if !t.is_finite() || t < 0.0 {
            return Err(ModelError::InvalidInput(format!(
                "temperature must be finite and >= 0, got {t}"
            )));
        }
        if self.top_k == Some(0) {
            return Err(ModelError::InvalidInput(
                "top_k must be at least 1".to_string(),
            ));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(ModelError::InvalidInput(format!(
                    "top_p must be in (0, 1], got {p}"
                )));
            }
        }
        Ok(if t == 0.0 {
            Sampling::ArgMax
        } else {
            match (self.top_k, self.top_p) {
                (None, None) => Sampling::All { temperature: t },
                (Some(k), None) => Sampling::TopK { k, temperature: t },
                (None, Some(p)) => Sampling::TopP { p, temperature: t },
                (Some(k), Some(p)) => Sampling::TopKThenTopP {
                    k,
                    p,
                    temperature: t,
                },
            }
        })
    }
}

/// Generates up to `cfg.max_new_tokens` tokens after `prompt` (one sequence) and returns the new
/// tokens. The prompt runs once, then one token per step through a KV cache; `hooks` are called
/// at every step (with `seq_offset` = number of tokens before the step).
///
/// ```
/// use candle_core::{DType, Device};
/// use vene_hooks::NoHooks;
/// use vene_models::{generate, GenerationConfig, Gpt2Config, Model};
///
/// let (model, _vars) = Model::random_gpt2(&Gpt2Config::tiny(64, 16, 2, 2), DType::F32, &Device::Cpu)?;
/// let cfg = GenerationConfig { max_new_tokens: 5, ..Default::default() };
/// let out = generate(&model, &[1, 2, 3], &cfg, &mut NoHooks)?;
/// assert_eq!(out.len(), 5);
/// assert_eq!(out, generate(&model, &[1, 2, 3], &cfg, &mut NoHooks)?);
/// # Ok::<(), vene_models::ModelError>(())
/// ```
pub fn generate(
    model: &dyn LanguageModel,
    prompt: &[u32],
    cfg: &GenerationConfig,
    hooks: &mut dyn Hooks,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidInput(
            "generate: empty prompt".to_string(),
        ));
    }
    let ids = Tensor::new(prompt, model.device())?.unsqueeze(0)?;
    let out = crate::generate_batch::generate_rows(model, &ids, None, cfg, hooks, false)?;
    Ok(out.tokens.into_iter().next().unwrap_or_default())
}
