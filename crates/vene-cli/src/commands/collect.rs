//! `vene collect`: activations of one or more sites over a token stream (a text file, JSON
//! lines or pre-tokenized ids) into on-disk activation stores (safetensors shards + manifest,
//! [`vene::autoencoder::store`]).
//!
//! Every example is cut into sequences of at most the context length, numbered over the whole
//! input; block `b` is sequences `[b*S, (b+1)*S)` (`S` = `--sequences-per-block`). `--shard i/n`
//! makes job `i` of `n` collect the blocks with `b % n == i` (each job reads the whole input to
//! number the sequences, and runs the model on its blocks only). Sequences run
//! `--batch-size` at a time, right-padded, never across a block's end, and shards are named by
//! block and piece: so `n` jobs write the very files one job writes.

use std::path::PathBuf;

use candle_core::Tensor;
use indicatif::ProgressBar;
use vene::autoencoder::store::{StoreDType, StoreSpec, StoreWriter};
use vene::hooks::Site;
use vene::models::LanguageModel;

use super::collect_input::{CollectInput, InputFormat, Sequencing};
use super::train_sae::{chunk_length, hook_name};
use super::SiteCollector;
use crate::backend::BackendArgs;
use crate::{load, CliError, Result};

/// Sequences per block unless `--sequences-per-block` says otherwise.
pub const DEFAULT_SEQUENCES_PER_BLOCK: usize = 64;

/// Arguments of `vene collect`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("input")
        .required(true)
        .args(["text", "jsonl", "token_ids"])
))]
pub struct CollectArgs {
    /// Model folder (it needs tokenizer.json) or hub repo id `owner/name`.
    #[arg(long)]
    pub model: String,
    /// The site: a TransformerLens / SAELens hook name (`blocks.1.hook_resid_post`), a module
    /// path (`model.layers.1`) or a dictionary_learning name (`resid_1`). Give it several
    /// times to collect several sites in one forward pass; each site's store is then
    /// `--out/<hook name>/`.
    #[arg(long, required = true)]
    pub site: Vec<String>,
    /// Text file, one example per line (blank lines skipped; every token is a row).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// JSON-lines file: one object per line, whose `--field` is the example's text.
    #[arg(long)]
    pub jsonl: Option<PathBuf>,
    /// The field of each `--jsonl` object that holds the text (default `text`; only with
    /// --jsonl).
    #[arg(long)]
    pub field: Option<String>,
    /// Pre-tokenized file: each line a JSON list of token ids, or an object with `input_ids`
    /// (or `tokens`); ids must be in the model's vocabulary.
    #[arg(long)]
    pub token_ids: Option<PathBuf>,
    /// The store's folder (created; the jobs of one store share it). With several sites, the
    /// folder of the sites' stores.
    #[arg(long)]
    pub out: PathBuf,
    /// `i/n`: this job collects the blocks `b` with `b % n == i`.
    #[arg(long, default_value = "0/1", value_parser = parse_shard)]
    pub shard: (usize, usize),
    /// Tokens per sequence at most (default: the model's context); a longer example is cut
    /// into several sequences.
    #[arg(long)]
    pub context_length: Option<usize>,
    /// Sequences per block, the unit a job owns: block `b` is sequences `[b*S, (b+1)*S)` of
    /// the whole input.
    #[arg(long, default_value_t = DEFAULT_SEQUENCES_PER_BLOCK)]
    pub sequences_per_block: usize,
    /// Sequences per forward pass (right-padded to the longest; never across blocks).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Rows per shard file at most (a block of more rows is split into pieces).
    #[arg(long, default_value_t = 65536)]
    pub rows_per_shard: usize,
    /// dtype of the shards: f32, bf16 or f16.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16"])]
    pub store_dtype: String,
    /// Device and precision of the model.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether sequences start with the BOS token.
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

/// The blocks job `index` of `count` owns among `blocks`, and their sequences, for `total`
/// sequences in blocks of `per_block`.
///
/// ```
/// use vene_cli::commands::collect::owned_work;
/// // 7 sequences in blocks of 2: blocks 0..4 (the last holds 1); job 0 of 3 owns 0 and 3
/// assert_eq!(owned_work(7, 2, 0, 3), (2, 3));
/// assert_eq!(owned_work(7, 2, 2, 3), (1, 2));
/// ```
pub fn owned_work(total: usize, per_block: usize, index: usize, count: usize) -> (usize, usize) {
    let blocks = total.div_ceil(per_block);
    (index..blocks)
        .step_by(count)
        .fold((0, 0), |(b, s), block| {
            (b + 1, s + per_block.min(total - block * per_block))
        })
}

impl CollectArgs {
    /// The input file and its format (clap makes sure exactly one is given).
    fn input(&self) -> Result<CollectInput> {
        if self.field.is_some() && self.jsonl.is_none() {
            return Err(CliError::invalid(
                "--field names the text's field of --jsonl objects: it needs --jsonl",
            ));
        }
        let (path, format) = match (&self.text, &self.jsonl, &self.token_ids) {
            (Some(p), None, None) => (p, InputFormat::Text),
            (None, Some(p), None) => (
                p,
                InputFormat::Jsonl {
                    field: self.field.clone().unwrap_or_else(|| "text".into()),
                },
            ),
            (None, None, Some(p)) => (p, InputFormat::TokenIds),
            _ => {
                return Err(CliError::invalid(
                    "give exactly one input: --text, --jsonl or --token-ids",
                ))
            }
        };
        Ok(CollectInput {
            path: path.clone(),
            format,
        })
    }

