//! A training run stopped at a checkpoint and resumed gives bit for bit the parameters (and
//! the progress records) of a run that never stopped; bad checkpoints give typed errors; a
//! [`SaeTrainer`] stepped by hand gives `train_sae`'s parameters bit for bit.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::training::{
    resume_sae_training, resume_transcoder_training, train_sae, train_transcoder, Architecture,
    BDecInit, SaeTrainConfig, SaeTrainer, TrainingSae, CHECKPOINT_STATE, CHECKPOINT_TENSORS,
};
use vene_autoencoder::AutoencoderError;

const D: usize = 6;
const L: usize = 12;
const STEPS: usize = 8;
const HALF: usize = 4;

/// Deterministic batches: `n` of `[16, width]`, from a sine pattern (no RNG).
fn batches(n: usize, width: usize, phase: f32) -> Vec<Tensor> {
    (0..n)
        .map(|b| {
            let v: Vec<f32> = (0..16 * width)
                .map(|i| ((i * 7 + b * 13) as f32 * 0.37 + phase).sin() * (1.0 + (i % 5) as f32))
                .collect();
            Tensor::from_vec(v, (16, width), &Device::Cpu).unwrap()
        })
        .collect()
}

fn config(arch: Architecture, root: &Path) -> SaeTrainConfig {
    let mut cfg = SaeTrainConfig::new(arch);
    cfg.lr = 5e-3;
    cfg.lr_warm_up_steps = 3;
    cfg.total_steps = Some(STEPS);
    cfg.sparsity_warm_up_steps = 3;
    cfg.dead_window = 2;
    cfg.log_every = 1;
    cfg.seed = 7;
    cfg.normalize_activations = true;
    cfg.norm_estimation_batches = 2;
    cfg.b_dec_init = BDecInit::GeometricMedian { iterations: 5 };
    cfg.metrics_path = Some(root.join("metrics.jsonl"));
    cfg
}

fn params(sae: &TrainingSae) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = [sae.w_enc(), sae.b_enc(), sae.w_dec(), sae.b_dec()]
        .into_iter()
        .map(|t| t.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    if let Some(t) = sae.threshold().unwrap() {
        out.push(t.to_vec1().unwrap());
    }
    out
}

