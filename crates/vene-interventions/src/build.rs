//! Rebuilding a built-in intervention from its type name, hyperparameters and state dict.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::AutoencoderLayer;

use crate::autoencoder::AutoencoderMode;
use crate::selection::InterchangeDim;
use crate::{
    AdditionIntervention, AutoencoderIntervention, BoundlessRotatedSpaceIntervention,
    CollectIntervention, Intervention, InterventionError, JumpReLUAutoencoderIntervention,
    LowRankRotatedSpaceIntervention, NoiseIntervention, PCARotatedSpaceIntervention, Result,
    RotatedSpaceIntervention, SigmoidMaskIntervention, SigmoidMaskRotatedSpaceIntervention,
    SkipIntervention, SubtractionIntervention, VanillaIntervention, ZeroIntervention,
    DEFAULT_NOISE_LEVEL,
};

/// The type names of the built-in interventions (pyvene's class names).
pub const TYPE_NAMES: [&str; 15] = [
    "VanillaIntervention",
    "AdditionIntervention",
    "SubtractionIntervention",
    "ZeroIntervention",
    "CollectIntervention",
    "SkipIntervention",
    "NoiseIntervention",
    "RotatedSpaceIntervention",
    "LowRankRotatedSpaceIntervention",
    "BoundlessRotatedSpaceIntervention",
    "SigmoidMaskRotatedSpaceIntervention",
    "SigmoidMaskIntervention",
    "AutoencoderIntervention",
    "JumpReLUAutoencoderIntervention",
    "PCARotatedSpaceIntervention",
];

/// Whether an intervention of type `type_name` has state that cannot be rebuilt from its
/// hyperparameters (trained or loaded weights: rotations, masks, autoencoders), so that a
/// saved folder without its state file is incomplete. pyvene's `TrainableIntervention`s.
///
/// ```
/// use vene_interventions::needs_saved_state;
/// assert!(needs_saved_state("RotatedSpaceIntervention"));
/// assert!(needs_saved_state("<class 'pyvene.models.interventions.AutoencoderIntervention'>"));
/// assert!(!needs_saved_state("VanillaIntervention"));
/// ```
pub fn needs_saved_state(type_name: &str) -> bool {
    matches!(
        parse_type_name(type_name),
        Ok("RotatedSpaceIntervention"
            | "LowRankRotatedSpaceIntervention"
            | "BoundlessRotatedSpaceIntervention"
            | "SigmoidMaskRotatedSpaceIntervention"
            | "SigmoidMaskIntervention"
            | "AutoencoderIntervention"
            | "JumpReLUAutoencoderIntervention"
            | "PCARotatedSpaceIntervention")
    )
}

/// The built-in type name in `s`: `"VanillaIntervention"`, pyvene's
/// `"<class 'pyvene.models.interventions.VanillaIntervention'>"` or a dotted path.
///
/// ```
/// use vene_interventions::parse_type_name;
/// let s = "<class 'pyvene.models.interventions.AutoencoderIntervention'>";
/// assert_eq!(parse_type_name(s)?, "AutoencoderIntervention");
/// assert!(parse_type_name("FooIntervention").is_err());
/// # Ok::<(), vene_interventions::InterventionError>(())
/// ```
pub fn parse_type_name(s: &str) -> Result<&'static str> {
    let last = bare_type_name(s);
    TYPE_NAMES
        .iter()
        .find(|n| **n == last)
        .copied()
        .ok_or_else(|| InterventionError::UnknownType(s.to_string()))
}

struct Ctx<'a> {
    type_name: &'static str,
    hp: &'a serde_json::Value,
    state: &'a HashMap<String, Tensor>,
    device: &'a Device,
    dtype: DType,
}

