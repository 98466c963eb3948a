//! `vene patch`: an interchange intervention from a source prompt into a base prompt.

use candle_core::{DType, Tensor, D};
use vene::hooks::Component;
use vene::models::{LanguageModel, Model};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, LogitsAt, RepresentationConfig,
    UnitLocations,
};

use crate::backend::BackendArgs;
use crate::{load, table, CliError, Result};

/// Arguments of `vene patch`.
#[derive(Debug, Clone, clap::Args)]
pub struct PatchArgs {
    /// Model folder or hub repo id (the folder needs tokenizer.json).
    #[arg(long)]
    pub model: String,
    /// The base prompt (the run that is patched).
    #[arg(long)]
    pub base: String,
    /// The source prompt (where the activation comes from).
    #[arg(long)]
    pub source: String,
    /// Component to patch.
    #[arg(long, default_value = "block_output")]
    pub component: Component,
    /// A layer index, or `all` for every layer.
    #[arg(long, default_value = "all")]
    pub layer: String,
    /// Logit changes shown (single layer).
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Device and precision.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether prompts start with the BOS token.
    #[command(flatten)]
    pub bos: crate::bos::BosArgs,
}

/// Last-position logits of the base with the source's last position patched in at `layer`.
fn patched_last_logits(
    model: &Model,
    component: Component,
    layer: usize,
    base: &Tensor,
    source: &Tensor,
) -> Result<Tensor> {
    let repr = RepresentationConfig::new(layer, component);
    let iv = IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone())?;
    let (s_last, b_last) = (source.dim(1)? - 1, base.dim(1)? - 1);
    let req = ForwardRequest::new(base.clone())
        .source(source.clone())
        .locations(UnitLocations::pair(s_last, b_last))
        .logits(LogitsAt::Last);
    let out = iv.forward(&req)?;
    Ok(out.intervened.get(0)?.get(0)?.to_dtype(DType::F32)?)
}

fn last_logits(model: &Model, ids: &Tensor) -> Result<Tensor> {
    let logits = model
        .forward_logits_at(ids, None, None, &LogitsAt::Last, &mut vene::hooks::NoHooks)?
        .ok_or_else(|| CliError::invalid("the model returned no logits"))?;
    Ok(logits.get(0)?.get(0)?.to_dtype(DType::F32)?)
}

fn argmax(x: &Tensor) -> Result<u32> {
    Ok(x.argmax(D::Minus1)?.to_scalar::<u32>()?)
}

fn at(x: &[f32], i: u32) -> f32 {
    x.get(i as usize).copied().unwrap_or(f32::NAN)
}

/// Runs `vene patch`: for one layer, the tokens whose last-position logit changed most; for
/// `all`, one row per layer with the patched prediction and the change of the base's and the
/// source's top tokens.
pub fn run(args: &PatchArgs) -> Result<String> {
    let lm = load::model(&args.model, &args.backend.open()?)?
        .with_prepend_bos(args.bos.resolve(None))?;
    let (_, base) = lm.encode(&args.base)?;
    let (_, source) = lm.encode(&args.source)?;
    let base_logits = last_logits(&lm.model, &base)?;
    let base_top = argmax(&base_logits)?;
    let source_top = argmax(&last_logits(&lm.model, &source)?)?;
    let base_v = base_logits.to_vec1::<f32>()?;
    let mut out = format!(
        "base top token {}, source top token {}; patching {} at the last token\n",
        table::token(&lm.token(base_top)),
        table::token(&lm.token(source_top)),
        args.component
    );
    let n_layers = vene::hooks::HookableModel::n_layers(&lm.model);
    if args.layer == "all" {
        let mut rows = Vec::new();
        for layer in 0..n_layers {
            let p = patched_last_logits(&lm.model, args.component, layer, &base, &source)?;
            let pv = p.to_vec1::<f32>()?;
            let top = argmax(&p)?;
            rows.push(vec![
                layer.to_string(),
                table::token(&lm.token(top)),
                format!("{:+.4}", at(&pv, base_top) - at(&base_v, base_top)),
                format!("{:+.4}", at(&pv, source_top) - at(&base_v, source_top)),
            ]);
        }
        out += &table::render(
            &[
                "layer",
                "patched top",
                "Δ logit base top",
                "Δ logit source top",
            ],
            &rows,
        );
        return Ok(out);
    }
    let layer: usize = args.layer.parse().map_err(|_| {
        CliError::invalid(format!(
            "--layer {:?}: expected a layer index or `all`",
            args.layer
        ))
    })?;
    if layer >= n_layers {
        return Err(CliError::invalid(format!(
            "--layer {layer} is out of range: the model has {n_layers} layers"
        )));
    }
    let patched = patched_last_logits(&lm.model, args.component, layer, &base, &source)?;
    let delta = (&patched - &base_logits)?;
    let k = args.top_k.clamp(1, delta.dim(0)?);
    let order = delta
        .abs()?
        .arg_sort_last_dim(false)?
        .narrow(0, 0, k)?
        .to_vec1::<u32>()?;
    let (pv, dv) = (patched.to_vec1::<f32>()?, delta.to_vec1::<f32>()?);
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|&i| {
            vec![
                table::token(&lm.token(i)),
                format!("{:.4}", at(&base_v, i)),
                format!("{:.4}", at(&pv, i)),
                format!("{:+.4}", at(&dv, i)),
            ]
        })
        .collect();
    out += &format!(
        "layer {layer}: patched top token {}\n",
        table::token(&lm.token(argmax(&patched)?))
    );
    out += &table::render(&["token", "base logit", "patched logit", "change"], &rows);
    Ok(out)
}
