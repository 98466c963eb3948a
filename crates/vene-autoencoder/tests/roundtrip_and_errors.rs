//! Save/load round trip, decoder rows, dtype handling, and typed errors on bad input.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use vene_autoencoder::{
    load_sae, Autoencoder, AutoencoderError, AutoencoderLayer, TopKAutoencoder,
};

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn save_load_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let ae = AutoencoderLayer::new(7, 12, DType::F32, &Device::Cpu).unwrap();
    let path = tmp.path().join("ae.safetensors");
    ae.save(&path).unwrap();
    let back = AutoencoderLayer::load(&path, &Device::Cpu).unwrap();
    assert_eq!((back.input_dim(), back.latent_dim()), (7, 12));
    for ((n1, a), (n2, b)) in ae.state_dict().iter().zip(back.state_dict().iter()) {
        assert_eq!(n1, n2);
        assert_eq!(bits(a), bits(b), "{n1}");
    }
    // torch nn.Linear init bounds: 1/sqrt(7) for the encoder, 1/sqrt(12) for the decoder.
    let max = |t: &Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(max(ae.encoder_weight()) <= 1.0 / 7f32.sqrt());
    assert!(max(ae.decoder_weight()) <= 1.0 / 12f32.sqrt());
    assert!(max(ae.encoder_weight()) > 0.5 / 7f32.sqrt());
    let names: Vec<String> = ae.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "encoder.0.weight",
            "encoder.0.bias",
            "decoder.0.weight",
            "decoder.0.bias"
        ]
    );
}

#[test]
fn decoder_rows_give_the_rank_k_correction() {
    let ae = AutoencoderLayer::new(6, 10, DType::F32, &Device::Cpu).unwrap();
    let x = t2(&rand_mat(&mut rng(1), 3, 6, 1.0));
    let z = ae.encode(&x).unwrap();
    let dims = [2usize, 5, 9];
    let rows = ae.decoder_rows(&dims).unwrap().unwrap();
    assert_eq!(rows.dims(), &[3, 6]);
    let w_dec = to_mat(ae.decoder_weight()); // [d, L]
    let rows_m = to_mat(&rows);
    for (i, &j) in dims.iter().enumerate() {
        for k in 0..6 {
            assert_eq!(rows_m[i][k], w_dec[k][j]);
        }
    }
    // decode(z') = decode(z) + delta @ rows
    let delta = Tensor::new(
        &[[1f32, -2., 0.5], [0., 1., 0.], [3., 0., -1.]],
        &Device::Cpu,
    )
    .unwrap();
    let mut z2 = to_mat(&z);
    let dm = to_mat(&delta);
    for r in 0..3 {
        for (i, &j) in dims.iter().enumerate() {
            z2[r][j] += dm[r][i];
        }
    }
    let full = to_mat(&ae.decode(&t2(&z2)).unwrap());
    let fast = to_mat(&(ae.decode(&z).unwrap() + delta.matmul(&rows).unwrap()).unwrap());
    assert_close(&full, &fast, 1e-5, "rank-k correction");
}

#[test]
fn computes_in_weight_dtype_returns_input_dtype() {
    let ae = AutoencoderLayer::new(4, 8, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::new(&[[0.5f32, -1., 2., 0.25]], &Device::Cpu).unwrap();
    let (r32, _) = ae.forward(&x, false).unwrap();
    let (r16, l16) = ae.forward(&x.to_dtype(DType::F16).unwrap(), true).unwrap();
    assert_eq!(r16.dtype(), DType::F16);
    assert_eq!(l16.unwrap().dtype(), DType::F16);
    assert_close(&to_mat(&r16), &to_mat(&r32), 2e-3, "f16 in, f32 compute");
    // leading shapes other than 2-D
    let x3 = Tensor::ones((2, 3, 4), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(ae.encode(&x3).unwrap().dims(), &[2, 3, 8]);
}

#[test]
fn bad_input_gives_typed_errors() {
    let ae = AutoencoderLayer::new(4, 8, DType::F32, &Device::Cpu).unwrap();
    let wrong = Tensor::ones((2, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        ae.encode(&wrong),
        Err(AutoencoderError::WidthMismatch { expected: 4, .. })
    ));
    assert!(matches!(
        ae.decode(&wrong),
        Err(AutoencoderError::WidthMismatch { expected: 8, .. })
    ));
    let x = Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        ae.encode_selected(&x, &[1, 8]),
        Err(AutoencoderError::LatentOutOfRange {
            index: 8,
            latent_dim: 8
        })
    ));
    assert!(matches!(
        ae.decoder_rows(&[9]),
        Err(AutoencoderError::LatentOutOfRange { index: 9, .. })
    ));
    let eye = Tensor::eye(3, DType::F32, &Device::Cpu).unwrap();
    let z3 = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        TopKAutoencoder::from_tensors(eye.clone(), z3.clone(), eye, z3, 0),
        Err(AutoencoderError::InvalidArgument(_))
    ));
}