impl Ctx<'_> {
    fn bad(&self, key: &'static str, reason: impl Into<String>) -> InterventionError {
        InterventionError::BadHyperparam {
            type_name: self.type_name,
            key,
            reason: reason.into(),
        }
    }

    fn usize(&self, key: &'static str) -> Result<Option<usize>> {
        match self.hp.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|u| usize::try_from(u).ok())
                .map(Some)
                .ok_or_else(|| self.bad(key, format!("expected a non-negative integer, got {v}"))),
        }
    }

    fn f64(&self, key: &'static str) -> Result<Option<f64>> {
        match self.hp.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, format!("expected a number, got {v}"))),
        }
    }

    /// A float tensor from the state dict, on the target device and dtype.
    fn tensor(&self, key: &str) -> Result<Option<Tensor>> {
        self.state
            .get(key)
            .map(|t| Ok(t.to_device(self.device)?.to_dtype(self.dtype)?))
            .transpose()
    }

    fn required(&self, key: &str) -> Result<Tensor> {
        self.tensor(key)?
            .ok_or_else(|| InterventionError::MissingState {
                type_name: self.type_name,
                key: key.to_string(),
            })
    }

    fn scalar(&self, key: &str) -> Result<Option<f64>> {
        self.state
            .get(key)
            .map(|t| {
                Ok(t.to_dtype(DType::F64)?
                    .flatten_all()?
                    .get(0)?
                    .to_scalar::<f64>()?)
            })
            .transpose()
    }

    /// `interchange_dim` from the hyperparameters, else the state dict's buffer.
    fn interchange_dim(&self) -> Result<Option<InterchangeDim>> {
        if let Some(v) = self.hp.get("interchange_dim").filter(|v| !v.is_null()) {
            if let Some(k) = v.as_u64() {
                return Ok(Some(InterchangeDim::First(k as usize)));
            }
            if v.is_array() {
                let dims: Vec<usize> = serde_json::from_value(v.clone())
                    .map_err(|e| self.bad("interchange_dim", e.to_string()))?;
                return Ok(Some(InterchangeDim::Dims(dims)));
            }
            return serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| self.bad("interchange_dim", e.to_string()));
        }
        self.state
            .get("interchange_dim")
            .map(InterchangeDim::from_tensor)
            .transpose()
    }

    fn seed(&self) -> Result<u64> {
        Ok(self.usize("seed")?.unwrap_or(0) as u64)
    }

    fn temperature(&self, default: f64) -> Result<f64> {
        Ok(match self.f64("temperature")? {
            Some(t) => t,
            None => self.scalar("temperature")?.unwrap_or(default),
        })
    }
}

/// The class name alone: `"<class 'pyvene.models.interventions.X'>"` or `a.b.X` to `X`.
fn bare_type_name(s: &str) -> &str {
    let t = s.trim();
    let t = t
        .strip_prefix("<class '")
        .and_then(|r| r.strip_suffix("'>"))
        .unwrap_or(t);
    t.rsplit('.').next().unwrap_or(t)
}

