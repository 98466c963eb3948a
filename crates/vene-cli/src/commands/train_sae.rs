//! `vene train-sae`: collect activations over a text file and train an SAE on them, written
//! in SAELens's layout.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vene::autoencoder::training::{
    resume_sae_training, train_sae, Architecture, BDecInit, SaeTrainConfig, SaeTrainProgress,
    SaveMetadata, TrainingSae,
};
use vene::autoencoder::{
    metrics, resume_train, safetensors_bytes, train, Autoencoder, AutoencoderLayer, TrainConfig,
    TrainProgress,
};
use vene::hooks::Component;
use vene::models::{LanguageModel, Model};

use super::activation_stream::{ActivationStream, StreamSite};
use crate::backend::BackendArgs;
use crate::plots::TrainRecord;
use crate::{load, CliError, Result};

/// Arguments of `vene train-sae`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainSaeArgs {
    /// Model folder (it needs tokenizer.json) or hub repo id `owner/name`.
    #[arg(long)]
    pub model: String,
    /// Layer whose activations are collected (not with --store).
    #[arg(long, required_unless_present = "store")]
    pub layer: Option<usize>,
    /// Component whose activations are collected.
    #[arg(long, default_value = "block_output")]
    pub component: Component,
    /// Text file, one example per line (every token of every line is a training row).
    #[arg(long, required_unless_present = "store")]
    pub data: Option<PathBuf>,
    /// Train from an activation store (`vene collect`) instead of --data: streamed through a
    /// shuffle buffer, never all in memory. --model must be the store's model.
    #[arg(long, conflicts_with_all = ["data", "layer", "context_length"])]
    pub store: Option<PathBuf>,
    /// Rows of the shuffle buffer when training from --store or with --stream.
    #[arg(long, default_value_t = 1 << 16)]
    pub shuffle_buffer: usize,
    /// With --data: compute the activations while training, through a shuffle buffer of
    /// --shuffle-buffer rows, instead of collecting all of --data into memory first (memory
    /// is the buffer, whatever the text's size; the text is read again each epoch). A
    /// resumed run replays the stream up to its checkpoint.
    #[arg(long, conflicts_with = "store")]
    pub stream: bool,
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
    /// L1 coefficient (relu, standard, gated).
    #[arg(long, default_value_t = 1e-3)]
    pub l1: f64,
    /// What to train: `relu` (pyvene's AutoencoderLayer, L1 with unit-norm decoder columns),
    /// `standard` (SAELens's ReLU SAE: L1 weighted by decoder norms, free decoder, optional
    /// resampling), `topk`, `batchtopk`, `jumprelu`, `gated` or `matryoshka` (Matryoshka
    /// BatchTopK).
    #[arg(long, default_value = "relu", value_parser = ["relu", "standard", "topk", "batchtopk", "jumprelu", "gated", "matryoshka"])]
    pub architecture: String,
    /// Latents kept per row (topk) or per row on average (batchtopk, matryoshka).
    #[arg(long)]
    pub k: Option<usize>,
    /// L0 coefficient of jumprelu.
    #[arg(long, default_value_t = 1.0)]
    pub l0: f64,
    /// Initial threshold of jumprelu (SAELens's 0.001).
    #[arg(long, default_value_t = 0.001)]
    pub init_threshold: f64,
    /// Kernel bandwidth of jumprelu's straight-through estimator (SAELens's 0.001).
    #[arg(long, default_value_t = 0.001)]
    pub bandwidth: f64,
    /// Prefix widths of matryoshka, comma-separated and increasing (the full width is added).
    #[arg(long, value_delimiter = ',')]
    pub matryoshka_widths: Vec<usize>,
    /// Coefficient of the AuxK loss on dead latents (topk, batchtopk, matryoshka).
    #[arg(long, default_value_t = 1.0 / 32.0)]
    pub aux_k_coefficient: f64,
    /// Latents the AuxK loss revives per row (topk, batchtopk, matryoshka; default: half the
    /// width).
    #[arg(long)]
    pub aux_k: Option<usize>,
    /// Linear warm-up of the learning rate over this many steps.
    #[arg(long, default_value_t = 0)]
    pub lr_warm_up_steps: usize,
    /// Linear decay of the learning rate to --lr-end over the last this many steps.
    #[arg(long, default_value_t = 0)]
    pub lr_decay_steps: usize,
    /// The learning rate at the end of --lr-decay-steps.
    #[arg(long, default_value_t = 0.0)]
    pub lr_end: f64,
    /// Linear warm-up of the L1 / L0 coefficient over this many steps.
    #[arg(long, default_value_t = 0)]
    pub sparsity_warm_up_steps: usize,
    /// Where the decoder bias starts: `geometric-median` (SAELens's; 30 Weiszfeld iterations
    /// on the first batch), `mean` or `zeros`. Default: geometric-median, but mean for relu
    /// (pyvene's layer, which takes mean or zeros only).
    #[arg(long, value_parser = ["geometric-median", "mean", "zeros"])]
    pub b_dec_init: Option<String>,
    /// A latent is dead after this many steps without firing (dead fraction, AuxK,
    /// resampling).
    #[arg(long, default_value_t = 1000)]
    pub dead_window: u64,
    /// Resample dead latents every this many steps (standard only; Anthropic's recipe).
    #[arg(long)]
    pub resample_every: Option<usize>,
    /// Scale activations to a mean norm of sqrt(width) while training (SAELens
    /// `expected_average_only_in`); the factor is folded into the saved weights.
    #[arg(long)]
    pub normalize_activations: bool,
    /// Also write the SAE in sparsify's layout into this folder (topk only).
    #[arg(long)]
    pub sparsify_out: Option<PathBuf>,
    /// Tokens per forward pass: longer lines are cut into chunks of this many tokens
    /// (default: the model's context: its position table, else `max_position_embeddings` of
    /// its config.json, else 1024).
    #[arg(long)]
    pub context_length: Option<usize>,
    /// Seed of the init and of the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the metrics of every logged step (about 100 per run) to this file, one JSON
    /// object per line: step, loss, mse, l1, l0, explained_variance, dead_fraction, lr.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Draw the training curves (loss and MSE, L1, L0, explained variance and dead fraction
    /// by step) to this file (`.png` or `.svg`).
    #[arg(long)]
    pub curves: Option<PathBuf>,
    /// Write a training checkpoint every this many steps into `--checkpoint-dir` (every
    /// architecture); each replaces the last.
    #[arg(long, requires = "checkpoint_dir")]
    pub checkpoint_every: Option<usize>,
    /// The checkpoint folder of `--checkpoint-every`.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Resume from this checkpoint folder, with the same model, data, seed and flags
    /// (`--steps` counts from the start of the first run): the result is the one an
    /// uninterrupted run gives. `--metrics` keeps the stopped run's records before the
    /// resumed steps.
    #[arg(long)]
    pub resume: Option<PathBuf>,
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

