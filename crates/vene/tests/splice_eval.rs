//! Splicing SAEs and transcoders into a forward pass, and `eval_sae`, checked against numbers
//! derived by hand from the model's own weights and activations.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use vene::autoencoder::{Autoencoder, ReluAutoencoder};
use vene::hooks::{Component, HookCall, Hooks, NoHooks, Result as HookResult, Site};
use vene::models::{generate, GenerationConfig, LanguageModel, Model};
use vene::{eval_sae, run_with_saes, LogitsAt, SaeEvalOptions, Splice, SpliceHooks, VeneError};

const D_MODEL: usize = 16;

fn model() -> Model {
    Model::from_dir(
        vene_testutil::fixture("tiny-gpt2"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

/// `relu(x) - relu(-x) = x`: latents `[relu(x), relu(-x)]`, decoder `[I; -I]`. Its
/// reconstruction is exactly its input.
fn identity_sae(d: usize) -> Arc<dyn Autoencoder> {
    let eye = Tensor::eye(d, DType::F32, &Device::Cpu).unwrap();
    let w_enc = Tensor::cat(&[&eye, &eye.neg().unwrap()], 1).unwrap(); // [d, 2d]
    let w_dec = w_enc.t().unwrap().contiguous().unwrap(); // [2d, d]
    Arc::new(
        ReluAutoencoder::from_tensors(
            w_enc,
            Tensor::zeros(2 * d, DType::F32, &Device::Cpu).unwrap(),
            w_dec,
            Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap(),
    )
}

/// A ReLU SAE with random weights (fixed seed by construction: a deterministic pattern).
fn patterned_sae(d: usize, l: usize) -> Arc<dyn Autoencoder> {
    let vals = |n: usize, k: f32| -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.7 + k).sin() * 0.5).collect()
    };
    let dev = Device::Cpu;
    Arc::new(
        ReluAutoencoder::from_tensors(
            Tensor::from_vec(vals(d * l, 0.3), (d, l), &dev).unwrap(),
            Tensor::from_vec(vals(l, 1.1), l, &dev).unwrap(),
            Tensor::from_vec(vals(l * d, 2.0), (l, d), &dev).unwrap(),
            Tensor::from_vec(vals(d, 0.9), d, &dev).unwrap(),
        )
        .unwrap(),
    )
}

fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![1, 5, 9, 13, 2, 40, 33, 7, 8],
        vec![3, 4, 5],
        vec![60, 2, 17, 17, 30, 12],
    ]
}

