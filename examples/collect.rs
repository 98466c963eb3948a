//! Collect activations at any component and layer, and print their shape and a few
//! statistics per position.
//!
//! ```text
//! cargo run -p vene-examples --example collect -- --component mlp_output --layer 1
//! cargo run --release -p vene-examples --example collect -- --model openai-community/gpt2 \
//!     --component block_output --layer 6 --prompt "The Eiffel Tower is in"
//! ```
//!
//! Without `--model` it runs offline on a seeded tiny GPT-2 it writes to a temporary folder.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use vene::hooks::{Component, HookableModel};
use vene_cli::backend::BackendArgs;
use vene_cli::commands::collect_all;
use vene_cli::{load, table, CliError, Result};

/// Activations at one component of one layer, for every token of a prompt.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Model folder or hub repo id (default: an offline tiny GPT-2).
    #[arg(long)]
    model: Option<String>,
    /// Component to read (block_input, block_output, mlp_output, attention_output, ...).
    #[arg(long, default_value = "block_output")]
    component: Component,
    /// Layer to read.
    #[arg(long, default_value_t = 0)]
    layer: usize,
    /// The text to run.
    #[arg(long, default_value = "The city of Paris is in the country of")]
    prompt: String,
    /// Device and precision (--device cpu|cuda[:N]|metal, --dtype f32|f16|bf16).
    #[command(flatten)]
    backend: BackendArgs,
}

/// Statistics of the activation vector at one position.
#[derive(Debug, Clone, PartialEq)]
struct PositionStats {
    token: String,
    norm: f32,
    mean: f32,
    std: f32,
    min: f32,
    max: f32,
}

/// What a run collected.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct Report {
    /// `[T, d]`.
    shape: Vec<usize>,
    positions: Vec<PositionStats>,
    /// The activations themselves, `[T][d]`.
    values: Vec<Vec<f32>>,
    ids: Vec<u32>,
    text: String,
}

fn stats(token: String, v: &[f32]) -> PositionStats {
    let n = v.len().max(1) as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n;
    PositionStats {
        token,
        norm: v.iter().map(|x| x * x).sum::<f32>().sqrt(),
        mean,
        std: var.sqrt(),
        min: v.iter().copied().fold(f32::INFINITY, f32::min),
        max: v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    }
}

fn run(args: &Args, model_dir: &str) -> Result<Report> {
    let lm = load::model(model_dir, &args.backend.open()?)?;
    let n_layers = lm.model.n_layers();
    if args.layer >= n_layers {
        return Err(CliError::invalid(format!(
            "--layer {} is out of range: the model has {n_layers} layers",
            args.layer
        )));
    }
    let (ids, ids_t) = lm.encode(&args.prompt)?;
    let acts = collect_all(&lm.model, args.layer, args.component, &ids_t)?;
    let values = acts.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    let positions: Vec<PositionStats> = ids
        .iter()
        .zip(&values)
        .map(|(id, v)| stats(lm.token(*id), v))
        .collect();
    let rows: Vec<Vec<String>> = positions
        .iter()
        .enumerate()
        .map(|(p, s)| {
            vec![
                p.to_string(),
                table::token(&s.token),
                format!("{:.3}", s.norm),
                format!("{:+.4}", s.mean),
                format!("{:.4}", s.std),
                format!("{:+.3}", s.min),
                format!("{:+.3}", s.max),
            ]
        })
        .collect();
    let text = format!(
        "{} at layer {} of {model_dir}: activations {:?}\n{}",
        args.component,
        args.layer,
        acts.dims(),
        table::render(
            &["pos", "token", "norm", "mean", "std", "min", "max"],
            &rows
        )
    );
    Ok(Report {
        shape: acts.dims().to_vec(),
        positions,
        values,
        ids,
        text,
    })
}

fn main() {
    let args = Args::parse();
    common::run_main(
        "collect",
        Ok(args.model.clone()),
        |root| Ok(common::offline::write_model(root, 0)?.display().to_string()),
        |dir| Ok(run(&args, dir)?.text),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn args(component: &str, layer: usize) -> Args {
        Args::parse_from([
            "collect",
            "--component",
            component,
            "--layer",
            &layer.to_string(),
        ])
    }

    #[test]
    fn block_input_of_layer_0_is_token_plus_position_embedding() {
        let root = common::temp_root("collect-test").unwrap();
        let dir = common::offline::write_model(&root, 1).unwrap();
        let report = run(&args("block_input", 0), dir.to_str().unwrap()).unwrap();
        assert_eq!(report.shape, vec![9, common::offline::WIDTH]);
        assert_eq!(report.positions[3].token, "Paris");
        let w =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let wte = w["transformer.wte.weight"].to_vec2::<f32>().unwrap();
        let wpe = w["transformer.wpe.weight"].to_vec2::<f32>().unwrap();
        for (p, (id, row)) in report.ids.iter().zip(&report.values).enumerate() {
            for (j, x) in row.iter().enumerate() {
                let expected = wte[*id as usize][j] + wpe[p][j];
                assert!(
                    (x - expected).abs() < 1e-6,
                    "pos {p} dim {j}: {x} vs {expected}"
                );
            }
            let s = &report.positions[p];
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((s.norm - norm).abs() < 1e-5);
            assert!(s.min <= s.mean && s.mean <= s.max && s.std > 0.0);
        }
        assert!(report.text.contains("activations [9, 32]"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn mlp_output_has_model_width_and_bad_layer_is_an_error() {
        let root = common::temp_root("collect-test-mlp").unwrap();
        let dir = common::offline::write_model(&root, 2).unwrap();
        let dir = dir.to_str().unwrap();
        let report = run(&args("mlp_output", 1), dir).unwrap();
        assert_eq!(report.shape, vec![9, common::offline::WIDTH]);
        assert_eq!(report.positions.len(), 9);
        let err = run(&args("block_output", 2), dir).unwrap_err().to_string();
        assert!(err.contains("--layer 2 is out of range"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
