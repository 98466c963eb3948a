//! The small languages of `vene patch`'s arguments: `--position`, `--site` and the
//! `--pairs` file.

use std::path::Path;

use crate::{CliError, Result};

/// The largest `--pairs` file read (bytes).
pub const MAX_PAIRS_FILE_BYTES: u64 = 16 << 20;

/// The most prompt pairs a `--pairs` file may hold.
pub const MAX_PAIRS: usize = 10_000;

/// What `--position` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionSpec {
    /// Source position and base position; negative counts from the end (-1: last).
    Pair(i64, i64),
    /// Every position in turn, the same in source and base.
    All,
}

/// Parses `--position`: `last`, `all`, `N` or `S:B` (source:base), negative from the end.
///
/// ```
/// use vene_cli::commands::patch_args::{parse_position, PositionSpec};
/// assert_eq!(parse_position("last").unwrap(), PositionSpec::Pair(-1, -1));
/// assert_eq!(parse_position("3").unwrap(), PositionSpec::Pair(3, 3));
/// assert_eq!(parse_position("3:-2").unwrap(), PositionSpec::Pair(3, -2));
/// assert_eq!(parse_position("all").unwrap(), PositionSpec::All);
/// assert!(parse_position("3:x").is_err());
/// ```
pub fn parse_position(text: &str) -> Result<PositionSpec> {
    let t = text.trim();
    match t {
        "all" => return Ok(PositionSpec::All),
        "last" => return Ok(PositionSpec::Pair(-1, -1)),
        _ => {}
    }
    let bad = || {
        CliError::invalid(format!(
            "--position {text:?}: expected `last`, `all`, a position N or a pair S:B \
             (source:base); negative numbers count from the end"
        ))
    };
    let num = |s: &str| s.trim().parse::<i64>().map_err(|_| bad());
    match t.split_once(':') {
        Some((s, b)) => Ok(PositionSpec::Pair(num(s)?, num(b)?)),
        None => {
            let p = num(t)?;
            Ok(PositionSpec::Pair(p, p))
        }
    }
}

/// Position `p` of a prompt of `len` tokens (`which`: "base" or "source"), negative from
/// the end, with an error naming the valid range.
///
/// ```
/// use vene_cli::commands::patch_args::resolve_position;
/// assert_eq!(resolve_position(-1, 4, "base").unwrap(), 3);
/// assert_eq!(resolve_position(0, 4, "base").unwrap(), 0);
/// let e = resolve_position(4, 4, "source").unwrap_err().to_string();
/// assert!(e.contains("the source has 4 tokens"), "{e}");
/// assert!(resolve_position(-5, 4, "base").is_err());
/// ```
pub fn resolve_position(p: i64, len: usize, which: &str) -> Result<usize> {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let q = if p < 0 { n.saturating_add(p) } else { p };
    if q < 0 || q >= n {
        return Err(CliError::invalid(format!(
            "position {p} is out of range: the {which} has {len} tokens (0..={}, or -{len}..=-1 \
             from the end)",
            len.saturating_sub(1)
        )));
    }
    usize::try_from(q).map_err(|_| CliError::invalid(format!("position {p} is out of range")))
}

/// Parses `--site`: `L5` (layer 5) or `L5H3` (layer 5, head 3), case-insensitive.
///
/// ```
/// use vene_cli::commands::patch_args::parse_site;
/// assert_eq!(parse_site("L5H3").unwrap(), (5, Some(3)));
/// assert_eq!(parse_site("l2").unwrap(), (2, None));
/// assert!(parse_site("5.3").is_err());
/// assert!(parse_site("L5H").is_err());
/// ```
pub fn parse_site(text: &str) -> Result<(usize, Option<usize>)> {
    let bad = || {
        CliError::invalid(format!(
            "--site {text:?}: expected L<layer> or L<layer>H<head>, e.g. L5 or L5H3"
        ))
    };
    let t = text.trim().to_ascii_uppercase();
    let rest = t.strip_prefix('L').ok_or_else(bad)?;
    let num = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<usize>().map_err(|_| bad())
    };
    match rest.split_once('H') {
        Some((l, h)) => Ok((num(l)?, Some(num(h)?))),
        None => Ok((num(rest)?, None)),
    }
}

/// Reads a `--pairs` file: `(line number, base, source)` for each `base<TAB>source` line;
/// blank lines and lines starting with `#` are skipped. Errors name the line.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("pairs.tsv");
/// std::fs::write(&path, "# base\tsource\nthe cat\ta dog\n\nred\tblue\n")?;
/// let pairs = vene_cli::commands::patch_args::read_pairs(&path)?;
/// assert_eq!(pairs, vec![(2, "the cat".into(), "a dog".into()), (4, "red".into(), "blue".into())]);
/// std::fs::write(&path, "the cat a dog\n")?;
/// let e = vene_cli::commands::patch_args::read_pairs(&path).unwrap_err().to_string();
/// assert!(e.contains("pairs.tsv:1:"), "{e}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_pairs(path: &Path) -> Result<Vec<(usize, String, String)>> {
    let io = CliError::io(path);
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_PAIRS_FILE_BYTES {
        return Err(CliError::invalid(format!(
            "{}: {size} bytes, more than the {MAX_PAIRS_FILE_BYTES} a pairs file may have",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut pairs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let at = |what: String| CliError::invalid(format!("{}:{}: {what}", path.display(), i + 1));
        let fields: Vec<&str> = line.split('\t').collect();
        let [base, source] = fields.as_slice() else {
            return Err(at(format!(
                "expected `base<TAB>source` (two fields separated by one tab), found {} \
                 field(s)",
                fields.len()
            )));
        };
        let (base, source) = (base.trim(), source.trim());
        if base.is_empty() || source.is_empty() {
            return Err(at("the base or the source is empty".into()));
        }
        if pairs.len() == MAX_PAIRS {
            return Err(at(format!("more than the {MAX_PAIRS} pairs allowed")));
        }
        pairs.push((i + 1, base.to_string(), source.to_string()));
    }
    if pairs.is_empty() {
        return Err(CliError::invalid(format!(
            "{}: no pairs (one `base<TAB>source` per line)",
            path.display()
        )));
    }
    Ok(pairs)
}
