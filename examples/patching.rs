//! Activation patching across layers and positions: for every layer x position, patch the
//! component (default `block_output`) from the source run into the base run and print how the
//! logit difference between the base's answer and the source's answer changes, as a table and
//! a text heat map.
//!
//! ```text
//! cargo run -p vene-examples --example patching
//! cargo run -p vene-examples --example patching -- --plot patching.png   # also the picture
//! cargo run --release -p vene-examples --example patching -- --model openai-community/gpt2 \
//!     --base "The city of Paris is in the country of" --source "The city of Rome is in the country of"
//! ```
//!
//! Without `--model` it runs offline on a seeded tiny GPT-2 it writes to a temporary folder.
//! With `--plot PATH` (or the environment variable `VENE_PLOT=PATH`) it also draws the heat map
//! to PATH (`.png` or `.svg`).

#[path = "common/mod.rs"]
mod common;

use candle_core::{Tensor, D};
use clap::Parser;
use vene::hooks::{Component, HookableModel};
use vene::models::{LanguageModel, Model};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, LogitsAt, RepresentationConfig,
    UnitLocations,
};
use vene_cli::backend::BackendArgs;
use vene_cli::{load, table, CliError, Result};

/// Activation patching from a source prompt into a base prompt, every layer x position.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Model folder or hub repo id (default: an offline tiny GPT-2).
    #[arg(long)]
    model: Option<String>,
    /// The base prompt (the run that is patched).
    #[arg(long, default_value = "The city of Paris is in the country of")]
    base: String,
    /// The source prompt (same number of tokens as the base).
    #[arg(long, default_value = "The city of Rome is in the country of")]
    source: String,
    /// Component patched.
    #[arg(long, default_value = "block_output")]
    component: Component,
    /// Also draw the heat map to this file (`.png` or `.svg`; default: $VENE_PLOT when set).
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// Device and precision (--device cpu|cuda[:N]|metal, --dtype f32|f16|bf16).
    #[command(flatten)]
    backend: BackendArgs,
}

/// What a run measured.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct Report {
    base_answer: u32,
    source_answer: u32,
    /// Logit difference (base answer - source answer) of the unpatched base run.
    base_diff: f32,
    /// `[layer][position]`: patched logit difference minus `base_diff`.
    delta: Vec<Vec<f32>>,
    text: String,
}

/// Last-position logits of a `[1, T]` run, `[vocab]`.
fn last_logits(model: &Model, ids: &Tensor) -> Result<Tensor> {
    let logits = model.forward(ids, None, &mut vene::hooks::NoHooks)?;
    let t = ids.dim(1)?;
    Ok(logits.get(0)?.get(t - 1)?)
}

fn value(v: &[f32], i: u32) -> f32 {
    v.get(i as usize).copied().unwrap_or(f32::NAN)
}

/// The base's answer (its top token) and the source's: its top token, or when both runs agree
/// on it, the token the source favours most over the base.
fn answers(base: &[f32], source: &[f32]) -> (u32, u32) {
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32)
    };
    let (b, s) = (argmax(base), argmax(source));
    if b != s {
        return (b, s);
    }
    let mut shift: Vec<f32> = source.iter().zip(base).map(|(s, b)| s - b).collect();
    if let Some(x) = shift.get_mut(b as usize) {
        *x = f32::NEG_INFINITY;
    }
    (b, argmax(&shift))
}

