//! The localist interventions: Vanilla, Addition, Subtraction, Zero, Collect, Skip.

use candle_core::{Device, Tensor};

use crate::selection::{InterchangeDim, Resolved};
use crate::state::embed_dim_entry;
use crate::swap::{check_base, combine, required_source, Op};
use crate::{Intervention, InterventionError, Placement, Result, Selection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vanilla,
    Addition,
    Subtraction,
    Zero,
    Collect,
    Skip,
}

/// State shared by the localist interventions.
#[derive(Debug, Clone)]
struct Basic {
    kind: Kind,
    embed_dim: usize,
    interchange_dim: InterchangeDim,
    constant: Option<Tensor>,
}

impl Basic {
    fn new(kind: Kind, embed_dim: usize) -> Self {
        Self {
            kind,
            embed_dim,
            interchange_dim: InterchangeDim::First(embed_dim),
            constant: None,
        }
    }

    fn set_constant(&mut self, source: &Tensor) -> Result<()> {
        if source.dims() != [self.embed_dim] {
            return Err(InterventionError::Shape {
                what: "constant source",
                expected: format!("[{}]", self.embed_dim),
                got: source.dims().to_vec(),
            });
        }
        self.constant = Some(source.clone());
        Ok(())
    }

    fn forward(
        &self,
        type_name: &'static str,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
    ) -> Result<Tensor> {
        let batch = check_base(base, self.embed_dim)?;
        let sel = Resolved::new(
            selection,
            &self.interchange_dim,
            self.embed_dim,
            batch,
            "representation",
        )?;
        let op = match self.kind {
            Kind::Vanilla | Kind::Skip => Op::Replace,
            Kind::Addition => Op::Add,
            Kind::Subtraction => Op::Subtract,
            Kind::Zero => return combine(base, &base.zeros_like()?, &sel, Op::Replace),
            Kind::Collect => return collect(base, &sel),
        };
        // A constant source, when set, wins over the call's.
        let source = required_source(type_name, base, self.constant.as_ref().or(source))?;
        combine(base, &source, &sel, op)
    }

    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        let dev = Device::Cpu;
        let mut out = vec![
            embed_dim_entry(self.embed_dim)?,
            (
                "interchange_dim".to_string(),
                self.interchange_dim.to_tensor(&dev)?,
            ),
        ];
        if let Some(c) = &self.constant {
            out.push(("source_representation".to_string(), c.clone()));
        }
        Ok(out)
    }

    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({
            "embed_dim": self.embed_dim,
            "interchange_dim": self.interchange_dim,
        })
    }

    fn map_constant(&self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        let mut out = self.clone();
        out.constant = self.constant.as_ref().map(f).transpose()?;
        Ok(out)
    }
}

/// `base[..., sel]`: `[B, n_units, |sel|]` (pyvene's collect).
fn collect(base: &Tensor, sel: &Resolved) -> Result<Tensor> {
    let pick = |t: &Tensor, dims: &[usize]| -> Result<Tensor> {
        let idx = Tensor::from_vec(
            dims.iter().map(|&d| d as u32).collect::<Vec<_>>(),
            dims.len(),
            t.device(),
        )?;
        Ok(t.contiguous()?.index_select(&idx, t.rank() - 1)?)
    };
    match sel {
        Resolved::Same(dims) => pick(base, dims),
        Resolved::PerExample(rows) => {
            let first = rows.first().map_or(0, Vec::len);
            if rows.iter().any(|r| r.len() != first) {
                return Err(InterventionError::Shape {
                    what: "per-example collect selection",
                    expected: "the same number of dims for every example".into(),
                    got: rows.iter().map(Vec::len).collect(),
                });
            }
            let parts = rows
                .iter()
                .enumerate()
                .map(|(b, dims)| pick(&base.narrow(0, b, 1)?, dims))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(&parts, 0)?)
        }
    }
}

