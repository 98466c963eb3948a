//! Fresh random models are trainable with candle autograd: gradients reach every weight,
//! including the ones behind layer norm, softmax and RoPE.

use candle_core::{DType, Device, Tensor};
use candle_nn::{loss, Optimizer, VarMap};
use vene_hooks::NoHooks;
use vene_models::{llama_config, Gpt2Config, LanguageModel, Model};

fn grads_nonzero(model: &Model, varmap: &VarMap, names: &[&str]) {
    let ids = Tensor::new(&[[1u32, 5, 9, 13, 2]], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[5u32, 9, 13, 2, 7], &Device::Cpu).unwrap();
    let logits = model
        .forward(&ids, None, &mut NoHooks)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let l = loss::cross_entropy(&logits, &targets).unwrap();
    let grads = l.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    for n in names {
        let var = data.get(*n).unwrap_or_else(|| panic!("no var {n}"));
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no grad for {n}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "zero grad for {n}");
    }
}

#[test]
fn gpt2_gradients_reach_every_kind_of_weight() {
    let (model, varmap) =
        Model::random_gpt2(&Gpt2Config::tiny(32, 16, 2, 2), DType::F32, &Device::Cpu).unwrap();
    grads_nonzero(
        &model,
        &varmap,
        &[
            "transformer.wte.weight",
            "transformer.wpe.weight",
            "transformer.h.0.ln_1.weight",
            "transformer.h.0.attn.c_attn.weight",
            "transformer.ln_f.bias",
        ],
    );
}

#[test]
fn llama_gradients_reach_query_and_key_through_rope() {
    let (model, varmap) =
        Model::random_llama(&llama_config(32, 16, 2, 4, 2, 24), DType::F32, &Device::Cpu).unwrap();
    grads_nonzero(
        &model,
        &varmap,
        &[
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.input_layernorm.weight",
            "lm_head.weight",
        ],
    );
}

/// HF-like init: normal std 0.02 for embeddings, 1 for layer norm weights.
#[test]
fn random_init_is_hf_like() {
    let (_, varmap) =
        Model::random_gpt2(&Gpt2Config::tiny(1000, 64, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let data = varmap.data().lock().unwrap();
    let wte = data["transformer.wte.weight"]
        .as_tensor()
        .flatten_all()
        .unwrap();
    let std = wte
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .sqrt();
    assert!((std - 0.02).abs() < 0.001, "{std}");
    let ln = data["transformer.h.1.ln_2.weight"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert!(ln.iter().all(|&v| v == 1.0));
}

/// A few AdamW steps on a fixed batch lower the loss.
#[test]
fn gpt2_trains() {
    let (model, varmap) =
        Model::random_gpt2(&Gpt2Config::tiny(16, 16, 1, 2), DType::F32, &Device::Cpu).unwrap();
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 1e-2).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 3, 4, 5, 6]], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[2u32, 3, 4, 5, 6, 7], &Device::Cpu).unwrap();
    let loss_of = |m: &Model| {
        let logits = m
            .forward(&ids, None, &mut NoHooks)
            .unwrap()
            .squeeze(0)
            .unwrap();
        loss::cross_entropy(&logits, &targets).unwrap()
    };
    let first = loss_of(&model).to_scalar::<f32>().unwrap();
    for _ in 0..30 {
        opt.backward_step(&loss_of(&model)).unwrap();
    }
    let last = loss_of(&model).to_scalar::<f32>().unwrap();
    assert!(last < first * 0.5, "{first} -> {last}");
}