/// Tokens per forward pass for a model without a learned position table (rotary models
/// take any length; this bounds the memory of one pass).
pub const DEFAULT_CONTEXT_LENGTH: usize = 1024;

/// The longest chunk of tokens `model` takes in one pass: its learned position table's
/// length (GPT-2's `n_positions`), else the context its `config.json` names (`config`:
/// `max_position_embeddings` or an equivalent, see [`config_context_length`]), else
/// [`DEFAULT_CONTEXT_LENGTH`].
///
/// ```
/// use candle_core::{DType, Device};
/// use vene::models::Model;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-gpt2");
/// let model = Model::from_dir(dir, DType::F32, &Device::Cpu)?;
/// assert_eq!(vene_cli::commands::train_sae::context_length(&model, None), 32);
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn context_length(model: &Model, config: Option<usize>) -> usize {
    match (model.spec().max_positions(), config) {
        (Some(table), Some(c)) => table.min(c),
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => DEFAULT_CONTEXT_LENGTH,
    }
}

/// The context length a model folder's `config.json` names: `max_position_embeddings`,
/// `n_positions`, `n_ctx`, `max_seq_len` or `seq_length` (also under `text_config`); `None`
/// when `dir` is not a folder with a readable config that names one.
///
/// ```
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-llama");
/// assert_eq!(vene_cli::commands::train_sae::config_context_length(dir.as_ref()), Some(32));
/// assert_eq!(vene_cli::commands::train_sae::config_context_length("/no/such".as_ref()), None);
/// ```
pub fn config_context_length(dir: &Path) -> Option<usize> {
    const MAX_CONFIG_BYTES: u64 = 16 << 20;
    let path = dir.join("config.json");
    if std::fs::metadata(&path).ok()?.len() > MAX_CONFIG_BYTES {
        return None;
    }
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let keys = [
        "max_position_embeddings",
        "n_positions",
        "n_ctx",
        "max_seq_len",
        "seq_length",
    ];
    let found = [Some(&cfg), cfg.get("text_config")]
        .into_iter()
        .flatten()
        .flat_map(|c| keys.iter().filter_map(move |k| c.get(*k)?.as_u64()))
        .find_map(|n| usize::try_from(n).ok().filter(|&n| n > 0));
    found
}

