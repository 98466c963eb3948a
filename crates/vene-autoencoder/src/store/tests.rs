use std::collections::{BTreeMap, BTreeSet};
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
        assert_eq!(m.shards[0].file, "shard-00000000-0.safetensors");
        // a writer that starts no block writes block `index` (0), in pieces
        let listed: Vec<(usize, usize)> = m.shards.iter().map(|s| (s.block, s.piece)).collect();
        assert_eq!(listed, (0..7).map(|k| (0, k)).collect::<Vec<_>>());
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
    // listed by (block, piece): writer i's plain appends are block i
    assert_eq!(merged.shards[3].file, "shard-00000001-0.safetensors");
    assert_eq!((merged.shards[3].block, merged.shards[3].piece), (1, 0));

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
    assert!(msg.contains("shard-00000000-1.safetensors"), "{msg}");

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
        err.to_string().contains("shard-00000000-1.safetensors"),
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
    std::fs::write(&path, text.replace("\"version\": 2", "\"version\": 9")).unwrap();
    let err = StoreReader::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("version 9"), "{err}");
    std::fs::write(
        &path,
        text.replace("shard-00000000-0", "../shard-00000000-0"),
    )
    .unwrap();
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

/// Writes blocks `0..block_rows.len()` (block `b` holds `block_rows[b]` rows, row ids counted
/// over the blocks in order) with `count` writers, writer `i` starting only the blocks it
/// owns and appending them 2 rows at a time. Parts are not merged.
fn write_blocks(dir: &Path, block_rows: &[usize], per_shard: usize, count: usize) {
    let starts: Vec<usize> = block_rows
        .iter()
        .scan(0, |at, &n| {
            *at += n;
            Some(*at - n)
        })
        .collect();
    for i in 0..count {
        let mut w = StoreWriter::create(dir, spec(per_shard, StoreDType::F32), i, count).unwrap();
        for (b, &n) in block_rows
            .iter()
            .enumerate()
            .filter(|(b, _)| b % count == i)
        {
            w.start_block(b).unwrap();
            let ids: Vec<usize> = (starts[b]..starts[b] + n).collect();
            for two in ids.chunks(2) {
                w.append(&rows(two.iter().copied())).unwrap();
            }
        }
        w.finish().unwrap();
    }
}

/// The store's shard files, by name.
fn shard_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn blocks_give_the_same_files_and_batches_whatever_the_writer_count() {
    let block_rows = [5, 3, 7, 1, 4];
    let one = tempfile::tempdir().unwrap();
    write_blocks(one.path(), &block_rows, 3, 1);
    let three = tempfile::tempdir().unwrap();
    write_blocks(three.path(), &block_rows, 3, 3);
    let merged = merge_manifests(three.path()).unwrap();
    let single = read_manifest(one.path()).unwrap();
    assert_eq!((single.writers, merged.writers), (1, 3));
    // blocks of 5, 3, 7, 1 and 4 rows at 3 rows per shard
    let listed: Vec<(usize, usize, usize)> = single
        .shards
        .iter()
        .map(|s| (s.block, s.piece, s.rows))
        .collect();
    assert_eq!(
        listed,
        [
            (0, 0, 3),
            (0, 1, 2),
            (1, 0, 3),
            (2, 0, 3),
            (2, 1, 3),
            (2, 2, 1),
            (3, 0, 1),
            (4, 0, 3),
            (4, 1, 1)
        ]
    );
    assert_eq!(single.shards[5].file, "shard-00000002-2.safetensors");
    assert_eq!(single.shards, merged.shards);
    let files = shard_files(one.path());
    assert_eq!(files.len(), 9);
    assert_eq!(files, shard_files(three.path()));
    let opts = ReadOptions {
        batch_size: 4,
        buffer_rows: 5,
        seed: 11,
    };
    let batches = epoch_ids(&StoreReader::open(one.path()).unwrap(), &opts, 0);
    assert_eq!(
        batches,
        epoch_ids(&StoreReader::open(three.path()).unwrap(), &opts, 0)
    );
    let mut all = batches.concat();
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<_>>());
}

