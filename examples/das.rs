//! Distributed alignment search (DAS): train a rotated-space intervention so that
//! interchanging a learned subspace at the city's token moves the city's country from a
//! source prompt into a base prompt. Prints the loss curve and the interchange intervention
//! accuracy (IIA) on held-out pairs, before and after training.
//!
//! ```text
//! cargo run -p vene-examples --example das
//! cargo run --release -p vene-examples --example das -- --model openai-community/gpt2 --layer 6 --rank 1
//! ```
//!
//! Without `--model` it runs offline: it first trains a seeded tiny GPT-2 on the city prompts
//! (so that it knows each city's country), written to a temporary folder.

#[path = "common/mod.rs"]
mod common;

use candle_core::{Tensor, D};
use candle_nn::ParamsAdamW;
use clap::Parser;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vene::hooks::{Component, HookableModel};
use vene::models::{LanguageModel, Model};
use vene::{
    last_position_cross_entropy, ForwardRequest, IntervenableConfig, IntervenableModel, LogitsAt,
    RepresentationConfig, UnitLocations,
};
use vene_cli::backend::BackendArgs;
use vene_cli::{load, CliError, Result};

use common::cities::{self, Attribute, CITIES};

/// DAS on `The city of X is in the country of`: which subspace carries the country?
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Model folder or hub repo id (default: an offline tiny GPT-2 trained on the prompts).
    #[arg(long)]
    model: Option<String>,
    /// Layer (default: the middle layer, rounded down).
    #[arg(long)]
    layer: Option<usize>,
    /// Component, at the city's token.
    #[arg(long, default_value = "block_output")]
    component: Component,
    /// Dimension of the learned subspace.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// Train a full rotation (RotatedSpaceIntervention, swapping its first `rank` dims)
    /// instead of a low-rank one (LowRankRotatedSpaceIntervention).
    #[arg(long)]
    full: bool,
    /// Training steps (each over every training pair).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Seed of the rotation's init and of the train/test split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most training steps of the offline model.
    #[arg(long, default_value_t = 400)]
    model_steps: usize,
    /// Device and precision (--device cpu|cuda[:N]|metal, --dtype f32|f16|bf16).
    #[command(flatten)]
    backend: BackendArgs,
}

/// What a run measured.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct Report {
    /// How often the model answers the country prompts right.
    model_accuracy: f64,
    /// Loss before each training step.
    losses: Vec<f32>,
    iia_before: f64,
    iia_after: f64,
    n_train: usize,
    n_test: usize,
}

/// Base and source prompts (indices into the encoded prompts) and the source's answer.
struct Pairs {
    base: Tensor,
    source: Tensor,
    labels: Tensor,
}

fn pairs(enc: &cities::Encoded, rows: &[(usize, usize)], model: &Model) -> Result<Pairs> {
    let (b, s): (Vec<usize>, Vec<usize>) = rows.iter().copied().unzip();
    let labels: Vec<u32> = s
        .iter()
        .filter_map(|&i| enc.answers.get(i).copied())
        .collect();
    Ok(Pairs {
        base: enc.batch(&b, model.device())?,
        source: enc.batch(&s, model.device())?,
        labels: Tensor::new(labels.as_slice(), model.device())?,
    })
}

fn request(p: &Pairs, position: usize) -> ForwardRequest {
    ForwardRequest::new(p.base.clone())
        .source(p.source.clone())
        .locations(UnitLocations::position(position))
        .logits(LogitsAt::Last)
}

/// Share of pairs whose intervened prediction is the source's answer.
fn iia(iv: &IntervenableModel<Model>, p: &Pairs, position: usize) -> Result<f64> {
    let logits = iv.forward(&request(p, position))?.intervened;
    let t = logits.dim(1)?;
    let pred = logits.get_on_dim(1, t - 1)?.argmax(D::Minus1)?;
    let right = pred.eq(&p.labels)?.to_dtype(candle_core::DType::F32)?;
    Ok(right.mean_all()?.to_scalar::<f32>()? as f64)
}

