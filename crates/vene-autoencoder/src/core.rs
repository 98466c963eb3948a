//! The shared engine of this crate's autoencoders: one linear encoder, an elementwise (or
//! TopK) activation, one affine decoder. The public types wrap it.

use candle_core::{DType, Device, Tensor};

use crate::util::{all_finite, check_width, dims_index, matmul_last, to_dtype, Orient};
use crate::{AutoencoderError, Result};

/// The encoder's nonlinearity.
#[derive(Debug, Clone)]
pub(crate) enum Activation {
    /// `relu(pre)`.
    Relu,
    /// `relu(pre) * (pre > threshold)`, threshold `[latent_dim]`.
    JumpRelu { threshold: Tensor },
    /// `relu(pre)` with all but the `k` largest entries of each row set to zero.
    TopK { k: usize },
}

/// A named tensor handed to [`LinearSae::new`], so that errors can name it.
pub(crate) struct Part<'a> {
    pub name: &'a str,
    pub tensor: Tensor,
}

impl<'a> Part<'a> {
    pub(crate) fn new(name: &'a str, tensor: Tensor) -> Self {
        Self { name, tensor }
    }
}

/// The four tensors of a linear SAE under SAELens's names: `W_enc`, `b_enc`, `W_dec`, `b_dec`.
pub(crate) fn saelens_parts(
    w_enc: Tensor,
    b_enc: Tensor,
    w_dec: Tensor,
    b_dec: Tensor,
) -> [Part<'static>; 4] {
    [
        Part::new("W_enc", w_enc),
        Part::new("b_enc", b_enc),
        Part::new("W_dec", w_dec),
        Part::new("b_dec", b_dec),
    ]
}

/// Weights and activation of a linear sparse autoencoder.
#[derive(Debug, Clone)]
pub(crate) struct LinearSae {
    w_enc: Tensor,
    enc_orient: Orient,
    b_enc: Tensor,
    w_dec: Tensor,
    dec_orient: Orient,
    b_dec: Tensor,
    subtract_b_dec: bool,
    act: Activation,
    input_dim: usize,
    latent_dim: usize,
}

/// What the threshold part of [`LinearSae::new`] is.
pub(crate) enum ActSpec<'a> {
    Relu,
    JumpRelu(Part<'a>),
    TopK(usize),
}

fn expect_shape(source: &str, part: &Part<'_>, want: &[usize]) -> Result<()> {
    if part.tensor.dims() == want {
        Ok(())
    } else {
        Err(AutoencoderError::ShapeMismatch {
            file: source.to_string(),
            tensor: part.name.to_string(),
            expected: format!("{want:?}"),
            got: part.tensor.dims().to_vec(),
        })
    }
}

fn matrix_shape(orient: Orient, input: usize, output: usize) -> [usize; 2] {
    match orient {
        Orient::OutIn => [output, input],
        Orient::InOut => [input, output],
    }
}

