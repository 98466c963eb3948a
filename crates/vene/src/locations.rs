//! Unit locations: which positions (and heads) each intervention reads and writes.

use serde_json::Value;
use vene_hooks::HeadPositions;

use crate::config::Mode;
use crate::{Result, VeneError};

/// The locations of one intervention for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitLoc {
    /// `[example][indices]`: positions for unit `pos`, heads for unit `h`.
    Units(Vec<Vec<usize>>),
    /// Heads and positions per example (unit `h.pos`): every (head, position) pair.
    HeadPositions(HeadPositions),
}

impl UnitLoc {
    /// Positions `positions[b]` for each example `b`.
    pub fn positions(positions: Vec<Vec<usize>>) -> Self {
        UnitLoc::Units(positions)
    }

    /// Heads and positions per example.
    pub fn head_positions(heads: Vec<Vec<usize>>, positions: Vec<Vec<usize>>) -> Self {
        UnitLoc::HeadPositions(HeadPositions { heads, positions })
    }

    /// Number of examples the location lists.
    pub fn batch(&self) -> usize {
        match self {
            UnitLoc::Units(u) => u.len(),
            UnitLoc::HeadPositions(h) => h.heads.len(),
        }
    }
}

/// pyvene's value under one key of `unit_locations`, with its shorthands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocSpec {
    /// An int: that position, in source and base, for every intervention and example
    /// (for `{"base": p}`, only the base).
    Position(usize),
    /// `(s, b)`: source position `s`, base position `b`, for every intervention and example;
    /// a `None` side is not located.
    Pair(Option<usize>, Option<usize>),
    /// A flat list: these positions for every intervention, example and side.
    Same(Vec<usize>),
    /// The full form: per intervention, the source and the base locations.
    Full {
        /// `[intervention]`: source locations (`None`: no source run for it).
        sources: Option<Vec<Option<UnitLoc>>>,
        /// `[intervention]`: base locations.
        base: Option<Vec<Option<UnitLoc>>>,
    },
}

/// Where every intervention reads its source and writes the base (pyvene's `unit_locations`).
///
/// ```
/// use vene::UnitLocations;
/// // pyvene: {"sources->base": ([[[5], [6]]], [[[4], [2]]])}
/// let full = UnitLocations::sources_to_base(vec![vec![vec![5], vec![6]]], vec![vec![vec![4], vec![2]]]);
/// let parsed = UnitLocations::from_json_str(r#"{"sources->base": [[[[5],[6]]], [[[4],[2]]]]}"#)?;
/// assert_eq!(full, parsed);
/// // shorthands: an int, an (s, b) pair
/// assert_eq!(UnitLocations::from_json_str(r#"{"sources->base": [5, 3]}"#)?, UnitLocations::pair(5, 3));
/// assert_eq!(UnitLocations::from_json_str(r#"{"base": 3}"#)?, UnitLocations::base_position(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitLocations {
    /// `{"sources->base": spec}`.
    SourcesToBase(LocSpec),
    /// `{"base": spec}`: base-only interventions (constant source, Zero, Collect).
    Base(LocSpec),
    /// Serial mode: `steps[g]` is the spec under `source_g->source_{g+1}` (the last:
    /// `source_g->base`), indexed by the interventions of group `g`.
    Serial(Vec<LocSpec>),
}

/// Locations resolved for one run: per intervention (or per key of a serial group).
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub sources: Vec<Option<UnitLoc>>,
    pub base: Vec<Option<UnitLoc>>,
}

impl UnitLocations {
    /// The same position `p` in source and base, for every intervention and example.
    pub fn position(p: usize) -> Self {
        UnitLocations::SourcesToBase(LocSpec::Position(p))
    }

    /// Source position `s` into base position `b`, for every intervention and example.
    pub fn pair(s: usize, b: usize) -> Self {
        UnitLocations::SourcesToBase(LocSpec::Pair(Some(s), Some(b)))
    }

    /// The full form, positions only: `sources[i][b]` into `base[i][b]` for intervention `i`,
    /// example `b`.
    pub fn sources_to_base(sources: Vec<Vec<Vec<usize>>>, base: Vec<Vec<Vec<usize>>>) -> Self {
        UnitLocations::SourcesToBase(LocSpec::Full {
            sources: Some(
                sources
                    .into_iter()
                    .map(|l| Some(UnitLoc::Units(l)))
                    .collect(),
            ),
            base: Some(base.into_iter().map(|l| Some(UnitLoc::Units(l))).collect()),
        })
    }

