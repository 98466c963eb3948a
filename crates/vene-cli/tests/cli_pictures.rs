//! The pictures and dashboards of the `vene` binary, on the fixture tiny GPT-2 (vocab 64,
//! tied unembedding) with a word-level tokenizer written here: `vene dashboard` (pages checked
//! against activations and logit effects computed here from the tensors), `vene patch
//! --plot`, `vene train-sae --metrics --curves`, `vene dashboard --density-plot`.

mod common;

use common::{model_dir, stdout, vene, WORDS};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use vene::hooks::Component;

const CORPUS: &str =
    "the cat sat on a mat\n\nthe dog ran to the zebra park\nred house and green tree\n\
                      a big cat and a small dog\n";

/// The text `vene` shows for token `id` of that tokenizer.
fn token_name(id: usize) -> String {
    match id {
        0 => "<unk>".into(),
        i if i <= WORDS.split(' ').count() => WORDS.split(' ').nth(i - 1).unwrap().into(),
        i => format!("<id {i}>"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Trains an SAE (32 latents, 30 steps) on layer 1 with metrics and curves.
fn train(root: &Path, model: &Path) -> (PathBuf, String) {
    let data = root.join("corpus.txt");
    std::fs::write(&data, CORPUS).unwrap();
    let out = root.join("sae");
    let (metrics, curves) = (root.join("metrics.jsonl"), root.join("curves.svg"));
    let text = stdout(&vene(&[
        "train-sae",
        "--model",
        s(model),
        "--layer",
        "1",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--steps",
        "30",
        "--expansion",
        "2",
        "--lr",
        "1e-2",
        "--metrics",
        s(&metrics),
        "--curves",
        s(&curves),
    ]));
    (out, text)
}

/// The latents of the SAE on every token of every corpus line, computed here:
/// `[line][position][latent]`, with the token ids.
fn activations(model: &Path, sae: &Path) -> Vec<(Vec<u32>, Vec<Vec<f32>>)> {
    let backend = vene_cli::backend::Backend::cpu();
    let lm = vene_cli::load::model(s(model), &backend).unwrap();
    let loaded = vene_cli::load::sae(s(sae)).unwrap();
    let ae = vene_cli::load::sae_for(&lm.model, loaded, Component::BlockOutput, &backend).unwrap();
    CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (ids, t) = lm.encode(line.trim()).unwrap();
            let acts =
                vene_cli::commands::collect_all(&lm.model, 1, Component::BlockOutput, &t).unwrap();
            let z = ae.encode(&acts).unwrap().to_vec2::<f32>().unwrap();
            (ids, z)
        })
        .collect()
}

/// `(value, "line L pos P")` of each context row of a page, in order.
fn context_rows(html: &str) -> Vec<(String, String)> {
    html.lines()
        .filter(|l| l.starts_with("<tr><td class=\"num\">"))
        .map(|l| {
            let cells: Vec<&str> = l.split("<td").collect();
            let value = cells[2]
                .split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            let place = l
                .split("class=\"where\">")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            (value.to_string(), place.to_string())
        })
        .collect()
}

/// `(token html, value)` rows of the logit-effect table of `class` (`pos` or `neg`).
fn effect_rows(html: &str, class: &str) -> Vec<(String, String)> {
    let start = html.find(&format!("<table class=\"{class}\">")).unwrap();
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    table
        .lines()
        .filter(|l| l.starts_with("<tr><td><span class=\"tok\">"))
        .map(|l| {
            let tok = l
                .split("class=\"tok\">")
                .nth(1)
                .unwrap()
                .split("</span>")
                .next()
                .unwrap();
            let v = l
                .split("class=\"num\">")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            (tok.to_string(), v.to_string())
        })
        .collect()
}

fn html_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn dashboard_pages_show_the_top_contexts_density_and_logit_effects_of_the_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let (sae, _) = train(tmp.path(), &model);
    let acts = activations(&model, &sae);
    let n_tokens: usize = acts.iter().map(|(ids, _)| ids.len()).sum();
    // The two latents firing on most tokens (so that their pages have contexts).
    let latents = 32;
    let fired = |j: usize| -> usize {
        acts.iter()
            .flat_map(|(_, z)| z.iter())
            .filter(|row| row[j] > 0.0)
            .count()
    };
    let mut by_fired: Vec<usize> = (0..latents).collect();
    by_fired.sort_by_key(|&j| std::cmp::Reverse(fired(j)));
    let chosen = [by_fired[0], by_fired[1]];
    let out = tmp.path().join("dash");
    let density = tmp.path().join("density.svg");
    let text = stdout(&vene(&[
        "dashboard",
        "--model",
        s(&model),
        "--sae",
        s(&sae),
        "--latent",
        &chosen[0].to_string(),
        "--latent",
        &chosen[1].to_string(),
        "--text",
        s(&tmp.path().join("corpus.txt")),
        "--out",
        s(&out),
        "--top",
        "5",
        "--window",
        "3",
        "--density-plot",
        s(&density),
    ]));
    assert!(text.contains("wrote 2 pages and index.html"), "{text}");
    assert!(
        text.contains(&format!("4 texts, {n_tokens} tokens")),
        "{text}"
    );

    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    for j in chosen {
        assert!(index.contains(&format!("<a href=\"latent-{j}.html\">latent {j}</a>")));
    }
    // The decoder rows and the (tied) unembedding, read from the files.
    let w_dec = candle_core::safetensors::load(sae.join("sae_weights.safetensors"), &Device::Cpu)
        .unwrap()["W_dec"]
        .to_vec2::<f32>()
        .unwrap();
    let w_u = candle_core::safetensors::load(model.join("model.safetensors"), &Device::Cpu)
        .unwrap()["transformer.wte.weight"]
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for j in chosen {
        let html = std::fs::read_to_string(out.join(format!("latent-{j}.html"))).unwrap();
        // Self-contained.
        for bad in ["http:", "https:", "<script", "src=", "url("] {
            assert!(!html.contains(bad), "{bad} in latent-{j}.html");
        }
        // Density: tokens where the latent is > 0.
        let f = fired(j);
        assert!(
            html.contains(&format!("fires on {f} of {n_tokens} tokens")),
            "latent {j}: {f} of {n_tokens}"
        );
        // The top 5 tokens, largest first, ties in corpus order (lines 1, 3, 4, 5 of the file:
        // line 2 is blank).
        let lines = [1, 3, 4, 5];
        let mut hits: Vec<(f32, usize, usize)> = Vec::new();
        for (t, (_, z)) in acts.iter().enumerate() {
            for (p, row) in z.iter().enumerate() {
                if row[j] > 0.0 {
                    hits.push((row[j], lines[t], p));
                }
            }
        }
        hits.sort_by(|a, b| b.0.total_cmp(&a.0));
        let expected: Vec<(String, String)> = hits
            .iter()
            .take(5)
            .map(|(v, l, p)| (format!("{v:.4}"), format!("line {l} pos {p}")))
            .collect();
        assert_eq!(context_rows(&html), expected, "latent {j}");
        // The largest token is outlined, with its value in its tooltip.
        let (v, l, p) = hits[0];
        let t = lines.iter().position(|x| *x == l).unwrap();
        let name = token_name(acts[t].0[p] as usize);
        assert!(html.contains(&format!(
            "<span class=\"tok max\" style=\"background: rgba(255, 120, 0, 1.000)\" \
             title=\"&quot;{}&quot; \u{2192} {v:.4}\">{}</span>",
            html_escape(&name),
            html_escape(&name)
        )));
        // Logit effects: W_U @ W_dec[j], computed here.
        let mut effects: Vec<(usize, f64)> = w_u
            .iter()
            .enumerate()
            .map(|(id, row)| {
                let e = row
                    .iter()
                    .zip(&w_dec[j])
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                (id, e)
            })
            .collect();
        effects.sort_by(|a, b| b.1.total_cmp(&a.1));
        let show = |v: &[(usize, f64)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(id, e)| (html_escape(&token_name(*id)), format!("{e:+.4}")))
                .collect()
        };
        assert_eq!(
            effect_rows(&html, "pos"),
            show(&effects[..10]),
            "latent {j}"
        );
        let lowest: Vec<(usize, f64)> = effects.iter().rev().take(10).copied().collect();
        assert_eq!(effect_rows(&html, "neg"), show(&lowest), "latent {j}");
    }
    // The corpus has an unknown word: its `<unk>` token is escaped wherever it shows.
    let all: String = chosen
        .iter()
        .map(|j| std::fs::read_to_string(out.join(format!("latent-{j}.html"))).unwrap())
        .collect();
    assert!(!all.contains("<unk>") && !all.contains("<id "));
    // The density histogram of all 32 latents over the corpus.
    let dead = (0..latents).filter(|&j| fired(j) == 0).count();
    let svg = std::fs::read_to_string(&density).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains(&format!("{latents} latents, {dead} dead")),
        "{dead} dead"
    );
    // Out-of-range latents and a picture of an unknown format are errors.
    let o = vene(&[
        "dashboard",
        "--model",
        s(&model),
        "--sae",
        s(&sae),
        "--latent",
        "32",
        "--text",
        s(&tmp.path().join("corpus.txt")),
        "--out",
        s(&out),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("--latent 32 is out of range: the SAE has 32 latents"),
        "{e}"
    );
}

