//! Interchange interventions in a transcoder's latent space: read at one site, write at
//! another.

use candle_core::Tensor;
use vene_hooks::{gather_positions, scatter_positions, HookCall, HookError, Hooks, Site};
use vene_models::{LanguageModel, LogitsAt};

use crate::splice::Splice;
use crate::{Result, VeneError};

/// An interchange intervention through a transcoder (or an SAE): the base's latents `dims` at
/// base position `base_pos` are replaced by the source's at `source_pos` (latents of the
/// activation each run has at the splice's read site), and the base's write site at
/// `base_pos` becomes the transcoder's decoding of the edited latents (the input's
/// normalisation and skip term included); every other position is untouched. With the
/// splice's error term, the base's reconstruction error at `base_pos` is added back, so only
/// the swap changes the activation. Returns the base's logits where `logits` says.
///
/// This is pyvene's `AutoencoderIntervention` for an autoencoder whose input and output sites
/// differ, which pyvene cannot express.
///
/// ```
/// use std::sync::Arc;
/// use candle_core::{DType, Device, Tensor};
/// use vene::autoencoder::{Autoencoder, AutoencoderLayer};
/// use vene::hooks::{Component, Site};
/// use vene::models::{Gpt2Config, Model};
/// use vene::{transcoder_interchange, LogitsAt, Splice};
///
/// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 2, 2), DType::F32, &Device::Cpu)?;
/// let tc: Arc<dyn Autoencoder> = Arc::new(AutoencoderLayer::new(8, 16, DType::F32, &Device::Cpu)?);
/// let splice = Splice::transcoder(Site::new(0, Component::MlpInput), Site::new(0, Component::MlpOutput), tc);
/// let base = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
/// let source = Tensor::new(&[[4u32, 5, 6]], &Device::Cpu)?;
/// let logits = transcoder_interchange(&model, &base, &source, &splice, &[0, 3], (1, 2), &LogitsAt::Last)?;
/// assert_eq!(logits.unwrap().dims(), &[1, 1, 32]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn transcoder_interchange(
    model: &dyn LanguageModel,
    base: &Tensor,
    source: &Tensor,
    splice: &Splice,
    dims: &[usize],
    (source_pos, base_pos): (usize, usize),
    logits: &LogitsAt,
) -> Result<Option<Tensor>> {
    splice.check(model)?;
    let ae = splice.autoencoder();
    if let Some(&d) = dims.iter().find(|&&d| d >= ae.latent_dim()) {
        return Err(VeneError::LatentDimOutOfRange {
            dim: d,
            latent_dim: ae.latent_dim(),
        });
    }
    let (bs, _) = base.dims2()?;
    if source.dims2()?.0 != bs {
        return Err(VeneError::SourceBatch {
            source_index: 0,
            got: source.dims2()?.0,
            base: bs,
        });
    }
    let read = splice.read_site();
    let (_, cache) =
        model.run_with_cache(source, &LogitsAt::Nothing, &|s| s == read, Some(read.layer))?;
    let x_src = cache.get(read.layer, read.component).ok_or_else(|| {
        VeneError::Config(format!(
            "the source run never reached {} of layer {}",
            read.component, read.layer
        ))
    })?;
    let x_src = gather_positions(x_src, &vec![vec![source_pos]; bs])?;
    let z_src = ae.encode(&x_src)?; // [B, 1, L]
    let mut hooks = Swap {
        splice,
        dims,
        base_pos,
        z_src,
        input: None,
    };
    Ok(model.forward_logits_at(base, None, None, logits, &mut hooks)?)
}

/// The base run's hooks: keep the read site's units at `base_pos`, swap and write them.
struct Swap<'a> {
    splice: &'a Splice,
    dims: &'a [usize],
    base_pos: usize,
    z_src: Tensor,
    input: Option<Tensor>,
}

impl Swap<'_> {
    fn site_positions(&self, b: usize) -> Vec<Vec<usize>> {
        vec![vec![self.base_pos]; b]
    }

    /// The written units: decode of the base latents with `dims` from the source.
    fn write(&self, x_in: &Tensor, target: &Tensor) -> Result<Tensor> {
        let ae = self.splice.autoencoder();
        let z = ae.encode(x_in)?;
        let l = ae.latent_dim();
        let mask: Vec<f32> = (0..l)
            .map(|i| if self.dims.contains(&i) { 1.0 } else { 0.0 })
            .collect();
        let mask = Tensor::new(mask.as_slice(), z.device())?.to_dtype(z.dtype())?;
        let keep = mask.affine(-1.0, 1.0)?;
        let z_src = self.z_src.to_dtype(z.dtype())?;
        let edited = (z.broadcast_mul(&keep)? + z_src.broadcast_mul(&mask)?)?;
        let out = ae.decode_for(&edited, x_in)?;
        let out = if self.splice.error_term() {
            (&out + (target - ae.decode_for(&z, x_in)?)?)?
        } else {
            out
        };
        Ok(out.to_dtype(target.dtype())?)
    }
}

impl Hooks for Swap<'_> {
    fn is_active(&self, site: Site) -> bool {
        site == self.splice.read_site() || site == self.splice.write_site()
    }

    fn on_activation(&mut self, call: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
        let b = x.dim(0)?;
        let pos = self.site_positions(b);
        if call.site == self.splice.read_site() {
            self.input = Some(gather_positions(&x, &pos)?);
        }
        if call.site != self.splice.write_site() {
            return Ok(x);
        }
        let input = self.input.take().ok_or_else(|| {
            HookError::Hook("the transcoder's read site comes after its write site".into())
        })?;
        let target = gather_positions(&x, &pos)?;
        let units = self
            .write(&input, &target)
            .map_err(|e| HookError::Hook(Box::new(e)))?;
        scatter_positions(&x, &pos, &units)
    }
}
