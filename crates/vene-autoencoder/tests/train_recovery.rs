//! Training recovers a known sparse dictionary from synthetic data.

mod common;

use candle_core::{Device, Tensor};
use rand::seq::index::sample;
use rand::Rng;
use vene_autoencoder::{metrics, train, Autoencoder, AutoencoderLayer, TrainConfig};

const D: usize = 16;
const N_TRUE: usize = 32;
const ACTIVE: usize = 3;

#[test]
fn training_recovers_a_sparse_dictionary() {
    let mut r = common::rng(42);
    // 32 unit ground-truth directions in 16 dims.
    let truth: Vec<Vec<f32>> = (0..N_TRUE)
        .map(|_| {
            let v: Vec<f32> = (0..D).map(|_| r.random_range(-1.0f32..1.0)).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect()
        })
        .collect();
    let mut batch = |rows: usize| -> Tensor {
        let mut data = vec![0f32; rows * D];
        for i in 0..rows {
            for j in sample(&mut r, N_TRUE, ACTIVE) {
                let c = r.random_range(0.5f32..1.5);
                for k in 0..D {
                    data[i * D + k] += c * truth[j][k];
                }
            }
        }
        Tensor::from_vec(data, (rows, D), &Device::Cpu).unwrap()
    };
    let batches: Vec<Tensor> = (0..40).map(|_| batch(256)).collect();
    let eval = batch(2048);

    // Seeded torch-style init (AutoencoderLayer::new draws from candle's unseeded CPU rng).
    let mut init = common::rng(7);
    let (eb, db) = (1.0 / (D as f32).sqrt(), 1.0 / 64f32.sqrt());
    let ae = AutoencoderLayer::from_tensors(
        common::t2(&common::rand_mat(&mut init, 64, D, eb)),
        common::t1(&common::rand_vec(&mut init, 64, eb)),
        common::t2(&common::rand_mat(&mut init, D, 64, db)),
        common::t1(&common::rand_vec(&mut init, D, db)),
    )
    .unwrap();
    let cfg = TrainConfig {
        lr: 3e-3,
        lr_warm_up_steps: 50,
        lr_decay_steps: 500,
        lr_end: 3e-4,
        total_steps: Some(3000),
        l1_coefficient: 0.15,
        l1_warm_up_steps: 300,
        log_every: 500,
        ..Default::default()
    };
    let mut reports = Vec::new();
    let stream = batches.iter().cycle().cloned().map(Ok);
    let last = train(&ae, stream, &cfg, |p| reports.push(p.clone())).unwrap();
    assert_eq!(last.step, 3000);
    assert!(
        reports.len() >= 6,
        "callback every 500 steps: {}",
        reports.len()
    );
    assert!(reports.windows(2).all(|w| w[0].step < w[1].step));

    let (recon, z) = ae.forward(&eval, true).unwrap();
    let ev = metrics::explained_variance(&eval, &recon).unwrap();
    let l0 = metrics::l0(&z.unwrap()).unwrap();
    // Decoder columns: [d, L]; best cosine per true direction.
    let w_dec = common::to_mat(ae.decoder_weight());
    let cols: Vec<Vec<f32>> = (0..64)
        .map(|j| (0..D).map(|k| w_dec[k][j]).collect())
        .collect();
    let mean_best: f32 = truth
        .iter()
        .map(|t| {
            cols.iter()
                .map(|c| {
                    let n = c.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    t.iter().zip(c).map(|(a, b)| a * b).sum::<f32>() / n
                })
                .fold(f32::MIN, f32::max)
        })
        .sum::<f32>()
        / N_TRUE as f32;
    eprintln!("ev {ev:.4} l0 {l0:.2} mean best cos {mean_best:.4} last {last:?}");
    assert!(mean_best >= 0.9, "mean best cosine {mean_best}");
    assert!(ev >= 0.95, "explained variance {ev}");
}
