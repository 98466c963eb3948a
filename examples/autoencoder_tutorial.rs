//! The vene tutorial: find an SAE feature that carries a causal variable, and test it with
//! interchange interventions, as RAVEL does. Runs offline in about 35 s (debug build, 2 cores):
//!
//! ```text
//! cargo run -p vene-examples --example autoencoder_tutorial
//! ```
//!
//! 1. Train a 2-layer GPT-2 on a synthetic entity-attribute task (32 entities, each with a color
//!    and a size; the prompt names an entity and an attribute, the answer is its value).
//! 2. Collect `block_output` activations at one layer and position (a Collect intervention).
//! 3. Train a sparse autoencoder on them.
//! 4. Wrap the model with `get_intervenable_with_autoencoder` and find the latents that carry
//!    the entity's color.
//! 5. Interchange those latents from source entities into base entities: the interchange
//!    intervention accuracy (IIA) on color, the isolation on size; compare with a full
//!    `block_output` (Vanilla) interchange.
//! 6. Save the intervenable model, load it back, check the outputs are the same.
//!
//! docs/tutorial.md walks through this file step by step, with the output of a real run.
//!
//! With `--model` and `--sae` steps 2-6 run on a real model and a pretrained SAE instead (the
//! task becomes city prompts, the variable the city's country; see `tutorial/real_model.rs`):
//!
//! ```text
//! cargo run --release -p vene-examples --example autoencoder_tutorial -- \
//!     --model openai-community/gpt2 \
//!     --sae jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre
//! ```

#[path = "common/mod.rs"]
mod common;
#[path = "tutorial/real_model.rs"]
mod real_model;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vene::autoencoder::{metrics, train, Autoencoder, AutoencoderLayer, TrainConfig};
use vene::hooks::Component;
use vene::models::{Gpt2Config, LanguageModel, Model};
use vene::{
    get_intervenable_with_autoencoder, ForwardRequest, IntervenableConfig, IntervenableModel,
    LogitsAt, RepresentationConfig, Subspaces, UnitLocations,
};
use vene_cli::{CliError, Result};

/// Knobs of the tutorial (the smoke test runs it with small step counts).
#[derive(Debug, Clone, Parser)]
struct Options {
    /// Seed of everything random (weights, SAE init, source pairing).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most training steps of the GPT-2 (stops earlier once every answer is right).
    #[arg(long, default_value_t = 400)]
    model_steps: usize,
    /// Training steps of the SAE.
    #[arg(long, default_value_t = 1500)]
    sae_steps: usize,
    /// Latents of the SAE.
    #[arg(long, default_value_t = 128)]
    latent_dim: usize,
    /// L1 coefficient of the SAE.
    #[arg(long, default_value_t = 0.1)]
    l1: f64,
    /// How many latents to interchange.
    #[arg(long, default_value_t = 8)]
    n_dims: usize,
    /// Where to save the intervenable model (default: a temporary folder).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// A real model (folder or hub repo id) for steps 2-6, with `--sae`.
    #[arg(long, requires = "sae")]
    model: Option<String>,
    /// A pretrained SAE (folder, file, or hub path `org/repo/path-in-repo`), with `--model`.
    #[arg(long, requires = "model")]
    sae: Option<String>,
    /// Layer of the real model (default: the SAE's).
    #[arg(long)]
    layer: Option<usize>,
    /// Component of the real model (default: the SAE's hook).
    #[arg(long)]
    component: Option<Component>,
    /// Device and precision of the real model and SAE (--device, --dtype, --sae-dtype).
    #[command(flatten)]
    backend: vene_cli::backend::BackendArgs,
}

// ---------------------------------------------------------------- step 1: the task and model

const FILLERS: [&str; 4] = ["the", "so", "now", "well"];
const COLORS: [&str; 4] = ["red", "green", "blue", "yellow"];
const SIZES: [&str; 3] = ["small", "medium", "large"];
const N_ENTITIES: usize = 32;
/// Entities held out of the latent search, on which the interventions are scored (RAVEL's
/// split).
const N_HELD_OUT: usize = 8;
/// Prompts are `[filler, entity, attribute]`; the answer is predicted at the last token.
const LAST: usize = 2;
/// The layer whose `block_output` we intervene on.
const LAYER: usize = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attribute {
    Color,
    Size,
}

