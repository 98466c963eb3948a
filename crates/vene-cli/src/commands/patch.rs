//! `vene patch`: an interchange intervention from a source prompt into a base prompt, at one
//! position pair or at every position, at one layer or every layer, on whole components or
//! single heads, for one prompt pair or a file of them.

use std::path::PathBuf;

use candle_core::{DType, Tensor, D};
use vene::hooks::{Component, HookableModel, Unit};
use vene::models::{LanguageModel, Model};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, LogitsAt, RepresentationConfig, UnitLoc,
    UnitLocations,
};

use super::patch_args::{parse_position, parse_site, read_pairs, resolve_position, PositionSpec};
use crate::backend::BackendArgs;
use crate::load::LoadedModel;
use crate::{load, table, CliError, Result};

/// Arguments of `vene patch`.
#[derive(Debug, Clone, clap::Args)]
pub struct PatchArgs {
    /// Model folder (it needs tokenizer.json) or hub repo id `owner/name`.
    #[arg(long)]
    pub model: String,
    /// The base prompt (the run that is patched).
    #[arg(long, required_unless_present = "pairs", conflicts_with = "pairs")]
    pub base: Option<String>,
    /// The source prompt (where the activation comes from).
    #[arg(long, required_unless_present = "pairs", conflicts_with = "pairs")]
    pub source: Option<String>,
    /// A file of prompt pairs, one `base<TAB>source` per line (blank lines and lines
    /// starting with `#` are skipped): one row per pair and a mean row.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Component to patch (default: block_output, or head_attention_value_output when a
    /// head is given).
    #[arg(long)]
    pub component: Option<Component>,
    /// A layer index, or `all` for every layer.
    #[arg(long, default_value = "all")]
    pub layer: String,
    /// The head to patch, with a head component (head_attention_value_output,
    /// head_query_output, head_key_output, head_value_output).
    #[arg(long)]
    pub head: Option<usize>,
    /// A site in plain words instead of --layer/--head: `L5` (layer 5) or `L5H3` (layer 5,
    /// head 3).
    #[arg(long, conflicts_with_all = ["layer", "head"])]
    pub site: Option<String>,
    /// Which positions: `last` (default), `N` (source and base position N), `S:B` (source
    /// position S into base position B); negative numbers count from the end (-1: last);
    /// `all`: each position in turn (prompts of the same length), as a heat map.
    #[arg(long, default_value = "last", allow_hyphen_values = true)]
    pub position: String,
    /// Logit changes shown (single layer, single position, single pair).
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// With `--position all`: also draw the heat map to this file (`.png` or `.svg`); with
    /// `--pairs`, the mean heat map (pairs of one length).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Device and precision.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether prompts start with the BOS token.
    #[command(flatten)]
    pub bos: crate::bos::BosArgs,
}

/// Where the patch acts: a component, and a head of it for head components.
#[derive(Debug, Clone, Copy)]
struct Target {
    component: Component,
    head: Option<usize>,
}

impl Target {
    fn describe(&self) -> String {
        match self.head {
            Some(h) => format!("{} head {h}", self.component),
            None => self.component.to_string(),
        }
    }
}

/// One base/source pair, encoded, with the base's unpatched logits at its last position.
struct Pair {
    base_ids: Vec<u32>,
    base: Tensor,
    source_ids: Vec<u32>,
    source: Tensor,
    base_logits: Tensor,
    base_top: u32,
    source_top: u32,
}

impl Pair {
    fn new(lm: &LoadedModel, base: &str, source: &str) -> Result<Pair> {
        let (base_ids, base) = lm.encode(base)?;
        let (source_ids, source) = lm.encode(source)?;
        let base_logits = last_logits(&lm.model, &base)?;
        let base_top = argmax(&base_logits)?;
        let source_top = argmax(&last_logits(&lm.model, &source)?)?;
        Ok(Pair {
            base_ids,
            base,
            source_ids,
            source,
            base_logits,
            base_top,
            source_top,
        })
    }

    /// `logit[source top] - logit[base top]` of `logits`.
    fn logit_diff(&self, logits: &[f32]) -> f32 {
        at(logits, self.source_top) - at(logits, self.base_top)
    }

    /// The change of the logit difference that patching makes.
    fn delta_logit_diff(&self, patched: &Tensor) -> Result<f32> {
        let base = self.base_logits.to_vec1::<f32>()?;
        Ok(self.logit_diff(&patched.to_vec1::<f32>()?) - self.logit_diff(&base))
    }

