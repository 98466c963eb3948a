//! Every family of `tests/fixtures/pyvene-families`: cached decoding (sliding windows and
//! soft-capping included) equals the full forward, padded rows get their own logits, half
//! precision tracks f32, and a random model of each family's config runs.

use candle_core::{DType, Device, IndexOp, Tensor};
use vene_hooks::{HookableModel, NoHooks};
use vene_models::{LanguageModel, Model};
use vene_testutil::{family_oracle, max_abs, max_abs_diff, FAMILY_FIXTURES};

use vene_testutil::FAMILY_NAMES as FAMILIES;

fn dir(family: &str) -> String {
    format!("{FAMILY_FIXTURES}/tiny-{family}")
}

fn load(family: &str, dtype: DType) -> Model {
    Model::from_dir(dir(family), dtype, &Device::Cpu).unwrap_or_else(|e| panic!("{family}: {e}"))
}

/// The 8 real tokens of the fixture's first source row, `[1, 8]`.
fn tokens(family: &str) -> Tensor {
    let o = family_oracle(family);
    o[&format!("{family}.source_input_ids")]
        .to_dtype(DType::U32)
        .unwrap()
        .narrow(0, 0, 1)
        .unwrap()
}

#[test]
fn cached_decoding_equals_the_full_forward() {
    for f in FAMILIES {
        let model = load(f, DType::F32);
        let ids = tokens(f);
        let t = ids.dim(1).unwrap();
        let full = model.forward(&ids, None, &mut NoHooks).unwrap();
        let mut cache = model.new_cache();
        let mut parts = vec![model
            .forward_cached(
                &ids.narrow(1, 0, 2).unwrap(),
                None,
                &mut cache,
                &mut NoHooks,
            )
            .unwrap()];
        for i in 2..t {
            parts.push(
                model
                    .forward_cached(
                        &ids.narrow(1, i, 1).unwrap(),
                        None,
                        &mut cache,
                        &mut NoHooks,
                    )
                    .unwrap(),
            );
        }
        let cached = Tensor::cat(&parts, 1).unwrap();
        let d = max_abs_diff(&cached, &full);
        assert!(d < 1e-5, "{f}: cached logits differ by {d}");
        assert_eq!(cache.len(), t);
    }
}

