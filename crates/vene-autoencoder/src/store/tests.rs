use std::collections::BTreeSet;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::*;
use crate::AutoencoderError;

const D: usize = 3;

fn spec(rows_per_shard: usize, dtype: StoreDType) -> StoreSpec {
    StoreSpec {
        model: "toy-model".into(),
        site: "blocks.1.hook_resid_post".into(),
        d: D,
        dtype,
        rows_per_shard,
    }
}

/// Row `r` is `[r, r + 0.25, -r]`: every row is distinct and exact in f32 and bf16 for
/// small `r`.
fn rows(range: impl Iterator<Item = usize>) -> Tensor {
    let v: Vec<f32> = range
        .flat_map(|r| [r as f32, r as f32 + 0.25, -(r as f32)])
        .collect();
    let n = v.len() / D;
    Tensor::from_vec(v, (n, D), &Device::Cpu).unwrap()
}

/// The row ids in a batch (its first column), checking each row's other columns.
fn ids(batch: &Tensor) -> Vec<usize> {
    batch
        .to_vec2::<f32>()
        .unwrap()
        .into_iter()
        .map(|r| {
            assert_eq!(r[1], r[0] + 0.25);
            assert_eq!(r[2], -r[0]);
            r[0] as usize
        })
        .collect()
}

fn write_store(dir: &Path, n_rows: usize, per_shard: usize, dtype: StoreDType) -> Manifest {
    let mut w = StoreWriter::create(dir, spec(per_shard, dtype), 0, 1).unwrap();
    // appended in uneven batches that straddle shard boundaries
    let mut start = 0;
    for size in [7usize, 1, 13].iter().cycle() {
        if start >= n_rows {
            break;
        }
        let end = (start + size).min(n_rows);
        w.append(&rows(start..end)).unwrap();
        start = end;
    }
    w.finish().unwrap()
}

fn epoch_ids(reader: &StoreReader, opts: &ReadOptions, epoch: u64) -> Vec<Vec<usize>> {
    reader
        .epoch(opts, epoch)
        .map(|b| ids(&b.unwrap()))
        .collect()
}

#[test]
fn round_trip_gives_every_row_once_per_epoch_shuffled_and_reproducible() {
    for dtype in [StoreDType::F32, StoreDType::Bf16, StoreDType::F16] {
        let dir = tempfile::tempdir().unwrap();
        let m = write_store(dir.path(), 50, 8, dtype);
        assert_eq!(m.total_rows, 50);
        // 6 full shards of 8 and a last one of 2
        let shard_rows: Vec<usize> = m.shards.iter().map(|s| s.rows).collect();
        assert_eq!(shard_rows, [8, 8, 8, 8, 8, 8, 2]);
        assert_eq!(m.shards[0].file, "shard-0-of-1-0.safetensors");
        assert!(dir.path().join(MANIFEST_FILE).is_file());

        let reader = StoreReader::open(dir.path()).unwrap();
        assert_eq!(reader.manifest(), &m);
        let opts = ReadOptions {
            batch_size: 6,
            buffer_rows: 10,
            seed: 7,
        };
        let e0 = epoch_ids(&reader, &opts, 0);
        // 8 batches of 6 and a last of 2
        let sizes: Vec<usize> = e0.iter().map(Vec::len).collect();
        assert_eq!(sizes, [6, 6, 6, 6, 6, 6, 6, 6, 2]);
        let flat: Vec<usize> = e0.concat();
        let mut sorted = flat.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(flat, (0..50).collect::<Vec<_>>(), "rows come back shuffled");
        // same seed, same epoch: the same batches; another epoch or seed: another order
        assert_eq!(epoch_ids(&reader, &opts, 0), e0);
        assert_ne!(epoch_ids(&reader, &opts, 1).concat(), flat);
        let other = ReadOptions { seed: 8, ..opts };
        assert_ne!(epoch_ids(&reader, &other, 0).concat(), flat);
        assert!(reader.peak_resident_rows() <= 10 + 8);
    }
}