impl LinearSae {
    /// Checks shapes (width from `b_dec`, latent width from `b_enc`), dtypes, devices and
    /// finiteness, and builds the engine. `parts`: W_enc, b_enc, W_dec, b_dec, the weights
    /// oriented as `enc_orient` / `dec_orient`. `source` names the file or constructor in errors.
    pub(crate) fn new(
        source: &str,
        parts: [Part<'_>; 4],
        enc_orient: Orient,
        dec_orient: Orient,
        act: ActSpec<'_>,
        subtract_b_dec: bool,
    ) -> Result<Self> {
        // Kept contiguous, so that the tensors saved are the tensors computed with.
        let [w_enc, b_enc, w_dec, b_dec] = parts.map(|p| {
            let tensor = p.tensor.contiguous().unwrap_or(p.tensor);
            Part::new(p.name, tensor)
        });
        let rank1 = |p: &Part<'_>| -> Result<usize> {
            match p.tensor.dims() {
                [n] => Ok(*n),
                other => Err(AutoencoderError::ShapeMismatch {
                    file: source.to_string(),
                    tensor: p.name.to_string(),
                    expected: "a vector".into(),
                    got: other.to_vec(),
                }),
            }
        };
        let input_dim = rank1(&b_dec)?;
        let latent_dim = rank1(&b_enc)?;
        expect_shape(
            source,
            &w_enc,
            &matrix_shape(enc_orient, input_dim, latent_dim),
        )?;
        expect_shape(
            source,
            &w_dec,
            &matrix_shape(dec_orient, latent_dim, input_dim),
        )?;
        let mut parts = vec![&w_enc, &b_enc, &w_dec, &b_dec];
        if let ActSpec::JumpRelu(t) = &act {
            expect_shape(source, t, &[latent_dim])?;
            parts.push(t);
        }
        if let ActSpec::TopK(k) = act {
            if k == 0 || k > latent_dim {
                return Err(AutoencoderError::InvalidArgument(format!(
                    "{source}: k = {k} must be in 1..={latent_dim} (the latent width)"
                )));
            }
        }
        let dtype = w_enc.tensor.dtype();
        let device = w_enc.tensor.device().clone();
        for p in &parts {
            if p.tensor.dtype() != dtype {
                return Err(AutoencoderError::DTypeMismatch(format!(
                    "{source}: `{}` is {:?} but `{}` is {:?}",
                    p.name,
                    p.tensor.dtype(),
                    w_enc.name,
                    dtype
                )));
            }
            if !p.tensor.device().same_device(&device) {
                return Err(AutoencoderError::InvalidArgument(format!(
                    "{source}: `{}` is on a different device than `{}`",
                    p.name, w_enc.name
                )));
            }
            if !dtype.is_float() {
                return Err(AutoencoderError::DTypeMismatch(format!(
                    "{source}: `{}` is {dtype:?}, weights must be floating point",
                    p.name
                )));
            }
            if !all_finite(&p.tensor)? {
                return Err(AutoencoderError::NonFinite {
                    file: source.to_string(),
                    tensor: p.name.to_string(),
                });
            }
        }
        let act = match act {
            ActSpec::Relu => Activation::Relu,
            ActSpec::JumpRelu(t) => Activation::JumpRelu {
                threshold: t.tensor,
            },
            ActSpec::TopK(k) => Activation::TopK { k },
        };
        Ok(Self {
            w_enc: w_enc.tensor,
            enc_orient,
            b_enc: b_enc.tensor,
            w_dec: w_dec.tensor,
            dec_orient,
            b_dec: b_dec.tensor,
            subtract_b_dec,
            act,
            input_dim,
            latent_dim,
        })
    }

    pub(crate) fn input_dim(&self) -> usize {
        self.input_dim
    }

    pub(crate) fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    pub(crate) fn dtype(&self) -> DType {
        self.w_enc.dtype()
    }

    pub(crate) fn device(&self) -> &Device {
        self.w_enc.device()
    }

    pub(crate) fn w_enc(&self) -> &Tensor {
        &self.w_enc
    }

    pub(crate) fn b_enc(&self) -> &Tensor {
        &self.b_enc
    }

    pub(crate) fn w_dec(&self) -> &Tensor {
        &self.w_dec
    }

    pub(crate) fn b_dec(&self) -> &Tensor {
        &self.b_dec
    }

    pub(crate) fn threshold(&self) -> Option<&Tensor> {
        match &self.act {
            Activation::JumpRelu { threshold } => Some(threshold),
            _ => None,
        }
    }

    pub(crate) fn subtract_b_dec(&self) -> bool {
        self.subtract_b_dec
    }

    pub(crate) fn set_subtract_b_dec(&mut self, on: bool) {
        self.subtract_b_dec = on;
    }

    /// The encoder input in the weights' dtype: `x - b_dec` or `x`.
    fn encoder_input(&self, x: &Tensor) -> Result<Tensor> {
        check_width(x, self.input_dim, "input")?;
        let x = to_dtype(x, self.dtype())?;
        if self.subtract_b_dec {
            Ok(x.broadcast_sub(&self.b_dec)?)
        } else {
            Ok(x)
        }
    }

    /// Pre-activations `[..., latent_dim]` in the weights' dtype.
    pub(crate) fn pre_activations(&self, x: &Tensor) -> Result<Tensor> {
        let xin = self.encoder_input(x)?;
        Ok(matmul_last(&xin, &self.w_enc, self.enc_orient)?.broadcast_add(&self.b_enc)?)
    }

    /// The activation applied to `pre`, with `threshold` for the JumpReLU case.
    fn activate(&self, pre: &Tensor, threshold: Option<&Tensor>) -> Result<Tensor> {
        let r = pre.relu()?;
        match (&self.act, threshold) {
            (Activation::JumpRelu { .. }, Some(t)) => {
                let mask = pre.broadcast_gt(t)?.to_dtype(pre.dtype())?;
                Ok((r * mask)?)
            }
            (Activation::TopK { k }, _) => topk_last(&r, *k),
            _ => Ok(r),
        }
    }