    /// The full form with any location kind (heads and positions included).
    pub fn full(sources: Option<Vec<Option<UnitLoc>>>, base: Vec<Option<UnitLoc>>) -> Self {
        UnitLocations::SourcesToBase(LocSpec::Full {
            sources,
            base: Some(base),
        })
    }

    /// Base-only locations `[intervention][example][positions]`.
    pub fn base(base: Vec<Vec<Vec<usize>>>) -> Self {
        UnitLocations::Base(LocSpec::Full {
            sources: None,
            base: Some(base.into_iter().map(|l| Some(UnitLoc::Units(l))).collect()),
        })
    }

    /// Base-only: position `p` for every intervention and example.
    pub fn base_position(p: usize) -> Self {
        UnitLocations::Base(LocSpec::Position(p))
    }

    /// Parses pyvene's JSON form (see [`Self::from_json_value`]).
    pub fn from_json_str(json: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(json).map_err(|source| VeneError::Json {
            what: "unit locations".into(),
            source,
        })?;
        Self::from_json_value(&v)
    }

    /// Parses pyvene's forms: `{"sources->base": X}`, `{"base": X}`, or serial keys
    /// `{"source_0->source_1": X, "source_1->base": Y}`, where X is an int, an `[s, b]` pair
    /// (either may be null), a flat list of positions, or `[sources, base]` each
    /// `[intervention][example][positions]` (for `h.pos`: `[intervention][[heads per example],
    /// [positions per example]]`; null for an intervention without locations). pyvene reads
    /// any two ints as an `[s, b]` pair; vene's tagged forms say what is meant:
    /// `{"position": p}`, `{"pair": [s, b]}`, `{"positions": [p, q]}` (two positions, in
    /// source and base). [`Self::to_json_value`] writes what this reads back.
    pub fn from_json_value(v: &Value) -> Result<Self> {
        let map = v
            .as_object()
            .ok_or_else(|| bad(format!("expected an object, got {v}")))?;
        if let Some(x) = map.get("sources->base") {
            if map.len() != 1 {
                return Err(bad("\"sources->base\" must be the only key".into()));
            }
            return Ok(UnitLocations::SourcesToBase(parse_spec(x, false)?));
        }
        if let Some(x) = map.get("base") {
            if map.len() != 1 {
                return Err(bad("\"base\" must be the only key".into()));
            }
            return Ok(UnitLocations::Base(parse_spec(x, true)?));
        }
        let mut steps: Vec<(usize, LocSpec)> = Vec::new();
        for (k, x) in map {
            let idx = parse_serial_key(k, map.len())?;
            steps.push((idx, parse_spec(x, false)?));
        }
        steps.sort_by_key(|(i, _)| *i);
        for (expected, (i, _)) in steps.iter().enumerate() {
            if *i != expected {
                return Err(bad(format!("serial keys must be source_0 ... source_{} with no gap; source_{expected} is missing", steps.len().saturating_sub(1))));
            }
        }
        Ok(UnitLocations::Serial(
            steps.into_iter().map(|(_, s)| s).collect(),
        ))
    }

