//! The HTML of the dashboard: a page per latent and an index. Self-contained: inline CSS and
//! SVG, no scripts, no fonts or images fetched; every text from the model or the corpus is
//! escaped with [`escape`].

/// `text` safe inside HTML text and attribute values: `&`, `<`, `>`, `"` and `'` become
/// entities.
///
/// ```
/// use vene_cli::dashboard::html::escape;
/// assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A token as shown in a context: line breaks and tabs made visible, never empty.
fn visible(token: &str) -> String {
    if token.is_empty() {
        return "\u{2205}".to_string();
    }
    token
        .replace('\r', "\\r")
        .replace('\n', "\u{21b5}")
        .replace('\t', "\u{21e5}")
}

/// One top-activating context: a window of tokens around the token where the latent fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The text's index in the corpus (0-based) and its line in the file (1-based).
    pub text: usize,
    /// The line of the corpus file.
    pub line: usize,
    /// The position of the activating token in its text.
    pub pos: usize,
    /// The activation there.
    pub value: f32,
    /// The window: each token's text and the latent's activation on it.
    pub tokens: Vec<(String, f32)>,
    /// Index in `tokens` of the activating token.
    pub center: usize,
}

/// Everything one latent's page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentPage {
    /// The latent's index in the SAE.
    pub latent: usize,
    /// One line on the SAE (where it reads, how many latents).
    pub sae: String,
    /// One line on the corpus.
    pub corpus: String,
    /// Tokens in the corpus.
    pub tokens: usize,
    /// Tokens where the latent is > 0.
    pub fired: usize,
    /// The top-activating contexts, largest first.
    pub contexts: Vec<Context>,
    /// Histogram of the nonzero activations: counts of equal bins from 0 to `max`.
    pub histogram: Vec<usize>,
    /// The largest activation.
    pub max: f32,
    /// Tokens the decoder direction raises most through the unembedding: (text, effect).
    pub positive: Vec<(String, f32)>,
    /// Tokens it lowers most.
    pub negative: Vec<(String, f32)>,
}

impl LatentPage {
    /// The fraction of tokens where the latent fired (0 for an empty corpus).
    pub fn density(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.fired as f64 / self.tokens as f64
        }
    }

    /// The page's file name: `latent-<i>.html`.
    pub fn file_name(&self) -> String {
        format!("latent-{}.html", self.latent)
    }
}

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px;
  color: #222; max-width: 1100px; }
