//! `vene train-sae`: collect activations over a text file and train an SAE on them, written
//! in SAELens's layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vene::autoencoder::{
    metrics, safetensors_bytes, train, Autoencoder, AutoencoderLayer, TrainConfig,
};
use vene::hooks::Component;

use crate::backend::BackendArgs;
use crate::{load, toy, CliError, Result};

/// Arguments of `vene train-sae`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainSaeArgs {
    /// Model folder or hub repo id (the folder needs tokenizer.json).
    #[arg(long)]
    pub model: String,
    /// Layer whose activations are collected.
    #[arg(long)]
    pub layer: usize,
    /// Component whose activations are collected.
    #[arg(long, default_value = "block_output")]
    pub component: Component,
    /// Text file, one example per line (every token of every line is a training row).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder (SAELens layout: cfg.json + sae_weights.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Latents per activation dim.
    #[arg(long, default_value_t = 4)]
    pub expansion: usize,
    /// Training steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Rows per step.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// L1 coefficient.
    #[arg(long, default_value_t = 1e-3)]
    pub l1: f64,
    /// Seed of the init and of the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an earlier SAE in `--out` (by default a folder with files is left alone and
    /// the command fails before training).
    #[arg(long)]
    pub overwrite: bool,
    /// Device and precision (the SAE trains in --sae-dtype, default --dtype; it is saved
    /// in f32).
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether prompts start with the BOS token.
    #[command(flatten)]
    pub bos: crate::bos::BosArgs,
}