/// Straight run vs. a run whose source runs out at HALF (checkpoint) then resumed.
fn check_resume_is_exact(arch: Architecture) {
    let data = batches(STEPS, D, 0.0);
    let source = || data.clone().into_iter().map(Ok);
    let straight_dir = tempfile::tempdir().unwrap();
    let cfg = config(arch.clone(), straight_dir.path());
    let mut straight = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap();
    let mut straight_steps = Vec::new();
    let last = train_sae(&mut straight, source(), &cfg, |p| {
        straight_steps.push(p.clone())
    })
    .unwrap();
    assert_eq!(last.step, STEPS);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg2 = config(arch.clone(), dir.path());
    cfg2.checkpoint_every = Some(HALF);
    cfg2.checkpoint_dir = Some(dir.path().join("ckpt"));
    let mut first = TrainingSae::new(&cfg2, D, L, DType::F32, &Device::Cpu).unwrap();
    let stopped = train_sae(&mut first, source().take(HALF), &cfg2, |_| {}).unwrap();
    assert_eq!(stopped.step, HALF);
    assert!(dir.path().join("ckpt").join(CHECKPOINT_TENSORS).is_file());
    assert!(dir.path().join("ckpt").join(CHECKPOINT_STATE).is_file());
    // a record after the checkpoint that the interruption left behind is dropped on resume
    let metrics = dir.path().join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"step\": 5, \"loss\": 1.0}\n{\"step\": 6, \"lo");
    std::fs::write(&metrics, text).unwrap();

    let mut resumed_steps = Vec::new();
    let (resumed, last2) = resume_sae_training(
        dir.path().join("ckpt"),
        source(),
        &cfg2,
        &Device::Cpu,
        |p| resumed_steps.push(p.clone()),
    )
    .unwrap();
    assert_eq!(last2.step, STEPS);
    assert_eq!(
        resumed_steps.iter().map(|p| p.step).collect::<Vec<_>>(),
        (HALF + 1..=STEPS).collect::<Vec<_>>()
    );
    // the resumed steps' records are the straight run's, bit for bit
    assert_eq!(resumed_steps[..], straight_steps[HALF..], "{arch:?}");
    assert_eq!(params(&resumed), params(&straight), "{arch:?}");
    assert_eq!(resumed.scaling_factors(), straight.scaling_factors());
    // it did train past the checkpoint
    assert_ne!(params(&resumed), params(&first), "{arch:?}");
    // the metrics files match line for line (steps 1..=8, one JSON object each)
    let a = std::fs::read_to_string(straight_dir.path().join("metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(a.lines().count(), STEPS);
    assert_eq!(a, b, "{arch:?}");
    let rec: serde_json::Value = serde_json::from_str(a.lines().nth(2).unwrap()).unwrap();
    assert_eq!(rec["step"], 3);
    for key in [
        "loss",
        "mse",
        "l0",
        "explained_variance",
        "dead_fraction",
        "lr",
    ] {
        assert!(rec[key].is_number(), "{key} in {rec}");
    }
    // lr at step 3 (0-based 2) of a 3-step warm-up is the peak
    assert_eq!(rec["lr"].as_f64().unwrap(), 5e-3);
}

#[test]
fn topk_resume_is_bit_exact() {
    check_resume_is_exact(Architecture::TopK { k: 3 });
}

#[test]
fn jumprelu_resume_is_bit_exact() {
    check_resume_is_exact(Architecture::JumpRelu {
        init_threshold: 0.05,
        bandwidth: 0.5,
        l0_coefficient: 0.1,
    });
}

#[test]
fn batch_topk_resume_is_bit_exact() {
    check_resume_is_exact(Architecture::batch_topk(3));
}

#[test]
fn relu_with_resampling_resume_is_bit_exact() {
    // resampling every 3 steps with a 2-step dead window draws from the RNG before and after
    // the checkpoint
    check_resume_is_exact_with(Architecture::relu(30.0), |cfg| {
        cfg.resample_every = Some(3);
        cfg.lr = 0.05;
    });
}

fn check_resume_is_exact_with(arch: Architecture, tweak: impl Fn(&mut SaeTrainConfig)) {
    let data = batches(STEPS, D, 0.3);
    let source = || data.clone().into_iter().map(Ok);
    let d1 = tempfile::tempdir().unwrap();
    let mut cfg = config(arch.clone(), d1.path());
    tweak(&mut cfg);
    let mut straight = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap();
    let last = train_sae(&mut straight, source(), &cfg, |_| {}).unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut cfg2 = config(arch, d2.path());
    tweak(&mut cfg2);
    cfg2.checkpoint_every = Some(HALF);
    cfg2.checkpoint_dir = Some(d2.path().join("ckpt"));
    let mut first = TrainingSae::new(&cfg2, D, L, DType::F32, &Device::Cpu).unwrap();
    train_sae(&mut first, source().take(HALF + 1), &cfg2, |_| {}).unwrap();
    let (resumed, last2) = resume_sae_training(
        d2.path().join("ckpt"),
        source(),
        &cfg2,
        &Device::Cpu,
        |_| {},
    )
    .unwrap();
    assert!(last.resampled > 0, "the test must resample");
    assert_eq!(last2, last);
    assert_eq!(params(&resumed), params(&straight));
}

#[test]
fn transcoder_resume_is_bit_exact() {
    let xs = batches(STEPS, D, 0.0);
    let ys = batches(STEPS, 4, 1.0);
    let source = || {
        xs.clone()
            .into_iter()
            .zip(ys.clone())
            .map(Ok::<_, AutoencoderError>)
    };
    let d1 = tempfile::tempdir().unwrap();
    let cfg = config(Architecture::TopK { k: 3 }, d1.path());
    let mut straight =
        TrainingSae::new_transcoder(&cfg, D, 4, L, DType::F32, &Device::Cpu).unwrap();
    train_transcoder(&mut straight, source(), &cfg, |_| {}).unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut cfg2 = config(Architecture::TopK { k: 3 }, d2.path());
    cfg2.checkpoint_every = Some(HALF);
    cfg2.checkpoint_dir = Some(d2.path().join("ckpt"));
    let mut first = TrainingSae::new_transcoder(&cfg2, D, 4, L, DType::F32, &Device::Cpu).unwrap();
    train_transcoder(&mut first, source().take(HALF), &cfg2, |_| {}).unwrap();
    // an SAE resume of a transcoder checkpoint is refused
    let err = resume_sae_training(
        d2.path().join("ckpt"),
        xs.clone().into_iter().map(Ok),
        &cfg2,
        &Device::Cpu,
        |_| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("resume_transcoder_training"),
        "{err}"
    );
    let (resumed, _) = resume_transcoder_training(
        d2.path().join("ckpt"),
        source(),
        &cfg2,
        &Device::Cpu,
        |_| {},
    )
    .unwrap();
    assert_eq!(params(&resumed), params(&straight));
}

/// A checkpoint written at step HALF, in `root/ckpt`.
fn checkpoint(root: &Path) -> (SaeTrainConfig, Vec<Tensor>) {
    let data = batches(STEPS, D, 0.0);
    let mut cfg = config(Architecture::TopK { k: 3 }, root);
    cfg.checkpoint_every = Some(HALF);
    cfg.checkpoint_dir = Some(root.join("ckpt"));
    let mut sae = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap();
    train_sae(
        &mut sae,
        data.clone().into_iter().take(HALF).map(Ok),
        &cfg,
        |_| {},
    )
    .unwrap();
    (cfg, data)
}

fn resume_err(root: &Path, cfg: &SaeTrainConfig, data: &[Tensor]) -> AutoencoderError {
    resume_sae_training(
        root.join("ckpt"),
        data.iter().cloned().map(Ok),
        cfg,
        &Device::Cpu,
        |_| {},
    )
    .unwrap_err()
}

#[test]
fn bad_checkpoints_give_typed_errors() {
    let root = tempfile::tempdir().unwrap();
    let (cfg, data) = checkpoint(root.path());
    let ckpt = root.path().join("ckpt");

    // the source must reach the checkpoint's position
    let err = resume_err(root.path(), &cfg, &data[..2]);
    assert!(
        matches!(&err, AutoencoderError::InvalidArgument(m) if m.contains("ended after 2 batches")),
        "{err}"
    );
    // another architecture
    let mut other = cfg.clone();
    other.architecture = Architecture::TopK { k: 2 };
    let err = resume_err(root.path(), &other, &data);
    assert!(
        matches!(&err, AutoencoderError::InvalidCheckpoint { message, .. } if message.contains("TopK { k: 3 }")),
        "{err}"
    );
    // truncated tensors
    let tensors = ckpt.join(CHECKPOINT_TENSORS);
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
    let err = resume_err(root.path(), &cfg, &data);
    assert!(
        matches!(&err, AutoencoderError::InvalidCheckpoint { message, .. } if message.contains("unreadable safetensors")),
        "{err}"
    );
    std::fs::write(&tensors, &bytes).unwrap();
    // corrupt JSON
    let state = ckpt.join(CHECKPOINT_STATE);
    let json = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, &json[..json.len() / 2]).unwrap();
    let err = resume_err(root.path(), &cfg, &data);
    assert!(
        matches!(&err, AutoencoderError::InvalidCheckpoint { message, .. } if message.contains("corrupt JSON")),
        "{err}"
    );
    // missing state file
    std::fs::remove_file(&state).unwrap();
    let err = resume_err(root.path(), &cfg, &data);
    assert!(
        matches!(&err, AutoencoderError::InvalidCheckpoint { message, .. } if message.contains(CHECKPOINT_STATE)),
        "{err}"
    );
    // missing folder
    std::fs::remove_dir_all(&ckpt).unwrap();
    let err = resume_err(root.path(), &cfg, &data);
    assert!(
        matches!(&err, AutoencoderError::InvalidCheckpoint { message, .. } if message.contains("no such checkpoint folder")),
        "{err}"
    );
}

