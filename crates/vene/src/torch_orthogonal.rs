//! torch's orthogonal parametrization (`torch.nn.utils.parametrizations.orthogonal`, which
//! pyvene's rotated-space interventions use) in both directions: the weight that a saved
//! `rotate_layer.parametrizations.weight.{original, 0.base}` pair stands for, and the
//! completion of an orthonormal `[n, k]` matrix into the `[n, n]` `base` of a saved pair.
//!
//! The map is torch's default: the matrix exponential of the skew part of `tril(original)`
//! for a square weight, the Householder product of `tril(original, -1)` (columns signed by
//! the integer part of the diagonal) otherwise; then `base @ Q`. Computed in f64.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// The names of the parametrized pair in a pyvene state dict.
pub(crate) const ORIGINAL: &str = "rotate_layer.parametrizations.weight.original";
/// See [`ORIGINAL`].
pub(crate) const BASE: &str = "rotate_layer.parametrizations.weight.0.base";

/// `[n, n]` row-major: an orthogonal matrix whose first `k` columns are `cols` (`[n, k]` as
/// rows, orthonormal columns) unchanged; the others by Gram–Schmidt over the unit vectors.
pub(crate) fn complete_orthonormal(cols: &[Vec<f64>], n: usize, k: usize) -> Vec<f64> {
    let mut basis: Vec<Vec<f64>> = (0..k)
        .map(|j| (0..n).map(|i| cols[i][j]).collect())
        .collect();
    let mut candidate = 0;
    while basis.len() < n && candidate < n {
        let mut v = vec![0f64; n];
        v[candidate] = 1.0;
        candidate += 1;
        for _ in 0..2 {
            for b in &basis {
                let dot: f64 = b.iter().zip(&v).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-6 {
            v.iter_mut().for_each(|x| *x /= norm);
            basis.push(v);
        }
    }
    let mut out = vec![0f64; n * n];
    for (j, b) in basis.iter().enumerate() {
        for i in 0..n {
            out[i * n + j] = b[i];
        }
    }
    out
}

/// `exp(a)` of a row-major `[n, n]` matrix: scaling and squaring around a Taylor series (the
/// scaled matrix has norm <= 1/2, where 20 terms are exact to f64 rounding), the products
/// through candle's matmul. The identity, exactly, for a zero matrix (the state torch's
/// `right_inverse` leaves).
fn matrix_exp(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let norm = (0..n)
        .map(|i| a[i * n..(i + 1) * n].iter().map(|x| x.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let eye = Tensor::eye(n, DType::F64, &Device::Cpu)?;
    if norm == 0.0 {
        return Ok(eye.flatten_all()?.to_vec1()?);
    }
    let squarings = if norm > 0.5 {
        (norm / 0.5).log2().ceil() as i32
    } else {
        0
    };
    let scaled = (Tensor::from_slice(a, (n, n), &Device::Cpu)? * 0.5f64.powi(squarings))?;
    let mut result = eye.clone();
    let mut term = eye;
    for j in 1..=20 {
        term = (term.matmul(&scaled)? / j as f64)?;
        result = (result + &term)?;
    }
    for _ in 0..squarings {
        result = result.matmul(&result)?;
    }
    Ok(result.flatten_all()?.to_vec1()?)
}

/// The weight `[n, k]` that torch computes from `original` `[n, k]` (and `base` `[n, n]`,
/// when saved), in `original`'s dtype.
pub(crate) fn parametrized_weight(original: &Tensor, base: Option<&Tensor>) -> Result<Tensor> {
    let dtype = original.dtype();
    let (rows, cols) = original.dims2()?;
    let transposed = rows < cols;
    let x = if transposed {
        original.t()?
    } else {
        original.clone()
    };
    let (n, k) = (rows.max(cols), rows.min(cols));
    let x: Vec<f64> = x
        .to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1()?;
    let q = if n == k {
        // matrix_exp(tril(X) - tril(X)ᵀ)
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                a[i * n + j] += x[i * n + j];
                a[j * n + i] -= x[i * n + j];
            }
        }
        matrix_exp(&a, n)?
    } else {
        // Householder: H_0 ... H_{k-1} applied to the first k columns of the identity,
        // H_j = I - tau_j v_j v_jᵀ with v_j = e_j + tril(X, -1)[:, j]
        let mut q = vec![0f64; n * k];
        for j in 0..k {
            q[j * k + j] = 1.0;
        }
        for j in (0..k).rev() {
            let v: Vec<f64> = (0..n)
                .map(|i| match i.cmp(&j) {
                    std::cmp::Ordering::Less => 0.0,
                    std::cmp::Ordering::Equal => 1.0,
                    std::cmp::Ordering::Greater => x[i * k + j],
                })
                .collect();
            let below: f64 = (j + 1..n).map(|i| x[i * k + j] * x[i * k + j]).sum();
            let tau = 2.0 / (1.0 + below);
            for c in 0..k {
                let dot: f64 = (0..n).map(|i| v[i] * q[i * k + c]).sum();
                for i in 0..n {
                    q[i * k + c] -= tau * dot * v[i];
                }
            }
        }
        // columns times the integer part of X's diagonal, as torch does
        for j in 0..k {
            let s = x[j * k + j].trunc();
            for i in 0..n {
                q[i * k + j] *= s;
            }
        }
        q
    };
    let q = match base {
        Some(b) => {
            let b: Vec<f64> = b
                .to_dtype(DType::F64)?
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1()?;
            if b.len() != n * n {
                return Err(crate::VeneError::Config(format!(
                    "{BASE} has {} elements, expected [{n}, {n}]",
                    b.len()
                )));
            }
            let b = Tensor::from_vec(b, (n, n), &Device::Cpu)?;
            let q = Tensor::from_vec(q, (n, k), &Device::Cpu)?;
            b.matmul(&q)?.flatten_all()?.to_vec1()?
        }
        None => q,
    };
    let w = Tensor::from_vec(q, (n, k), &Device::Cpu)?;
    let w = if transposed { w.t()?.contiguous()? } else { w };
    Ok(w.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a @ b` for row-major `[n, m]` and `[m, p]`.
    fn matmul(a: &[f64], b: &[f64], n: usize, m: usize, p: usize) -> Vec<f64> {
        let mut out = vec![0f64; n * p];
        for i in 0..n {
            for l in 0..m {
                let x = a[i * m + l];
                if x != 0.0 {
                    for j in 0..p {
                        out[i * p + j] += x * b[l * p + j];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_saved_pair_of_a_matrix_gives_it_back() {
        // a 3x2 matrix with orthonormal columns
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let cols = vec![vec![s, 0.0], vec![s, 0.0], vec![0.0, 1.0]];
        let base = complete_orthonormal(&cols, 3, 2);
        // orthogonal, first columns unchanged
        let bt_b = matmul(
            &(0..9)
                .map(|i| base[(i % 3) * 3 + i / 3])
                .collect::<Vec<_>>(),
            &base,
            3,
            3,
            3,
        );
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((bt_b[i * 3 + j] - want).abs() < 1e-12);
            }
        }
        assert_eq!((base[0], base[1], base[3], base[7]), (s, 0.0, s, 1.0));
        let base = Tensor::from_vec(base, (3, 3), &Device::Cpu).unwrap();
        let neg_id = Tensor::new(&[[-1f64, 0.], [0., -1.], [0., 0.]], &Device::Cpu).unwrap();
        let w = parametrized_weight(&neg_id, Some(&base)).unwrap();
        let got = w.to_vec2::<f64>().unwrap();
        for i in 0..3 {
            for j in 0..2 {
                assert!((got[i][j] - cols[i][j]).abs() < 1e-12, "{got:?}");
            }
        }
        // square: -I is exp(0) = I, so the weight is the base itself
        let eye = Tensor::eye(3, DType::F64, &Device::Cpu)
            .unwrap()
            .neg()
            .unwrap();
        let w = parametrized_weight(&eye, Some(&base)).unwrap();
        let diff = (w - &base).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f64>().unwrap() < 1e-12);
    }

    #[test]
    fn matrix_exp_of_a_plane_rotation_generator() {
        // exp([[0, -t], [t, 0]]) = [[cos t, -sin t], [sin t, cos t]]
        let t = 2.5f64;
        let e = matrix_exp(&[0.0, -t, t, 0.0], 2).unwrap();
        let want = [t.cos(), -t.sin(), t.sin(), t.cos()];
        for (a, b) in e.iter().zip(want) {
            assert!((a - b).abs() < 1e-13, "{e:?}");
        }
        // and the parametrization of X = [[0, 0], [t, 0]] (tril keeps t): A = [[0, -t], [t, 0]]
        let x = Tensor::new(&[[0f64, 5.0], [t, 0.0]], &Device::Cpu).unwrap();
        let w = parametrized_weight(&x, None)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        assert!((w[0][0] - t.cos()).abs() < 1e-13 && (w[1][0] - t.sin()).abs() < 1e-13);
    }

    #[test]
    fn householder_of_one_reflector() {
        // n = 2, k = 1, X = [[1], [a]]: v = [1, a], tau = 2 / (1 + a^2),
        // Q e_0 = e_0 - tau v, times trunc(1) = 1
        let a = 0.5f64;
        let x = Tensor::new(&[[1f64], [a]], &Device::Cpu).unwrap();
        let w = parametrized_weight(&x, None)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let tau = 2.0 / (1.0 + a * a);
        assert!((w[0][0] - (1.0 - tau)).abs() < 1e-15);
        assert!((w[1][0] - (-tau * a)).abs() < 1e-15);
    }
}
