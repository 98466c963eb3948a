//! `vene dashboard`: a static HTML page per SAE latent (top-activating contexts over a
//! corpus, activation histogram, density, logit effects) and an index.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use candle_core::DType;
use vene::hooks::Component;
use vene::models::LanguageModel;

use crate::dashboard::html::{self, Context, LatentPage};
use crate::dashboard::{histogram, logit_effects, top_activations};
use crate::load::LoadedModel;
use crate::{load, table, CliError, Result};

/// The largest corpus file read (bytes).
pub const MAX_CORPUS_BYTES: u64 = 64 << 20;

/// The most latents one run makes pages for.
pub const MAX_LATENTS: usize = 1000;

/// Bins of the activation histogram.
pub const HISTOGRAM_BINS: usize = 40;

/// Arguments of `vene dashboard`.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// The model, the SAE and its site, the corpus and its chunking, device and BOS.
    #[command(flatten)]
    pub input: crate::sae_on_text::SaeOnTextArgs,
    /// A latent to make a page for (repeat for more: `--latent 3 --latent 7`).
    #[arg(long = "latent", required = true)]
    pub latents: Vec<usize>,
    /// The folder to write the pages and index.html into (created if missing; pages of the
    /// same latents are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Top-activating tokens shown per latent.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Tokens of context shown on each side of an activating token.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Also draw the feature-density histogram of all the SAE's latents over the corpus to
    /// this file (`.png` or `.svg`).
    #[arg(long)]
    pub density_plot: Option<PathBuf>,
}

/// The corpus run through the model: per text, its tokens and the chosen latents' values.
struct Activations {
    /// Per text: (line number, token ids).
    texts: Vec<(usize, Vec<u32>)>,
    /// `[latent][text][position]`.
    values: Vec<Vec<Vec<f32>>>,
    /// With every latent counted: tokens where each latent of the SAE is > 0.
    fired_all: Option<Vec<f64>>,
}

/// Reads the corpus (size-checked) and collects the latents' activations on every token.
fn activations(
    lm: &LoadedModel,
    ae: &dyn vene::autoencoder::Autoencoder,
    path: &Path,
    (layer, component): (usize, Component),
    latents: &[usize],
    chunk: usize,
    count_all: bool,
) -> Result<Activations> {
    let size = std::fs::metadata(path).map_err(CliError::io(path))?.len();
    if size > MAX_CORPUS_BYTES {
        return Err(CliError::invalid(format!(
            "{}: {size} bytes, more than the {MAX_CORPUS_BYTES} a corpus may have",
            path.display()
        )));
    }
    let file = std::fs::File::open(path).map_err(CliError::io(path))?;
    let mut out = Activations {
        texts: Vec::new(),
        values: vec![Vec::new(); latents.len()],
        fired_all: count_all.then(|| vec![0.0; ae.latent_dim()]),
    };
    let bos = match lm.prepend_bos {
        Some(true) => Some(lm.tokenizer.bos_token_id().map_err(CliError::from)?),
        _ => None,
    };
    let mut kept = 0usize;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(CliError::io(path))?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let at_line = |e: CliError| {
            CliError::invalid(format!("{}:{}: {}", path.display(), i + 1, e.one_line()))
        };
        let (ids, _) = lm.encode(text).map_err(at_line)?;
        kept += ids.len();
        if vene::autoencoder::limits::checked_elements(&[kept, latents.len().max(1)]).is_none() {
            return Err(CliError::invalid(format!(
                "{}: the activations of {} latents up to line {} are more than the {} values \
                 allowed; use a shorter corpus or fewer latents",
                path.display(),
                latents.len(),
                i + 1,
                vene::autoencoder::limits::MAX_NEW_TENSOR_ELEMENTS
            )));
        }
        let mut all_ids = Vec::with_capacity(ids.len());
        let mut rows: Vec<Vec<f32>> = vec![Vec::with_capacity(ids.len()); latents.len()];
        for piece in super::train_sae::chunk_ids(&ids, chunk, bos) {
            let t = candle_core::Tensor::new(piece.as_slice(), lm.model.device())?.unsqueeze(0)?;
            let acts = super::collect_all(&lm.model, layer, component, &t).map_err(at_line)?;
            if let Some(fired) = out.fired_all.as_mut() {
                let counts = ae
                    .encode(&acts)?
                    .gt(0.0)?
                    .to_dtype(DType::F32)?
                    .sum(0)?
                    .to_vec1::<f32>()?;
                for (f, c) in fired.iter_mut().zip(counts) {
                    *f += f64::from(c);
                }
            }
            // [T, latents]: one column per chosen latent.
            let z = ae
                .encode_selected(&acts, latents)?
                .to_dtype(DType::F32)?
                .t()?
                .contiguous()?
                .to_vec2::<f32>()?;
            for (row, col) in rows.iter_mut().zip(z) {
                row.extend(col);
            }
            all_ids.extend(piece);
        }
        for (v, row) in out.values.iter_mut().zip(rows) {
            v.push(row);
        }
        out.texts.push((i + 1, all_ids));
    }
    if out.texts.is_empty() {
        return Err(CliError::invalid(format!(
            "{}: no text (one text per line)",
            path.display()
        )));
    }
    Ok(out)
}

