//! Generation for a batch of prompts of different lengths (left padding and an attention
//! mask), each example stopping on its own.

use candle_core::{DType, Tensor};
use candle_transformers::generation::LogitsProcessor;
use vene_hooks::Hooks;

use crate::{GenerationConfig, LanguageModel, ModelError, Result};

/// What [`generate_batch`] returns, one entry per example in batch order.
#[derive(Debug, Clone)]
pub struct BatchGeneration {
    /// The new tokens of each example (a stop token, when reached, is the last).
    pub tokens: Vec<Vec<u32>>,
    /// The logits each new token was picked from: `[n_new, vocab]` (f32) per example.
    pub logits: Vec<Tensor>,
}

/// Left-padded prompts `[B, T]` as a list of token ids per example.
///
/// ```
/// use candle_core::Device;
/// let (ids, mask) = vene_models::left_pad(&[vec![5, 6, 7], vec![8]], 0, &Device::Cpu)?;
/// assert_eq!(ids.to_vec2::<u32>()?, vec![vec![5, 6, 7], vec![0, 0, 8]]);
/// assert_eq!(mask.to_vec2::<u32>()?, vec![vec![1, 1, 1], vec![0, 0, 1]]);
/// # Ok::<(), vene_models::ModelError>(())
/// ```
pub fn left_pad(
    prompts: &[Vec<u32>],
    pad_token: u32,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(ModelError::InvalidInput(
            "left_pad: every prompt needs at least one token".to_string(),
        ));
    }
    let b = prompts.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b * t);
    for p in prompts {
        let pad = t - p.len();
        ids.extend(std::iter::repeat_n(pad_token, pad).chain(p.iter().copied()));
        mask.extend(std::iter::repeat_n(0u32, pad).chain(std::iter::repeat_n(1u32, p.len())));
    }
    Ok((
        Tensor::from_vec(ids, (b, t), device)?,
        Tensor::from_vec(mask, (b, t), device)?,
    ))
}

/// Checks a left-padded mask: per row, zeros then ones, at least one 1.
fn check_left_padding(mask: &Tensor, b: usize, t: usize) -> Result<Vec<Vec<u32>>> {
    if mask.dims() != [b, t] {
        return Err(ModelError::InvalidInput(format!(
            "attention mask: expected shape [{b}, {t}] like the ids, got {:?}",
            mask.dims()
        )));
    }
    let rows = mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    for (i, row) in rows.iter().enumerate() {
        if row.iter().any(|&v| v > 1) {
            return Err(ModelError::InvalidInput(format!(
                "attention mask row {i}: values must be 0 or 1"
            )));
        }
        let first_real = row.iter().position(|&v| v == 1).ok_or_else(|| {
            ModelError::InvalidInput(format!("attention mask row {i} has no real token"))
        })?;
        if row[first_real..].contains(&0) {
            return Err(ModelError::InvalidInput(format!(
                "attention mask row {i}: generation takes left padding (zeros, then ones); \
                 got {row:?}"
            )));
        }
    }
    Ok(rows)
}

/// Generates after each prompt of `ids` `[B, T]` (left padding marked by 0 in `mask`;
/// `None`: no padding), up to `cfg.max_new_tokens` tokens per example; an example stops after
/// any of `cfg.stop_tokens` while the others go on.
///
/// Each example gets what it gets alone: positions count its real tokens (Hugging Face's
/// `position_ids = cumsum(mask) - 1` in `generate`), padding is never attended to, and each
/// example has its own sampler seeded with `cfg.seed`. `hooks` see the whole batch
/// (`seq_offset` 0 for the prompt, the padded cache length for each step); a finished
/// example is fed its last token, masked out, until every example is done.
///
/// ```
/// use candle_core::{DType, Device};
/// use vene_hooks::NoHooks;
/// use vene_models::{generate, generate_batch, left_pad, GenerationConfig, Gpt2Config, Model};
///
/// let (model, _vars) = Model::random_gpt2(&Gpt2Config::tiny(64, 16, 2, 2), DType::F32, &Device::Cpu)?;
/// let cfg = GenerationConfig { max_new_tokens: 4, ..Default::default() };
/// let prompts = vec![vec![1, 2, 3], vec![7]];
/// let (ids, mask) = left_pad(&prompts, 0, &Device::Cpu)?;
/// let out = generate_batch(&model, &ids, Some(&mask), &cfg, &mut NoHooks)?;
/// for (p, got) in prompts.iter().zip(&out.tokens) {
///     assert_eq!(got, &generate(&model, p, &cfg, &mut NoHooks)?);
/// }
/// assert_eq!(out.logits[1].dims(), &[4, 64]);
/// # Ok::<(), vene_models::ModelError>(())
/// ```
pub fn generate_batch(
    model: &dyn LanguageModel,
    ids: &Tensor,
    mask: Option<&Tensor>,
    cfg: &GenerationConfig,
    hooks: &mut dyn Hooks,
) -> Result<BatchGeneration> {
    generate_rows(model, ids, mask, cfg, hooks, true)
}

