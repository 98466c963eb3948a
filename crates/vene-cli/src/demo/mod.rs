//! A model, an SAE and a corpus made on the spot, offline: what `vene demo` writes so that
//! every command of the README can be tried without the network, and what the examples run
//! on when no `--model` is given.
//!
//! - [`cities`]: city prompts (`The city of Paris is in the country of` -> `France`).
//! - [`folders`]: a seeded 2-layer GPT-2 with a word-level tokenizer, trained on those
//!   prompts, and SAE folders in SAELens's layout.
//! - [`write_demo`]: all of it in one folder: `model/`, `sae/` (trained on the model's
//!   activations) and `corpus.txt`.

pub mod cities;
pub mod folders;

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::commands::train_sae::{self, TrainSaeArgs};
use crate::{CliError, Result};
use cities::{Attribute, CITIES};

/// AdamW steps the demo model trains for at most (it stops once it answers every prompt).
pub const MODEL_STEPS: usize = 400;
/// The model name the demo SAE's `cfg.json` records.
pub const DEMO_MODEL_NAME: &str = "vene-demo-gpt2";
/// The layer whose `block_output` the demo SAE reads.
pub const SAE_LAYER: usize = 0;

/// Sentences of the corpus besides the city facts (words of the demo vocabulary only).
const SENTENCES: [&str; 8] = [
    "the cat sat on a mat",
    "a dog ran to the park",
    "I think that it was a very good day",
    "the big tree and the small house",
    "it was a bad night",
    "a red cat and a blue dog",
    "I think the park was very green",
    "the dog sat on the mat and the cat ran",
];

/// What [`write_demo`] wrote.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The model folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub model: PathBuf,
    /// The SAE folder (SAELens layout: `cfg.json`, `sae_weights.safetensors`).
    pub sae: PathBuf,
    /// The corpus the SAE was trained on, one example per line.
    pub corpus: PathBuf,
    /// What `train-sae` reported while training the SAE.
    pub sae_report: String,
}

/// The demo corpus: every city fact with its answer (both attributes), then a few sentences.
pub fn corpus() -> String {
    let mut lines = Vec::new();
    for attribute in [Attribute::Country, Attribute::Continent] {
        let (prefix, suffix) = attribute.template();
        for c in &CITIES {
            lines.push(format!(
                "{prefix} {} {suffix} {}",
                c.name,
                attribute.value(c)
            ));
        }
    }
    lines.extend(SENTENCES.iter().map(|s| s.to_string()));
    lines.join("\n") + "\n"
}

/// Writes the demo into the new folder `out`: `model/` (a 2-layer GPT-2 of width
/// [`folders::WIDTH`] trained on the city facts, with its tokenizer), `corpus.txt`, and
/// `sae/` (an SAE with 4x latents trained by `vene train-sae` on `block_output` of layer
/// [`SAE_LAYER`] over the corpus). Same `seed`, same files.
///
/// The folder is built beside `out` and renamed into place at the end, so a failure leaves
/// nothing half-written; `out` must not exist yet, or be an empty folder. The SAE's
/// `cfg.json` names the model `vene-demo-gpt2` (it was trained on `out/model`).
pub fn write_demo(out: &Path, seed: u64, sae_steps: usize) -> Result<Demo> {
    if out.is_file() || std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(CliError::invalid(format!(
            "{} already exists and is not an empty folder; choose a new --out",
            out.display()
        )));
    }
    let staged = vene::autoencoder::atomic::StagedDir::new(out).map_err(CliError::io(out))?;
    let sae_report = write_into(staged.path(), seed, sae_steps)?;
    staged.commit(false).map_err(CliError::io(out))?;
    Ok(Demo {
        model: out.join("model"),
        sae: out.join("sae"),
        corpus: out.join("corpus.txt"),
        sae_report,
    })
}

/// Arguments of `vene train-sae`, parsed as the command line would (so every flag keeps its
/// default).
#[derive(Debug, Parser)]
struct TrainSaeCommand {
    #[command(flatten)]
    args: TrainSaeArgs,
}

/// The demo's files in `dir`; returns `train-sae`'s report.
fn write_into(dir: &Path, seed: u64, sae_steps: usize) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(CliError::io(dir))?;
    let model = dir.join("model");
    folders::write_trained_model_to(&model, seed, MODEL_STEPS)?;
    let corpus_path = dir.join("corpus.txt");
    std::fs::write(&corpus_path, corpus()).map_err(CliError::io(&corpus_path))?;
    let sae = dir.join("sae");
    let (seed, steps, layer) = (
        seed.to_string(),
        sae_steps.to_string(),
        SAE_LAYER.to_string(),
    );
    let args = TrainSaeCommand::try_parse_from([
        "train-sae",
        "--model",
        &model.to_string_lossy(),
        "--layer",
        &layer,
        "--data",
        &corpus_path.to_string_lossy(),
        "--out",
        &sae.to_string_lossy(),
        "--steps",
        &steps,
        "--batch-size",
        "128",
        "--lr",
        "3e-3",
        "--l1",
        "0.1",
        "--seed",
        &seed,
    ])
    .map_err(|e| CliError::invalid(format!("demo: {e}")))?;
    let report = train_sae::run(&args.args)?;
    // train-sae records the model it read, here the staging folder: name the model instead.
    let cfg_path = sae.join("cfg.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(CliError::io(&cfg_path))?;
    let mut cfg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::invalid(format!("{}: {e}", cfg_path.display())))?;
    cfg["model_name"] = DEMO_MODEL_NAME.into();
    cfg["metadata"]["model_name"] = DEMO_MODEL_NAME.into();
    let text = serde_json::to_string_pretty(&cfg)
        .map_err(|e| CliError::invalid(format!("{}: {e}", cfg_path.display())))?;
    std::fs::write(&cfg_path, text).map_err(CliError::io(&cfg_path))?;
    // Its last line names the staging folder: leave it out.
    Ok(report
        .lines()
        .filter(|l| !l.starts_with("wrote "))
        .map(|l| format!("{l}\n"))
        .collect())
}
