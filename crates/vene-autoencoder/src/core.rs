//! The shared engine of this crate's autoencoders: one linear encoder, an elementwise (or
//! TopK) activation, one affine decoder. The public types wrap it.

use candle_core::{DType, Device, Tensor};

use crate::normalization::NormStats;
use crate::util::{all_finite, check_width, dims_index, matmul_last, to_dtype, Orient};
use crate::{AutoencoderError, InputNormalization, Result};

/// The encoder's nonlinearity.
#[derive(Debug, Clone)]
pub(crate) enum Activation {
    /// `relu(pre)`.
    Relu,
    /// `relu(pre) * (pre > threshold)`, threshold `[latent_dim]`.
    JumpRelu { threshold: Tensor },
    /// `relu(pre)` with all but the `k` largest entries of each row set to zero.
    TopK { k: usize },
    /// Gated (SAELens `gated`, dictionary_learning `GatedAutoEncoder`): with `h = x_c @ W_enc`
    /// and `b_enc` holding `b_gate`, `1[h + b_gate > 0] * relu(h * exp(r_mag) + b_mag)`.
    Gated { r_mag: Tensor, b_mag: Tensor },
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
    /// Width of the reconstruction (`b_dec`'s length): `input_dim` except for transcoders.
    output_dim: usize,
    norm: InputNormalization,
    /// Skip connection `[output_dim, input_dim]`: the reconstruction gains `x @ W_skip^T`.
    w_skip: Option<Tensor>,
}

