//! The shuffle buffer's draw, shared by the store's reader and by streams that fill a buffer
//! from elsewhere (e.g. a model run while training).

use rand::Rng;

/// Moves one row, chosen uniformly at random, from `buffer` (rows of width `d`, back to back)
/// to the end of `out`, filling its place with the buffer's last row; `false` (and nothing
/// moved) when the buffer is empty.
///
/// ```
/// use rand::SeedableRng;
/// use vene_autoencoder::store::take_random_row;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let (mut buffer, mut out) = (vec![0., 0., 1., 1., 2., 2.], Vec::new());
/// while take_random_row(&mut buffer, 2, &mut rng, &mut out) {}
/// // every row came out once, whole
/// let mut rows: Vec<f32> = out.chunks(2).map(|r| { assert_eq!(r[0], r[1]); r[0] }).collect();
/// rows.sort_by(f32::total_cmp);
/// assert_eq!(rows, [0., 1., 2.]);
/// ```
pub fn take_random_row(
    buffer: &mut Vec<f32>,
    d: usize,
    rng: &mut impl Rng,
    out: &mut Vec<f32>,
) -> bool {
    let rows = buffer.len() / d.max(1);
    if rows == 0 {
        return false;
    }
    let j = rng.random_range(0..rows);
    out.extend_from_slice(&buffer[j * d..(j + 1) * d]);
    let last = (rows - 1) * d;
    if j * d != last {
        buffer.copy_within(last..last + d, j * d);
    }
    buffer.truncate(last);
    true
}