/// The latents asked for, in order, without repeats, each checked against the SAE's count.
fn checked_latents(latents: &[usize], n: usize) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = Vec::new();
    for &l in latents {
        if l >= n {
            return Err(CliError::invalid(format!(
                "--latent {l} is out of range: the SAE has {n} latents (0..={})",
                n.saturating_sub(1)
            )));
        }
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.len() > MAX_LATENTS {
        return Err(CliError::invalid(format!(
            "{} latents asked for; one run makes at most {MAX_LATENTS} pages",
            out.len()
        )));
    }
    Ok(out)
}

/// Runs `vene dashboard`: writes `latent-<i>.html` for each `--latent` and `index.html`
/// into `--out` (each file atomically) and returns a summary table.
pub fn run(args: &DashboardArgs) -> Result<String> {
    if args.top == 0 {
        return Err(CliError::invalid("--top must be at least 1"));
    }
    if let Some(path) = &args.density_plot {
        crate::plots::PlotFormat::from_path(path)?;
    }
    let crate::sae_on_text::OpenedSae {
        backend,
        lm,
        sae,
        site,
        chunk,
    } = args.input.open()?;
    let (layer, component) = (site.layer, site.component);
    let ae = load::sae_for(&lm.model, sae, component, &backend)?;
    let latents = checked_latents(&args.latents, ae.latent_dim())?;
    let acts = activations(
        &lm,
        ae.as_ref(),
        &args.input.text,
        (layer, component),
        &latents,
        chunk,
        args.density_plot.is_some(),
    )?;
    let n_tokens: usize = acts.texts.iter().map(|(_, ids)| ids.len()).sum();
    let sae_line = format!(
        "SAE {} at layer {layer} {component} ({} latents)",
        args.input.sae_name(),
        ae.latent_dim()
    );
    let corpus_line = format!(
        "corpus {}: {} texts, {n_tokens} tokens",
        args.input.text.display(),
        acts.texts.len()
    );
    let unembedding = lm.model.unembedding();
    let mut pages = Vec::with_capacity(latents.len());
    for (&latent, values) in latents.iter().zip(&acts.values) {
        let direction = super::steer::decoder_direction(ae.as_ref(), latent)?;
        let effects = logit_effects(&direction, unembedding, 10)?;
        let named = |v: Vec<(u32, f32)>| -> Vec<(String, f32)> {
            v.into_iter().map(|(id, e)| (lm.token(id), e)).collect()
        };
        let flat: Vec<f32> = values.iter().flatten().copied().collect();
        let (counts, max) = histogram(&flat, HISTOGRAM_BINS);
        let contexts = top_activations(values, args.top)
            .into_iter()
            .map(|hit| {
                let (line, ids) = &acts.texts[hit.text];
                let row = &values[hit.text];
                let start = hit.pos.saturating_sub(args.window);
                let end = (hit.pos + args.window + 1).min(ids.len());
                Context {
                    text: hit.text,
                    line: *line,
                    pos: hit.pos,
                    value: hit.value,
                    tokens: (start..end).map(|p| (lm.token(ids[p]), row[p])).collect(),
                    center: hit.pos - start,
                }
            })
            .collect();
        pages.push(LatentPage {
            latent,
            sae: sae_line.clone(),
            corpus: corpus_line.clone(),
            tokens: n_tokens,
            fired: flat.iter().filter(|v| **v > 0.0).count(),
            contexts,
            histogram: counts,
            max,
            positive: named(effects.positive),
            negative: named(effects.negative),
        });
    }
    std::fs::create_dir_all(&args.out).map_err(CliError::io(&args.out))?;
    let write = |name: &str, text: &str| {
        let path = args.out.join(name);
        vene::autoencoder::atomic::write_file(&path, text.as_bytes()).map_err(CliError::io(&path))
    };
    for p in &pages {
        write(&p.file_name(), &html::latent_page(p))?;
    }
    write(
        "index.html",
        &html::index_page(&pages, &sae_line, &corpus_line),
    )?;
    let mut wrote = format!(
        "wrote {} pages and index.html to {}\n",
        pages.len(),
        args.out.display()
    );
    if let (Some(path), Some(fired)) = (&args.density_plot, &acts.fired_all) {
        let densities: Vec<f64> = fired.iter().map(|f| f / n_tokens.max(1) as f64).collect();
        crate::plots::plot_feature_density(&densities, path)?;
        let dead = densities.iter().filter(|d| **d == 0.0).count();
        wrote += &format!(
            "wrote {} (feature density of {} latents, {dead} dead on this corpus)\n",
            path.display(),
            densities.len()
        );
    }
    let rows: Vec<Vec<String>> = pages
        .iter()
        .map(|p| {
            let top = p
                .contexts
                .first()
                .and_then(|c| c.tokens.get(c.center))
                .map(|(t, _)| table::token(t))
                .unwrap_or_default();
            vec![
                p.latent.to_string(),
                format!("{:.4}", p.density()),
                format!("{:.4}", p.max),
                top,
                p.file_name(),
            ]
        })
        .collect();
    Ok(format!("{sae_line}; {corpus_line}\n")
        + &table::render(&["latent", "density", "max", "top token", "page"], &rows)
        + &wrote)
}
