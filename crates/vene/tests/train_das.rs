//! DAS training: a low-rank rotation learns to carry a source token into the base's output.

use candle_core::Tensor;
use candle_nn::ParamsAdamW;
use vene::hooks::Component;
use vene::{
    last_position_cross_entropy, ForwardRequest, IntervenableConfig, IntervenableModel,
    RepresentationConfig, UnitLocations,
};

mod common;

#[test]
fn low_rank_das_loss_drops() {
    let (model, base, src, labels) = common::das_task(16, 12345);
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("LowRankRotatedSpaceIntervention")
        .low_rank_dimension(8)]);
    let im = IntervenableModel::new(cfg, model).unwrap();
    assert_eq!(im.count_parameters(), 16 * 8);
    let req = ForwardRequest::new(base)
        .source(src)
        .locations(UnitLocations::pair(2, 4));
    let mut opt = im
        .adamw(ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        })
        .unwrap();
    let loss = |l: &Tensor| last_position_cross_entropy(l, &labels);
    let first = im.train_step(&req, &mut opt, loss).unwrap();
    let mut last = first;
    for _ in 0..200 {
        last = im.train_step(&req, &mut opt, loss).unwrap();
    }
    assert!(
        last < 0.7 * first,
        "loss {first} -> {last}: did not drop clearly"
    );
}