    /// The sites, each once, with their hook names.
    fn sites(&self) -> Result<Vec<(Site, String)>> {
        let mut sites: Vec<(Site, String)> = Vec::new();
        for name in &self.site {
            let (layer, component) = vene::hooks::site_from_name(name).ok_or_else(|| {
                CliError::invalid(format!(
                    "--site `{name}` names no site vene knows (e.g. blocks.1.hook_resid_post, model.layers.1, resid_1)"
                ))
            })?;
            if component.is_head() {
                return Err(CliError::invalid(format!(
                    "--site {name}: collect takes whole positions, not a head's view"
                )));
            }
            let hook = hook_name(layer, component);
            if sites.iter().any(|(_, h)| *h == hook) {
                return Err(CliError::invalid(format!(
                    "--site {name}: {hook} is given twice"
                )));
            }
            sites.push((Site::new(layer, component), hook));
        }
        Ok(sites)
    }
}

/// Runs sequences through the model a batch at a time, block by block, into one store per
/// site.
struct BlockRunner<'a> {
    collector: SiteCollector,
    writers: Vec<StoreWriter>,
    batch_size: usize,
    batch: Vec<Vec<u32>>,
    block: Option<usize>,
    bar: &'a ProgressBar,
}

impl BlockRunner<'_> {
    /// Adds sequence `seq` of block `block` (blocks in increasing order).
    fn push(&mut self, block: usize, seq: Vec<u32>) -> Result<()> {
        if self.block != Some(block) {
            self.run_batch()?;
            for w in &mut self.writers {
                w.start_block(block)?;
            }
            self.block = Some(block);
        }
        self.batch.push(seq);
        if self.batch.len() == self.batch_size {
            self.run_batch()?;
        }
        Ok(())
    }

    /// Collects the sequences waiting (one forward pass) and appends their rows.
    fn run_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let acts: Vec<Tensor> = self.collector.collect(&self.batch)?;
        for (w, a) in self.writers.iter_mut().zip(&acts) {
            w.append(a)?;
        }
        self.bar.inc(self.batch.len() as u64);
        self.bar
            .set_message(format!("{} rows", self.writers[0].rows()));
        self.batch.clear();
        Ok(())
    }
}

