//! Seeded, deterministic toy models for the examples and tests (candle's CPU random numbers
//! cannot be seeded, so the weights are drawn here).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vene::autoencoder::AutoencoderLayer;
use vene::models::{Gpt2Config, Model};

use crate::Result;

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

/// A GPT-2 with weights drawn from `seed` (HF's init: normal with std `initializer_range`,
/// output projections scaled by `1/sqrt(2 n_layer)`, layer norms 1 and biases 0), held by the
/// returned [`VarMap`] for training. Same seed, same weights.
///
/// ```
/// use candle_core::Device;
/// use vene::models::Gpt2Config;
/// let cfg = Gpt2Config::tiny(32, 16, 1, 2);
/// let (_, a) = vene_cli::toy::seeded_gpt2(&cfg, 7, &Device::Cpu)?;
/// let (_, b) = vene_cli::toy::seeded_gpt2(&cfg, 7, &Device::Cpu)?;
/// let name = "transformer.wte.weight";
/// let wa = a.data().lock().unwrap()[name].as_tensor().flatten_all()?.to_vec1::<f32>()?;
/// let wb = b.data().lock().unwrap()[name].as_tensor().flatten_all()?.to_vec1::<f32>()?;
/// assert_eq!(wa, wb);
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn seeded_gpt2(cfg: &Gpt2Config, seed: u64, device: &Device) -> Result<(Model, VarMap)> {
    // A first build tells the names and shapes of every weight.
    let probe = VarMap::new();
    Model::gpt2_in_varmap(cfg, &probe, DType::F32, device)?;
    let mut shapes: Vec<(String, Vec<usize>)> = probe
        .data()
        .lock()
        .map_err(|_| crate::CliError::invalid("weight map lock poisoned"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    shapes.sort();
    let mut rng = StdRng::seed_from_u64(seed);
    let varmap = VarMap::new();
    {
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| crate::CliError::invalid("weight map lock poisoned"))?;
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

/// An [`AutoencoderLayer`] `input_dim -> latent_dim` initialised from `seed` like torch's
/// `nn.Linear` (uniform in `±1/sqrt(fan_in)`).
///
/// ```
/// use vene::autoencoder::Autoencoder;
/// let ae = vene_cli::toy::seeded_autoencoder(8, 32, 0, &candle_core::Device::Cpu)?;
/// assert_eq!((ae.input_dim(), ae.latent_dim()), (8, 32));
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn seeded_autoencoder(
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
    Ok(AutoencoderLayer::from_tensors(ew, eb, dw, db)?)
}
