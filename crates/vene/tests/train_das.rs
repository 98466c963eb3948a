//! DAS training: a low-rank rotation learns to carry a source token into the base's output.

use candle_core::{DType, Device, Tensor};
use candle_nn::ParamsAdamW;
use vene::hooks::Component;
use vene::models::{Gpt2Config, Model};
use vene::{
    last_position_cross_entropy, ForwardRequest, IntervenableConfig, IntervenableModel,
    RepresentationConfig, UnitLocations,
};

#[test]
fn low_rank_das_loss_drops() {
    let dev = Device::Cpu;
    let (model, vars) =
        Model::random_gpt2(&Gpt2Config::tiny(16, 16, 2, 2), DType::F32, &dev).unwrap();
    // GPT-2's init (std 0.02) gives near-uniform logits: scale the tied embedding up so that
    // the token identity in the residual stream shows in the logits
    for (name, var) in vars.data().lock().unwrap().iter() {
        if name.contains("wte") {
            var.set(&(var.as_tensor() * 25.0).unwrap()).unwrap();
        }
    }
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("LowRankRotatedSpaceIntervention")
        .low_rank_dimension(8)]);
    let im = IntervenableModel::new(cfg, model).unwrap();
    assert_eq!(im.count_parameters(), 16 * 8);
    // synthetic task: the label is the source's token at position 2; base last position 4
    let (b, t) = (16usize, 5usize);
    let mut s: u64 = 12345;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) % 16) as u32
    };
    let base: Vec<u32> = (0..b * t).map(|_| next()).collect();
    let src: Vec<u32> = (0..b * t).map(|_| next()).collect();
    let labels: Vec<u32> = (0..b).map(|i| src[i * t + 2]).collect();
    let base = Tensor::from_vec(base, (b, t), &dev).unwrap();
    let src = Tensor::from_vec(src, (b, t), &dev).unwrap();
    let labels = Tensor::from_vec(labels, b, &dev).unwrap();
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
