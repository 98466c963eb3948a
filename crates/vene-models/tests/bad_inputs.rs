//! Bad inputs give typed errors that name what is wrong.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use vene_hooks::{Component, HookCall, HookError, HookableModel, Hooks, NoHooks, Site};
use vene_models::{LanguageModel, Model, ModelError};
use vene_testutil::{fixture, load_tensors, oracle};

fn load(name: &str) -> Model {
    Model::from_dir(fixture(&format!("tiny-{name}")), DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn sites_are_checked() {
    let gpt2 = load("gpt2");
    let llama = load("llama");
    let err = gpt2
        .check_site(Site::new(2, Component::BlockOutput))
        .unwrap_err();
    assert!(
        matches!(
            err,
            HookError::LayerOutOfRange {
                layer: 2,
                n_layers: 2
            }
        ),
        "{err}"
    );
    gpt2.check_site(Site::new(1, Component::AttentionWeight))
        .unwrap();
    // every family calls the attention_weight hook
    llama
        .check_site(Site::new(0, Component::AttentionWeight))
        .unwrap();
    assert_eq!(
        llama
            .component_shape(Component::AttentionWeight)
            .unwrap()
            .n_heads,
        4
    );
    let err = "mlp_outptu".parse::<Component>().unwrap_err();
    assert!(matches!(err, HookError::UnknownComponent { .. }));
    let k = llama.component_shape(Component::KeyOutput).unwrap();
    assert_eq!((k.width, k.n_heads), (8, 2));
    let a = llama.component_shape(Component::MlpActivation).unwrap();
    assert_eq!((a.width, a.n_heads), (40, 1));
    let v = gpt2
        .component_shape(Component::HeadAttentionValueOutput)
        .unwrap();
    assert_eq!((v.width, v.n_heads, v.head_dim()), (16, 2, 8));
}

/// A hook that gathers a position past the sequence: the hook's error comes back typed.
#[test]
fn position_out_of_range_through_gather() {
    struct Gather(usize);
    impl Hooks for Gather {
        fn is_active(&self, site: Site) -> bool {
            site == Site::new(1, Component::BlockOutput)
        }
        fn on_activation(&mut self, _: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
            vene_hooks::gather_positions(&x, &[vec![self.0], vec![0]])?;
            Ok(x)
        }
    }
    let model = load("gpt2");
    let ids = &oracle("gpt2")["gpt2.base_input_ids"];
    model.forward(ids, None, &mut Gather(5)).unwrap();
    let err = model.forward(ids, None, &mut Gather(6)).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Hook(HookError::PositionOutOfRange {
                example: 0,
                position: 6,
                len: 6
            })
        ),
        "{err}"
    );
}

#[test]
fn token_out_of_vocab() {
    let model = load("llama");
    let ids = Tensor::new(&[[1u32, 64]], &Device::Cpu).unwrap();
    let err = model.forward(&ids, None, &mut NoHooks).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::TokenOutOfRange {
                token: 64,
                vocab: 64
            }
        ),
        "{err}"
    );
    let ids = Tensor::new(&[[1i64, -3]], &Device::Cpu).unwrap();
    let err = model.forward(&ids, None, &mut NoHooks).unwrap_err();
    assert!(
        matches!(err, ModelError::TokenOutOfRange { token: -3, .. }),
        "{err}"
    );
    let ids = Tensor::new(&[[1f32]], &Device::Cpu).unwrap();
    assert!(matches!(
        model.forward(&ids, None, &mut NoHooks),
        Err(ModelError::InvalidInput(_))
    ));
    let ids = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    assert!(matches!(
        model.forward(&ids, None, &mut NoHooks),
        Err(ModelError::InvalidInput(_))
    ));
}

#[test]
fn bad_mask_shape() {
    let model = load("gpt2");
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1]], &Device::Cpu).unwrap();
    let err = model.forward(&ids, Some(&mask), &mut NoHooks).unwrap_err();
    assert!(err.to_string().contains("attention mask"), "{err}");
}

#[test]
fn too_long_for_gpt2_positions() {
    let model = load("gpt2");
    let ids = Tensor::zeros((1, 33), DType::U32, &Device::Cpu).unwrap();
    let err = model.forward(&ids, None, &mut NoHooks).unwrap_err();
    assert!(err.to_string().contains("n_positions 32"), "{err}");
}

fn dir_with(config: &str, tensors: &HashMap<String, Tensor>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    candle_core::safetensors::save(tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

#[test]
fn missing_weight_is_named() {
    let config = std::fs::read_to_string(fixture("tiny-gpt2/config.json")).unwrap();
    let mut w = load_tensors(fixture("tiny-gpt2/model.safetensors"));
    w.remove("transformer.h.1.ln_2.bias");
    let dir = dir_with(&config, &w);
    let err = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        ModelError::MissingTensor { name, file } => {
            assert_eq!(name, "transformer.h.1.ln_2.bias");
            assert!(file.ends_with("model.safetensors"), "{file}");
        }
        other => panic!("expected MissingTensor, got {other}"),
    }
}

#[test]
fn config_not_matching_weights_names_tensor_and_shapes() {
    let config = std::fs::read_to_string(fixture("tiny-gpt2/config.json"))
        .unwrap()
        .replace("\"n_embd\": 16", "\"n_embd\": 32");
    let w = load_tensors(fixture("tiny-gpt2/model.safetensors"));
    let dir = dir_with(&config, &w);
    let err = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        ModelError::ShapeMismatch {
            name,
            expected,
            got,
        } => {
            assert_eq!(name, "transformer.wte.weight");
            assert_eq!(expected, &vec![64, 32]);
            assert_eq!(got, &vec![64, 16]);
        }
        other => panic!("expected ShapeMismatch, got {other}"),
    }
}

#[test]
fn missing_or_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let err = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        ModelError::Io { path, .. } => assert!(path.ends_with("config.json")),
        other => panic!("expected Io, got {other}"),
    }
    // config.json but no weights
    std::fs::copy(
        fixture("tiny-gpt2/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // corrupt weights
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let err = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::CorruptWeights { .. }), "{err}");
    // unknown architecture
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let err = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("bert"), "{err}");
    // invalid JSON
    std::fs::write(dir.path().join("config.json"), "{").unwrap();
    let err = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::Json { .. }), "{err}");
}