/// One prompt: a filler word, an entity, the attribute asked about.
#[derive(Clone, Copy, Debug)]
struct Prompt {
    filler: usize,
    entity: usize,
    attribute: Attribute,
}

/// The synthetic world: a word-level vocabulary, and each entity's color and size.
struct World {
    vocab: Vec<String>,
}

impl World {
    fn new() -> Self {
        let mut vocab: Vec<String> = FILLERS.iter().map(|s| s.to_string()).collect();
        vocab.extend((0..N_ENTITIES).map(|i| format!("e{i:02}")));
        vocab.extend(["color", "size"].map(String::from));
        vocab.extend(COLORS.iter().chain(SIZES.iter()).map(|s| s.to_string()));
        Self { vocab }
    }
    fn color(&self, entity: usize) -> usize {
        entity % COLORS.len()
    }
    fn size(&self, entity: usize) -> usize {
        (entity / COLORS.len()) % SIZES.len()
    }
    fn id(&self, word: &str) -> u32 {
        self.vocab.iter().position(|w| w == word).unwrap_or(0) as u32
    }
    fn tokens(&self, p: Prompt) -> [u32; 3] {
        let attr = match p.attribute {
            Attribute::Color => "color",
            Attribute::Size => "size",
        };
        [
            p.filler as u32,
            (FILLERS.len() + p.entity) as u32,
            self.id(attr),
        ]
    }
    fn answer(&self, p: Prompt) -> u32 {
        match p.attribute {
            Attribute::Color => self.id(COLORS[self.color(p.entity)]),
            Attribute::Size => self.id(SIZES[self.size(p.entity)]),
        }
    }
    fn prompts(&self) -> Vec<Prompt> {
        let mut v = Vec::new();
        for entity in 0..N_ENTITIES {
            for filler in 0..FILLERS.len() {
                for attribute in [Attribute::Color, Attribute::Size] {
                    v.push(Prompt {
                        filler,
                        entity,
                        attribute,
                    });
                }
            }
        }
        v
    }
    /// Token ids `[n, 3]` and answers `[n]`.
    fn batch(&self, prompts: &[Prompt], device: &Device) -> Result<(Tensor, Tensor)> {
        let ids: Vec<u32> = prompts.iter().flat_map(|p| self.tokens(*p)).collect();
        let answers: Vec<u32> = prompts.iter().map(|p| self.answer(*p)).collect();
        Ok((
            Tensor::from_vec(ids, (prompts.len(), 3), device)?,
            Tensor::from_vec(answers, prompts.len(), device)?,
        ))
    }
}

/// The predicted token at the last position of each prompt, from logits `[n, 3, vocab]`.
fn predictions(logits: &Tensor) -> Result<Vec<u32>> {
    // the last row given (interchanges ask for the last position's logits only)
    Ok(logits
        .get_on_dim(1, logits.dim(1)? - 1)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?)
}

/// Step 1: a 2-layer GPT-2 (width 64) trained on every prompt until it answers all of them.
fn train_model(world: &World, opts: &Options, device: &Device) -> Result<(Model, f64, usize)> {
    let cfg = Gpt2Config {
        n_positions: 8,
        ..Gpt2Config::tiny(world.vocab.len(), 64, 2, 4)
    };
    let (model, varmap) = Model::seeded_gpt2(&cfg, opts.seed, device)?;
    let (ids, answers) = world.batch(&world.prompts(), device)?;
    let params = ParamsAdamW {
        lr: 3e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let (mut accuracy, mut steps) = (0.0, 0);
    while steps < opts.model_steps {
        let logits = model
            .forward(&ids, None, &mut vene::hooks::NoHooks)?
            .get_on_dim(1, LAST)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &answers)?;
        accuracy = logits
            .argmax(D::Minus1)?
            .eq(&answers)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        let loss_value = loss.to_scalar::<f32>()?;
        if steps % 50 == 0 {
            println!(
                "  step {steps:4}  loss {loss_value:.4}  accuracy {:5.1}%",
                accuracy * 100.0
            );
        }
        if accuracy == 1.0 && loss_value < 0.01 {
            break;
        }
        opt.backward_step(&loss)?;
        steps += 1;
    }
    println!(
        "  trained in {steps} steps: accuracy {:.1}%",
        accuracy * 100.0
    );
    Ok((model, accuracy, steps))
}

