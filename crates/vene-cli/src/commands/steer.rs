//! `vene steer`: generation with an SAE decoder direction added to the residual stream.

use candle_core::{Device, Tensor};
use vene::hooks::Component;
use vene::models::{GenerationConfig, LanguageModel};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, InterveneOn, RepresentationConfig,
};

use crate::backend::BackendArgs;
use crate::{load, CliError, Result};

/// Arguments of `vene steer`.
#[derive(Debug, Clone, clap::Args)]
pub struct SteerArgs {
    /// Model folder (it needs tokenizer.json) or hub repo id `owner/name`.
    #[arg(long)]
    pub model: String,
    /// The SAE: --sae, or --sae-release with --sae-id.
    #[command(flatten)]
    pub sae: crate::sae_args::SaeArgs,
    /// Layer (default: the layer the SAE's files name).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Component the SAE reads (default: the site its files name, e.g. block_input for
    /// SAELens `hook_resid_pre`; else block_output).
    #[arg(long)]
    pub component: Option<Component>,
    /// The latent whose decoder direction steers.
    #[arg(long)]
    pub latent: usize,
    /// How much of the direction is added.
    #[arg(long, allow_negative_numbers = true)]
    pub scale: f64,
    /// The prompt to continue.
    #[arg(long)]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 20)]
    pub max_new_tokens: usize,
    /// Device and precision.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether prompts start with the BOS token.
    #[command(flatten)]
    pub bos: crate::bos::BosArgs,
}

/// The decoder direction of `latent`: `decode(e_latent) - decode(0)`, `[d]`.
pub fn decoder_direction(ae: &dyn vene::autoencoder::Autoencoder, latent: usize) -> Result<Tensor> {
    let l = ae.latent_dim();
    if latent >= l {
        return Err(CliError::invalid(format!(
            "--latent {latent} is out of range: the SAE has {l} latents"
        )));
    }
    let mut one = vec![0f32; l];
    if let Some(v) = one.get_mut(latent) {
        *v = 1.0;
    }
    let device = ae.placement().map_or(Device::Cpu, |(d, _)| d);
    let z = Tensor::from_vec(one, (1, l), &device)?;
    let zero = z.zeros_like()?;
    Ok((ae.decode(&z)? - ae.decode(&zero)?)?.squeeze(0)?)
}

/// Runs `vene steer`: the greedy continuation without and with steering.
pub fn run(args: &SteerArgs) -> Result<String> {
    if !args.scale.is_finite() {
        return Err(CliError::invalid(format!(
            "--scale must be finite, got {}",
            args.scale
        )));
    }
    if args.max_new_tokens > vene::MAX_NEW_TOKENS {
        return Err(CliError::invalid(format!(
            "--max-new-tokens {} is more than the {} allowed",
            args.max_new_tokens,
            vene::MAX_NEW_TOKENS
        )));
    }
    let backend = args.backend.open()?;
    // The SAE first: a wrong release or id is reported before a model download.
    let sae = args.sae.load()?;
    let lm = load::model(&args.model, &backend)?;
    let lm = lm.with_prepend_bos(args.bos.resolve(Some(&sae)))?;
    let site = load::sae_site(args.layer, args.component, &sae)?;
    let (layer, component) = (site.layer, site.component);
    let ae = load::sae_for(&lm.model, sae, component, &backend)?;
    if let Some(w) = &site.warning {
        eprintln!("{w}");
    }
    let direction = (decoder_direction(ae.as_ref(), args.latent)? * args.scale)?
        .to_device(lm.model.device())?;
    let (ids, ids_t) = lm.encode(&args.prompt)?;
    let cfg = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        ..Default::default()
    };
    let plain = vene::models::generate(&lm.model, &ids, &cfg, &mut vene::hooks::NoHooks)?;
    let repr = RepresentationConfig::new(layer, component)
        .intervention_type("AdditionIntervention")
        .source_representation(direction);
    let steering = IntervenableModel::new(IntervenableConfig::new(vec![repr]), lm.model)?;
    let steered = steering.generate(
        &ForwardRequest::new(ids_t),
        InterveneOn::PromptAndSteps,
        &cfg,
    )?;
    let text = |new: &[u32]| lm.tokenizer.decode(new).unwrap_or_default();
    Ok(format!(
        "prompt:  {}\nplain:   {}\nsteered: {}\n(latent {} x {} at layer {layer} {})\n",
        args.prompt,
        text(&plain),
        text(&steered),
        args.latent,
        args.scale,
        component
    ))
}
