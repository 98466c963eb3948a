//! `PCARotatedSpaceIntervention`: an interchange in the basis of a PCA that vene fits itself
//! (pyvene takes a fitted sklearn `PCA`).

use candle_core::{DType, Device, Tensor};

use crate::rotated::project;
use crate::selection::{InterchangeDim, Resolved};
use crate::state::embed_dim_entry;
use crate::swap::{check_base, combine, required_source, Op};
use crate::{Intervention, InterventionError, Placement, Result, Selection};

const TYPE_NAME: &str = "PCARotatedSpaceIntervention";

/// How [`PCARotatedSpaceIntervention::fit`] fits its PCA.
///
/// ```
/// let opts = vene_interventions::PcaFitOptions::default().n_components(4).normalize(true);
/// assert_eq!((opts.n_components, opts.normalize), (Some(4), true));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcaFitOptions {
    /// How many components to keep (sklearn's `n_components`); `None`: `min(n, d)`.
    pub n_components: Option<usize>,
    /// Whether to divide the centred activations by each dim's standard deviation before the
    /// PCA (pyvene's `pca_std`; off: `pca_std` is all ones).
    pub normalize: bool,
}

impl PcaFitOptions {
    /// Sets [`Self::n_components`].
    pub fn n_components(mut self, k: usize) -> Self {
        self.n_components = Some(k);
        self
    }

    /// Sets [`Self::normalize`].
    pub fn normalize(mut self, on: bool) -> Self {
        self.normalize = on;
        self
    }
}

/// An interchange in a PCA basis (pyvene's `PCARotatedSpaceIntervention`):
/// `zb = ((base - mean) / std) @ Cᵀ`, `zs` likewise from the source, `zb[sel] = zs[sel]`,
/// output `(zb @ C) * std + mean`, with the components `C` `[k, d]` (rows, sklearn's
/// `components_`), `mean` and `std` `[d]` (pyvene's `pca_mean`, `pca_std`).
///
/// The selection indexes the `k` components (default: all of them, pyvene's
/// `interchange_dim`). With `k < d` the output lies in the PCA subspace, as in pyvene. Its
/// parameters are not trained (pyvene's `requires_grad=False`).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_interventions::{Intervention, PCARotatedSpaceIntervention, PcaFitOptions, Selection};
///
/// // Points spread along x (variance 4) and y (variance 1): the components are x, then y.
/// let acts = Tensor::new(&[[2f32, 0.], [-2., 0.], [0., 1.], [0., -1.]], &Device::Cpu)?;
/// let pca = PCARotatedSpaceIntervention::fit(&acts, PcaFitOptions::default())?;
/// assert_eq!(pca.components()?.to_vec2::<f32>()?, vec![vec![1., 0.], vec![0., 1.]]);
/// // Swapping component 0 swaps x.
/// let base = Tensor::new(&[[[1f32, 2.]]], &Device::Cpu)?;
/// let source = Tensor::new(&[[[5f32, 7.]]], &Device::Cpu)?;
/// let out = pca.forward(&base, Some(&source), &Selection::Dims(vec![0]))?;
/// assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, vec![5., 2.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[allow(clippy::upper_case_acronyms)]
pub struct PCARotatedSpaceIntervention {
    embed_dim: usize,
    components: Tensor,
    mean: Tensor,
    std: Tensor,
    interchange_dim: InterchangeDim,
}