/// Mean next-token cross-entropy of each sequence run alone (no padding), in f64.
fn direct_ce(model: &Model, seqs: &[Vec<u32>], hooks: &mut dyn FnMut() -> Box<dyn Hooks>) -> f64 {
    let (mut total, mut n) = (0f64, 0usize);
    for s in seqs {
        let ids = Tensor::new(s.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model.forward(&ids, None, hooks().as_mut()).unwrap();
        let lp = candle_nn::ops::log_softmax(&logits.squeeze(0).unwrap(), D::Minus1).unwrap();
        let lp: Vec<Vec<f32>> = lp.to_vec2().unwrap();
        for t in 0..s.len() - 1 {
            total -= lp[t][s[t + 1] as usize] as f64;
            n += 1;
        }
    }
    total / n as f64
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn an_exact_sae_recovers_all_the_loss_and_its_statistics_are_the_activations() {
    let model = model();
    let seqs = sequences();
    let site = Site::new(1, Component::BlockInput);
    let splice = Splice::new(site, identity_sae(D_MODEL));
    let report = eval_sae(
        &model,
        &splice,
        &seqs,
        &SaeEvalOptions {
            batch_size: 2, // a padded batch and a batch of one
            ..Default::default()
        },
        &mut |_, _| {},
    )
    .unwrap();

    let clean = direct_ce(&model, &seqs, &mut || Box::new(NoHooks));
    assert!(
        (report.ce_loss_clean - clean).abs() < 1e-5,
        "{} vs {clean}",
        report.ce_loss_clean
    );
    assert!((report.ce_loss_spliced - clean).abs() < 1e-5);
    assert!(
        (report.loss_recovered - 1.0).abs() < 1e-4,
        "{}",
        report.loss_recovered
    );
    assert!(report.kl_div_spliced.abs() < 1e-6);
    assert_eq!(report.mse, 0.0);
    assert_eq!(report.explained_variance, 1.0);
    assert_eq!(report.sequences, 3);
    assert_eq!(report.tokens, 9 + 3 + 6);
    assert_eq!(report.predictions, 8 + 2 + 5);

    // L0 and densities from the activations themselves: latent i fires where x_i > 0,
    // latent d + i where x_i < 0.
    let (mut pos, mut neg, mut tokens) = (vec![0usize; D_MODEL], vec![0usize; D_MODEL], 0);
    for s in &seqs {
        let ids = Tensor::new(s.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let (_, cache) = model
            .run_with_cache(
                &ids,
                &LogitsAt::Nothing,
                &|s: Site| s == Site::new(0, Component::BlockOutput),
                Some(0),
            )
            .unwrap();
        let x: Vec<Vec<f32>> = cache
            .get_by_name("blocks.1.hook_resid_pre")
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        for row in x {
            tokens += 1;
            for (i, v) in row.into_iter().enumerate() {
                pos[i] += usize::from(v > 0.0);
                neg[i] += usize::from(v < 0.0);
            }
        }
    }
    let fired: usize = pos.iter().chain(&neg).sum();
    assert!((report.l0 - fired as f64 / tokens as f64).abs() < 1e-12);
    for i in 0..D_MODEL {
        assert_eq!(report.latent_density[i], pos[i] as f64 / tokens as f64);
        assert_eq!(
            report.latent_density[D_MODEL + i],
            neg[i] as f64 / tokens as f64
        );
    }
    let dead = pos.iter().chain(&neg).filter(|&&c| c == 0).count();
    assert_eq!(report.dead_fraction, dead as f64 / (2 * D_MODEL) as f64);
    let dense = report.latent_density.iter().filter(|&&d| d > 0.1).count();
    assert_eq!(report.dense_fraction, dense as f64 / (2 * D_MODEL) as f64);
}

#[test]
fn zero_ablating_the_last_residual_gives_the_loss_of_the_final_layer_norm_bias() {
    // With the last block's output zeroed, the final layer norm returns its bias b, so every
    // position's logits are wte @ b (GPT-2 ties the unembedding to wte).
    let model = model();
    let seqs = sequences();
    let w = vene_testutil::load_tensors(vene_testutil::fixture("tiny-gpt2/model.safetensors"));
    let wte: Vec<Vec<f32>> = w["transformer.wte.weight"].to_vec2().unwrap();
    let b: Vec<f32> = w["transformer.ln_f.bias"].to_vec1().unwrap();
    let logits: Vec<f64> = wte
        .iter()
        .map(|row| {
            row.iter()
                .zip(&b)
                .map(|(a, c)| (*a as f64) * (*c as f64))
                .sum()
        })
        .collect();
    let lse = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
    let (mut total, mut n) = (0f64, 0usize);
    for s in &seqs {
        for t in 1..s.len() {
            total += lse - logits[s[t] as usize];
            n += 1;
        }
    }
    let expected = total / n as f64;

    let splice = Splice::new(
        Site::new(1, Component::BlockOutput),
        patterned_sae(D_MODEL, 32),
    );
    let report = eval_sae(
        &model,
        &splice,
        &seqs,
        &SaeEvalOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(
        (report.ce_loss_zero_ablated - expected).abs() < 1e-5,
        "{} vs {expected}",
        report.ce_loss_zero_ablated
    );
    // The spliced loss is that of the forward with the reconstruction put in by hand.
    let sae = patterned_sae(D_MODEL, 32);
    let spliced = direct_ce(&model, &seqs, &mut || {
        Box::new(Replace {
            site: Site::new(1, Component::BlockOutput),
            f: Box::new({
                let sae = sae.clone();
                move |x: &Tensor| sae.forward(x, false).unwrap().0
            }),
        })
    });
    assert!((report.ce_loss_spliced - spliced).abs() < 1e-5);
    let recovered = (expected - spliced) / (expected - report.ce_loss_clean);
    assert!((report.loss_recovered - recovered).abs() < 1e-4);
    assert!(report.kl_div_zero_ablated > 0.0 && report.kl_div_spliced > 0.0);
}

/// Replaces the activation at `site` by `f(activation)`.
struct Replace {
    site: Site,
    f: Box<dyn Fn(&Tensor) -> Tensor>,
}

impl Hooks for Replace {
    fn is_active(&self, site: Site) -> bool {
        site == self.site
    }
    fn on_activation(&mut self, _call: HookCall, x: Tensor) -> HookResult<Tensor> {
        Ok((self.f)(&x))
    }
}

#[test]
fn the_error_term_keeps_the_model_exact_and_isolates_a_latent_edit() {
    let model = model();
    let ids = Tensor::new(&[[1u32, 5, 9, 13, 2, 40]], &Device::Cpu).unwrap();
    let site = Site::new(1, Component::BlockInput);
    let clean = model.forward(&ids, None, &mut NoHooks).unwrap();
    let random = Splice::new(site, patterned_sae(D_MODEL, 24));

    let plain = run_with_saes(
        &model,
        &ids,
        None,
        &LogitsAt::All,
        std::slice::from_ref(&random),
    )
    .unwrap()
    .unwrap();
    assert!(
        max_diff(&plain, &clean) > 1e-3,
        "a lossy SAE changes the logits"
    );
    let exact = run_with_saes(
        &model,
        &ids,
        None,
        &LogitsAt::All,
        &[random.with_error_term(true)],
    )
    .unwrap()
    .unwrap();
    assert!(max_diff(&exact, &clean) < 1e-5);

    // The identity SAE with latent 3 (relu(x_3)) zeroed, with the error term: the activation
    // becomes x with x_3 replaced by min(x_3, 0).
    let zero_latent_3: vene::LatentEdit = Arc::new(|z: &Tensor| {
        let mask: Vec<f32> = (0..2 * D_MODEL)
            .map(|i| if i == 3 { 0.0 } else { 1.0 })
            .collect();
        z.broadcast_mul(&Tensor::new(mask.as_slice(), z.device())?)
    });
    let edited = Splice::new(site, identity_sae(D_MODEL))
        .with_error_term(true)
        .with_latent_edit(zero_latent_3);
    let got = run_with_saes(&model, &ids, None, &LogitsAt::All, &[edited])
        .unwrap()
        .unwrap();
    let mut by_hand = Replace {
        site,
        f: Box::new(|x: &Tensor| {
            let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let v: Vec<f32> = v
                .iter()
                .enumerate()
                .map(|(i, &a)| if i % D_MODEL == 3 { a.min(0.0) } else { a })
                .collect();
            Tensor::from_vec(v, x.dims(), x.device()).unwrap()
        }),
    };
    let expected = model.forward(&ids, None, &mut by_hand).unwrap();
    assert!(max_diff(&got, &expected) < 1e-5);
    assert!(max_diff(&got, &clean) > 1e-4, "the edit changes something");
}

#[test]
fn a_transcoder_reads_the_mlp_input_and_writes_the_mlp_output() {
    let model = model();
    let ids = Tensor::new(&[[7u32, 3, 22, 41, 9]], &Device::Cpu).unwrap();
    let read = Site::new(0, Component::MlpInput);
    let write = Site::new(0, Component::MlpOutput);
    let tc = patterned_sae(D_MODEL, 20);
    let got = run_with_saes(
        &model,
        &ids,
        None,
        &LogitsAt::All,
        &[Splice::transcoder(read, write, tc.clone())],
    )
    .unwrap()
    .unwrap();

    // By hand: the MLP input of layer 0 (unchanged upstream), through the transcoder, put in
    // place of the MLP output.
    let (_, cache) = model
        .run_with_cache(&ids, &LogitsAt::Nothing, &|s: Site| s == read, Some(0))
        .unwrap();
    let recon = tc
        .forward(cache.get(0, Component::MlpInput).unwrap(), false)
        .unwrap()
        .0;
    let mut by_hand = Replace {
        site: write,
        f: Box::new(move |_x: &Tensor| recon.clone()),
    };
    let expected = model.forward(&ids, None, &mut by_hand).unwrap();
    assert!(max_diff(&got, &expected) < 1e-5);

    // Reading a site after the one written is refused with the reason.
    let backwards = Splice::transcoder(write, read, tc);
    let err = run_with_saes(&model, &ids, None, &LogitsAt::All, &[backwards]).unwrap_err();
    assert!(err.to_string().contains("had not reached"), "{err}");
}

#[test]
fn splices_work_in_generation_and_record_each_step() {
    let model = model();
    let cfg = GenerationConfig {
        max_new_tokens: 6,
        ..Default::default()
    };
    let prompt = [1u32, 5, 9, 13];
    let clean = generate(&model, &prompt, &cfg, &mut NoHooks).unwrap();
    let site = Site::new(1, Component::BlockOutput);
    let mut exact =
        SpliceHooks::new(vec![Splice::new(site, identity_sae(D_MODEL))]).recording(true);
    assert_eq!(generate(&model, &prompt, &cfg, &mut exact).unwrap(), clean);
    // The last step saw one new token.
    let rec = exact.take_records().pop().flatten().unwrap();
    assert_eq!(rec.latents.dims(), &[1, 1, 2 * D_MODEL]);
    assert!(exact.take_records()[0].is_none(), "records are taken once");

    // A splice that zeroes the residual (an SAE with a zero decoder) generates as zero ablation.
    let zero_dec: Arc<dyn Autoencoder> = Arc::new(
        ReluAutoencoder::from_tensors(
            Tensor::ones((D_MODEL, 4), DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros((4, D_MODEL), DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros(D_MODEL, DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap(),
    );
    let mut zeroing = SpliceHooks::new(vec![Splice::new(site, zero_dec)]);
    let mut ablate = Replace {
        site,
        f: Box::new(|x: &Tensor| x.zeros_like().unwrap()),
    };
    assert_eq!(
        generate(&model, &prompt, &cfg, &mut zeroing).unwrap(),
        generate(&model, &prompt, &cfg, &mut ablate).unwrap()
    );
}

#[test]
fn bad_splices_and_evaluations_are_refused_with_what_was_wrong() {
    let model = model();
    let ids = Tensor::new(&[[1u32, 2]], &Device::Cpu).unwrap();
    let wide = Splice::new(Site::new(0, Component::BlockOutput), identity_sae(8));
    match run_with_saes(
        &model,
        &ids,
        None,
        &LogitsAt::All,
        std::slice::from_ref(&wide),
    ) {
        Err(VeneError::AutoencoderWidth {
            input_dim: 8,
            width: 16,
            ..
        }) => {}
        other => panic!("expected a width error, got {other:?}"),
    }
    let err = run_with_saes(
        &model,
        &ids,
        None,
        &LogitsAt::All,
        std::slice::from_ref(&wide),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("max_number_of_units"), "{err}");
    // As wide as two units: the message says how pyvene and vene differ.
    let two_units = Splice::new(
        Site::new(0, Component::BlockOutput),
        identity_sae(2 * D_MODEL),
    );
    let err = run_with_saes(&model, &ids, None, &LogitsAt::All, &[two_units]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("32 = 2 x 16") && msg.contains("max_number_of_units"),
        "{msg}"
    );
    let deep = Splice::new(Site::new(5, Component::BlockOutput), identity_sae(D_MODEL));
    let err = run_with_saes(&model, &ids, None, &LogitsAt::All, &[deep]).unwrap_err();
    assert!(err.to_string().contains("layer 5"), "{err}");
    let head = Splice::new(Site::new(0, Component::HeadQueryOutput), identity_sae(8));
    let err = run_with_saes(&model, &ids, None, &LogitsAt::All, &[head]).unwrap_err();
    assert!(err.to_string().contains("cannot splice"), "{err}");

    let ok = Splice::new(Site::new(0, Component::BlockOutput), identity_sae(D_MODEL));
    let no_batch = SaeEvalOptions {
        batch_size: 0,
        ..Default::default()
    };
    let err = eval_sae(&model, &ok, &sequences(), &no_batch, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
    let err = eval_sae(&model, &ok, &[], &SaeEvalOptions::default(), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("no sequences"), "{err}");
    let err = eval_sae(
        &model,
        &ok,
        &[vec![1], vec![]],
        &SaeEvalOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("sequence 1 is empty"), "{err}");
    let err = eval_sae(
        &model,
        &wide,
        &sequences(),
        &SaeEvalOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, VeneError::AutoencoderWidth { .. }), "{err}");
}

#[test]
fn ignored_tokens_leave_the_sae_statistics_but_not_the_losses() {
    let model = model();
    let seqs = vec![vec![0u32, 5, 9, 13], vec![0, 4]];
    let splice = Splice::new(Site::new(1, Component::BlockInput), identity_sae(D_MODEL));
    let all = eval_sae(
        &model,
        &splice,
        &seqs,
        &SaeEvalOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    let mut calls = Vec::new();
    let no_bos = eval_sae(
        &model,
        &splice,
        &seqs,
        &SaeEvalOptions {
            ignore_tokens: vec![0],
            batch_size: 1,
            ..Default::default()
        },
        &mut |done, total| calls.push((done, total)),
    )
    .unwrap();
    assert_eq!((all.tokens, no_bos.tokens), (6, 4));
    assert_eq!(all.predictions, no_bos.predictions);
    assert!((all.ce_loss_clean - no_bos.ce_loss_clean).abs() < 1e-6);
    assert_eq!(calls, vec![(1, 2), (2, 2)]);
}

/// A loaded transcoder with the given hook names (what its files would say).
fn loaded_transcoder(hook: &str, out: Option<&str>) -> vene::autoencoder::LoadedSae {
    vene::autoencoder::LoadedSae {
        autoencoder: Box::new(
            ReluAutoencoder::from_tensors(
                Tensor::ones((D_MODEL, 4), DType::F32, &Device::Cpu).unwrap(),
                Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
                Tensor::ones((4, D_MODEL), DType::F32, &Device::Cpu).unwrap(),
                Tensor::zeros(D_MODEL, DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap(),
        ),
        format: vene::autoencoder::SaeFormat::SaeLens,
        architecture: "transcoder".into(),
        d_in: D_MODEL,
        d_sae: 4,
        d_out: D_MODEL,
        hook_name: Some(hook.into()),
        output_hook_name: out.map(Into::into),
        layer: None,
        norm_scaling_factor: None,
        interchange_dim: None,
        prepend_bos: None,
        weights_path: "sae_weights.safetensors".into(),
    }
}

#[test]
fn transcoders_read_and_write_the_sites_their_files_name() {
    let site = |l, c| Site::new(l, c);
    // SAELens: hook_name and hook_name_out.
    let s = loaded_transcoder(
        "blocks.1.ln2.hook_normalized",
        Some("blocks.1.hook_mlp_out"),
    );
    assert_eq!(
        vene::sae_sites(&s).unwrap(),
        (site(1, Component::MlpInput), site(1, Component::MlpOutput))
    );
    let splice = Splice::from_sae(s).unwrap();
    assert_eq!(
        (splice.read_site(), splice.write_site()),
        (site(1, Component::MlpInput), site(1, Component::MlpOutput))
    );
    // sparsify: one module for both, its input read and its output predicted.
    let s = loaded_transcoder("layers.0.mlp", Some("layers.0.mlp"));
    assert_eq!(
        vene::sae_sites(&s).unwrap(),
        (site(0, Component::MlpInput), site(0, Component::MlpOutput))
    );
    // An SAE reads and writes one site.
    let s = loaded_transcoder("blocks.1.hook_resid_pre", None);
    assert_eq!(
        vene::sae_sites(&s).unwrap(),
        (
            site(1, Component::BlockInput),
            site(1, Component::BlockInput)
        )
    );
    let s = loaded_transcoder("blocks.1.hook_resid_pre", Some("no.such.hook"));
    let err = vene::sae_sites(&s).unwrap_err().to_string();
    assert!(err.contains("no.such.hook"), "{err}");
}

#[test]
fn a_splice_decodes_with_the_inputs_normalisation_and_skip_term() {
    use vene::autoencoder::InputNormalization;
    let model = model();
    let ids = Tensor::new(&[[4u32, 8, 15, 16, 23]], &Device::Cpu).unwrap();
    let dev = Device::Cpu;
    let w: Vec<f32> = (0..D_MODEL * D_MODEL)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.01)
        .collect();
    let sae: Arc<dyn Autoencoder> = Arc::new(
        ReluAutoencoder::from_tensors(
            Tensor::from_vec(
                (0..D_MODEL * 24)
                    .map(|i| (i as f32 * 0.37).cos())
                    .collect::<Vec<_>>(),
                (D_MODEL, 24),
                &dev,
            )
            .unwrap(),
            Tensor::zeros(24, DType::F32, &dev).unwrap(),
            Tensor::from_vec(
                (0..24 * D_MODEL)
                    .map(|i| (i as f32 * 0.11).sin())
                    .collect::<Vec<_>>(),
                (24, D_MODEL),
                &dev,
            )
            .unwrap(),
            Tensor::zeros(D_MODEL, DType::F32, &dev).unwrap(),
        )
        .unwrap()
        .with_input_normalization(InputNormalization::LayerNorm)
        .with_skip(Tensor::from_vec(w, (D_MODEL, D_MODEL), &dev).unwrap())
        .unwrap(),
    );
    let site = Site::new(1, Component::BlockInput);
    let got = run_with_saes(
        &model,
        &ids,
        None,
        &LogitsAt::All,
        &[Splice::new(site, sae.clone())],
    )
    .unwrap()
    .unwrap();
    let mut by_hand = Replace {
        site,
        f: Box::new(move |x: &Tensor| sae.forward(x, false).unwrap().0),
    };
    let expected = model.forward(&ids, None, &mut by_hand).unwrap();
    assert!(max_diff(&got, &expected) < 1e-5);
}

#[test]
fn a_transcoder_interchange_swaps_latents_read_at_one_site_into_another() {
    let model = model();
    let base = Tensor::new(&[[7u32, 3, 22, 41, 9], [1, 2, 3, 4, 5]], &Device::Cpu).unwrap();
    let source = Tensor::new(&[[12u32, 30, 5, 5, 60], [9, 8, 7, 6, 5]], &Device::Cpu).unwrap();
    let (read, write) = (
        Site::new(0, Component::MlpInput),
        Site::new(0, Component::MlpOutput),
    );
    let tc = patterned_sae(D_MODEL, 20);
    let splice = Splice::transcoder(read, write, tc.clone());
    let dims = [1usize, 3, 7];
    let got = vene::transcoder_interchange(
        &model,
        &base,
        &source,
        &splice,
        &dims,
        (2, 4),
        &LogitsAt::All,
    )
    .unwrap()
    .unwrap();

    // By hand: latents of the source's MLP input at position 2, swapped into the base's at
    // position 4, decoded in place of the base's MLP output at position 4.
    let at = |ids: &Tensor, pos: usize| {
        let (_, cache) = model
            .run_with_cache(ids, &LogitsAt::Nothing, &|s: Site| s == read, Some(0))
            .unwrap();
        cache
            .get(0, Component::MlpInput)
            .unwrap()
            .narrow(1, pos, 1)
            .unwrap()
    };
    let (x_base, x_src) = (at(&base, 4), at(&source, 2));
    let (zb, zs) = (tc.encode(&x_base).unwrap(), tc.encode(&x_src).unwrap());
    let zb: Vec<Vec<Vec<f32>>> = zb.to_vec3().unwrap();
    let zs: Vec<Vec<Vec<f32>>> = zs.to_vec3().unwrap();
    let swapped: Vec<f32> = (0..2)
        .flat_map(|b| (0..20).map(move |i| (b, i)))
        .map(|(b, i)| {
            if dims.contains(&i) {
                zs[b][0][i]
            } else {
                zb[b][0][i]
            }
        })
        .collect();
    let swapped = Tensor::from_vec(swapped, (2, 1, 20), &Device::Cpu).unwrap();
    let unit = tc.decode_for(&swapped, &x_base).unwrap();
    let mut by_hand = Replace {
        site: write,
        f: Box::new(move |x: &Tensor| {
            let t = x.dim(1).unwrap();
            Tensor::cat(
                &[
                    x.narrow(1, 0, 4).unwrap(),
                    unit.clone(),
                    x.narrow(1, 5, t - 5).unwrap(),
                ],
                1,
            )
            .unwrap()
        }),
    };
    let expected = model.forward(&base, None, &mut by_hand).unwrap();
    assert!(max_diff(&got, &expected) < 1e-5);
    let clean = model.forward(&base, None, &mut NoHooks).unwrap();
    assert!(max_diff(&got, &clean) > 1e-4);

    // With the error term and nothing swapped, the base is unchanged.
    let exact = splice.clone().with_error_term(true);
    let same =
        vene::transcoder_interchange(&model, &base, &source, &exact, &[], (2, 4), &LogitsAt::All)
            .unwrap()
            .unwrap();
    assert!(max_diff(&same, &clean) < 1e-5);
    // Bad input is refused with what was wrong.
    let err = vene::transcoder_interchange(
        &model,
        &base,
        &source,
        &splice,
        &[20],
        (2, 4),
        &LogitsAt::All,
    )
    .unwrap_err();
    assert!(err.to_string().contains("20"), "{err}");
    let err = vene::transcoder_interchange(
        &model,
        &base,
        &source,
        &splice,
        &[1],
        (2, 9),
        &LogitsAt::All,
    )
    .unwrap_err();
    assert!(err.to_string().contains("position 9"), "{err}");
}
