//! vene's side of `scripts/vs_pyvene.py` (side by side with pyvene + torch): GPT-2 small, f32,
//! at batch 8 x 128 and batch 1 x 32 tokens:
//!
//! - `plain_*`: a forward, logits at every position;
//! - `vanilla_*`: a vanilla interchange at layer 6's `block_output`, one position (source
//!   position 3 into base position 5), logits at the last token (`LogitsAt::Last`);
//!   `vanilla_all_logits_*` the same with logits at every position;
//! - `ae_*` / `ae_all_logits_*`: the same site and position through a ReLU autoencoder
//!   768 -> 24576 (pyvene's `AutoencoderLayer` weights), 16 latents swapped;
//! - `sae_alone_*`: the autoencoder intervention alone (encode, swap 16 latents, decode) at
//!   every position of a `[B, T, 768]` activation.
//!
//! With `VENE_BENCH_MODEL_DIR` set, the model (`config.json`, `model.safetensors`), the
//! autoencoder (`autoencoder.safetensors`, pyvene's state-dict names), the token batches
//! (`inputs.json`) and the activations (`activations.safetensors`) come from that folder, as
//! `scripts/vs_pyvene.py` writes it. Without it, a random GPT-2 small and autoencoder are
//! written to a temporary folder and loaded from there (so the model runs the path of a model
//! loaded from files), with tokens and activations made here.
//! `VENE_BENCH_DUMP_LOGITS=FILE` writes the last-token logits of `vanilla_b1t32` and
//! `ae_b1t32` to `FILE` (safetensors, keys `vanilla` and `ae`) before benchmarking, for the
//! script's agreement check.
//!
//! Run briefly, e.g.
//! `RAYON_NUM_THREADS=2 cargo bench -p vene --bench vs_pyvene -- vanilla_b1t32 --warm-up-time 1 --measurement-time 5`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vene::autoencoder::{Autoencoder, AutoencoderLayer};
use vene::hooks::{Component, NoHooks};
use vene::interventions::{AutoencoderIntervention, Intervention, Selection, VanillaIntervention};
use vene::models::{Gpt2Config, LanguageModel, Model};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, LogitsAt, RepresentationConfig,
    UnitLocations,
};

/// The intervened layer: the middle of GPT-2 small.
const LAYER: usize = 6;
/// Width of the residual stream.
const D_MODEL: usize = 768;
/// Latents of the autoencoder.
const LATENTS: usize = 24576;
/// Latents swapped.
const SWAPPED: usize = 16;
/// The source position read from.
const SOURCE_POSITION: usize = 3;
/// The base position written to.
const BASE_POSITION: usize = 5;
/// Vocabulary of GPT-2.
const VOCAB: usize = 50257;
/// (name, batch, tokens).
const SHAPES: [(&str, usize, usize); 2] = [("b8t128", 8, 128), ("b1t32", 1, 32)];

/// Token batches and activations for one shape.
struct ShapeInputs {
    name: &'static str,
    base: Tensor,
    source: Tensor,
    base_acts: Tensor,
    source_acts: Tensor,
}

/// Everything the cases run on.
struct Setup {
    model: Model,
    autoencoder: Arc<dyn Autoencoder>,
    latent_dims: Vec<usize>,
    shapes: Vec<ShapeInputs>,
    /// Keeps the temporary checkpoint alive when one was written.
    _tmp: Option<tempfile::TempDir>,
}

/// The latents swapped when no `inputs.json` names them.
fn default_latent_dims() -> Vec<usize> {
    (0..SWAPPED).map(|i| i * 1531 % LATENTS).collect()
}

/// Deterministic token ids `[batch, seq]`.
fn made_tokens(batch: usize, seq: usize, mul: usize, add: usize, device: &Device) -> Tensor {
    let ids: Vec<u32> = (0..batch * seq)
        .map(|i| ((i * mul + add) % VOCAB) as u32)
        .collect();
    Tensor::from_vec(ids, (batch, seq), device).expect("token ids")
}

