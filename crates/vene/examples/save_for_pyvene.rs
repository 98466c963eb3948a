//! Writes, for each intervention type pyvene can rebuild, a folder with
//! `IntervenableModel::save_for_pyvene` on the tiny GPT-2 fixture, and the logits vene gives
//! with it, for `scripts/check_pyvene_loads.py` to compare against pyvene's.
//!
//! ```text
//! cargo run --example save_for_pyvene -- <out-dir>
//! /work/pyenv/bin/python scripts/check_pyvene_loads.py <out-dir>
//! ```
//!
//! `<out-dir>/<Type>/` is the saved folder and `<out-dir>/<Type>.safetensors` holds
//! `base_input_ids`, `source_input_ids`, `base_positions` (`[B, n]`), `source_positions` (when
//! the type takes a source run), `intervened_logits`, `original_logits` and `collected` (for
//! CollectIntervention), at layer 1's block output.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde_json::json;
use vene::hooks::Component;
use vene::models::Model;
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, SaveOptions,
    UnitLocations,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: save_for_pyvene <out-dir>")?,
    );
    std::fs::create_dir_all(&out)?;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene");
    let dev = Device::Cpu;
    let oracle = candle_core::safetensors::load(format!("{root}/oracle_gpt2.safetensors"), &dev)?;
    let base = oracle["gpt2.base_input_ids"].clone();
    let source = oracle["gpt2.source_input_ids"].clone();
    let r = || RepresentationConfig::new(1, Component::BlockOutput);
    let wave = |s: &[usize], k: f32| -> candle_core::Result<Tensor> {
        let n: usize = s.iter().product();
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * k).sin() * 0.5).collect();
        Tensor::from_vec(v, s, &dev)
    };
    let mut jumprelu = vene::interventions::JumpReLUAutoencoderIntervention::from_tensors(
        wave(&[16, 24], 0.37)?,
        wave(&[24], 0.13)?,
        wave(&[24, 16], 0.71)?,
        wave(&[16], 0.29)?,
        wave(&[24], 0.05)?.abs()?,
    )?;
    jumprelu.set_interchange_dim(vene::interventions::InterchangeDim::First(6))?;
    let cases = vec![
        r().intervention_type("VanillaIntervention")
            .hyperparam("interchange_dim", json!(8)),
        r().intervention_type("VanillaIntervention")
            .source_representation(wave(&[16], 0.9)?),
        r().intervention_type("AdditionIntervention")
            .source_representation(Tensor::arange(0f32, 16., &dev)?),
        r().intervention_type("SubtractionIntervention")
            .source_representation(wave(&[16], 1.3)?),
        r().intervention_type("AdditionIntervention"),
        r().intervention_type("ZeroIntervention")
            .hyperparam("interchange_dim", json!(5)),
        r().intervention_type("CollectIntervention"),
        r().intervention_type("NoiseIntervention"),
        r().intervention_type("SkipIntervention"),
        r().intervention_type("RotatedSpaceIntervention")
            .hyperparam("seed", json!(3))
            .hyperparam("interchange_dim", json!(4)),
        r().intervention_type("LowRankRotatedSpaceIntervention")
            .low_rank_dimension(3)
            .hyperparam("seed", json!(5)),
        r().intervention_type("BoundlessRotatedSpaceIntervention")
            .hyperparam("seed", json!(7))
            .hyperparam("temperature", json!(2.0)),
        r().intervention_type("SigmoidMaskRotatedSpaceIntervention")
            .hyperparam("seed", json!(9)),
        r().intervention_type("SigmoidMaskIntervention"),
        r().intervention_type("AutoencoderIntervention")
            .latent_dim(32)
            .hyperparam("interchange_dim", json!([1, 2, 3])),
        r().intervention(Arc::new(jumprelu)),
    ];
    let mut names = Vec::new();
    for repr in cases {
        let constant = repr.source_representation.is_some();
        let model = Model::from_dir(format!("{root}/tiny-gpt2"), DType::F32, &dev)?;
        let im = IntervenableModel::new(IntervenableConfig::new(vec![repr]), model)?;
        let key = im.keys()[0].to_string();
        let iv = im.intervention(&key).ok_or("no intervention")?;
        let mut name = iv.type_name().to_string();
        if constant {
            name.push_str("_constant");
        }
        // pyvene's noise is 4 rows: 4 positions; one position otherwise
        let base_positions: Vec<usize> = match iv.type_name() {
            "NoiseIntervention" => vec![0, 1, 2, 3],
            _ => vec![3],
        };
        let with_source = iv.needs_source() && !constant;
        let batch = base.dim(0)?;
        let mut req = ForwardRequest::new(base.clone());
        let mut positions = vec![(
            "base_positions".to_string(),
            Tensor::new(
                vec![base_positions.iter().map(|&p| p as i64).collect::<Vec<_>>(); batch],
                &dev,
            )?,
        )];
        if with_source {
            req = req
                .source(source.clone())
                .locations(UnitLocations::sources_to_base(
                    vec![vec![vec![5]; batch]],
                    vec![vec![base_positions.clone(); batch]],
                ));
            positions.push((
                "source_positions".to_string(),
                Tensor::new(vec![vec![5i64]; batch], &dev)?,
            ));
        } else {
            req = req.locations(UnitLocations::base(vec![vec![
                base_positions.clone();
                batch
            ]]));
        }
        let fwd = im.forward(&req.output_original(true))?;
        let original = fwd.original.clone().ok_or("no original logits")?;
        im.save_for_pyvene(out.join(&name), &SaveOptions::default().overwrite(true))?;
        let mut tensors = vec![
            ("base_input_ids".to_string(), base.clone()),
            ("source_input_ids".to_string(), source.clone()),
            ("intervened_logits".to_string(), fwd.intervened),
            ("original_logits".to_string(), original),
        ];
        tensors.extend(positions);
        if let Some(c) = fwd.collected.first() {
            tensors.push(("collected".to_string(), c.clone()));
        }
        let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, out.join(format!("{name}.safetensors")))?;
        println!("{name}: {}", out.join(&name).display());
        names.push(name);
    }
    Ok(())
}
