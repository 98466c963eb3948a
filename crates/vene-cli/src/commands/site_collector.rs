//! [`SiteCollector`]: the activations of several sites at every real token of a batch of
//! sequences, in one forward pass through the facade's collect interventions.

use candle_core::Tensor;
use vene::hooks::Site;
use vene::models::{LanguageModel, Model};
use vene::{
    ForwardRequest, Input, IntervenableConfig, IntervenableModel, LogitsAt, PaddedBatch,
    RepresentationConfig, UnitLocations,
};

use crate::{CliError, Result};

/// A model wrapped with one `CollectIntervention` per site: [`SiteCollector::collect`] runs a
/// batch of sequences once and returns every site's activations at the real tokens.
pub struct SiteCollector {
    collector: IntervenableModel<Model>,
    sites: usize,
}

impl SiteCollector {
    /// Collects `sites` (whole positions, no head views) of `model`, for sequences of at most
    /// `max_len` tokens.
    pub fn new(model: &Model, sites: &[Site], max_len: usize) -> Result<Self> {
        let reprs = sites
            .iter()
            .map(|s| {
                RepresentationConfig::new(s.layer, s.component)
                    .max_number_of_units(max_len.max(1))
                    .intervention_type("CollectIntervention")
            })
            .collect();
        let collector = IntervenableModel::new(IntervenableConfig::new(reprs), model.clone())?;
        Ok(Self {
            collector,
            sites: sites.len(),
        })
    }

    /// The activations of each site at every real token of `batch` (right-padded to the
    /// longest sequence, with an attention mask when padded): per site `[Σ lengths, d]`, the
    /// rows of the first sequence first. With a causal model the rows of a sequence are the
    /// ones it gets alone.
    pub fn collect(&self, batch: &[Vec<u32>]) -> Result<Vec<Tensor>> {
        let (collected, padded) = self.forward(batch)?;
        let (b, t) = padded.ids.dims2()?;
        let rows = Tensor::new(padded.real_rows().as_slice(), padded.ids.device())?;
        collected
            .into_iter()
            .map(|acts| {
                let d = acts.dim(2)?;
                Ok(acts.reshape((b * t, d))?.index_select(&rows, 0)?)
            })
            .collect()
    }

    /// One forward pass of `batch` (padded): each site's activations at every position, as
    /// the collect intervention lays them out (`[B, T, d]` for whole positions), and the
    /// padded batch.
    pub fn forward(&self, batch: &[Vec<u32>]) -> Result<(Vec<Tensor>, PaddedBatch)> {
        let device = self.collector.model().device();
        let padded = PaddedBatch::new(batch, device)?;
        let (b, t) = padded.ids.dims2()?;
        let input = match &padded.mask {
            Some(mask) => Input::with_mask(padded.ids.clone(), mask.clone()),
            None => Input::new(padded.ids.clone()),
        };
        let positions: Vec<usize> = (0..t).collect();
        let request = ForwardRequest::new(input)
            .locations(UnitLocations::base(vec![vec![positions; b]; self.sites]))
            // only the collected activations are used: no logits but the last token's
            .logits(LogitsAt::Last);
        let out = self.collector.forward(&request)?;
        if out.collected.len() != self.sites {
            return Err(CliError::invalid(format!(
                "the collect interventions returned {} tensors for {} sites",
                out.collected.len(),
                self.sites
            )));
        }
        Ok((out.collected, padded))
    }
}