/// The tokens per chunk: `--context-length` when given (at least 1, at most the model's
/// learned position table), else [`context_length`].
pub fn chunk_length(model: &Model, model_arg: &str, asked: Option<usize>) -> Result<usize> {
    let Some(n) = asked else {
        return Ok(context_length(
            model,
            config_context_length(Path::new(model_arg)),
        ));
    };
    if n == 0 {
        return Err(CliError::invalid("--context-length must be at least 1"));
    }
    match model.spec().max_positions() {
        Some(max) if n > max => Err(CliError::invalid(format!(
            "--context-length {n} is more than the model's {max} positions"
        ))),
        _ => Ok(n),
    }
}

/// What [`collect`] gathered: the activations `[n, width]` and how they were cut.
struct Collected {
    acts: Tensor,
    lines: usize,
    chunks: usize,
}

/// Streams `path` line by line (blank lines skipped), cuts each line's tokens into chunks
/// of at most `chunk` tokens and collects `component` at `layer` for every token, in
/// `dtype`. Errors name the line. A progress bar (bytes read) is drawn on a terminal.
fn collect(
    lm: &load::LoadedModel,
    path: &Path,
    layer: usize,
    component: Component,
    width: usize,
    chunk: usize,
    dtype: candle_core::DType,
) -> Result<Collected> {
    let file = std::fs::File::open(path).map_err(CliError::io(path))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = crate::progress::bar(size, "{bar:30} {bytes}/{total_bytes} collecting {msg}");
    let (mut parts, mut rows, mut lines, mut chunks) = (Vec::new(), 0usize, 0usize, 0usize);
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(CliError::io(path))?;
        bar.inc(line.len() as u64 + 1);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let at_line = |e: CliError| {
            CliError::invalid(format!("{}:{}: {}", path.display(), i + 1, e.one_line()))
        };
        let (ids, _) = lm.encode(text).map_err(at_line)?;
        // With a BOS asked for, every chunk starts with it (as SAELens's contexts do).
        let bos = match lm.prepend_bos {
            Some(true) => Some(lm.tokenizer.bos_token_id().map_err(CliError::from)?),
            _ => None,
        };
        let pieces = chunk_ids(&ids, chunk, bos);
        rows += pieces.iter().map(Vec::len).sum::<usize>();
        if vene::autoencoder::limits::checked_elements(&[rows, width]).is_none() {
            return Err(CliError::invalid(format!(
                "{}: the activations up to line {} are more than the {} values allowed; \
                 train on a shorter file",
                path.display(),
                i + 1,
                vene::autoencoder::limits::MAX_NEW_TENSOR_ELEMENTS
            )));
        }
        for piece in &pieces {
            let t = Tensor::new(piece.as_slice(), lm.model.device())?.unsqueeze(0)?;
            let acts = super::collect_all(&lm.model, layer, component, &t).map_err(at_line)?;
            parts.push(acts.to_dtype(dtype)?);
            chunks += 1;
        }
        lines += 1;
        bar.set_message(format!("{lines} lines, {rows} tokens"));
    }
    bar.finish_and_clear();
    if parts.is_empty() {
        return Err(CliError::invalid(format!(
            "{}: no text (one example per line)",
            path.display()
        )));
    }
    let acts = Tensor::cat(&parts, 0)?;
    let d = acts.dim(1)?;
    if d != width {
        return Err(CliError::invalid(format!(
            "{component} at layer {layer} gave activations of width {d}, but the model says \
             its width is {width}"
        )));
    }
    Ok(Collected {
        acts,
        lines,
        chunks,
    })
}

