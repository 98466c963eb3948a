//! Orthogonal parametrization for trainable rotations.
//!
//! candle has no QR or matrix exponential, so a rotation is kept as an unconstrained `Var`
//! `W` `[n, k]` (`n >= k`) and used as `R = polar(W)`, the nearest matrix with orthonormal
//! columns, computed by Newton–Schulz iterations `X <- 1.5 X - 0.5 X (XᵀX)`: plain matmuls,
//! so gradients flow through them with candle's autograd. At least one iteration always
//! runs, which at an orthonormal `W` gives exactly the polar map's derivative (the gradient
//! is projected onto the tangent space of the orthogonal group); iterations stop once
//! `max |XᵀX - I|` is at rounding level. Near-orthonormal `W` (the usual case: it starts
//! orthonormal and an optimizer moves it a little) converges quadratically in 1–3 steps.
//! `W` is rescaled first when its Gram bound says a singular value may exceed the
//! convergence radius.
//!
//! Initialization is a seeded random matrix with orthonormal columns (Gram–Schmidt of numpy
//! `RandomState(seed).randn(n, k)`, in f64); it is not torch's random stream, so a fresh
//! rotation is not pyvene's; a saved one loads exactly.

use candle_core::{DType, Device, Tensor, Var, D};

use crate::rng::NumpyRandomState;
use crate::state::var_to;
use crate::{InterventionError, Result};

const MAX_ITERS: usize = 30;

/// A seeded random `[n, k]` matrix with orthonormal columns (`k <= n`), as f32 values.
pub(crate) fn random_orthonormal(n: usize, k: usize, seed: u64) -> Result<Vec<f32>> {
    if k > n || n == 0 {
        return Err(InterventionError::BadHyperparam {
            type_name: "rotation",
            key: "low_rank_dimension",
            reason: format!("need 0 < rank <= width, got rank {k} for width {n}"),
        });
    }
    crate::state::check_new_size("rotation", "embed_dim", &[n, k])?;
    let mut rs = NumpyRandomState::new((seed & 0xffff_ffff) as u32);
    let g = rs.randn(n * k); // row-major [n, k]
    let mut cols: Vec<Vec<f64>> = (0..k)
        .map(|j| (0..n).map(|i| g[i * k + j]).collect())
        .collect();
    for j in 0..k {
        // Two passes of modified Gram–Schmidt for stability.
        for _ in 0..2 {
            for p in 0..j {
                let (done, rest) = cols.split_at_mut(j);
                let q = &done[p];
                let c = &mut rest[0];
                let dot: f64 = q.iter().zip(c.iter()).map(|(a, b)| a * b).sum();
                c.iter_mut().zip(q).for_each(|(x, qv)| *x -= dot * qv);
            }
        }
        let c = &mut cols[j];
        let norm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
        c.iter_mut().for_each(|x| *x /= norm);
    }
    Ok((0..n)
        .flat_map(|i| cols.iter().map(move |c| c[i] as f32))
        .collect())
}

/// The matrix with orthonormal columns nearest to `w` `[n, k]`, by Newton–Schulz
/// iterations (differentiable).
pub(crate) fn polar(w: &Tensor) -> Result<Tensor> {
    let (_, k) = w.dims2()?;
    let eye = Tensor::eye(k, w.dtype(), w.device())?;
    let tol = match w.dtype() {
        DType::F64 => 1e-12,
        DType::F32 => 1e-6,
        _ => 1e-2,
    } * (k as f64).sqrt().max(1.0);
    let mut x = w.clone();
    let mut g = x.t()?.matmul(&x)?;
    // Gershgorin bound on the largest squared singular value.
    let bound = g
        .abs()?
        .sum(D::Minus1)?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    if bound > 2.5 {
        x = (x / bound.sqrt())?;
        g = x.t()?.matmul(&x)?;
    }
    let mut prev = f64::INFINITY;
    for it in 0..MAX_ITERS {
        let resid = (&g - &eye)?
            .abs()?
            .max_keepdim(0)?
            .max(1)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f64>()?;
        // Stop at the tolerance, or once rounding stalls the quadratic phase.
        if it >= 1 && (resid < tol || (resid < 1e-3 && resid > prev * 0.5)) {
            break;
        }
        prev = resid;
        x = ((&x * 1.5)? - (x.matmul(&g)? * 0.5)?)?;
        g = x.t()?.matmul(&x)?;
    }
    Ok(x)
}