#[test]
fn stream_runs_epoch_after_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 10, 4, StoreDType::F32);
    let reader = StoreReader::open(dir.path()).unwrap();
    let opts = ReadOptions {
        batch_size: 4,
        buffer_rows: 5,
        seed: 1,
    };
    let mut it = reader.stream(&opts);
    let got: Vec<Vec<usize>> = it.by_ref().take(6).map(|b| ids(&b.unwrap())).collect();
    // epoch 0: 4 + 4 + 2, epoch 1: 4 + 4 + 2
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [4, 4, 2, 4, 4, 2]
    );
    assert_eq!(got[..3].concat(), epoch_ids(&reader, &opts, 0).concat());
    assert_eq!(got[3..].concat(), epoch_ids(&reader, &opts, 1).concat());
    assert_eq!(it.current_epoch(), 1);
}

#[test]
fn three_writers_make_the_store_one_writer_makes() {
    let n_rows = 40;
    let one = tempfile::tempdir().unwrap();
    let single = write_store(one.path(), n_rows, 5, StoreDType::F32);

    let three = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let mut w = StoreWriter::create(three.path(), spec(5, StoreDType::F32), i, 3).unwrap();
        // writer i owns the rows whose index % 3 == i
        for chunk in (0..n_rows)
            .filter(|r| r % 3 == i)
            .collect::<Vec<_>>()
            .chunks(4)
        {
            w.append(&rows(chunk.iter().copied())).unwrap();
        }
        let part = w.finish().unwrap();
        assert_eq!(part.part, Some(i));
        assert!(three.path().join(part_file_name(i, 3)).is_file());
    }
    assert!(!three.path().join(MANIFEST_FILE).exists());
    // read together before merging, then merged: the same manifest
    let before = StoreReader::open(three.path()).unwrap().manifest().clone();
    let merged = merge_manifests(three.path()).unwrap();
    assert_eq!(before, merged);
    assert_eq!(read_manifest(three.path()).unwrap(), merged);
    assert_eq!(merged.total_rows, single.total_rows);
    assert_eq!(
        (merged.d, merged.dtype, merged.writers, merged.part),
        (D, StoreDType::F32, 3, None)
    );
    // 14, 13, 13 rows at 5 per shard: 3 shards each
    assert_eq!(merged.shards.len(), 9);
    assert_eq!(merged.shards[3].file, "shard-1-of-3-0.safetensors");

    let opts = ReadOptions {
        batch_size: 7,
        buffer_rows: 9,
        seed: 3,
    };
    let set = |dir: &Path| -> BTreeSet<usize> {
        let r = StoreReader::open(dir).unwrap();
        let all: Vec<usize> = epoch_ids(&r, &opts, 0).concat();
        assert_eq!(all.len(), n_rows);
        all.into_iter().collect()
    };
    assert_eq!(set(one.path()), set(three.path()));
    assert_eq!(set(three.path()).len(), n_rows);
}

#[test]
fn a_missing_part_or_a_second_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for i in [0, 2] {
        let mut w = StoreWriter::create(dir.path(), spec(4, StoreDType::F32), i, 3).unwrap();
        w.append(&rows(0..3)).unwrap();
        w.finish().unwrap();
    }
    let err = StoreReader::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("manifest-1-of-3.json"), "{err}");
    assert!(merge_manifests(dir.path()).is_err());
    assert!(!dir.path().join(MANIFEST_FILE).exists());
    let again = StoreWriter::create(dir.path(), spec(4, StoreDType::F32), 0, 3).unwrap_err();
    assert!(
        again.to_string().contains("manifest-0-of-3.json"),
        "{again}"
    );
    assert!(StoreWriter::create(dir.path(), spec(4, StoreDType::F32), 3, 3).is_err());
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        StoreReader::open(empty.path()),
        Err(AutoencoderError::Store(StoreError::InvalidManifest { .. }))
    ));
}