/// What the threshold part of [`LinearSae::new`] is.
pub(crate) enum ActSpec<'a> {
    Relu,
    JumpRelu(Part<'a>),
    TopK(usize),
    Gated { r_mag: Part<'a>, b_mag: Part<'a> },
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

/// Checks that `p` has the dtype and device of `reference` (named `ref_name`), a floating
/// dtype, and only finite values.
fn check_part(
    source: &str,
    p: &Part<'_>,
    ref_name: &str,
    dtype: DType,
    device: &Device,
) -> Result<()> {
    if p.tensor.dtype() != dtype {
        return Err(AutoencoderError::DTypeMismatch(format!(
            "{source}: `{}` is {:?} but `{ref_name}` is {dtype:?}",
            p.name,
            p.tensor.dtype(),
        )));
    }
    if !p.tensor.device().same_device(device) {
        return Err(AutoencoderError::InvalidArgument(format!(
            "{source}: `{}` is on a different device than `{ref_name}`",
            p.name
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
    Ok(())
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
        Self::with_widths(
            source,
            parts,
            enc_orient,
            dec_orient,
            act,
            subtract_b_dec,
            None,
        )
    }

    /// [`LinearSae::new`] for a transcoder when `input_dim` is given (`W_enc` reads
    /// `input_dim`, `W_dec` and `b_dec` write `b_dec`'s width); `None`: both widths are
    /// `b_dec`'s. Subtracting `b_dec` needs the two widths equal.
    pub(crate) fn with_widths(
        source: &str,
        parts: [Part<'_>; 4],
        enc_orient: Orient,
        dec_orient: Orient,
        act: ActSpec<'_>,
        subtract_b_dec: bool,
        input_dim: Option<usize>,
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
        let output_dim = rank1(&b_dec)?;
        let input_dim = input_dim.unwrap_or(output_dim);
        let latent_dim = rank1(&b_enc)?;
        if subtract_b_dec && input_dim != output_dim {
            return Err(AutoencoderError::InvalidArgument(format!(
                "{source}: `{}` has width {output_dim} but the input has width {input_dim}: \
                 it cannot be subtracted from the input (apply_b_dec_to_input must be off \
                 for a transcoder)",
                b_dec.name
            )));
        }
        expect_shape(
            source,
            &w_enc,
            &matrix_shape(enc_orient, input_dim, latent_dim),
        )?;
        expect_shape(
            source,
            &w_dec,
            &matrix_shape(dec_orient, latent_dim, output_dim),
        )?;
        let mut parts = vec![&w_enc, &b_enc, &w_dec, &b_dec];
        match &act {
            ActSpec::JumpRelu(t) => {
                expect_shape(source, t, &[latent_dim])?;
                parts.push(t);
            }
            ActSpec::Gated { r_mag, b_mag } => {
                expect_shape(source, r_mag, &[latent_dim])?;
                expect_shape(source, b_mag, &[latent_dim])?;
                parts.push(r_mag);
                parts.push(b_mag);
            }
            ActSpec::TopK(k) => {
                if *k == 0 || *k > latent_dim {
                    return Err(AutoencoderError::InvalidArgument(format!(
                        "{source}: k = {k} must be in 1..={latent_dim} (the latent width)"
                    )));
                }
            }
            ActSpec::Relu => {}
        }
        let dtype = w_enc.tensor.dtype();
        let device = w_enc.tensor.device().clone();
        for p in &parts {
            check_part(source, p, w_enc.name, dtype, &device)?;
        }
        let act = match act {
            ActSpec::Relu => Activation::Relu,
            ActSpec::JumpRelu(t) => Activation::JumpRelu {
                threshold: t.tensor,
            },
            ActSpec::TopK(k) => Activation::TopK { k },
            ActSpec::Gated { r_mag, b_mag } => Activation::Gated {
                r_mag: r_mag.tensor,
                b_mag: b_mag.tensor,
            },
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
            output_dim,
            norm: InputNormalization::None,
            w_skip: None,
        })
    }

    pub(crate) fn input_dim(&self) -> usize {
        self.input_dim
    }

    pub(crate) fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    pub(crate) fn output_dim(&self) -> usize {
        self.output_dim
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

    /// `(r_mag, b_mag)` of a gated SAE.
    pub(crate) fn gated_params(&self) -> Option<(&Tensor, &Tensor)> {
        match &self.act {
            Activation::Gated { r_mag, b_mag } => Some((r_mag, b_mag)),
            _ => None,
        }
    }

    pub(crate) fn subtract_b_dec(&self) -> bool {
        self.subtract_b_dec
    }

    pub(crate) fn set_subtract_b_dec(&mut self, on: bool) {
        self.subtract_b_dec = on;
    }

    pub(crate) fn norm(&self) -> InputNormalization {
        self.norm
    }

    pub(crate) fn set_norm(&mut self, norm: InputNormalization) {
        self.norm = norm;
    }

    pub(crate) fn w_skip(&self) -> Option<&Tensor> {
        self.w_skip.as_ref()
    }

    /// Sets the skip connection `W_skip [output_dim, input_dim]` (checked like the weights).
    pub(crate) fn set_skip(&mut self, source: &str, w_skip: Part<'_>) -> Result<()> {
        let w_skip = Part::new(
            w_skip.name,
            w_skip.tensor.contiguous().unwrap_or(w_skip.tensor),
        );
        expect_shape(source, &w_skip, &[self.output_dim, self.input_dim])?;
        check_part(source, &w_skip, "W_enc", self.dtype(), self.device())?;
        self.w_skip = Some(w_skip.tensor);
        Ok(())
    }

    /// Whether the reconstruction depends on the input beyond the latent (normalisation
    /// statistics or a skip connection).
    pub(crate) fn depends_on_input(&self) -> bool {
        self.norm != InputNormalization::None || self.w_skip.is_some()
    }

    /// `x` checked and in the weights' dtype, with its normalisation statistics.
    fn prepare(&self, x: &Tensor) -> Result<(Tensor, Option<NormStats>)> {
        check_width(x, self.input_dim, "input")?;
        let x = to_dtype(x, self.dtype())?;
        let stats = self.norm.stats(&x)?;
        Ok((x, stats))
    }

    /// What the encoder multiplies: the normalised `x`, minus `b_dec` when subtracted.
    fn encoder_input_from(&self, x: &Tensor, stats: Option<&NormStats>) -> Result<Tensor> {
        let xn = match stats {
            Some(s) => s.normalize(x)?,
            None => x.clone(),
        };
        if !self.subtract_b_dec {
            return Ok(xn);
        }
        if self.input_dim != self.output_dim {
            return Err(AutoencoderError::InvalidArgument(format!(
                "apply_b_dec_to_input is on but b_dec has width {} and the input {} \
                 (a transcoder cannot subtract its output bias from its input)",
                self.output_dim, self.input_dim
            )));
        }
        Ok(xn.broadcast_sub(&self.b_dec)?)
    }

    /// The encoder input in the weights' dtype.
    fn encoder_input(&self, x: &Tensor) -> Result<Tensor> {
        let (x, stats) = self.prepare(x)?;
        self.encoder_input_from(&x, stats.as_ref())
    }

    /// Pre-activations `[..., latent_dim]` in the weights' dtype (`x_c @ W_enc + b_enc`; for
    /// a gated SAE, the gate's).
    pub(crate) fn pre_activations(&self, x: &Tensor) -> Result<Tensor> {
        let xin = self.encoder_input(x)?;
        Ok(matmul_last(&xin, &self.w_enc, self.enc_orient)?.broadcast_add(&self.b_enc)?)
    }

    /// The activation of `h = x_c @ W_enc` (without bias), over all latents or over those
    /// selected by `idx`.
    fn activate(&self, h: &Tensor, idx: Option<&Tensor>) -> Result<Tensor> {
        let pick = |t: &Tensor| -> Result<Tensor> {
            Ok(match idx {
                Some(i) => t.index_select(i, 0)?,
                None => t.clone(),
            })
        };
        let pre = h.broadcast_add(&pick(&self.b_enc)?)?;
        match &self.act {
            Activation::Relu => Ok(pre.relu()?),
            Activation::JumpRelu { threshold } => {
                let mask = pre.broadcast_gt(&pick(threshold)?)?.to_dtype(pre.dtype())?;
                Ok((pre.relu()? * mask)?)
            }
            Activation::TopK { k } => topk_last(&pre.relu()?, *k),
            Activation::Gated { r_mag, b_mag } => {
                let gate = pre.gt(&pre.zeros_like()?)?.to_dtype(pre.dtype())?;
                let mag = h
                    .broadcast_mul(&pick(r_mag)?.exp()?)?
                    .broadcast_add(&pick(b_mag)?)?
                    .relu()?;
                Ok((gate * mag)?)
            }
        }
    }

    /// Latents in the weights' dtype, from `x` prepared by [`Self::prepare`].
    fn encode_prepared(&self, x: &Tensor, stats: Option<&NormStats>) -> Result<Tensor> {
        let xin = self.encoder_input_from(x, stats)?;
        let h = matmul_last(&xin, &self.w_enc, self.enc_orient)?;
        self.activate(&h, None)
    }

    /// Latents in the weights' dtype.
    pub(crate) fn encode_raw(&self, x: &Tensor) -> Result<Tensor> {
        let (x, stats) = self.prepare(x)?;
        self.encode_prepared(&x, stats.as_ref())
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
        let h = matmul_last(&xin, &w, self.enc_orient)?;
        let z = self.activate(&h, Some(&idx))?;
        to_dtype(&z, x.dtype())
    }

    /// The affine part of the reconstruction, `z @ W_dec + b_dec`, in the weights' dtype.
    pub(crate) fn decode_raw(&self, z: &Tensor) -> Result<Tensor> {
        check_width(z, self.latent_dim, "latent")?;
        let zw = to_dtype(z, self.dtype())?;
        Ok(matmul_last(&zw, &self.w_dec, self.dec_orient)?.broadcast_add(&self.b_dec)?)
    }

    pub(crate) fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let y = self.decode_raw(z)?;
        to_dtype(&y, z.dtype())
    }

    /// The affine reconstruction `y` completed for the input `x` (prepared): un-normalised
    /// with `x`'s statistics, plus the skip term `x @ W_skip^T`.
    fn finish(&self, y: Tensor, x: &Tensor, stats: Option<&NormStats>) -> Result<Tensor> {
        let y = match stats {
            Some(s) => s.unnormalize(&y)?,
            None => y,
        };
        Ok(match &self.w_skip {
            Some(w) => (y + matmul_last(x, w, Orient::OutIn)?)?,
            None => y,
        })
    }

    /// Checks that `z` and `x` have the same leading shape.
    fn check_pair(&self, z: &Tensor, x: &Tensor) -> Result<()> {
        let (zd, xd) = (z.dims(), x.dims());
        if zd.is_empty() || xd.is_empty() || zd[..zd.len() - 1] != xd[..xd.len() - 1] {
            return Err(AutoencoderError::InvalidArgument(format!(
                "decode_for: the latents {zd:?} and the inputs {xd:?} must have the same \
                 leading shape (one input per latent row)"
            )));
        }
        Ok(())
    }

    /// The reconstruction of `z` as the reconstruction of input `x`, in `z`'s dtype.
    pub(crate) fn decode_for(&self, z: &Tensor, x: &Tensor) -> Result<Tensor> {
        if !self.depends_on_input() {
            return self.decode(z);
        }
        self.check_pair(z, x)?;
        let y = self.decode_raw(z)?;
        let (xw, stats) = self.prepare(x)?;
        let y = self.finish(y, &xw, stats.as_ref())?;
        to_dtype(&y, z.dtype())
    }

    /// The per-row factor `[..., 1]` by which a latent edit is scaled in
    /// [`Self::decode_for`], in the weights' dtype; `None` without normalisation.
    pub(crate) fn decode_scale_for(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if self.norm == InputNormalization::None {
            return Ok(None);
        }
        let (_, stats) = self.prepare(x)?;
        stats.map(|s| s.scale()).transpose()
    }

    /// `decode_for(encode(x), x)` without rounding the latent through `x`'s dtype; the latent
    /// (when asked) and the reconstruction are returned in `x`'s dtype.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        return_latent: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (xw, stats) = self.prepare(x)?;
        let z = self.encode_prepared(&xw, stats.as_ref())?;
        let y = self.finish(self.decode_raw(&z)?, &xw, stats.as_ref())?;
        let recon = to_dtype(&y, x.dtype())?;
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
            Activation::Gated { r_mag, b_mag } => Activation::Gated {
                r_mag: move_one("r_mag", r_mag)?,
                b_mag: move_one("b_mag", b_mag)?,
            },
            other => other.clone(),
        };
        let w_skip = match &self.w_skip {
            Some(w) => Some(move_one("W_skip", w)?),
            None => None,
        };
        Ok(Self {
            w_enc: move_one("W_enc", &self.w_enc)?,
            b_enc: move_one("b_enc", &self.b_enc)?,
            w_dec: move_one("W_dec", &self.w_dec)?,
            b_dec: move_one("b_dec", &self.b_dec)?,
            act,
            w_skip,
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
    /// computes bit for bit the same. A gated SAE's `b_enc` is saved as `b_gate`, with
    /// `r_mag` and `b_mag`; a skip connection as `W_skip`; a normalisation as
    /// `settings.normalize_activations`.
    pub(crate) fn state(&self) -> Result<crate::AutoencoderState> {
        let b_enc_name = if self.gated_params().is_some() {
            "b_gate"
        } else {
            "b_enc"
        };
        let mut tensors = vec![
            ("W_enc".to_string(), self.w_enc.clone()),
            (b_enc_name.to_string(), self.b_enc.clone()),
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
        if self.norm != InputNormalization::None {
            settings["normalize_activations"] = serde_json::json!(self.norm.saelens_name());
        }
        if let Some(w) = &self.w_skip {
            tensors.push(("W_skip".to_string(), w.clone()));
        }
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
            Activation::Gated { r_mag, b_mag } => {
                tensors.push(("r_mag".to_string(), r_mag.clone()));
                tensors.push(("b_mag".to_string(), b_mag.clone()));
                "gated"
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
                (0, self.output_dim),
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

            fn output_dim(&self) -> usize {
                self.core.output_dim()
            }

            fn encode(&self, x: &candle_core::Tensor) -> $crate::Result<candle_core::Tensor> {
                self.core.encode(x)
            }

            fn decode(&self, z: &candle_core::Tensor) -> $crate::Result<candle_core::Tensor> {
                self.core.decode(z)
            }

            fn decode_for(
                &self,
                z: &candle_core::Tensor,
                x: &candle_core::Tensor,
            ) -> $crate::Result<candle_core::Tensor> {
                self.core.decode_for(z, x)
            }

            fn decode_scale_for(
                &self,
                x: &candle_core::Tensor,
            ) -> $crate::Result<Option<candle_core::Tensor>> {
                self.core.decode_scale_for(x)
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

/// Inherent builder methods shared by the SAE types built on [`LinearSae`]: input
/// normalisation and a skip connection.
macro_rules! impl_sae_options {
    ($ty:ty) => {
        impl $ty {
            /// Normalise each input before encoding and undo it on the reconstruction with the
            /// same input's statistics (SAELens `normalize_activations`; see
            /// [`crate::InputNormalization`] and [`crate::Autoencoder::decode_for`]).
            pub fn with_input_normalization(mut self, norm: $crate::InputNormalization) -> Self {
                self.core.set_norm(norm);
                self
            }

            /// The input normalisation ([`crate::InputNormalization::None`] by default).
            pub fn input_normalization(&self) -> $crate::InputNormalization {
                self.core.norm()
            }

            /// Adds a skip connection `W_skip [output_dim, input_dim]` (sparsify
            /// `skip_connection`, SAELens `skip_transcoder`): the reconstruction of `x` gains
            /// `x @ W_skip^T` (the raw input, before any normalisation or `b_dec`
            /// subtraction). Checked: shape, dtype, device, finite values.
            pub fn with_skip(mut self, w_skip: candle_core::Tensor) -> $crate::Result<Self> {
                self.core.set_skip(
                    concat!(stringify!($ty), "::with_skip"),
                    $crate::core::Part::new("W_skip", w_skip),
                )?;
                Ok(self)
            }

            /// The skip connection `[output_dim, input_dim]`, if any.
            pub fn w_skip(&self) -> Option<&candle_core::Tensor> {
                self.core.w_skip()
            }
        }
    };
}
pub(crate) use impl_sae_options;
