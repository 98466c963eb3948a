//! The torch zip-pickle writer: every dtype it takes reads back bit for bit, the archive has
//! torch's layout, and bad input is a typed error that leaves the target as it was.

use std::io::Read;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{
    read_torch_pickle, torch_pickle_bytes, write_torch_pickle, AutoencoderError,
};

/// Values whose bits change under any rounding: not representable in fewer bits.
fn values(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (i as f64 * 0.731).sin() * 3.0 + 1e-3 * i as f64)
        .collect()
}

fn tensor(dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let dev = Device::Cpu;
    match dtype {
        DType::I64 => Tensor::from_vec(
            (0..n as i64)
                .map(|i| i * 1_000_000_007 - 5)
                .collect::<Vec<_>>(),
            shape,
            &dev,
        )
        .unwrap(),
        DType::U8 => Tensor::from_vec(
            (0..n).map(|i| (i * 37 % 256) as u8).collect::<Vec<_>>(),
            shape,
            &dev,
        )
        .unwrap(),
        _ => Tensor::from_vec(values(n), shape, &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    }
}

/// The raw little-endian bytes of a tensor, via f64/i64 so that every dtype compares.
fn raw(t: &Tensor) -> Vec<u8> {
    let f = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => f
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::F64 => f
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::F16 => f
            .to_vec1::<half::f16>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::BF16 => f
            .to_vec1::<half::bf16>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::I64 => f
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::U8 => f.to_vec1::<u8>().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_dtype_and_shape_reads_back_bit_exactly() {
    let cases: Vec<(String, Tensor)> = vec![
        ("w.f32".into(), tensor(DType::F32, &[3, 5])),
        ("w.f16".into(), tensor(DType::F16, &[2, 3, 4])),
        ("w.bf16".into(), tensor(DType::BF16, &[7])),
        ("w.f64".into(), tensor(DType::F64, &[2, 2, 2, 2])),
        ("ids".into(), tensor(DType::I64, &[4, 3])),
        ("bytes".into(), tensor(DType::U8, &[9])),
        ("scalar".into(), Tensor::new(16i64, &Device::Cpu).unwrap()),
        (
            "temperature".into(),
            Tensor::new(0.01f32, &Device::Cpu).unwrap(),
        ),
        // sizes past BININT1 / BININT2 in the pickle
        ("wide".into(), tensor(DType::F32, &[300, 250])),
        (
            "empty".into(),
            Tensor::zeros((0, 4), DType::F32, &Device::Cpu).unwrap(),
        ),
        // a non-contiguous view is written in row-major order
        (
            "transposed".into(),
            tensor(DType::F32, &[4, 6]).t().unwrap(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write_torch_pickle(&path, &cases).unwrap();
    let back = read_torch_pickle(&path, &Device::Cpu).unwrap();
    assert_eq!(back.len(), cases.len());
    for (name, t) in &cases {
        let b = &back[name];
        assert_eq!(b.dtype(), t.dtype(), "{name}");
        assert_eq!(b.dims(), t.dims(), "{name}");
        assert_eq!(raw(b), raw(t), "{name}");
    }
    // the transposed view: element [i][j] is the original's [j][i]
    let t = back["transposed"].to_vec2::<f32>().unwrap();
    let orig = cases[10].1.t().unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(t[5][3], orig[3][5]);
}

#[test]
fn the_archive_has_torchs_layout() {
    let bytes = torch_pickle_bytes(&[
        ("a".into(), tensor(DType::F32, &[3])),
        ("b".into(), tensor(DType::I64, &[2])),
    ])
    .unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "archive/data.pkl",
            "archive/.format_version",
            "archive/.storage_alignment",
            "archive/byteorder",
            "archive/data/0",
            "archive/data/1",
            "archive/version",
        ]
    );
    let mut read = |name: &str| {
        let mut f = zip.by_name(name).unwrap();
        assert_eq!(f.compression(), zip::CompressionMethod::Stored);
        let start = f.data_start().unwrap();
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        (start, v)
    };
    assert_eq!(read("archive/version").1, b"3\n");
    assert_eq!(read("archive/byteorder").1, b"little");
    assert_eq!(read("archive/.storage_alignment").1, b"64");
    let (start, data) = read("archive/data/1");
    assert_eq!(start % 64, 0, "tensor data aligned to 64 bytes");
    assert_eq!(
        data,
        [-5i64, 1_000_000_002]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>()
    );
    let (start, pickle) = read("archive/data.pkl");
    assert_eq!(start % 64, 0);
    // protocol 2, an OrderedDict, torch's rebuild function and storage classes, STOP
    assert_eq!(&pickle[..2], &[0x80, 2]);
    let text = String::from_utf8_lossy(&pickle);
    for needle in [
        "collections\nOrderedDict\n",
        "torch._utils\n_rebuild_tensor_v2\n",
        "torch\nFloatStorage\n",
        "torch\nLongStorage\n",
    ] {
        assert!(text.contains(needle), "{needle:?}");
    }
    assert_eq!(*pickle.last().unwrap(), b'.');
}

#[test]
fn bad_input_is_a_typed_error_and_leaves_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write_torch_pickle(&path, &[("a".into(), tensor(DType::F32, &[2]))]).unwrap();
    let before = std::fs::read(&path).unwrap();
    let u32s = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    match write_torch_pickle(&path, &[("ids".into(), u32s)]) {
        Err(AutoencoderError::DTypeMismatch(m)) => {
            assert!(m.contains("ids") && m.contains("U32"), "{m}")
        }
        other => panic!("expected DTypeMismatch, got {other:?}"),
    }
    let twice = vec![
        ("a".to_string(), tensor(DType::F32, &[2])),
        ("a".to_string(), tensor(DType::F32, &[3])),
    ];
    match write_torch_pickle(&path, &twice) {
        Err(AutoencoderError::InvalidArgument(m)) => assert!(m.contains("`a`"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // into a folder that does not exist: an I/O error naming the path
    let missing = dir.path().join("no/such/state.bin");
    assert!(matches!(
        write_torch_pickle(&missing, &[("a".into(), tensor(DType::F32, &[2]))]),
        Err(AutoencoderError::Io { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary left"
    );
}
