//! [`StoreReader`]: checks a store, then streams it in shuffled batches with bounded memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use super::manifest::{read_manifest, Manifest, ShardEntry, StoreDType, SHARD_TENSOR};
use super::shuffle::take_random_row;
use super::StoreError;
use crate::Result;

/// How a store is read: batch size, shuffle-buffer size (rows) and the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Rows per batch (the last batch of an epoch may hold fewer).
    pub batch_size: usize,
    /// Rows the shuffle buffer holds at most. Memory is this plus one shard, whatever the
    /// store's size.
    pub buffer_rows: usize,
    /// The seed: the same seed and epoch give the same batches.
    pub seed: u64,
}

#[derive(Debug, Default)]
struct Resident {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Resident {
    fn set(&self, rows: usize) {
        self.now.store(rows, Ordering::Relaxed);
        self.peak.fetch_max(rows, Ordering::Relaxed);
    }
}

/// An activation store opened for reading. [`StoreReader::open`] checks the manifest and
/// every shard's size and sha256 before anything is read; [`StoreReader::epoch`] yields one
/// pass over every row, shuffled, and [`StoreReader::stream`] epoch after epoch. Batches are
/// f32 `[rows, d]` on the CPU.
#[derive(Debug, Clone)]
pub struct StoreReader {
    dir: PathBuf,
    manifest: Arc<Manifest>,
    resident: Arc<Resident>,
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| StoreError::io(path, e))?;
    Ok(format!("{:x}", h.finalize()))
}

/// Checks a shard's presence and size against the manifest.
fn check_size(path: &Path, entry: &ShardEntry) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::MissingShard {
                path: path.to_path_buf(),
            }
            .into())
        }
        Err(e) => return Err(StoreError::io(path, e).into()),
    };
    if meta.len() != entry.bytes {
        return Err(StoreError::ShardSize {
            path: path.to_path_buf(),
            expected: entry.bytes,
            got: meta.len(),
        }
        .into());
    }
    Ok(())
}

fn check_sha(path: &Path, expected: &str, got: String) -> Result<()> {
    if got != expected {
        return Err(StoreError::ShardChecksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            got,
        }
        .into());
    }
    Ok(())
}

impl StoreReader {
    /// Opens the store in `dir` (its `manifest.json`, or its writers' parts read together)
    /// and checks every shard: present, of the listed size, of the listed sha256.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        for entry in &manifest.shards {
            let path = dir.join(&entry.file);
            check_size(&path, entry)?;
            check_sha(&path, &entry.sha256, sha256_file(&path)?)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: Arc::new(manifest),
            resident: Arc::default(),
        })
    }

    /// The store's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The most rows any of this reader's iterators held in memory at once (shuffle buffer
    /// plus the shard being read), so far.
    pub fn peak_resident_rows(&self) -> usize {
        self.resident.peak.load(Ordering::Relaxed)
    }

    /// One pass over every row of the store, shuffled by `opts.seed` and `epoch`.
    pub fn epoch(&self, opts: &ReadOptions, epoch: u64) -> StoreBatches {
        StoreBatches::new(self.clone(), *opts, epoch, false)
    }

    /// Epochs 0, 1, 2, ... one after the other, without end (for a trainer that stops by
    /// steps). Empty for an empty store.
    pub fn stream(&self, opts: &ReadOptions) -> StoreBatches {
        StoreBatches::new(self.clone(), *opts, 0, true)
    }

    /// Reads shard `entry` as f32 values into `out` (emptied first; its allocation is
    /// reused), re-checking its size and checksum.
    fn load_shard(&self, entry: &ShardEntry, out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        let path = self.dir.join(&entry.file);
        check_size(&path, entry)?;
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        check_sha(
            &path,
            &entry.sha256,
            format!("{:x}", Sha256::digest(&bytes)),
        )?;
        let invalid = |message: String| StoreError::InvalidShard {
            path: path.clone(),
            message,
        };
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| invalid(format!("not a valid safetensors file: {e}")))?;
        let view = st
            .tensor(SHARD_TENSOR)
            .map_err(|_| invalid(format!("no tensor `{SHARD_TENSOR}`")))?;
        let m = &self.manifest;
        let dtype_ok = matches!(
            (view.dtype(), m.dtype),
            (safetensors::Dtype::F32, StoreDType::F32)
                | (safetensors::Dtype::BF16, StoreDType::Bf16)
                | (safetensors::Dtype::F16, StoreDType::F16)
        );
        if view.shape() != [entry.rows, m.d] || !dtype_ok {
            return Err(invalid(format!(
                "tensor `{SHARD_TENSOR}` is {:?} {:?}, the manifest says [{}, {}] {:?}",
                view.dtype(),
                view.shape(),
                entry.rows,
                m.d,
                m.dtype
            ))
            .into());
        }
        decode_f32(view.data(), m.dtype, out);
        Ok(())
    }
}