/// `ids` cut into chunks of at most `chunk` tokens. With `bos`, a leading BOS is taken off and
/// every chunk starts with it instead (so each holds at most `chunk - 1` other tokens).
///
/// ```
/// use vene_cli::commands::train_sae::chunk_ids;
/// assert_eq!(chunk_ids(&[1, 2, 3, 4, 5], 2, None), vec![vec![1, 2], vec![3, 4], vec![5]]);
/// assert_eq!(chunk_ids(&[0, 1, 2, 3], 3, Some(0)), vec![vec![0, 1, 2], vec![0, 3]]);
/// assert_eq!(chunk_ids(&[0], 3, Some(0)), vec![vec![0]]);
/// ```
pub fn chunk_ids(ids: &[u32], chunk: usize, bos: Option<u32>) -> Vec<Vec<u32>> {
    let chunk = chunk.max(1);
    match bos {
        Some(b) if chunk > 1 => {
            let rest = ids.strip_prefix(&[b]).unwrap_or(ids);
            if rest.is_empty() {
                return vec![vec![b]];
            }
            rest.chunks(chunk - 1)
                .map(|c| std::iter::once(b).chain(c.iter().copied()).collect())
                .collect()
        }
        _ => ids.chunks(chunk).map(<[u32]>::to_vec).collect(),
    }
}