/// Patched logit differences for one layer: example `p` of the batch patches position `p`.
fn patch_layer(
    model: &Model,
    component: Component,
    layer: usize,
    base: &Tensor,
    source: &Tensor,
    answers: (u32, u32),
) -> Result<Vec<f32>> {
    let t = base.dim(1)?;
    let repr = RepresentationConfig::new(layer, component);
    let iv = IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone())?;
    let positions: Vec<Vec<usize>> = (0..t).map(|p| vec![p]).collect();
    let req = ForwardRequest::new(base.repeat((t, 1))?)
        .source(source.repeat((t, 1))?)
        .locations(UnitLocations::sources_to_base(
            vec![positions.clone()],
            vec![positions],
        ))
        .logits(LogitsAt::Last);
    let logits = iv.forward(&req)?.intervened.squeeze(1)?.contiguous()?;
    let ids = Tensor::new(&[answers.0, answers.1], logits.device())?;
    let picked = logits
        .index_select(&ids, D::Minus1)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?;
    Ok(picked.iter().map(|r| r[0] - r[1]).collect())
}

/// One character per cell, darker for a larger share of the largest change.
fn shade(x: f32, max: f32) -> char {
    const RAMP: [char; 5] = [' ', '.', ':', '+', '#'];
    if max.is_nan() || max <= 0.0 {
        return ' ';
    }
    let i = ((x.abs() / max) * (RAMP.len() - 1) as f32).round() as usize;
    RAMP[i.min(RAMP.len() - 1)]
}

fn run(args: &Args, model_dir: &str) -> Result<Report> {
    let lm = load::model(model_dir, &args.backend.open()?)?;
    let (base_ids, base) = lm.encode(&args.base)?;
    let (source_ids, source) = lm.encode(&args.source)?;
    if base_ids.len() != source_ids.len() {
        return Err(CliError::invalid(format!(
            "the base has {} tokens and the source {}: patching position by position needs \
             prompts of the same length",
            base_ids.len(),
            source_ids.len()
        )));
    }
    let f32_of = |t: Tensor| t.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>();
    let base_logits = f32_of(last_logits(&lm.model, &base)?)?;
    let source_logits = f32_of(last_logits(&lm.model, &source)?)?;
    let (a, b) = answers(&base_logits, &source_logits);
    let base_diff = value(&base_logits, a) - value(&base_logits, b);
    let source_diff = value(&source_logits, a) - value(&source_logits, b);
    let mut delta = Vec::new();
    for layer in 0..lm.model.n_layers() {
        let patched = patch_layer(&lm.model, args.component, layer, &base, &source, (a, b))?;
        delta.push(patched.iter().map(|d| d - base_diff).collect::<Vec<_>>());
    }
    let tokens: Vec<String> = base_ids
        .iter()
        .zip(&source_ids)
        .map(|(b, s)| {
            let (b, s) = (lm.token(*b), lm.token(*s));
            if b == s {
                table::token(&b)
            } else {
                format!("{}/{}", table::token(&b), table::token(&s))
            }
        })
        .collect();
    let mut header = vec!["layer".to_string()];
    header.extend(tokens.iter().cloned());
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = delta
        .iter()
        .enumerate()
        .map(|(l, row)| {
            let mut r = vec![l.to_string()];
            r.extend(row.iter().map(|d| format!("{d:+.3}")));
            r
        })
        .collect();
    let max = delta.iter().flatten().fold(0f32, |m, d| m.max(d.abs()));
    let mut heat = String::new();
    let plot = args
        .plot
        .clone()
        .or_else(|| std::env::var_os("VENE_PLOT").map(std::path::PathBuf::from));
    let plot_note = match &plot {
        Some(path) => {
            let labels: Vec<String> = base_ids
                .iter()
                .zip(&source_ids)
                .map(|(b, s)| {
                    let (b, s) = (lm.token(*b), lm.token(*s));
                    if b == s {
                        b
                    } else {
                        format!("{}/{}", b.trim(), s.trim())
                    }
                })
                .collect();
            let layers: Vec<usize> = (0..delta.len()).collect();
            let title = format!(
                "Patching {}: base answer {}, source answer {}",
                args.component,
                lm.token(a).trim(),
                lm.token(b).trim()
            );
            vene_cli::plots::plot_heat_map(&delta, &layers, &labels, &title, path)?;
            format!("wrote {}\n", path.display())
        }
        None => String::new(),
    };
    for (l, row) in delta.iter().enumerate() {
        let cells: String = row.iter().map(|d| shade(*d, max)).collect();
        heat += &format!("  layer {l:>2} |{cells}|\n");
    }
    let text = format!(
        "base answer {}, source answer {}\nlogit difference (base answer - source answer): \
         base run {base_diff:+.3}, source run {source_diff:+.3}\n\
         change of the logit difference when {} at (layer, position) comes from the source:\n{}\
         heat map (one column per position, ' .:+#' = |change| / {max:.3}):\n{heat}{plot_note}",
        table::token(&lm.token(a)),
        table::token(&lm.token(b)),
        args.component,
        table::render(&header_refs, &rows),
    );
    Ok(Report {
        base_answer: a,
        source_answer: b,
        base_diff,
        delta,
        text,
    })
}

