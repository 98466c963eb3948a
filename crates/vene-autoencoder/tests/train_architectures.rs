//! Every training architecture recovers a known sparse dictionary from synthetic data, and
//! the trained SAE saves in SAELens's (and for TopK sparsify's) layout and loads back equal.

mod common;

use candle_core::{DType, Device, Tensor};
use rand::seq::index::sample;
use rand::Rng;
use vene_autoencoder::training::{
    train_sae, train_transcoder, Architecture, BDecInit, SaeTrainConfig, SaveMetadata, TrainingSae,
};
use vene_autoencoder::{load_sae, metrics};

const D: usize = 32;
const N_TRUE: usize = 32;
const ACTIVE: usize = 2;
const LATENTS: usize = 64;

/// `n` random unit directions of width `d`.
fn directions(r: &mut rand::rngs::StdRng, n: usize, d: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..d).map(|_| r.random_range(-1.0f32..1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// Rows that are sparse combinations (2 of 32, coefficients in 0.5..1.5) of `truth_in` and,
/// with the same codes, of `truth_out`, times `scale`.
struct Synthetic {
    truth_in: Vec<Vec<f32>>,
    truth_out: Vec<Vec<f32>>,
    rng: rand::rngs::StdRng,
    scale: f32,
}

impl Synthetic {
    fn new(seed: u64, d_out: usize, scale: f32) -> Self {
        let mut rng = common::rng(seed);
        let truth_in = directions(&mut rng, N_TRUE, D);
        let truth_out = if d_out == D {
            truth_in.clone()
        } else {
            directions(&mut rng, N_TRUE, d_out)
        };
        Self {
            truth_in,
            truth_out,
            rng,
            scale,
        }
    }

    fn pair(&mut self, rows: usize) -> (Tensor, Tensor) {
        let d_out = self.truth_out[0].len();
        let (mut x, mut y) = (vec![0f32; rows * D], vec![0f32; rows * d_out]);
        for i in 0..rows {
            for j in sample(&mut self.rng, N_TRUE, ACTIVE) {
                let c = self.rng.random_range(0.5f32..1.5) * self.scale;
                for k in 0..D {
                    x[i * D + k] += c * self.truth_in[j][k];
                }
                for k in 0..d_out {
                    y[i * d_out + k] += c * self.truth_out[j][k];
                }
            }
        }
        (
            Tensor::from_vec(x, (rows, D), &Device::Cpu).unwrap(),
            Tensor::from_vec(y, (rows, d_out), &Device::Cpu).unwrap(),
        )
    }
}

/// Mean over true directions of the best cosine with a decoder row of `w_dec` `[L, d]`.
fn mean_best_cosine(truth: &[Vec<f32>], w_dec: &Tensor) -> f32 {
    let rows = common::to_mat(w_dec);
    truth
        .iter()
        .map(|t| {
            rows.iter()
                .map(|c| {
                    let n = c.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    t.iter().zip(c).map(|(a, b)| a * b).sum::<f32>() / n
                })
                .fold(f32::MIN, f32::max)
        })
        .sum::<f32>()
        / truth.len() as f32
}

fn config(arch: Architecture, steps: usize, lr: f64) -> SaeTrainConfig {
    let mut cfg = SaeTrainConfig::new(arch);
    cfg.lr = lr;
    cfg.total_steps = Some(steps);
    cfg.lr_warm_up_steps = 20;
    cfg.lr_decay_steps = steps / 5;
    cfg.lr_end = lr / 10.0;
    cfg.dead_window = 50;
    cfg.sparsity_warm_up_steps = 50;
    cfg.log_every = steps;
    cfg.seed = 3;
    cfg
}

struct Outcome {
    sae: TrainingSae,
    eval: Tensor,
    eval_y: Tensor,
    ev: f64,
    l0: f64,
    cos: f32,
    resampled: usize,
}

/// Trains an SAE (or, with `d_out != D`, a transcoder) on 20 fixed batches of 256 rows.
fn train(cfg: &SaeTrainConfig, d_out: usize, scale: f32) -> Outcome {
    let mut data = Synthetic::new(42, d_out, scale);
    let batches: Vec<(Tensor, Tensor)> = (0..20).map(|_| data.pair(256)).collect();
    let (eval, eval_y) = data.pair(2048);
    let mut sae = if d_out == D {
        TrainingSae::new(cfg, D, LATENTS, DType::F32, &Device::Cpu).unwrap()
    } else {
        TrainingSae::new_transcoder(cfg, D, d_out, LATENTS, DType::F32, &Device::Cpu).unwrap()
    };
    let last = if d_out == D {
        let stream = batches.iter().cycle().map(|(x, _)| Ok(x.clone()));
        train_sae(&mut sae, stream, cfg, |_| {}).unwrap()
    } else {
        let stream = batches.iter().cycle().cloned().map(Ok);
        train_transcoder(&mut sae, stream, cfg, |_| {}).unwrap()
    };
    assert_eq!(Some(last.step), cfg.total_steps);
    let trained = sae.to_trained().unwrap();
    let ae = trained.as_autoencoder();
    let z = ae.encode(&eval).unwrap();
    let recon = ae.decode_for(&z, &eval).unwrap();
    let ev = metrics::explained_variance(&eval_y, &recon).unwrap();
    let l0 = metrics::l0(&z).unwrap();
    let cos = mean_best_cosine(&data.truth_out, sae.w_dec());
    eprintln!(
        "{:?}: ev {ev:.4} l0 {l0:.2} cos {cos:.4} last {last:?}",
        cfg.architecture
    );
    Outcome {
        sae,
        eval,
        eval_y,
        ev,
        l0,
        cos,
        resampled: last.resampled,
    }
}

fn assert_recovers(o: &Outcome) {
    assert!(o.cos >= 0.9, "mean best cosine {}", o.cos);
    assert!(o.ev >= 0.95, "explained variance {}", o.ev);
}

/// Saves in SAELens's layout, loads back through the loaders, and checks equal encodings.
fn assert_saelens_round_trip(o: &Outcome, arch: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sae");
    let meta = SaveMetadata {
        hook_name: "blocks.1.hook_resid_post".into(),
        hook_name_out: Some("blocks.1.hook_mlp_out".into()),
        layer: Some(1),
        model_name: Some("synthetic".into()),
        prepend_bos: None,
    };
    o.sae.save_saelens(&path, &meta, false).unwrap();
    let loaded = load_sae(&path).unwrap();
    assert_eq!(loaded.architecture, arch);
    assert_eq!((loaded.d_in, loaded.d_sae), (D, LATENTS));
    assert_eq!(
        loaded.hook_name.as_deref(),
        Some("blocks.1.hook_resid_post")
    );
    assert_eq!(loaded.layer, Some(1));
    let trained = o.sae.to_trained().unwrap();
    let want = trained.as_autoencoder().encode(&o.eval).unwrap();
    let got = loaded.autoencoder.encode(&o.eval).unwrap();
    let diff = (want - got).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "encodings differ");
    // A second save into the same folder needs overwrite, and leaves the first intact.
    assert!(o.sae.save_saelens(&path, &meta, false).is_err());
    assert!(load_sae(&path).is_ok());
}

#[test]
fn topk_recovers_features_keeps_k_and_saves_both_layouts() {
    let mut cfg = config(Architecture::TopK { k: 2 }, 400, 5e-3);
    cfg.aux_k = Some(8);
    let o = train(&cfg, D, 1.0);
    assert_recovers(&o);
    // Every row keeps at most k latents, and (its k-th pre-activation being positive) most
    // keep exactly k.
    let z = common::to_mat(
        &o.sae
            .to_trained()
            .unwrap()
            .as_autoencoder()
            .encode(&o.eval)
            .unwrap(),
    );
    let counts: Vec<usize> = z
        .iter()
        .map(|r| r.iter().filter(|v| **v != 0.0).count())
        .collect();
    assert!(counts.iter().all(|&c| c <= 2), "{:?}", &counts[..10]);
    assert!(o.l0 > 1.9, "l0 {}", o.l0);
    assert_saelens_round_trip(&o, "topk");
    // sparsify's layout
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layers.1");
    o.sae.save_sparsify(&path, false).unwrap();
    let loaded = load_sae(&path).unwrap();
    assert_eq!(loaded.d_sae, LATENTS);
    let want = o
        .sae
        .to_trained()
        .unwrap()
        .as_autoencoder()
        .encode(&o.eval)
        .unwrap();
    let got = loaded.autoencoder.encode(&o.eval).unwrap();
    let diff = (want - got).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn batchtopk_recovers_features_and_saves_as_jumprelu() {
    let cfg = config(Architecture::batch_topk(2), 400, 5e-3);
    let o = train(&cfg, D, 1.0);
    assert_recovers(&o);
    // At inference the learned threshold stands in for the batch top-k: L0 stays near k.
    assert!((1.5..3.0).contains(&o.l0), "l0 {}", o.l0);
    let t = o
        .sae
        .threshold()
        .unwrap()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        t[0] > 0.05 && t.iter().all(|v| *v == t[0]),
        "threshold {}",
        t[0]
    );
    assert_saelens_round_trip(&o, "jumprelu");
}

#[test]
fn jumprelu_recovers_features_and_its_thresholds_move() {
    let arch = Architecture::JumpRelu {
        init_threshold: 0.1,
        bandwidth: 0.1,
        l0_coefficient: 0.3,
    };
    let cfg = config(arch, 400, 1e-2);
    let o = train(&cfg, D, 1.0);
    assert_recovers(&o);
    let t = o
        .sae
        .threshold()
        .unwrap()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let moved = t.iter().filter(|v| (**v - 0.1).abs() > 1e-3).count();
    assert!(moved > LATENTS / 2, "only {moved} thresholds moved: {t:?}");
    assert!(o.l0 < 4.0, "l0 {}", o.l0);
    assert_saelens_round_trip(&o, "jumprelu");
}

#[test]
fn gated_recovers_features() {
    let cfg = config(
        Architecture::Gated {
            l1_coefficient: 1.5,
        },
        400,
        1e-2,
    );
    let o = train(&cfg, D, 1.0);
    assert_recovers(&o);
    assert!(o.l0 < 8.0, "l0 {}", o.l0);
    assert_saelens_round_trip(&o, "gated");
}

#[test]
fn matryoshka_recovers_features() {
    let cfg = config(Architecture::matryoshka(2, vec![32]), 400, 1e-2);
    let o = train(&cfg, D, 1.0);
    assert_recovers(&o);
    assert_saelens_round_trip(&o, "jumprelu");
}

#[test]
fn relu_with_decoder_norm_penalty_and_normalisation_recovers_features() {
    let mut cfg = config(Architecture::relu(0.3), 400, 1e-2);
    cfg.normalize_activations = true;
    // Activations 10x larger: the factor is estimated, trained with and folded out.
    let o = train(&cfg, D, 10.0);
    let (s_in, s_out) = o.sae.scaling_factors();
    assert_eq!(s_in, s_out);
    // sqrt(32) over a mean norm of about 14
    assert!(s_in > 0.3 && s_in < 0.5, "factor {s_in}");
    assert_recovers(&o);
    assert_saelens_round_trip(&o, "standard");
}

#[test]
fn resampling_revives_dead_relu_latents() {
    // An L1 penalty this strong kills most latents within the window of 20 steps.
    let run = |resample: Option<usize>| {
        let mut cfg = config(Architecture::relu(3.0), 120, 1e-2);
        cfg.dead_window = 20;
        cfg.sparsity_warm_up_steps = 0;
        cfg.resample_every = resample;
        train(&cfg, D, 1.0)
    };
    let without = run(None);
    let with = run(Some(40));
    assert_eq!(without.resampled, 0);
    assert!(with.resampled > 0, "nothing resampled");
    assert!(with.l0 >= without.l0, "{} vs {}", with.l0, without.l0);
}

#[test]
fn transcoders_recover_the_output_dictionary() {
    const D_OUT: usize = 24;
    let mut cfg = config(Architecture::TopK { k: 2 }, 400, 1e-2);
    cfg.b_dec_init = BDecInit::Mean;
    let o = train(&cfg, D_OUT, 1.0);
    assert_recovers(&o);
    let ae = o.sae.to_trained().unwrap();
    assert_eq!(ae.as_autoencoder().output_dim(), D_OUT);
    assert_eq!(o.eval_y.dim(1).unwrap(), D_OUT);
    // SAELens has no TopK transcoder; sparsify's are square
    let dir = tempfile::tempdir().unwrap();
    assert!(o
        .sae
        .save_saelens(dir.path().join("a"), &SaveMetadata::default(), false)
        .is_err());
    assert!(o.sae.save_sparsify(dir.path().join("b"), false).is_err());

    let cfg = config(Architecture::relu(0.3), 400, 1e-2);
    let o = train(&cfg, D_OUT, 1.0);
    assert_recovers(&o);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tc");
    let meta = SaveMetadata {
        hook_name: "blocks.0.ln2.hook_normalized".into(),
        hook_name_out: Some("blocks.0.hook_mlp_out".into()),
        ..Default::default()
    };
    o.sae.save_saelens(&path, &meta, false).unwrap();
    let loaded = load_sae(&path).unwrap();
    assert_eq!(loaded.architecture, "transcoder");
    assert_eq!((loaded.d_in, loaded.d_out), (D, D_OUT));
    assert_eq!(
        loaded.output_hook_name.as_deref(),
        Some("blocks.0.hook_mlp_out")
    );
    let want = o
        .sae
        .to_trained()
        .unwrap()
        .as_autoencoder()
        .forward(&o.eval, false)
        .unwrap()
        .0;
    let got = loaded.autoencoder.forward(&o.eval, false).unwrap().0;
    let diff = (want - got).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn bad_configs_are_refused_with_clear_errors() {
    let dev = Device::Cpu;
    let err = |cfg: &SaeTrainConfig| {
        TrainingSae::new(cfg, D, LATENTS, DType::F32, &dev)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&SaeTrainConfig::new(Architecture::TopK { k: 0 })).contains("k = 0"));
    assert!(err(&SaeTrainConfig::new(Architecture::TopK { k: 65 })).contains("k = 65"));
    let e = err(&SaeTrainConfig::new(Architecture::matryoshka(
        2,
        vec![32, 16],
    )));
    assert!(e.contains("strictly increasing"), "{e}");
    let mut cfg = SaeTrainConfig::new(Architecture::TopK { k: 2 });
    cfg.resample_every = Some(10);
    assert!(err(&cfg).contains("ReLU"));
    let cfg = SaeTrainConfig::new(Architecture::Gated {
        l1_coefficient: 1.0,
    });
    assert!(TrainingSae::new_transcoder(&cfg, D, 8, LATENTS, DType::F32, &dev).is_err());
    // a batch of the wrong width names it
    let cfg = SaeTrainConfig::new(Architecture::TopK { k: 2 });
    let mut sae = TrainingSae::new(&cfg, D, LATENTS, DType::F32, &dev).unwrap();
    let bad = Tensor::zeros((4, D + 1), DType::F32, &dev).unwrap();
    let e = train_sae(&mut sae, [Ok(bad)], &cfg, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("training batch"), "{e}");
    // a config of another architecture than the SAE's
    let other = SaeTrainConfig::new(Architecture::TopK { k: 4 });
    let ok = Tensor::zeros((4, D), DType::F32, &dev).unwrap();
    assert!(train_sae(&mut sae, [Ok(ok)], &other, |_| {}).is_err());
}