/// The most rows `--batch-size` may ask for.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Checks that `--out` can take a new SAE: absent, empty, or (with `overwrite`) a folder
/// holding an earlier SAE (`cfg.json`).
pub fn check_out_dir(dir: &Path, overwrite: bool) -> Result<()> {
    match std::fs::read_dir(dir) {
        Err(_) if !dir.exists() => Ok(()),
        Err(e) => Err(CliError::Io {
            path: dir.display().to_string(),
            source: e,
        }),
        Ok(mut entries) => {
            if entries.next().is_none() {
                Ok(())
            } else if !overwrite {
                Err(CliError::invalid(format!(
                    "{} already holds files; pass --overwrite to replace an earlier SAE, or choose a new --out",
                    dir.display()
                )))
            } else if !dir.join("cfg.json").is_file() {
                Err(CliError::invalid(format!(
                    "{} holds files but no cfg.json: not an SAE folder, so it is not replaced even with --overwrite",
                    dir.display()
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// Writes `ae` in SAELens's layout: `W_enc [d_in, d_sae]`, `b_enc`, `W_dec [d_sae, d_in]`,
/// `b_dec` in `sae_weights.safetensors`, and a `cfg.json` (architecture `standard`, b_dec
/// subtracted from the input, as `AutoencoderLayer` does).
///
/// Atomic: both files are written into a fresh folder beside `dir`, synced, and renamed into
/// place; on any error `dir` is as it was. A `dir` with files is replaced only with
/// `overwrite` (see [`check_out_dir`]).
pub fn save_saelens(
    ae: &AutoencoderLayer,
    dir: &Path,
    hook_name: &str,
    layer: usize,
    model: &str,
    overwrite: bool,
) -> Result<()> {
    check_out_dir(dir, overwrite)?;
    let staged = vene::autoencoder::atomic::StagedDir::new(dir).map_err(io_err(dir))?;
    let mut tensors = HashMap::new();
    tensors.insert("W_enc".to_string(), ae.encoder_weight().t()?.contiguous()?);
    tensors.insert("b_enc".to_string(), ae.encoder_bias().clone());
    tensors.insert("W_dec".to_string(), ae.decoder_weight().t()?.contiguous()?);
    tensors.insert("b_dec".to_string(), ae.decoder_bias().clone());
    let bytes = safetensors_bytes(&tensors)?;
    let weights = staged.path().join("sae_weights.safetensors");
    std::fs::write(&weights, bytes).map_err(io_err(&weights))?;
    let cfg = serde_json::json!({
        "architecture": "standard",
        "d_in": ae.input_dim(),
        "d_sae": ae.latent_dim(),
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": true,
        "normalize_activations": "none",
        "hook_name": hook_name,
        "hook_layer": layer,
        "model_name": model,
        "metadata": {"hook_name": hook_name, "hook_layer": layer, "model_name": model},
    });
    let path = staged.path().join("cfg.json");
    let text = serde_json::to_string_pretty(&cfg)
        .map_err(|e| CliError::invalid(format!("cfg.json: {e}")))?;
    std::fs::write(&path, text).map_err(io_err(&path))?;
    staged.commit(overwrite).map_err(io_err(dir))
}

/// SAELens's hook name of `component` at `layer` (TransformerLens names).
pub fn hook_name(layer: usize, component: Component) -> String {
    let hook = match component {
        Component::BlockInput => "hook_resid_pre",
        Component::BlockOutput => "hook_resid_post",
        Component::AttentionOutput => "hook_attn_out",
        Component::MlpOutput => "hook_mlp_out",
        other => return format!("blocks.{layer}.{other}"),
    };
    format!("blocks.{layer}.{hook}")
}

/// Runs `vene train-sae`; the progress bar goes to stderr, the summary is returned.
pub fn run(args: &TrainSaeArgs) -> Result<String> {
    if args.steps == 0 || args.batch_size == 0 || args.expansion == 0 {
        return Err(CliError::invalid(
            "--steps, --batch-size and --expansion must be at least 1",
        ));
    }
    if args.batch_size > MAX_BATCH_SIZE {
        return Err(CliError::invalid(format!(
            "--batch-size {} is more than the {MAX_BATCH_SIZE} rows allowed",
            args.batch_size
        )));
    }
    // Fail before the (long) training, not after it.
    check_out_dir(&args.out, args.overwrite)?;
    let text = std::fs::read_to_string(&args.data).map_err(io_err(&args.data))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(CliError::invalid(format!(
            "{}: no text (one example per line)",
            args.data.display()
        )));
    }
    let backend = args.backend.open()?;
    let lm = load::model(&args.model, &backend)?.with_prepend_bos(args.bos.resolve(None))?;
    let mut parts = Vec::with_capacity(lines.len());
    for line in &lines {
        let (_, ids) = lm.encode(line)?;
        parts.push(super::collect_all(
            &lm.model,
            args.layer,
            args.component,
            &ids,
        )?);
    }
    let acts = Tensor::cat(&parts, 0)?.to_dtype(backend.sae_dtype)?;
    let (n, d) = acts.dims2()?;
    let latents = d
        .checked_mul(args.expansion)
        .filter(|&l| vene::autoencoder::limits::checked_elements(&[d, l]).is_some())
        .ok_or_else(|| {
            CliError::invalid(format!(
                "--expansion {} gives a {d} x {d}*{} autoencoder, more than the {} weights allowed per matrix",
                args.expansion,
                args.expansion,
                vene::autoencoder::limits::MAX_NEW_TENSOR_ELEMENTS
            ))
        })?;
    if vene::autoencoder::limits::checked_elements(&[args.batch_size, d]).is_none() {
        return Err(CliError::invalid(format!(
            "--batch-size {} of width {d} is more than the {} values allowed per batch",
            args.batch_size,
            vene::autoencoder::limits::MAX_NEW_TENSOR_ELEMENTS
        )));
    }
    let ae = toy::seeded_autoencoder(d, latents, args.seed, acts.device())?
        .to(acts.device(), backend.sae_dtype)?;
    let cfg = TrainConfig {
        lr: args.lr,
        total_steps: Some(args.steps),
        l1_coefficient: args.l1,
        log_every: (args.steps / 100).max(1),
        ..Default::default()
    };
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rng = StdRng::seed_from_u64(args.seed);
    let rows = args.batch_size;
    let device = acts.device().clone();
    let source = acts.clone();
    let batches = std::iter::repeat_with(move || {
        let idx: Vec<u32> = (0..rows).map(|_| rng.random_range(0..n as u32)).collect();
        Ok(source.index_select(&Tensor::new(idx.as_slice(), &device)?, 0)?)
    });
    let last = train(&ae, batches, &cfg, |p| {
        bar.set_position(p.step as u64);
        bar.set_message(format!(
            "mse {:.4} L0 {:.1} EV {:.3}",
            p.mse, p.l0, p.explained_variance
        ));
    })?;
    bar.finish_and_clear();
    let (recon, z) = ae.forward(&acts, true)?;
    let z = z.ok_or_else(|| CliError::invalid("the autoencoder returned no latents"))?;
    let hook = hook_name(args.layer, args.component);
    let saved = ae.to(&candle_core::Device::Cpu, candle_core::DType::F32)?;
    save_saelens(
        &saved,
        &args.out,
        &hook,
        args.layer,
        &args.model,
        args.overwrite,
    )?;
    Ok(format!(
        "trained on {n} activations of width {d} ({} lines), {} latents, {} steps\n\
         mse {:.6}\nL0 {:.2}\nexplained variance {:.4}\ndead fraction {:.3}\nwrote {} ({hook})\n",
        lines.len(),
        ae.latent_dim(),
        last.step,
        metrics::mse(&acts, &recon)?,
        metrics::l0(&z)?,
        metrics::explained_variance(&acts, &recon)?,
        metrics::dead_fraction(&z)?,
        args.out.display()
    ))
}
