//! `AutoencoderIntervention`: interchange in the latent space of any [`Autoencoder`].

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use vene_autoencoder::{Autoencoder, AutoencoderLayer};

use crate::selection::{check_dims, InterchangeDim, Resolved};
use crate::state::embed_dim_entry;
use crate::swap::{check_base, required_source, Op};
use crate::{Intervention, InterventionError, Placement, Result, Selection};

/// What an autoencoder intervention outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoencoderMode {
    /// `decode(zb')`, the reconstruction of the edited latent (pyvene): the autoencoder's
    /// reconstruction error replaces the base's residual even where no latent changed.
    #[default]
    Reconstruction,
    /// `base + decode(zb') - decode(zb)`: only the edit of the selected latents changes the
    /// representation (the reconstruction error is kept). With nothing selected the output
    /// is exactly the base.
    ErrorPreserving,
}

/// The shared machinery of the autoencoder interventions: per position, encode, swap the
/// selected latents, decode.
#[derive(Debug, Clone)]
pub(crate) struct AeCore {
    pub(crate) ae: Arc<dyn Autoencoder>,
    pub(crate) mode: AutoencoderMode,
    /// The dtype the autoencoder computes in (inputs are cast to it), when known.
    pub(crate) compute_dtype: Option<DType>,
}

impl AeCore {
    pub(crate) fn new(ae: Arc<dyn Autoencoder>) -> Result<Self> {
        if ae.output_dim() != ae.input_dim() {
            return Err(InterventionError::Unsupported(format!(
                "the autoencoder {ae:?} is a transcoder (it reads width {} and predicts width \
                 {}): an interchange at one site needs an autoencoder that reconstructs its \
                 own input",
                ae.input_dim(),
                ae.output_dim()
            )));
        }
        let compute_dtype = ae.decoder_rows(&[])?.map(|r| r.dtype());
        Ok(Self {
            ae,
            mode: AutoencoderMode::Reconstruction,
            compute_dtype,
        })
    }

    /// [`Intervention::forward`] of an autoencoder intervention named `type_name`: checks
    /// `base`, broadcasts the (required) source, resolves `selection` over the latents with
    /// `default` as the default dims, and runs the swap.
    pub(crate) fn intervene(
        &self,
        type_name: &'static str,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
        default: &InterchangeDim,
        selective: bool,
    ) -> Result<Tensor> {
        let batch = check_base(base, self.ae.input_dim())?;
        let source = required_source(type_name, base, source)?;
        let sel = Resolved::new(
            selection,
            default,
            self.ae.latent_dim(),
            batch,
            "latent space",
        )?;
        self.run(base, &source, &sel, selective)
    }

    /// `base`, `source`: `[B, n, d]` (source already broadcast); `sel` over latents.
    pub(crate) fn run(
        &self,
        base: &Tensor,
        source: &Tensor,
        sel: &Resolved,
        selective: bool,
    ) -> Result<Tensor> {
        if self.mode == AutoencoderMode::ErrorPreserving && sel.is_empty() {
            return Ok(base.clone());
        }
        let (b, n, d) = base.dims3()?;
        let dtype = self.compute_dtype.unwrap_or(base.dtype());
        let x = base.to_dtype(dtype)?.reshape((b * n, d))?;
        let s = source.to_dtype(dtype)?.contiguous()?.reshape((b * n, d))?;
        let rows = match sel {
            Resolved::Same(dims) if selective => self.ae.decoder_rows(dims)?,
            _ => None,
        };
        let edit = match (sel, rows) {
            (Resolved::Same(dims), Some(rows)) => self.run_selective(&x, &s, dims, &rows)?,
            _ => self.run_plain(&x, &s, sel, n)?,
        };
        let out = match edit {
            Edit::Output(out) => out.to_dtype(base.dtype())?.reshape((b, n, d))?,
            Edit::Delta(delta) => (base + delta.to_dtype(base.dtype())?.reshape((b, n, d))?)?,
        };
        Ok(out)
    }

