//! Training and evaluating an alignment (pyvene's `train_alignment` / `eval_alignment`):
//! epochs of interchange-intervention training on the next token, with a temperature schedule,
//! interchange intervention accuracy (IIA) on held-out batches, and early stopping.

use candle_core::{DType, Tensor, D};
use candle_nn::ParamsAdamW;
use vene_interventions::TemperatureSchedule;
use vene_models::LanguageModel;

use crate::{
    last_position_cross_entropy, ForwardRequest, IntervenableModel, LogitsAt, Result, VeneError,
};

/// One batch of an alignment dataset: the intervened forward (base, sources, unit locations,
/// subspaces) and the token each example should predict after the intervention, `[B]`.
#[derive(Debug, Clone)]
pub struct AlignmentBatch {
    /// The intervened forward.
    pub request: ForwardRequest,
    /// The counterfactual label of each example: the token expected at its last real position.
    pub labels: Tensor,
}

/// Options of [`IntervenableModel::train_alignment`].
#[derive(Debug, Clone)]
pub struct AlignmentOptions {
    /// Passes over the training batches (default 10).
    pub epochs: usize,
    /// AdamW's settings (default: lr 1e-3, no weight decay).
    pub optimizer: ParamsAdamW,
    /// The temperature, annealed linearly from `.0` to `.1` over all training steps (pyvene's
    /// Boundless DAS tutorial: 50 to 0.1), for interventions that have one; `None` leaves it.
    pub temperature: Option<(f64, f64)>,
    /// Stop when the IIA on the evaluation batches has not improved for this many epochs
    /// (`None`: run every epoch). Needs evaluation batches.
    pub patience: Option<usize>,
}

impl Default for AlignmentOptions {
    fn default() -> Self {
        Self {
            epochs: 10,
            optimizer: ParamsAdamW {
                lr: 1e-3,
                weight_decay: 0.0,
                ..Default::default()
            },
            temperature: None,
            patience: None,
        }
    }
}

/// What one epoch gave.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// The epoch (0-based).
    pub epoch: usize,
    /// Mean training loss over its steps (before each step).
    pub loss: f64,
    /// IIA on the evaluation batches after the epoch, when there are any.
    pub eval_iia: Option<f64>,
    /// The temperature used by its last step, when annealed.
    pub temperature: Option<f64>,
}

