//! Steps 2-6 of the tutorial on a real model with a pretrained SAE (`--model`, `--sae`):
//! the task is the city prompts, the causal variable the city's country, isolation is
//! measured on its continent.

use std::sync::Arc;

use candle_core::{Device, Tensor, D};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vene::autoencoder::{metrics, Autoencoder, AutoencoderLayer, LoadedSae};
use vene::hooks::Component;
use vene::interventions::AutoencoderIntervention;
use vene::models::{LanguageModel, Model};
use vene::{
    get_intervenable_with_autoencoder, get_intervenable_with_custom_autoencoder, ForwardRequest,
    IntervenableConfig, IntervenableModel, LogitsAt, RepresentationConfig, Subspaces,
    UnitLocations,
};
use vene_cli::{load, CliError, Result};

use crate::common::cities::{self, Attribute, Encoded, CITIES};
use crate::{Options, Report, Row, SaeReport};

/// One prompt of the task: its attribute and the index of its row in that attribute's batch.
#[derive(Clone, Copy, Debug)]
struct Item {
    attribute: Attribute,
    row: usize,
}

/// The city (index into [`CITIES`]) of an item.
fn city(enc: &[Encoded; 2], it: Item) -> usize {
    let e = &enc[usize::from(it.attribute == Attribute::Continent)];
    e.cities.get(it.row).copied().unwrap_or(0)
}

/// The SAE as pyvene's `AutoencoderLayer` (saveable, trainable) when its files are a standard
/// SAE in SAELens's layout that computes exactly what the loaded SAE computes on `acts`.
fn as_layer(sae: &LoadedSae, acts: &Tensor) -> Option<AutoencoderLayer> {
    let w = candle_core::safetensors::load(&sae.weights_path, &Device::Cpu).ok()?;
    let t = |n: &str| w.get(n).cloned();
    let layer = AutoencoderLayer::from_tensors(
        t("W_enc")?.t().ok()?.contiguous().ok()?,
        t("b_enc")?,
        t("W_dec")?.t().ok()?.contiguous().ok()?,
        t("b_dec")?,
    )
    .ok()?;
    let a = layer.forward(acts, false).ok()?.0;
    let b = sae.autoencoder.forward(acts, false).ok()?.0;
    let diff = (a - b)
        .ok()?
        .abs()
        .ok()?
        .max_all()
        .ok()?
        .to_scalar::<f32>()
        .ok()?;
    let scale = acts.abs().ok()?.max_all().ok()?.to_scalar::<f32>().ok()?;
    (diff <= 1e-4 * (1.0 + scale)).then_some(layer)
}

/// An intervenable model swapping latents `dims` of the SAE at the site: the facade's helper
/// at `block_output` (`block_input` of layer l > 0 is `block_output` of layer l - 1), else an
/// `AutoencoderIntervention` placed by config.
fn wrap(
    model: &Model,
    layer: usize,
    component: Component,
    sae: Arc<dyn Autoencoder>,
    as_layer: Option<AutoencoderLayer>,
    dims: Vec<usize>,
) -> Result<IntervenableModel<Model>> {
    let helper_layer = match component {
        Component::BlockOutput => Some(layer),
        Component::BlockInput if layer > 0 => Some(layer - 1),
        _ => None,
    };
    Ok(match (helper_layer, as_layer) {
        (Some(l), Some(ae)) => get_intervenable_with_autoencoder(model.clone(), ae, dims, l)?,
        (Some(l), None) => get_intervenable_with_custom_autoencoder(model.clone(), sae, dims, l)?,
        (None, _) => {
            let iv = AutoencoderIntervention::new(sae)?.with_interchange_dim(dims)?;
            let repr = RepresentationConfig::new(layer, component).intervention(Arc::new(iv));
            IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone())?
        }
    })
}

/// The RAVEL scores of interchanges from `sources` into `bases` at the city's token.
#[allow(clippy::too_many_arguments)]
fn score(
    enc: &[Encoded; 2],
    iv: &IntervenableModel<Model>,
    subspaces: Option<Subspaces>,
    bases: &[Item],
    sources: &[Item],
    position: usize,
    method: &str,
) -> Result<(Row, Tensor)> {
    let device = iv.model().device().clone();
    let ids = |items: &[Item]| -> Result<Tensor> {
        let rows: Vec<Tensor> = items
            .iter()
            .map(|it| {
                enc[usize::from(it.attribute == Attribute::Continent)].batch(&[it.row], &device)
            })
            .collect::<Result<_>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    };
    let mut req = ForwardRequest::new(ids(bases)?)
        .source(ids(sources)?)
        .locations(UnitLocations::position(position))
        .logits(LogitsAt::Last);
    if let Some(s) = subspaces {
        req = req.subspaces(s);
    }
    let out = iv.forward(&req)?;
    let t = out.intervened.dim(1)?;
    let pred = out
        .intervened
        .get_on_dim(1, t - 1)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?;
    let answer = |it: &Item| {
        enc[usize::from(it.attribute == Attribute::Continent)]
            .answers
            .get(it.row)
            .copied()
    };
    let (mut follow, mut n_target, mut keep, mut n_other) = (0, 0, 0, 0);
    for ((b, s), p) in bases.iter().zip(sources).zip(&pred) {
        if b.attribute == Attribute::Country {
            n_target += 1;
            follow += usize::from(answer(s) == Some(*p));
        } else {
            n_other += 1;
            keep += usize::from(answer(b) == Some(*p));
        }
    }
    let row = Row {
        method: method.to_string(),
        iia_color: follow as f64 / n_target.max(1) as f64,
        isolation_size: keep as f64 / n_other.max(1) as f64,
    };
    Ok((row, out.intervened))
}