fn write_layer(path: &std::path::Path, ew: Tensor, eb: Tensor, dw: Tensor, db: Tensor) {
    let map = [
        ("encoder.0.weight", ew),
        ("encoder.0.bias", eb),
        ("decoder.0.weight", dw),
        ("decoder.0.bias", db),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect::<std::collections::HashMap<_, _>>();
    candle_core::safetensors::save(&map, path).unwrap();
}

#[test]
fn corrupt_files_give_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let mut r = rng(3);
    let (ew, eb, dw, db) = (
        t2(&rand_mat(&mut r, 8, 4, 1.)),
        t1(&rand_vec(&mut r, 8, 1.)),
        t2(&rand_mat(&mut r, 4, 8, 1.)),
        t1(&rand_vec(&mut r, 4, 1.)),
    );

    // NaN weights
    let nan_path = tmp.path().join("nan.safetensors");
    let mut bad = to_mat(&ew);
    bad[2][1] = f32::NAN;
    write_layer(&nan_path, t2(&bad), eb.clone(), dw.clone(), db.clone());
    let err = load_sae(&nan_path).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::NonFinite { ref tensor, .. } if tensor == "encoder.0.weight"),
        "{err}"
    );

    // truncated file
    let ok_path = tmp.path().join("ok.safetensors");
    write_layer(&ok_path, ew.clone(), eb.clone(), dw.clone(), db.clone());
    let bytes = std::fs::read(&ok_path).unwrap();
    let cut = tmp.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let err = AutoencoderLayer::load(&cut, &dev).unwrap_err();
    assert!(matches!(err, AutoencoderError::InvalidFile { .. }), "{err}");

    // missing tensor
    let miss = tmp.path().join("miss.safetensors");
    let map: std::collections::HashMap<String, Tensor> = [
        ("encoder.0.weight".to_string(), ew.clone()),
        ("encoder.0.bias".to_string(), eb.clone()),
    ]
    .into();
    candle_core::safetensors::save(&map, &miss).unwrap();
    let err = AutoencoderLayer::load(&miss, &dev).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::MissingTensor { ref tensor, .. } if tensor == "decoder.0.weight"),
        "{err}"
    );

    // a weight whose shape matches neither orientation
    let shape = tmp.path().join("shape.safetensors");
    write_layer(
        &shape,
        ew.clone(),
        eb.clone(),
        t2(&rand_mat(&mut r, 4, 7, 1.)),
        db.clone(),
    );
    let err = AutoencoderLayer::load(&shape, &dev).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::ShapeMismatch { ref tensor, .. } if tensor == "decoder.0.weight"),
        "{err}"
    );

    // stored the other way round (non-square): resolved from the widths, same numbers
    let flipped = tmp.path().join("flipped.safetensors");
    write_layer(
        &flipped,
        ew.t().unwrap().contiguous().unwrap(),
        eb.clone(),
        dw.clone(),
        db.clone(),
    );
    let a = AutoencoderLayer::load(&ok_path, &dev).unwrap();
    let b = AutoencoderLayer::load(&flipped, &dev).unwrap();
    let x = t2(&rand_mat(&mut r, 2, 4, 1.));
    assert_eq!(
        to_mat(&a.encode(&x).unwrap()),
        to_mat(&b.encode(&x).unwrap())
    );

    // a file that is not there
    assert!(matches!(
        load_sae(tmp.path().join("none.safetensors")),
        Err(AutoencoderError::Io { .. })
    ));
    // a folder with nothing known in it
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        load_sae(&empty),
        Err(AutoencoderError::UnknownFormat { .. })
    ));
}

#[test]
fn malformed_torch_pickles_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    // a zip holding a data.pkl that is not a pickle, and a file that is not a zip at all
    let not_pickle = dir.path().join("ae.pt");
    {
        use std::io::Write;
        let file = std::fs::File::create(&not_pickle).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", stored).unwrap();
        zip.write_all(b"garbage\x00\xff").unwrap();
        zip.finish().unwrap();
    }
    let not_zip = dir.path().join("other.pt");
    std::fs::write(&not_zip, b"not a zip file").unwrap();
    for path in [&not_pickle, &not_zip] {
        let err = vene_autoencoder::read_torch_pickle(path, &Device::Cpu).unwrap_err();
        assert!(
            matches!(err, vene_autoencoder::AutoencoderError::InvalidFile { .. }),
            "{path:?}: {err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    let missing = dir.path().join("missing.pt");
    assert!(matches!(
        vene_autoencoder::read_torch_pickle(&missing, &Device::Cpu),
        Err(vene_autoencoder::AutoencoderError::Io { .. })
    ));
    // through the format-detecting entry point too
    assert!(vene_autoencoder::load_sae(dir.path()).is_err());
}