impl PCARotatedSpaceIntervention {
    /// Fits the PCA on `activations` `[n, d]` (any float dtype, n >= 2): the column means,
    /// the column standard deviations (population, numpy's default) when
    /// [`PcaFitOptions::normalize`], and the top components by a symmetric (Jacobi)
    /// eigendecomposition of the covariance of the centred (and scaled) activations, all in
    /// f64. Components are sorted by decreasing variance, each with its largest-magnitude
    /// entry positive (sklearn's sign convention). The result is in `activations`' dtype and
    /// on its device.
    ///
    /// The decomposition costs `O(d³)` per Jacobi sweep (a few sweeps). A dim that does
    /// not vary when normalising is an error (its std is 0).
    pub fn fit(activations: &Tensor, options: PcaFitOptions) -> Result<Self> {
        let (n, d) = activations.dims2().map_err(|_| InterventionError::Shape {
            what: "PCA activations",
            expected: "[n, d]".into(),
            got: activations.dims().to_vec(),
        })?;
        if n < 2 || d == 0 {
            return Err(InterventionError::Shape {
                what: "PCA activations",
                expected: "at least 2 rows and 1 column".into(),
                got: vec![n, d],
            });
        }
        let k = options.n_components.unwrap_or(n.min(d));
        if k == 0 || k > d {
            return Err(InterventionError::BadHyperparam {
                type_name: TYPE_NAME,
                key: "n_components",
                reason: format!("{k} components of a {d}-dim space (give 1..={d})"),
            });
        }
        crate::state::check_new_size(TYPE_NAME, "embed_dim", &[d, d])?;
        let x = activations.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let mean: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();
        let std: Vec<f64> = if options.normalize {
            (0..d)
                .map(|j| {
                    let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
                    v.sqrt()
                })
                .collect()
        } else {
            vec![1.0; d]
        };
        if let Some(j) = std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(InterventionError::BadHyperparam {
                type_name: TYPE_NAME,
                key: "pca_std",
                reason: format!(
                    "dim {j} of the activations has standard deviation {}: it cannot be \
                     normalised (fit without normalize, or drop the dim)",
                    std[j]
                ),
            });
        }
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| (0..d).map(|j| (r[j] - mean[j]) / std[j]).collect())
            .collect();
        let mut cov = vec![vec![0.0; d]; d];
        for r in &z {
            for (row, &ra) in cov.iter_mut().zip(r) {
                for (c, rb) in row.iter_mut().zip(r) {
                    *c += ra * rb;
                }
            }
        }
        let denom = (n - 1) as f64;
        cov.iter_mut().flatten().for_each(|v| *v /= denom);
        if cov.iter().flatten().any(|v| !v.is_finite()) {
            return Err(InterventionError::BadHyperparam {
                type_name: TYPE_NAME,
                key: "activations",
                reason: "the activations hold non-finite values".into(),
            });
        }
        let (values, vectors) = symmetric_eigen(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let mut comps = Vec::with_capacity(k * d);
        for &c in &order[..k] {
            let mut v: Vec<f64> = (0..d).map(|i| vectors[i][c]).collect();
            let big = v
                .iter()
                .copied()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            if big < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            comps.extend(v);
        }
        let dtype = activations.dtype();
        let device = activations.device();
        Self::from_parts(
            &Tensor::from_vec(comps, (k, d), device)?.to_dtype(dtype)?,
            &Tensor::from_vec(mean, d, device)?.to_dtype(dtype)?,
            &Tensor::from_vec(std, d, device)?.to_dtype(dtype)?,
        )
    }

    /// From a fitted PCA: `components` `[k, d]` (sklearn's `components_`), `mean` and `std`
    /// `[d]` (pyvene's `pca_mean`, `pca_std`), as given (not re-orthogonalised).
    pub fn from_parts(components: &Tensor, mean: &Tensor, std: &Tensor) -> Result<Self> {
        let (k, d) = components.dims2().map_err(|_| InterventionError::Shape {
            what: "pca_components",
            expected: "[n_components, d]".into(),
            got: components.dims().to_vec(),
        })?;
        if k == 0 || k > d {
            return Err(InterventionError::Shape {
                what: "pca_components",
                expected: format!("1..={d} rows of width {d}"),
                got: vec![k, d],
            });
        }
        for (what, t) in [("pca_mean", mean), ("pca_std", std)] {
            if t.dims() != [d] {
                return Err(InterventionError::Shape {
                    what,
                    expected: format!("[{d}]"),
                    got: t.dims().to_vec(),
                });
            }
        }
        let dtype = components.dtype();
        let device = components.device();
        Ok(Self {
            embed_dim: d,
            components: components.clone(),
            mean: mean.to_device(device)?.to_dtype(dtype)?,
            std: std.to_device(device)?.to_dtype(dtype)?,
            interchange_dim: InterchangeDim::First(k),
        })
    }

    /// Swaps the first `k` components by default.
    pub fn with_interchange_dim(mut self, k: usize) -> Self {
        self.interchange_dim = InterchangeDim::First(k);
        self
    }

    /// Sets the default components swapped; checked against `n_components`.
    pub fn set_interchange_dim(&mut self, dims: InterchangeDim) -> Result<()> {
        dims.resolve(self.n_components(), "PCA space")?;
        self.interchange_dim = dims;
        Ok(())
    }

    /// The number of components `k`.
    pub fn n_components(&self) -> usize {
        self.components.dims()[0]
    }

    /// The components `[k, d]`, one per row.
    pub fn components(&self) -> Result<Tensor> {
        Ok(self.components.clone())
    }

    /// The mean `[d]` subtracted before the rotation.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// The std `[d]` divided by before the rotation (ones when not normalised).
    pub fn std(&self) -> &Tensor {
        &self.std
    }

    /// `((x - mean) / std) @ Cᵀ`, in the components' dtype: `[B, n, k]`.
    fn to_pca_space(&self, x: &Tensor) -> Result<Tensor> {
        let x = x
            .to_dtype(self.components.dtype())?
            .broadcast_sub(&self.mean)?
            .broadcast_div(&self.std)?;
        project(&x, &self.components.t()?)
    }

    fn moved(&self, device: &Device, dtype: DType) -> Result<Self> {
        let m = |t: &Tensor| -> Result<Tensor> { Ok(t.to_device(device)?.to_dtype(dtype)?) };
        Ok(Self {
            components: m(&self.components)?,
            mean: m(&self.mean)?,
            std: m(&self.std)?,
            ..self.clone()
        })
    }
}

