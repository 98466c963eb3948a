//! Per-call intervention arguments (pyvene's subspace dicts): steering an SAE latent `i` by a
//! magnitude `m` per example, as pyvene's SAE steering tutorials do with their own
//! intervention class, equals adding `m * W_dec[i]` computed by hand.

mod common;

use std::sync::Arc;

use candle_core::{Device, Tensor};
use common::*;
use vene::hooks::Component;
use vene::interventions::{CallArgs, Intervention, InterventionError, Placement, Selection};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, Subspaces,
    UnitLocations,
};

const LATENTS: usize = 8;
const WIDTH: usize = 16;

/// The decoder `W_dec` `[LATENTS, WIDTH]` of the steering "SAE".
fn w_dec() -> Vec<f32> {
    (0..LATENTS * WIDTH)
        .map(|i| ((i as f32) * 0.61).sin())
        .collect()
}

/// `base + mag[b] * W_dec[idx[b]]` (pyvene's tutorial `JumpReLUSAESteeringIntervention`,
/// sourceless), with `idx` and `mag` from the call's arguments.
#[derive(Debug)]
struct SaeSteering {
    w_dec: Tensor,
}

impl Intervention for SaeSteering {
    fn type_name(&self) -> &'static str {
        "SaeSteering"
    }
    fn embed_dim(&self) -> usize {
        WIDTH
    }
    fn needs_source(&self) -> bool {
        false
    }
    fn forward(
        &self,
        _: &Tensor,
        _: Option<&Tensor>,
        _: &Selection,
    ) -> vene::interventions::Result<Tensor> {
        Err(InterventionError::Unsupported(
            "SaeSteering needs {\"idx\", \"mag\"} arguments".into(),
        ))
    }
    fn forward_with_args(
        &self,
        base: &Tensor,
        _: Option<&Tensor>,
        _: &Selection,
        args: &CallArgs,
    ) -> vene::interventions::Result<Tensor> {
        let b = base.dim(0)?;
        let idx = args.usizes("idx", b)?;
        let mag = args.f64s("mag", b)?;
        let rows = self.w_dec.index_select(
            &Tensor::new(
                idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                base.device(),
            )?,
            0,
        )?;
        let mag = Tensor::new(
            mag.iter().map(|&m| m as f32).collect::<Vec<_>>(),
            base.device(),
        )?
        .reshape((b, 1))?;
        let steer = rows.broadcast_mul(&mag)?.unsqueeze(1)?;
        Ok(base.broadcast_add(&steer.to_dtype(base.dtype())?)?)
    }
    fn state_dict(&self) -> vene::interventions::Result<Vec<(String, Tensor)>> {
        Ok(vec![("W_dec".into(), self.w_dec.clone())])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn saves_state(&self) -> bool {
        true
    }
    fn to(&self, placement: &Placement) -> vene::interventions::Result<Box<dyn Intervention>> {
        Ok(Box::new(Self {
            w_dec: placement.tensor(&self.w_dec)?,
        }))
    }
}

const POS: usize = 3;

fn steered_model() -> IntervenableModel<vene::models::Model> {
    let w = Tensor::from_vec(w_dec(), (LATENTS, WIDTH), &Device::Cpu).unwrap();
    IntervenableModel::new(
        IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
            .intervention(Arc::new(SaeSteering { w_dec: w }))]),
        model("gpt2"),
    )
    .unwrap()
}

#[test]
fn steering_a_latent_adds_its_decoder_row_times_each_magnitude() {
    let ids = get(&oracle("gpt2"), "gpt2.base_input_ids");
    let batch = ids.dim(0).unwrap();
    assert!(batch >= 2);
    let latent = 5;
    let mags: Vec<f64> = (0..batch).map(|b| [3.0, -1.5, 0.25, 7.0][b % 4]).collect();
    let steered = steered_model();
    let subspaces =
        Subspaces::from_json_str(&serde_json::json!([{ "idx": latent, "mag": mags }]).to_string())
            .unwrap();
    let out = steered
        .forward(
            &ForwardRequest::new(ids.clone())
                .locations(UnitLocations::base_position(POS))
                .subspaces(subspaces)
                .output_original(true),
        )
        .unwrap();
    let (original, out) = (out.original.unwrap(), out.intervened);

    // by hand: m_b * W_dec[latent], added by an AdditionIntervention with that constant
    let w = w_dec();
    let adder = IntervenableModel::new(
        IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
            .intervention_type("AdditionIntervention")]),
        model("gpt2"),
    )
    .unwrap();
    for (b, &m) in mags.iter().enumerate() {
        let row: Vec<f32> = w[latent * WIDTH..(latent + 1) * WIDTH]
            .iter()
            .map(|v| m as f32 * v)
            .collect();
        let one = ids.narrow(0, b, 1).unwrap();
        let want = adder
            .forward(
                &ForwardRequest::new(one.clone())
                    .locations(UnitLocations::base_position(POS))
                    .source_representation(Tensor::new(row, &Device::Cpu).unwrap()),
            )
            .unwrap()
            .intervened;
        let got = out.narrow(0, b, 1).unwrap();
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-5, "example {b} (mag {m}): {err}");
        // and the steering did something
        let unsteered = original.narrow(0, b, 1).unwrap();
        assert!(max_abs_diff(&got, &unsteered) > 1e-3, "example {b}");
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let ids = get(&oracle("gpt2"), "gpt2.base_input_ids");
    let batch = ids.dim(0).unwrap();
    let steered = steered_model();
    let run = |s: &str| {
        steered
            .forward(
                &ForwardRequest::new(ids.clone())
                    .locations(UnitLocations::base_position(POS))
                    .subspaces(Subspaces::from_json_str(s).unwrap()),
            )
            .unwrap_err()
            .to_string()
    };
    let e = run(&format!(
        r#"[{{"idx": 1, "mag": {:?}}}]"#,
        vec![1.0; batch + 1]
    ));
    assert!(
        e.contains("\"mag\"") && e.contains(&format!("batch of {batch}")),
        "{e}"
    );
    let e = run(r#"[{"mag": 1.0}]"#);
    assert!(e.contains("\"idx\"") && e.contains("missing"), "{e}");
    let e = run(r#"[{"idx": 1, "mag": 1.0}, null]"#);
    assert!(e.contains("2 argument entries"), "{e}");

    // built-in interventions take no per-call arguments, and say so
    let vanilla = IntervenableModel::new(
        IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)]),
        model("gpt2"),
    )
    .unwrap();
    let e = vanilla
        .forward(
            &ForwardRequest::new(ids.clone())
                .source(ids.clone())
                .locations(UnitLocations::position(POS))
                .subspaces(Subspaces::from_json_str(r#"{"idx": 1}"#).unwrap()),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("VanillaIntervention takes no per-call arguments"),
        "{e}"
    );
}
