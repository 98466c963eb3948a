//! The training forward pass and loss of every architecture.
//!
//! Straight-through estimators are written with the detach trick: `a + (s - s.detach())` has
//! the value of `a` and the gradient of `s`, so a hard step can carry a chosen
//! pseudo-derivative without a custom autograd op.

use candle_core::{DType, Tensor, D};

use super::config::{matryoshka_widths, Architecture};
use super::masks::{batch_topk_mask, row_topk_mask};
use super::sae::TrainingSae;
use crate::Result;

/// What the trainer needs besides the batch.
pub(crate) struct LossContext<'a> {
    /// Fraction of the sparsity coefficient in force (warm-up).
    pub sparsity_scale: f64,
    /// Latents dead over the window (AuxK acts on them), `[L]` as 0/1 f32, or `None`.
    pub dead: Option<&'a [bool]>,
    /// AuxK's k (`None`: half the output width) and coefficient.
    pub aux_k: Option<usize>,
    pub aux_k_coefficient: f64,
}

/// One step's loss and what is logged of it.
pub(crate) struct StepLoss {
    pub loss: Tensor,
    /// Reconstruction error: sum over features, mean over rows.
    pub mse: Tensor,
    /// The sparsity penalty before its coefficient (L1 or L0), mean over rows.
    pub sparsity: Tensor,
    /// The auxiliary loss after its coefficient (AuxK, gated aux, matryoshka prefixes).
    pub aux: Tensor,
    /// Latents (detached).
    pub z: Tensor,
    /// Reconstruction (detached).
    pub recon: Tensor,
}

/// `sum over the last dim, mean over rows` of `(a - b)^2`.
fn sq_err(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.sqr()?.sum(D::Minus1)?.mean(0)?)
}