/// The eigenvalues and eigenvectors (columns of the second) of the symmetric `a`, by cyclic
/// Jacobi rotations until the off-diagonal part is negligible.
fn symmetric_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = a.len();
    let mut v: Vec<Vec<f64>> = (0..d)
        .map(|i| (0..d).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    let total: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= total * 1e-30 || off == 0.0 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p][q];
                if apq == 0.0 {
                    continue;
                }
                // the rotation in the (p, q) plane that zeroes a[p][q]
                let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
                let (top, bottom) = a.split_at_mut(q);
                for (x, y) in top[p].iter_mut().zip(bottom[0].iter_mut()) {
                    let (xp, yq) = (*x, *y);
                    *x = c * xp - s * yq;
                    *y = s * xp + c * yq;
                }
                for row in v.iter_mut() {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
            }
        }
    }
    ((0..d).map(|i| a[i][i]).collect(), v)
}

impl Intervention for PCARotatedSpaceIntervention {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }
    fn embed_dim(&self) -> usize {
        self.embed_dim
    }
    fn forward(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
    ) -> Result<Tensor> {
        let batch = check_base(base, self.embed_dim)?;
        let source = required_source(self.type_name(), base, source)?;
        let k = self.n_components();
        let sel = Resolved::new(selection, &self.interchange_dim, k, batch, "PCA space")?;
        let zb = self.to_pca_space(base)?;
        let zs = self.to_pca_space(&source)?;
        let mixed = combine(&zb, &zs, &sel, Op::Replace)?;
        let back = project(&mixed, &self.components)?
            .broadcast_mul(&self.std)?
            .broadcast_add(&self.mean)?;
        Ok(back.to_dtype(base.dtype())?)
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("pca_components".into(), self.components.clone()),
            ("pca_mean".into(), self.mean.clone()),
            ("pca_std".into(), self.std.clone()),
            embed_dim_entry(self.embed_dim)?,
            (
                "interchange_dim".into(),
                self.interchange_dim.to_tensor(&Device::Cpu)?,
            ),
        ])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({
            "embed_dim": self.embed_dim,
            "n_components": self.n_components(),
            "interchange_dim": self.interchange_dim,
        })
    }
    /// The fitted PCA (components, mean, std) is state without trainable parameters.
    fn saves_state(&self) -> bool {
        true
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        let (device, dtype) = placement.resolve(self.components.device(), self.components.dtype());
        Ok(Box::new(self.moved(&device, dtype)?))
    }
}
