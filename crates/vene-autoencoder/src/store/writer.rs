//! [`StoreWriter`]: appends batches of activations and flushes fixed-size shards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use super::manifest::{
    part_file_name, shard_file_name, Manifest, ShardEntry, StoreDType, MANIFEST_FILE, SHARD_TENSOR,
    STORE_FORMAT, STORE_VERSION,
};
use super::StoreError;
use crate::Result;

/// What a store holds: fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// The model (free text: a hub id or a path).
    pub model: String,
    /// The site's name.
    pub site: String,
    /// The width of a row.
    pub d: usize,
    /// The dtype of the shards.
    pub dtype: StoreDType,
    /// Rows per shard (the last one may hold fewer).
    pub rows_per_shard: usize,
}

/// Writes one part of an activation store: writer `index` of `count`. Rows belong to
/// *blocks*: writer `index` owns the blocks `b` with `b % count == index`, starts each with
/// [`StoreWriter::start_block`] (in increasing order) and appends its rows with
/// [`StoreWriter::append`]. Each time `rows_per_shard` rows of a block are buffered they are
/// written as one shard file (atomically), piece 0, 1, ... of the block, named
/// [`super::shard_file_name`]`(block, piece)`; a block's last piece may hold fewer rows.
/// A store's files thus depend on its blocks' rows alone, not on how many writers wrote them.
/// A writer that never starts a block writes block `index` (plain appends).
/// [`StoreWriter::finish`] writes the last shard and the manifest: `manifest.json` for a
/// single writer, else `manifest-<i>-of-<n>.json`, merged by [`super::merge_manifests`] or
/// read together by [`super::StoreReader`]. Writers of different parts touch disjoint files
/// and may run at the same time in the same folder.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_autoencoder::store::{StoreDType, StoreReader, StoreSpec, StoreWriter, ReadOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let spec = StoreSpec { model: "toy".into(), site: "blocks.0.hook_resid_post".into(), d: 2, dtype: StoreDType::F32, rows_per_shard: 4 };
/// let mut w = StoreWriter::create(dir.path(), spec, 0, 1)?;
/// w.append(&Tensor::arange(0f32, 20., &Device::Cpu)?.reshape((10, 2))?)?;
/// let manifest = w.finish()?;
/// assert_eq!((manifest.total_rows, manifest.shards.len()), (10, 3));
/// let reader = StoreReader::open(dir.path())?;
/// let opts = ReadOptions { batch_size: 4, buffer_rows: 6, seed: 0 };
/// let rows: usize = reader.epoch(&opts, 0).map(|b| b.unwrap().dims()[0]).sum();
/// assert_eq!(rows, 10);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug)]
pub struct StoreWriter {
    dir: PathBuf,
    spec: StoreSpec,
    index: usize,
    count: usize,
    pending: Vec<f32>,
    shards: Vec<ShardEntry>,
    /// The block being written (`None` before the first block or row).
    block: Option<usize>,
    /// The next piece of that block.
    piece: usize,
}