// ---------------------------------------------------------------- steps 2-6

/// SAE quality on the collected activations.
#[derive(Debug, Clone)]
struct SaeReport {
    mse: f64,
    l0: f64,
    explained_variance: f64,
    dead_fraction: f64,
}

/// One row of the RAVEL table.
#[derive(Debug, Clone)]
struct Row {
    method: String,
    /// Color queries whose answer became the source's color.
    iia_color: f64,
    /// Size queries whose answer stayed the base's size.
    isolation_size: f64,
}

impl Row {
    /// RAVEL's disentanglement score: the mean of cause (IIA) and isolation.
    fn disentangle(&self) -> f64 {
        (self.iia_color + self.isolation_size) / 2.0
    }
}

/// RAVEL's split of the entities: the latents are chosen on `train`, interventions are scored
/// on the `held_out` entities only (a seeded shuffle; `n_held_out` of `n`).
fn split_entities(n: usize, n_held_out: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(&mut StdRng::seed_from_u64(seed.wrapping_add(3)));
    let mut held_out = all.split_off(n - n_held_out.min(n));
    held_out.sort_unstable();
    all.sort_unstable();
    (all, held_out)
}

/// What a run of the tutorial measured (the smoke test checks it).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct Report {
    model_accuracy: f64,
    activations_shape: Vec<usize>,
    sae: SaeReport,
    color_dims: Vec<usize>,
    rows: Vec<Row>,
    reload_max_diff: f32,
}

/// Step 2: `block_output` of `LAYER` at the last token of every prompt, `[n, 64]`.
fn collect(model: &Model, ids: &Tensor) -> Result<Tensor> {
    let config = IntervenableConfig::new(vec![RepresentationConfig::new(
        LAYER,
        Component::BlockOutput,
    )
    .intervention_type("CollectIntervention")]);
    let collector = IntervenableModel::new(config, model.clone())?;
    let request = ForwardRequest::new(ids.clone()).locations(UnitLocations::base_position(LAST));
    let out = collector.forward(&request)?;
    let collected = out
        .collected
        .first()
        .ok_or_else(|| CliError::invalid("nothing collected"))?;
    Ok(collected.squeeze(1)?)
}

/// Step 3: an SAE trained on the activations, and its quality.
fn train_sae(acts: &Tensor, opts: &Options) -> Result<(AutoencoderLayer, SaeReport)> {
    let sae = AutoencoderLayer::seeded(acts.dim(1)?, opts.latent_dim, opts.seed, acts.device())?;
    let cfg = TrainConfig {
        lr: 3e-3,
        total_steps: Some(opts.sae_steps),
        l1_coefficient: opts.l1,
        l1_warm_up_steps: opts.sae_steps / 10,
        log_every: (opts.sae_steps / 5).max(1),
        ..Default::default()
    };
    // Mini-batches of 128 rows, drawn with the tutorial's seed.
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let n = acts.dim(0)?;
    let batches = std::iter::repeat_with(move || {
        let rows: Vec<u32> = (0..128).map(|_| rng.random_range(0..n as u32)).collect();
        let rows = Tensor::new(rows.as_slice(), acts.device())?;
        Ok(acts.index_select(&rows, 0)?)
    });
    train(&sae, batches, &cfg, |p| {
        println!(
            "  step {:5}  mse {:.4}  L0 {:5.1}  explained variance {:.3}  dead {:.2}",
            p.step, p.mse, p.l0, p.explained_variance, p.dead_fraction
        )
    })?;
    let (recon, z) = sae.forward(acts, true)?;
    let z = z.ok_or_else(|| CliError::invalid("no latents"))?;
    let report = SaeReport {
        mse: metrics::mse(acts, &recon)?,
        l0: metrics::l0(&z)?,
        explained_variance: metrics::explained_variance(acts, &recon)?,
        dead_fraction: metrics::dead_fraction(&z)?,
    };
    Ok((sae, report))
}