    /// The rank-`|dims|` path: `decode_for(zb, x) + ((zs[dims] - zb[dims]) @ W_dec[dims]) *
    /// scale(x)`, with the source encoded only at `dims` (and, error-preserving, the base
    /// too). `scale` is [`Autoencoder::decode_scale_for`] (1 when `None`): with input
    /// normalisation the reconstruction is still affine in the latent for a fixed base, so
    /// the correction stays exact; a skip term cancels in the difference.
    fn run_selective(&self, x: &Tensor, s: &Tensor, dims: &[usize], rows: &Tensor) -> Result<Edit> {
        let (recon, zb_sel) = match self.mode {
            AutoencoderMode::Reconstruction => {
                let zb = self.ae.encode(x)?;
                let recon = self.ae.decode_for(&zb, x)?;
                if dims.is_empty() {
                    return Ok(Edit::Output(recon));
                }
                let idx = index(dims, x.device())?;
                (Some(recon), zb.index_select(&idx, 1)?)
            }
            AutoencoderMode::ErrorPreserving => (None, self.ae.encode_selected(x, dims)?),
        };
        let zs_sel = self.ae.encode_selected(s, dims)?;
        let diff = (zs_sel - zb_sel)?.to_dtype(rows.dtype())?;
        let mut delta = diff.matmul(rows)?;
        if let Some(scale) = self.ae.decode_scale_for(x)? {
            delta = delta.broadcast_mul(&scale.to_dtype(delta.dtype())?)?;
        }
        Ok(match recon {
            Some(recon) => Edit::Output((recon + delta.to_dtype(x.dtype())?)?),
            None => Edit::Delta(delta),
        })
    }

    /// Encode both, masked swap (the fused kernel), decode as the base's reconstruction
    /// ([`Autoencoder::decode_for`] with the base: its normalisation statistics and skip
    /// term, the source's latents).
    fn run_plain(&self, x: &Tensor, s: &Tensor, sel: &Resolved, n: usize) -> Result<Edit> {
        let zb = self.ae.encode(x)?;
        let zs = self.ae.encode(s)?;
        let edited = match sel {
            Resolved::Same(dims) => vene_kernels::masked_combine(&zb, &zs, dims, Op::Replace)?,
            Resolved::PerExample(per_example) => {
                // One list per row: example b's list for each of its n units.
                let per_row: Vec<Vec<usize>> = per_example
                    .iter()
                    .flat_map(|dims| std::iter::repeat_n(dims.clone(), n))
                    .collect();
                vene_kernels::masked_combine_rows(&zb, &zs, &per_row, Op::Replace)?
            }
        };
        let recon = self.ae.decode_for(&edited, x)?;
        Ok(match self.mode {
            AutoencoderMode::Reconstruction => Edit::Output(recon),
            AutoencoderMode::ErrorPreserving => Edit::Delta((recon - self.ae.decode_for(&zb, x)?)?),
        })
    }
}

/// What a path computed: the output itself, or a delta to add to the base.
enum Edit {
    Output(Tensor),
    Delta(Tensor),
}

fn index(dims: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        dims.iter().map(|&d| d as u32).collect::<Vec<_>>(),
        dims.len(),
        device,
    )?)
}

/// Interchange in the latent space of an autoencoder (pyvene's `AutoencoderIntervention`).
///
/// At each intervened unit (position or head; one row at a time): `zb = encode(base)`,
/// `zs = encode(source)`, `zb[dims] = zs[dims]`, output `decode_for(zb', base)` (or, in
/// [`AutoencoderMode::ErrorPreserving`], `base + decode_for(zb', base) - decode_for(zb,
/// base)`), cast back to the base's dtype.
///
/// The edited latent is decoded as the *base's* reconstruction
/// ([`Autoencoder::decode_for`]): an SAE with input normalisation un-normalises it with the
/// base's statistics, and one with a skip connection adds the base's skip term; only the
/// swapped latents come from the source. A transcoder (output width other than its input
/// width) is refused: it does not reconstruct the site it reads.
///
/// - Any [`Autoencoder`] plugs in ([`Self::new`]); [`Self::from_layer`] keeps an
///   [`AutoencoderLayer`]'s parameters trainable and savable.
/// - The dims: [`Self::set_interchange_dim`], or a [`Selection`] per call (pyvene's
///   `subspaces`). **Default: none** — the output is the plain reconstruction. pyvene's
///   default, when `set_interchange_dim` was never called, is the single latent with index
///   `embed_dim` (an accident of indexing with a 0-d tensor); pass
///   `Selection::Dims(vec![embed_dim])` to reproduce it.
/// - Per unit: pyvene flattens `(batch, units, d)` into `(batch, units*d)` before encoding
///   (which breaks for more than one unit); with one unit per example both agree exactly.
/// - Cost: with one selection for the batch and an affine decoder
///   ([`Autoencoder::decoder_rows`]), the swap is computed as a rank-`|dims|` correction,
///   `decode_for(zb, base) + ((zs[dims] - zb[dims]) @ W_dec[dims]) * s`, `s` the base's
///   scale under input normalisation ([`Autoencoder::decode_scale_for`], else 1), exact
///   because the reconstruction is affine in the latent for a fixed base; the source is
///   encoded only at `dims`; in error-preserving mode the base is too, so the cost no longer
///   grows with the latent width. Otherwise (per-example selections, non-affine decoders) it encodes both,
///   swaps with the fused kernel of vene-kernels and decodes. Both paths agree within
///   rounding.
///
/// ```
/// use std::sync::Arc;
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::AutoencoderLayer;
/// use vene_interventions::{AutoencoderIntervention, AutoencoderMode, Intervention, Selection};
///
/// let dev = Device::Cpu;
/// let ae = AutoencoderLayer::new(8, 32, DType::F32, &dev)?;
/// let mut iv = AutoencoderIntervention::from_layer(ae)?;
/// iv.set_interchange_dim(vec![3, 7, 11])?;
/// let base = Tensor::randn(0f32, 1., (2, 1, 8), &dev)?;
/// let source = Tensor::randn(0f32, 1., (2, 1, 8), &dev)?;
/// let out = iv.forward(&base, Some(&source), &Selection::Default)?;
/// assert_eq!(out.dims(), &[2, 1, 8]);
/// // Error-preserving with nothing selected returns the base itself.
/// let keep = iv.clone().with_mode(AutoencoderMode::ErrorPreserving);
/// let same = keep.forward(&base, Some(&source), &Selection::Dims(vec![]))?;
/// assert_eq!(same.flatten_all()?.to_vec1::<f32>()?, base.flatten_all()?.to_vec1::<f32>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AutoencoderIntervention {
    core: AeCore,
    layer: Option<AutoencoderLayer>,
    dims: Vec<usize>,
    selective: bool,
}