#[test]
fn checkpoint_every_needs_a_folder() {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(Architecture::TopK { k: 3 }, root.path());
    cfg.checkpoint_every = Some(2);
    let err = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("checkpoint_dir"), "{err}");
}

/// pyvene's AutoencoderLayer trained by `train` (L1, unit-norm decoder columns, warm-ups):
/// straight vs. stopped at a checkpoint and resumed into a layer of other weights: equal
/// parameters and equal progress records after the checkpoint. A checkpoint of another shape
/// or of another trainer is refused and leaves the layer as it was.
#[test]
fn autoencoder_layer_resume_is_bit_exact_and_checked() {
    use vene_autoencoder::{resume_train, train, AutoencoderLayer, TrainConfig, TrainProgress};
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let data = batches(STEPS, D, 0.3);
    let cfg = TrainConfig {
        lr: 5e-3,
        lr_warm_up_steps: 3,
        l1_warm_up_steps: 3,
        total_steps: Some(STEPS),
        dead_window: 2,
        log_every: 1,
        checkpoint_every: Some(HALF),
        checkpoint_dir: Some(ckpt.clone()),
        ..Default::default()
    };
    let layer_params = |ae: &AutoencoderLayer| -> Vec<Vec<f32>> {
        ae.vars()
            .iter()
            .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let source = || data.clone().into_iter().map(Ok);
    let straight = AutoencoderLayer::seeded(D, L, 1, &Device::Cpu).unwrap();
    let mut straight_log: Vec<TrainProgress> = Vec::new();
    train(&straight, source(), &cfg, |p| straight_log.push(p.clone())).unwrap();
    let stopped = AutoencoderLayer::seeded(D, L, 1, &Device::Cpu).unwrap();
    train(&stopped, source().take(HALF), &cfg, |_| {}).unwrap();
    assert!(ckpt.join(CHECKPOINT_STATE).is_file() && ckpt.join(CHECKPOINT_TENSORS).is_file());
    assert_ne!(layer_params(&stopped), layer_params(&straight));

    let resumed = AutoencoderLayer::seeded(D, L, 9, &Device::Cpu).unwrap();
    let mut resumed_log: Vec<TrainProgress> = Vec::new();
    let last = resume_train(&resumed, &ckpt, source(), &cfg, |p| {
        resumed_log.push(p.clone())
    })
    .unwrap();
    assert_eq!(last.step, STEPS);
    assert_eq!(layer_params(&resumed), layer_params(&straight));
    assert_eq!(resumed_log[..], straight_log[HALF..]);

    // another shape: refused, the layer keeps its weights
    let wide = AutoencoderLayer::seeded(D, 2 * L, 4, &Device::Cpu).unwrap();
    let before = layer_params(&wide);
    let err = resume_train(&wide, &ckpt, source(), &cfg, |_| {}).unwrap_err();
    assert!(
        matches!(&err, AutoencoderError::InvalidCheckpoint { message, .. } if message.contains("6 -> 12")),
        "{err}"
    );
    assert_eq!(layer_params(&wide), before);
    // an architecture trainer's checkpoint: refused by its format
    let sae_root = tmp.path().join("sae");
    std::fs::create_dir_all(&sae_root).unwrap();
    let (sae_cfg, _) = checkpoint(&sae_root);
    let sae_ckpt = sae_cfg.checkpoint_dir.clone().unwrap();
    let layer = AutoencoderLayer::seeded(D, L, 4, &Device::Cpu).unwrap();
    let err = resume_train(&layer, &sae_ckpt, source(), &cfg, |_| {}).unwrap_err();
    assert!(
        matches!(&err, AutoencoderError::InvalidCheckpoint { message, .. } if message.contains("vene-sae-checkpoint")),
        "{err}"
    );
    // a checkpoint with a tensor cut off: refused before anything changes
    let tensors = ckpt.join(CHECKPOINT_TENSORS);
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
    let before = layer_params(&layer);
    assert!(matches!(
        resume_train(&layer, &ckpt, source(), &cfg, |_| {}),
        Err(AutoencoderError::InvalidCheckpoint { .. })
    ));
    assert_eq!(layer_params(&layer), before);
}

/// `SaeTrainer::step` is `train_sae`'s step: the same batches give the same parameters bit
/// for bit, for every architecture (with a 2-step dead window, so AuxK and resampling run).
#[test]
fn sae_trainer_steps_are_train_sae_steps() {
    let data = batches(STEPS, D, 0.1);
    let archs = [
        Architecture::relu(30.0),
        Architecture::TopK { k: 3 },
        Architecture::batch_topk(3),
        Architecture::JumpRelu {
            init_threshold: 0.05,
            bandwidth: 0.5,
            l0_coefficient: 0.1,
        },
        Architecture::Gated {
            l1_coefficient: 0.5,
        },
        Architecture::matryoshka(3, vec![6]),
    ];
    for arch in archs {
        let root = tempfile::tempdir().unwrap();
        let mut cfg = config(arch.clone(), root.path());
        // a SaeTrainer uses the SAE's factors as they are (1 for a fresh SAE)
        cfg.normalize_activations = false;
        cfg.metrics_path = None;
        if matches!(arch, Architecture::Relu { .. }) {
            cfg.resample_every = Some(3);
        }
        let mut straight = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap();
        let last = train_sae(
            &mut straight,
            data.clone().into_iter().map(Ok),
            &cfg,
            |_| {},
        )
        .unwrap();
        let sae = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap();
        let mut trainer = SaeTrainer::new(sae, &cfg).unwrap();
        let mut loss = f64::NAN;
        for x in &data {
            loss = trainer.step(x).unwrap();
        }
        assert_eq!(trainer.steps_done(), STEPS);
        assert_eq!(loss, last.loss, "{arch:?}");
        let by_hand = trainer.into_sae();
        assert_eq!(params(&by_hand), params(&straight), "{arch:?}");
        // and the parameters moved
        let fresh = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap();
        assert_ne!(params(&by_hand), params(&fresh), "{arch:?}");
    }
}

#[test]
fn sae_trainer_refuses_a_mismatched_config_or_batch() {
    let cfg = SaeTrainConfig::new(Architecture::TopK { k: 3 });
    let other = SaeTrainConfig::new(Architecture::batch_topk(3));
    let sae = TrainingSae::new(&cfg, D, L, DType::F32, &Device::Cpu).unwrap();
    let err = SaeTrainer::new(sae.clone(), &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("built as TopK"), "{err}");
    let mut trainer = SaeTrainer::new(sae, &cfg).unwrap();
    let before = params(trainer.sae());
    let wide = Tensor::zeros((4, D + 1), DType::F32, &Device::Cpu).unwrap();
    let err = trainer.step(&wide).unwrap_err().to_string();
    assert!(err.contains(&(D + 1).to_string()), "{err}");
    let x = Tensor::zeros((4, D), DType::F32, &Device::Cpu).unwrap();
    let err = trainer.step_transcoder(&x, &x).unwrap_err().to_string();
    assert!(err.contains("needs a transcoder"), "{err}");
    assert_eq!(trainer.steps_done(), 0);
    assert_eq!(params(trainer.sae()), before);
}
