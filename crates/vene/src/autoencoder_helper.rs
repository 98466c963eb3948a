//! pyvene's tutorial helper: an intervenable model with one autoencoder intervention.

use std::sync::Arc;

use vene_autoencoder::{Autoencoder, AutoencoderLayer, LoadedSae};
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
    wrap_at(
        model,
        intervention,
        (input_dim, latent_dim),
        interchange_dims,
        (layer, Component::BlockOutput),
    )
}

fn wrap_at<M: LanguageModel>(
    model: M,
    intervention: AutoencoderIntervention,
    (input_dim, latent_dim): (usize, usize),
    interchange_dims: Vec<usize>,
    (layer, component): (usize, Component),
) -> Result<IntervenableModel<M>> {
    let repr = RepresentationConfig::new(layer, component)
        .unit(Unit::Pos)
        .max_number_of_units(1)
        .latent_dim(latent_dim);
    let (_, width) = resolve_site(&model, &repr)?;
    if input_dim != width {
        return Err(VeneError::AutoencoderWidth {
            input_dim,
            width,
            component,
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

/// As [`get_intervenable_with_custom_autoencoder`], at the site the SAE's files name: its
/// SAELens `hook_name`, sparsify hookpoint or dictionary_learning submodule, read by
/// [`vene_hooks::site_from_name`] (`blocks.8.hook_resid_pre` is `block_input` of layer 8);
/// else `block_output` of the layer its files name. An SAE whose files name neither is refused:
/// place it with [`get_intervenable_with_custom_autoencoder`] and a layer.
///
/// ```no_run
/// use candle_core::{DType, Device};
/// use vene::models::Model;
/// let model = Model::from_dir("path/to/gpt2", DType::F32, &Device::Cpu)?;
/// let sae = vene::autoencoder::load_sae("path/to/saelens/blocks.8.hook_resid_pre")?;
/// let iv = vene::get_intervenable_with_sae(model, sae, vec![123, 456])?; // block_input, layer 8
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn get_intervenable_with_sae<M: LanguageModel>(
    model: M,
    sae: LoadedSae,
    interchange_dims: Vec<usize>,
) -> Result<IntervenableModel<M>> {
    let Some(site) = crate::splice::sae_own_site(&sae) else {
        return Err(VeneError::Config(format!(
            "the SAE's files name no site ({}): place it with \
             get_intervenable_with_custom_autoencoder and a layer",
            sae.hook_name
                .as_deref()
                .map_or("no hook name".to_string(), |h| format!("hook name {h:?}"))
        )));
    };
    let site = (site.layer, site.component);
    let autoencoder: Arc<dyn Autoencoder> = Arc::from(sae.autoencoder);
    let (d, l) = (autoencoder.input_dim(), autoencoder.latent_dim());
    let iv = AutoencoderIntervention::new(autoencoder)?;
    wrap_at(model, iv, (d, l), interchange_dims, site)
}