    /// The JSON [`Self::from_json_value`] reads back to `self`: pyvene's forms, except a flat
    /// list of exactly two positions, which pyvene would read as an (s, b) pair: that one is
    /// written `{"positions": [p, q]}`.
    ///
    /// ```
    /// use vene::{LocSpec, UnitLocations};
    /// let two = UnitLocations::SourcesToBase(LocSpec::Same(vec![3, 4]));
    /// let json = two.to_json_value();
    /// assert_eq!(json.to_string(), r#"{"sources->base":{"positions":[3,4]}}"#);
    /// assert_eq!(UnitLocations::from_json_value(&json)?, two);
    /// assert_eq!(UnitLocations::pair(3, 4).to_json_value().to_string(), r#"{"sources->base":[3,4]}"#);
    /// # Ok::<(), vene::VeneError>(())
    /// ```
    pub fn to_json_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        match self {
            UnitLocations::SourcesToBase(s) => {
                map.insert("sources->base".into(), spec_json(s, false));
            }
            UnitLocations::Base(s) => {
                map.insert("base".into(), spec_json(s, true));
            }
            UnitLocations::Serial(steps) => {
                for (i, s) in steps.iter().enumerate() {
                    let to = if i + 1 == steps.len() {
                        "base".to_string()
                    } else {
                        format!("source_{}", i + 1)
                    };
                    map.insert(format!("source_{i}->{to}"), spec_json(s, false));
                }
            }
        }
        Value::Object(map)
    }

    /// Resolves to per-intervention (parallel) or per-group (serial) locations.
    /// `group_sizes[g]`: interventions in group `g`.
    pub(crate) fn resolve(
        &self,
        mode: Mode,
        n_interventions: usize,
        group_sizes: &[usize],
        batch: usize,
    ) -> Result<Vec<Resolved>> {
        match (mode, self) {
            (Mode::Parallel, UnitLocations::SourcesToBase(s)) => {
                Ok(vec![expand(s, false, n_interventions, batch)?])
            }
            (_, UnitLocations::Base(s)) => {
                let r = expand(s, true, n_interventions, batch)?;
                match mode {
                    Mode::Parallel => Ok(vec![r]),
                    Mode::Serial => Err(bad(
                        "serial mode needs source_i->... keys, not \"base\"".into()
                    )),
                }
            }
            (Mode::Serial, UnitLocations::Serial(steps)) => {
                if steps.len() != group_sizes.len() {
                    return Err(bad(format!(
                        "serial mode with {} groups needs {} steps (source_0->... to source_{}->base), got {}",
                        group_sizes.len(),
                        group_sizes.len(),
                        group_sizes.len().saturating_sub(1),
                        steps.len()
                    )));
                }
                steps
                    .iter()
                    .zip(group_sizes)
                    .map(|(s, &n)| expand(s, false, n, batch))
                    .collect()
            }
            (Mode::Serial, UnitLocations::SourcesToBase(s)) => group_sizes
                .iter()
                .map(|&n| match s {
                    LocSpec::Full { .. } => Err(bad(
                        "serial mode takes the full form under source_i->source_j keys".into(),
                    )),
                    _ => expand(s, false, n, batch),
                })
                .collect(),
            (Mode::Parallel, UnitLocations::Serial(_)) => Err(bad(
                "source_i->source_j keys are for serial mode; the config is parallel".into(),
            )),
        }
    }
}

/// One spec as JSON; under `"base"` (`base_only`) the full form is the base's list alone.
fn spec_json(spec: &LocSpec, base_only: bool) -> Value {
    let idx = |p: &Option<usize>| p.map_or(Value::Null, Value::from);
    match spec {
        LocSpec::Position(p) => Value::from(*p),
        LocSpec::Pair(s, b) => Value::Array(vec![idx(s), idx(b)]),
        LocSpec::Same(ps) if ps.len() == 2 => serde_json::json!({ "positions": ps }),
        LocSpec::Same(ps) => Value::from(ps.clone()),
        LocSpec::Full { sources, base } => {
            let side = |v: &Option<Vec<Option<UnitLoc>>>| match v {
                None => Value::Null,
                Some(list) => Value::Array(
                    list.iter()
                        .map(|l| match l {
                            None => Value::Null,
                            Some(UnitLoc::Units(u)) => serde_json::json!(u),
                            Some(UnitLoc::HeadPositions(h)) => {
                                serde_json::json!([h.heads, h.positions])
                            }
                        })
                        .collect(),
                ),
            };
            match (base_only, sources) {
                (true, None) => side(base),
                _ => Value::Array(vec![side(sources), side(base)]),
            }
        }
    }
}

fn bad(msg: String) -> VeneError {
    VeneError::Locations(msg)
}

fn parse_serial_key(k: &str, n_keys: usize) -> Result<usize> {
    let err = || {
        bad(format!(
            "unknown key '{k}'; expected \"sources->base\", \"base\", or source_i->source_j / source_i->base"
        ))
    };
    let (from, to) = k.split_once("->").ok_or_else(err)?;
    let i: usize = from
        .strip_prefix("source_")
        .and_then(|s| s.parse().ok())
        .ok_or_else(err)?;
    let to_ok = if to == "base" {
        i + 1 == n_keys
    } else {
        to.strip_prefix("source_")
            .and_then(|s| s.parse::<usize>().ok())
            .is_some_and(|j| j == i + 1)
    };
    if !to_ok {
        return Err(err());
    }
    Ok(i)
}

