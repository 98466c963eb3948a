//! Splicing SAEs into a forward pass: the activation at a site is replaced by its
//! reconstruction (SAELens's `HookedSAETransformer.run_with_saes`).

use std::sync::Arc;

use candle_core::Tensor;
use vene_autoencoder::{Autoencoder, LoadedSae};
use vene_hooks::{Component, HookCall, HookError, HookableModel, Hooks, Site};
use vene_models::{LanguageModel, LogitsAt};

use crate::{Result, VeneError};

/// An edit of the latents `[B, T, latent_dim]` made before decoding (e.g. a latent set to zero
/// or clamped): returns the edited latents, of the same shape.
pub type LatentEdit = Arc<dyn Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync>;

/// One autoencoder spliced into the model: it reads the activation at `read`, and the
/// activation at `write` is replaced by its reconstruction. For an SAE both are the same site;
/// for a transcoder (see [`Splice::transcoder`]) `read` comes earlier in the forward pass than
/// `write` (e.g. the MLP's input and its output).
///
/// With the error term ([`Splice::with_error_term`], SAELens's `use_error_term`), the
/// activation becomes `decode(edit(z)) + (a - decode(z))`: without a latent edit the model's
/// output is unchanged, and with one the change is exactly the edit's effect through the
/// decoder.
///
/// ```
/// use std::sync::Arc;
/// use candle_core::{DType, Device, Tensor};
/// use vene::autoencoder::{Autoencoder, AutoencoderLayer};
/// use vene::hooks::{Component, Site};
/// use vene::models::{Gpt2Config, LanguageModel, LogitsAt, Model};
/// use vene::Splice;
///
/// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 2, 2), DType::F32, &Device::Cpu)?;
/// let sae: Arc<dyn Autoencoder> = Arc::new(AutoencoderLayer::new(8, 16, DType::F32, &Device::Cpu)?);
/// let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
/// let splice = Splice::new(Site::new(0, Component::BlockOutput), sae);
/// let spliced = vene::run_with_saes(&model, &ids, None, &LogitsAt::All, &[splice.clone()])?;
/// assert_eq!(spliced.unwrap().dims(), &[1, 3, 32]);
/// // With the error term and no latent edit, the logits are the clean ones.
/// let clean = model.forward(&ids, None, &mut vene::hooks::NoHooks)?;
/// let exact = vene::run_with_saes(&model, &ids, None, &LogitsAt::All, &[splice.with_error_term(true)])?;
/// let diff = (clean - exact.unwrap())?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(diff < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Splice {
    read: Site,
    write: Site,
    autoencoder: Arc<dyn Autoencoder>,
    error_term: bool,
    edit: Option<LatentEdit>,
}

impl std::fmt::Debug for Splice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splice")
            .field("read", &self.read)
            .field("write", &self.write)
            .field("autoencoder", &self.autoencoder)
            .field("error_term", &self.error_term)
            .field("edit", &self.edit.is_some())
            .finish()
    }
}

impl Splice {
    /// An SAE spliced at `site`: it reads the activation there and replaces it.
    pub fn new(site: Site, autoencoder: Arc<dyn Autoencoder>) -> Self {
        Self::transcoder(site, site, autoencoder)
    }

    /// A transcoder: reads the activation at `read` and replaces the one at `write` (which the
    /// forward pass reaches after `read`, e.g. `mlp_input` then `mlp_output` of a layer).
    pub fn transcoder(read: Site, write: Site, autoencoder: Arc<dyn Autoencoder>) -> Self {
        Self {
            read,
            write,
            autoencoder,
            error_term: false,
            edit: None,
        }
    }

    /// An SAE at the site its files name (SAELens `hook_name`, sparsify hookpoint,
    /// dictionary_learning submodule: see [`sae_site`]); a transcoder (its files name an output
    /// site, [`LoadedSae::output_hook_name`]) reads its input site and writes its output site
    /// (see [`sae_sites`]).
    pub fn from_sae(sae: LoadedSae) -> Result<Self> {
        let (read, write) = sae_sites(&sae)?;
        Ok(Self::transcoder(read, write, Arc::from(sae.autoencoder)))
    }

    /// Adds (or not) the error term: the activation becomes `decode(edit(z)) + (a - decode(z))`.
    pub fn with_error_term(mut self, error_term: bool) -> Self {
        self.error_term = error_term;
        self
    }

    /// Edits the latents before they are decoded (e.g. `|z| z.narrow(..)`, a latent zeroed or
    /// clamped); the edit must keep their shape.
    pub fn with_latent_edit(mut self, edit: LatentEdit) -> Self {
        self.edit = Some(edit);
        self
    }

    /// The site read.
    pub fn read_site(&self) -> Site {
        self.read
    }

    /// The site whose activation is replaced.
    pub fn write_site(&self) -> Site {
        self.write
    }

    /// The autoencoder.
    pub fn autoencoder(&self) -> &Arc<dyn Autoencoder> {
        &self.autoencoder
    }