/// A `[batch, seq]` tensor from `inputs.json`'s nested lists.
fn tokens_from_json(v: &serde_json::Value, what: &str, device: &Device) -> Tensor {
    let rows = v
        .as_array()
        .unwrap_or_else(|| panic!("inputs.json: {what} is not a list"));
    let seq = rows.first().and_then(|r| r.as_array()).map_or(0, Vec::len);
    let ids: Vec<u32> = rows
        .iter()
        .flat_map(|r| r.as_array().expect("inputs.json: a row is not a list"))
        .map(|t| {
            t.as_u64()
                .expect("inputs.json: a token id is not an integer") as u32
        })
        .collect();
    Tensor::from_vec(ids, (rows.len(), seq), device).expect("token ids")
}

/// Writes a random GPT-2 small and autoencoder to a temporary folder.
fn write_random_checkpoint(device: &Device) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temporary folder");
    let cfg = Gpt2Config::gpt2_small();
    let (_, vars) = Model::random_gpt2(&cfg, DType::F32, device).expect("random GPT-2");
    vars.save(tmp.path().join("model.safetensors"))
        .expect("save model");
    let mut json = serde_json::to_value(&cfg).expect("config");
    json["model_type"] = "gpt2".into();
    std::fs::write(tmp.path().join("config.json"), json.to_string()).expect("config.json");
    AutoencoderLayer::new(D_MODEL, LATENTS, DType::F32, device)
        .expect("autoencoder")
        .save(tmp.path().join("autoencoder.safetensors"))
        .expect("save autoencoder");
    tmp
}

fn setup(device: &Device) -> Setup {
    let given = std::env::var_os("VENE_BENCH_MODEL_DIR").map(PathBuf::from);
    let tmp = match given {
        Some(_) => None,
        None => Some(write_random_checkpoint(device)),
    };
    let dir: &Path = match (&given, &tmp) {
        (Some(d), _) => d,
        (None, Some(t)) => t.path(),
        (None, None) => unreachable!("a folder is given or written"),
    };
    let model = Model::from_dir(dir, DType::F32, device).expect("load the model");
    let opts = vene::autoencoder::LoadOptions {
        device: device.clone(),
        ..Default::default()
    };
    let loaded = vene::autoencoder::load_sae_with(dir.join("autoencoder.safetensors"), &opts)
        .expect("load the autoencoder");
    let autoencoder: Arc<dyn Autoencoder> = Arc::from(loaded.autoencoder);

    let inputs: Option<serde_json::Value> = given.as_ref().map(|d| {
        let text = std::fs::read_to_string(d.join("inputs.json")).expect("read inputs.json");
        serde_json::from_str(&text).expect("parse inputs.json")
    });
    let acts = given.as_ref().map(|d| {
        candle_core::safetensors::load(d.join("activations.safetensors"), device)
            .expect("load activations.safetensors")
    });
    let latent_dims = match &inputs {
        Some(v) => v["latent_dims"]
            .as_array()
            .expect("inputs.json: latent_dims")
            .iter()
            .map(|d| d.as_u64().expect("inputs.json: a latent index") as usize)
            .collect(),
        None => default_latent_dims(),
    };
    let act =
        |acts: &Option<HashMap<String, Tensor>>, key: String, shape: (usize, usize)| match acts {
            Some(m) => m
                .get(&key)
                .unwrap_or_else(|| panic!("activations.safetensors: no {key}"))
                .clone(),
            None => {
                Tensor::randn(0f32, 1.0, (shape.0, shape.1, D_MODEL), device).expect("activations")
            }
        };
    let shapes = SHAPES
        .iter()
        .map(|&(name, batch, seq)| {
            let (base, source) = match &inputs {
                Some(v) => (
                    tokens_from_json(&v["tokens"][name]["base"], "base", device),
                    tokens_from_json(&v["tokens"][name]["source"], "source", device),
                ),
                None => (
                    made_tokens(batch, seq, 389, 7, device),
                    made_tokens(batch, seq, 2719, 11, device),
                ),
            };
            assert_eq!(base.dims(), &[batch, seq], "{name}: base tokens");
            assert_eq!(source.dims(), &[batch, seq], "{name}: source tokens");
            ShapeInputs {
                name,
                base,
                source,
                base_acts: act(&acts, format!("base_{name}"), (batch, seq)),
                source_acts: act(&acts, format!("source_{name}"), (batch, seq)),
            }
        })
        .collect();
    Setup {
        model,
        autoencoder,
        latent_dims,
        shapes,
        _tmp: tmp,
    }
}

