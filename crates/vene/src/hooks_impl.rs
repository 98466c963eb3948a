//! The [`Hooks`] impl of one forward pass: gathers units (getters) and intervenes (setters).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use vene_hooks::{
    gather_attention_rows, gather_head_positions, gather_positions, scatter_attention_rows,
    scatter_head_positions, scatter_positions, HeadPositions, HookCall, HookError, Hooks, Site,
    Unit,
};
use vene_interventions::{Intervention, Selection};

use crate::locations::UnitLoc;
use crate::VeneError;

/// Where one intervention acts, resolved against the model.
#[derive(Debug, Clone)]
pub(crate) struct SlotSite {
    /// The site the model calls (a head component's tap).
    pub tap: Site,
    /// What the locations index.
    pub unit: Unit,
    /// Heads the tap splits into (head components), else `None`.
    pub n_heads: Option<usize>,
    /// For `attention_weight`: the width `W` its units are padded to (pyvene's
    /// `max_position_embeddings`); the units are rows of probabilities over the keys.
    pub attention_width: Option<usize>,
}

impl SlotSite {
    /// The units of `x` `[B, T, w]` at `loc` (`None`: every position): `[B, n, d]`.
    pub fn gather(&self, x: &Tensor, loc: Option<&UnitLoc>) -> Result<Tensor, HookError> {
        if let Some(w) = self.attention_width {
            let rows = gather_attention_rows(x, &self.attention_loc(x, loc)?)?;
            return pad_rows(&rows, w);
        }
        match self.n_heads {
            None => match loc {
                None => Ok(x.contiguous()?),
                Some(UnitLoc::Units(p)) => gather_positions(x, p),
                Some(UnitLoc::HeadPositions(_)) => Err(wrong_unit(self)),
            },
            Some(h) => gather_head_positions(x, h, &self.head_loc(x, loc)?),
        }
    }

    /// Writes `values` `[B, n, d]` back at `loc`.
    pub fn scatter(
        &self,
        x: &Tensor,
        loc: Option<&UnitLoc>,
        values: &Tensor,
    ) -> Result<Tensor, HookError> {
        if self.attention_width.is_some() {
            let k = x.dim(3)?;
            let rows = values.narrow(2, 0, k.min(values.dim(2)?))?;
            return scatter_attention_rows(x, &self.attention_loc(x, loc)?, &rows);
        }
        match self.n_heads {
            None => match loc {
                None => {
                    if values.dims() != x.dims() {
                        return Err(HookError::Shape {
                            what: "intervened representation".into(),
                            expected: format!("{:?}", x.dims()),
                            got: values.dims().to_vec(),
                        });
                    }
                    Ok(values.to_dtype(x.dtype())?)
                }
                Some(UnitLoc::Units(p)) => scatter_positions(x, p, values),
                Some(UnitLoc::HeadPositions(_)) => Err(wrong_unit(self)),
            },
            Some(h) => scatter_head_positions(x, h, &self.head_loc(x, loc)?, values),
        }
    }

    /// Collected units as pyvene returns them: `[B, n, d]`, or `[B, heads, positions, hd]`
    /// for head components.
    pub fn collected_layout(
        &self,
        x: &Tensor,
        loc: Option<&UnitLoc>,
        units: Tensor,
    ) -> Result<Tensor, HookError> {
        if self.attention_width.is_some() {
            let hp = self.attention_loc(x, loc)?;
            let (b, _, w) = units.dims3()?;
            let k = x.dim(3)?.min(w);
            let nh = hp.heads.first().map_or(0, Vec::len);
            let nq = hp.positions.first().map_or(0, Vec::len);
            return Ok(units
                .narrow(2, 0, k)?
                .contiguous()?
                .reshape((b, nh, nq, k))?);
        }
        if self.n_heads.is_none() {
            return Ok(units);
        }
        let hp = self.head_loc(x, loc)?;
        let (b, _, hd) = units.dims3()?;
        let nh = hp.heads.first().map_or(0, Vec::len);
        let np = hp.positions.first().map_or(0, Vec::len);
        Ok(units.reshape((b, nh, np, hd))?)
    }

