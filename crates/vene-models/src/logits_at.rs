//! [`LogitsAt`]: the positions a forward computes logits for, and the row selection it implies.

use candle_core::{DType, Tensor};

use crate::{ModelError, Result};

/// The positions a forward computes logits for.
///
/// The unembedding at every position is a large part of a forward (about a quarter of a
/// GPT-2-small forward at batch 8 × 128 tokens); when only the next-token prediction is used,
/// [`LogitsAt::Last`] skips it everywhere else. The logits at the chosen positions are those of
/// a full forward (the same rows of `[B, T, vocab]`).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_models::{LanguageModel, LogitsAt, Model};
/// use vene_hooks::NoHooks;
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-gpt2");
/// let model = Model::from_dir(dir, DType::F32, &Device::Cpu)?;
/// let ids = Tensor::new(&[[1u32, 2, 3, 4], [5, 6, 7, 8]], &Device::Cpu)?;
/// let all = model.forward(&ids, None, &mut NoHooks)?;
/// let last = model
///     .forward_logits_at(&ids, None, None, &LogitsAt::Last, &mut NoHooks)?
///     .expect("logits were asked for");
/// assert_eq!(last.dims(), &[2, 1, model.vocab_size()]);
/// let diff = (all.narrow(1, 3, 1)? - last)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(diff < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogitsAt {
    /// Every position: `[B, T, vocab]`.
    #[default]
    All,
    /// The last real token of each row (the last position whose attention mask is 1; the last
    /// position without a mask): `[B, 1, vocab]`.
    Last,
    /// These positions of every row, in this order: `[B, n, vocab]`.
    Positions(Vec<usize>),
    /// No logits: the forward runs only as far as its hooks need
    /// ([`Hooks::last_layer`](vene_hooks::Hooks::last_layer)) and returns `None`.
    Nothing,
}

impl LogitsAt {
    /// For `[B, T]` inputs with an optional mask: the flat row indices (into `B * T`) whose
    /// logits are computed and the number per example, or `None` for every row.
    pub(crate) fn rows(
        &self,
        batch: usize,
        seq: usize,
        mask: Option<&Tensor>,
    ) -> Result<Option<(Vec<u32>, usize)>> {
        let per_row: Vec<Vec<usize>> = match self {
            LogitsAt::All | LogitsAt::Nothing => return Ok(None),
            LogitsAt::Last => match mask {
                None => vec![vec![seq - 1]; batch],
                Some(m) => last_real(m, batch, seq)?,
            },
            LogitsAt::Positions(p) => {
                if p.is_empty() {
                    return Err(ModelError::InvalidInput(
                        "logits at positions: the list of positions is empty".into(),
                    ));
                }
                if let Some(&bad) = p.iter().find(|&&i| i >= seq) {
                    return Err(ModelError::InvalidInput(format!(
                        "logits at position {bad}: the input has {seq} positions"
                    )));
                }
                vec![p.clone(); batch]
            }
        };
        let n = per_row[0].len();
        let flat = per_row
            .iter()
            .enumerate()
            .flat_map(|(b, ps)| ps.iter().map(move |&p| (b * seq + p) as u32))
            .collect();
        Ok(Some((flat, n)))
    }
}

/// The last position whose mask is non-zero, per row (the last position of an all-padding
/// row). The mask covers the `seq` new tokens at its end.
fn last_real(mask: &Tensor, batch: usize, seq: usize) -> Result<Vec<Vec<usize>>> {
    let (mb, mt) = mask.dims2().map_err(|_| bad_mask(mask))?;
    if mb != batch || mt < seq {
        return Err(bad_mask(mask));
    }
    let rows = mask
        .narrow(1, mt - seq, seq)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .map(|r| vec![r.iter().rposition(|&v| v != 0.0).unwrap_or(seq - 1)])
        .collect())
}

fn bad_mask(mask: &Tensor) -> ModelError {
    ModelError::InvalidInput(format!(
        "attention_mask: expected shape [batch, seq], got {:?}",
        mask.dims()
    ))
}