fn run(args: &Args, model_dir: &str) -> Result<(Report, String)> {
    let lm = load::model(model_dir, &args.backend.open()?)?;
    let n_layers = lm.model.n_layers();
    let layer = args.layer.unwrap_or(n_layers.saturating_sub(1) / 2);
    let enc = cities::encode(&lm, Attribute::Country)?;
    let mut out = format!(
        "{} city prompts (city at token {}), DAS at {} of layer {layer}\n",
        enc.cities.len(),
        enc.position,
        args.component
    );
    if !enc.skipped.is_empty() {
        out += &format!("  skipped (not one token): {}\n", enc.skipped.join(", "));
    }
    let all: Vec<usize> = (0..enc.cities.len()).collect();
    let logits = lm
        .model
        .forward_logits_at(
            &enc.batch(&all, lm.model.device())?,
            None,
            None,
            &LogitsAt::Last,
            &mut vene::hooks::NoHooks,
        )?
        .ok_or_else(|| CliError::invalid("the model returned no logits"))?;
    let t = logits.dim(1)?;
    let pred = logits
        .get_on_dim(1, t - 1)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?;
    let right = pred
        .iter()
        .zip(&enc.answers)
        .filter(|(p, a)| p == a)
        .count();
    let model_accuracy = right as f64 / pred.len() as f64;
    out += &format!("  the model answers {right} of {} right\n", pred.len());

    // Every ordered pair of cities in different countries; 80% train, 20% test.
    let country = |i: usize| {
        enc.cities
            .get(i)
            .and_then(|&c| CITIES.get(c))
            .map(|c| c.country)
    };
    let mut rows: Vec<(usize, usize)> = all
        .iter()
        .flat_map(|&b| all.iter().map(move |&s| (b, s)))
        .filter(|&(b, s)| country(b) != country(s))
        .collect();
    rows.shuffle(&mut StdRng::seed_from_u64(args.seed));
    let n_train = rows.len() * 4 / 5;
    let (train_rows, test_rows) = rows.split_at(n_train);
    if train_rows.is_empty() || test_rows.is_empty() {
        return Err(CliError::invalid("too few city pairs to train and test"));
    }
    let train = pairs(&enc, train_rows, &lm.model)?;
    let test = pairs(&enc, test_rows, &lm.model)?;

    let repr =
        RepresentationConfig::new(layer, args.component).hyperparam("seed", args.seed.into());
    let repr = if args.full {
        repr.intervention_type("RotatedSpaceIntervention")
            .hyperparam("interchange_dim", args.rank.into())
    } else {
        repr.intervention_type("LowRankRotatedSpaceIntervention")
            .low_rank_dimension(args.rank)
    };
    let iv = IntervenableModel::new(IntervenableConfig::new(vec![repr]), lm.model.clone())?;
    let kind = if args.full {
        "full rotation, first"
    } else {
        "low-rank"
    };
    out += &format!(
        "  {} train / {} test pairs; {kind} {} dims, {} trainable parameters\n",
        train_rows.len(),
        test_rows.len(),
        args.rank,
        iv.count_parameters()
    );
    let iia_before = iia(&iv, &test, enc.position)?;
    let mut opt = iv.adamw(ParamsAdamW {
        lr: args.lr,
        weight_decay: 0.0,
        ..Default::default()
    })?;
    let req = request(&train, enc.position);
    let mut losses = Vec::with_capacity(args.steps);
    let every = (args.steps / 10).max(1);
    for step in 0..args.steps {
        let loss = iv.train_step(&req, &mut opt, |l| {
            last_position_cross_entropy(l, &train.labels)
        })?;
        if step % every == 0 || step + 1 == args.steps {
            out += &format!("  step {step:4}  loss {loss:.4}\n");
        }
        losses.push(loss);
    }
    let iia_after = iia(&iv, &test, enc.position)?;
    out += &format!(
        "IIA on the test pairs: {:.1}% before training, {:.1}% after\n",
        iia_before * 100.0,
        iia_after * 100.0
    );
    let report = Report {
        model_accuracy,
        losses,
        iia_before,
        iia_after,
        n_train: train_rows.len(),
        n_test: test_rows.len(),
    };
    Ok((report, out))
}

fn main() {
    let args = Args::parse();
    common::run_main(
        "das",
        Ok(args.model.clone()),
        |root| {
            println!("training an offline tiny GPT-2 on the city prompts...");
            let dir = common::offline::write_trained_model(root, args.seed, args.model_steps)?;
            Ok(dir.display().to_string())
        },
        |dir| Ok(run(&args, dir)?.1),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn das_loss_drops_on_the_trained_offline_model() {
        let root = common::temp_root("das-test").unwrap();
        let dir = common::offline::write_trained_model(&root, 0, 400).unwrap();
        let args = Args::parse_from(["das", "--steps", "40", "--rank", "4"]);
        let (report, text) = run(&args, dir.to_str().unwrap()).unwrap();
        assert_eq!(report.model_accuracy, 1.0);
        assert_eq!(report.losses.len(), 40);
        let (first, last) = (report.losses[0], report.losses[39]);
        assert!(last < 0.5 * first, "loss {first} -> {last}");
        assert!(report.iia_after > report.iia_before);
        // 20 cities, 2 pairs of them share a country: 20*19 - 4 ordered pairs.
        assert_eq!(report.n_train + report.n_test, 376);
        assert!(text.contains("IIA on the test pairs"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_full_rank_swap_of_the_embedding_is_the_source_run() {
        // Swapping every dim of the city's embedding turns the base into the source: IIA is
        // the model's accuracy on the sources before any training.
        let root = common::temp_root("das-test-full").unwrap();
        let dir = common::offline::write_trained_model(&root, 0, 400).unwrap();
        let d = common::offline::WIDTH.to_string();
        let args = Args::parse_from([
            "das",
            "--component",
            "block_input",
            "--layer",
            "0",
            "--rank",
            &d,
            "--steps",
            "1",
        ]);
        let (report, _) = run(&args, dir.to_str().unwrap()).unwrap();
        assert_eq!(report.model_accuracy, 1.0);
        assert_eq!(report.iia_before, 1.0);
        std::fs::remove_dir_all(root).unwrap();
    }
}