impl StoreWriter {
    /// Starts writer `index` of `count` in `dir` (created if absent). Fails when this part
    /// (or the merged store) already has a manifest there.
    pub fn create(dir: &Path, spec: StoreSpec, index: usize, count: usize) -> Result<Self> {
        Self::check_new(dir, index, count)?;
        if spec.d == 0 || spec.rows_per_shard == 0 {
            return Err(StoreError::InvalidArgument(
                "d and rows_per_shard must be positive".into(),
            )
            .into());
        }
        if crate::limits::checked_elements(&[spec.rows_per_shard, spec.d]).is_none() {
            return Err(StoreError::InvalidArgument(format!(
                "a shard of {} rows of width {} is more than the {} values allowed per tensor",
                spec.rows_per_shard,
                spec.d,
                crate::limits::MAX_NEW_TENSOR_ELEMENTS
            ))
            .into());
        }
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            spec,
            index,
            count,
            pending: Vec::new(),
            shards: Vec::new(),
            block: None,
            piece: 0,
        })
    }

    /// Checks, writing nothing, that writer `index` of `count` may start in `dir`: `index <
    /// count`, and neither the merged store nor this writer's part is written there yet (what
    /// [`StoreWriter::create`] checks first; a caller with slow work to do before creating
    /// writers can check this first).
    pub fn check_new(dir: &Path, index: usize, count: usize) -> Result<()> {
        if count == 0 || index >= count {
            return Err(StoreError::InvalidArgument(format!(
                "writer {index} of {count}: need 0 <= index < count"
            ))
            .into());
        }
        for name in [MANIFEST_FILE.to_string(), part_file_name(index, count)] {
            let p = dir.join(&name);
            if p.exists() {
                return Err(StoreError::manifest(
                    p,
                    "this store (part) is already written; remove it or write elsewhere",
                )
                .into());
            }
        }
        Ok(())
    }

    /// Ends the block being written (its last rows become its last piece) and starts block
    /// `block`, to which the next rows belong. The block must be one this writer owns
    /// (`block % count == index`: [`StoreError::BlockNotOwned`]) and come after every block
    /// started or written so far ([`StoreError::BlockOrder`]); nothing changes otherwise.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use vene_autoencoder::store::{StoreDType, StoreSpec, StoreWriter};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let spec = StoreSpec { model: "toy".into(), site: "resid".into(), d: 1, dtype: StoreDType::F32, rows_per_shard: 2 };
    /// // writer 1 of 2 owns the odd blocks
    /// let mut w = StoreWriter::create(dir.path(), spec, 1, 2)?;
    /// assert!(w.start_block(2).is_err());
    /// w.start_block(1)?;
    /// w.append(&Tensor::zeros((3, 1), candle_core::DType::F32, &Device::Cpu)?)?;
    /// w.start_block(5)?;
    /// w.append(&Tensor::zeros((1, 1), candle_core::DType::F32, &Device::Cpu)?)?;
    /// assert!(w.start_block(3).is_err());
    /// let part = w.finish()?;
    /// let listed: Vec<(usize, usize, usize)> = part.shards.iter().map(|s| (s.block, s.piece, s.rows)).collect();
    /// assert_eq!(listed, [(1, 0, 2), (1, 1, 1), (5, 0, 1)]);
    /// assert_eq!(part.shards[1].file, "shard-00000001-1.safetensors");
    /// # Ok::<(), vene_autoencoder::AutoencoderError>(())
    /// ```
    pub fn start_block(&mut self, block: usize) -> Result<()> {
        if block % self.count != self.index {
            return Err(StoreError::BlockNotOwned {
                path: self.dir.clone(),
                block,
                index: self.index,
                count: self.count,
            }
            .into());
        }
        if let Some(after) = self.block.filter(|&b| block <= b) {
            return Err(StoreError::BlockOrder {
                path: self.dir.clone(),
                block,
                after,
            }
            .into());
        }
        self.flush()?;
        self.block = Some(block);
        self.piece = 0;
        Ok(())
    }

    /// Rows written to shards or buffered so far.
    pub fn rows(&self) -> usize {
        self.shards.iter().map(|s| s.rows).sum::<usize>() + self.pending.len() / self.spec.d
    }

    /// Appends a batch `[rows, d]` (any float dtype); full shards are written as they fill.
    pub fn append(&mut self, batch: &Tensor) -> Result<()> {
        let d = self.spec.d;
        match batch.dims() {
            [_, w] if *w == d => {}
            got => {
                return Err(StoreError::BatchShape {
                    d,
                    got: got.to_vec(),
                }
                .into())
            }
        }
        let values = batch
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if values.is_empty() {
            return Ok(());
        }
        // rows appended before any block belong to block `index`, which this writer owns
        self.block.get_or_insert(self.index);
        let shard_len = self.spec.rows_per_shard * d;
        let mut rest = values.as_slice();
        while !rest.is_empty() {
            let take = (shard_len - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == shard_len {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = self.pending.len() / self.spec.d;
        let values = std::mem::take(&mut self.pending);
        let t = Tensor::from_vec(values, (rows, self.spec.d), &Device::Cpu)?
            .to_dtype(self.spec.dtype.dtype())?;
        let bytes = crate::io::safetensors_bytes(&HashMap::from([(SHARD_TENSOR.to_string(), t)]))?;
        let block = self.block.unwrap_or(self.index);
        let piece = self.piece;
        let file = shard_file_name(block, piece);
        let path = self.dir.join(&file);
        crate::atomic::write_file(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
        self.piece += 1;
        self.shards.push(ShardEntry {
            file,
            block,
            piece,
            rows,
            bytes: bytes.len() as u64,
            sha256: format!("{:x}", Sha256::digest(&bytes)),
        });
        Ok(())
    }

    /// Writes the last shard and this writer's manifest (atomically), and returns it.
    pub fn finish(mut self) -> Result<Manifest> {
        self.flush()?;
        let single = self.count == 1;
        let m = Manifest {
            format: STORE_FORMAT.into(),
            version: STORE_VERSION,
            model: self.spec.model.clone(),
            site: self.spec.site.clone(),
            d: self.spec.d,
            dtype: self.spec.dtype,
            rows_per_shard: self.spec.rows_per_shard,
            total_rows: self.shards.iter().map(|s| s.rows).sum(),
            writers: self.count,
            part: (!single).then_some(self.index),
            shards: std::mem::take(&mut self.shards),
        };
        let name = if single {
            MANIFEST_FILE.to_string()
        } else {
            part_file_name(self.index, self.count)
        };
        let path = self.dir.join(name);
        crate::atomic::write_file(&path, &m.to_json()).map_err(|e| StoreError::io(&path, e))?;
        Ok(m)
    }
}
