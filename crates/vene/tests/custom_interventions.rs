//! A user's own intervention type, registered by name: configs that name it build it, and a
//! saved intervenable model holding it loads back to the same outputs.

mod common;

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use common::*;
use vene::hooks::Component;
use vene::interventions::{
    register_intervention, registered_interventions, Intervention, InterventionError, Placement,
    Selection,
};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, UnitLocations,
};

/// `base + weight * source`, with a trainable `weight` `[d]`.
#[derive(Debug)]
struct WeightedAddition {
    weight: Var,
}

impl Intervention for WeightedAddition {
    fn type_name(&self) -> &'static str {
        "WeightedAddition"
    }
    fn embed_dim(&self) -> usize {
        self.weight.dim(0).unwrap()
    }
    fn forward(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        _: &Selection,
    ) -> vene::interventions::Result<Tensor> {
        let source = source.ok_or_else(|| InterventionError::Unsupported("no source".into()))?;
        Ok((base + source.broadcast_mul(self.weight.as_tensor())?)?)
    }
    fn vars(&self) -> Vec<Var> {
        vec![self.weight.clone()]
    }
    fn state_dict(&self) -> vene::interventions::Result<Vec<(String, Tensor)>> {
        Ok(vec![("weight".into(), self.weight.as_tensor().clone())])
    }
    fn to(&self, placement: &Placement) -> vene::interventions::Result<Box<dyn Intervention>> {
        Ok(Box::new(Self {
            weight: placement.var(&self.weight)?,
        }))
    }
}

fn register() {
    register_intervention("WeightedAddition", |a| {
        let weight = match a.state.get("weight") {
            Some(w) => w.to_device(a.device)?.to_dtype(a.dtype)?,
            None => Tensor::ones(a.embed_dim, a.dtype, a.device)?,
        };
        if weight.dims() != [a.embed_dim] {
            return Err(InterventionError::Unsupported(format!(
                "WeightedAddition: weight of shape {:?} for width {}",
                weight.dims(),
                a.embed_dim
            )));
        }
        Ok(Box::new(WeightedAddition {
            weight: Var::from_tensor(&weight)?,
        }))
    })
    .unwrap();
}

fn request() -> ForwardRequest {
    let o = oracle("gpt2");
    ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .source(get(&o, "gpt2.source_input_ids"))
        .locations(UnitLocations::pair(3, 5))
}

#[test]
fn a_registered_type_builds_from_a_config_and_loads_back_from_a_save() {
    register();
    assert!(registered_interventions().contains(&"WeightedAddition".to_string()));

    // Named in a config: built by the constructor (weight 1: an addition intervention).
    let cfg = |t: &str| {
        IntervenableConfig::new(vec![
            RepresentationConfig::new(1, Component::BlockOutput).intervention_type(t)
        ])
    };
    let named = IntervenableModel::new(cfg("WeightedAddition"), model("gpt2")).unwrap();
    let addition = IntervenableModel::new(cfg("AdditionIntervention"), model("gpt2")).unwrap();
    let a = named.forward(&request()).unwrap().intervened;
    let b = addition.forward(&request()).unwrap().intervened;
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert_eq!(named.count_parameters(), 16);

    // An object with its own weights, saved and loaded back by name.
    let w: Vec<f32> = (0..16).map(|i| 0.1 * i as f32 - 0.5).collect();
    let iv = WeightedAddition {
        weight: Var::from_tensor(&Tensor::new(w.as_slice(), &Device::Cpu).unwrap()).unwrap(),
    };
    let cfg = IntervenableConfig::new(vec![
        RepresentationConfig::new(1, Component::BlockOutput).intervention(Arc::new(iv))
    ]);
    let im = IntervenableModel::new(cfg, model("gpt2")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    im.save(dir.path()).unwrap();
    let back = IntervenableModel::load(dir.path(), model("gpt2")).unwrap();
    assert_eq!(back.interventions()[0].type_name(), "WeightedAddition");
    let before = im.forward(&request()).unwrap().intervened;
    let after = back.forward(&request()).unwrap().intervened;
    assert_eq!(max_abs_diff(&before, &after), 0.0);
    assert!(
        max_abs_diff(&before, &a) > 1e-4,
        "the saved weights are not the fresh ones"
    );
}

#[test]
fn an_unregistered_type_is_an_error_that_says_how_to_register_it() {
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("NobodyRegisteredThis")]);
    let err = IntervenableModel::new(cfg, model("gpt2"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NobodyRegisteredThis") && err.contains("register_intervention"),
        "{err}"
    );
    let err = register_intervention("VanillaIntervention", |_| unreachable!())
        .unwrap_err()
        .to_string();
    assert!(err.contains("built-in"), "{err}");
}
