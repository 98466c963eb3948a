//! Plain-text tables with aligned columns.

/// Renders `rows` under `header` as a Markdown-style table with padded columns.
///
/// ```
/// let t = vene_cli::table::render(&["a", "bb"], &[vec!["1".into(), "2".into()]]);
/// assert_eq!(t, "| a | bb |\n|---|----|\n| 1 | 2  |\n");
/// ```
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        format!("|{}|\n", padded.join("|"))
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&format!(
        "|{}|\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    ));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// A token shown in a table: quoted, with newlines escaped.
pub fn token(text: &str) -> String {
    format!("{:?}", text)
}
