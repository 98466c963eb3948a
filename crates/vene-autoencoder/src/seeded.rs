//! A seeded, deterministic [`AutoencoderLayer`] for examples and tests.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{AutoencoderLayer, Result};

impl AutoencoderLayer {
    /// An autoencoder `input_dim -> latent_dim` initialised from `seed` like torch's
    /// `nn.Linear` (uniform in `±1/sqrt(fan_in)`), in f32: same seed, same weights, on every
    /// machine ([`AutoencoderLayer::new`] draws from candle's unseeded generator).
    ///
    /// ```
    /// use vene_autoencoder::{Autoencoder, AutoencoderLayer};
    ///
    /// let a = AutoencoderLayer::seeded(8, 32, 0, &candle_core::Device::Cpu)?;
    /// let b = AutoencoderLayer::seeded(8, 32, 0, &candle_core::Device::Cpu)?;
    /// assert_eq!((a.input_dim(), a.latent_dim()), (8, 32));
    /// let w = |ae: &AutoencoderLayer| ae.vars()[0].flatten_all()?.to_vec1::<f32>();
    /// assert_eq!(w(&a)?, w(&b)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seeded(
        input_dim: usize,
        latent_dim: usize,
        seed: u64,
        device: &Device,
    ) -> Result<AutoencoderLayer> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut uniform = |n: usize, fan_in: usize| -> Vec<f32> {
            let b = 1.0 / (fan_in.max(1) as f32).sqrt();
            (0..n).map(|_| rng.random_range(-b..b)).collect()
        };
        let (d, l) = (input_dim, latent_dim);
        let ew = Tensor::from_vec(uniform(l * d, d), (l, d), device)?;
        let eb = Tensor::from_vec(uniform(l, d), l, device)?;
        let dw = Tensor::from_vec(uniform(d * l, l), (d, l), device)?;
        let db = Tensor::from_vec(uniform(d, l), d, device)?;
        AutoencoderLayer::from_tensors(ew, eb, dw, db)
    }
}