fn as_index(v: &Value) -> Option<usize> {
    v.as_u64().and_then(|x| usize::try_from(x).ok())
}

/// vene's tagged forms, which say what a list means: `{"position": p}`, `{"pair": [s, b]}`
/// (either may be null) and `{"positions": [p, ...]}` (any number of positions, two included).
fn parse_tagged(map: &serde_json::Map<String, Value>) -> Result<LocSpec> {
    let (key, v) = match map.iter().next() {
        Some(kv) if map.len() == 1 => kv,
        _ => {
            return Err(bad(format!(
                "a tagged location has one key (\"position\", \"pair\" or \"positions\"), got {}",
                Value::Object(map.clone())
            )))
        }
    };
    let index_or_null = |e: &Value| -> Result<Option<usize>> {
        match e {
            Value::Null => Ok(None),
            e => as_index(e)
                .map(Some)
                .ok_or_else(|| bad(format!("{key}: expected a non-negative index, got {e}"))),
        }
    };
    match key.as_str() {
        "position" => as_index(v)
            .map(LocSpec::Position)
            .ok_or_else(|| bad(format!("position: expected a non-negative index, got {v}"))),
        "pair" => match v.as_array().map(Vec::as_slice) {
            Some([s, b]) => Ok(LocSpec::Pair(index_or_null(s)?, index_or_null(b)?)),
            _ => Err(bad(format!("pair: expected [source, base], got {v}"))),
        },
        "positions" => {
            let list = v
                .as_array()
                .ok_or_else(|| bad(format!("positions: expected a list, got {v}")))?;
            let ps = list
                .iter()
                .map(|e| index_or_null(e)?.ok_or_else(|| bad("positions: null".into())))
                .collect::<Result<Vec<_>>>()?;
            Ok(LocSpec::Same(ps))
        }
        other => Err(bad(format!(
            "unknown tagged location \"{other}\"; expected \"position\", \"pair\" or \"positions\""
        ))),
    }
}

fn parse_spec(x: &Value, base_only: bool) -> Result<LocSpec> {
    if let Some(p) = as_index(x) {
        return Ok(LocSpec::Position(p));
    }
    if let Some(map) = x.as_object() {
        return parse_tagged(map);
    }
    let list = x
        .as_array()
        .ok_or_else(|| bad(format!("expected an int or a list, got {x}")))?;
    if list.len() == 2 && list.iter().all(|e| e.is_null() || as_index(e).is_some()) {
        // pyvene reads any two ints as an (s, b) pair, under "base" too
        return Ok(LocSpec::Pair(as_index(&list[0]), as_index(&list[1])));
    }
    if list.iter().all(|e| as_index(e).is_some()) {
        return Ok(LocSpec::Same(list.iter().filter_map(as_index).collect()));
    }
    if base_only {
        return Ok(LocSpec::Full {
            sources: None,
            base: Some(parse_per_intervention(x)?),
        });
    }
    if list.len() != 2 {
        return Err(bad(format!(
            "the full form is [source_locations, base_locations]; got a list of {}",
            list.len()
        )));
    }
    let side = |v: &Value| -> Result<Option<Vec<Option<UnitLoc>>>> {
        if v.is_null() {
            Ok(None)
        } else {
            parse_per_intervention(v).map(Some)
        }
    };
    Ok(LocSpec::Full {
        sources: side(&list[0])?,
        base: side(&list[1])?,
    })
}

fn parse_per_intervention(v: &Value) -> Result<Vec<Option<UnitLoc>>> {
    let list = v.as_array().ok_or_else(|| {
        bad(format!(
            "expected a list over interventions ([intervention][example][positions]), got {v}"
        ))
    })?;
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            if e.is_null() {
                return Ok(None);
            }
            parse_unit_loc(e)
                .map(Some)
                .map_err(|m| bad(format!("intervention {i}: {m}")))
        })
        .collect()
}

