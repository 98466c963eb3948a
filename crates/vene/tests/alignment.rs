//! pyvene's `set_temperature`, `train_alignment` and `eval_alignment` through the facade.

mod common;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::ParamsAdamW;
use vene::hooks::Component;
use vene::interventions::{BoundlessRotatedSpaceIntervention, Intervention, Selection};
use vene::{
    AlignmentBatch, AlignmentOptions, ForwardRequest, IntervenableConfig, IntervenableModel,
    RepresentationConfig, UnitLocations,
};

fn batches(base: &Tensor, src: &Tensor, labels: &Tensor, size: usize) -> Vec<AlignmentBatch> {
    let n = labels.dim(0).unwrap();
    (0..n)
        .step_by(size)
        .map(|i| {
            let k = size.min(n - i);
            AlignmentBatch {
                request: ForwardRequest::new(base.narrow(0, i, k).unwrap())
                    .source(src.narrow(0, i, k).unwrap())
                    .locations(UnitLocations::pair(2, 4)),
                labels: labels.narrow(0, i, k).unwrap(),
            }
        })
        .collect()
}

/// The IIA counted by hand: argmax of the intervened logits at the last position.
fn iia_by_hand(im: &IntervenableModel<vene::models::Model>, data: &[AlignmentBatch]) -> f64 {
    let (mut right, mut n) = (0, 0);
    for b in data {
        let logits = im.forward(&b.request).unwrap().intervened;
        let t = logits.dim(1).unwrap();
        let pred: Vec<u32> = logits
            .narrow(1, t - 1, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .argmax(D::Minus1)
            .unwrap()
            .to_vec1()
            .unwrap();
        let labels: Vec<u32> = b.labels.to_vec1().unwrap();
        right += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
        n += labels.len();
    }
    right as f64 / n as f64
}

#[test]
fn train_alignment_learns_the_das_task_and_eval_alignment_counts_right() {
    let (model, base, src, labels) = common::das_task(32, 777);
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("LowRankRotatedSpaceIntervention")
        .low_rank_dimension(8)]);
    let im = IntervenableModel::new(cfg, model).unwrap();
    let train = batches(&base, &src, &labels, 8);
    let before = im.eval_alignment(&train).unwrap();
    assert_eq!(before, iia_by_hand(&im, &train));
    let mut seen = Vec::new();
    let opts = AlignmentOptions {
        epochs: 40,
        optimizer: ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let report = im
        .train_alignment(&train, &train, &opts, &mut |e| seen.push(e.clone()))
        .unwrap();
    assert_eq!(report.epochs, seen);
    assert_eq!(report.steps, 40 * 4);
    assert!(!report.stopped_early);
    let after = im.eval_alignment(&train).unwrap();
    assert_eq!(after, iia_by_hand(&im, &train));
    assert_eq!(Some(after), report.epochs.last().unwrap().eval_iia);
    let (first, last) = (report.epochs[0].loss, report.epochs.last().unwrap().loss);
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(after > before + 0.3, "IIA {before} -> {after}");
    let best = report.best_epoch.unwrap();
    let best_iia = report.epochs[best].eval_iia.unwrap();
    assert!(report
        .epochs
        .iter()
        .all(|e| e.eval_iia.unwrap() <= best_iia));
}

#[test]
fn early_stopping_ends_when_the_iia_stops_improving() {
    let (model, base, src, labels) = common::das_task(16, 99);
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("LowRankRotatedSpaceIntervention")
        .low_rank_dimension(8)]);
    let im = IntervenableModel::new(cfg, model).unwrap();
    let train = batches(&base, &src, &labels, 8);
    let opts = AlignmentOptions {
        epochs: 500,
        optimizer: ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        },
        patience: Some(3),
        ..Default::default()
    };
    let report = im
        .train_alignment(&train, &train, &opts, &mut |_| {})
        .unwrap();
    assert!(
        report.stopped_early,
        "ran all {} epochs",
        report.epochs.len()
    );
    let n = report.epochs.len();
    let best = report.best_epoch.unwrap();
    // It stopped exactly 3 epochs after the best one, none of which beat it.
    assert_eq!(n - 1, best + 3);
    let best_iia = report.epochs[best].eval_iia.unwrap();
    assert!(report.epochs[best + 1..]
        .iter()
        .all(|e| e.eval_iia.unwrap() <= best_iia));
    assert!(report.epochs[..best]
        .iter()
        .all(|e| e.eval_iia.unwrap() < best_iia));
}