    /// Whether the error term is added.
    pub fn error_term(&self) -> bool {
        self.error_term
    }

    /// The same autoencoder at the same sites, without error term or latent edit: its plain
    /// reconstruction.
    pub fn reconstruction_only(&self) -> Self {
        Self::transcoder(self.read, self.write, self.autoencoder.clone())
    }

    /// Checks the sites and widths against `model`: both sites exist, are not head
    /// components, and have the widths the autoencoder reads and writes.
    pub fn check(&self, model: &dyn HookableModel) -> Result<()> {
        for (site, width, what) in [
            (self.read, self.autoencoder.input_dim(), "reads"),
            (self.write, self.autoencoder.output_dim(), "writes"),
        ] {
            model.check_site(site)?;
            if site.component.is_head() || site.component == Component::AttentionWeight {
                return Err(VeneError::Config(format!(
                    "cannot splice at {} of layer {}: splice at a whole activation (for heads, \
                     the tap such as attention_value_output)",
                    site.component, site.layer
                )));
            }
            let got = model.component_shape(site.component)?.width;
            if got == width {
                continue;
            }
            return Err(if what == "reads" {
                VeneError::AutoencoderWidth {
                    input_dim: width,
                    width: got,
                    component: site.component,
                    layer: site.layer,
                }
            } else {
                VeneError::Config(format!(
                    "the autoencoder writes activations of width {width}, but {} of layer {} \
                     has width {got}",
                    site.component, site.layer
                ))
            });
        }
        Ok(())
    }

    /// What the splice puts at its write site, given the activation it read (`input`) and
    /// the one it replaces (`target`): the output, and (when asked) the record of the step.
    fn apply(&self, input: &Tensor, target: &Tensor, record: bool) -> SpliceResult {
        let ae = &self.autoencoder;
        let z = ae.encode(input).map_err(ae_error)?;
        let needs_clean = self.error_term || record || self.edit.is_none();
        let clean = if needs_clean {
            Some(ae.decode_for(&z, input).map_err(ae_error)?)
        } else {
            None
        };
        let out = match (&self.edit, &clean) {
            (None, Some(c)) => c.clone(),
            (edit, _) => {
                let edited = match edit {
                    Some(f) => {
                        let e = f(&z)?;
                        if e.dims() != z.dims() {
                            return Err(HookError::Shape {
                                what: "edited latents".into(),
                                expected: format!("{:?}", z.dims()),
                                got: e.dims().to_vec(),
                            });
                        }
                        e
                    }
                    None => z.clone(),
                };
                ae.decode_for(&edited, input).map_err(ae_error)?
            }
        };
        let out = match (&clean, self.error_term) {
            (Some(c), true) => (&out + (target - c)?)?,
            _ => out,
        };
        if out.dims() != target.dims() {
            return Err(HookError::Shape {
                what: format!(
                    "reconstruction at {} of layer {}",
                    self.write.component, self.write.layer
                ),
                expected: format!("{:?}", target.dims()),
                got: out.dims().to_vec(),
            });
        }
        let rec = match (record, clean) {
            (true, Some(reconstruction)) => Some(SpliceRecord {
                input: input.detach(),
                target: target.detach(),
                reconstruction: reconstruction.detach(),
                latents: z.detach(),
            }),
            _ => None,
        };
        Ok((out.to_dtype(target.dtype())?, rec))
    }
}

/// An autoencoder's error, carried through the model's hook call.
fn ae_error(e: vene_autoencoder::AutoencoderError) -> HookError {
    HookError::Hook(Box::new(e))
}

type SpliceResult = std::result::Result<(Tensor, Option<SpliceRecord>), HookError>;

/// What one splice saw and made in one forward pass (kept when
/// [`SpliceHooks::recording`] is on).
#[derive(Debug, Clone)]
pub struct SpliceRecord {
    /// The activation read `[B, T, d_in]`.
    pub input: Tensor,
    /// The activation replaced `[B, T, d_out]` (the same as `input` for an SAE).
    pub target: Tensor,
    /// The plain reconstruction `decode(z)` (no edit, no error term).
    pub reconstruction: Tensor,
    /// The latents `z` `[B, T, latent_dim]`, before any edit.
    pub latents: Tensor,
}

/// The [`Hooks`] that splice a set of autoencoders into a forward pass (also a generation:
/// pass them to `vene::models::generate`). Splices that write the same site apply in order.
#[derive(Debug)]
pub struct SpliceHooks {
    splices: Vec<Splice>,
    inputs: Vec<Option<Tensor>>,
    record: bool,
    records: Vec<Option<SpliceRecord>>,
}

impl SpliceHooks {
    /// Hooks for `splices`.
    pub fn new(splices: Vec<Splice>) -> Self {
        let n = splices.len();
        Self {
            splices,
            inputs: vec![None; n],
            record: false,
            records: vec![None; n],
        }
    }