impl TrainingSae {
    /// The encoder input (`x - b_dec` for an SAE, `x` for a transcoder).
    fn encoder_input(&self, x: &Tensor) -> Result<Tensor> {
        if self.apply_b_dec_to_input() {
            Ok(x.broadcast_sub(self.b_dec.as_tensor())?)
        } else {
            Ok(x.clone())
        }
    }

    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(z.matmul(self.w_dec.as_tensor())?
            .broadcast_add(self.b_dec.as_tensor())?)
    }

    /// `|W_dec_j|` `[L]` (with gradient).
    fn decoder_norms(&self) -> Result<Tensor> {
        Ok(self.w_dec.as_tensor().sqr()?.sum(1)?.sqrt()?)
    }

    /// The loss of one batch: `x` `[n, d_in]`, `y` `[n, d_out]` (equal to `x` for an SAE), both
    /// already scaled. Updates the BatchTopK threshold.
    pub(crate) fn step_loss(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        ctx: &LossContext<'_>,
    ) -> Result<StepLoss> {
        let xin = self.encoder_input(x)?;
        // `xin W_enc`, computed once: Gated's magnitude path reads it too (one product
        // forward and one in the backward pass instead of two each).
        let h = xin.matmul(self.w_enc.as_tensor())?;
        let pre = h.broadcast_add(self.b_enc.as_tensor())?;
        let zero = || Tensor::zeros((), pre.dtype(), pre.device());
        let (z, sparsity, weighted_sparsity, mut aux) = match self.architecture.clone() {
            Architecture::Relu {
                l1_coefficient,
                decoder_norm_penalty,
            } => {
                let z = pre.relu()?;
                let l1 = z.sum(1)?.mean(0)?;
                let weighted = if decoder_norm_penalty {
                    z.broadcast_mul(&self.decoder_norms()?)?.sum(1)?.mean(0)?
                } else {
                    l1.clone()
                };
                let w = weighted.affine(l1_coefficient * ctx.sparsity_scale, 0.0)?;
                (z, l1, w, zero()?)
            }
            Architecture::TopK { k } => {
                let acts = pre.relu()?;
                let z = (&acts * row_topk_mask(&acts, k)?)?;
                (z, zero()?, zero()?, zero()?)
            }
            Architecture::BatchTopK { k, .. } | Architecture::Matryoshka { k, .. } => {
                let acts = pre.relu()?;
                let z = (&acts * batch_topk_mask(&acts, k)?)?;
                (z, zero()?, zero()?, zero()?)
            }
            Architecture::JumpRelu {
                bandwidth,
                l0_coefficient,
                ..
            } => {
                let log_t = self
                    .log_threshold
                    .as_ref()
                    .map(|v| v.as_tensor().clone())
                    .ok_or_else(|| {
                        crate::AutoencoderError::InvalidArgument("no threshold".into())
                    })?;
                let theta = log_t.exp()?;
                let theta_d = theta.detach();
                let pre_d = pre.detach();
                let above = pre_d.broadcast_gt(&theta_d)?.to_dtype(pre.dtype())?;
                // rectangle((pre - theta) / bandwidth): |pre - theta| < bandwidth / 2
                let kernel = pre_d
                    .broadcast_sub(&theta_d)?
                    .abs()?
                    .lt(bandwidth / 2.0)?
                    .to_dtype(pre.dtype())?;
                // JumpReLU: value pre * H, d/dpre = H, d/dtheta = -(theta / bw) * K.
                let g_act = kernel
                    .broadcast_mul(&theta_d)?
                    .affine(-1.0 / bandwidth, 0.0)?;
                let s_act = g_act.broadcast_mul(&theta)?;
                let z = ((&pre * &above)? + (&s_act - s_act.detach())?)?;
                // Step (L0): value H, d/dpre = 0, d/dtheta = -(1 / bw) * K.
                let s_step = kernel
                    .broadcast_mul(&theta)?
                    .affine(-1.0 / bandwidth, 0.0)?;
                let step = (&above + (&s_step - s_step.detach())?)?;
                let l0 = step.sum(1)?.mean(0)?;
                let w = l0.affine(l0_coefficient * ctx.sparsity_scale, 0.0)?;
                (z, l0.detach(), w, zero()?)
            }
            Architecture::Gated { l1_coefficient } => {
                let (r_mag, b_mag) = match (&self.r_mag, &self.b_mag) {
                    (Some(r), Some(b)) => (r.as_tensor().clone(), b.as_tensor().clone()),
                    _ => {
                        return Err(crate::AutoencoderError::InvalidArgument(
                            "a gated SAE without r_mag and b_mag".into(),
                        ))
                    }
                };
                let gate_open = pre.detach().gt(0.0)?.to_dtype(pre.dtype())?;
                let mag = h
                    .broadcast_mul(&r_mag.exp()?)?
                    .broadcast_add(&b_mag)?
                    .relu()?;
                let z = (gate_open * mag)?;
                let gate_act = pre.relu()?;
                let l1 = gate_act
                    .broadcast_mul(&self.decoder_norms()?)?
                    .sum(1)?
                    .mean(0)?;
                let w = l1.affine(l1_coefficient * ctx.sparsity_scale, 0.0)?;
                // The gate alone must reconstruct through the frozen decoder.
                let via_gate = gate_act
                    .matmul(&self.w_dec.as_tensor().detach())?
                    .broadcast_add(&self.b_dec.as_tensor().detach())?;
                let aux = sq_err(&via_gate, y)?;
                (z, l1.detach(), w, aux)
            }
        };
        let recon = self.decode(&z)?;
        let mse = sq_err(&recon, y)?;
        if let Architecture::Matryoshka { k, widths, .. } = &self.architecture {
            let widths = matryoshka_widths(widths, *k, self.latent_dim)?;
            for &w in &widths[..widths.len() - 1] {
                let acts = pre.narrow(1, 0, w)?.relu()?;
                let zw = (&acts * batch_topk_mask(&acts, *k)?)?;
                let rw = zw
                    .matmul(&self.w_dec.as_tensor().narrow(0, 0, w)?)?
                    .broadcast_add(self.b_dec.as_tensor())?;
                aux = (aux + sq_err(&rw, y)?)?;
            }
        }
        if let Architecture::BatchTopK { threshold_lr, .. }
        | Architecture::Matryoshka { threshold_lr, .. } = self.architecture
        {
            self.update_batch_threshold(&z, threshold_lr)?;
        }
        if self.architecture.uses_aux_k() {
            if let Some(dead) = ctx.dead {
                let aux_k = self.aux_k_loss(&pre, y, &recon, dead, ctx)?;
                aux = (aux + aux_k)?;
            }
        }
        let loss = ((&mse + &weighted_sparsity)? + &aux)?;
        Ok(StepLoss {
            loss,
            mse,
            sparsity,
            aux,
            z: z.detach(),
            recon: recon.detach(),
        })
    }

    /// SAELens's BatchTopK threshold: a moving average of the smallest positive latent.
    fn update_batch_threshold(&mut self, z: &Tensor, rate: f64) -> Result<()> {
        let zf = z.detach().to_dtype(DType::F32)?;
        let max = zf.max_all()?.to_scalar::<f32>()?;
        if max > 0.0 {
            let filler = zf.ones_like()?.affine(max as f64 + 1.0, 0.0)?;
            let min_pos = zf.gt(0.0)?.where_cond(&zf, &filler)?.min_all()?;
            let min_pos = min_pos.to_scalar::<f32>()? as f64;
            self.batch_threshold = (1.0 - rate) * self.batch_threshold + rate * min_pos;
        }
        Ok(())
    }

    /// The AuxK loss: the top `k_aux` dead latents of each row reconstruct the residual
    /// `y - recon` (detached) through the decoder without its bias; scaled by
    /// `min(dead / k_aux, 1)`, normalised by the batch's total variance (sparsify), times the
    /// coefficient.
    fn aux_k_loss(
        &self,
        pre: &Tensor,
        y: &Tensor,
        recon: &Tensor,
        dead: &[bool],
        ctx: &LossContext<'_>,
    ) -> Result<Tensor> {
        let num_dead = dead.iter().filter(|&&d| d).count();
        let zero = Tensor::zeros((), pre.dtype(), pre.device())?;
        if num_dead == 0 || ctx.aux_k_coefficient == 0.0 {
            return Ok(zero);
        }
        let k_aux = ctx.aux_k.unwrap_or(self.output_dim / 2).max(1);
        let scale = (num_dead as f64 / k_aux as f64).min(1.0);
        let k_aux = k_aux.min(num_dead);
        let dead_f: Vec<f32> = dead.iter().map(|&d| if d { 1.0 } else { 0.0 }).collect();
        let dead_t =
            Tensor::from_vec(dead_f, self.latent_dim, pre.device())?.to_dtype(pre.dtype())?;
        // Live latents pushed far below every dead one, so the top k_aux are dead.
        let pre_d = pre.detach();
        let span = (pre_d
            .abs()?
            .max_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?
            + 1.0)
            * 4.0;
        let ranked = pre_d.broadcast_add(&(dead_t.affine(span, -span))?)?;
        let mask = row_topk_mask(&ranked, k_aux)?.broadcast_mul(&dead_t)?;
        let aux_acts = (pre * mask)?;
        let e_hat = aux_acts.matmul(self.w_dec.as_tensor())?;
        let e = (y - recon)?.detach();
        let err = (e_hat - e)?.sqr()?.sum_all()?;
        let var = y
            .broadcast_sub(&y.mean_keepdim(0)?)?
            .sqr()?
            .sum_all()?
            .detach()
            .clamp(1e-12, f64::INFINITY)?;
        Ok(err.div(&var)?.affine(scale * ctx.aux_k_coefficient, 0.0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::SaeTrainConfig;
    use candle_core::Device;

    /// The JumpReLU pseudo-gradient of the threshold, derived by hand.
    ///
    /// One latent reading one feature (`W_enc = W_dec = 1`, biases 0), threshold 0.5,
    /// bandwidth 0.2, L0 coefficient 0.1, rows x = 0.55, 0.45, 1.0: the latents are 0.55, 0, 1
    /// and only rows 1 and 2 lie within the kernel (|x - 0.5| < 0.1).
    /// - MSE: only row 2 errs, dL/dz_2 = 2 (0 - 0.45) / 3 = -0.3, and dz/dtheta there is
    ///   -(theta / bw) = -2.5: +0.75.
    /// - L0: 0.1 / 3 * (-(1 / bw)) * 2 kernel rows = -1/3.
    /// - dL/dlog_theta = theta * (0.75 - 1/3) = 0.208333...
    #[test]
    fn jumprelu_threshold_gradient_matches_the_hand_derivation() {
        let dev = Device::Cpu;
        let cfg = SaeTrainConfig::new(Architecture::JumpRelu {
            init_threshold: 0.5,
            bandwidth: 0.2,
            l0_coefficient: 0.1,
        });
        let mut sae = TrainingSae::new(&cfg, 1, 1, DType::F32, &dev).unwrap();
        let one = Tensor::new(&[[1f32]], &dev).unwrap();
        sae.w_enc.set(&one).unwrap();
        sae.w_dec.set(&one).unwrap();
        let x = Tensor::new(&[[0.55f32], [0.45], [1.0]], &dev).unwrap();
        let ctx = LossContext {
            sparsity_scale: 1.0,
            dead: None,
            aux_k: None,
            aux_k_coefficient: 0.0,
        };
        let out = sae.step_loss(&x, &x, &ctx).unwrap();
        assert_eq!(
            out.z.to_vec2::<f32>().unwrap(),
            vec![vec![0.55], vec![0.0], vec![1.0]]
        );
        let mse = out.mse.to_scalar::<f32>().unwrap();
        assert!((mse - 0.2025 / 3.0).abs() < 1e-6, "{mse}");
        let l0 = out.sparsity.to_scalar::<f32>().unwrap();
        assert!((l0 - 2.0 / 3.0).abs() < 1e-6, "{l0}");
        let grads = out.loss.backward().unwrap();
        let log_t = sae.log_threshold.as_ref().unwrap();
        let g = grads
            .get(log_t.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        assert!((g - 0.208_333).abs() < 1e-5, "{g}");
    }
}