fn main() {
    let args = Args::parse();
    common::run_main(
        "patching",
        Ok(args.model.clone()),
        |root| Ok(common::offline::write_model(root, 0)?.display().to_string()),
        |dir| Ok(run(&args, dir)?.text),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patching_the_last_layer_everywhere_the_prompts_differ_gives_the_source_run() {
        let root = common::temp_root("patching-test").unwrap();
        let dir = common::offline::write_model(&root, 4).unwrap();
        let args = Args::parse_from(["patching"]);
        let report = run(&args, dir.to_str().unwrap()).unwrap();
        let (layers, t) = (common::offline::LAYERS, 9);
        assert_eq!(report.delta.len(), layers);
        assert!(report.delta.iter().all(|r| r.len() == t));
        assert_ne!(report.base_answer, report.source_answer);
        // Before the city (positions 0..3) base and source runs are identical: no change.
        for row in &report.delta {
            for d in &row[..3] {
                assert!(d.abs() < 1e-5, "{d}");
            }
        }
        // The last layer's output at the last position is all the logits read: patching it
        // gives the source run's logit difference.
        let lm = load::model(dir.to_str().unwrap(), &vene_cli::backend::Backend::cpu()).unwrap();
        let (_, source) = lm.encode(&args.source).unwrap();
        let s = last_logits(&lm.model, &source)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let source_diff = value(&s, report.base_answer) - value(&s, report.source_answer);
        let last = report.delta[layers - 1][t - 1] + report.base_diff;
        assert!((last - source_diff).abs() < 1e-4, "{last} vs {source_diff}");
        assert!(report.text.contains("heat map"));
        assert_eq!(report.text.matches("  layer ").count(), layers);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn plot_writes_the_heat_map_picture() {
        let root = common::temp_root("patching-test-plot").unwrap();
        let dir = common::offline::write_model(&root, 4).unwrap();
        let path = root.join("heat.svg");
        let args = Args::parse_from(["patching", "--plot", path.to_str().unwrap()]);
        let report = run(&args, dir.to_str().unwrap()).unwrap();
        assert!(report
            .text
            .ends_with(&format!("wrote {}\n", path.display())));
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        // A row per layer, a column per position labelled with its token.
        for l in 0..common::offline::LAYERS {
            assert!(texts.contains(&format!("layer {l}").as_str()));
        }
        assert!(
            texts.contains(&"8") && texts.contains(&"Paris/Rome"),
            "{svg}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn prompts_of_different_lengths_are_an_error() {
        let root = common::temp_root("patching-test-len").unwrap();
        let dir = common::offline::write_model(&root, 4).unwrap();
        let args = Args::parse_from(["patching", "--source", "the cat sat"]);
        let err = run(&args, dir.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("same length"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn answers_differ_even_when_both_runs_agree() {
        assert_eq!(answers(&[0.0, 3.0, 1.0], &[0.0, 1.0, 3.0]), (1, 2));
        // Same top token: the source's answer is the one it raised most.
        assert_eq!(answers(&[0.0, 3.0, 1.0], &[2.0, 5.0, 1.5]), (1, 0));
    }
}