    /// Latents in the weights' dtype.
    pub(crate) fn encode_raw(&self, x: &Tensor) -> Result<Tensor> {
        let pre = self.pre_activations(x)?;
        self.activate(&pre, self.threshold())
    }

    pub(crate) fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.encode_raw(x)?;
        to_dtype(&z, x.dtype())
    }

    pub(crate) fn encode_selected(&self, x: &Tensor, dims: &[usize]) -> Result<Tensor> {
        let idx = dims_index(dims, self.latent_dim, self.device())?;
        if let Activation::TopK { .. } = self.act {
            // TopK needs every latent to know which survive.
            let z = self.encode(x)?;
            return Ok(z.index_select(&idx, z.rank() - 1)?);
        }
        let xin = self.encoder_input(x)?;
        if dims.is_empty() {
            let mut shape = x.dims().to_vec();
            if let Some(last) = shape.last_mut() {
                *last = 0;
            }
            return Ok(Tensor::zeros(shape, x.dtype(), x.device())?);
        }
        let w = match self.enc_orient {
            Orient::OutIn => self.w_enc.index_select(&idx, 0)?,
            Orient::InOut => self.w_enc.index_select(&idx, 1)?,
        };
        let b = self.b_enc.index_select(&idx, 0)?;
        let pre = matmul_last(&xin, &w, self.enc_orient)?.broadcast_add(&b)?;
        let thr = match self.threshold() {
            Some(t) => Some(t.index_select(&idx, 0)?),
            None => None,
        };
        let z = self.activate(&pre, thr.as_ref())?;
        to_dtype(&z, x.dtype())
    }

    /// Reconstruction in the weights' dtype.
    pub(crate) fn decode_raw(&self, z: &Tensor) -> Result<Tensor> {
        check_width(z, self.latent_dim, "latent")?;
        let zw = to_dtype(z, self.dtype())?;
        Ok(matmul_last(&zw, &self.w_dec, self.dec_orient)?.broadcast_add(&self.b_dec)?)
    }

    pub(crate) fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let y = self.decode_raw(z)?;
        to_dtype(&y, z.dtype())
    }

    /// `decode(encode(x))` without rounding the latent through `x`'s dtype; the latent (when
    /// asked) and the reconstruction are returned in `x`'s dtype.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        return_latent: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let z = self.encode_raw(x)?;
        let recon = to_dtype(&self.decode_raw(&z)?, x.dtype())?;
        let latent = if return_latent {
            Some(to_dtype(&z, x.dtype())?)
        } else {
            None
        };
        Ok((recon, latent))
    }

    /// A copy with every tensor (weights, biases, threshold) on `device` in `dtype`, the
    /// dtype it then computes in. A cast that overflows (an f32 weight beyond f16's range)
    /// is an [`AutoencoderError::NonFinite`] naming `source` and the tensor.
    pub(crate) fn to(&self, source: &str, device: &Device, dtype: DType) -> Result<Self> {
        if !dtype.is_float() {
            return Err(AutoencoderError::DTypeMismatch(format!(
                "{source}: cannot move an autoencoder to {dtype:?}, weights must be floating point"
            )));
        }
        let move_one = |name: &str, t: &Tensor| -> Result<Tensor> {
            let moved = t.to_device(device)?.to_dtype(dtype)?;
            if moved.dtype() != t.dtype() && !all_finite(&moved)? {
                return Err(AutoencoderError::NonFinite {
                    file: source.to_string(),
                    tensor: format!("{name} (cast to {dtype:?})"),
                });
            }
            Ok(moved)
        };
        let act = match &self.act {
            Activation::JumpRelu { threshold } => Activation::JumpRelu {
                threshold: move_one("threshold", threshold)?,
            },
            other => other.clone(),
        };
        Ok(Self {
            w_enc: move_one("W_enc", &self.w_enc)?,
            b_enc: move_one("b_enc", &self.b_enc)?,
            w_dec: move_one("W_dec", &self.w_dec)?,
            b_dec: move_one("b_dec", &self.b_dec)?,
            act,
            ..self.clone()
        })
    }

    /// Swaps in tensors of the same shapes, dtype and device (already validated).
    pub(crate) fn rebind(&mut self, w_enc: Tensor, b_enc: Tensor, w_dec: Tensor, b_dec: Tensor) {
        self.w_enc = w_enc;
        self.b_enc = b_enc;
        self.w_dec = w_dec;
        self.b_dec = b_dec;
    }

    /// The state to save: kind, settings, and the tensors by SAELens's names, each in the
    /// layout it is stored in (`settings.layout` says which), so that a rebuilt autoencoder
    /// computes bit for bit the same.
    pub(crate) fn state(&self) -> Result<crate::AutoencoderState> {
        let mut tensors = vec![
            ("W_enc".to_string(), self.w_enc.clone()),
            ("b_enc".to_string(), self.b_enc.clone()),
            ("W_dec".to_string(), self.w_dec.clone()),
            ("b_dec".to_string(), self.b_dec.clone()),
        ];
        let mut settings = serde_json::json!({
            "apply_b_dec_to_input": self.subtract_b_dec,
            "layout": {
                "W_enc": self.enc_orient.name(),
                "W_dec": self.dec_orient.name(),
            },
        });
        let kind = match &self.act {
            Activation::Relu => "relu",
            Activation::JumpRelu { threshold } => {
                tensors.push(("threshold".to_string(), threshold.clone()));
                "jumprelu"
            }
            Activation::TopK { k } => {
                settings["k"] = serde_json::json!(k);
                "topk"
            }
        };
        Ok(crate::AutoencoderState {
            kind: kind.to_string(),
            settings,
            tensors,
        })
    }

    pub(crate) fn decoder_rows(&self, dims: &[usize]) -> Result<Tensor> {
        let idx = dims_index(dims, self.latent_dim, self.device())?;
        if dims.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.input_dim),
                self.dtype(),
                self.device(),
            )?);
        }
        Ok(match self.dec_orient {
            Orient::OutIn => self.w_dec.index_select(&idx, 1)?.t()?.contiguous()?,
            Orient::InOut => self.w_dec.index_select(&idx, 0)?,
        })
    }
}

