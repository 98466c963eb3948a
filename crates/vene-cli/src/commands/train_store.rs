//! `vene train-sae --store DIR`: training streamed from an activation store (`vene collect`)
//! through a shuffle buffer, with memory bounded by the buffer and one shard.

use std::path::Path;

use vene::autoencoder::store::{ReadOptions, StoreReader};
use vene::autoencoder::training::Architecture;

use super::train_sae::{train_and_save, TrainSaeArgs, MAX_BATCH_SIZE};
use crate::{CliError, Result};

/// Trains an SAE of `architecture` (`None`: pyvene's `AutoencoderLayer`, as on `--data`) on
/// the store in `dir` and saves it like `vene train-sae` does.
pub(super) fn run(
    args: &TrainSaeArgs,
    dir: &Path,
    architecture: Option<Architecture>,
) -> Result<String> {
    if args.shuffle_buffer == 0 {
        return Err(CliError::invalid("--shuffle-buffer must be at least 1"));
    }
    let reader = StoreReader::open(dir)?;
    let m = reader.manifest().clone();
    if m.model != args.model {
        return Err(CliError::invalid(format!(
            "{}: the store holds activations of `{}`, not of --model `{}`",
            dir.display(),
            m.model,
            args.model
        )));
    }
    if m.total_rows == 0 {
        return Err(CliError::invalid(format!(
            "{}: the store holds no activations",
            dir.display()
        )));
    }
    let (layer, _) = vene::hooks::site_from_name(&m.site).ok_or_else(|| {
        CliError::invalid(format!(
            "{}: the store's site `{}` is not one vene knows",
            dir.display(),
            m.site
        ))
    })?;
    let d = m.d;
    let latents = d
        .checked_mul(args.expansion)
        .filter(|&l| vene::autoencoder::limits::checked_elements(&[d, l]).is_some())
        .ok_or_else(|| {
            CliError::invalid(format!(
                "--expansion {} gives more than the {} weights allowed per matrix",
                args.expansion,
                vene::autoencoder::limits::MAX_NEW_TENSOR_ELEMENTS
            ))
        })?;
    if args.batch_size > MAX_BATCH_SIZE {
        return Err(CliError::invalid(format!(
            "--batch-size {} is more than the {MAX_BATCH_SIZE} rows allowed",
            args.batch_size
        )));
    }
    let backend = args.backend.open()?;
    let (device, dtype) = (backend.device.clone(), backend.sae_dtype);
    let opts = ReadOptions {
        batch_size: args.batch_size,
        buffer_rows: args.shuffle_buffer,
        seed: args.seed,
    };
    // The store's batches are a seeded, replayable stream: a resumed run reads past the
    // batches the checkpoint consumed and goes on exactly where the stopped run was.
    let batches = reader
        .stream(&opts)
        .map(|b| Ok(b?.to_device(&device)?.to_dtype(dtype)?));
    // The summary's numbers: one batch of the store, drawn with another seed.
    let probe = ReadOptions {
        seed: args.seed.wrapping_add(1),
        ..opts
    };
    let acts = reader
        .epoch(&probe, 0)
        .next()
        .ok_or_else(|| CliError::invalid("the store gave no batch"))??
        .to_device(&device)?
        .to_dtype(dtype)?;
    let trained = train_and_save(
        args,
        architecture,
        batches,
        &acts,
        (layer, d, latents),
        &m.site,
    )?;
    Ok(format!(
        "trained {}on a store of {} activations of width {d} ({} shards, shuffle buffer {} \
         rows, at most {} rows held), {latents} latents, {} steps\non a batch of {} rows: {}",
        trained.what,
        m.total_rows,
        m.shards.len(),
        args.shuffle_buffer,
        reader.peak_resident_rows(),
        trained.steps,
        acts.dim(0)?,
        trained.report
    ))
}