/// Rebuilds a built-in intervention (for load), or builds a fresh one when `state` lacks its
/// tensors (for a config); a type registered with [`crate::register_intervention`] is built by
/// its constructor.
///
/// `type_name` is parsed by [`parse_type_name`]. `hyperparams` is what
/// [`Intervention::hyperparams`] returned (keys: `interchange_dim`, `latent_dim`,
/// `low_rank_dimension`, `temperature`, `seed`, `noise_level`, `units`, `mode`); `state` is
/// what [`Intervention::state_dict`] returned (pyvene's names). Float tensors are moved to
/// `device` and cast to `dtype`.
///
/// ```
/// use std::collections::HashMap;
/// use candle_core::{DType, Device};
/// use vene_interventions::{build_intervention, Intervention};
///
/// let iv = build_intervention(
///     "<class 'pyvene.models.interventions.LowRankRotatedSpaceIntervention'>",
///     16, &serde_json::json!({"low_rank_dimension": 2}), &HashMap::new(), &Device::Cpu, DType::F32)?;
/// let saved: HashMap<_, _> = iv.state_dict()?.into_iter().collect();
/// let again = build_intervention(iv.type_name(), 16, &iv.hyperparams(), &saved, &Device::Cpu, DType::F32)?;
/// assert_eq!(again.type_name(), "LowRankRotatedSpaceIntervention");
/// # Ok::<(), vene_interventions::InterventionError>(())
/// ```
pub fn build_intervention(
    type_name: &str,
    embed_dim: usize,
    hyperparams: &serde_json::Value,
    state: &HashMap<String, Tensor>,
    device: &Device,
    dtype: DType,
) -> Result<Box<dyn Intervention>> {
    let type_name = match parse_type_name(type_name) {
        Ok(t) => t,
        Err(e) => {
            let bare = bare_type_name(type_name);
            return match crate::registry::registered(bare) {
                Some(constructor) => constructor(&crate::BuildArgs {
                    embed_dim,
                    hyperparams,
                    state,
                    device,
                    dtype,
                }),
                None => Err(e),
            };
        }
    };
    let c = Ctx {
        type_name,
        hp: hyperparams,
        state,
        device,
        dtype,
    };
    let idim = c.interchange_dim()?;
    let constant = c.tensor("source_representation")?;
    macro_rules! localist {
        ($ty:ident, $constant:expr) => {{
            let mut iv = $ty::new(embed_dim);
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            if $constant {
                if let Some(s) = &constant {
                    iv = localist!(@with_source iv, s);
                }
            }
            Box::new(iv) as Box<dyn Intervention>
        }};
        (@with_source $iv:ident, $s:ident) => { $iv.with_source($s)? };
    }
    let iv: Box<dyn Intervention> = match type_name {
        "VanillaIntervention" => localist!(VanillaIntervention, true),
        "AdditionIntervention" => localist!(AdditionIntervention, true),
        "SubtractionIntervention" => localist!(SubtractionIntervention, true),
        "ZeroIntervention" => {
            let mut iv = ZeroIntervention::new(embed_dim);
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            Box::new(iv)
        }
        "CollectIntervention" => {
            let mut iv = CollectIntervention::new(embed_dim);
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            Box::new(iv)
        }
        "SkipIntervention" => {
            let mut iv = SkipIntervention::new(embed_dim);
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            Box::new(iv)
        }
        "NoiseIntervention" => {
            let level = match c.f64("noise_level")? {
                Some(l) => l as f32,
                None => c
                    .scalar("noise_level")?
                    .map_or(DEFAULT_NOISE_LEVEL, |l| l as f32),
            };
            let mut iv = match state.get("noise") {
                Some(noise) => {
                    let mut iv = NoiseIntervention::from_noise(noise, level)?;
                    if let Some(seed) = c.usize("seed")? {
                        iv.set_seed(
                            u32::try_from(seed).map_err(|_| c.bad("seed", "must fit in u32"))?,
                        );
                    }
                    iv
                }
                None => {
                    let seed = c.usize("seed")?.unwrap_or(1);
                    let seed = u32::try_from(seed).map_err(|_| c.bad("seed", "must fit in u32"))?;
                    let units = c.usize("units")?.unwrap_or(4);
                    NoiseIntervention::with_seed(embed_dim, seed, units, level)?
                }
            };
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            Box::new(iv)
        }
        "RotatedSpaceIntervention" => {
            let mut iv = match c.tensor("rotate_layer.weight")? {
                Some(r) => RotatedSpaceIntervention::from_rotation(&r)?,
                None => RotatedSpaceIntervention::new(embed_dim, c.seed()?, dtype, device)?,
            };
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            Box::new(iv)
        }
        "LowRankRotatedSpaceIntervention" => match c.tensor("rotate_layer.weight")? {
            Some(r) => Box::new(LowRankRotatedSpaceIntervention::from_rotation(&r)?),
            None => {
                let k = c
                    .usize("low_rank_dimension")?
                    .ok_or_else(|| c.bad("low_rank_dimension", "missing"))?;
                Box::new(LowRankRotatedSpaceIntervention::new(
                    embed_dim,
                    k,
                    c.seed()?,
                    dtype,
                    device,
                )?)
            }
        },
        "BoundlessRotatedSpaceIntervention" => {
            let t = c.temperature(50.0)?;
            let iv = match c.tensor("rotate_layer.weight")? {
                Some(r) => {
                    let b = c.scalar("intervention_boundaries")?.unwrap_or(0.5);
                    BoundlessRotatedSpaceIntervention::from_parts(&r, b, t)?
                }
                None => {
                    BoundlessRotatedSpaceIntervention::new(embed_dim, c.seed()?, dtype, device)?
                }
            };
            iv.set_temperature(t)?;
            Box::new(iv)
        }
        "SigmoidMaskRotatedSpaceIntervention" => {
            let t = c.temperature(50.0)?;
            let iv = match c.tensor("rotate_layer.weight")? {
                Some(r) => {
                    SigmoidMaskRotatedSpaceIntervention::from_parts(&r, &c.required("masks")?, t)?
                }
                None => {
                    SigmoidMaskRotatedSpaceIntervention::new(embed_dim, c.seed()?, dtype, device)?
                }
            };
            iv.set_temperature(t)?;
            Box::new(iv)
        }
        "SigmoidMaskIntervention" => {
            let t = c.temperature(0.01)?;
            let iv = match c.tensor("mask")? {
                Some(m) => SigmoidMaskIntervention::from_parts(&m, t)?,
                None => SigmoidMaskIntervention::new(embed_dim, dtype, device)?,
            };
            iv.set_temperature(t)?;
            Box::new(iv)
        }
        "AutoencoderIntervention" if hyperparams.get("autoencoder_kind").is_some() => {
            let kind = hyperparams
                .get("autoencoder_kind")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| c.bad("autoencoder_kind", "not a string"))?;
            let settings = hyperparams
                .get("autoencoder_settings")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            let tensors: HashMap<String, Tensor> = state
                .iter()
                .filter_map(|(k, t)| k.strip_prefix("autoencoder.").map(|n| (n, t)))
                .map(|(n, t)| Ok((n.to_string(), t.to_device(device)?.to_dtype(dtype)?)))
                .collect::<Result<_>>()?;
            let ae = vene_autoencoder::autoencoder_from_state(kind, &settings, &tensors)?;
            let iv = AutoencoderIntervention::new(std::sync::Arc::from(ae))?;
            Box::new(with_saved_settings(iv, idim, hyperparams, &c)?)
        }
        "AutoencoderIntervention" => {
            let layer = if state.contains_key("autoencoder.encoder.0.weight") {
                let moved: HashMap<String, Tensor> = state
                    .iter()
                    .filter(|(k, _)| k.starts_with("autoencoder."))
                    .map(|(k, t)| Ok((k.clone(), t.to_device(device)?.to_dtype(dtype)?)))
                    .collect::<Result<_>>()?;
                AutoencoderLayer::from_state_dict(&moved, "autoencoder.", "state dict")?
            } else {
                let l = c
                    .usize("latent_dim")?
                    .ok_or_else(|| c.bad("latent_dim", "missing (pyvene: 'Missing latent_dim')"))?;
                crate::state::check_new_size(type_name, "latent_dim", &[embed_dim, l])?;
                AutoencoderLayer::new(embed_dim, l, dtype, device)?
            };
            let iv = AutoencoderIntervention::from_layer(layer)?;
            Box::new(with_saved_settings(iv, idim, hyperparams, &c)?)
        }
        "PCARotatedSpaceIntervention" => {
            let components = c.tensor("pca_components")?.ok_or_else(|| {
                c.bad(
                    "pca",
                    "no fitted PCA (pyvene's `pca` kwarg): fit one with \
                     PCARotatedSpaceIntervention::fit and give it as the intervention object",
                )
            })?;
            let mut iv = PCARotatedSpaceIntervention::from_parts(
                &components,
                &c.required("pca_mean")?,
                &c.required("pca_std")?,
            )?;
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            Box::new(iv)
        }
        "JumpReLUAutoencoderIntervention" => {
            let (we, wd, be, bd, th) = if state.contains_key("W_enc") {
                (
                    c.required("W_enc")?,
                    c.required("W_dec")?,
                    c.required("b_enc")?,
                    c.required("b_dec")?,
                    c.required("threshold")?,
                )
            } else {
                // pyvene initialises zeros and expects pre-trained weights to be loaded.
                let l = c
                    .usize("low_rank_dimension")?
                    .ok_or_else(|| c.bad("low_rank_dimension", "missing"))?;
                crate::state::check_new_size(type_name, "low_rank_dimension", &[embed_dim, l])?;
                let z = |s: &[usize]| Tensor::zeros(s, dtype, device);
                (
                    z(&[embed_dim, l])?,
                    z(&[l, embed_dim])?,
                    z(&[l])?,
                    z(&[embed_dim])?,
                    z(&[l])?,
                )
            };
            let mut iv = JumpReLUAutoencoderIntervention::from_tensors(we, be, wd, bd, th)?;
            if let Some(d) = idim {
                iv.set_interchange_dim(d)?;
            }
            if let Some(m) = hyperparams.get("mode").filter(|v| !v.is_null()) {
                let mode: AutoencoderMode =
                    serde_json::from_value(m.clone()).map_err(|e| c.bad("mode", e.to_string()))?;
                iv = iv.with_mode(mode);
            }
            Box::new(iv)
        }
        other => return Err(InterventionError::UnknownType(other.to_string())),
    };
    if iv.embed_dim() != embed_dim {
        return Err(InterventionError::BadHyperparam {
            type_name,
            key: "embed_dim",
            reason: format!(
                "the state dict's tensors have width {}, the representation has {embed_dim}",
                iv.embed_dim()
            ),
        });
    }
    Ok(iv)
}

/// The saved dims and mode of an autoencoder intervention, applied to a rebuilt one.
fn with_saved_settings(
    mut iv: AutoencoderIntervention,
    idim: Option<InterchangeDim>,
    hyperparams: &serde_json::Value,
    c: &Ctx<'_>,
) -> Result<AutoencoderIntervention> {
    match idim {
        Some(InterchangeDim::Dims(d)) => iv.set_interchange_dim(d)?,
        Some(InterchangeDim::First(k)) => iv.set_interchange_dim(vec![k])?,
        None => {}
    }
    if let Some(m) = hyperparams.get("mode").filter(|v| !v.is_null()) {
        let mode: AutoencoderMode =
            serde_json::from_value(m.clone()).map_err(|e| c.bad("mode", e.to_string()))?;
        iv = iv.with_mode(mode);
    }
    Ok(iv)
}
