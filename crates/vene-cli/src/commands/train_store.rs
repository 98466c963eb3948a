//! `vene train-sae --store DIR`: training streamed from an activation store (`vene collect`)
//! through a shuffle buffer, with memory bounded by the buffer and one shard.

use std::path::Path;

use vene::autoencoder::store::{ReadOptions, StoreReader};
use vene::autoencoder::training::{
    resume_sae_training, train_sae, Architecture, SaeTrainProgress, SaveMetadata, TrainingSae,
};
use vene::autoencoder::{metrics, TrainProgress};

use super::train_sae::{train_config, write_records, TrainSaeArgs, MAX_BATCH_SIZE};
use crate::plots::TrainRecord;
use crate::{CliError, Result};

/// Trains an SAE of `architecture` (`None`: SAELens's standard ReLU with `--l1`) on the store
/// in `dir` and saves it like `vene train-sae` does.
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
    let arch = architecture.unwrap_or(Architecture::relu(args.l1));
    let cfg = train_config(args, arch);
    let backend = args.backend.open()?;
    let (device, dtype) = (backend.device.clone(), backend.sae_dtype);
    let opts = ReadOptions {
        batch_size: args.batch_size,
        buffer_rows: args.shuffle_buffer,
        seed: args.seed,
    };
    let batches = reader
        .stream(&opts)
        .map(|b| Ok(b?.to_device(&device)?.to_dtype(dtype)?));
    let bar = crate::progress::bar(args.steps as u64, "{bar:30} {pos}/{len} steps {msg}");
    let mut records: Vec<TrainRecord> = Vec::new();
    let on_progress = |p: &SaeTrainProgress| {
        records.push(TrainRecord::from(&TrainProgress::from(p)));
        bar.set_position(p.step as u64);
        bar.set_message(format!(
            "mse {:.4} L0 {:.1} EV {:.3}",
            p.mse, p.l0, p.explained_variance
        ));
    };
    // The store's batches are a seeded, replayable stream: a resumed run reads past the
    // batches the checkpoint consumed and goes on exactly where the stopped run was.
    let (sae, last) = match &args.resume {
        Some(dir) => resume_sae_training(dir, batches, &cfg, &device, on_progress)?,
        None => {
            let mut sae = TrainingSae::new(&cfg, d, latents, dtype, &device)?;
            let last = train_sae(&mut sae, batches, &cfg, on_progress)?;
            (sae, last)
        }
    };
    if sae.input_dim() != d || sae.latent_dim() != latents {
        return Err(CliError::invalid(format!(
            "the checkpoint's SAE is {} x {}, but the store and --expansion ask for {d} x {latents}",
            sae.input_dim(),
            sae.latent_dim(),
        )));
    }
    bar.finish_and_clear();
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
    let trained = sae.to_trained()?;
    let ae = trained.as_autoencoder();
    let z = ae.encode(&acts)?;
    let recon = ae.decode_for(&z, &acts)?;
    let meta = SaveMetadata {
        hook_name: m.site.clone(),
        hook_name_out: None,
        layer: Some(layer),
        model_name: Some(m.model.clone()),
        prepend_bos: args.bos.resolve(None),
    };
    sae.save_saelens(&args.out, &meta, args.overwrite)?;
    let mut wrote = String::new();
    if let Some(out) = &args.sparsify_out {
        sae.save_sparsify(out, args.overwrite)?;
        wrote += &format!("wrote {} (sparsify layout)\n", out.display());
    }
    wrote += &write_records(args, &records)?;
    Ok(format!(
        "trained a {} SAE on a store of {} activations of width {d} ({} shards, shuffle buffer \
         {} rows, at most {} rows held), {latents} latents, {} steps\n\
         on a batch of {} rows: mse {:.6}\nL0 {:.2}\nexplained variance {:.4}\ndead fraction {:.3}\nwrote {} ({})\n{wrote}",
        args.architecture,
        m.total_rows,
        m.shards.len(),
        args.shuffle_buffer,
        reader.peak_resident_rows(),
        last.step,
        acts.dim(0)?,
        metrics::mse(&acts, &recon)?,
        metrics::l0(&z)?,
        metrics::explained_variance(&acts, &recon)?,
        metrics::dead_fraction(&z)?,
        args.out.display(),
        m.site
    ))
}
