//! Nothing lost, nothing silent: bit-exact state round trips for every autoencoder kind and
//! layout, sizes checked before allocating, clear messages for what is not supported.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use vene_autoencoder::{
    autoencoder_from_state, load_sae, write_safetensors, Autoencoder, AutoencoderError,
    AutoencoderLayer, JumpReLUAutoencoder, ReluAutoencoder, TopKAutoencoder,
};

const D: usize = 6;
const L: usize = 10;

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

fn randn(seed: u64, shape: &[usize], scale: f32) -> Tensor {
    let mut r = rng(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec(rand_vec(&mut r, n, scale), shape, &Device::Cpu).unwrap()
}

/// The state of `ae`, rebuilt, computes bit for bit what `ae` computes, and saves the same
/// tensors again.
fn assert_state_round_trip(name: &str, ae: &dyn Autoencoder) {
    let state = ae.state().unwrap().expect("savable");
    // through a real file, as a save does
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.safetensors");
    let map: HashMap<String, Tensor> = state.tensors.iter().cloned().collect();
    write_safetensors(&map, &path).unwrap();
    let loaded = vene_autoencoder::read_safetensors(&path, &Device::Cpu).unwrap();
    let back = autoencoder_from_state(&state.kind, &state.settings, &loaded).unwrap();
    let x = randn(99, &[7, D], 1.5);
    let (ra, za) = ae.forward(&x, true).unwrap();
    let (rb, zb) = back.forward(&x, true).unwrap();
    assert_eq!(bits(&ra), bits(&rb), "{name}: reconstruction");
    assert_eq!(bits(&za.unwrap()), bits(&zb.unwrap()), "{name}: latents");
    let z = ae.encode(&x).unwrap();
    assert_eq!(
        bits(&ae.decode(&z).unwrap()),
        bits(&back.decode(&z).unwrap()),
        "{name}: decode"
    );
    assert_eq!(
        bits(&ae.encode_selected(&x, &[1, 4]).unwrap()),
        bits(&back.encode_selected(&x, &[1, 4]).unwrap()),
        "{name}: encode_selected"
    );
    let again = back.state().unwrap().unwrap();
    assert_eq!(again.kind, state.kind);
    assert_eq!(again.settings, state.settings, "{name}: settings");
    for ((na, ta), (nb, tb)) in state.tensors.iter().zip(&again.tensors) {
        assert_eq!(na, nb);
        assert_eq!(ta.dims(), tb.dims(), "{name}: {na} layout");
        assert_eq!(bits(ta), bits(tb), "{name}: {na}");
    }
}

fn write_sparsify(dir: &Path, k: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = serde_json::json!({"num_latents": L, "k": k, "d_in": D});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let map: HashMap<String, Tensor> = [
        ("encoder.weight", randn(1, &[L, D], 0.7)),
        ("encoder.bias", randn(2, &[L], 0.2)),
        ("W_dec", randn(3, &[L, D], 0.7)),
        ("b_dec", randn(4, &[D], 0.3)),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    write_safetensors(&map, &dir.join("sae.safetensors")).unwrap();
}

/// Every autoencoder kind, in each layout its loaders produce, rebuilds bit for bit from its
/// saved state (before: transposed layouts came back within ~1e-7 only).
#[test]
fn every_autoencoder_kind_and_layout_round_trips_bit_exactly() {
    // pyvene's layer (torch nn.Linear layout, both matrices [out, in])
    let layer = AutoencoderLayer::from_tensors(
        randn(5, &[L, D], 0.6),
        randn(6, &[L], 0.2),
        randn(7, &[D, L], 0.6),
        randn(8, &[D], 0.3),
    )
    .unwrap();
    assert_state_round_trip("AutoencoderLayer", &layer);
    // SAELens layout
    let relu = ReluAutoencoder::from_tensors(
        randn(9, &[D, L], 0.6),
        randn(10, &[L], 0.2),
        randn(11, &[L, D], 0.6),
        randn(12, &[D], 0.3),
    )
    .unwrap()
    .with_apply_b_dec_to_input(false);
    assert_state_round_trip("ReluAutoencoder", &relu);
    // built from transposed views (non-contiguous tensors)
    let viewed = ReluAutoencoder::from_tensors(
        randn(13, &[L, D], 0.6).t().unwrap(),
        randn(14, &[L], 0.2),
        randn(15, &[D, L], 0.6).t().unwrap(),
        randn(16, &[D], 0.3),
    )
    .unwrap();
    assert_state_round_trip("ReluAutoencoder from views", &viewed);
    let jump = JumpReLUAutoencoder::from_tensors(
        randn(17, &[D, L], 0.6),
        randn(18, &[L], 0.2),
        randn(19, &[L, D], 0.6),
        randn(20, &[D], 0.3),
        randn(21, &[L], 0.1).abs().unwrap(),
    )
    .unwrap();
    assert_state_round_trip("JumpReLUAutoencoder", &jump);
    let topk = TopKAutoencoder::from_tensors(
        randn(22, &[D, L], 0.6),
        randn(23, &[L], 0.2),
        randn(24, &[L, D], 0.6),
        randn(25, &[D], 0.3),
        3,
    )
    .unwrap();
    assert_state_round_trip("TopKAutoencoder", &topk);
    // sparsify's layout: encoder [L, d] (out_in), W_dec [L, d] (in_out)
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layers.2");
    write_sparsify(&dir, 4);
    let loaded = load_sae(&dir).unwrap();
    assert_state_round_trip("sparsify TopK", loaded.autoencoder.as_ref());
    let state = loaded.autoencoder.state().unwrap().unwrap();
    assert_eq!(state.settings["layout"]["W_enc"], "out_in");
    assert_eq!(state.settings["layout"]["W_dec"], "in_out");
}

/// A state saved before layouts were recorded (SAELens layout, no `layout` setting) still
/// loads.
#[test]
fn state_without_layout_is_saelens_layout() {
    let w_enc = randn(30, &[D, L], 0.6);
    let w_dec = randn(31, &[L, D], 0.6);
    let tensors: HashMap<String, Tensor> = [
        ("W_enc", w_enc.clone()),
        ("b_enc", randn(32, &[L], 0.2)),
        ("W_dec", w_dec.clone()),
        ("b_dec", randn(33, &[D], 0.3)),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    let settings = serde_json::json!({"apply_b_dec_to_input": true, "k": 2});
    let ae = autoencoder_from_state("topk", &settings, &tensors).unwrap();
    assert_eq!((ae.input_dim(), ae.latent_dim()), (D, L));
    let bad = serde_json::json!({"layout": {"W_enc": "sideways"}});
    let err = autoencoder_from_state("relu", &bad, &tensors).unwrap_err();
    assert!(err.to_string().contains("layout.W_enc"), "{err}");
}

/// One `.npy` entry whose header says `shape`, holding `data` bytes.
fn npy(shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write_npz(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// A Gemma Scope `params.npz` whose header promises a 10^12-element array is refused before
/// anything is allocated (before: the process aborted on the allocation).
#[test]
fn gemma_scope_header_promising_a_huge_array_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("params.npz");
    write_npz(
        &path,
        &[
            ("W_enc.npy", npy("(1000000, 1000000)", &[0u8; 64])),
            ("b_enc.npy", npy("(4,)", &[0u8; 16])),
        ],
    );
    match load_sae(&path) {
        Err(AutoencoderError::InvalidFile { message, .. }) => {
            assert!(message.contains("W_enc.npy"), "{message}");
            assert!(message.contains("promises"), "{message}");
        }
        other => panic!("expected InvalidFile, got {other:?}"),
    }
    // a shape whose product overflows
    write_npz(
        &path,
        &[("W_enc.npy", npy("(18446744073709551615, 3)", &[0u8; 8]))],
    );
    let err = load_sae(&path).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    // the real layout still loads
    let t = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
    Tensor::write_npz(
        &[
            ("W_enc", &t(&[D, L])),
            ("W_dec", &t(&[L, D])),
            ("b_enc", &t(&[L])),
            ("b_dec", &t(&[D])),
            ("threshold", &t(&[L])),
        ],
        &path,
    )
    .unwrap();
    assert_eq!(load_sae(&path).unwrap().d_sae, L);
}

/// A sparsify `expansion_factor` whose product with `d_in` overflows is a typed error (before:
/// an integer-overflow panic).
#[test]
fn sparsify_expansion_overflow_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layers.0");
    write_sparsify(&dir, 2);
    let cfg =
        serde_json::json!({"num_latents": 0, "k": 2, "d_in": D, "expansion_factor": usize::MAX});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    match load_sae(&dir) {
        Err(AutoencoderError::InvalidConfig { key, .. }) => assert_eq!(key, "expansion_factor"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

/// Unsupported architectures and activations list the supported ones.
#[test]
fn unsupported_values_list_the_supported_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layers.0");
    write_sparsify(&dir, 2);
    let cfg = serde_json::json!({"num_latents": L, "k": 2, "d_in": D, "activation": "groupmax"});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let err = load_sae(&dir).unwrap_err().to_string();
    assert!(
        err.contains("groupmax") && err.contains("supported: topk"),
        "{err}"
    );

    let sl = tmp.path().join("saelens");
    std::fs::create_dir_all(&sl).unwrap();
    let cfg = serde_json::json!({"d_in": D, "d_sae": L, "architecture": "crosscoder"});
    std::fs::write(sl.join("cfg.json"), cfg.to_string()).unwrap();
    let map: HashMap<String, Tensor> = [
        ("W_enc", randn(1, &[D, L], 0.5)),
        ("b_enc", randn(2, &[L], 0.5)),
        ("W_dec", randn(3, &[L, D], 0.5)),
        ("b_dec", randn(4, &[D], 0.5)),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    write_safetensors(&map, &sl.join("sae_weights.safetensors")).unwrap();
    let err = load_sae(&sl).unwrap_err().to_string();
    assert!(
        err.contains("crosscoder") && err.contains("standard, jumprelu, topk"),
        "{err}"
    );
    let e = autoencoder_from_state("crosscoder", &serde_json::json!({}), &map)
        .unwrap_err()
        .to_string();
    assert!(e.contains("relu, topk, jumprelu"), "{e}");
}

/// A fresh autoencoder of 10^12 weights is refused with a typed error (before: abort).
#[test]
fn huge_fresh_autoencoder_is_refused() {
    match AutoencoderLayer::new(1_000_000, 1_000_000, DType::F32, &Device::Cpu) {
        Err(AutoencoderError::InvalidArgument(m)) => assert!(m.contains("cap"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(AutoencoderLayer::new(usize::MAX, 2, DType::F32, &Device::Cpu).is_err());
}

/// Writing a file is atomic: a write that cannot complete leaves the earlier file as it was
/// and no temporary behind.
#[test]
fn safetensors_writes_are_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ae.safetensors");
    let ae = AutoencoderLayer::new(4, 8, DType::F32, &Device::Cpu).unwrap();
    ae.save(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    // a tensor map that cannot be serialized (mixed devices are impossible on CPU; use a
    // path whose parent is a file)
    let bad = path.join("inner.safetensors");
    assert!(ae.save(&bad).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let back = AutoencoderLayer::load(&path, &Device::Cpu).unwrap();
    for ((_, a), (_, b)) in ae.state_dict().iter().zip(back.state_dict().iter()) {
        assert_eq!(bits(a), bits(b));
    }
}
