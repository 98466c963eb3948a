//! Steering: generation with an `AdditionIntervention` whose constant source is
//! `scale * W_dec[latent]`, the decoder direction of one SAE latent. Prints the plain and the
//! steered continuation.
//!
//! ```text
//! cargo run -p vene-examples --example steering -- --latent 3 --scale 20
//! cargo run --release -p vene-examples --example steering -- --model openai-community/gpt2 \
//!     --sae jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre \
//!     --latent 1000 --scale 40 --prompt "I think that"
//! ```
//!
//! Without `--model`/`--sae` it runs offline on a seeded tiny GPT-2 and a seeded SAE (SAELens
//! layout) it writes to a temporary folder. The site is the SAE's hook (`hook_resid_pre` of
//! layer 8 is `block_input` of layer 8) unless `--layer`/`--component` say otherwise.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use vene::hooks::Component;
use vene::models::{GenerationConfig, LanguageModel};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, InterveneOn, RepresentationConfig,
};
use vene_cli::backend::BackendArgs;
use vene_cli::commands::steer::decoder_direction;
use vene_cli::{load, CliError, Result};

/// Generation steered along an SAE latent's decoder direction.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Model folder or hub repo id (default: an offline tiny GPT-2).
    #[arg(long)]
    model: Option<String>,
    /// SAE folder or file, or a hub path `org/repo/path-in-repo` (default: an offline SAE).
    #[arg(long)]
    sae: Option<String>,
    /// Layer (default: the SAE's).
    #[arg(long)]
    layer: Option<usize>,
    /// Component (default: the SAE's hook, else block_output).
    #[arg(long)]
    component: Option<Component>,
    /// The latent whose decoder row steers.
    #[arg(long, default_value_t = 0)]
    latent: usize,
    /// How much of the direction is added.
    #[arg(long, default_value_t = 8.0, allow_negative_numbers = true)]
    scale: f64,
    /// The prompt to continue.
    #[arg(long, default_value = "I think that the")]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 10)]
    max_new_tokens: usize,
    /// Device and precision (--device cpu|cuda[:N]|metal, --dtype f32|f16|bf16).
    #[command(flatten)]
    backend: BackendArgs,
}

/// What a run generated.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct Report {
    layer: usize,
    component: Component,
    /// `scale * W_dec[latent]`, `[d]`.
    direction: Vec<f32>,
    plain: Vec<u32>,
    steered: Vec<u32>,
    text: String,
}

fn run(args: &Args, model_dir: &str, sae_spec: &str) -> Result<Report> {
    if !args.scale.is_finite() {
        return Err(CliError::invalid(format!(
            "--scale must be finite, got {}",
            args.scale
        )));
    }
    let backend = args.backend.open()?;
    let lm = load::model(model_dir, &backend)?;
    let sae = load::sae(sae_spec)?;
    // The SAE's own site unless --layer/--component say otherwise.
    let site = load::sae_site(args.layer, args.component, &sae)?;
    let (layer, component) = (site.layer, site.component);
    let ae = load::sae_for(&lm.model, sae, component, &backend)?;
    // The decoder row when the SAE's decoder is affine, else decode(e_i) - decode(0).
    let row = match ae.decoder_rows(&[args.latent]) {
        Ok(Some(rows)) => rows.squeeze(0)?,
        _ => decoder_direction(ae.as_ref(), args.latent)?,
    };
    let direction =
        (row.to_dtype(candle_core::DType::F32)? * args.scale)?.to_device(lm.model.device())?;
    let (ids, ids_t) = lm.encode(&args.prompt)?;
    let cfg = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        ..Default::default()
    };
    let plain = vene::models::generate(&lm.model, &ids, &cfg, &mut vene::hooks::NoHooks)?;
    let repr = RepresentationConfig::new(layer, component)
        .intervention_type("AdditionIntervention")
        .source_representation(direction.clone());
    let steering = IntervenableModel::new(IntervenableConfig::new(vec![repr]), lm.model.clone())?;
    let steered = steering.generate(
        &ForwardRequest::new(ids_t),
        InterveneOn::PromptAndSteps,
        &cfg,
    )?;
    let decode = |new: &[u32]| lm.tokenizer.decode(new).unwrap_or_default();
    let text = format!(
        "steering {component} of layer {layer} with {} x W_dec[{}] (norm {:.3})\n\
         prompt:  {}\nplain:   {}\nsteered: {}\n",
        args.scale,
        args.latent,
        direction.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?,
        args.prompt,
        decode(&plain),
        decode(&steered),
    );
    Ok(Report {
        layer,
        component,
        direction: direction.to_vec1::<f32>()?,
        plain,
        steered,
        text,
    })
}

/// The offline model and SAE folders (block_output of layer 0, 4 latents per dim).
fn offline(root: &std::path::Path, seed: u64) -> Result<(String, String)> {
    let model = common::offline::write_model(root, seed)?;
    let d = common::offline::WIDTH;
    let sae = common::offline::write_sae(root, d, 4 * d, 0, Component::BlockOutput, seed)?;
    Ok((model.display().to_string(), sae.display().to_string()))
}

fn main() {
    let args = Args::parse();
    let given = match (&args.model, &args.sae) {
        (Some(m), Some(s)) => Ok(Some((m.clone(), s.clone()))),
        (None, None) => Ok(None),
        _ => Err(CliError::invalid(
            "give both --model and --sae, or neither (offline)",
        )),
    };
    common::run_main(
        "steering",
        given,
        |root| offline(root, 0),
        |(model, sae)| Ok(run(&args, model, sae)?.text),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_direction_is_the_scaled_decoder_row_and_steering_changes_the_text() {
        let root = common::temp_root("steering-test").unwrap();
        let (model, sae) = offline(&root, 5).unwrap();
        let args = Args::parse_from(["steering", "--latent", "3", "--scale", "50"]);
        let report = run(&args, &model, &sae).unwrap();
        assert_eq!(
            (report.layer, report.component),
            (0, Component::BlockOutput)
        );
        let w = candle_core::safetensors::load(
            std::path::Path::new(&sae).join("sae_weights.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let w_dec = w["W_dec"].to_vec2::<f32>().unwrap();
        assert_eq!(report.direction.len(), common::offline::WIDTH);
        for (x, w) in report.direction.iter().zip(&w_dec[3]) {
            assert!((x - 50.0 * w).abs() < 1e-4, "{x} vs {}", 50.0 * w);
        }
        assert_eq!(report.plain.len(), 10);
        assert_eq!(report.steered.len(), 10);
        assert_ne!(report.plain, report.steered);
        assert!(report.text.contains("steered: "));

        // Scale 0 adds nothing: the steered text is the plain one.
        let zero = Args::parse_from(["steering", "--latent", "3", "--scale", "0"]);
        let report0 = run(&zero, &model, &sae).unwrap();
        assert_eq!(report0.steered, report0.plain);
        assert_eq!(report0.plain, report.plain);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_latent_out_of_range_is_an_error() {
        let root = common::temp_root("steering-test-range").unwrap();
        let (model, sae) = offline(&root, 5).unwrap();
        let args = Args::parse_from(["steering", "--latent", "128"]);
        let err = run(&args, &model, &sae).unwrap_err().to_string();
        assert!(err.contains("128"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
