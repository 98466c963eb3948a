//! Read throughput of the activation store ([`StoreReader`]) beside a raw read of the same
//! files, in the same run.
//!
//! A store of `VENE_BENCH_STORE_ROWS` rows (default 1048576) of width 768 is written once per
//! dtype (f32 and bf16) into a temporary folder (65536 rows per shard, the CLI's default),
//! then each benchmark reads all of it:
//! - `raw_read_{dtype}`: `std::fs::read` of every shard file, nothing else (the baseline);
//! - `open_{dtype}`: [`StoreReader::open`], which reads every shard once to check its sha256;
//! - `epoch_{dtype}`: one shuffled epoch of [`StoreReader::epoch`] in batches of 4096 rows
//!   through a 65536-row shuffle buffer (the CLI's defaults), each batch an f32 tensor. Each
//!   shard is read, its sha256 checked again and its values converted to f32 on the way.
//!
//! Throughput: rows (tokens) per second and bytes of the shard files per second.
//!
//! ```text
//! cargo bench -p vene-autoencoder --bench store_read -- --warm-up-time 1 --measurement-time 5 --noplot
//! ```

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use vene_autoencoder::store::{ReadOptions, StoreDType, StoreReader, StoreSpec, StoreWriter};

const D: usize = 768;
const ROWS_PER_SHARD: usize = 65536;
const BATCH: usize = 4096;
const BUFFER_ROWS: usize = 65536;

fn rows() -> usize {
    let s = std::env::var("VENE_BENCH_STORE_ROWS").unwrap_or_else(|_| "1048576".into());
    s.trim()
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| panic!("VENE_BENCH_STORE_ROWS must be a positive number, got {s:?}"))
}

/// Writes `rows` random rows as a store of `dtype` into `dir`; returns its shard files.
fn write_store(dir: &Path, rows: usize, dtype: StoreDType) -> Vec<PathBuf> {
    let spec = StoreSpec {
        model: "bench".into(),
        site: "blocks.6.hook_resid_post".into(),
        d: D,
        dtype,
        rows_per_shard: ROWS_PER_SHARD,
    };
    let mut w = StoreWriter::create(dir, spec, 0, 1).unwrap();
    let mut left = rows;
    while left > 0 {
        let n = left.min(ROWS_PER_SHARD);
        w.append(&Tensor::randn(0f32, 1., (n, D), &Device::Cpu).unwrap())
            .unwrap();
        left -= n;
    }
    let m = w.finish().unwrap();
    m.shards.iter().map(|s| dir.join(&s.file)).collect()
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    let mut g = c.benchmark_group(format!("store_read_{rows}x{D}"));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    for dtype in [StoreDType::F32, StoreDType::Bf16] {
        let name = format!("{dtype:?}").to_lowercase();
        let tmp = tempfile::tempdir().unwrap();
        let files = write_store(tmp.path(), rows, dtype);
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        g.throughput(Throughput::ElementsAndBytes {
            elements: rows as u64,
            bytes,
        });
        g.bench_function(format!("raw_read_{name}"), |b| {
            b.iter(|| {
                files
                    .iter()
                    .map(|f| std::fs::read(f).unwrap().len())
                    .sum::<usize>()
            })
        });
        g.bench_function(format!("open_{name}"), |b| {
            b.iter(|| StoreReader::open(tmp.path()).unwrap())
        });
        let reader = StoreReader::open(tmp.path()).unwrap();
        let opts = ReadOptions {
            batch_size: BATCH,
            buffer_rows: BUFFER_ROWS,
            seed: 0,
        };
        let mut epoch = 0;
        g.bench_function(format!("epoch_{name}"), |b| {
            b.iter(|| {
                epoch += 1;
                let n: usize = reader
                    .epoch(&opts, epoch)
                    .map(|t| t.unwrap().dims()[0])
                    .sum();
                assert_eq!(n, rows);
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
