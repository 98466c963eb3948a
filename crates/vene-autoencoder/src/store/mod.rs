//! An on-disk activation store: a folder of safetensors shards
//! (`shard-<i>-of-<n>-<k>.safetensors`, one tensor `activations` of shape `[rows, d]` in
//! f32, bf16 or f16) and a `manifest.json` (format version, model, site, width, dtype, rows
//! per shard, total rows, the size and sha256 of each shard).
//!
//! - [`StoreWriter`]: appends batches and writes full shards atomically as they fill; `n`
//!   writers (`i` of `n`, e.g. a job array) write disjoint files and their own manifest
//!   parts into one folder, joined by [`merge_manifests`] (or read together by the reader).
//! - [`StoreReader`]: checks the manifest and every shard before use, then streams shuffled
//!   batches ([`StoreReader::epoch`], [`StoreReader::stream`]) through a shuffle buffer of
//!   bounded rows: memory is the buffer plus one shard, whatever the store's size. The
//!   batches feed [`crate::training::train_sae`] directly.

mod error;
mod manifest;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use manifest::{
    merge_manifests, part_file_name, read_manifest, shard_file_name, Manifest, ShardEntry,
    StoreDType, MANIFEST_FILE, SHARD_TENSOR, STORE_FORMAT, STORE_VERSION,
};
pub use reader::{ReadOptions, StoreBatches, StoreReader};
pub use writer::{StoreSpec, StoreWriter};