fn parse_2d(v: &Value) -> std::result::Result<Vec<Vec<usize>>, String> {
    let rows = v
        .as_array()
        .ok_or_else(|| format!("expected [example][indices], got {v}"))?;
    rows.iter()
        .map(|r| {
            if let Some(p) = as_index(r) {
                return Ok(vec![p]);
            }
            r.as_array()
                .ok_or_else(|| format!("expected a list of indices, got {r}"))?
                .iter()
                .map(|e| {
                    as_index(e).ok_or_else(|| format!("expected a non-negative index, got {e}"))
                })
                .collect()
        })
        .collect()
}

fn depth(v: &Value) -> usize {
    match v.as_array().and_then(|a| a.first()) {
        Some(first) => 1 + depth(first),
        None if v.is_array() => 1,
        None => 0,
    }
}

fn parse_unit_loc(v: &Value) -> std::result::Result<UnitLoc, String> {
    if depth(v) >= 3 {
        let pair = v.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
            format!("h.pos locations are [heads per example, positions per example], got {v}")
        })?;
        Ok(UnitLoc::head_positions(
            parse_2d(&pair[0])?,
            parse_2d(&pair[1])?,
        ))
    } else {
        Ok(UnitLoc::Units(parse_2d(v)?))
    }
}

fn expand(spec: &LocSpec, base_only: bool, n: usize, batch: usize) -> Result<Resolved> {
    let same = |p: &[usize]| Some(UnitLoc::Units(vec![p.to_vec(); batch]));
    let r = match spec {
        LocSpec::Position(p) => Resolved {
            sources: vec![if base_only { None } else { same(&[*p]) }; n],
            base: vec![same(&[*p]); n],
        },
        LocSpec::Pair(s, b) => Resolved {
            sources: vec![s.and_then(|s| same(&[s])); n],
            base: vec![b.and_then(|b| same(&[b])); n],
        },
        LocSpec::Same(ps) => Resolved {
            sources: vec![if base_only { None } else { same(ps) }; n],
            base: vec![same(ps); n],
        },
        LocSpec::Full { sources, base } => {
            let check = |side: &str,
                         v: &Option<Vec<Option<UnitLoc>>>|
             -> Result<Vec<Option<UnitLoc>>> {
                match v {
                    None => Ok(vec![None; n]),
                    Some(list) => {
                        if list.len() != n {
                            return Err(bad(format!(
                                "{side} locations list {} interventions, the config has {n}",
                                list.len()
                            )));
                        }
                        for (i, l) in list.iter().enumerate() {
                            if let Some(l) = l {
                                if l.batch() != batch {
                                    return Err(bad(format!(
                                        "{side} locations of intervention {i} list {} examples, the batch has {batch}",
                                        l.batch()
                                    )));
                                }
                            }
                        }
                        Ok(list.clone())
                    }
                }
            };
            Resolved {
                sources: check("source", sources)?,
                base: check("base", base)?,
            }
        }
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_expand_like_pyvene() {
        let r = UnitLocations::pair(5, 3)
            .resolve(Mode::Parallel, 2, &[1, 1], 2)
            .unwrap();
        assert_eq!(
            r[0].sources[1],
            Some(UnitLoc::Units(vec![vec![5], vec![5]]))
        );
        assert_eq!(r[0].base[0], Some(UnitLoc::Units(vec![vec![3], vec![3]])));
        let r = UnitLocations::base_position(3)
            .resolve(Mode::Parallel, 1, &[1], 2)
            .unwrap();
        assert_eq!(r[0].sources, vec![None]);
        assert_eq!(r[0].base[0], Some(UnitLoc::Units(vec![vec![3], vec![3]])));
    }

    #[test]
    fn parses_head_positions_and_base_full_form() {
        let u = UnitLocations::from_json_str(
            r#"{"sources->base": [[[[[1],[1]],[[5],[5]]]], [[[[1],[1]],[[4],[4]]]]]}"#,
        )
        .unwrap();
        let r = u.resolve(Mode::Parallel, 1, &[1], 2).unwrap();
        assert_eq!(
            r[0].base[0],
            Some(UnitLoc::head_positions(
                vec![vec![1], vec![1]],
                vec![vec![4], vec![4]]
            ))
        );
        let b = UnitLocations::from_json_str(r#"{"base": [[[1, 3], [1, 3]]]}"#).unwrap();
        assert_eq!(b, UnitLocations::base(vec![vec![vec![1, 3], vec![1, 3]]]));
    }

    #[test]
    fn wrong_batch_or_count_is_an_error() {
        let u = UnitLocations::sources_to_base(vec![vec![vec![5]]], vec![vec![vec![4]]]);
        let e = u.resolve(Mode::Parallel, 1, &[1], 2).unwrap_err();
        assert!(e.to_string().contains("1 examples, the batch has 2"), "{e}");
        let e = u.resolve(Mode::Parallel, 2, &[1, 1], 1).unwrap_err();
        assert!(e.to_string().contains("the config has 2"), "{e}");
        assert!(UnitLocations::from_json_str(r#"{"src->base": 1}"#).is_err());
    }

    #[test]
    fn serial_keys_parse_in_order() {
        let u = UnitLocations::from_json_str(
            r#"{"source_1->base": [[[[2]]], [[[3]]]], "source_0->source_1": [[[[0]]], [[[1]]]]}"#,
        )
        .unwrap();
        let r = u.resolve(Mode::Serial, 2, &[1, 1], 1).unwrap();
        assert_eq!(r[0].sources[0], Some(UnitLoc::Units(vec![vec![0]])));
        assert_eq!(r[1].base[0], Some(UnitLoc::Units(vec![vec![3]])));
    }

    #[test]
    fn every_form_round_trips_through_json_and_two_positions_stay_two_positions() {
        let h = UnitLoc::head_positions(vec![vec![1], vec![0, 1]], vec![vec![5], vec![4]]);
        let cases = vec![
            UnitLocations::position(3),
            UnitLocations::pair(5, 3),
            UnitLocations::SourcesToBase(LocSpec::Pair(None, Some(2))),
            UnitLocations::SourcesToBase(LocSpec::Same(vec![3, 4])),
            UnitLocations::SourcesToBase(LocSpec::Same(vec![1, 2, 3])),
            UnitLocations::Base(LocSpec::Same(vec![0, 7])),
            UnitLocations::base_position(3),
            UnitLocations::sources_to_base(
                vec![vec![vec![5], vec![6]]],
                vec![vec![vec![4], vec![2, 3]]],
            ),
            UnitLocations::full(None, vec![Some(h.clone()), None]),
            UnitLocations::full(
                Some(vec![Some(h), None]),
                vec![None, Some(UnitLoc::Units(vec![vec![1], vec![]]))],
            ),
            UnitLocations::Base(LocSpec::Full {
                sources: None,
                base: Some(vec![Some(UnitLoc::Units(vec![vec![2], vec![3]]))]),
            }),
            UnitLocations::Serial(vec![LocSpec::Position(1), LocSpec::Same(vec![2, 3])]),
        ];
        for u in cases {
            let json = u.to_json_value();
            assert_eq!(UnitLocations::from_json_value(&json).unwrap(), u, "{json}");
        }
        // Two positions, in the tagged form, resolve as two positions in source and base.
        let two =
            UnitLocations::from_json_str(r#"{"sources->base": {"positions": [3, 4]}}"#).unwrap();
        let r = two.resolve(Mode::Parallel, 1, &[1], 1).unwrap();
        assert_eq!(r[0].sources[0], Some(UnitLoc::Units(vec![vec![3, 4]])));
        assert_eq!(r[0].base[0], Some(UnitLoc::Units(vec![vec![3, 4]])));
        // The untagged two-int list stays pyvene's (s, b) pair.
        let r = UnitLocations::from_json_str(r#"{"sources->base": [3, 4]}"#)
            .unwrap()
            .resolve(Mode::Parallel, 1, &[1], 1)
            .unwrap();
        assert_eq!(r[0].sources[0], Some(UnitLoc::Units(vec![vec![3]])));
        for (bad_json, needle) in [
            (r#"{"base": {"pair": [1]}}"#, "pair"),
            (r#"{"base": {"positions": [1, -2]}}"#, "positions"),
            (r#"{"base": {"spot": 1}}"#, "unknown tagged location"),
            (r#"{"base": {"position": 1, "pair": [1, 2]}}"#, "one key"),
        ] {
            let err = UnitLocations::from_json_str(bad_json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{bad_json}: {err}");
        }
    }
}