impl AutoencoderIntervention {
    /// Around any autoencoder (a custom one, a loaded SAE). Its parameters are not exposed
    /// as trainable. It can be saved when the autoencoder describes itself
    /// ([`Autoencoder::state`]: vene-autoencoder's ReLU, TopK and JumpReLU SAEs do).
    ///
    /// It swaps **no latent** until dims are set ([`Self::set_interchange_dim`]) or a call
    /// selects some: the output is then the plain reconstruction. pyvene's default is latent
    /// `embed_dim`; `set_interchange_dim(vec![embed_dim])` reproduces it.
    pub fn new(autoencoder: Arc<dyn Autoencoder>) -> Result<Self> {
        Ok(Self {
            core: AeCore::new(autoencoder)?,
            layer: None,
            dims: vec![],
            selective: true,
        })
    }

    /// Around pyvene's [`AutoencoderLayer`]: trainable ([`Intervention::vars`]) and savable
    /// under pyvene's names (`autoencoder.encoder.0.weight`, ...).
    /// Like [`Self::new`], it swaps no latent until dims are set.
    pub fn from_layer(layer: AutoencoderLayer) -> Result<Self> {
        let mut out = Self::new(Arc::new(layer.clone()))?;
        out.core.compute_dtype = Some(layer.dtype());
        out.layer = Some(layer);
        Ok(out)
    }

    /// A fresh [`AutoencoderLayer`] `embed_dim -> latent_dim` (torch `nn.Linear` init).
    pub fn with_new_layer(
        embed_dim: usize,
        latent_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::from_layer(AutoencoderLayer::new(embed_dim, latent_dim, dtype, device)?)
    }

    /// Sets the latent dims swapped by default (pyvene's `set_interchange_dim`): a list of
    /// latents (`vec![3, 7]`, `[3, 7]`) or `InterchangeDim::First(k)` for latents `0..k`.
    /// Each must be below `latent_dim`, without repeats; on error nothing changes.
    ///
    /// pyvene reads an integer here as one latent index: `set_interchange_dim(5)` in pyvene
    /// is `set_interchange_dim(vec![5])` in vene.
    pub fn set_interchange_dim(&mut self, dims: impl Into<InterchangeDim>) -> Result<()> {
        let dims = match dims.into() {
            InterchangeDim::Dims(d) => {
                check_dims(
                    &d,
                    self.core.ae.latent_dim(),
                    "latent index",
                    "latent space",
                )?;
                d
            }
            first => first.resolve(self.core.ae.latent_dim(), "latent space")?,
        };
        self.dims = dims;
        Ok(())
    }

    /// [`Self::set_interchange_dim`], by value.
    pub fn with_interchange_dim(mut self, dims: impl Into<InterchangeDim>) -> Result<Self> {
        self.set_interchange_dim(dims)?;
        Ok(self)
    }

    /// The latent dims swapped by default (empty: none).
    pub fn interchange_dim(&self) -> &[usize] {
        &self.dims
    }

    /// Sets the output mode.
    pub fn with_mode(mut self, mode: AutoencoderMode) -> Self {
        self.core.mode = mode;
        self
    }

    /// `with_mode(ErrorPreserving)` when `on`, else `Reconstruction`.
    pub fn with_error_preserving(self, on: bool) -> Self {
        self.with_mode(if on {
            AutoencoderMode::ErrorPreserving
        } else {
            AutoencoderMode::Reconstruction
        })
    }

