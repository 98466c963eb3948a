//! Caps on sizes that come from outside (configs, hyperparameters, command lines) and make
//! vene allocate fresh tensors. Sizes read from files are checked against the file's length
//! instead.

/// The most elements one freshly built tensor may have: 2^32 (16 GiB in f32). A config asking
/// for more (a `latent_dim`, `units` or rank of 10^12) is refused with a typed error before
/// anything is allocated.
pub const MAX_NEW_TENSOR_ELEMENTS: usize = 1 << 32;

/// The element count of a tensor of shape `dims`, when it neither overflows nor exceeds
/// [`MAX_NEW_TENSOR_ELEMENTS`].
///
/// ```
/// use vene_autoencoder::limits::{checked_elements, MAX_NEW_TENSOR_ELEMENTS};
/// assert_eq!(checked_elements(&[16, 32]), Some(512));
/// assert_eq!(checked_elements(&[1_000_000, 1_000_000]), None);
/// assert_eq!(checked_elements(&[usize::MAX, 2]), None);
/// assert_eq!(checked_elements(&[MAX_NEW_TENSOR_ELEMENTS]), Some(MAX_NEW_TENSOR_ELEMENTS));
/// ```
pub fn checked_elements(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_NEW_TENSOR_ELEMENTS)
}
