//! Rebuilding a saved autoencoder from its [`crate::AutoencoderState`].

use std::collections::HashMap;

use candle_core::Tensor;

use crate::core::{saelens_parts, Part};
use crate::util::Orient;
use crate::{
    Autoencoder, AutoencoderError, AutoencoderLayer, JumpReLUAutoencoder, ReluAutoencoder, Result,
    TopKAutoencoder,
};

/// Rebuilds the autoencoder that [`Autoencoder::state`] described: `kind` and `settings` as
/// saved, `tensors` by SAELens's names (`W_enc`, `b_enc`, `W_dec`, `b_dec`, `threshold`).
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
    let (w_enc, b_enc, w_dec, b_dec) = (get("W_enc")?, get("b_enc")?, get("W_dec")?, get("b_dec")?);
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
    let parts = saelens_parts(w_enc, b_enc, w_dec, b_dec);
    let apply_b_dec = settings
        .get("apply_b_dec_to_input")
        .and_then(serde_json::Value::as_bool);
    Ok(match kind {
        // pyvene's layer (torch layout, b_dec subtracted): rebuilt as that type, so that it
        // computes exactly as the one saved
        "relu" if enc == Orient::OutIn && dec == Orient::OutIn && apply_b_dec != Some(false) => {
            Box::new(AutoencoderLayer::from_parts(&source, parts)?)
        }
        "relu" => {
            let sae = ReluAutoencoder::from_parts(&source, parts, enc, dec)?;
            Box::new(match apply_b_dec {
                Some(on) => sae.with_apply_b_dec_to_input(on),
                None => sae,
            })
        }
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
            let sae = TopKAutoencoder::from_parts(&source, parts, enc, dec, k)?;
            Box::new(match apply_b_dec {
                Some(on) => sae.with_apply_b_dec_to_input(on),
                None => sae,
            })
        }
        "jumprelu" => {
            let threshold = Part::new("threshold", get("threshold")?);
            let sae = JumpReLUAutoencoder::from_parts(&source, parts, threshold, enc, dec)?;
            Box::new(match apply_b_dec {
                Some(on) => sae.with_apply_b_dec_to_input(on),
                None => sae,
            })
        }
        other => {
            return Err(AutoencoderError::Unsupported {
                file: "saved autoencoder".into(),
                key: "kind".into(),
                value: other.to_string(),
                supported: "relu, topk, jumprelu",
            })
        }
    })
}
