//! `vene collect`: activations of one site over a text file, into an on-disk activation store
//! (safetensors shards + manifest, [`vene::autoencoder::store`]). `--shard i/n` makes the part
//! of the store that job `i` of `n` owns, so `n` jobs build one store together.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use candle_core::Tensor;
use vene::autoencoder::store::{StoreDType, StoreSpec, StoreWriter};
use vene::models::LanguageModel;

use super::train_sae::{chunk_ids, chunk_length, hook_name};
use crate::backend::BackendArgs;
use crate::{load, CliError, Result};

/// Arguments of `vene collect`.
#[derive(Debug, Clone, clap::Args)]
pub struct CollectArgs {
    /// Model folder (it needs tokenizer.json) or hub repo id `owner/name`.
    #[arg(long)]
    pub model: String,
    /// The site: a TransformerLens / SAELens hook name (`blocks.1.hook_resid_post`), a module
    /// path (`model.layers.1`) or a dictionary_learning name (`resid_1`).
    #[arg(long)]
    pub site: String,
    /// Text file, one example per line (blank lines skipped; every token is a row).
    #[arg(long)]
    pub text: PathBuf,
    /// The store's folder (created; shard writers of one store share it).
    #[arg(long)]
    pub out: PathBuf,
    /// `i/n`: this job writes the lines whose index (among non-blank lines) is `i` modulo `n`.
    #[arg(long, default_value = "0/1", value_parser = parse_shard)]
    pub shard: (usize, usize),
    /// Tokens per forward pass (default: the model's context).
    #[arg(long)]
    pub context_length: Option<usize>,
    /// Rows per shard file.
    #[arg(long, default_value_t = 65536)]
    pub rows_per_shard: usize,
    /// dtype of the shards: f32, bf16 or f16.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16"])]
    pub store_dtype: String,
    /// Device and precision of the model.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether prompts start with the BOS token.
    #[command(flatten)]
    pub bos: crate::bos::BosArgs,
}

/// Parses `i/n` with `0 <= i < n`.
///
/// ```
/// use vene_cli::commands::collect::parse_shard;
/// assert_eq!(parse_shard("2/3"), Ok((2, 3)));
/// assert!(parse_shard("3/3").is_err());
/// assert!(parse_shard("1").is_err());
/// ```
pub fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("`{s}`: expected i/n with 0 <= i < n (e.g. 0/4)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Runs `vene collect`; the progress bar goes to stderr, the summary is returned.
pub fn run(args: &CollectArgs) -> Result<String> {
    let (index, count) = args.shard;
    let (layer, component) = vene::hooks::site_from_name(&args.site).ok_or_else(|| {
        CliError::invalid(format!(
            "--site `{}` names no site vene knows (e.g. blocks.1.hook_resid_post, model.layers.1, resid_1)",
            args.site
        ))
    })?;
    if component.is_head() {
        return Err(CliError::invalid(format!(
            "--site {}: collect takes whole positions, not a head's view",
            args.site
        )));
    }
    if args.rows_per_shard == 0 {
        return Err(CliError::invalid("--rows-per-shard must be at least 1"));
    }
    let dtype = match args.store_dtype.as_str() {
        "bf16" => StoreDType::Bf16,
        "f16" => StoreDType::F16,
        _ => StoreDType::F32,
    };
    let file = std::fs::File::open(&args.text).map_err(CliError::io(&args.text))?;
    let backend = args.backend.open()?;
    let lm = load::model(&args.model, &backend)?.with_prepend_bos(args.bos.resolve(None))?;
    let n_layers = vene::hooks::HookableModel::n_layers(&lm.model);
    if layer >= n_layers {
        return Err(CliError::invalid(format!(
            "--site {}: layer {layer} is out of range, the model has {n_layers} layers",
            args.site
        )));
    }
    let d = load::component_width(&lm.model, component)?;
    let chunk = chunk_length(&lm.model, &args.model, args.context_length)?;
    let site = hook_name(layer, component);
    let spec = StoreSpec {
        model: args.model.clone(),
        site: site.clone(),
        d,
        dtype,
        rows_per_shard: args.rows_per_shard,
    };
    let mut writer = StoreWriter::create(&args.out, spec, index, count)?;
    let bos = match lm.prepend_bos {
        Some(true) => Some(lm.tokenizer.bos_token_id().map_err(CliError::from)?),
        _ => None,
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = crate::progress::bar(size, "{bar:30} {bytes}/{total_bytes} collecting {msg}");
    let (mut example, mut lines) = (0usize, 0usize);
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(CliError::io(&args.text))?;
        bar.inc(line.len() as u64 + 1);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        example += 1;
        if (example - 1) % count != index {
            continue;
        }
        let at_line = |e: CliError| {
            CliError::invalid(format!(
                "{}:{}: {}",
                args.text.display(),
                i + 1,
                e.one_line()
            ))
        };
        let (ids, _) = lm.encode(text).map_err(at_line)?;
        for piece in chunk_ids(&ids, chunk, bos) {
            let t = Tensor::new(piece.as_slice(), lm.model.device())?.unsqueeze(0)?;
            let acts = super::collect_all(&lm.model, layer, component, &t).map_err(at_line)?;
            writer.append(&acts)?;
        }
        lines += 1;
        bar.set_message(format!("{lines} lines, {} rows", writer.rows()));
    }
    bar.finish_and_clear();
    let manifest = writer.finish()?;
    Ok(format!(
        "wrote {} rows of {site} (width {d}) from {lines} lines in {} shards to {} (part {index}/{count})\n",
        manifest.total_rows,
        manifest.shards.len(),
        args.out.display()
    ))
}
