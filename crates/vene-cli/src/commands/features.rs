//! `vene features`: the top SAE latents of every token of a prompt.

use candle_core::{DType, D};
use vene::hooks::Component;

use crate::backend::BackendArgs;
use crate::{load, table, CliError, Result};

/// Arguments of `vene features`.
#[derive(Debug, Clone, clap::Args)]
pub struct FeaturesArgs {
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
    /// The text to analyse.
    #[arg(long)]
    pub prompt: String,
    /// Latents shown per token.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Device and precision.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether prompts start with the BOS token.
    #[command(flatten)]
    pub bos: crate::bos::BosArgs,
}

/// Runs `vene features`: a table with one row per token and its `top_k` latents `id (value)`.
pub fn run(args: &FeaturesArgs) -> Result<String> {
    if args.top_k == 0 {
        return Err(CliError::invalid("--top-k must be at least 1"));
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
    let (ids, ids_t) = lm.encode(&args.prompt)?;
    let acts = super::collect_all(&lm.model, layer, component, &ids_t)?;
    let z = ae.encode(&acts)?.to_dtype(DType::F32)?;
    let k = args.top_k.min(ae.latent_dim());
    let order = z
        .arg_sort_last_dim(false)?
        .narrow(D::Minus1, 0, k)?
        .to_vec2::<u32>()?;
    let values = z.to_vec2::<f32>()?;
    let mut rows = Vec::new();
    for (pos, ((id, top), vals)) in ids.iter().zip(&order).zip(&values).enumerate() {
        let latents: Vec<String> = top
            .iter()
            .filter_map(|&j| vals.get(j as usize).map(|v| (j, *v)))
            .filter(|(_, v)| *v > 0.0)
            .map(|(j, v)| format!("{j} ({v:.2})"))
            .collect();
        let active = vals.iter().filter(|v| **v > 0.0).count();
        rows.push(vec![
            pos.to_string(),
            table::token(&lm.token(*id)),
            active.to_string(),
            latents.join(", "),
        ]);
    }
    let title = format!(
        "SAE latents at layer {layer} {} ({} latents)\n",
        component,
        ae.latent_dim()
    );
    Ok(title
        + &table::render(
            &["pos", "token", "active", "top latents (activation)"],
            &rows,
        ))
}