#[test]
fn padded_rows_get_the_logits_they_get_alone() {
    // vene's default positions count the real tokens of each row, so even learned-position
    // families (GPT-Neo) give a left-padded row its unpadded logits.
    for f in FAMILIES {
        let model = load(f, DType::F32);
        let ids = tokens(f);
        let row: Vec<u32> = ids.i(0).unwrap().to_vec1().unwrap();
        let short = &row[..5];
        let alone = model
            .forward(
                &Tensor::new(short, &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
                None,
                &mut NoHooks,
            )
            .unwrap();
        for left in [true, false] {
            let (padded, mask, start): (Vec<u32>, Vec<u32>, usize) = if left {
                (
                    [&[0u32; 3][..], short].concat(),
                    [[0u32; 3].to_vec(), vec![1; 5]].concat(),
                    3,
                )
            } else {
                (
                    [short, &[0u32; 3][..]].concat(),
                    [vec![1u32; 5], vec![0; 3]].concat(),
                    0,
                )
            };
            let batch_ids =
                Tensor::from_vec([row.clone(), padded].concat(), (2, 8), &Device::Cpu).unwrap();
            let batch_mask =
                Tensor::from_vec([vec![1u32; 8], mask].concat(), (2, 8), &Device::Cpu).unwrap();
            let out = model
                .forward(&batch_ids, Some(&batch_mask), &mut NoHooks)
                .unwrap();
            let got = out.i((1..2, start..start + 5, ..)).unwrap();
            let d = max_abs_diff(&got, &alone);
            assert!(d < 1e-5, "{f} left={left}: padded row differs by {d}");
            let full = model.forward(&ids, None, &mut NoHooks).unwrap();
            let d0 = max_abs_diff(&out.i(0..1).unwrap(), &full);
            assert!(d0 < 1e-5, "{f} left={left}: unpadded row differs by {d0}");
        }
    }
}

#[test]
fn half_precision_tracks_f32() {
    for f in FAMILIES {
        let ids = tokens(f);
        let reference = load(f, DType::F32)
            .forward(&ids, None, &mut NoHooks)
            .unwrap();
        let scale = max_abs(&reference);
        for (dtype, tol) in [(DType::BF16, 0.08), (DType::F16, 0.02)] {
            let m = load(f, dtype);
            assert_eq!(m.dtype(), dtype);
            let out = m.forward(&ids, None, &mut NoHooks).unwrap();
            assert_eq!(out.dtype(), dtype);
            let d = max_abs_diff(&out, &reference);
            assert!(
                d <= tol * scale,
                "{f} {dtype:?}: differs from f32 by {d} (logit scale {scale})"
            );
            // and a model moved after loading equals one loaded in that dtype
            let moved = load(f, DType::F32).to(&Device::Cpu, dtype).unwrap();
            let d = max_abs_diff(&moved.forward(&ids, None, &mut NoHooks).unwrap(), &out);
            assert!(d == 0.0, "{f} {dtype:?}: moved model differs by {d}");
        }
    }
}

#[test]
fn random_models_of_every_family_config_run() {
    for f in FAMILIES {
        let text = std::fs::read_to_string(format!("{}/config.json", dir(f))).unwrap();
        let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
        let (model, vars) = Model::random_from_config(&cfg, DType::F32, &Device::Cpu).unwrap();
        let loaded = load(f, DType::F32);
        assert_eq!(model.model_type(), loaded.model_type());
        assert_eq!(model.spec(), loaded.spec());
        // the random model holds a weight for every weight of the checkpoint
        let file = vene_testutil::load_tensors(format!("{}/model.safetensors", dir(f)));
        let data = vars.data().lock().unwrap();
        for (name, t) in &file {
            let v = data
                .get(name)
                .unwrap_or_else(|| panic!("{f}: random model lacks {name}"));
            assert_eq!(v.dims(), t.dims(), "{f}: {name}");
        }
        assert_eq!(data.len(), file.len(), "{f}: extra random weights");
        drop(data);
        let out = model.forward(&tokens(f), None, &mut NoHooks).unwrap();
        assert_eq!(out.dims(), &[1, 8, loaded.vocab_size()]);
        let detached = model.detached().unwrap();
        let d = max_abs_diff(
            &detached.forward(&tokens(f), None, &mut NoHooks).unwrap(),
            &out,
        );
        assert!(d < 1e-5, "{f}: detached model differs by {d}");
    }
}

#[test]
fn unsupported_and_broken_configs_are_clear_errors() {
    let base = serde_json::json!({
        "vocab_size": 64, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32
    });
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let err = |c: serde_json::Value| match Model::random_from_config(&c, DType::F32, &Device::Cpu) {
        Ok(_) => panic!("accepted {c}"),
        Err(e) => e.to_string(),
    };
    let e = err(with("model_type", "mamba".into()));
    assert!(
        e.contains("mamba") && e.contains("gemma2") && e.contains("gpt_neox"),
        "{e}"
    );
    let mut c = with("model_type", "llama".into());
    c["num_key_value_heads"] = 3.into();
    assert!(err(c).contains("num_key_value_heads"));
    let mut c = with("model_type", "llama".into());
    c["num_hidden_layers"] = serde_json::json!(1u64 << 40);
    assert!(err(c).contains("num_hidden_layers"));
    let mut c = with("model_type", "llama".into());
    c["hidden_act"] = "swiglu_foo".into();
    let e = err(c);
    assert!(e.contains("swiglu_foo") && e.contains("silu"), "{e}");
    let mut c = with("model_type", "gemma2".into());
    c["layer_types"] = serde_json::json!(["sliding_attention"]);
    assert!(err(c).contains("layer_types"));
    let mut c = with("model_type", "llama".into());
    c["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    let e = err(c);
    assert!(e.contains("yarn") && e.contains("llama3"), "{e}");
    let mut c = with("model_type", "llama".into());
    c["vocab_size"] = serde_json::json!(1u64 << 23);
    c["hidden_size"] = serde_json::json!(1u64 << 16);
    c["num_attention_heads"] = 256.into();
    assert!(err(c).contains("random model"));
}

/// `resid_mid` (vene's extension, TransformerLens's `hook_resid_mid`) is the residual between
/// attention and MLP: in every sequential family, `block_output = resid_mid + (post-normed)
/// MLP`, and without an attention post-norm `resid_mid = block_input + attention_output`.
/// Parallel families (GPT-NeoX) refuse it, naming the component.
#[test]
fn resid_mid_sits_between_attention_and_mlp() {
    use vene_hooks::{Component, Site};
    for family in FAMILIES {
        let model = load(family, DType::F32);
        let ids = tokens(family);
        let sites = [
            Component::BlockInput,
            Component::AttentionOutput,
            Component::ResidMid,
            Component::MlpOutput,
            Component::BlockOutput,
        ];
        let wanted = |s: Site| s.layer == 1 && sites.contains(&s.component);
        let parallel = model.component_shape(Component::ResidMid).is_err();
        let (_, cache) = model
            .run_with_cache(&ids, &vene_models::LogitsAt::Nothing, &wanted, None)
            .unwrap();
        let get = |c| {
            cache
                .get(1, c)
                .unwrap_or_else(|| panic!("{family}: no {c}"))
        };
        if parallel {
            assert!(cache.get(1, Component::ResidMid).is_none(), "{family}");
            let err = model
                .component_shape(Component::ResidMid)
                .unwrap_err()
                .to_string();
            assert!(err.contains("resid_mid"), "{family}: {err}");
            continue;
        }
        let mid = get(Component::ResidMid);
        // Families with post-norms (Gemma 2, OLMo 2) norm the branches before the adds.
        let post_norms = matches!(family, "gemma2" | "olmo2");
        if !post_norms {
            let sum = (get(Component::BlockInput) + get(Component::AttentionOutput)).unwrap();
            assert!(max_abs_diff(mid, &sum) < 1e-5, "{family}: resid_mid");
            let out = (mid + get(Component::MlpOutput)).unwrap();
            assert!(
                max_abs_diff(get(Component::BlockOutput), &out) < 1e-5,
                "{family}: block_output"
            );
        }
        assert!(
            max_abs_diff(mid, get(Component::BlockInput)) > 1e-4,
            "{family}"
        );
    }
}

/// At layer 0's `attention_weight`: reads the probabilities, or replaces them by attention
/// on the first key only; records the values and the attention's value output.
struct FirstKeyOnly {
    replace: bool,
    seen: Vec<(vene_hooks::Component, Tensor)>,
}

impl vene_hooks::Hooks for FirstKeyOnly {
    fn is_active(&self, site: vene_hooks::Site) -> bool {
        use vene_hooks::Component::*;
        site.layer == 0
            && matches!(
                site.component,
                AttentionWeight | ValueOutput | AttentionValueOutput
            )
    }
    fn on_activation(
        &mut self,
        call: vene_hooks::HookCall,
        x: Tensor,
    ) -> vene_hooks::Result<Tensor> {
        let x = if call.site.component == vene_hooks::Component::AttentionWeight && self.replace {
            let (b, h, q, k) = x.dims4()?;
            let one = Tensor::ones((b, h, q, 1), x.dtype(), x.device())?;
            let rest = Tensor::zeros((b, h, q, k - 1), x.dtype(), x.device())?;
            Tensor::cat(&[&one, &rest], 3)?
        } else {
            x
        };
        self.seen.push((call.site.component, x.clone()));
        Ok(x)
    }
}

/// Every family calls the `attention_weight` hook, and what the hook returns is what the
/// values are weighted with: reading it changes nothing, attending to the first key only gives
/// that key's value (of the head's key/value group) at every position.
#[test]
fn attention_weight_hook_is_called_and_written_back_in_every_family() {
    use vene_hooks::Component;
    let mut models: Vec<(String, Model)> = FAMILIES
        .iter()
        .map(|f| (f.to_string(), load(f, DType::F32)))
        .collect();
    for name in ["gpt2", "llama"] {
        let dir = vene_testutil::fixture(&format!("tiny-{name}"));
        models.push((
            name.to_string(),
            Model::from_dir(dir, DType::F32, &Device::Cpu).unwrap(),
        ));
    }
    let ids = Tensor::new(&[[3u32, 9, 4, 1, 7]], &Device::Cpu).unwrap();
    for (name, model) in models {
        let plain = model.forward(&ids, None, &mut NoHooks).unwrap();
        let mut read = FirstKeyOnly {
            replace: false,
            seen: Vec::new(),
        };
        let read_logits = model.forward(&ids, None, &mut read).unwrap();
        assert!(
            max_abs_diff(&plain, &read_logits) <= 1e-5,
            "{name}: reading changed the logits"
        );
        let probs = &read
            .seen
            .iter()
            .find(|(c, _)| *c == Component::AttentionWeight)
            .unwrap()
            .1;
        let n_heads = model
            .component_shape(Component::AttentionWeight)
            .unwrap()
            .n_heads;
        assert_eq!(probs.dims(), &[1, n_heads, 5, 5], "{name}");

        let mut first = FirstKeyOnly {
            replace: true,
            seen: Vec::new(),
        };
        let changed = model.forward(&ids, None, &mut first).unwrap();
        assert!(
            max_abs_diff(&plain, &changed) > 1e-6,
            "{name}: the write-back was ignored"
        );
        let get = |c: Component| first.seen.iter().find(|(k, _)| *k == c).unwrap().1.clone();
        let v = get(Component::ValueOutput); // [1, 5, kv_heads * hd]
        let out = get(Component::AttentionValueOutput); // [1, 5, heads * hd]
        let kv = model.component_shape(Component::ValueOutput).unwrap();
        let hd = kv.head_dim();
        // the values are clipped after their hook (OLMo's clip_qkv)
        let clip = model
            .spec()
            .attention
            .clip_qkv
            .map_or(f32::MAX, |c| c as f32);
        let v0: Vec<f32> = v
            .i((0, 0))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.clamp(-clip, clip))
            .collect();
        let out = out.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        for (t, row) in out.iter().enumerate() {
            for h in 0..n_heads {
                let g = h / (n_heads / kv.n_heads);
                for d in 0..hd {
                    let (got, want) = (row[h * hd + d], v0[g * hd + d]);
                    assert!(
                        (got - want).abs() <= 1e-5,
                        "{name}: position {t} head {h} dim {d}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
