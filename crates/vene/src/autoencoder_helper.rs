//! pyvene's tutorial helper: an intervenable model with one autoencoder intervention.

use std::sync::Arc;

use vene_autoencoder::{Autoencoder, AutoencoderLayer};
use vene_hooks::{Component, Unit};
use vene_interventions::{AutoencoderIntervention, Intervention};
use vene_models::LanguageModel;

use crate::config::{IntervenableConfig, RepresentationConfig};
use crate::intervenable::resolve_site;
use crate::{IntervenableModel, Result, VeneError};

fn wrap<M: LanguageModel>(
    model: M,
    intervention: AutoencoderIntervention,
    input_dim: usize,
    latent_dim: usize,
    interchange_dims: Vec<usize>,
    layer: usize,
) -> Result<IntervenableModel<M>> {
    let repr = RepresentationConfig::new(layer, Component::BlockOutput)
        .unit(Unit::Pos)
        .max_number_of_units(1)
        .latent_dim(latent_dim);
    let (_, width) = resolve_site(&model, &repr)?;
    if input_dim != width {
        return Err(VeneError::AutoencoderWidth {
            input_dim,
            width,
            component: Component::BlockOutput,
            layer,
        });
    }
    if let Some(&dim) = interchange_dims.iter().find(|&&d| d >= latent_dim) {
        return Err(VeneError::LatentDimOutOfRange { dim, latent_dim });
    }
    let iv = intervention.with_interchange_dim(interchange_dims)?;
    let iv: Arc<dyn Intervention> = Arc::new(iv);
    IntervenableModel::new(IntervenableConfig::new(vec![repr.intervention(iv)]), model)
}

/// An intervenable model with one [`AutoencoderIntervention`] around pyvene's
/// [`AutoencoderLayer`] at `block_output` of `layer`, unit `pos`, one unit, swapping the latents
/// `interchange_dims` (pyvene's `get_intervenable_with_autoencoder`). The autoencoder is
/// trainable and saved with the model.
///
/// Unlike pyvene, the dims must be given (pyvene's default picks the single latent with index
/// `embed_dim` by accident); an empty list swaps nothing.
pub fn get_intervenable_with_autoencoder<M: LanguageModel>(
    model: M,
    autoencoder: AutoencoderLayer,
    interchange_dims: Vec<usize>,
    layer: usize,
) -> Result<IntervenableModel<M>> {
    let (d, l) = (autoencoder.input_dim(), autoencoder.latent_dim());
    let iv = AutoencoderIntervention::from_layer(autoencoder)?;
    wrap(model, iv, d, l, interchange_dims, layer)
}

/// As [`get_intervenable_with_autoencoder`], around any [`Autoencoder`] (a loaded SAE, a
/// custom one). Its weights are not trainable through the intervenable model.
pub fn get_intervenable_with_custom_autoencoder<M: LanguageModel>(
    model: M,
    autoencoder: Arc<dyn Autoencoder>,
    interchange_dims: Vec<usize>,
    layer: usize,
) -> Result<IntervenableModel<M>> {
    let (d, l) = (autoencoder.input_dim(), autoencoder.latent_dim());
    let iv = AutoencoderIntervention::new(autoencoder)?;
    wrap(model, iv, d, l, interchange_dims, layer)
}