/// What [`IntervenableModel::train_alignment`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignmentReport {
    /// Every epoch run, in order.
    pub epochs: Vec<EpochReport>,
    /// Optimizer steps taken.
    pub steps: usize,
    /// The epoch with the best evaluation IIA (the first of equals), when evaluated.
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended the run before `epochs`.
    pub stopped_early: bool,
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// Trains the interventions' parameters on `train` (AdamW, cross-entropy of the intervened
    /// logits at each example's last position against its label), `opts.epochs` times over
    /// the batches in order, annealing the temperature per step when asked, and measures the
    /// IIA on `eval` after each epoch ([`Self::eval_alignment`]). `progress` sees each epoch's
    /// report. The parameters are those of the last step (not of the best epoch).
    ///
    /// ```no_run
    /// # fn demo(m: &vene::IntervenableModel<vene::models::Model>, train: Vec<vene::AlignmentBatch>, test: Vec<vene::AlignmentBatch>) -> vene::Result<()> {
    /// let opts = vene::AlignmentOptions { epochs: 20, temperature: Some((50.0, 0.1)), patience: Some(3), ..Default::default() };
    /// let report = m.train_alignment(&train, &test, &opts, &mut |e| println!("epoch {} loss {:.3} IIA {:?}", e.epoch, e.loss, e.eval_iia))?;
    /// println!("best epoch {:?}, test IIA {:.3}", report.best_epoch, m.eval_alignment(&test)?);
    /// # Ok(()) }
    /// ```
    pub fn train_alignment(
        &self,
        train: &[AlignmentBatch],
        eval: &[AlignmentBatch],
        opts: &AlignmentOptions,
        progress: &mut dyn FnMut(&EpochReport),
    ) -> Result<AlignmentReport> {
        if train.is_empty() {
            return Err(VeneError::Training(
                "train_alignment: no training batches".into(),
            ));
        }
        if opts.epochs == 0 {
            return Err(VeneError::Training(
                "train_alignment: epochs must be at least 1".into(),
            ));
        }
        if opts.patience.is_some() && eval.is_empty() {
            return Err(VeneError::Training(
                "train_alignment: early stopping (patience) needs evaluation batches".into(),
            ));
        }
        let total_steps = opts.epochs * train.len();
        let schedule = match opts.temperature {
            Some((start, end)) => Some(TemperatureSchedule::linear(start, end, total_steps)?),
            None => None,
        };
        if schedule.is_some() && self.temperatures().is_empty() {
            return Err(VeneError::Training(
                "train_alignment: a temperature schedule was given, but no intervention has a \
                 temperature"
                    .into(),
            ));
        }
        let mut opt = self.adamw(opts.optimizer.clone())?;
        let mut report = AlignmentReport {
            epochs: Vec::new(),
            steps: 0,
            best_epoch: None,
            stopped_early: false,
        };
        let mut best: Option<f64> = None;
        let mut since_best = 0;
        for epoch in 0..opts.epochs {
            let mut loss_sum = 0.0;
            let mut temperature = None;
            for batch in train {
                if let Some(s) = &schedule {
                    let t = s.at(report.steps);
                    self.set_temperature(t)?;
                    temperature = Some(t);
                }
                let labels = &batch.labels;
                let loss = self.train_step(&batch.request, &mut opt, |logits| {
                    last_position_cross_entropy(logits, labels)
                })?;
                if !loss.is_finite() {
                    return Err(VeneError::Training(format!(
                        "train_alignment: the loss became {loss} at step {} (epoch {epoch}); \
                         lower the learning rate",
                        report.steps
                    )));
                }
                loss_sum += loss as f64;
                report.steps += 1;
            }
            let eval_iia = if eval.is_empty() {
                None
            } else {
                Some(self.eval_alignment(eval)?)
            };
            let e = EpochReport {
                epoch,
                loss: loss_sum / train.len() as f64,
                eval_iia,
                temperature,
            };
            progress(&e);
            report.epochs.push(e);
            if let Some(iia) = eval_iia {
                if best.is_none_or(|b| iia > b) {
                    best = Some(iia);
                    report.best_epoch = Some(epoch);
                    since_best = 0;
                } else {
                    since_best += 1;
                }
                if opts.patience.is_some_and(|p| since_best >= p) && epoch + 1 < opts.epochs {
                    report.stopped_early = true;
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Interchange intervention accuracy over `data`: the fraction of examples whose
    /// intervened prediction at their last real position (the argmax of the logits) is their
    /// label (pyvene's `eval_alignment` with the IIA metric).
    pub fn eval_alignment(&self, data: &[AlignmentBatch]) -> Result<f64> {
        let (mut right, mut total) = (0usize, 0usize);
        for batch in data {
            let out = self.forward(&batch.request.clone().logits(LogitsAt::Last))?;
            let predicted: Vec<u32> = out
                .intervened
                .squeeze(1)?
                .argmax(D::Minus1)?
                .to_dtype(DType::U32)?
                .to_vec1()?;
            let labels: Vec<u32> = batch.labels.to_dtype(DType::U32)?.to_vec1()?;
            if labels.len() != predicted.len() {
                return Err(VeneError::Training(format!(
                    "eval_alignment: {} labels for a batch of {}",
                    labels.len(),
                    predicted.len()
                )));
            }
            right += predicted
                .iter()
                .zip(&labels)
                .filter(|(p, l)| p == l)
                .count();
            total += labels.len();
        }
        if total == 0 {
            return Err(VeneError::Training("eval_alignment: no examples".into()));
        }
        Ok(right as f64 / total as f64)
    }
}