/// Keeps the `k` largest entries of each row of `r` (last dimension), zeroes the rest.
fn topk_last(r: &Tensor, k: usize) -> Result<Tensor> {
    let dims = r.dims().to_vec();
    let latent = *dims.last().unwrap_or(&0);
    if k >= latent {
        return Ok(r.clone());
    }
    let rows = r.elem_count() / latent.max(1);
    let r2 = r.reshape((rows, latent))?.contiguous()?;
    let order = r2.arg_sort_last_dim(false)?;
    let top = order.narrow(1, 0, k)?.contiguous()?;
    let vals = r2.gather(&top, 1)?;
    let out = r2.zeros_like()?.scatter(&top, &vals, 1)?;
    Ok(out.reshape(dims)?)
}

/// Implements [`crate::Autoencoder`] for a type with a `core: LinearSae` field.
macro_rules! impl_autoencoder_via_core {
    ($ty:ty, $affine:expr) => {
        impl $crate::Autoencoder for $ty {
            fn input_dim(&self) -> usize {
                self.core.input_dim()
            }

            fn latent_dim(&self) -> usize {
                self.core.latent_dim()
            }

            fn encode(&self, x: &candle_core::Tensor) -> $crate::Result<candle_core::Tensor> {
                self.core.encode(x)
            }

            fn decode(&self, z: &candle_core::Tensor) -> $crate::Result<candle_core::Tensor> {
                self.core.decode(z)
            }

            fn forward(
                &self,
                x: &candle_core::Tensor,
                return_latent: bool,
            ) -> $crate::Result<(candle_core::Tensor, Option<candle_core::Tensor>)> {
                self.core.forward(x, return_latent)
            }

            fn encode_selected(
                &self,
                x: &candle_core::Tensor,
                dims: &[usize],
            ) -> $crate::Result<candle_core::Tensor> {
                self.core.encode_selected(x, dims)
            }

            fn decoder_rows(&self, dims: &[usize]) -> $crate::Result<Option<candle_core::Tensor>> {
                if $affine {
                    self.core.decoder_rows(dims).map(Some)
                } else {
                    Ok(None)
                }
            }

            fn state(&self) -> $crate::Result<Option<$crate::AutoencoderState>> {
                self.core.state().map(Some)
            }

            fn to(
                &self,
                device: &candle_core::Device,
                dtype: candle_core::DType,
            ) -> $crate::Result<Box<dyn $crate::Autoencoder>> {
                Ok(Box::new(<$ty>::to(self, device, dtype)?))
            }

            fn placement(&self) -> Option<(candle_core::Device, candle_core::DType)> {
                Some((self.core.device().clone(), self.core.dtype()))
            }
        }
    };
}
pub(crate) use impl_autoencoder_via_core;
