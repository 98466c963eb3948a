//! Forward pass of every family at one shared shape (d=512, 8 layers, 8 heads, batch 4 x 128
//! tokens, vocab 8192), on models that run as users run them: GPT-2 and Llama written to disk and
//! loaded back (`Model::from_dir`), the other families built from an HF config and detached from
//! autograd.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vene_hooks::NoHooks;
use vene_models::{llama_config, Gpt2Config, LanguageModel, Model};

const D: usize = 512;
const LAYERS: usize = 8;
const HEADS: usize = 8;
const KV_HEADS: usize = 4;
const VOCAB: usize = 8192;
const GATED_FF: usize = 1408;
const BATCH: usize = 4;
const SEQ: usize = 128;

/// GPT-2 and Llama of the shared shape, saved to `dir/<name>` and loaded from there.
fn from_disk(dir: &Path, device: &Device) -> Vec<(&'static str, Model)> {
    let gpt2_cfg = Gpt2Config {
        n_positions: 1024,
        ..Gpt2Config::tiny(VOCAB, D, LAYERS, HEADS)
    };
    let (_, vars) = Model::random_gpt2(&gpt2_cfg, DType::F32, device).expect("random gpt2");
    let gpt2_dir = dir.join("gpt2");
    std::fs::create_dir_all(&gpt2_dir).expect("folder");
    vars.save(gpt2_dir.join("model.safetensors")).expect("save");
    let mut cfg = serde_json::to_value(&gpt2_cfg).expect("config");
    cfg["model_type"] = "gpt2".into();
    std::fs::write(gpt2_dir.join("config.json"), cfg.to_string()).expect("config");

    let llama_cfg = llama_config(VOCAB, D, LAYERS, HEADS, KV_HEADS, GATED_FF);
    let (_, vars) = Model::random_llama(&llama_cfg, DType::F32, device).expect("random llama");
    let llama_dir = dir.join("llama");
    std::fs::create_dir_all(&llama_dir).expect("folder");
    vars.save(llama_dir.join("model.safetensors"))
        .expect("save");
    let cfg = serde_json::json!({
        "model_type": "llama", "vocab_size": VOCAB, "hidden_size": D,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "intermediate_size": GATED_FF,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 2048,
        "tie_word_embeddings": false
    });
    std::fs::write(llama_dir.join("config.json"), cfg.to_string()).expect("config");
    vec![
        (
            "gpt2",
            Model::from_dir(&gpt2_dir, DType::F32, device).expect("load gpt2"),
        ),
        (
            "llama",
            Model::from_dir(&llama_dir, DType::F32, device).expect("load llama"),
        ),
    ]
}

/// The other families at the shared shape, from HF-style configs.
fn from_configs(device: &Device) -> Vec<(&'static str, Model)> {
    let llama_like = |model_type: &str| {
        serde_json::json!({
            "model_type": model_type, "vocab_size": VOCAB, "hidden_size": D,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS, "intermediate_size": GATED_FF,
        })
    };
    let mut configs = vec![];
    for t in ["mistral", "gemma", "qwen2", "qwen3", "olmo", "olmo2"] {
        configs.push((t, llama_like(t)));
    }
    let mut mistral = llama_like("mistral");
    mistral["sliding_window"] = 64.into();
    configs[0].1 = mistral;
    let mut gemma2 = llama_like("gemma2");
    gemma2["sliding_window"] = 64.into();
    gemma2["attn_logit_softcapping"] = 50.0.into();
    gemma2["final_logit_softcapping"] = 30.0.into();
    configs.push(("gemma2", gemma2));
    configs.push((
        "gpt_neox",
        serde_json::json!({
            "model_type": "gpt_neox", "vocab_size": VOCAB, "hidden_size": D,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": 4 * D,
            "rotary_pct": 0.25
        }),
    ));
    configs.push((
        "gpt_neo",
        serde_json::json!({
            "model_type": "gpt_neo", "vocab_size": VOCAB, "hidden_size": D, "num_layers": LAYERS,
            "num_heads": HEADS, "attention_types": [[["global", "local"], LAYERS / 2]],
            "window_size": 64, "max_position_embeddings": 2048
        }),
    ));
    configs
        .into_iter()
        .map(|(name, cfg)| {
            let (m, _vars) =
                Model::random_from_config(&cfg, DType::F32, device).expect("random model");
            (name, m.detached().expect("detach"))
        })
        .collect()
}

fn families(c: &mut Criterion) {
    let device = Device::Cpu;
    let tmp = std::env::temp_dir().join(format!("vene-bench-families-{}", std::process::id()));
    let mut models = from_disk(&tmp, &device);
    models.extend(from_configs(&device));
    let tokens: Vec<u32> = (0..BATCH * SEQ)
        .map(|i| ((i * 389 + 7) % VOCAB) as u32)
        .collect();
    let ids = Tensor::from_vec(tokens, (BATCH, SEQ), &device).expect("ids");
    let mut group = c.benchmark_group("families_d512_l8_4x128");
    group.sample_size(10);
    for (name, model) in &models {
        group.bench_function(*name, |b| {
            b.iter(|| model.forward(&ids, None, &mut NoHooks).expect("forward"))
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&tmp);
}

criterion_group!(benches, families);
criterion_main!(benches);
