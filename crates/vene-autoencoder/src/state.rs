//! Rebuilding a saved autoencoder from its [`crate::AutoencoderState`].

use std::collections::HashMap;

use candle_core::Tensor;

use crate::core::{saelens_parts, Part};
use crate::util::Orient;
use crate::{
    Autoencoder, AutoencoderError, AutoencoderLayer, GatedAutoencoder, InputNormalization,
    JumpReLUAutoencoder, ReluAutoencoder, Result, TopKAutoencoder,
};

/// Rebuilds the autoencoder that [`Autoencoder::state`] described: `kind` and `settings` as
/// saved, `tensors` by SAELens's names (`W_enc`, `b_enc`, `W_dec`, `b_dec`, `threshold`;
/// `b_gate`, `r_mag`, `b_mag` for `gated`; `W_skip` for a skip connection). A transcoder
/// (`W_enc`'s input width differs from `b_dec`'s) is rebuilt as one;
/// `settings.normalize_activations` restores the input normalisation.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_autoencoder::{autoencoder_from_state, Autoencoder, TopKAutoencoder};
/// let dev = Device::Cpu;
/// let sae = TopKAutoencoder::from_tensors(
///     Tensor::new(&[[1f32, -1., 2.]], &dev)?,
///     Tensor::zeros(3, candle_core::DType::F32, &dev)?,
///     Tensor::new(&[[1f32], [1.], [1.]], &dev)?,
///     Tensor::zeros(1, candle_core::DType::F32, &dev)?,
///     1,
/// )?;
/// let state = sae.state()?.expect("TopK autoencoders can be saved");
/// let tensors = state.tensors.iter().cloned().collect();
/// let back = autoencoder_from_state(&state.kind, &state.settings, &tensors)?;
/// let x = Tensor::new(&[[3f32]], &dev)?;
/// assert_eq!(back.encode(&x)?.to_vec2::<f32>()?, sae.encode(&x)?.to_vec2::<f32>()?);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn autoencoder_from_state(
    kind: &str,
    settings: &serde_json::Value,
    tensors: &HashMap<String, Tensor>,
) -> Result<Box<dyn Autoencoder>> {
    let get = |name: &str| -> Result<Tensor> {
        tensors
            .get(name)
            .cloned()
            .ok_or_else(|| AutoencoderError::MissingTensor {
                file: format!("saved {kind} autoencoder"),
                tensor: name.to_string(),
            })
    };
    let b_enc_name = if kind == "gated" { "b_gate" } else { "b_enc" };
    let (w_enc, b_enc, w_dec, b_dec) = (
        get("W_enc")?,
        get(b_enc_name)?,
        get("W_dec")?,
        get("b_dec")?,
    );
    let source = format!("saved {kind} autoencoder");
    let layout = |name: &str| -> Result<Orient> {
        match settings.get("layout").and_then(|l| l.get(name)) {
            None | Some(serde_json::Value::Null) => Ok(Orient::InOut),
            Some(v) => v.as_str().and_then(Orient::from_name).ok_or_else(|| {
                AutoencoderError::InvalidConfig {
                    file: source.clone(),
                    key: format!("layout.{name}"),
                    message: format!("expected \"in_out\" or \"out_in\", got {v}"),
                }
            }),
        }
    };
    let (enc, dec) = (layout("W_enc")?, layout("W_dec")?);
    // A transcoder reads another width than it writes: W_enc's input side says which.
    let input_dim = match (enc, w_enc.dims(), b_dec.dims()) {
        (Orient::InOut, [i, _], [o]) | (Orient::OutIn, [_, i], [o]) if i != o => Some(*i),
        _ => None,
    };
    let norm = match settings.get("normalize_activations") {
        None | Some(serde_json::Value::Null) => InputNormalization::None,
        Some(v) => v
            .as_str()
            .and_then(InputNormalization::from_saelens_name)
            .ok_or_else(|| AutoencoderError::InvalidConfig {
                file: source.clone(),
                key: "normalize_activations".into(),
                message: format!("expected none, layer_norm or constant_norm_rescale, got {v}"),
            })?,
    };
    let w_skip = tensors.get("W_skip").cloned();
    let mut parts = saelens_parts(w_enc, b_enc, w_dec, b_dec);
    parts[1].name = b_enc_name;
    let apply_b_dec = settings
        .get("apply_b_dec_to_input")
        .and_then(serde_json::Value::as_bool);
    let extras = norm != InputNormalization::None || w_skip.is_some() || input_dim.is_some();
    // Adds the normalisation and skip connection to one of the SAE types.
    macro_rules! finish {
        ($sae:expr) => {{
            let mut sae = $sae.with_input_normalization(norm);
            if let Some(w) = w_skip.clone() {
                sae = sae.with_skip(w)?;
            }
            Box::new(match apply_b_dec {
                Some(on) => sae.with_apply_b_dec_to_input(on),
                None => sae,
            })
        }};
    }
    Ok(match kind {
        // pyvene's layer (torch layout, b_dec subtracted): rebuilt as that type, so that it
        // computes exactly as the one saved
        "relu"
            if enc == Orient::OutIn
                && dec == Orient::OutIn
                && apply_b_dec != Some(false)
                && !extras =>
        {
            Box::new(AutoencoderLayer::from_parts(&source, parts)?)
        }
        "relu" => finish!(ReluAutoencoder::from_parts(
            &source, parts, enc, dec, input_dim
        )?),
        "topk" => {
            let k = settings
                .get("k")
                .and_then(serde_json::Value::as_u64)
                .and_then(|k| usize::try_from(k).ok())
                .ok_or_else(|| AutoencoderError::InvalidConfig {
                    file: source.clone(),
                    key: "k".into(),
                    message: format!("missing or not an integer in {settings}"),
                })?;
            finish!(match input_dim {
                Some(d) => TopKAutoencoder::transcoder_from_parts(&source, parts, enc, dec, k, d)?,
                None => TopKAutoencoder::from_parts(&source, parts, enc, dec, k)?,
            })
        }
        "jumprelu" => {
            let threshold = Part::new("threshold", get("threshold")?);
            finish!(JumpReLUAutoencoder::from_parts(
                &source, parts, threshold, enc, dec, input_dim
            )?)
        }
        "gated" => {
            let mag = [
                Part::new("r_mag", get("r_mag")?),
                Part::new("b_mag", get("b_mag")?),
            ];
            finish!(GatedAutoencoder::from_parts(&source, parts, mag, enc, dec)?)
        }
        other => {
            return Err(AutoencoderError::Unsupported {
                file: "saved autoencoder".into(),
                key: "kind".into(),
                value: other.to_string(),
                supported: "relu, topk, jumprelu, gated",
            })
        }
    })
}