/// Step 4: the latents whose mean activation differs most between colors (on the color queries
/// of the `train` entities), relative to their spread.
fn color_latents(
    world: &World,
    prompts: &[Prompt],
    train: &[usize],
    z: &Tensor,
    k: usize,
) -> Result<Vec<usize>> {
    let classes: Vec<Option<usize>> = prompts
        .iter()
        .map(|p| {
            (p.attribute == Attribute::Color && train.contains(&p.entity))
                .then(|| world.color(p.entity))
        })
        .collect();
    class_latents(&classes, COLORS.len(), z, k)
}

/// The `k` latents of `z` `[n, latents]` that best separate the classes of the rows (rows with
/// no class are left out): the ratio of between-class variance to total variance, weighted by
/// the latent's spread.
fn class_latents(
    classes: &[Option<usize>],
    n_classes: usize,
    z: &Tensor,
    k: usize,
) -> Result<Vec<usize>> {
    let z = z.to_vec2::<f32>()?;
    let latent_dim = z.first().map_or(0, Vec::len);
    let rows: Vec<(usize, &Vec<f32>)> = classes
        .iter()
        .zip(&z)
        .filter_map(|(c, row)| c.map(|c| (c, row)))
        .collect();
    let mut scores: Vec<(f64, usize)> = (0..latent_dim)
        .map(|j| {
            let n = rows.len() as f64;
            let mean = rows.iter().map(|(_, r)| r[j] as f64).sum::<f64>() / n;
            let total: f64 = rows.iter().map(|(_, r)| (r[j] as f64 - mean).powi(2)).sum();
            let between: f64 = (0..n_classes)
                .map(|c| {
                    let class: Vec<f64> = rows
                        .iter()
                        .filter(|(cc, _)| *cc == c)
                        .map(|(_, r)| r[j] as f64)
                        .collect();
                    let m = class.iter().sum::<f64>() / class.len().max(1) as f64;
                    class.len() as f64 * (m - mean).powi(2)
                })
                .sum();
            // Dead or constant latents score 0; weight by the latent's spread so that a latent
            // that fires weakly but cleanly does not beat one that carries the variable.
            let score = if total > 1e-9 {
                between / total * total.sqrt()
            } else {
                0.0
            };
            (score, j)
        })
        .collect();
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(scores.into_iter().take(k).map(|(_, j)| j).collect())
}

/// (base, source) pairs: each base prompt gets a source prompt with the same filler and
/// attribute and an entity of `entities` with a different color and a different size (so that
/// both metrics count every pair). A base with no such entity is left out.
fn source_prompts(
    world: &World,
    prompts: &[Prompt],
    entities: &[usize],
    seed: u64,
) -> Vec<(Prompt, Prompt)> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    prompts
        .iter()
        .filter_map(|p| {
            let mut candidates: Vec<usize> = entities
                .iter()
                .copied()
                .filter(|&e| {
                    world.color(e) != world.color(p.entity) && world.size(e) != world.size(p.entity)
                })
                .collect();
            candidates.shuffle(&mut rng);
            candidates
                .first()
                .map(|&entity| (*p, Prompt { entity, ..*p }))
        })
        .collect()
}

/// Step 5: the RAVEL scores of interchanges run by `intervenable` (`subspaces` picks the dims).
fn score(
    world: &World,
    intervenable: &IntervenableModel<Model>,
    subspaces: Option<Subspaces>,
    bases: &[Prompt],
    sources: &[Prompt],
    method: &str,
) -> Result<(Row, Tensor)> {
    let device = intervenable.model().device().clone();
    let (base_ids, _) = world.batch(bases, &device)?;
    let (source_ids, _) = world.batch(sources, &device)?;
    let mut request = ForwardRequest::new(base_ids)
        .source(source_ids)
        .locations(UnitLocations::position(LAST))
        .logits(LogitsAt::Last);
    if let Some(s) = subspaces {
        request = request.subspaces(s);
    }
    let out = intervenable.forward(&request)?;
    let predicted = predictions(&out.intervened)?;
    let (mut follow, mut n_color, mut keep, mut n_size) = (0, 0, 0, 0);
    for ((b, s), pred) in bases.iter().zip(sources).zip(&predicted) {
        match b.attribute {
            Attribute::Color => {
                n_color += 1;
                follow += usize::from(*pred == world.answer(*s));
            }
            Attribute::Size => {
                n_size += 1;
                keep += usize::from(*pred == world.answer(*b));
            }
        }
    }
    let row = Row {
        method: method.to_string(),
        iia_color: follow as f64 / n_color.max(1) as f64,
        isolation_size: keep as f64 / n_size.max(1) as f64,
    };
    Ok((row, out.intervened))
}