    /// The (head, query position) rows of `attention_weight` `x` `[B, H, Q, K]` at `loc`:
    /// pyvene's `pos` and `h` locations index the heads (every query position); `h.pos`
    /// gives heads and query positions; no locations, every row.
    fn attention_loc(&self, x: &Tensor, loc: Option<&UnitLoc>) -> Result<HeadPositions, HookError> {
        let (b, h, q, _) = x.dims4()?;
        let all_queries = || vec![(0..q).collect::<Vec<_>>(); b];
        match (self.unit, loc) {
            (Unit::HPos, Some(UnitLoc::HeadPositions(hp))) => Ok(hp.clone()),
            (Unit::Pos | Unit::H, Some(UnitLoc::Units(heads))) => Ok(HeadPositions {
                heads: heads.clone(),
                positions: all_queries(),
            }),
            (_, None) => Ok(HeadPositions {
                heads: vec![(0..h).collect(); b],
                positions: all_queries(),
            }),
            _ => Err(wrong_unit(self)),
        }
    }

    fn head_loc(&self, x: &Tensor, loc: Option<&UnitLoc>) -> Result<HeadPositions, HookError> {
        let (b, t, _) = x.dims3()?;
        let all_pos = || vec![(0..t).collect::<Vec<_>>(); b];
        match (self.unit, loc) {
            (Unit::HPos, Some(UnitLoc::HeadPositions(hp))) => Ok(hp.clone()),
            (Unit::H, Some(UnitLoc::Units(heads))) => Ok(HeadPositions {
                heads: heads.clone(),
                positions: all_pos(),
            }),
            (_, None) => Ok(HeadPositions {
                heads: vec![(0..self.n_heads.unwrap_or(1)).collect(); b],
                positions: all_pos(),
            }),
            _ => Err(wrong_unit(self)),
        }
    }
}

/// Rows `[B, n, K]` padded with zeros to `[B, n, w]` (the width the intervention was built
/// with); an error when the keys are more than `w`.
fn pad_rows(rows: &Tensor, w: usize) -> Result<Tensor, HookError> {
    let (b, n, k) = rows.dims3()?;
    if k > w {
        return Err(HookError::Shape {
            what: format!(
                "attention rows over {k} keys (an attention_weight unit holds at most \
                 max_position_embeddings = {w})"
            ),
            expected: format!("[{b}, {n}, <= {w}]"),
            got: rows.dims().to_vec(),
        });
    }
    if k == w {
        return Ok(rows.contiguous()?);
    }
    let pad = Tensor::zeros((b, n, w - k), rows.dtype(), rows.device())?;
    Ok(Tensor::cat(&[rows, &pad], 2)?)
}

fn wrong_unit(s: &SlotSite) -> HookError {
    if s.attention_width.is_some() {
        let expected = if s.unit == Unit::HPos {
            "[[heads per example], [query positions per example]] per intervention"
        } else {
            "[example][heads] per intervention (pyvene's pos and h index the heads of attention_weight)"
        };
        return HookError::BadLocations(format!(
            "unit {} at {} takes locations {expected}",
            s.unit, s.tap
        ));
    }
    let expected = match (s.n_heads.is_some(), s.unit) {
        (true, Unit::HPos) => "[[heads per example], [positions per example]] per intervention",
        (true, _) => "[example][heads] per intervention",
        (false, _) => "[example][positions] per intervention",
    };
    HookError::BadLocations(format!(
        "unit {} at {} takes locations {expected}",
        s.unit, s.tap
    ))
}

/// Gathers the units of one intervention during a run.
#[derive(Debug, Clone)]
pub(crate) struct Getter {
    /// The intervention's index.
    pub slot: usize,
    /// Where (for skip: the component's input site).
    pub site: SlotSite,
    /// Which units.
    pub loc: Option<UnitLoc>,
}

/// When a setter acts during generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Every call (a plain forward).
    Always,
    /// Only the first forward (the prompt), at the given locations.
    PromptOnly,
    /// Only generated steps (`seq_offset > 0`), at every position of the step.
    StepsOnly,
    /// Prompt at the locations, then every position of each generated step.
    PromptAndSteps,
}

/// Intervenes on one intervention's units during a run.
#[derive(Debug, Clone)]
pub(crate) struct Setter {
    /// The intervention's index.
    pub slot: usize,
    /// Where.
    pub site: SlotSite,
    /// Which base units.
    pub loc: Option<UnitLoc>,
    /// Which dims.
    pub selection: Selection,
    /// Per-call arguments (pyvene's subspace dicts); empty for most calls.
    pub args: vene_interventions::CallArgs,
    /// The intervention.
    pub intervention: Arc<dyn Intervention>,
    /// Its source: units of a source run or a constant `[d]`; `None` for sourceless
    /// interventions and for skip (whose source a getter of this run provides).
    pub source: Option<Tensor>,
}