/// Runs `vene collect`; the progress bars go to stderr, the summary is returned.
pub fn run(args: &CollectArgs) -> Result<String> {
    let (index, count) = args.shard;
    if args.rows_per_shard == 0 || args.sequences_per_block == 0 || args.batch_size == 0 {
        return Err(CliError::invalid(
            "--rows-per-shard, --sequences-per-block and --batch-size must be at least 1",
        ));
    }
    let input = args.input()?;
    let sites = args.sites()?;
    let dtype = match args.store_dtype.as_str() {
        "bf16" => StoreDType::Bf16,
        "f16" => StoreDType::F16,
        _ => StoreDType::F32,
    };
    std::fs::File::open(&input.path).map_err(CliError::io(&input.path))?;
    let outs: Vec<PathBuf> = match sites.as_slice() {
        [_] => vec![args.out.clone()],
        _ => sites.iter().map(|(_, hook)| args.out.join(hook)).collect(),
    };
    for dir in &outs {
        StoreWriter::check_new(dir, index, count)?;
    }
    let backend = args.backend.open()?;
    let lm = load::model(&args.model, &backend)?.with_prepend_bos(args.bos.resolve(None))?;
    let n_layers = vene::hooks::HookableModel::n_layers(&lm.model);
    let mut widths = Vec::with_capacity(sites.len());
    for (site, hook) in &sites {
        if site.layer >= n_layers {
            return Err(CliError::invalid(format!(
                "--site {hook}: layer {} is out of range, the model has {n_layers} layers",
                site.layer
            )));
        }
        widths.push(load::component_width(&lm.model, site.component)?);
    }
    let chunk = chunk_length(&lm.model, &args.model, args.context_length)?;
    let bos = match lm.prepend_bos {
        Some(true) => Some(lm.tokenizer.bos_token_id().map_err(CliError::from)?),
        _ => None,
    };
    let sequencing = Sequencing {
        lm: &lm,
        chunk,
        bos,
        vocab: LanguageModel::vocab_size(&lm.model),
    };

    // Pass 1: check every line and number the sequences, before anything is written.
    let bar = crate::progress::bar(input.size(), "{bar:30} {bytes}/{total_bytes} reading");
    let (mut total, mut examples) = (0usize, 0usize);
    for example in input.examples(&sequencing)? {
        let example = example?;
        total += example.sequences.len();
        examples += 1;
        bar.set_position(example.bytes);
    }
    bar.finish_and_clear();
    if total == 0 {
        return Err(CliError::invalid(format!(
            "{}: no examples (blank lines are skipped)",
            input.path.display()
        )));
    }
    let per_block = args.sequences_per_block;
    let blocks = total.div_ceil(per_block);
    let (owned_blocks, owned) = owned_work(total, per_block, index, count);

    // Pass 2: collect the blocks this job owns.
    let mut writers = Vec::with_capacity(sites.len());
    for (((_, hook), &d), dir) in sites.iter().zip(&widths).zip(&outs) {
        let spec = StoreSpec {
            model: args.model.clone(),
            site: hook.clone(),
            d,
            dtype,
            rows_per_shard: args.rows_per_shard,
        };
        writers.push(StoreWriter::create(dir, spec, index, count)?);
    }
    let site_list: Vec<Site> = sites.iter().map(|(s, _)| *s).collect();
    let bar = crate::progress::bar(owned as u64, "{bar:30} {pos}/{len} sequences, {msg}");
    let mut runner = BlockRunner {
        collector: SiteCollector::new(&lm.model, &site_list, chunk)?,
        writers,
        batch_size: args.batch_size,
        batch: Vec::with_capacity(args.batch_size),
        block: None,
        bar: &bar,
    };
    let mut seq = 0usize;
    for example in input.examples(&sequencing)? {
        for s in example?.sequences {
            let block = seq / per_block;
            seq += 1;
            if block % count == index {
                runner.push(block, s)?;
            }
        }
    }
    runner.run_batch()?;
    bar.finish_and_clear();
    if seq != total {
        return Err(CliError::invalid(format!(
            "{}: the file changed while it was read ({total} sequences, then {seq})",
            input.path.display()
        )));
    }
    let mut out = format!(
        "job {index}/{count}: {owned} of {total} sequences ({owned_blocks} of {blocks} blocks of \
         {per_block}) from {examples} examples of {}\n",
        input.path.display()
    );
    for ((w, (_, hook)), (d, dir)) in runner
        .writers
        .into_iter()
        .zip(&sites)
        .zip(widths.iter().zip(&outs))
    {
        let m = w.finish()?;
        out.push_str(&format!(
            "wrote {} rows of {hook} (width {d}) in {} shards to {}\n",
            m.total_rows,
            m.shards.len(),
            dir.display()
        ));
    }
    Ok(out)
}