/// Appends the little-endian values `data` of `dtype` to `out` as f32, in one pass (the same
/// values as candle's conversion: `half`'s `to_f32`).
fn decode_f32(data: &[u8], dtype: StoreDType, out: &mut Vec<f32>) {
    match dtype {
        StoreDType::F32 => out.extend(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        StoreDType::Bf16 => out.extend(
            data.chunks_exact(2)
                .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()),
        ),
        StoreDType::F16 => out.extend(
            data.chunks_exact(2)
                .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()),
        ),
    }
}

/// Shuffled batches from a [`StoreReader`]: shards in a seeded random order, one at a time,
/// through a shuffle buffer of at most `buffer_rows` rows from which each batch row is drawn
/// at random. Each row of the store comes back exactly once per epoch.
#[derive(Debug)]
pub struct StoreBatches {
    reader: StoreReader,
    opts: ReadOptions,
    endless: bool,
    epoch: u64,
    rng: StdRng,
    order: Vec<usize>,
    next_shard: usize,
    shard: Vec<f32>,
    shard_pos: usize,
    buffer: Vec<f32>,
    done: bool,
}

impl StoreBatches {
    fn new(reader: StoreReader, opts: ReadOptions, epoch: u64, endless: bool) -> Self {
        let mut it = Self {
            reader,
            opts,
            endless,
            epoch,
            rng: StdRng::seed_from_u64(0),
            order: Vec::new(),
            next_shard: 0,
            shard: Vec::new(),
            shard_pos: 0,
            buffer: Vec::new(),
            done: false,
        };
        it.start_epoch();
        it
    }

    /// The epoch being read.
    pub fn current_epoch(&self) -> u64 {
        self.epoch
    }

    fn start_epoch(&mut self) {
        let mix = self
            .epoch
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.rng = StdRng::seed_from_u64(self.opts.seed ^ mix);
        self.order = (0..self.reader.manifest.shards.len()).collect();
        self.order.shuffle(&mut self.rng);
        self.next_shard = 0;
    }

    fn d(&self) -> usize {
        self.reader.manifest.d
    }

    fn note_resident(&self) {
        let d = self.d();
        self.reader
            .resident
            .set((self.buffer.len() + self.shard.len()) / d);
    }

    /// Tops the buffer up to `buffer_rows` from the current shard, loading the next shard
    /// (after emptying the last, whose allocation it reuses) as needed.
    fn refill(&mut self) -> Result<()> {
        let d = self.d();
        let cap = self.opts.buffer_rows.saturating_mul(d);
        if self.buffer.capacity() == 0 {
            // allocated once at its final size (not grown by doubling, copying each time)
            let rows = self.opts.buffer_rows.min(self.reader.manifest.total_rows);
            self.buffer.reserve_exact(rows * d);
        }
        while self.buffer.len() < cap {
            if self.shard_pos == self.shard.len() {
                // emptied, its allocation kept for the next shard (no fresh pages to fault in)
                self.shard.clear();
                self.shard_pos = 0;
                self.note_resident();
                let Some(&i) = self.order.get(self.next_shard) else {
                    return Ok(());
                };
                self.next_shard += 1;
                let entry = &self.reader.manifest.shards[i];
                self.reader.load_shard(entry, &mut self.shard)?;
                self.note_resident();
            }
            let take = (cap - self.buffer.len()).min(self.shard.len() - self.shard_pos);
            self.buffer
                .extend_from_slice(&self.shard[self.shard_pos..self.shard_pos + take]);
            self.shard_pos += take;
        }
        self.note_resident();
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<Tensor>> {
        if self.opts.batch_size == 0 || self.opts.buffer_rows == 0 {
            return Err(StoreError::InvalidArgument(
                "batch_size and buffer_rows must be positive".into(),
            )
            .into());
        }
        let d = self.d();
        let mut out = Vec::with_capacity(self.opts.batch_size * d);
        loop {
            while out.len() < self.opts.batch_size * d {
                self.refill()?;
                if !take_random_row(&mut self.buffer, d, &mut self.rng, &mut out) {
                    break;
                }
            }
            if !out.is_empty() || !self.endless || self.reader.manifest.total_rows == 0 {
                break;
            }
            self.epoch += 1;
            self.start_epoch();
        }
        if out.is_empty() {
            return Ok(None);
        }
        let rows = out.len() / d;
        Ok(Some(Tensor::from_vec(out, (rows, d), &Device::Cpu)?))
    }
}

impl Iterator for StoreBatches {
    type Item = Result<Tensor>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