/// The hooks of one forward pass: setters first, then getters, at each site.
#[derive(Debug, Default)]
pub(crate) struct RunHooks {
    pub setters: Vec<Setter>,
    pub getters: Vec<Getter>,
    /// Units gathered by the getters, by intervention index.
    pub gathered: HashMap<usize, Tensor>,
    /// Activations returned by collect interventions, by intervention index (one per call).
    pub collected: Vec<(usize, Tensor)>,
    /// Generation phase of the setters.
    pub phase: Option<Phase>,
    /// Detach intervention outputs and gathered units from autograd (inference).
    pub detach: bool,
}

impl RunHooks {
    fn setter_on(&self, call: &HookCall) -> Option<bool> {
        // Some(use_locations) when setters act on this call
        let is_prompt = call.seq_offset == 0;
        match self.phase.unwrap_or(Phase::Always) {
            Phase::Always => Some(true),
            Phase::PromptOnly => is_prompt.then_some(true),
            Phase::StepsOnly => (!is_prompt).then_some(false),
            Phase::PromptAndSteps => Some(is_prompt),
        }
    }

    fn apply_setter(&mut self, i: usize, use_loc: bool, x: Tensor) -> Result<Tensor, HookError> {
        let Some(s) = self.setters.get(i) else {
            return Ok(x);
        };
        let loc = if use_loc { s.loc.as_ref() } else { None };
        let base = s.site.gather(&x, loc)?;
        let skip_source;
        let source = if s.intervention.is_skip() {
            skip_source = self.gathered.get(&s.slot).cloned().ok_or_else(|| {
                hook_err(VeneError::Config(format!(
                    "skip intervention at {}: its input was not seen in this run",
                    s.site.tap
                )))
            })?;
            Some(&skip_source)
        } else {
            s.source.as_ref()
        };
        let source = if !use_loc {
            // a generated step: one unit per example per position of the step
            match source {
                Some(src) if src.rank() == 3 => {
                    let (b, n, d) = src.dims3()?;
                    let (_, t, _) = base.dims3()?;
                    if n == t {
                        Some(src.clone())
                    } else if n == 1 {
                        Some(src.broadcast_as((b, t, d))?.contiguous()?)
                    } else {
                        return Err(HookError::BadLocations(format!(
                            "a generated step of {t} tokens cannot take {n} source units per example; give one"
                        )));
                    }
                }
                other => other.cloned(),
            }
        } else {
            source.cloned()
        };
        let out = s
            .intervention
            .forward_with_args(&base, source.as_ref(), &s.selection, &s.args)
            .map_err(|e| HookError::Hook(Box::new(e)))?;
        // inference: trainable weights must not make the rest of the model a tracked graph
        let out = if self.detach { out.detach() } else { out };
        if s.intervention.is_collect() {
            let out = s.site.collected_layout(&x, loc, out)?;
            self.collected.push((s.slot, out));
            return Ok(x);
        }
        s.site.scatter(&x, loc, &out)
    }
}

pub(crate) fn hook_err(e: VeneError) -> HookError {
    HookError::Hook(Box::new(e))
}

impl Hooks for RunHooks {
    fn is_active(&self, site: Site) -> bool {
        self.setters.iter().any(|s| s.site.tap == site)
            || self.getters.iter().any(|g| g.site.tap == site)
    }

    fn on_activation(&mut self, call: HookCall, activation: Tensor) -> vene_hooks::Result<Tensor> {
        let mut x = activation;
        if let Some(use_loc) = self.setter_on(&call) {
            for i in 0..self.setters.len() {
                if self.setters[i].site.tap == call.site {
                    x = self.apply_setter(i, use_loc, x)?;
                }
            }
        }
        for g in self.getters.iter().filter(|g| g.site.tap == call.site) {
            // in a generated step (only skip inputs are gathered there) take every position
            let loc = if call.seq_offset == 0 {
                g.loc.as_ref()
            } else {
                None
            };
            let units = g.site.gather(&x, loc)?;
            let units = if self.detach { units.detach() } else { units };
            self.gathered.insert(g.slot, units);
        }
        Ok(x)
    }

    /// A run is needed up to the last layer a getter reads; setters after it change nothing
    /// that is read.
    fn last_layer(&self) -> Option<usize> {
        self.getters.iter().map(|g| g.site.tap.layer).max()
    }
}