/// An intervenable model with one intervention at layer 6's block output.
fn intervenable(model: &Model, iv: Arc<dyn Intervention>) -> IntervenableModel<Model> {
    let repr = RepresentationConfig::new(LAYER, Component::BlockOutput).intervention(iv);
    IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone())
        .expect("intervenable model")
}

/// Source position 3 into base position 5, in every row.
fn one_position_request(s: &ShapeInputs, logits: LogitsAt) -> ForwardRequest {
    let batch = s.base.dims()[0];
    ForwardRequest::new(s.base.clone())
        .source(s.source.clone())
        .locations(UnitLocations::sources_to_base(
            vec![vec![vec![SOURCE_POSITION]; batch]],
            vec![vec![vec![BASE_POSITION]; batch]],
        ))
        .logits(logits)
}

/// Writes the last-token logits of the `b1t32` vanilla and autoencoder cases to `path`
/// (safetensors; keys `vanilla` and `ae`, each `[vocab]`).
fn dump_last_logits(setup: &Setup, cases: [(&str, &IntervenableModel<Model>); 2], path: &Path) {
    let s = setup
        .shapes
        .iter()
        .find(|s| s.name == "b1t32")
        .expect("the b1t32 inputs");
    let mut logits = HashMap::new();
    for (case, model) in cases {
        let out = model
            .forward(&one_position_request(s, LogitsAt::Last))
            .expect("intervened forward");
        // [1, 1, vocab] (the last token's), or [1, T, vocab] if every position was computed
        let rows = out.intervened.dim(1).expect("logits rank");
        let last = out
            .intervened
            .i((0, rows - 1))
            .expect("the last token's logits");
        logits.insert(case.to_string(), last);
    }
    candle_core::safetensors::save(&logits, path).expect("write the logits");
}

fn bench(c: &mut Criterion) {
    let device = Device::Cpu;
    let setup = setup(&device);
    let vanilla = intervenable(&setup.model, Arc::new(VanillaIntervention::new(D_MODEL)));
    let ae_iv = AutoencoderIntervention::new(setup.autoencoder.clone())
        .and_then(|iv| iv.with_interchange_dim(setup.latent_dims.clone()))
        .expect("autoencoder intervention");
    let ae = intervenable(&setup.model, Arc::new(ae_iv.clone()));

    if let Some(path) = std::env::var_os("VENE_BENCH_DUMP_LOGITS") {
        dump_last_logits(
            &setup,
            [("vanilla", &vanilla), ("ae", &ae)],
            Path::new(&path),
        );
    }

    let mut g = c.benchmark_group("vs_pyvene");
    g.sample_size(10);
    for s in &setup.shapes {
        let name = s.name;
        g.bench_function(format!("plain_{name}"), |b| {
            b.iter(|| {
                setup
                    .model
                    .forward(&s.base, None, &mut NoHooks)
                    .expect("forward")
            })
        });
        for (case, model) in [("vanilla", &vanilla), ("ae", &ae)] {
            let last = one_position_request(s, LogitsAt::Last);
            g.bench_function(format!("{case}_{name}"), |b| {
                b.iter(|| model.forward(&last).expect("intervened forward"))
            });
            let all = one_position_request(s, LogitsAt::All);
            g.bench_function(format!("{case}_all_logits_{name}"), |b| {
                b.iter(|| model.forward(&all).expect("intervened forward"))
            });
        }
        g.bench_function(format!("sae_alone_{name}"), |b| {
            b.iter(|| {
                ae_iv
                    .forward(&s.base_acts, Some(&s.source_acts), &Selection::Default)
                    .expect("autoencoder intervention")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