/// Steps 2-6 on `--model` with `--sae`.
pub fn run(opts: &Options, model_spec: &str, sae_spec: &str) -> Result<Report> {
    let backend = opts.backend.open()?;
    let lm = load::model(model_spec, &backend)?;
    let sae = load::sae(sae_spec)?;
    // The SAE's own site unless --layer/--component say otherwise (then with a warning).
    let site = load::sae_site(opts.layer, opts.component, &sae)?;
    if let Some(w) = &site.warning {
        println!("{w}");
    }
    let (layer, component) = (site.layer, site.component);
    let device = lm.model.device().clone();
    let enc = [
        cities::encode(&lm, Attribute::Country)?,
        cities::encode(&lm, Attribute::Continent)?,
    ];
    let position = enc[0].position;
    let same_shape = enc[1].position == position
        && enc[0].ids.first().map(Vec::len) == enc[1].ids.first().map(Vec::len);
    if !same_shape {
        return Err(CliError::invalid(
            "the country and continent prompts tokenize to different lengths",
        ));
    }
    let items: Vec<Item> = [Attribute::Country, Attribute::Continent]
        .iter()
        .zip(&enc)
        .flat_map(|(&attribute, e)| (0..e.cities.len()).map(move |row| Item { attribute, row }))
        .collect();

    println!(
        "Step 1: the model, {model_spec}, on {} city prompts",
        items.len()
    );
    let (mut right, mut total) = (0, 0);
    for e in &enc {
        let all: Vec<usize> = (0..e.cities.len()).collect();
        let logits = lm
            .model
            .forward(&e.batch(&all, &device)?, None, &mut vene::hooks::NoHooks)?;
        let t = logits.dim(1)?;
        let pred = logits
            .get_on_dim(1, t - 1)?
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?;
        right += pred.iter().zip(&e.answers).filter(|(p, a)| p == a).count();
        total += pred.len();
    }
    let model_accuracy = right as f64 / total.max(1) as f64;
    println!("  answers {right} of {total} right (country and continent prompts)");

    println!("Step 2: collect {component} of layer {layer} at the city's token ({position})");
    let collector = IntervenableModel::new(
        IntervenableConfig::new(vec![
            RepresentationConfig::new(layer, component).intervention_type("CollectIntervention")
        ]),
        lm.model.clone(),
    )?;
    let mut parts = Vec::new();
    for e in &enc {
        let all: Vec<usize> = (0..e.cities.len()).collect();
        let req = ForwardRequest::new(e.batch(&all, &device)?)
            .locations(UnitLocations::base_position(position));
        let out = collector.forward(&req)?;
        let c = out
            .collected
            .into_iter()
            .next()
            .ok_or_else(|| CliError::invalid("nothing collected"))?;
        parts.push(c.squeeze(1)?);
    }
    // Analysed in f32 whatever the model's dtype (the SAE casts to its own).
    let acts = Tensor::cat(&parts, 0)?.to_dtype(candle_core::DType::F32)?;
    println!("  activations {:?}", acts.dims());

    println!("Step 3: the pretrained SAE, {sae_spec}, on them");
    let layer_form = as_layer(&sae, &acts);
    let ae = load::sae_for(&lm.model, sae, component, &backend)?;
    let (recon, z) = ae.forward(&acts, true)?;
    let z = z.ok_or_else(|| CliError::invalid("no latents"))?;
    let sae_report = SaeReport {
        mse: metrics::mse(&acts, &recon)?,
        l0: metrics::l0(&z)?,
        explained_variance: metrics::explained_variance(&acts, &recon)?,
        dead_fraction: metrics::dead_fraction(&z)?,
    };
    println!(
        "  {} latents  MSE {:.4}  L0 {:.1}  explained variance {:.3}  dead latents {:.1}%",
        ae.latent_dim(),
        sae_report.mse,
        sae_report.l0,
        sae_report.explained_variance,
        sae_report.dead_fraction * 100.0
    );
    if sae_report.explained_variance.is_nan() || sae_report.explained_variance < 0.0 {
        return Err(CliError::invalid(format!(
            "the SAE reconstructs these activations worse than their mean does (explained \
             variance {:.3}): it was not trained on {component} of layer {layer} of this model; \
             pass the --layer and --component it was trained at, or another SAE",
            sae_report.explained_variance
        )));
    }

    let (train_cities, held_out) =
        crate::split_entities(CITIES.len(), CITIES.len() * 3 / 10, opts.seed);
    println!(
        "Step 4: find the latents that carry the country, on {} training cities",
        train_cities.len()
    );
    let countries: Vec<&str> = {
        let mut c: Vec<&str> = Vec::new();
        for city in &CITIES {
            if !c.contains(&city.country) {
                c.push(city.country);
            }
        }
        c
    };
    let classes: Vec<Option<usize>> = items
        .iter()
        .map(|&it| {
            let c = city(&enc, it);
            (it.attribute == Attribute::Country && train_cities.contains(&c)).then(|| {
                let country = CITIES.get(c).map_or("", |c| c.country);
                countries.iter().position(|c| *c == country).unwrap_or(0)
            })
        })
        .collect();
    let dims = crate::class_latents(&classes, countries.len(), &z, opts.n_dims)?;
    println!("  country latents: {dims:?}");
    let intervenable = wrap(
        &lm.model,
        layer,
        component,
        ae.clone(),
        layer_form,
        dims.clone(),
    )?;

    let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(1));
    let test_items: Vec<Item> = items
        .iter()
        .copied()
        .filter(|&it| held_out.contains(&city(&enc, it)))
        .collect();
    let (bases, sources): (Vec<Item>, Vec<Item>) = test_items
        .iter()
        .filter_map(|&b| {
            let bc = CITIES.get(city(&enc, b));
            let mut candidates: Vec<Item> = test_items
                .iter()
                .copied()
                .filter(|&s| s.attribute == b.attribute)
                .filter(|&s| {
                    let sc = CITIES.get(city(&enc, s));
                    sc.map(|c| c.country) != bc.map(|c| c.country)
                        && sc.map(|c| c.continent) != bc.map(|c| c.continent)
                })
                .collect();
            candidates.shuffle(&mut rng);
            candidates.first().map(|&s| (b, s))
        })
        .unzip();
    if bases.iter().all(|b| b.attribute != Attribute::Country)
        || bases.iter().all(|b| b.attribute != Attribute::Continent)
    {
        return Err(CliError::invalid(
            "too few held-out cities with a source of another country and continent to score \
             both attributes",
        ));
    }
    println!(
        "Step 5: interchange interventions, source city -> base city, on {} held-out cities \
         ({} pairs)",
        held_out.len(),
        bases.len()
    );
    let (sae_row, sae_logits) = score(
        &enc,
        &intervenable,
        None,
        &bases,
        &sources,
        position,
        &format!("SAE, {} country latents", dims.len()),
    )?;
    let mut all: Vec<usize> = (0..ae.latent_dim()).collect();
    all.shuffle(&mut StdRng::seed_from_u64(opts.seed.wrapping_add(2)));
    let random_dims: Vec<usize> = all.into_iter().take(dims.len()).collect();
    let (random_row, _) = score(
        &enc,
        &intervenable,
        Some(Subspaces::Ids(random_dims)),
        &bases,
        &sources,
        position,
        &format!("SAE, {} random latents", dims.len()),
    )?;
    let vanilla = IntervenableModel::new(
        IntervenableConfig::new(vec![RepresentationConfig::new(layer, component)]),
        lm.model.clone(),
    )?;
    let (vanilla_row, _) = score(
        &enc,
        &vanilla,
        None,
        &bases,
        &sources,
        position,
        &format!("Vanilla, all {} dims of {component}", ae.input_dim()),
    )?;
    let rows = vec![sae_row, random_row, vanilla_row];
    crate::print_rows(&rows, "IIA (country)", "isolation (continent)");

    println!("Step 6: save the intervenable model and load it back");
    // Without --out, a temporary folder, removed at the end.
    let tmp = match &opts.out {
        Some(_) => None,
        None => Some(crate::TempDir::new()?),
    };
    let dir = match (&opts.out, &tmp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.0.join("country-intervention"),
        (None, None) => unreachable!("a temporary folder is made when --out is not given"),
    };
    let reload_max_diff = match intervenable
        .save_with(&dir, &vene::SaveOptions::default().overwrite(true))
    {
        Ok(()) => {
            let loaded = IntervenableModel::load(&dir, lm.model.clone())?;
            let (_, logits) = score(&enc, &loaded, None, &bases, &sources, position, "reloaded")?;
            let diff = (&sae_logits - &logits)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            println!(
                "  saved to {}{}; max |logit difference| after reload: {diff}",
                dir.display(),
                if tmp.is_some() {
                    " (removed at exit)"
                } else {
                    ""
                }
            );
            diff
        }
        Err(e) => {
            println!("  not saved: {e}");
            f32::NAN
        }
    };
    Ok(Report {
        model_accuracy,
        activations_shape: acts.dims().to_vec(),
        sae: sae_report,
        color_dims: dims,
        rows,
        reload_max_diff,
    })
}
