//! A user-defined intervention through the public trait.

use candle_core::{DType, Device, Tensor};
use vene_interventions::{Intervention, InterventionError, Placement, Result, Selection};

/// Scales the base by a factor (no source).
#[derive(Debug, Clone)]
struct Scale {
    d: usize,
    factor: f64,
}

impl Intervention for Scale {
    fn type_name(&self) -> &'static str {
        "ScaleIntervention"
    }
    fn embed_dim(&self) -> usize {
        self.d
    }
    fn forward(&self, base: &Tensor, _source: Option<&Tensor>, _sel: &Selection) -> Result<Tensor> {
        if base.dims().last() != Some(&self.d) {
            return Err(InterventionError::WidthMismatch {
                what: "base",
                expected: self.d,
                got: base.dims().to_vec(),
            });
        }
        Ok((base * self.factor)?)
    }
    fn needs_source(&self) -> bool {
        false
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "factor": self.factor })
    }
    fn to(&self, _placement: &Placement) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(self.clone()))
    }
}

#[test]
fn custom_intervention_is_usable_as_a_trait_object() {
    let list: Vec<Box<dyn Intervention>> = vec![
        Box::new(Scale { d: 2, factor: 3.0 }),
        Box::new(vene_interventions::ZeroIntervention::new(2).with_interchange_dim(1)),
    ];
    let mut x = Tensor::new(&[[[1f32, 2.]]], &Device::Cpu).unwrap();
    for iv in &list {
        assert!(!iv.needs_source() && !iv.is_collect() && iv.vars().is_empty());
        x = iv.forward(&x, None, &Selection::Default).unwrap();
    }
    assert_eq!(
        x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![0., 6.]
    );
    assert_eq!(list[0].hyperparams()["factor"], 3.0);
    let wide = Tensor::zeros((1, 1, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(list[0].forward(&wide, None, &Selection::Default).is_err());
}

/// Only what a stateless intervention must write: the trait supplies the state dict, the
/// hyperparameters and the device/dtype moves.
#[derive(Debug, Clone)]
struct Negate {
    d: usize,
}

impl Intervention for Negate {
    fn type_name(&self) -> &'static str {
        "NegateIntervention"
    }
    fn embed_dim(&self) -> usize {
        self.d
    }
    fn forward(&self, base: &Tensor, _source: Option<&Tensor>, _sel: &Selection) -> Result<Tensor> {
        Ok(base.neg()?)
    }
    fn needs_source(&self) -> bool {
        false
    }
    fn to(&self, _placement: &Placement) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(self.clone()))
    }
}

#[test]
fn a_stateless_intervention_gets_the_defaults() {
    let iv = Negate { d: 3 };
    assert!(iv.state_dict().unwrap().is_empty());
    assert_eq!(iv.hyperparams(), serde_json::json!({ "embed_dim": 3 }));
    assert!(iv.vars().is_empty());
    assert!(iv.named_vars().unwrap().is_empty());
    assert!(iv.temperature().is_none());
    // to_device / to_dtype / to_device_dtype all go through `to`.
    let moved = iv
        .to_device_dtype(&Device::Cpu, DType::F16, DType::F32)
        .unwrap();
    let base = Tensor::new(&[[[1f32, -2.0, 3.0]]], &Device::Cpu).unwrap();
    let out = moved.forward(&base, None, &Selection::Default).unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![-1.0, 2.0, -3.0]
    );
}

#[test]
fn placement_moves_and_casts_only_what_it_sets() {
    let t = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
    let keep = Placement::default();
    assert_eq!(keep.tensor(&t).unwrap().dtype(), DType::F32);
    let p = Placement::new(&Device::Cpu, DType::BF16);
    assert_eq!(p.tensor(&t).unwrap().dtype(), DType::BF16);
    assert_eq!(p.autoencoder_dtype(), Some(DType::BF16));
    let mixed = p.clone().with_autoencoder_dtype(DType::F32);
    assert_eq!(mixed.dtype(), Some(DType::BF16));
    assert_eq!(mixed.autoencoder_dtype(), Some(DType::F32));
    assert_eq!(
        mixed.resolve_autoencoder(&Device::Cpu, DType::F16).1,
        DType::F32
    );
    assert_eq!(keep.resolve(&Device::Cpu, DType::F16).1, DType::F16);
}
