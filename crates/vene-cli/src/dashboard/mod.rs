//! Static dashboards of SAE latents (what `vene dashboard` writes): one self-contained HTML
//! page per latent and an index linking them.
//!
//! - this module: what a page shows, computed from plain numbers: the top-activating tokens
//!   ([`top_activations`]), the activation histogram ([`histogram`]), the logit effects of a
//!   decoder direction ([`logit_effects`]);
//! - [`html`]: the pages, with every text escaped ([`html::escape`]); no network references
//!   (inline CSS and SVG only).

pub mod html;

use candle_core::{DType, Tensor};

use crate::{CliError, Result};

/// One token where a latent fired: which text, which position, how strongly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Index of the text in the corpus (0-based, blank lines not counted).
    pub text: usize,
    /// Position of the token in that text.
    pub pos: usize,
    /// The latent's activation there.
    pub value: f32,
}

/// The `n` largest positive activations over `acts` (`acts[text][position]`), largest
/// first; equal values keep corpus order (earlier text, then earlier position). NaNs and
/// values `<= 0` are never chosen.
///
/// ```
/// use vene_cli::dashboard::top_activations;
/// let acts = vec![vec![0.0, 2.0, 1.0], vec![3.0, 2.0]];
/// let top = top_activations(&acts, 3);
/// let got: Vec<(usize, usize, f32)> = top.iter().map(|h| (h.text, h.pos, h.value)).collect();
/// assert_eq!(got, vec![(1, 0, 3.0), (0, 1, 2.0), (1, 1, 2.0)]);
/// ```
pub fn top_activations(acts: &[Vec<f32>], n: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = acts
        .iter()
        .enumerate()
        .flat_map(|(text, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(move |(pos, v)| Hit {
                    text,
                    pos,
                    value: *v,
                })
        })
        .collect();
    // Stable sort: ties stay in corpus order.
    hits.sort_by(|a, b| b.value.total_cmp(&a.value));
    hits.truncate(n);
    hits
}

/// The counts of `values` in `bins` equal bins from 0 to the largest value (the last bin
/// closed), with that largest value; `(vec![0; bins], 0.0)` when there is none. Values
/// `<= 0` and NaNs are left out.
///
/// ```
/// use vene_cli::dashboard::histogram;
/// // bins of width 1 over [0, 4]: [0,1) [1,2) [2,3) [3,4]
/// assert_eq!(histogram(&[0.5, 1.0, 1.5, 4.0, 0.0], 4), (vec![1, 2, 0, 1], 4.0));
/// ```
pub fn histogram(values: &[f32], bins: usize) -> (Vec<usize>, f32) {
    let bins = bins.max(1);
    let positive = || values.iter().copied().filter(|v| *v > 0.0);
    let max = positive().fold(0f32, f32::max);
    let mut counts = vec![0usize; bins];
    if max > 0.0 {
        for v in positive() {
            let i = ((v / max) * bins as f32) as usize;
            counts[i.min(bins - 1)] += 1;
        }
    }
    (counts, max)
}

/// The tokens a direction raises and lowers most, read through the unembedding.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitEffects {
    /// The `k` largest `(token id, effect)`, largest first.
    pub positive: Vec<(u32, f32)>,
    /// The `k` smallest `(token id, effect)`, most negative first.
    pub negative: Vec<(u32, f32)>,
}

/// The direct logit effects of `direction` `[d]` through `unembedding` `[vocab, d]`:
/// `unembedding @ direction` (SAELens / sae_vis: `W_dec[i] @ W_U`, without the final norm),
/// its `k` largest and `k` smallest entries. Shapes that do not fit are an error naming
/// them.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let w_u = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [-1.0, -1.0]], &Device::Cpu)?;
/// let dir = Tensor::new(&[2f32, 1.0], &Device::Cpu)?;
/// let e = vene_cli::dashboard::logit_effects(&dir, &w_u, 1)?;
/// assert_eq!(e.positive, vec![(0, 2.0)]);
/// assert_eq!(e.negative, vec![(2, -3.0)]);
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn logit_effects(direction: &Tensor, unembedding: &Tensor, k: usize) -> Result<LogitEffects> {
    let (vocab, d) = unembedding.dims2()?;
    if direction.dims() != [d] {
        return Err(CliError::invalid(format!(
            "logit effects: a direction of shape {:?} through an unembedding of [{vocab}, {d}]",
            direction.dims()
        )));
    }
    let effects = unembedding
        .to_dtype(DType::F32)?
        .matmul(
            &direction
                .to_dtype(DType::F32)?
                .to_device(unembedding.device())?
                .unsqueeze(1)?,
        )?
        .squeeze(1)?
        .to_vec1::<f32>()?;
    let mut order: Vec<u32> = (0..vocab as u32).collect();
    order.sort_by(|a, b| effects[*b as usize].total_cmp(&effects[*a as usize]));
    let k = k.min(vocab);
    let pick = |i: &u32| (*i, effects[*i as usize]);
    Ok(LogitEffects {
        positive: order.iter().take(k).map(pick).collect(),
        negative: order.iter().rev().take(k).map(pick).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn top_activations_are_the_largest_positive_in_corpus_order_for_ties() {
        let acts = vec![
            vec![0.5, f32::NAN, -3.0, 2.0],
            vec![],
            vec![2.0, 0.0, 4.0],
            vec![0.25],
        ];
        let got: Vec<(usize, usize, f32)> = top_activations(&acts, 4)
            .iter()
            .map(|h| (h.text, h.pos, h.value))
            .collect();
        assert_eq!(
            got,
            vec![(2, 2, 4.0), (0, 3, 2.0), (2, 0, 2.0), (0, 0, 0.5)]
        );
        assert_eq!(top_activations(&acts, 100).len(), 5);
        assert!(top_activations(&[vec![0.0, -1.0]], 3).is_empty());
    }

    #[test]
    fn logit_effects_are_the_unembedding_times_the_direction() {
        // vocab 5, d 3
        let w = [
            [1.0f32, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [1.0, 1.0, 1.0],
            [-1.0, 2.0, 0.5],
        ];
        let dir = [0.5f32, -1.0, 2.0];
        // by hand: 0.5, -1, 2, 1.5, -0.5 - 2 + 1 = -1.5
        let w_u = Tensor::new(&w, &Device::Cpu).unwrap();
        let d = Tensor::new(&dir, &Device::Cpu).unwrap();
        let e = logit_effects(&d, &w_u, 2).unwrap();
        assert_eq!(e.positive, vec![(2, 2.0), (3, 1.5)]);
        assert_eq!(e.negative, vec![(4, -1.5), (1, -1.0)]);
        let bad = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        assert!(logit_effects(&bad, &w_u, 2).is_err());
    }

    #[test]
    fn histogram_leaves_out_zeros_and_closes_the_last_bin() {
        assert_eq!(histogram(&[0.0, -1.0], 3), (vec![0, 0, 0], 0.0));
        assert_eq!(histogram(&[3.0, 1.0, 2.9, 0.0], 3), (vec![0, 1, 2], 3.0));
    }
}
