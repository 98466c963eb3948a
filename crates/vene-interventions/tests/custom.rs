//! A user-defined intervention through the public trait.

use candle_core::{DType, Device, Tensor};
use vene_interventions::{Intervention, InterventionError, Result, Selection};

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
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "factor": self.factor })
    }
    fn to_device(&self, _device: &Device) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(self.clone()))
    }
    fn to_dtype(&self, _dtype: DType) -> Result<Box<dyn Intervention>> {
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
