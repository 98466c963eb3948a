//! [`Prefix`]: runs that share their first layers. Two inputs of the same length (a base and a
//! source of an interchange) are identical in computation below the first layer anything reads
//! or writes; running them there as one batch makes bigger matrix products and one pass over
//! those layers' weights.

use candle_core::{DType, Tensor};
use vene_hooks::NoHooks;

use crate::inputs::check_ids;
use crate::model::Model;
use crate::{LanguageModel, LogitsAt, ModelError, Result};

/// One input of a forward (ids `[B, T]`, optional 0/1 mask and position ids) and, once a
/// model has run it with others through its first layers
/// ([`LanguageModel::forward_prefixes`]), the residual stream entering the next layer.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_hooks::NoHooks;
/// use vene_models::{LanguageModel, LogitsAt, Model, Prefix};
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-gpt2");
/// let model = Model::from_dir(dir, DType::F32, &Device::Cpu)?;
/// let a = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu)?;
/// let b = Tensor::new(&[[5u32, 6, 7, 8]], &Device::Cpu)?;
/// let shared = model.forward_prefixes(vec![Prefix::new(a.clone()), Prefix::new(b)], 1)?;
/// assert_eq!(shared[0].layers_done(), 1);
/// let logits = model
///     .forward_from_prefix(&shared[0], &LogitsAt::All, &mut NoHooks)?
///     .expect("logits");
/// let alone = model.forward(&a, None, &mut NoHooks)?;
/// let diff = (logits - alone)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(diff < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Prefix {
    pub(crate) ids: Tensor,
    pub(crate) mask: Option<Tensor>,
    pub(crate) position_ids: Option<Tensor>,
    /// Layers run, and the residual stream after them.
    pub(crate) residual: Option<(usize, Tensor)>,
}

impl Prefix {
    /// An input of token ids `[B, T]`, nothing run yet.
    pub fn new(ids: Tensor) -> Self {
        Self {
            ids,
            mask: None,
            position_ids: None,
            residual: None,
        }
    }

    /// With a 0/1 attention mask `[B, T]`.
    pub fn with_mask(mut self, mask: Option<Tensor>) -> Self {
        self.mask = mask;
        self
    }

    /// With explicit position ids `[B, T]`.
    pub fn with_positions(mut self, position_ids: Option<Tensor>) -> Self {
        self.position_ids = position_ids;
        self
    }

    /// The token ids `[B, T]` of the run.
    pub fn ids(&self) -> &Tensor {
        &self.ids
    }

    /// How many layers have been run (0: none, the next forward starts from the embeddings).
    pub fn layers_done(&self) -> usize {
        self.residual.as_ref().map_or(0, |(n, _)| *n)
    }
}

/// Whether `inputs` can run as one batch: two or more, of one length, all with or all
/// without explicit positions.
fn shareable(inputs: &[Prefix]) -> bool {
    let len = |p: &Prefix| p.ids.dims2().ok().map(|(_, t)| t);
    inputs.len() >= 2
        && inputs
            .iter()
            .all(|p| p.residual.is_none() && len(p).is_some())
        && inputs.iter().all(|p| len(p) == len(&inputs[0]))
        && inputs
            .iter()
            .all(|p| p.position_ids.is_some() == inputs[0].position_ids.is_some())
}

/// [`LanguageModel::forward_prefixes`] for [`Model`].
pub(crate) fn run_shared(
    model: &Model,
    inputs: Vec<Prefix>,
    n_layers: usize,
) -> Result<Vec<Prefix>> {
    let n_layers = n_layers.min(model.layer_count());
    if n_layers == 0 || !shareable(&inputs) {
        return Ok(inputs);
    }
    let vocab = model.vocab_size();
    let mut ids = Vec::with_capacity(inputs.len());
    let mut rows = Vec::with_capacity(inputs.len());
    for p in &inputs {
        let (i, b, _) = check_ids(&p.ids, vocab)?;
        ids.push(i);
        rows.push(b);
    }
    let ids = Tensor::cat(&ids, 0)?;
    let t = ids.dim(1)?;
    let mask = if inputs.iter().any(|p| p.mask.is_some()) {
        let masks = inputs
            .iter()
            .zip(&rows)
            .map(|(p, &b)| match &p.mask {
                Some(m) if m.dims() == [b, t] => Ok(m.to_dtype(DType::U32)?),
                Some(m) => Err(ModelError::InvalidInput(format!(
                    "attention_mask: expected shape [{b}, {t}], got {:?}",
                    m.dims()
                ))),
                None => Ok(Tensor::ones((b, t), DType::U32, p.ids.device())?),
            })
            .collect::<Result<Vec<_>>>()?;
        Some(Tensor::cat(&masks, 0)?)
    } else {
        None
    };
    let position_ids = match inputs[0].position_ids {
        Some(_) => {
            let all = inputs
                .iter()
                .filter_map(|p| p.position_ids.as_ref())
                .map(|p| p.to_dtype(DType::U32))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Some(Tensor::cat(&all, 0)?)
        }
        None => None,
    };
    let pass = model.pass(&ids, mask.as_ref(), position_ids.as_ref(), 0)?;
    let x = model.embed(&pass)?;
    let x = model.run_layers(x, 0..n_layers, &pass, None, &mut NoHooks)?;
    let mut start = 0;
    let mut out = Vec::with_capacity(inputs.len());
    for (p, b) in inputs.into_iter().zip(rows) {
        let residual = x.narrow(0, start, b)?;
        start += b;
        out.push(Prefix {
            residual: Some((n_layers, residual)),
            ..p
        });
    }
    Ok(out)
}

/// [`LanguageModel::forward_from_prefix`] for [`Model`].
pub(crate) fn continue_from(
    model: &Model,
    prefix: &Prefix,
    logits: &LogitsAt,
    hooks: &mut dyn vene_hooks::Hooks,
) -> Result<Option<Tensor>> {
    let Some((done, residual)) = &prefix.residual else {
        return model.forward_logits_at(
            &prefix.ids,
            prefix.mask.as_ref(),
            prefix.position_ids.as_ref(),
            logits,
            hooks,
        );
    };
    if let Some(last) = hooks.last_layer() {
        if last < *done {
            return Err(ModelError::InvalidInput(format!(
                "the hooks need layer {last}, but the shared prefix already ran layers 0..{done}"
            )));
        }
    }
    let pass = model.pass(
        &prefix.ids,
        prefix.mask.as_ref(),
        prefix.position_ids.as_ref(),
        0,
    )?;
    let x = model.layers_from(residual.clone(), *done, &pass, None, logits, hooks)?;
    model.head(x, &pass, prefix.mask.as_ref(), logits)
}