/// Checks that `--out` can take a new SAE: absent, empty, or (with `overwrite`) a folder
/// holding an earlier SAE (`cfg.json`).
pub fn check_out_dir(dir: &Path, overwrite: bool) -> Result<()> {
    match std::fs::read_dir(dir) {
        Err(_) if !dir.exists() => Ok(()),
        Err(e) => Err(CliError::io(dir)(e)),
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
    prepend_bos: Option<bool>,
    overwrite: bool,
) -> Result<()> {
    check_out_dir(dir, overwrite)?;
    let staged = vene::autoencoder::atomic::StagedDir::new(dir).map_err(CliError::io(dir))?;
    let mut tensors = HashMap::new();
    tensors.insert("W_enc".to_string(), ae.encoder_weight().t()?.contiguous()?);
    tensors.insert("b_enc".to_string(), ae.encoder_bias().clone());
    tensors.insert("W_dec".to_string(), ae.decoder_weight().t()?.contiguous()?);
    tensors.insert("b_dec".to_string(), ae.decoder_bias().clone());
    let bytes = safetensors_bytes(&tensors)?;
    let weights = staged.path().join("sae_weights.safetensors");
    std::fs::write(&weights, bytes).map_err(CliError::io(&weights))?;
    let mut cfg = serde_json::json!({
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
    // SAELens's `prepend_bos`, when the activations were collected with a choice made.
    if let (Some(bos), Some(obj)) = (prepend_bos, cfg.as_object_mut()) {
        obj.insert("prepend_bos".into(), bos.into());
        if let Some(meta) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.insert("prepend_bos".into(), bos.into());
        }
    }
    let path = staged.path().join("cfg.json");
    let text = serde_json::to_string_pretty(&cfg)
        .map_err(|e| CliError::invalid(format!("cfg.json: {e}")))?;
    std::fs::write(&path, text).map_err(CliError::io(&path))?;
    staged.commit(overwrite).map_err(CliError::io(dir))
}

/// SAELens's hook name of `component` at `layer` (TransformerLens names,
/// [`vene::hooks::transformer_lens_name`]); a component without one (a single head) is
/// written `blocks.L.<vene name>`.
pub fn hook_name(layer: usize, component: Component) -> String {
    vene::hooks::transformer_lens_name(layer, component)
        .unwrap_or_else(|| format!("blocks.{layer}.{component}"))
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
    // Fail before the (long) collection and training, not after them.
    check_out_dir(&args.out, args.overwrite)?;
    let architecture = parse_architecture(args)?;
    check_architecture_flags(args, architecture.as_ref())?;
    if args.checkpoint_every == Some(0) {
        return Err(CliError::invalid("--checkpoint-every must be at least 1"));
    }
    if let Some(dir) = &args.resume {
        if !dir
            .join(vene::autoencoder::training::CHECKPOINT_STATE)
            .is_file()
        {
            return Err(CliError::invalid(format!(
                "--resume {}: not a checkpoint folder (no {})",
                dir.display(),
                vene::autoencoder::training::CHECKPOINT_STATE
            )));
        }
    }
    if let Some(dir) = &args.sparsify_out {
        if !matches!(architecture, Some(Architecture::TopK { .. })) {
            return Err(CliError::invalid(
                "--sparsify-out needs --architecture topk (sparsify's layout holds TopK SAEs)",
            ));
        }
        check_out_dir(dir, args.overwrite)?;
    }
    if let Some(path) = &args.curves {
        crate::plots::PlotFormat::from_path(path)?;
    }
    if let Some(store) = &args.store {
        return super::train_store::run(args, store, architecture);
    }
    let (Some(data), Some(layer)) = (&args.data, args.layer) else {
        return Err(CliError::invalid(
            "--data and --layer are needed (or --store)",
        ));
    };
    if args.component.is_head() {
        return Err(CliError::invalid(format!(
            "--component {}: train-sae collects whole positions; use the component the head \
             is a view of ({})",
            args.component,
            args.component.tap()
        )));
    }
    // A missing data file is reported before the model is loaded.
    std::fs::metadata(data).map_err(CliError::io(data))?;
    let backend = args.backend.open()?;
    let lm = load::model(&args.model, &backend)?.with_prepend_bos(args.bos.resolve(None))?;
    let n_layers = vene::hooks::HookableModel::n_layers(&lm.model);
    if layer >= n_layers {
        return Err(CliError::invalid(format!(
            "--layer {} is out of range: the model has {n_layers} layers (0..={})",
            layer,
            n_layers.saturating_sub(1)
        )));
    }
    // The SAE reads the component's activations: its width is the component's, e.g.
    // intermediate_size for mlp_activation.
    let d = load::component_width(&lm.model, args.component)?;
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
    let chunk = chunk_length(&lm.model, &args.model, args.context_length)?;
    let hook = hook_name(layer, args.component);
    if args.stream {
        let site = StreamSite {
            layer,
            component: args.component,
            width: d,
            chunk,
        };
        let dtype = backend.sae_dtype;
        let options = (args.shuffle_buffer, args.batch_size, args.seed);
        let mut batches = ActivationStream::new(&lm, data, site.clone(), options, dtype)?;
        // The summary's numbers: one batch of the stream, drawn with another seed.
        let probe_options = (
            args.shuffle_buffer,
            args.batch_size,
            args.seed.wrapping_add(1),
        );
        let probe = ActivationStream::new(&lm, data, site, probe_options, dtype)?
            .next()
            .ok_or_else(|| CliError::invalid("the stream gave no batch"))??;
        let trained = train_and_save(
            args,
            architecture,
            &mut batches,
            &probe,
            (layer, d, latents),
            &hook,
        )?;
        return Ok(format!(
            "trained {}on activations streamed from {} (shuffle buffer {} rows, at most {} \
             held), width {d}, {latents} latents, {} steps\non a batch of {} rows: {}",
            trained.what,
            data.display(),
            args.shuffle_buffer,
            batches.peak_rows(),
            trained.steps,
            probe.dim(0)?,
            trained.report
        ));
    }
    let Collected {
        acts,
        lines,
        chunks,
    } = collect(
        &lm,
        data,
        layer,
        args.component,
        d,
        chunk,
        backend.sae_dtype,
    )?;
    let n = acts.dim(0)?;
    let batches = sampled_batches(&acts, args.batch_size, args.seed);
    let trained = train_and_save(
        args,
        architecture,
        batches,
        &acts,
        (layer, d, latents),
        &hook,
    )?;
    Ok(format!(
        "trained {}on {n} activations of width {d} ({lines} lines in {chunks} chunks of at most \
         {chunk} tokens), {latents} latents, {} steps\n{}",
        trained.what, trained.steps, trained.report
    ))
}

/// What [`train_and_save`] did: the kind trained (`a topk SAE `, with its space; empty for
/// pyvene's layer), its steps, and the summary and files lines.
pub(super) struct Trained {
    pub(super) what: String,
    pub(super) steps: usize,
    pub(super) report: String,
}

/// Trains `architecture` (`None`: pyvene's `AutoencoderLayer`, see [`parse_architecture`])
/// of width `latents` on `batches` of width `d` read at `hook` of `layer`, resuming from
/// `--resume` when given, saves it and writes `--metrics` / `--curves`; the summary is
/// computed on `acts`.
pub(super) fn train_and_save<I>(
    args: &TrainSaeArgs,
    architecture: Option<Architecture>,
    batches: I,
    acts: &Tensor,
    (layer, d, latents): (usize, usize, usize),
    hook: &str,
) -> Result<Trained>
where
    I: IntoIterator<Item = vene::autoencoder::Result<Tensor>>,
{
    if let Some(arch) = architecture {
        return run_architecture(args, arch, batches, acts, (layer, d, latents), hook);
    }
    let ae = vene::autoencoder::AutoencoderLayer::seeded(d, latents, args.seed, acts.device())?
        .to(acts.device(), acts.dtype())?;
    let cfg = TrainConfig {
        lr: args.lr,
        lr_warm_up_steps: args.lr_warm_up_steps,
        lr_decay_steps: args.lr_decay_steps,
        lr_end: args.lr_end,
        total_steps: Some(args.steps),
        l1_coefficient: args.l1,
        l1_warm_up_steps: args.sparsity_warm_up_steps,
        init_b_dec_to_mean: args.b_dec_init.as_deref() != Some("zeros"),
        dead_window: args.dead_window,
        log_every: (args.steps / 100).max(1),
        checkpoint_every: args.checkpoint_every,
        checkpoint_dir: args.checkpoint_dir.clone(),
        ..Default::default()
    };
    let mut log = ProgressLog::new(args.steps);
    let last = match &args.resume {
        Some(dir) => resume_train(&ae, dir, batches, &cfg, |p| log.record(p))?,
        None => train(&ae, batches, &cfg, |p| log.record(p))?,
    };
    let records = log.finish();
    let (recon, z) = ae.forward(acts, true)?;
    let z = z.ok_or_else(|| CliError::invalid("the autoencoder returned no latents"))?;
    let saved = ae.to(&candle_core::Device::Cpu, candle_core::DType::F32)?;
    save_saelens(
        &saved,
        &args.out,
        hook,
        layer,
        &args.model,
        args.bos.resolve(None),
        args.overwrite,
    )?;
    let wrote = write_records(args, &records)?;
    Ok(Trained {
        what: String::new(),
        steps: last.step,
        report: format!(
            "{}wrote {} ({hook})\n{wrote}",
            fit_summary(acts, &recon, &z)?,
            args.out.display()
        ),
    })
}

/// The architecture `--architecture` and its flags ask for; `None` for `relu` (pyvene's
/// `AutoencoderLayer`, trained by `vene::autoencoder::train`).
///
/// ```
/// use clap::Parser;
/// #[derive(clap::Parser)]
/// struct Cli {
///     #[command(flatten)]
///     args: vene_cli::commands::train_sae::TrainSaeArgs,
/// }
/// let cli = Cli::parse_from([
///     "x", "--model", "m", "--layer", "0", "--data", "d", "--out", "o",
///     "--architecture", "topk", "--k", "8",
/// ]);
/// let arch = vene_cli::commands::train_sae::parse_architecture(&cli.args)?;
/// assert_eq!(arch, Some(vene::autoencoder::training::Architecture::TopK { k: 8 }));
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn parse_architecture(args: &TrainSaeArgs) -> Result<Option<Architecture>> {
    let k = || {
        args.k.ok_or_else(|| {
            CliError::invalid(format!(
                "--architecture {} needs --k (latents kept per row)",
                args.architecture
            ))
        })
    };
    Ok(Some(match args.architecture.as_str() {
        "relu" => return Ok(None),
        "standard" => Architecture::relu(args.l1),
        "topk" => Architecture::TopK { k: k()? },
        "batchtopk" => Architecture::batch_topk(k()?),
        "matryoshka" => Architecture::matryoshka(k()?, args.matryoshka_widths.clone()),
        "jumprelu" => Architecture::JumpRelu {
            init_threshold: args.init_threshold,
            bandwidth: args.bandwidth,
            l0_coefficient: args.l0,
        },
        "gated" => Architecture::Gated {
            l1_coefficient: args.l1,
        },
        other => {
            return Err(CliError::invalid(format!(
                "--architecture {other}: expected relu, standard, topk, batchtopk, jumprelu, \
                 gated or matryoshka"
            )))
        }
    }))
}

/// Refuses flags the architecture has no use for (rather than ignoring them).
fn check_architecture_flags(args: &TrainSaeArgs, arch: Option<&Architecture>) -> Result<()> {
    let name = &args.architecture;
    if args.resample_every.is_some() && name != "standard" {
        return Err(CliError::invalid(format!(
            "--resample-every resamples a standard (SAELens ReLU) SAE, not {name}"
        )));
    }
    if args.resample_every == Some(0) {
        return Err(CliError::invalid("--resample-every must be at least 1"));
    }
    if args.aux_k.is_some() && !arch.is_some_and(Architecture::uses_aux_k) {
        return Err(CliError::invalid(format!(
            "--aux-k sets the AuxK loss of topk, batchtopk and matryoshka, not of {name}"
        )));
    }
    if arch.is_none() && args.b_dec_init.as_deref() == Some("geometric-median") {
        return Err(CliError::invalid(
            "--b-dec-init geometric-median: relu (pyvene's layer) starts b_dec at the mean or \
             at zeros; geometric-median is for the other architectures",
        ));
    }
    Ok(())
}

/// The training configuration of `arch` that the flags ask for.
pub(super) fn train_config(args: &TrainSaeArgs, arch: Architecture) -> SaeTrainConfig {
    let mut cfg = SaeTrainConfig::new(arch);
    cfg.lr = args.lr;
    cfg.total_steps = Some(args.steps);
    cfg.lr_warm_up_steps = args.lr_warm_up_steps;
    cfg.lr_decay_steps = args.lr_decay_steps;
    cfg.lr_end = args.lr_end;
    cfg.sparsity_warm_up_steps = args.sparsity_warm_up_steps;
    cfg.aux_k = args.aux_k;
    cfg.dead_window = args.dead_window;
    cfg.resample_every = args.resample_every;
    cfg.b_dec_init = match args.b_dec_init.as_deref() {
        Some("mean") => BDecInit::Mean,
        Some("zeros") => BDecInit::Zeros,
        _ => BDecInit::GeometricMedian { iterations: 30 },
    };
    cfg.normalize_activations = args.normalize_activations;
    cfg.aux_k_coefficient = args.aux_k_coefficient;
    cfg.seed = args.seed;
    cfg.log_every = (args.steps / 100).max(1);
    cfg.checkpoint_every = args.checkpoint_every;
    cfg.checkpoint_dir = args.checkpoint_dir.clone();
    cfg
}

/// Trains and saves an SAE of `arch` (every kind but `relu`) on `batches`, as
/// [`train_and_save`] does.
fn run_architecture<I>(
    args: &TrainSaeArgs,
    arch: Architecture,
    batches: I,
    acts: &Tensor,
    (layer, d, latents): (usize, usize, usize),
    hook: &str,
) -> Result<Trained>
where
    I: IntoIterator<Item = vene::autoencoder::Result<Tensor>>,
{
    let cfg = train_config(args, arch);
    let mut log = ProgressLog::new(args.steps);
    let on_progress = |p: &SaeTrainProgress| log.record(&TrainProgress::from(p));
    let (sae, last) = match &args.resume {
        Some(dir) => resume_sae_training(dir, batches, &cfg, acts.device(), on_progress)?,
        None => {
            let mut sae = TrainingSae::new(&cfg, d, latents, acts.dtype(), acts.device())?;
            let last = train_sae(&mut sae, batches, &cfg, on_progress)?;
            (sae, last)
        }
    };
    if sae.input_dim() != d || sae.latent_dim() != latents {
        return Err(CliError::invalid(format!(
            "the checkpoint's SAE is {} x {}, but --expansion {} on width {d} asks for {d} x \
             {latents}",
            sae.input_dim(),
            sae.latent_dim(),
            args.expansion
        )));
    }
    let records = log.finish();
    let (summary, wrote) = save_trained(args, &sae, hook, layer, &args.model, acts, &records)?;
    Ok(Trained {
        what: format!("a {} SAE ", args.architecture),
        steps: last.step,
        report: format!("{summary}wrote {} ({hook})\n{wrote}", args.out.display()),
    })
}

/// `rows` activations drawn with replacement from `acts` `[n, d]` per batch, seeded.
fn sampled_batches(
    acts: &Tensor,
    rows: usize,
    seed: u64,
) -> impl Iterator<Item = vene::autoencoder::Result<Tensor>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = acts.dim(0).unwrap_or(0) as u32;
    let device = acts.device().clone();
    let source = acts.clone();
    std::iter::repeat_with(move || {
        let idx: Vec<u32> = (0..rows).map(|_| rng.random_range(0..n)).collect();
        Ok(source.index_select(&Tensor::new(idx.as_slice(), &device)?, 0)?)
    })
}

/// The training progress bar and the records `--metrics` and `--curves` are written from.
pub(super) struct ProgressLog {
    bar: indicatif::ProgressBar,
    records: Vec<TrainRecord>,
}

impl ProgressLog {
    /// A bar of `steps` steps, no records yet.
    pub(super) fn new(steps: usize) -> Self {
        Self {
            bar: crate::progress::bar(steps as u64, "{bar:30} {pos}/{len} steps {msg}"),
            records: Vec::new(),
        }
    }

    /// Records a logged step and shows it on the bar.
    pub(super) fn record(&mut self, p: &TrainProgress) {
        self.records.push(TrainRecord::from(p));
        self.bar.set_position(p.step as u64);
        self.bar.set_message(format!(
            "mse {:.4} L0 {:.1} EV {:.3}",
            p.mse, p.l0, p.explained_variance
        ));
    }

    /// Clears the bar; the records.
    pub(super) fn finish(self) -> Vec<TrainRecord> {
        self.bar.finish_and_clear();
        self.records
    }
}

/// The summary lines of a trained SAE on `acts`: MSE, L0, explained variance, dead fraction.
fn fit_summary(acts: &Tensor, recon: &Tensor, z: &Tensor) -> Result<String> {
    Ok(format!(
        "mse {:.6}\nL0 {:.2}\nexplained variance {:.4}\ndead fraction {:.3}\n",
        metrics::mse(acts, recon)?,
        metrics::l0(z)?,
        metrics::explained_variance(acts, recon)?,
        metrics::dead_fraction(z)?,
    ))
}

/// Saves `sae` at `--out` in SAELens's layout (reading `hook` of `model`'s `layer`), and in
/// sparsify's with `--sparsify-out`, writes `--metrics` / `--curves`; returns the summary lines
/// on `acts` ([`fit_summary`]) and what else was written.
pub(super) fn save_trained(
    args: &TrainSaeArgs,
    sae: &TrainingSae,
    hook: &str,
    layer: usize,
    model: &str,
    acts: &Tensor,
    records: &[TrainRecord],
) -> Result<(String, String)> {
    let trained = sae.to_trained()?;
    let ae = trained.as_autoencoder();
    let z = ae.encode(acts)?;
    let recon = ae.decode_for(&z, acts)?;
    let meta = SaveMetadata {
        hook_name: hook.to_string(),
        hook_name_out: None,
        layer: Some(layer),
        model_name: Some(model.to_string()),
        prepend_bos: args.bos.resolve(None),
    };
    sae.save_saelens(&args.out, &meta, args.overwrite)?;
    let mut wrote = String::new();
    if let Some(dir) = &args.sparsify_out {
        sae.save_sparsify(dir, args.overwrite)?;
        wrote += &format!("wrote {} (sparsify layout)\n", dir.display());
    }
    wrote += &write_records(args, records)?;
    Ok((fit_summary(acts, &recon, &z)?, wrote))
}

/// Writes `--metrics` and `--curves` and says what was written.
pub(super) fn write_records(args: &TrainSaeArgs, records: &[TrainRecord]) -> Result<String> {
    let mut wrote = String::new();
    if let Some(path) = &args.metrics {
        let mut text = String::new();
        if args.resume.is_some() {
            // keep the stopped run's records before the first resumed step
            let first = records.first().map_or(usize::MAX, |r| r.step);
            if let Ok(old) = std::fs::read_to_string(path) {
                for line in old.lines() {
                    let step = serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
                    if step.is_some_and(|s| (s as usize) < first) {
                        text += line;
                        text.push('\n');
                    }
                }
            }
        }
        text.extend(records.iter().map(|r| r.to_json_line() + "\n"));
        vene::autoencoder::atomic::write_file(path, text.as_bytes()).map_err(CliError::io(path))?;
        wrote += &format!(
            "wrote {} ({} steps logged)\n",
            path.display(),
            text.lines().count()
        );
    }
    if let Some(path) = &args.curves {
        crate::plots::plot_training_curves(records, path)?;
        wrote += &format!("wrote {}\n", path.display());
    }
    Ok(wrote)
}
