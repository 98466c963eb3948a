//! `vene eval-sae`: how good an SAE is inside its model (SAELens's evals) over a text file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use vene::hooks::{transformer_lens_name, Site};
use vene::{SaeEvalOptions, SaeEvalReport, Splice};

use crate::commands::train_sae::chunk_ids;
use crate::{load, table, CliError, Result};

/// Arguments of `vene eval-sae`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalSaeArgs {
    /// The model, the SAE and its site, the text and its chunking, device and BOS.
    #[command(flatten)]
    pub input: crate::sae_on_text::SaeOnTextArgs,
    /// Evaluate at most this many sequences (chunks), from the start of the file.
    #[arg(long)]
    pub max_sequences: Option<usize>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// A latent firing on more than this fraction of tokens counts as dense.
    #[arg(long, default_value_t = 0.1)]
    pub dense_threshold: f64,
    /// Count BOS positions in the SAE statistics too (by default they are left out, as their
    /// activations are outliers; the losses count them either way).
    #[arg(long)]
    pub stats_on_bos: bool,
    /// Also write the report (with every latent's firing density) as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the feature-density histogram (log10 firing frequency of every latent, dead
    /// latents counted apart, as SAELens shows it) to this PNG or SVG file.
    #[arg(long)]
    pub density_plot: Option<PathBuf>,
}

/// Runs `vene eval-sae`: the report as a table (and JSON with `--json`).
pub fn run(args: &EvalSaeArgs) -> Result<String> {
    if args.batch_size == 0 {
        return Err(CliError::invalid("--batch-size must be at least 1"));
    }
    if args.max_sequences == Some(0) {
        return Err(CliError::invalid("--max-sequences must be at least 1"));
    }
    if !(args.dense_threshold >= 0.0 && args.dense_threshold <= 1.0) {
        return Err(CliError::invalid("--dense-threshold must be within [0, 1]"));
    }
    if let Some(path) = &args.density_plot {
        crate::plots::PlotFormat::from_path(path)?;
    }
    let crate::sae_on_text::OpenedSae {
        backend,
        lm,
        sae,
        site,
        chunk,
    } = args.input.open()?;
    // A transcoder writes the output site its files name, unless --layer/--component moved it.
    let transcoder_sites = match (
        &sae.output_hook_name,
        args.input.layer,
        args.input.component,
    ) {
        (Some(_), None, None) => Some(vene::sae_sites(&sae)?),
        _ => None,
    };
    let (read, where_) = transcoder_sites.unwrap_or_else(|| {
        let s = Site::new(site.layer, site.component);
        (s, s)
    });
    let ae = load::sae_for(&lm.model, sae, read.component, &backend)?;
    let splice = Splice::transcoder(read, where_, ae);
    splice.check(&lm.model)?;
    let bos = match lm.prepend_bos {
        Some(true) => Some(lm.tokenizer.bos_token_id()?),
        _ => None,
    };
    let sequences = read_sequences(&lm, &args.input.text, chunk, bos, args.max_sequences)?;
    let opts = SaeEvalOptions {
        batch_size: args.batch_size,
        dense_threshold: args.dense_threshold,
        ignore_tokens: match bos {
            Some(b) if !args.stats_on_bos => vec![b],
            _ => Vec::new(),
        },
    };
    let bar = crate::progress::bar(sequences.len() as u64, "{bar:30} {pos}/{len} sequences");
    let report = vene::eval_sae(&lm.model, &splice, &sequences, &opts, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)
            .map_err(|e| CliError::invalid(format!("cannot write the report as JSON: {e}")))?;
        vene::autoencoder::atomic::write_file(path, &json).map_err(CliError::io(path))?;
    }
    if let Some(path) = &args.density_plot {
        crate::plots::plot_feature_density(&report.latent_density, path)?;
    }
    let name = args.input.sae_name();
    Ok(render(&report, read, where_, &name))
}

/// Reads `path` line by line (blank lines skipped) and cuts each line's tokens into
/// sequences of at most `chunk` tokens (each starting with `bos` when given), up to `max`.
fn read_sequences(
    lm: &load::LoadedModel,
    path: &Path,
    chunk: usize,
    bos: Option<u32>,
    max: Option<usize>,
) -> Result<Vec<Vec<u32>>> {
    let file = std::fs::File::open(path).map_err(CliError::io(path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(CliError::io(path))?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let (ids, _) = lm.encode(text).map_err(|e| {
            CliError::invalid(format!("{}:{}: {}", path.display(), i + 1, e.one_line()))
        })?;
        out.extend(chunk_ids(&ids, chunk, bos));
        if let Some(m) = max {
            if out.len() >= m {
                out.truncate(m);
                break;
            }
        }
    }
    if out.is_empty() {
        return Err(CliError::invalid(format!(
            "{}: no text (one text per line)",
            path.display()
        )));
    }
    Ok(out)
}

/// The report as the table `vene eval-sae` prints.
pub fn render(r: &SaeEvalReport, read: Site, site: Site, sae: &str) -> String {
    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    let n_latents = r.latent_density.len();
    let count = |frac: f64| (frac * n_latents as f64).round() as usize;
    let rows: Vec<Vec<String>> = [
        ("L0 (latents firing per token)", format!("{:.3}", r.l0)),
        ("MSE (per element)", format!("{:.6}", r.mse)),
        ("explained variance", format!("{:.4}", r.explained_variance)),
        ("CE loss, clean", format!("{:.4}", r.ce_loss_clean)),
        (
            "CE loss, SAE spliced in",
            format!("{:.4}", r.ce_loss_spliced),
        ),
        (
            "CE loss, zero-ablated",
            format!("{:.4}", r.ce_loss_zero_ablated),
        ),
        ("loss recovered", pct(r.loss_recovered)),
        (
            "KL(clean || spliced) per token",
            format!("{:.5}", r.kl_div_spliced),
        ),
        (
            "KL(clean || zero-ablated) per token",
            format!("{:.5}", r.kl_div_zero_ablated),
        ),
        (
            "dead latents",
            format!(
                "{} ({} of {n_latents})",
                pct(r.dead_fraction),
                count(r.dead_fraction)
            ),
        ),
        (
            "dense latents",
            format!(
                "{} ({} of {n_latents} fire on > {} of tokens)",
                pct(r.dense_fraction),
                count(r.dense_fraction),
                pct(r.dense_threshold)
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v])
    .collect();
    let at = |s: Site| {
        let name = transformer_lens_name(s.layer, s.component)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!("{} of layer {}{name}", s.component, s.layer)
    };
    let sites = if read == site {
        format!("at {}", at(site))
    } else {
        format!("reading {}, writing {}", at(read), at(site))
    };
    format!(
        "SAE {sae} {sites}\n{} sequences, {} tokens in the SAE statistics, {} predictions\n{}",
        r.sequences,
        r.tokens,
        r.predictions,
        table::render(&["metric", "value"], &rows)
    )
}