fn run(opts: &Options) -> Result<Report> {
    let device = Device::Cpu;
    let world = World::new();
    let prompts = world.prompts();

    println!(
        "Step 1: train a 2-layer GPT-2 on {} entity-attribute prompts",
        prompts.len()
    );
    let (model, model_accuracy, _) = train_model(&world, opts, &device)?;

    println!("Step 2: collect block_output of layer {LAYER} at the last token");
    let (ids, _) = world.batch(&prompts, &device)?;
    let acts = collect(&model, &ids)?;
    println!("  activations {:?}", acts.dims());

    println!("Step 3: train an SAE with {} latents", opts.latent_dim);
    let (sae, sae_report) = train_sae(&acts, opts)?;
    println!(
        "  MSE {:.4}  L0 {:.1}  explained variance {:.3}  dead latents {:.1}%",
        sae_report.mse,
        sae_report.l0,
        sae_report.explained_variance,
        sae_report.dead_fraction * 100.0
    );

    let (train_entities, held_out) = split_entities(N_ENTITIES, N_HELD_OUT, opts.seed);
    println!(
        "Step 4: find the latents that carry the color, on {} training entities",
        train_entities.len()
    );
    let z = sae.encode(&acts)?;
    let color_dims = color_latents(&world, &prompts, &train_entities, &z, opts.n_dims)?;
    println!("  color latents: {color_dims:?}");
    let intervenable =
        get_intervenable_with_autoencoder(model.clone(), sae, color_dims.clone(), LAYER)?;

    let test_prompts: Vec<Prompt> = prompts
        .iter()
        .copied()
        .filter(|p| held_out.contains(&p.entity))
        .collect();
    let (bases, sources): (Vec<Prompt>, Vec<Prompt>) =
        source_prompts(&world, &test_prompts, &held_out, opts.seed)
            .into_iter()
            .unzip();
    if bases.is_empty() {
        return Err(CliError::invalid(
            "no held-out entity has a source entity of another color and size",
        ));
    }
    println!(
        "Step 5: interchange interventions, source entity -> base entity, on the {} held-out \
         entities ({} pairs)",
        held_out.len(),
        bases.len()
    );
    let (sae_row, sae_logits) = score(
        &world,
        &intervenable,
        None,
        &bases,
        &sources,
        &format!("SAE, {} color latents", color_dims.len()),
    )?;
    let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(2));
    let mut all: Vec<usize> = (0..opts.latent_dim).collect();
    all.shuffle(&mut rng);
    let random_dims: Vec<usize> = all.into_iter().take(color_dims.len()).collect();
    let (random_row, _) = score(
        &world,
        &intervenable,
        Some(Subspaces::Ids(random_dims)),
        &bases,
        &sources,
        &format!("SAE, {} random latents", color_dims.len()),
    )?;
    let vanilla_cfg = IntervenableConfig::new(vec![RepresentationConfig::new(
        LAYER,
        Component::BlockOutput,
    )]);
    let vanilla = IntervenableModel::new(vanilla_cfg, model.clone())?;
    let (vanilla_row, _) = score(
        &world,
        &vanilla,
        None,
        &bases,
        &sources,
        "Vanilla, all 64 dims of block_output",
    )?;
    let rows = vec![sae_row, random_row, vanilla_row];
    print_rows(&rows, "IIA (color)", "isolation (size)");

    println!("Step 6: save the intervenable model and load it back");
    // Without --out, a temporary folder, removed at the end.
    let tmp = match &opts.out {
        Some(_) => None,
        None => Some(TempDir::new()?),
    };
    let dir = match (&opts.out, &tmp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.0.join("color-intervention"),
        (None, None) => unreachable!("a temporary folder is made when --out is not given"),
    };
    // --out may hold the save of an earlier run: replace it (a folder of other files is
    // never replaced).
    intervenable.save_with(&dir, &vene::SaveOptions::default().overwrite(true))?;
    let loaded = IntervenableModel::load(&dir, model.clone())?;
    let (_, reloaded_logits) = score(&world, &loaded, None, &bases, &sources, "reloaded")?;
    let reload_max_diff = (&sae_logits - &reloaded_logits)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    println!(
        "  saved to {}{}; max |logit difference| after reload: {reload_max_diff}",
        dir.display(),
        if tmp.is_some() {
            " (removed at exit)"
        } else {
            ""
        }
    );

    Ok(Report {
        model_accuracy,
        activations_shape: acts.dims().to_vec(),
        sae: sae_report,
        color_dims,
        rows,
        reload_max_diff,
    })
}