#[test]
fn boundless_das_anneals_its_temperature_through_the_facade() {
    let (model, base, src, labels) = common::das_task(16, 5);
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("BoundlessRotatedSpaceIntervention")]);
    let im = IntervenableModel::new(cfg, model).unwrap();
    assert_eq!(im.temperatures()[0].1, 50.0);

    // The temperature set through the shared intervention is the one its mask uses: the
    // output equals that of the same rotation and boundary built at that temperature.
    im.set_temperature(2.0).unwrap();
    let iv = im.interventions()[0].clone();
    assert_eq!(iv.temperature(), Some(2.0));
    let state = iv.state_dict().unwrap();
    let rotation = &state
        .iter()
        .find(|(k, _)| k == "rotate_layer.weight")
        .unwrap()
        .1;
    let rebuilt = BoundlessRotatedSpaceIntervention::from_parts(rotation, 0.5, 2.0).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 1, 16), &Device::Cpu).unwrap();
    let y = Tensor::randn(0f32, 1.0, (2, 1, 16), &Device::Cpu).unwrap();
    let a = iv.forward(&x, Some(&y), &Selection::Default).unwrap();
    let b = rebuilt.forward(&x, Some(&y), &Selection::Default).unwrap();
    assert!(common::max_abs_diff(&a, &b) < 1e-6);
    // The mask by hand at T = 2, boundary 0.5, d = 16: sigmoid(i / T) * sigmoid((8 - i) / T).
    let mask: Vec<f32> = rebuilt
        .mask()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for (i, m) in mask.iter().enumerate() {
        let want = sig(i as f64 / 2.0) * sig((8.0 - i as f64) / 2.0);
        assert!((*m as f64 - want).abs() < 1e-6, "mask[{i}] {m} vs {want}");
    }

    // Annealed from 50 to 0.1 over 3 epochs x 2 batches = 6 steps.
    let train = batches(&base, &src, &labels, 8);
    let opts = AlignmentOptions {
        epochs: 3,
        temperature: Some((50.0, 0.1)),
        ..Default::default()
    };
    let report = im.train_alignment(&train, &[], &opts, &mut |_| {}).unwrap();
    let step = |i: f64| 50.0 + (0.1 - 50.0) * i / 5.0;
    let temps: Vec<f64> = report
        .epochs
        .iter()
        .map(|e| e.temperature.unwrap())
        .collect();
    for (got, want) in temps.iter().zip([step(1.0), step(3.0), step(5.0)]) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    assert!((im.temperatures()[0].1 - 0.1).abs() < 1e-12);
    assert!(report.epochs.iter().all(|e| e.eval_iia.is_none()));
}

#[test]
fn bad_alignment_settings_are_refused_and_change_nothing() {
    let (model, base, src, labels) = common::das_task(8, 1);
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("LowRankRotatedSpaceIntervention")
        .low_rank_dimension(4)]);
    let im = IntervenableModel::new(cfg, model).unwrap();
    let train = batches(&base, &src, &labels, 8);
    let err = im.set_temperature(1.0).unwrap_err().to_string();
    assert!(err.contains("no intervention has a temperature"), "{err}");
    let with_schedule = AlignmentOptions {
        temperature: Some((50.0, 0.1)),
        ..Default::default()
    };
    let err = im
        .train_alignment(&train, &[], &with_schedule, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no intervention has a temperature"), "{err}");
    let patient = AlignmentOptions {
        patience: Some(2),
        ..Default::default()
    };
    let err = im
        .train_alignment(&train, &[], &patient, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs evaluation batches"), "{err}");
    let err = im
        .train_alignment(&[], &[], &AlignmentOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no training batches"), "{err}");

    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("SigmoidMaskIntervention")]);
    let (model, ..) = common::das_task(1, 1);
    let im = IntervenableModel::new(cfg, model).unwrap();
    assert_eq!(im.temperatures()[0].1, 0.01);
    assert!(im.set_temperature(0.0).is_err());
    assert!(im.set_temperature(f64::INFINITY).is_err());
    assert_eq!(im.temperatures()[0].1, 0.01);
}