    /// The output mode.
    pub fn mode(&self) -> AutoencoderMode {
        self.core.mode
    }

    /// Whether to use the rank-`|dims|` path when it applies (default true); false forces
    /// the plain encode-swap-decode (for comparison and benchmarks).
    pub fn with_selective(mut self, on: bool) -> Self {
        self.selective = on;
        self
    }

    /// The autoencoder.
    pub fn autoencoder(&self) -> &Arc<dyn Autoencoder> {
        &self.core.ae
    }

    /// The latent width.
    pub fn latent_dim(&self) -> usize {
        self.core.ae.latent_dim()
    }

    /// A copy with the autoencoder on `device` in `dtype` (dims, mode and path kept).
    ///
    /// An [`AutoencoderLayer`] stays trainable (new [`Var`]s); any other autoencoder is moved
    /// with [`Autoencoder::to`] (every vene-autoencoder type and loader output can be; a
    /// custom one that does not implement it gives an error, it is never left behind).
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let mut out = match &self.layer {
            Some(layer) => Self::from_layer(layer.to(device, dtype)?)?,
            None => Self::new(Arc::from(self.core.ae.to(device, dtype)?))?,
        };
        out.dims = self.dims.clone();
        out.selective = self.selective;
        out.core.mode = self.core.mode;
        Ok(out)
    }

    /// The dtype the autoencoder computes in, when it says (every vene-autoencoder type does).
    pub fn autoencoder_dtype(&self) -> Option<DType> {
        self.core
            .ae
            .placement()
            .map(|(_, d)| d)
            .or(self.core.compute_dtype)
    }

    /// The autoencoder's device and dtype, or an error for a custom autoencoder that does
    /// not report them ([`Autoencoder::placement`]).
    fn placement(&self) -> Result<(Device, DType)> {
        self.core.ae.placement().ok_or_else(|| {
            InterventionError::Unsupported(format!(
                "the autoencoder {:?} does not report its device and dtype \
                 (Autoencoder::placement), so it cannot be moved partly",
                self.core.ae
            ))
        })
    }
}

impl Intervention for AutoencoderIntervention {
    fn is_autoencoder(&self) -> bool {
        true
    }
    fn saves_state(&self) -> bool {
        true
    }
    fn type_name(&self) -> &'static str {
        "AutoencoderIntervention"
    }
    fn embed_dim(&self) -> usize {
        self.core.ae.input_dim()
    }
    fn forward(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
    ) -> Result<Tensor> {
        let default = InterchangeDim::Dims(self.dims.clone());
        let (name, selective) = (self.type_name(), self.selective);
        self.core
            .intervene(name, base, source, selection, &default, selective)
    }
    fn vars(&self) -> Vec<Var> {
        self.layer.as_ref().map(|l| l.vars()).unwrap_or_default()
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        let tensors = match &self.layer {
            Some(layer) => layer.state_dict(),
            None => {
                self.core
                    .ae
                    .state()?
                    .ok_or_else(|| {
                        InterventionError::Unsupported(
                            "AutoencoderIntervention around a custom autoencoder that does not \
                             implement Autoencoder::state cannot be saved"
                                .into(),
                        )
                    })?
                    .tensors
            }
        };
        let dev = Device::Cpu;
        let mut out: Vec<(String, Tensor)> = tensors
            .into_iter()
            .map(|(n, t)| (format!("autoencoder.{n}"), t))
            .collect();
        out.push(embed_dim_entry(self.embed_dim())?);
        out.push((
            "interchange_dim".into(),
            InterchangeDim::Dims(self.dims.clone()).to_tensor(&dev)?,
        ));
        Ok(out)
    }
    fn hyperparams(&self) -> serde_json::Value {
        let mut h = serde_json::json!({
            "embed_dim": self.embed_dim(),
            "latent_dim": self.latent_dim(),
            "interchange_dim": InterchangeDim::Dims(self.dims.clone()),
            "mode": self.core.mode,
        });
        // an autoencoder other than pyvene's layer: what kind to rebuild on load
        if self.layer.is_none() {
            if let Ok(Some(state)) = self.core.ae.state() {
                h["autoencoder_kind"] = serde_json::json!(state.kind);
                h["autoencoder_settings"] = state.settings;
            }
        }
        h
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        let (device, dtype) = match (placement.device(), placement.autoencoder_dtype()) {
            (Some(device), Some(dtype)) => (device.clone(), dtype),
            _ => {
                let (device, dtype) = self.placement()?;
                placement.resolve_autoencoder(&device, dtype)
            }
        };
        Ok(Box::new(AutoencoderIntervention::to(self, &device, dtype)?))
    }
}