    /// Source and base position of `spec` in this pair.
    fn positions(&self, spec: (i64, i64)) -> Result<(usize, usize)> {
        Ok((
            resolve_position(spec.0, self.source_ids.len(), "source")?,
            resolve_position(spec.1, self.base_ids.len(), "base")?,
        ))
    }

    /// The positions `--position all` visits: every one, same in source and base.
    fn all_positions(&self) -> Result<usize> {
        let (b, s) = (self.base_ids.len(), self.source_ids.len());
        if b != s {
            return Err(CliError::invalid(format!(
                "--position all needs a base and a source of the same length, but the base has \
                 {b} tokens and the source {s}"
            )));
        }
        Ok(b)
    }
}

/// Last-position logits of the base with source position `s` patched into base position `b`
/// at `layer` (the target's head only, for head components).
fn patched_last_logits(
    model: &Model,
    target: Target,
    layer: usize,
    pair: &Pair,
    (s, b): (usize, usize),
) -> Result<Tensor> {
    let mut repr = RepresentationConfig::new(layer, target.component);
    let locations = match target.head {
        Some(h) => {
            repr = repr.unit(Unit::HPos);
            let loc = |p: usize| Some(UnitLoc::head_positions(vec![vec![h]], vec![vec![p]]));
            UnitLocations::full(Some(vec![loc(s)]), vec![loc(b)])
        }
        None => UnitLocations::pair(s, b),
    };
    let iv = IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone())?;
    let req = ForwardRequest::new(pair.base.clone())
        .source(pair.source.clone())
        .locations(locations)
        .logits(LogitsAt::Last);
    let out = iv.forward(&req)?;
    Ok(out.intervened.get(0)?.get(0)?.to_dtype(DType::F32)?)
}

fn last_logits(model: &Model, ids: &Tensor) -> Result<Tensor> {
    let logits = model
        .forward_logits_at(ids, None, None, &LogitsAt::Last, &mut vene::hooks::NoHooks)?
        .ok_or_else(|| CliError::invalid("the model returned no logits"))?;
    Ok(logits.get(0)?.get(0)?.to_dtype(DType::F32)?)
}

fn argmax(x: &Tensor) -> Result<u32> {
    Ok(x.argmax(D::Minus1)?.to_scalar::<u32>()?)
}

fn at(x: &[f32], i: u32) -> f32 {
    x.get(i as usize).copied().unwrap_or(f32::NAN)
}

/// The layers and the target that the arguments name, checked against the model: layers in
/// range, a head exactly when the component is a head component, the head in range.
fn resolve_target(args: &PatchArgs, model: &Model) -> Result<(Vec<usize>, bool, Target)> {
    let n_layers = model.n_layers();
    let last_layer = n_layers.saturating_sub(1);
    let (layer, head) = match &args.site {
        Some(site) => {
            let (l, h) = parse_site(site)?;
            (Some(l), h)
        }
        None if args.layer == "all" => (None, args.head),
        None => {
            let l = args.layer.parse::<usize>().map_err(|_| {
                CliError::invalid(format!(
                    "--layer {:?}: expected a layer index (0..={last_layer}) or `all`",
                    args.layer
                ))
            })?;
            (Some(l), args.head)
        }
    };
    if let Some(l) = layer.filter(|&l| l >= n_layers) {
        return Err(CliError::invalid(format!(
            "layer {l} is out of range: the model has {n_layers} layers (0..={last_layer})"
        )));
    }
    let component = args.component.unwrap_or(if head.is_some() {
        Component::HeadAttentionValueOutput
    } else {
        Component::BlockOutput
    });
    let head_components = "head_attention_value_output, head_query_output, head_key_output, \
                           head_value_output";
    match head {
        Some(_) if !component.is_head() => {
            return Err(CliError::invalid(format!(
                "a head is given, but {component} is not a head component (one of \
                 {head_components})"
            )))
        }
        None if component.is_head() => {
            let n = model.component_shape(component)?.n_heads;
            return Err(CliError::invalid(format!(
                "{component} needs a head: --head N (0..={}) or --site L<layer>H<head>",
                n.saturating_sub(1)
            )));
        }
        Some(h) => {
            let n = model.component_shape(component)?.n_heads;
            if h >= n {
                return Err(CliError::invalid(format!(
                    "head {h} is out of range: {component} has {n} heads (0..={})",
                    n.saturating_sub(1)
                )));
            }
        }
        None => {}
    }
    let single = layer.is_some();
    let layers = layer.map_or_else(|| (0..n_layers).collect(), |l| vec![l]);
    Ok((layers, single, Target { component, head }))
}

