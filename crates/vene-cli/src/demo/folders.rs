//! Offline stand-ins for `--model` and `--sae`: a seeded tiny GPT-2 with a word-level
//! tokenizer, and a seeded SAE in SAELens's layout, written to folders that load exactly as
//! downloaded ones do (`vene_cli::load::model`, `vene_cli::load::sae`).

use std::path::{Path, PathBuf};

use crate::commands::train_sae::{hook_name, save_saelens};
use crate::{CliError, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use vene::hooks::Component;
use vene::models::{Gpt2Config, LanguageModel, Model};

use super::cities::{Attribute, CITIES};

/// Words of the offline tokenizer besides the city task's (id 0 is `<unk>`).
const EXTRA_WORDS: &str = "the a cat dog sat ran on to and mat park house tree red blue green \
    big small I think that it was very good bad day night";

/// Width of the offline GPT-2.
pub const WIDTH: usize = 32;
/// Layers of the offline GPT-2.
pub const LAYERS: usize = 2;

/// The offline vocabulary: `<unk>`, the city task's words, then a few everyday words, no repeats.
pub fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = vec!["<unk>".into()];
    let task = super::cities::TEMPLATE_WORDS
        .iter()
        .copied()
        .chain(CITIES.iter().flat_map(|c| [c.name, c.country, c.continent]))
        .flat_map(str::split_whitespace);
    for w in task.chain(EXTRA_WORDS.split_whitespace()) {
        if !words.iter().any(|x| x == w) {
            words.push(w.to_string());
        }
    }
    words
}

/// Writes a model folder under `root` (`config.json`, `model.safetensors`, `tokenizer.json`):
/// a GPT-2 of width [`WIDTH`], [`LAYERS`] layers and 4 heads, weights drawn from `seed`, over
/// the word-level [`vocabulary`]. Returns the folder.
pub fn write_model(root: &Path, seed: u64) -> Result<PathBuf> {
    write_trained_model(root, seed, 0)
}

/// As [`write_model`], after up to `steps` AdamW steps on the city prompts (both attributes;
/// it stops once it answers all of them): a model that knows each city's country and
/// continent. Returns the folder.
pub fn write_trained_model(root: &Path, seed: u64, steps: usize) -> Result<PathBuf> {
    let dir = root.join("offline-gpt2");
    write_trained_model_to(&dir, seed, steps)?;
    Ok(dir)
}

/// As [`write_trained_model`], into the folder `dir` itself (created when missing).
pub fn write_trained_model_to(dir: &Path, seed: u64, steps: usize) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(CliError::io(dir))?;
    let words = vocabulary();
    let cfg = Gpt2Config {
        n_positions: 64,
        ..Gpt2Config::tiny(words.len(), WIDTH, LAYERS, 4)
    };
    let (gpt2, varmap) = vene::models::Model::seeded_gpt2(&cfg, seed, &Device::Cpu)?;
    if steps > 0 {
        train_on_cities(&gpt2, &varmap, &words, steps)?;
    }
    varmap.save(dir.join("model.safetensors"))?;
    let mut config =
        serde_json::to_value(&cfg).map_err(|e| CliError::invalid(format!("config.json: {e}")))?;
    if let Some(obj) = config.as_object_mut() {
        obj.insert("model_type".into(), "gpt2".into());
    }
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).map_err(CliError::io(&path))?;
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), i.into()))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, tokenizer.to_string()).map_err(CliError::io(&path))?;
    Ok(())
}

/// Trains `model` (weights in `varmap`) to answer every city prompt at its last token.
fn train_on_cities(model: &Model, varmap: &VarMap, words: &[String], steps: usize) -> Result<()> {
    let id = |w: &str| words.iter().position(|x| x == w).unwrap_or(0) as u32;
    let (mut ids, mut answers) = (Vec::new(), Vec::new());
    for attribute in [Attribute::Country, Attribute::Continent] {
        let (prefix, suffix) = attribute.template();
        for c in &CITIES {
            let prompt = format!("{prefix} {} {suffix}", c.name);
            ids.extend(prompt.split_whitespace().map(id));
            answers.push(attribute.value(c).split_whitespace().next().map_or(0, id));
        }
    }
    let n = answers.len();
    let ids = Tensor::from_vec(ids, (n, 9), &Device::Cpu)?;
    let answers = Tensor::from_vec(answers, n, &Device::Cpu)?;
    let params = ParamsAdamW {
        lr: 3e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    for _ in 0..steps {
        let logits = model
            .forward(&ids, None, &mut vene::hooks::NoHooks)?
            .get_on_dim(1, 8)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &answers)?;
        let right = logits.argmax(D::Minus1)?.eq(&answers)?;
        let all_right = right.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()? == 1.0;
        if all_right && loss.to_scalar::<f32>()? < 0.05 {
            break;
        }
        opt.backward_step(&loss)?;
    }
    Ok(())
}

/// Writes an SAE folder in SAELens's layout under `root`: `latents` latents over activations
/// of width `d` of `component` at `layer` (hook name as SAELens writes it), weights drawn
/// from `seed`. Returns the folder.
pub fn write_sae(
    root: &Path,
    d: usize,
    latents: usize,
    layer: usize,
    component: Component,
    seed: u64,
) -> Result<PathBuf> {
    let dir = root.join(format!("offline-sae-{}", hook_name(layer, component)));
    let ae = vene::autoencoder::AutoencoderLayer::seeded(d, latents, seed, &Device::Cpu)?;
    save_saelens(
        &ae,
        &dir,
        &hook_name(layer, component),
        layer,
        "offline-gpt2",
        None,
        true,
    )?;
    Ok(dir)
}