#[test]
fn a_block_out_of_order_or_not_owned_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = StoreWriter::create(dir.path(), spec(4, StoreDType::F32), 1, 3).unwrap();
    w.start_block(4).unwrap();
    w.append(&rows(0..2)).unwrap();
    for earlier in [1, 4] {
        match w.start_block(earlier) {
            Err(AutoencoderError::Store(StoreError::BlockOrder {
                block, after: 4, ..
            })) => {
                assert_eq!(block, earlier)
            }
            other => panic!("expected a block-order error, got {other:?}"),
        }
    }
    let err = w.start_block(5).unwrap_err();
    assert!(matches!(
        err,
        AutoencoderError::Store(StoreError::BlockNotOwned {
            block: 5,
            index: 1,
            count: 3,
            ..
        })
    ));
    assert!(
        err.to_string()
            .contains("block 5 is not owned by writer 1 of 3"),
        "{err}"
    );
    // the refused calls changed nothing: the rows still go to block 4
    assert_eq!(w.rows(), 2);
    w.append(&rows(2..3)).unwrap();
    w.start_block(7).unwrap();
    w.append(&rows(3..4)).unwrap();
    let part = w.finish().unwrap();
    let listed: Vec<(usize, usize, usize)> = part
        .shards
        .iter()
        .map(|s| (s.block, s.piece, s.rows))
        .collect();
    assert_eq!(listed, [(4, 0, 3), (7, 0, 1)]);

    // plain appends went to block 0 (the writer's index): block 0 cannot start after them
    let other = tempfile::tempdir().unwrap();
    let mut w = StoreWriter::create(other.path(), spec(4, StoreDType::F32), 0, 2).unwrap();
    w.append(&rows(0..1)).unwrap();
    assert!(matches!(
        w.start_block(0),
        Err(AutoencoderError::Store(StoreError::BlockOrder {
            block: 0,
            after: 0,
            ..
        }))
    ));
    w.start_block(2).unwrap();
}

#[test]
fn a_block_listed_twice_or_by_a_writer_that_does_not_own_it_is_refused_at_merge() {
    let dir = tempfile::tempdir().unwrap();
    write_blocks(dir.path(), &[2, 2, 2], 4, 3);
    let part1 = dir.path().join(part_file_name(1, 3));
    let text = std::fs::read_to_string(&part1).unwrap();
    assert!(text.contains("\"block\": 1"), "{text}");

    // part 1 lists block 0, piece 0, which part 0 lists too
    std::fs::write(&part1, text.replace("\"block\": 1", "\"block\": 0")).unwrap();
    for got in [
        merge_manifests(dir.path())
            .map(|_| ())
            .map_err(AutoencoderError::from),
        StoreReader::open(dir.path()).map(|_| ()),
    ] {
        match got {
            Err(AutoencoderError::Store(StoreError::DuplicateShard {
                block: 0,
                piece: 0,
                path,
            })) => assert_eq!(path, dir.path()),
            other => panic!("expected a duplicate-shard error, got {other:?}"),
        }
    }
    assert!(!dir.path().join(MANIFEST_FILE).exists());

    // part 1 lists block 3, which writer 0 of 3 owns
    std::fs::write(&part1, text.replace("\"block\": 1", "\"block\": 3")).unwrap();
    match merge_manifests(dir.path()) {
        Err(StoreError::BlockNotOwned {
            block: 3,
            index: 1,
            count: 3,
            path,
        }) => assert_eq!(path, part1),
        other => panic!("expected a not-owned error, got {other:?}"),
    }
    assert!(!dir.path().join(MANIFEST_FILE).exists());

    // as written, the parts merge
    std::fs::write(&part1, &text).unwrap();
    assert_eq!(merge_manifests(dir.path()).unwrap().total_rows, 6);
}