/// Runs `vene patch` (see [`PatchArgs`]); the effect is read at the base's last position.
///
/// - one pair, one position: for one layer, the tokens whose logit changed most; for `all`,
///   one row per layer with the patched prediction, the change of the base's and the
///   source's top tokens and of their logit difference;
/// - one pair, `--position all`: a heat map of the change of the logit difference, layers
///   by positions;
/// - `--pairs`: the same per pair (a row, or a heat map), and their mean.
pub fn run(args: &PatchArgs) -> Result<String> {
    if args.top_k == 0 {
        return Err(CliError::invalid("--top-k must be at least 1"));
    }
    let position = parse_position(&args.position)?;
    if let Some(path) = &args.plot {
        if position != PositionSpec::All {
            return Err(CliError::invalid(
                "--plot draws the heat map of --position all; add --position all",
            ));
        }
        crate::plots::PlotFormat::from_path(path)?;
    }
    let pairs_text = args.pairs.as_deref().map(read_pairs).transpose()?;
    let lm = load::model(&args.model, &args.backend.open()?)?
        .with_prepend_bos(args.bos.resolve(None))?;
    let (layers, single_layer, target) = resolve_target(args, &lm.model)?;
    match pairs_text {
        Some(lines) => {
            let file = args
                .pairs
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let mut pairs = Vec::with_capacity(lines.len());
            for (line, base, source) in &lines {
                let at_line =
                    |e: CliError| CliError::invalid(format!("{file}:{line}: {}", e.one_line()));
                let pair = Pair::new(&lm, base, source).map_err(at_line)?;
                match position {
                    PositionSpec::All => pair.all_positions().map(|_| ()),
                    PositionSpec::Pair(s, b) => pair.positions((s, b)).map(|_| ()),
                }
                .map_err(at_line)?;
                pairs.push((*line, pair));
            }
            match position {
                PositionSpec::All => {
                    heat_maps_of_pairs(&lm, target, &layers, &pairs, args.plot.as_deref())
                }
                PositionSpec::Pair(s, b) => pair_table(&lm, target, &layers, &pairs, (s, b)),
            }
        }
        None => {
            let (base, source) = match (&args.base, &args.source) {
                (Some(b), Some(s)) => (b, s),
                _ => return Err(CliError::invalid("give --base and --source, or --pairs")),
            };
            let pair = Pair::new(&lm, base, source)?;
            match position {
                PositionSpec::All => {
                    let map = heat_map(&lm, target, &layers, &pair)?;
                    let mut text = heat_map_title(&lm, target, &pair)
                        + &render_heat_map_with(&layers, &map, |p| {
                            format!("{p} {}", token_pair(&lm, &pair, (p, p)))
                        });
                    if let Some(path) = &args.plot {
                        let tokens: Vec<String> = (0..map.first().map_or(0, Vec::len))
                            .map(|p| plain_token_pair(&lm, &pair, p))
                            .collect();
                        let title = format!(
                            "Patching {}: base top {}, source top {}",
                            target.describe(),
                            lm.token(pair.base_top).trim(),
                            lm.token(pair.source_top).trim()
                        );
                        crate::plots::plot_heat_map(&map, &layers, &tokens, &title, path)?;
                        text += &format!("wrote {}\n", path.display());
                    }
                    Ok(text)
                }
                PositionSpec::Pair(s, b) => {
                    let pos = pair.positions((s, b))?;
                    if single_layer {
                        top_changes(&lm, target, layers[0], &pair, pos, args.top_k)
                    } else {
                        layer_table(&lm, target, &layers, &pair, pos)
                    }
                }
            }
        }
    }
}

fn tok(lm: &LoadedModel, id: u32) -> String {
    table::token(&lm.token(id))
}

fn tops(lm: &LoadedModel, pair: &Pair) -> String {
    format!(
        "base top token {}, source top token {}",
        tok(lm, pair.base_top),
        tok(lm, pair.source_top)
    )
}

/// A token of each side at the given positions, `"cat"` or `"cat"/"dog"` when they differ.
fn token_pair(lm: &LoadedModel, pair: &Pair, (s, b): (usize, usize)) -> String {
    let get = |ids: &[u32], p: usize| ids.get(p).map(|&id| tok(lm, id)).unwrap_or_default();
    let (bt, st) = (get(&pair.base_ids, b), get(&pair.source_ids, s));
    if bt == st {
        bt
    } else {
        format!("{bt}/{st}")
    }
}