/// A trainable `[n, k]` matrix with orthonormal columns: a `Var` `W`, used as `polar(W)`.
#[derive(Debug, Clone)]
pub struct OrthogonalParam {
    w: Var,
}

impl OrthogonalParam {
    /// A seeded random `[n, k]` matrix with orthonormal columns.
    pub fn random(n: usize, k: usize, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let data = random_orthonormal(n, k, seed)?;
        let t = Tensor::from_vec(data, (n, k), device)?.to_dtype(dtype)?;
        Ok(Self {
            w: Var::from_tensor(&t)?,
        })
    }

    /// From a given `[n, k]` matrix (e.g. a saved rotation); it is used through `polar`, so a
    /// matrix with orthonormal columns is used as is.
    pub fn from_tensor(w: &Tensor) -> Result<Self> {
        let (n, k) = w.dims2()?;
        if k > n {
            return Err(InterventionError::Shape {
                what: "rotation",
                expected: "[n, k] with k <= n".into(),
                got: vec![n, k],
            });
        }
        Ok(Self {
            w: Var::from_tensor(w)?,
        })
    }

    /// The orthonormal-column matrix `polar(W)` `[n, k]`.
    pub fn matrix(&self) -> Result<Tensor> {
        polar(self.w.as_tensor())
    }

    /// The parameter `W` itself (detached), as saved: rebuilding from it with
    /// [`Self::from_tensor`] gives the same `polar(W)` bit for bit.
    pub fn parameter(&self) -> Tensor {
        self.w.as_tensor().detach()
    }

    /// The unconstrained trainable `W`.
    pub fn var(&self) -> &Var {
        &self.w
    }

    /// A copy on `device`, in `dtype`.
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        Ok(Self {
            w: var_to(&self.w, device, dtype)?,
        })
    }

    /// A copy placed as `placement` says.
    pub fn placed(&self, placement: &crate::Placement) -> Result<Self> {
        Ok(Self {
            w: placement.var(&self.w)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_dev_from_identity(r: &Tensor) -> f32 {
        let k = r.dim(1).unwrap();
        let g = r.t().unwrap().matmul(r).unwrap();
        let eye = Tensor::eye(k, DType::F32, &Device::Cpu).unwrap();
        (g - eye)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn random_init_is_orthonormal_and_seeded() {
        let a = random_orthonormal(12, 5, 3).unwrap();
        let b = random_orthonormal(12, 5, 3).unwrap();
        let c = random_orthonormal(12, 5, 4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let t = Tensor::from_vec(a, (12, 5), &Device::Cpu).unwrap();
        assert!(max_dev_from_identity(&t) < 1e-6);
    }

    #[test]
    fn polar_projects_a_perturbed_rotation() {
        let dev = Device::Cpu;
        let q = Tensor::from_vec(random_orthonormal(8, 8, 1).unwrap(), (8, 8), &dev).unwrap();
        let noise = Tensor::from_vec(
            NumpyRandomState::new(2)
                .randn(64)
                .into_iter()
                .map(|v| v as f32 * 0.05)
                .collect::<Vec<_>>(),
            (8, 8),
            &dev,
        )
        .unwrap();
        let w = (&q + noise).unwrap();
        let r = polar(&w).unwrap();
        assert!(max_dev_from_identity(&r) < 2e-6);
        // An orthonormal input is (numerically) a fixed point.
        let r2 = polar(&q).unwrap();
        let diff = (r2 - &q).unwrap().abs().unwrap().flatten_all().unwrap();
        assert!(diff.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn polar_handles_a_large_scale() {
        let dev = Device::Cpu;
        let q = Tensor::from_vec(random_orthonormal(6, 3, 9).unwrap(), (6, 3), &dev).unwrap();
        let r = polar(&(q.clone() * 7.0).unwrap()).unwrap();
        let diff = (r - q).unwrap().abs().unwrap().flatten_all().unwrap();
        assert!(diff.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-5);
    }
}
