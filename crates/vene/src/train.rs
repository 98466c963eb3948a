//! Interchange-intervention training: losses on the intervened logits, gradients into the
//! interventions' parameters only.

use candle_core::{DType, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use vene_models::LanguageModel;

use crate::{ForwardRequest, IntervenableModel, Result, VeneError};

/// Mean cross-entropy of the logits at the last position `[B, T, V]` against `labels` `[B]`
/// (u32 or i64 token ids).
pub fn last_position_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    if labels.dims() != [b] {
        return Err(VeneError::Training(format!(
            "labels: expected shape [{b}], got {:?}",
            labels.dims()
        )));
    }
    let labels = labels.to_dtype(DType::U32)?;
    let max = labels.max(0)?.to_scalar::<u32>()?;
    if max as usize >= v {
        return Err(VeneError::Training(format!(
            "label {max} is out of range for a vocabulary of {v}"
        )));
    }
    let last = logits
        .narrow(1, t - 1, 1)?
        .squeeze(1)?
        .to_dtype(DType::F32)?;
    Ok(candle_nn::loss::cross_entropy(&last, &labels)?)
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// An AdamW optimizer over the interventions' parameters ([`Self::trainable_vars`]);
    /// an error when there are none.
    pub fn adamw(&self, params: ParamsAdamW) -> Result<AdamW> {
        let vars = self.trainable_vars();
        if vars.is_empty() {
            return Err(VeneError::Training(
                "the interventions have no trainable parameters".into(),
            ));
        }
        Ok(AdamW::new(vars, params)?)
    }

    /// One training step: an intervened forward (with [`ForwardRequest::gradients`] on),
    /// `loss(logits)`, backward, and an optimizer step (which updates only the variables it was built over, see [`Self::adamw`]).
    /// Returns the loss before the step.
    ///
    /// ```no_run
    /// # fn demo(m: &vene::IntervenableModel<vene::models::Model>, req: vene::ForwardRequest, labels: candle_core::Tensor) -> vene::Result<()> {
    /// let mut opt = m.adamw(candle_nn::ParamsAdamW { lr: 1e-2, ..Default::default() })?;
    /// for _ in 0..100 {
    ///     let loss = m.train_step(&req, &mut opt, |logits| vene::last_position_cross_entropy(logits, &labels))?;
    ///     println!("{loss}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn train_step<O: Optimizer>(
        &self,
        req: &ForwardRequest,
        opt: &mut O,
        loss: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<f32> {
        // the graph through the interventions is what the optimizer needs
        let out = self.forward(&req.clone().gradients(true))?;
        let l = loss(&out.intervened)?;
        let value = l
            .to_dtype(DType::F32)?
            .flatten_all()?
            .mean(D::Minus1)?
            .to_scalar::<f32>()?;
        opt.backward_step(&l)?;
        Ok(value)
    }
}