#[test]
fn a_batch_of_the_wrong_width_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = StoreWriter::create(dir.path(), spec(4, StoreDType::F32), 0, 1).unwrap();
    let wide = Tensor::zeros((2, D + 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = w.append(&wide).unwrap_err();
    assert!(matches!(
        err,
        AutoencoderError::Store(StoreError::BatchShape { d: 3, .. })
    ));
    assert_eq!(w.rows(), 0);
}

#[test]
fn corrupt_truncated_or_missing_shards_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_store(dir.path(), 20, 8, StoreDType::F32);
    let victim = dir.path().join(&m.shards[1].file);
    let original = std::fs::read(&victim).unwrap();

    // one flipped byte in the data: same size, other checksum
    let mut bad = original.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    std::fs::write(&victim, &bad).unwrap();
    match StoreReader::open(dir.path()) {
        Err(AutoencoderError::Store(StoreError::ShardChecksum { path, expected, .. })) => {
            assert_eq!(path, victim);
            assert_eq!(expected, m.shards[1].sha256);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let msg = StoreReader::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("shard-0-of-1-1.safetensors"), "{msg}");

    std::fs::write(&victim, &original[..original.len() - 4]).unwrap();
    assert!(matches!(
        StoreReader::open(dir.path()),
        Err(AutoencoderError::Store(StoreError::ShardSize { expected, got, .. }))
            if expected == original.len() as u64 && got == expected - 4
    ));

    std::fs::remove_file(&victim).unwrap();
    match StoreReader::open(dir.path()) {
        Err(AutoencoderError::Store(StoreError::MissingShard { path })) => {
            assert_eq!(path, victim)
        }
        other => panic!("expected a missing-shard error, got {other:?}"),
    }

    // corrupted after open: the batch that needs it fails, naming the file
    std::fs::write(&victim, &original).unwrap();
    let reader = StoreReader::open(dir.path()).unwrap();
    std::fs::write(&victim, &bad).unwrap();
    let opts = ReadOptions {
        batch_size: 4,
        buffer_rows: 4,
        seed: 0,
    };
    let err = reader
        .epoch(&opts, 0)
        .find_map(|b| b.err())
        .expect("a corrupt shard fails the epoch");
    assert!(
        err.to_string().contains("shard-0-of-1-1.safetensors"),
        "{err}"
    );
}

#[test]
fn a_tampered_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 10, 4, StoreDType::F32);
    let path = dir.path().join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"total_rows\": 10", "\"total_rows\": 11"),
    )
    .unwrap();
    let err = StoreReader::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("total_rows 11 but the shards hold 10"),
        "{err}"
    );
    std::fs::write(&path, text.replace("\"version\": 1", "\"version\": 9")).unwrap();
    let err = StoreReader::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("version 9"), "{err}");
    std::fs::write(&path, text.replace("shard-0-of-1-0", "../shard-0-of-1-0")).unwrap();
    assert!(StoreReader::open(dir.path()).is_err());
}

#[test]
fn training_streams_a_store_ten_times_the_buffer_with_bounded_memory() {
    use crate::training::{train_sae, Architecture, SaeTrainConfig, TrainingSae};

    let dir = tempfile::tempdir().unwrap();
    let (buffer_rows, per_shard, n_rows) = (64usize, 32usize, 640usize);
    let mut w = StoreWriter::create(dir.path(), spec(per_shard, StoreDType::F32), 0, 1).unwrap();
    let data = Tensor::randn(0f32, 1., (n_rows, D), &Device::Cpu).unwrap();
    w.append(&data).unwrap();
    let m = w.finish().unwrap();
    assert_eq!(m.total_rows, 10 * buffer_rows);
    assert_eq!(m.shards.len(), 20);

    let reader = StoreReader::open(dir.path()).unwrap();
    let opts = ReadOptions {
        batch_size: 16,
        buffer_rows,
        seed: 5,
    };
    let mut cfg = SaeTrainConfig::new(Architecture::TopK { k: 2 });
    // 40 batches per epoch: 100 steps read the store 2.5 times
    cfg.total_steps = Some(100);
    let mut sae = TrainingSae::new(&cfg, D, 6, candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut steps = 0;
    let mut batches = reader.stream(&opts);
    let last = train_sae(&mut sae, batches.by_ref(), &cfg, |_| steps += 1).unwrap();
    assert_eq!(last.step, 100);
    assert!(steps > 0);
    assert!(last.loss.is_finite());
    assert_eq!(batches.current_epoch(), 2);
    let peak = reader.peak_resident_rows();
    assert!(peak <= buffer_rows + per_shard, "peak {peak} rows");
    assert!(peak >= buffer_rows, "the buffer fills: peak {peak} rows");
}

#[test]
fn a_shard_too_large_to_allocate_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut huge = spec(usize::MAX / 2, StoreDType::F32);
    huge.d = 4;
    let err = StoreWriter::create(&dir.path().join("s"), huge, 0, 1).unwrap_err();
    assert!(
        err.to_string().contains("values allowed per tensor"),
        "{err}"
    );
    assert!(!dir.path().join("s").exists());
}
