//! An on-disk activation store: a folder of safetensors shards (one tensor `activations` of
//! shape `[rows, d]` in f32, bf16 or f16) and a `manifest.json` (format version, model, site,
//! width, dtype, rows per shard, total rows, and each shard's block, piece, size and sha256).
//!
//! **Blocks.** The rows of a store come in *blocks*, numbered from 0 over the whole input
//! (for `vene collect`: block `b` holds the activations of sequences `[b*S, (b+1)*S)` of the
//! token stream). A block is written by one writer: writer `i` of `n` owns the blocks with
//! `b % n == i`. A block's rows are cut into shards of at most `rows_per_shard` rows, its
//! *pieces* 0, 1, ..., in files named by block and piece
//! (`shard-<block:08>-<piece>.safetensors`, [`shard_file_name`]), and manifests list the
//! shards by (block, piece). So the files and the shard list of a store depend on its blocks'
//! rows only, not on how many writers built it: 1 writer and 3 writers give byte-identical
//! shards and the same list, hence the same shuffled batches (the reader's shuffle is seeded
//! over that list) and the same trained SAE.
//!
//! - [`StoreWriter`]: starts blocks ([`StoreWriter::start_block`], owned and increasing, or
//!   none: plain appends go to block `i`), appends batches and writes full shards atomically
//!   as they fill; `n` writers (`i` of `n`, e.g. a job array) write disjoint files and their
//!   own manifest parts into one folder, joined by [`merge_manifests`] (or read together by
//!   the reader), which refuses a block listed twice or by a writer that does not own it.
//! - [`StoreReader`]: checks the manifest and every shard before use, then streams shuffled
//!   batches ([`StoreReader::epoch`], [`StoreReader::stream`]) through a shuffle buffer of
//!   bounded rows: memory is the buffer plus one shard, whatever the store's size. The
//!   batches feed [`crate::training::train_sae`] directly.
//!
//! Manifests of version 1 (shards named by writer, `shard-<i>-of-<n>-<k>.safetensors`, no
//! blocks) are still read: their shards keep their listed order (see [`Manifest::read`]).

mod error;
mod manifest;
mod reader;
mod shuffle;
mod writer;

#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use manifest::{
    merge_manifests, part_file_name, read_manifest, shard_file_name, Manifest, ShardEntry,
    StoreDType, MANIFEST_FILE, SHARD_TENSOR, STORE_FORMAT, STORE_VERSION,
};
pub use reader::{ReadOptions, StoreBatches, StoreReader};
pub use shuffle::take_random_row;
pub use writer::{StoreSpec, StoreWriter};