macro_rules! localist {
    (
        $(#[$doc:meta])*
        $name:ident, $kind:ident, $type_name:literal,
        constant: $constant:tt, needs_source: $needs:expr, collect: $collect:expr, skip: $skip:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            inner: Basic,
        }

        impl $name {
            /// A new intervention on representations of width `embed_dim`, acting on all dims
            /// (pyvene's default `interchange_dim = embed_dim`).
            pub fn new(embed_dim: usize) -> Self {
                Self { inner: Basic::new(Kind::$kind, embed_dim) }
            }

            /// Acts on the first `k` dims by default.
            pub fn with_interchange_dim(mut self, k: usize) -> Self {
                self.inner.interchange_dim = InterchangeDim::First(k);
                self
            }

            /// Sets the default dims (pyvene's `set_interchange_dim`); checked against
            /// `embed_dim`.
            pub fn set_interchange_dim(
                &mut self,
                dims: impl Into<InterchangeDim>,
            ) -> Result<()> {
                let dims = dims.into();
                dims.resolve(self.inner.embed_dim, "representation")?;
                self.inner.interchange_dim = dims;
                Ok(())
            }

            /// The default dims.
            pub fn interchange_dim(&self) -> &InterchangeDim {
                &self.inner.interchange_dim
            }

            localist!(@constant $constant);
        }

        impl Intervention for $name {
            fn type_name(&self) -> &'static str {
                $type_name
            }
            fn embed_dim(&self) -> usize {
                self.inner.embed_dim
            }
            fn forward(
                &self,
                base: &Tensor,
                source: Option<&Tensor>,
                selection: &Selection,
            ) -> Result<Tensor> {
                self.inner.forward($type_name, base, source, selection)
            }
            fn needs_source(&self) -> bool {
                $needs && self.inner.constant.is_none()
            }
            fn is_collect(&self) -> bool {
                $collect
            }
            fn is_skip(&self) -> bool {
                $skip
            }
            fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
                self.inner.state_dict()
            }
            fn hyperparams(&self) -> serde_json::Value {
                self.inner.hyperparams()
            }
            fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
                Ok(Box::new(Self { inner: self.inner.map_constant(|t| placement.tensor(t))? }))
            }
        }
    };
    (@constant true) => {
        /// Uses the constant vector `source` `[embed_dim]` (broadcast over batch and units)
        /// instead of a source run (pyvene's `source_representation`).
        pub fn with_source(mut self, source: &Tensor) -> Result<Self> {
            self.inner.set_constant(source)?;
            Ok(self)
        }

        /// The constant source, if any.
        pub fn constant_source(&self) -> Option<&Tensor> {
            self.inner.constant.as_ref()
        }
    };
    (@constant false) => {};
}

localist!(
    /// `base[sel] = source[sel]` (pyvene's `VanillaIntervention`), with a source run or a
    /// constant source.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use vene_interventions::{Intervention, Selection, VanillaIntervention};
    ///
    /// let base = Tensor::new(&[[[1f32, 2., 3.]]], &Device::Cpu)?;
    /// let iv = VanillaIntervention::new(3).with_source(&Tensor::new(&[9f32, 8., 7.], &Device::Cpu)?)?;
    /// let out = iv.forward(&base, None, &Selection::Dims(vec![1]))?;
    /// assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, vec![1., 8., 3.]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    VanillaIntervention, Vanilla, "VanillaIntervention",
    constant: true, needs_source: true, collect: false, skip: false
);
localist!(
    /// `base[sel] += source[sel]` (pyvene's `AdditionIntervention`), e.g. steering with a
    /// constant vector.
    AdditionIntervention, Addition, "AdditionIntervention",
    constant: true, needs_source: true, collect: false, skip: false
);
localist!(
    /// `base[sel] -= source[sel]` (pyvene's `SubtractionIntervention`).
    SubtractionIntervention, Subtraction, "SubtractionIntervention",
    constant: true, needs_source: true, collect: false, skip: false
);
localist!(
    /// `base[sel] = 0` (pyvene's `ZeroIntervention`); needs no source.
    ZeroIntervention, Zero, "ZeroIntervention",
    constant: false, needs_source: false, collect: false, skip: false
);
localist!(
    /// Collects `base[..., sel]` (`[B, n_units, |sel|]`, pyvene's `CollectIntervention`);
    /// `forward` returns the collected activation and the facade leaves the model unchanged.
    CollectIntervention, Collect, "CollectIntervention",
    constant: false, needs_source: false, collect: true, skip: false
);
localist!(
    /// Replaces the component's output by its input at the selected dims (pyvene's
    /// `SkipIntervention`); the facade passes the component's input as `source`.
    SkipIntervention, Skip, "SkipIntervention",
    constant: false, needs_source: false, collect: false, skip: true
);