/// The text of position `p` for a picture: the base's token, `base/source` when they differ.
fn plain_token_pair(lm: &LoadedModel, pair: &Pair, p: usize) -> String {
    let get = |ids: &[u32]| ids.get(p).map(|&id| lm.token(id)).unwrap_or_default();
    let (b, s) = (get(&pair.base_ids), get(&pair.source_ids));
    if b == s {
        b
    } else {
        format!("{}/{}", b.trim(), s.trim())
    }
}

/// One row per layer: patched top token, change of both top tokens' logits and of their
/// difference.
fn layer_table(
    lm: &LoadedModel,
    target: Target,
    layers: &[usize],
    pair: &Pair,
    pos: (usize, usize),
) -> Result<String> {
    let base_v = pair.base_logits.to_vec1::<f32>()?;
    let mut rows = Vec::new();
    for &layer in layers {
        let p = patched_last_logits(&lm.model, target, layer, pair, pos)?;
        let pv = p.to_vec1::<f32>()?;
        rows.push(vec![
            layer.to_string(),
            tok(lm, argmax(&p)?),
            format!(
                "{:+.4}",
                at(&pv, pair.base_top) - at(&base_v, pair.base_top)
            ),
            format!(
                "{:+.4}",
                at(&pv, pair.source_top) - at(&base_v, pair.source_top)
            ),
            format!("{:+.4}", pair.delta_logit_diff(&p)?),
        ]);
    }
    Ok(format!(
        "{}; patching {} at source position {} into base position {} ({})\n",
        tops(lm, pair),
        target.describe(),
        pos.0,
        pos.1,
        token_pair(lm, pair, pos)
    ) + &table::render(
        &[
            "layer",
            "patched top",
            "Δ logit base top",
            "Δ logit source top",
            "Δ logit diff",
        ],
        &rows,
    ))
}

/// One layer: the `k` tokens whose last-position logit changed most.
fn top_changes(
    lm: &LoadedModel,
    target: Target,
    layer: usize,
    pair: &Pair,
    pos: (usize, usize),
    k: usize,
) -> Result<String> {
    let patched = patched_last_logits(&lm.model, target, layer, pair, pos)?;
    let delta = (&patched - &pair.base_logits)?;
    let k = k.min(delta.dim(0)?);
    let order = delta
        .abs()?
        .arg_sort_last_dim(false)?
        .narrow(0, 0, k)?
        .to_vec1::<u32>()?;
    let base_v = pair.base_logits.to_vec1::<f32>()?;
    let (pv, dv) = (patched.to_vec1::<f32>()?, delta.to_vec1::<f32>()?);
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|&i| {
            vec![
                tok(lm, i),
                format!("{:.4}", at(&base_v, i)),
                format!("{:.4}", at(&pv, i)),
                format!("{:+.4}", at(&dv, i)),
            ]
        })
        .collect();
    Ok(format!(
        "{}; patching {} at source position {} into base position {} ({})\n\
         layer {layer}: patched top token {}, Δ logit diff {:+.4}\n",
        tops(lm, pair),
        target.describe(),
        pos.0,
        pos.1,
        token_pair(lm, pair, pos),
        tok(lm, argmax(&patched)?),
        pair.delta_logit_diff(&patched)?
    ) + &table::render(&["token", "base logit", "patched logit", "change"], &rows))
}

/// `[layer][position]`: the change of the logit difference when position `p` of the source
/// is patched into position `p` of the base.
fn heat_map(
    lm: &LoadedModel,
    target: Target,
    layers: &[usize],
    pair: &Pair,
) -> Result<Vec<Vec<f32>>> {
    let n = pair.all_positions()?;
    layers
        .iter()
        .map(|&layer| {
            (0..n)
                .map(|p| {
                    let logits = patched_last_logits(&lm.model, target, layer, pair, (p, p))?;
                    pair.delta_logit_diff(&logits)
                })
                .collect()
        })
        .collect()
}

fn heat_map_title(lm: &LoadedModel, target: Target, pair: &Pair) -> String {
    format!(
        "{}; Δ logit diff (source top - base top, at the last position) when patching {} \
         at each position (columns: position base/source token)\n",
        tops(lm, pair),
        target.describe()
    )
}

fn render_heat_map(layers: &[usize], map: &[Vec<f32>]) -> String {
    render_heat_map_with(layers, map, |p| p.to_string())
}