    /// Hooks for `splices`, each checked against `model` ([`Splice::check`]).
    pub fn for_model(model: &dyn HookableModel, splices: Vec<Splice>) -> Result<Self> {
        for s in &splices {
            s.check(model)?;
        }
        Ok(Self::new(splices))
    }

    /// Keeps, for each splice, what it read and made in the last forward pass
    /// ([`SpliceHooks::take_records`]).
    pub fn recording(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// The records of the last forward pass, one per splice in order (`None` for a splice
    /// that did not run, or when recording is off).
    pub fn take_records(&mut self) -> Vec<Option<SpliceRecord>> {
        std::mem::replace(&mut self.records, vec![None; self.splices.len()])
    }
}

impl Hooks for SpliceHooks {
    fn is_active(&self, site: Site) -> bool {
        self.splices
            .iter()
            .any(|s| s.read == site || s.write == site)
    }

    fn on_activation(&mut self, call: HookCall, activation: Tensor) -> vene_hooks::Result<Tensor> {
        for (i, s) in self.splices.iter().enumerate() {
            if s.read == call.site && s.read != s.write {
                self.inputs[i] = Some(activation.clone());
            }
        }
        let mut x = activation;
        for (i, s) in self.splices.iter().enumerate() {
            if s.write != call.site {
                continue;
            }
            let input = if s.read == s.write {
                x.clone()
            } else {
                self.inputs[i].take().ok_or_else(|| {
                    HookError::Hook(
                        format!(
                            "the transcoder writing {} of layer {} reads {} of layer {}, which \
                             the forward pass had not reached: read a site that comes before \
                             the one written",
                            s.write.component, s.write.layer, s.read.component, s.read.layer
                        )
                        .into(),
                    )
                })?
            };
            let (out, rec) = s.apply(&input, &x, self.record)?;
            if rec.is_some() {
                self.records[i] = rec;
            }
            x = out;
        }
        Ok(x)
    }
}

/// The site an SAE's files name: its SAELens `hook_name`, sparsify hookpoint or
/// dictionary_learning submodule (read by [`vene_hooks::site_from_name`]), else
/// `block_output` of the layer its files name; an error when they name neither.
pub fn sae_site(sae: &LoadedSae) -> Result<Site> {
    sae_own_site(sae).ok_or_else(|| {
        VeneError::Config(format!(
            "the SAE's files name no site ({}): give the site yourself",
            sae.hook_name
                .as_deref()
                .map_or("no hook name".to_string(), |h| format!("hook name {h:?}"))
        ))
    })
}

/// The sites an SAE or transcoder reads and writes: both [`sae_site`] for an SAE; for a
/// transcoder (its files name an output hook) the input site and the output site. A sparsify
/// transcoder names one module for both (it reads the module's input and predicts its output):
/// `layers.6.mlp` reads `mlp_input` and writes `mlp_output` of layer 6.
pub fn sae_sites(sae: &LoadedSae) -> Result<(Site, Site)> {
    let read = sae_site(sae)?;
    let Some(out) = sae.output_hook_name.as_deref() else {
        return Ok((read, read));
    };
    let (layer, component) = vene_hooks::site_from_name(out).ok_or_else(|| {
        VeneError::Config(format!(
            "the transcoder's output hook {out:?} names no site vene knows: give the sites \
             yourself with Splice::transcoder"
        ))
    })?;
    let write = Site::new(layer, component);
    if sae.hook_name.as_deref() != Some(out) {
        return Ok((read, write));
    }
    let input = match component {
        Component::MlpOutput => Component::MlpInput,
        Component::AttentionOutput => Component::AttentionInput,
        Component::BlockOutput => Component::BlockInput,
        other => {
            return Err(VeneError::Config(format!(
                "the transcoder reads and writes {out:?} ({other}): vene knows no input of it; \
                 give the sites yourself with Splice::transcoder"
            )))
        }
    };
    Ok((Site::new(layer, input), write))
}

/// [`sae_site`], `None` when the files name no site.
pub(crate) fn sae_own_site(sae: &LoadedSae) -> Option<Site> {
    match sae
        .hook_name
        .as_deref()
        .and_then(vene_hooks::site_from_name)
    {
        Some((layer, component)) => Some(Site::new(layer, component)),
        None => sae.layer.map(|l| Site::new(l, Component::BlockOutput)),
    }
}

/// One forward pass of `model` with `splices` spliced in: the logits where `logits` says
/// (`None` for [`LogitsAt::Nothing`]). Each splice is checked against the model first.
/// See [`Splice`] for an example.
pub fn run_with_saes(
    model: &dyn LanguageModel,
    input_ids: &Tensor,
    attention_mask: Option<&Tensor>,
    logits: &LogitsAt,
    splices: &[Splice],
) -> Result<Option<Tensor>> {
    let mut hooks = SpliceHooks::for_model(model, splices.to_vec())?;
    Ok(model.forward_logits_at(input_ids, attention_mask, None, logits, &mut hooks)?)
}
