//! Source runs on a causal model stop at the last position they read: the activations at
//! positions `0..=p` of a causal decoder depend only on the inputs there, so a source read at
//! positions up to `p` runs on its first `p + 1` positions only (pyvene runs it whole).

use vene_hooks::Unit;

use crate::forward::Input;
use crate::hooks_impl::{Getter, SlotSite};
use crate::locations::UnitLoc;
use crate::Result;

/// How many leading positions of the source the reads at `(site, loc)` need: one past the
/// last position read, or `None` when they need every position (all positions read, heads as
/// units, attention-weight rows whose width is the source's length, or no position listed).
pub(crate) fn positions_needed<'a>(
    reads: impl IntoIterator<Item = (&'a SlotSite, Option<&'a UnitLoc>)>,
) -> Option<usize> {
    let mut needed = 0;
    for (site, loc) in reads {
        if site.unit != Unit::Pos || site.attention_width.is_some() {
            return None;
        }
        let Some(UnitLoc::Units(per_example)) = loc else {
            return None;
        };
        for positions in per_example {
            needed = needed.max(positions.iter().max()? + 1);
        }
    }
    (needed > 0).then_some(needed)
}

/// The positions the getters of one source run need ([`positions_needed`]).
pub(crate) fn positions_needed_by(getters: &[Getter]) -> Option<usize> {
    positions_needed(getters.iter().map(|g| (&g.site, g.loc.as_ref())))
}

/// `input` cut to its first `len` positions (ids, mask and position ids), or `None` when it is
/// not longer than that.
pub(crate) fn leading_positions(input: &Input, len: usize) -> Result<Option<Input>> {
    let t = input.ids.dim(1)?;
    if len >= t {
        return Ok(None);
    }
    let cut = |x: &candle_core::Tensor| x.narrow(x.rank() - 1, 0, len);
    Ok(Some(Input {
        ids: cut(&input.ids)?,
        mask: input.mask.as_ref().map(cut).transpose()?,
        position_ids: input.position_ids.as_ref().map(cut).transpose()?,
    }))
}