fn render_heat_map_with(
    layers: &[usize],
    map: &[Vec<f32>],
    column: impl Fn(usize) -> String,
) -> String {
    let n = map.first().map_or(0, Vec::len);
    let mut header = vec!["layer".to_string()];
    header.extend((0..n).map(column));
    let rows: Vec<Vec<String>> = layers
        .iter()
        .zip(map)
        .map(|(l, cells)| {
            std::iter::once(l.to_string())
                .chain(cells.iter().map(|v| format!("{v:+.4}")))
                .collect()
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table::render(&header, &rows)
}

/// `--pairs` with one position: a row per pair (the change of the logit difference at
/// each layer) and their mean.
fn pair_table(
    lm: &LoadedModel,
    target: Target,
    layers: &[usize],
    pairs: &[(usize, Pair)],
    spec: (i64, i64),
) -> Result<String> {
    let mut rows = Vec::new();
    let mut sums = vec![0f32; layers.len()];
    for (line, pair) in pairs {
        let pos = pair.positions(spec)?;
        let mut row = vec![
            line.to_string(),
            tok(lm, pair.base_top),
            tok(lm, pair.source_top),
        ];
        for (sum, &layer) in sums.iter_mut().zip(layers) {
            let logits = patched_last_logits(&lm.model, target, layer, pair, pos)?;
            let d = pair.delta_logit_diff(&logits)?;
            *sum += d;
            row.push(format!("{d:+.4}"));
        }
        rows.push(row);
    }
    let mut mean = vec!["mean".to_string(), String::new(), String::new()];
    mean.extend(
        sums.iter()
            .map(|s| format!("{:+.4}", s / pairs.len() as f32)),
    );
    rows.push(mean);
    let mut header = vec!["line".to_string(), "base top".into(), "source top".into()];
    header.extend(layers.iter().map(|l| format!("layer {l}")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    Ok(format!(
        "{} pairs; Δ logit diff (source top - base top, at the last position) when patching {} \
         at position {}\n",
        pairs.len(),
        target.describe(),
        describe_position(spec)
    ) + &table::render(&header, &rows))
}

fn describe_position((s, b): (i64, i64)) -> String {
    if (s, b) == (-1, -1) {
        "-1 (the last)".to_string()
    } else if s == b {
        s.to_string()
    } else {
        format!("{s}:{b} (source:base)")
    }
}

/// `--pairs` with `--position all`: a heat map per pair, and the mean heat map when every
/// pair has the same length.
fn heat_maps_of_pairs(
    lm: &LoadedModel,
    target: Target,
    layers: &[usize],
    pairs: &[(usize, Pair)],
    plot: Option<&std::path::Path>,
) -> Result<String> {
    let mut out = String::new();
    let mut maps = Vec::with_capacity(pairs.len());
    for (line, pair) in pairs {
        let map = heat_map(lm, target, layers, pair)?;
        out += &format!("line {line}: ");
        out += &heat_map_title(lm, target, pair);
        out += &render_heat_map_with(layers, &map, |p| {
            format!("{p} {}", token_pair(lm, pair, (p, p)))
        });
        out.push('\n');
        maps.push(map);
    }
    let n = maps.first().and_then(|m| m.first()).map_or(0, Vec::len);
    if maps.iter().all(|m| m.first().map_or(0, Vec::len) == n) {
        let mean: Vec<Vec<f32>> = (0..layers.len())
            .map(|l| {
                (0..n)
                    .map(|p| {
                        let cells = maps.iter().filter_map(|m| m.get(l)?.get(p));
                        cells.sum::<f32>() / maps.len() as f32
                    })
                    .collect()
            })
            .collect();
        out += &format!("mean over {} pairs (columns: position)\n", pairs.len());
        out += &render_heat_map(layers, &mean);
        if let Some(path) = plot {
            let tokens = vec![String::new(); n];
            let title = format!(
                "Patching {}: mean over {} pairs",
                target.describe(),
                pairs.len()
            );
            crate::plots::plot_heat_map(&mean, layers, &tokens, &title, path)?;
            out += &format!("wrote {}\n", path.display());
        }
    } else {
        out += "no mean heat map: the pairs have different lengths\n";
        if let Some(path) = plot {
            return Err(CliError::invalid(format!(
                "--plot {}: no mean heat map to draw, the pairs have different lengths",
                path.display()
            )));
        }
    }
    Ok(out)
}
