//! When a base and its one source run share their first layers: below the first layer any
//! intervention reads or writes, the two runs differ only in their inputs, so they can run as one
//! batch there (bigger matrix products, one pass over those layers' weights) and split after.

use vene_models::{LanguageModel, Prefix};

use crate::config::Mode;
use crate::forward::Input;
use crate::source_prefix::positions_needed;
use crate::{ForwardRequest, IntervenableModel, Result};

/// Sharing pays while the runs are small (their matrix products are far from the machine's
/// rate and the weights are read once instead of twice); above this many tokens per run
/// (batch × length), one batch or two cost the same and sharing only adds the concatenation.
/// Measured with the `shared_prefix/*` groups of `benches/forward.rs` (docs/benchmarks.md).
pub(crate) const SHARED_PREFIX_MAX_TOKENS: usize = 256;

/// The base and the source of group `group`, run together through the first layers.
pub(crate) struct SharedPrefix {
    pub group: usize,
    pub base: Prefix,
    pub source: Prefix,
}

fn prefix_of(input: &Input) -> Prefix {
    Prefix::new(input.ids.clone())
        .with_mask(input.mask.clone())
        .with_positions(input.position_ids.clone())
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// The first layer any intervention touches (reads, writes, or reads a skip input).
    fn first_layer_touched(&self) -> Option<usize> {
        self.slots
            .iter()
            .flat_map(|s| std::iter::once(&s.site).chain(s.skip_input.as_ref()))
            .map(|site| site.tap.layer)
            .min()
    }

    /// Whether the source run of `group` will run on fewer than its `t` positions
    /// (`source_prefix`): then it is cheaper alone than shared with the base.
    fn source_runs_on_fewer_positions(
        &self,
        req: &ForwardRequest,
        group: usize,
        batch: usize,
        t: usize,
    ) -> bool {
        if !self.model.is_causal() {
            return false;
        }
        let Ok(resolved) = self.resolve_locations(req, batch) else {
            return false; // the request's own preparation reports the error
        };
        let Some(run) = resolved.first() else {
            return false;
        };
        let reads = self.groups[group]
            .iter()
            .filter(|&&i| self.slots[i].reads_source())
            .map(|&i| {
                (
                    &self.slots[i].site,
                    run.sources.get(i).and_then(Option::as_ref),
                )
            });
        positions_needed(reads).is_some_and(|n| n < t)
    }

    /// Runs the base and the source together up to the first layer touched, when the request
    /// has exactly one source run of the base's length, in parallel mode, and the runs are small
    /// enough for sharing to pay ([`SHARED_PREFIX_MAX_TOKENS`]), and the source does not run on
    /// fewer positions alone (`source_prefix`).
    pub(crate) fn shared_prefix(&self, req: &ForwardRequest) -> Result<Option<SharedPrefix>> {
        if self.config.mode != Mode::Parallel || req.sources.is_empty() {
            return Ok(None);
        }
        let Ok((b, t)) = req.base.ids.dims2() else {
            return Ok(None);
        };
        if b * t > SHARED_PREFIX_MAX_TOKENS {
            return Ok(None);
        }
        let Some(first) = self.first_layer_touched().filter(|&l| l > 0) else {
            return Ok(None);
        };
        // the groups whose source run reads something
        let Ok(sources) = req.group_sources(self.groups.len()) else {
            return Ok(None);
        };
        let source_of = |g: usize| sources[g].as_ref();
        let runs: Vec<(usize, &Input)> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, members)| members.iter().any(|&i| self.slots[i].reads_source()))
            .filter_map(|(g, _)| source_of(g).map(|s| (g, s)))
            .collect();
        let [(group, source)] = runs.as_slice() else {
            return Ok(None);
        };
        if source.ids.dims2().ok() != Some((b, t)) {
            return Ok(None);
        }
        if self.source_runs_on_fewer_positions(req, *group, b, t) {
            return Ok(None);
        }
        let mut shared = self
            .model
            .forward_prefixes(vec![prefix_of(&req.base), prefix_of(source)], first)?;
        let (Some(source), Some(base)) = (shared.pop(), shared.pop()) else {
            return Ok(None);
        };
        Ok(Some(SharedPrefix {
            group: *group,
            base,
            source,
        }))
    }
}