/// Prints the RAVEL table: cause (IIA), isolation, and their mean, RAVEL's disentanglement
/// score.
fn print_rows(rows: &[Row], iia: &str, isolation: &str) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.method.clone(),
                format!("{:.1}%", r.iia_color * 100.0),
                format!("{:.1}%", r.isolation_size * 100.0),
                format!("{:.1}%", r.disentangle() * 100.0),
            ]
        })
        .collect();
    let header = ["intervention", iia, isolation, "disentangle (mean)"];
    for line in vene_cli::table::render(&header, &rows).lines() {
        println!("  {line}");
    }
}

/// A fresh folder under the system's temporary directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("vene-tutorial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(CliError::io(&dir))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let opts = Options::parse();
    let start = std::time::Instant::now();
    let result = match (&opts.model, &opts.sae) {
        (Some(model), Some(sae)) => real_model::run(&opts, model, sae),
        _ => run(&opts),
    };
    match result {
        Ok(_) => println!("done in {:.1} s", start.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_runs_end_to_end_with_few_steps() {
        let dir = std::env::temp_dir().join(format!("vene-tutorial-test-{}", std::process::id()));
        let opts = Options {
            seed: 3,
            model_steps: 40,
            sae_steps: 40,
            latent_dim: 32,
            l1: 3e-3,
            n_dims: 3,
            out: Some(dir.clone()),
            model: None,
            sae: None,
            layer: None,
            component: None,
            backend: Default::default(),
        };
        let report = run(&opts).unwrap();
        assert!((0.0..=1.0).contains(&report.model_accuracy));
        assert_eq!(
            report.activations_shape,
            vec![N_ENTITIES * FILLERS.len() * 2, 64]
        );
        assert!(report.sae.mse.is_finite() && report.sae.l0 >= 0.0 && report.sae.l0 <= 32.0);
        assert!(report.sae.explained_variance <= 1.0);
        assert!((0.0..=1.0).contains(&report.sae.dead_fraction));
        assert_eq!(report.color_dims.len(), 3);
        assert!(report.color_dims.iter().all(|&d| d < 32));
        assert_eq!(report.rows.len(), 3);
        for r in &report.rows {
            assert!((0.0..=1.0).contains(&r.iia_color) && (0.0..=1.0).contains(&r.isolation_size));
        }
        assert!(dir.join("config.json").is_file());
        assert_eq!(report.reload_max_diff, 0.0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Options of the real-model path on `model` and `sae`, saving into `out`.
    fn real_options(
        model: &std::path::Path,
        sae: &std::path::Path,
        out: &std::path::Path,
    ) -> Options {
        Options::parse_from([
            "tutorial",
            "--model",
            model.to_str().unwrap(),
            "--sae",
            sae.to_str().unwrap(),
            "--n-dims",
            "4",
            "--out",
            out.to_str().unwrap(),
        ])
    }

    fn run_real(opts: &Options) -> Result<Report> {
        real_model::run(
            opts,
            opts.model.as_deref().unwrap(),
            opts.sae.as_deref().unwrap(),
        )
    }

    #[test]
    fn steps_2_to_6_run_on_a_model_folder_and_a_saelens_sae() {
        let root = common::temp_root("tutorial-real-test").unwrap();
        // `vene demo`'s folders: a GPT-2 trained on the city facts, and an SAE trained by
        // `train-sae` on its `block_output` of layer 0 (SAELens's `blocks.0.hook_resid_post`).
        let demo = vene_cli::demo::write_demo(&root.join("demo"), 0, 300).unwrap();
        let opts = real_options(&demo.model, &demo.sae, &root.join("saved"));
        let report = run_real(&opts).unwrap();
        let d = common::offline::WIDTH;
        // The demo model was trained to answer all 40 prompts (20 cities x 2 attributes).
        assert_eq!(report.model_accuracy, 1.0);
        assert_eq!(report.activations_shape, vec![40, d]);
        assert!(report.sae.mse.is_finite() && report.sae.l0 <= (4 * d) as f64);
        assert!(report.sae.explained_variance > 0.5, "{:?}", report.sae);
        assert_eq!(report.color_dims.len(), 4);
        assert!(report.color_dims.iter().all(|&j| j < 4 * d));
        assert_eq!(report.rows.len(), 3);
        assert!(report.rows[2]
            .method
            .starts_with("Vanilla, all 32 dims of block_output"));
        for r in &report.rows {
            assert!((0.0..=1.0).contains(&r.iia_color) && (0.0..=1.0).contains(&r.isolation_size));
            assert_eq!(r.disentangle(), (r.iia_color + r.isolation_size) / 2.0);
        }
        // The SAELens standard SAE becomes pyvene's AutoencoderLayer: saved, reloaded, same.
        assert!(root.join("saved").join("config.json").is_file());
        assert_eq!(report.reload_max_diff, 0.0);
        std::fs::remove_dir_all(root).unwrap();
    }

    /// Degenerate inputs stop with a message instead of printing scores about nothing.
    #[test]
    fn degenerate_real_model_inputs_are_refused() {
        let root = common::temp_root("tutorial-degenerate-test").unwrap();
        let model = common::offline::write_trained_model(&root, 0, 0).unwrap();
        let d = common::offline::WIDTH;
        // An SAE that was never trained: worse than the mean.
        let sae = common::offline::write_sae(&root, d, 4 * d, 1, Component::BlockInput, 9).unwrap();
        let err = run_real(&real_options(&model, &sae, &root.join("a")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("worse than their mean"), "{err}");
        assert!(!root.join("a").exists());
        // A tokenizer that knows none of the cities: every city is `<unk>`.
        let path = model.join("tokenizer.json");
        let mut tok: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
        for c in &common::cities::CITIES {
            vocab.remove(c.name);
        }
        std::fs::write(&path, tok.to_string()).unwrap();
        let err = run_real(&real_options(&model, &sae, &root.join("b")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only 0 of the 20 cities"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn without_out_the_temporary_folder_is_removed() {
        let opts = Options::parse_from([
            "tutorial",
            "--model-steps",
            "3",
            "--sae-steps",
            "3",
            "--latent-dim",
            "16",
            "--n-dims",
            "2",
        ]);
        run(&opts).unwrap();
        let tmp = std::env::temp_dir().join(format!("vene-tutorial-{}", std::process::id()));
        assert!(!tmp.exists(), "{} left behind", tmp.display());
    }

    #[test]
    fn model_without_sae_is_refused_by_the_parser() {
        assert!(Options::try_parse_from(["tutorial", "--model", "gpt2"]).is_err());
    }

    #[test]
    fn every_source_differs_in_color_and_size() {
        let world = World::new();
        let prompts = world.prompts();
        let (train, held_out) = split_entities(N_ENTITIES, N_HELD_OUT, 0);
        assert_eq!(
            (train.len(), held_out.len()),
            (N_ENTITIES - N_HELD_OUT, N_HELD_OUT)
        );
        let mut all: Vec<usize> = train.iter().chain(&held_out).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..N_ENTITIES).collect::<Vec<_>>());
        let pairs = source_prompts(&world, &prompts, &held_out, 0);
        assert_eq!(pairs.len(), prompts.len());
        for (b, s) in &pairs {
            assert!(held_out.contains(&s.entity));
            assert_ne!(world.color(b.entity), world.color(s.entity));
            assert_ne!(world.size(b.entity), world.size(s.entity));
            assert_eq!((b.filler, b.attribute), (s.filler, s.attribute));
        }
    }
}