#[test]
fn a_manifest_listing_blocks_out_of_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_blocks(dir.path(), &[2, 2], 4, 1);
    let path = dir.path().join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"block\": 0", "\"block\": 2")).unwrap();
    assert!(matches!(
        StoreReader::open(dir.path()),
        Err(AutoencoderError::Store(StoreError::BlockOrder {
            block: 1,
            after: 2,
            ..
        }))
    ));
}

/// Rewrites the manifest `name` of the store in `dir` as version 1 wrote it: no block or
/// piece, and shards named by writer, `shard-<index>-of-<count>-<k>.safetensors` (renamed on
/// disk).
fn downgrade_to_v1(dir: &Path, name: &str, index: usize, count: usize) {
    let path = dir.join(name);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["version"] = 1.into();
    for (k, shard) in v["shards"].as_array_mut().unwrap().iter_mut().enumerate() {
        let entry = shard.as_object_mut().unwrap();
        entry.remove("block");
        entry.remove("piece");
        let old = entry["file"].as_str().unwrap().to_string();
        let new = format!("shard-{index}-of-{count}-{k}.safetensors");
        std::fs::rename(dir.join(old), dir.join(&new)).unwrap();
        entry.insert("file".into(), new.into());
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn version_1_manifests_are_read_in_their_listed_order() {
    // one writer: shards of 4, 4 and 2 rows
    let dir = tempfile::tempdir().unwrap();
    let v2 = write_store(dir.path(), 10, 4, StoreDType::F32);
    downgrade_to_v1(dir.path(), MANIFEST_FILE, 0, 1);
    let text = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
    assert!(text.contains("\"version\": 1") && !text.contains("\"block\""));
    let reader = StoreReader::open(dir.path()).unwrap();
    let m = reader.manifest();
    assert_eq!(m.version, STORE_VERSION);
    let listed: Vec<(&str, usize, usize, usize)> = m
        .shards
        .iter()
        .map(|s| (s.file.as_str(), s.block, s.piece, s.rows))
        .collect();
    assert_eq!(
        listed,
        [
            ("shard-0-of-1-0.safetensors", 0, 0, 4),
            ("shard-0-of-1-1.safetensors", 0, 1, 4),
            ("shard-0-of-1-2.safetensors", 0, 2, 2)
        ]
    );
    let sums: Vec<&str> = m.shards.iter().map(|s| s.sha256.as_str()).collect();
    let v2_sums: Vec<&str> = v2.shards.iter().map(|s| s.sha256.as_str()).collect();
    assert_eq!(sums, v2_sums);
    let opts = ReadOptions {
        batch_size: 3,
        buffer_rows: 4,
        seed: 2,
    };
    let mut all = epoch_ids(&reader, &opts, 0).concat();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());

    // three writers' version-1 parts: read in part order, as version 1 merged them
    let three = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let mut w = StoreWriter::create(three.path(), spec(3, StoreDType::F32), i, 3).unwrap();
        w.append(&rows(4 * i..4 * i + 4)).unwrap();
        w.finish().unwrap();
        downgrade_to_v1(three.path(), &part_file_name(i, 3), i, 3);
    }
    let merged = merge_manifests(three.path()).unwrap();
    let listed: Vec<(&str, usize, usize)> = merged
        .shards
        .iter()
        .map(|s| (s.file.as_str(), s.block, s.piece))
        .collect();
    assert_eq!(
        listed,
        [
            ("shard-0-of-3-0.safetensors", 0, 0),
            ("shard-0-of-3-1.safetensors", 0, 1),
            ("shard-1-of-3-0.safetensors", 1, 0),
            ("shard-1-of-3-1.safetensors", 1, 1),
            ("shard-2-of-3-0.safetensors", 2, 0),
            ("shard-2-of-3-1.safetensors", 2, 1)
        ]
    );
    // the merged manifest is written as version 2 and reads back the same
    assert_eq!(merged.version, STORE_VERSION);
    assert_eq!(read_manifest(three.path()).unwrap(), merged);
    let reader = StoreReader::open(three.path()).unwrap();
    let mut all = epoch_ids(&reader, &opts, 0).concat();
    all.sort_unstable();
    assert_eq!(all, (0..12).collect::<Vec<_>>());
}
