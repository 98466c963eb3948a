//! Seeded, deterministic GPT-2 weights for examples and tests (candle's CPU random numbers
//! cannot be seeded, so the weights are drawn here with `rand`'s `StdRng`).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Gpt2Config, Model, ModelError, Result};

/// `n` samples of a normal distribution with mean 0 and std `std` (Box-Muller).
fn normal(rng: &mut StdRng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(1e-12);
            let u2: f64 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
        })
        .collect()
}

fn poisoned() -> ModelError {
    ModelError::InvalidInput("the weight map's lock is poisoned".into())
}

impl Model {
    /// A GPT-2 with weights drawn from `seed` (Hugging Face's init: normal with std
    /// `initializer_range`, output projections scaled by `1/sqrt(2 n_layer)`, layer norms 1 and
    /// biases 0), held by the returned [`VarMap`] for training or saving. Same seed, same
    /// weights, on every machine ([`Model::random_gpt2`] draws from candle's unseeded
    /// generator).
    ///
    /// ```
    /// use candle_core::Device;
    /// use vene_models::{Gpt2Config, Model};
    ///
    /// let cfg = Gpt2Config::tiny(32, 16, 1, 2);
    /// let (_, a) = Model::seeded_gpt2(&cfg, 7, &Device::Cpu)?;
    /// let (_, b) = Model::seeded_gpt2(&cfg, 7, &Device::Cpu)?;
    /// let name = "transformer.wte.weight";
    /// let wa = a.data().lock().unwrap()[name].as_tensor().flatten_all()?.to_vec1::<f32>()?;
    /// let wb = b.data().lock().unwrap()[name].as_tensor().flatten_all()?.to_vec1::<f32>()?;
    /// assert_eq!(wa, wb);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seeded_gpt2(cfg: &Gpt2Config, seed: u64, device: &Device) -> Result<(Model, VarMap)> {
        // A first build tells the names and shapes of every weight.
        let probe = VarMap::new();
        Model::gpt2_in_varmap(cfg, &probe, DType::F32, device)?;
        let mut shapes: Vec<(String, Vec<usize>)> = probe
            .data()
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect();
        shapes.sort();
        let mut rng = StdRng::seed_from_u64(seed);
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().map_err(|_| poisoned())?;
            for (name, dims) in shapes {
                let n: usize = dims.iter().product();
                let values = if name.contains(".ln_") || name.ends_with("bias") {
                    let v = if name.contains(".ln_") && name.ends_with("weight") {
                        1.0
                    } else {
                        0.0
                    };
                    vec![v; n]
                } else {
                    let mut std = cfg.initializer_range;
                    if name.ends_with("c_proj.weight") {
                        std /= (2.0 * cfg.n_layer as f64).sqrt();
                    }
                    normal(&mut rng, n, std)
                };
                let t = Tensor::from_vec(values, dims, device)?;
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        let model = Model::gpt2_in_varmap(cfg, &varmap, DType::F32, device)?;
        Ok((model, varmap))
    }
}