h1 { font-size: 24px; margin: 0 0 4px 0; }
h2 { font-size: 17px; margin: 18px 0 8px 0; }
.meta { color: #555; margin: 2px 0; font-size: 14px; }
.stats { display: flex; gap: 28px; margin: 14px 0; }
.stat strong { display: block; font-size: 20px; }
.stat span { color: #666; font-size: 13px; }
.row { display: flex; gap: 36px; flex-wrap: wrap; align-items: flex-start; }
table { border-collapse: collapse; font-size: 14px; }
td, th { padding: 3px 8px; text-align: left; }
th { border-bottom: 1px solid #bbb; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pos td.num { color: #1a5fb4; } .neg td.num { color: #b2182b; }
.tok { white-space: pre; font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace;
  font-size: 13px; padding: 1px 2px; margin-right: 1px; border-radius: 2px;
  border-bottom: 1px solid #ddd; }
.ctx td { border-bottom: 1px solid #eee; vertical-align: middle; }
.ctx .text { line-height: 1.9; }
.max { outline: 2px solid #d04000; font-weight: bold; }
.where { color: #888; font-size: 12px; }
a { color: #1a5fb4; }
";

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    )
}

/// The background of a token with activation `v` when the latent's largest is `max`:
/// orange, as opaque as `v / max`; none for `v <= 0`.
fn shade(v: f32, max: f32) -> String {
    if v > 0.0 && max > 0.0 {
        format!(
            " style=\"background: rgba(255, 120, 0, {:.3})\"",
            (v / max).clamp(0.05, 1.0)
        )
    } else {
        String::new()
    }
}

fn context_row(rank: usize, c: &Context, max: f32) -> String {
    let mut text = String::new();
    for (i, (tok, v)) in c.tokens.iter().enumerate() {
        let class = if i == c.center { "tok max" } else { "tok" };
        text.push_str(&format!(
            "<span class=\"{class}\"{} title=\"{} \u{2192} {v:.4}\">{}</span>",
            shade(*v, max),
            escape(&format!("{tok:?}")),
            escape(&visible(tok)),
        ));
    }
    format!(
        "<tr><td class=\"num\">{rank}</td><td class=\"num\">{:.4}</td>\
         <td class=\"text\">{text}</td><td class=\"where\">line {} pos {}</td></tr>\n",
        c.value, c.line, c.pos
    )
}

fn effects_table(class: &str, title: &str, rows: &[(String, f32)]) -> String {
    let mut out = format!(
        "<table class=\"{class}\"><tr><th>{}</th><th>logit</th></tr>\n",
        escape(title)
    );
    for (tok, v) in rows {
        out.push_str(&format!(
            "<tr><td><span class=\"tok\">{}</span></td><td class=\"num\">{v:+.4}</td></tr>\n",
            escape(&visible(tok))
        ));
    }
    out + "</table>\n"
}

/// The histogram as an inline SVG (bars from 0 to `max`, counts on the y axis).
pub fn histogram_svg(counts: &[usize], max: f32) -> String {
    let (w, h) = (420.0f64, 200.0f64);
    let (left, right, top, bottom) = (44.0, 28.0, 10.0, 34.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let top_count = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = pw / counts.len().max(1) as f64;
    let mut out = format!(
        "<svg width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    out.push_str(&format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"#fafafa\" \
         stroke=\"#ccc\"/>\n"
    ));
    let step = max as f64 / counts.len().max(1) as f64;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let bh = ph * c as f64 / top_count;
        let (lo, hi) = (step * i as f64, step * (i + 1) as f64);
        out.push_str(&format!(
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"#ff7800\">\
             <title>{lo:.3} to {hi:.3}: {c}</title></rect>\n",
            left + bw * i as f64 + 0.5,
            top + ph - bh,
            (bw - 1.0).max(0.5),
        ));
    }
    let base = top + ph;
    out.push_str(&format!(
        "<text x=\"{left}\" y=\"{:.1}\" text-anchor=\"middle\">0</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{max:.3}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">activation</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
         <text x=\"{:.1}\" y=\"{base:.1}\" text-anchor=\"end\">0</text>\n",
        base + 14.0,
        left + pw,
        base + 14.0,
        left + pw / 2.0,
        base + 28.0,
        left - 4.0,
        top + 9.0,
        top_count,
        left - 4.0,
    ));
    out + "</svg>\n"
}

/// The page of one latent: its density, the histogram of its nonzero activations, its logit
/// effects and its top-activating contexts (tokens shaded by activation, the activating token
/// outlined, each token's value in its tooltip).
pub fn latent_page(p: &LatentPage) -> String {
    let mut out = head(&format!("Latent {} \u{2014} vene dashboard", p.latent));
    out.push_str(&format!(
        "<h1>Latent {}</h1>\n<p class=\"meta\">{}</p>\n<p class=\"meta\">{}</p>\n",
        p.latent,
        escape(&p.sae),
        escape(&p.corpus)
    ));
    let density = p.density();
    let log = if density > 0.0 {
        format!("{:.2}", density.log10())
    } else {
        "dead".to_string()
    };
    out.push_str(&format!(
        "<div class=\"stats\">\
         <div class=\"stat\"><strong>{:.3}%</strong><span>density: fires on {} of {} tokens</span></div>\
         <div class=\"stat\"><strong>{log}</strong><span>log10 density</span></div>\
         <div class=\"stat\"><strong>{:.4}</strong><span>max activation</span></div></div>\n",
        100.0 * density,
        p.fired,
        p.tokens,
        p.max
    ));
    out.push_str("<div class=\"row\">\n<section>\n<h2>Activations (nonzero)</h2>\n");
    out.push_str(&histogram_svg(&p.histogram, p.max));
    out.push_str(
        "</section>\n<section>\n<h2>Logit effects (W_dec \u{00b7} W_U)</h2>\n<div class=\"row\">\n",
    );
    out.push_str(&effects_table("pos", "positive", &p.positive));
    out.push_str(&effects_table("neg", "negative", &p.negative));
    out.push_str("</div>\n</section>\n</div>\n");
    out.push_str(&format!(
        "<h2>Top activations ({} shown)</h2>\n",
        p.contexts.len()
    ));
    if p.contexts.is_empty() {
        out.push_str("<p>The latent never fired on this corpus.</p>\n");
    } else {
        out.push_str(
            "<table class=\"ctx\"><tr><th>#</th><th>activation</th><th>context</th><th></th></tr>\n",
        );
        let max = p.contexts.first().map_or(p.max, |c| c.value).max(p.max);
        for (i, c) in p.contexts.iter().enumerate() {
            out.push_str(&context_row(i + 1, c, max));
        }
        out.push_str("</table>\n");
    }
    out.push_str("<p><a href=\"index.html\">all latents</a></p>\n</body>\n</html>\n");
    out
}

/// The index: a table with each latent's density and largest activation, linking its page.
pub fn index_page(pages: &[LatentPage], sae: &str, corpus: &str) -> String {
    let mut out = head("vene dashboard");
    out.push_str(&format!(
        "<h1>SAE latents</h1>\n<p class=\"meta\">{}</p>\n<p class=\"meta\">{}</p>\n\
         <table><tr><th>latent</th><th>density</th><th>max activation</th><th>top token</th></tr>\n",
        escape(sae),
        escape(corpus)
    ));
    for p in pages {
        let top = p
            .contexts
            .first()
            .and_then(|c| c.tokens.get(c.center))
            .map(|(t, _)| escape(&visible(t)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td><a href=\"{}\">latent {}</a></td><td class=\"num\">{:.3}%</td>\
             <td class=\"num\">{:.4}</td><td><span class=\"tok\">{top}</span></td></tr>\n",
            escape(&p.file_name()),
            p.latent,
            100.0 * p.density(),
            p.max
        ));
    }
    out + "</table>\n</body>\n</html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> LatentPage {
        let ctx = |text, value: f32, tokens: &[(&str, f32)], center| Context {
            text,
            line: text + 1,
            pos: center,
            value,
            tokens: tokens.iter().map(|(t, v)| (t.to_string(), *v)).collect(),
            center,
        };
        LatentPage {
            latent: 7,
            sae: "SAE <s> & co".into(),
            corpus: "corpus \"c\"".into(),
            tokens: 40,
            fired: 4,
            contexts: vec![
                ctx(2, 2.5, &[("a", 0.0), ("<b>", 2.5), (" &x", 1.0)], 1),
                ctx(0, 1.25, &[("\"q\"", 1.25), ("\n", 0.0)], 0),
            ],
            histogram: vec![1, 0, 3],
            max: 2.5,
            positive: vec![("<up>".into(), 0.75)],
            negative: vec![("it's".into(), -0.5)],
        }
    }

    #[test]
    fn the_page_escapes_tokens_and_shows_contexts_in_order_with_values() {
        let html = latent_page(&page());
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        // Every text from the model or the corpus is escaped.
        for raw in ["<b>", "<up>", "<s>", " &x", "\"q\""] {
            assert!(!html.contains(raw), "{raw} unescaped");
        }
        for escaped in [
            "&lt;b&gt;",
            "&lt;up&gt;",
            "SAE &lt;s&gt; &amp; co",
            " &amp;x",
            "&quot;q&quot;",
            "it&#39;s",
        ] {
            assert!(html.contains(escaped), "{escaped} missing");
        }
        // Contexts in order, with their values; the activating token outlined, each token's
        // value in its tooltip.
        let first = html.find(">2.5000<").unwrap();
        let second = html.find(">1.2500<").unwrap();
        assert!(first < second);
        assert!(html.contains(
            "<span class=\"tok max\" style=\"background: rgba(255, 120, 0, 1.000)\" \
             title=\"&quot;&lt;b&gt;&quot; \u{2192} 2.5000\">&lt;b&gt;</span>"
        ));
        assert!(html.contains("title=\"&quot; &amp;x&quot; \u{2192} 1.0000\""));
        // A newline token is shown as a visible mark.
        assert!(html.contains(">\u{21b5}</span>"));
        assert!(html.contains("+0.7500") && html.contains("-0.5000"));
        assert!(html.contains("10.000%") && html.contains("fires on 4 of 40 tokens"));
        assert!(html.contains("<strong>-1.00</strong>"), "log10 density");
        // Self-contained: no network, no scripts.
        for bad in ["http:", "https:", "<script", "src=", "@import", "url("] {
            assert!(!html.contains(bad), "{bad}");
        }
    }

    #[test]
    fn the_histogram_has_a_bar_per_nonzero_bin_and_the_index_links_pages() {
        let svg = histogram_svg(&[1, 0, 3], 2.5);
        assert_eq!(svg.matches("fill=\"#ff7800\"").count(), 2);
        assert!(svg.contains("<title>1.667 to 2.500: 3</title>"));
        let p = page();
        let index = index_page(std::slice::from_ref(&p), &p.sae, &p.corpus);
        assert!(index.contains("<a href=\"latent-7.html\">latent 7</a>"));
        assert!(index.contains("&lt;b&gt;"), "the top token");
        assert!(!index.contains("http"));
    }
}