/// The loop of [`generate_batch`] (and of [`crate::generate`], one row): with `keep_logits`
/// false the logits are not kept (`BatchGeneration::logits` holds empty tensors).
pub(crate) fn generate_rows(
    model: &dyn LanguageModel,
    ids: &Tensor,
    mask: Option<&Tensor>,
    cfg: &GenerationConfig,
    hooks: &mut dyn Hooks,
    keep_logits: bool,
) -> Result<BatchGeneration> {
    let (b, t) = ids.dims2().map_err(|_| {
        ModelError::InvalidInput(format!(
            "generate_batch: ids must be [batch, seq], got {:?}",
            ids.dims()
        ))
    })?;
    if b == 0 || t == 0 {
        return Err(ModelError::InvalidInput(
            "generate_batch: empty batch or prompt".to_string(),
        ));
    }
    let sampling = cfg.sampling()?;
    let device = model.device();
    let mut mask_rows = match mask {
        Some(m) => check_left_padding(m, b, t)?,
        None => vec![vec![1u32; t]; b],
    };
    // a mask once there is padding or a batch (whose finished rows are masked out)
    let use_mask = mask.is_some() || b > 1;
    let mut samplers: Vec<LogitsProcessor> = (0..b)
        .map(|_| LogitsProcessor::from_sampling(cfg.seed, sampling.clone()))
        .collect();
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut logits: Vec<Vec<Tensor>> = vec![Vec::new(); b];
    let mut done = vec![cfg.max_new_tokens == 0; b];
    let mut last_fed: Vec<u32> = ids
        .to_dtype(DType::U32)?
        .get_on_dim(1, t - 1)?
        .to_vec1::<u32>()?;
    let mut cache = model.new_cache();
    let mut input = ids.to_dtype(DType::U32)?.to_device(device)?;
    while done.iter().any(|d| !d) {
        let mask_now = if use_mask {
            let len = mask_rows[0].len();
            let flat: Vec<u32> = mask_rows.iter().flatten().copied().collect();
            Some(Tensor::from_vec(flat, (b, len), device)?)
        } else {
            None
        };
        let out = model.forward_cached(&input, mask_now.as_ref(), &mut cache, hooks)?;
        let last = out.get_on_dim(1, out.dim(1)? - 1)?.to_dtype(DType::F32)?;
        for i in 0..b {
            if done[i] {
                // fed its last token again, masked out: its rows are never read
                mask_rows[i].push(0);
                continue;
            }
            let row = last.get(i)?;
            let tok = samplers[i].sample(&row)?;
            tokens[i].push(tok);
            if keep_logits {
                logits[i].push(row);
            }
            if cfg.stop_tokens.contains(&tok) || tokens[i].len() >= cfg.max_new_tokens {
                done[i] = true;
            }
            last_fed[i] = tok;
            mask_rows[i].push(1);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        input = Tensor::new(last_fed.as_slice(), device)?.unsqueeze(1)?;
    }
    let logits = logits
        .into_iter()
        .map(|rows| {
            if rows.is_empty() {
                Ok(Tensor::zeros((0, model.vocab_size()), DType::F32, device)?)
            } else {
                Ok(Tensor::stack(&rows, 0)?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BatchGeneration { tokens, logits })
}