#[test]
fn train_sae_writes_metrics_lines_and_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let (_, text) = train(tmp.path(), &model);
    // 30 steps, logged every max(30 / 100, 1) = 1 step.
    assert!(text.contains("metrics.jsonl (30 steps logged)"), "{text}");
    let metrics = std::fs::read_to_string(tmp.path().join("metrics.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 30);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["step"], i + 1);
        let (loss, mse, l1) = (
            r["loss"].as_f64().unwrap(),
            r["mse"].as_f64().unwrap(),
            r["l1"].as_f64().unwrap(),
        );
        // loss = mse + 1e-3 * l1 (the default --l1), as train-sae trains.
        assert!(
            (loss - (mse + 1e-3 * l1)).abs() < 1e-4 * loss.max(1.0),
            "{r}"
        );
        assert_eq!(r["lr"], 1e-2);
    }
    let svg = std::fs::read_to_string(tmp.path().join("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("loss and MSE"));
    assert!(svg.matches("<polyline").count() >= 6);
    // A curve file of an unknown format is refused before training.
    let o = vene(&[
        "train-sae",
        "--model",
        s(&model),
        "--layer",
        "1",
        "--data",
        s(&tmp.path().join("corpus.txt")),
        "--out",
        s(&tmp.path().join("sae2")),
        "--curves",
        "c.jpg",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(".png or .svg"));
    assert!(!tmp.path().join("sae2").exists());
}

#[test]
fn patch_plot_writes_the_heat_map_as_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = s(&model);
    let png = tmp.path().join("heat.png");
    let args = |plot: &Path| {
        vec![
            "patch".to_string(),
            "--model".into(),
            m.into(),
            "--base".into(),
            "the cat sat on a mat".into(),
            "--source".into(),
            "the dog sat on a zebra".into(),
            "--position".into(),
            "all".into(),
            "--plot".into(),
            s(plot).into(),
        ]
    };
    let o = vene(&args(&png).iter().map(String::as_str).collect::<Vec<_>>());
    let text = stdout(&o);
    assert!(text.contains(&format!("wrote {}", png.display())), "{text}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert!(
        info.width >= 480 && info.height > 100,
        "{}x{}",
        info.width,
        info.height
    );
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let svg_path = tmp.path().join("heat.svg");
    stdout(&vene(
        &args(&svg_path)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // Rows per layer, columns labelled by position and token (base/source where they differ;
    // the unknown `zebra` is the `<unk>` token, escaped).
    let texts: Vec<&str> = svg.lines().map(str::trim).collect();
    for label in ["layer 0", "layer 1", "0", "5", "cat/dog", "mat/&lt;unk&gt;"] {
        assert!(texts.contains(&label), "{label}");
    }
    // The values of the text heat map are in the cells (the last cell of the last layer).
    let last = text
        .lines()
        .find(|l| l.starts_with("| 1 "))
        .and_then(|l| l.trim_end_matches('|').rsplit('|').next())
        .unwrap()
        .trim()
        .parse::<f32>()
        .unwrap();
    assert!(texts.contains(&format!("{last:+.2}").as_str()), "{last}");
    // --plot needs --position all.
    let o = vene(&[
        "patch", "--model", m, "--base", "the cat", "--source", "the dog", "--plot", "x.png",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--position all"));
}
