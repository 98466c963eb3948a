//! What can go wrong writing or reading an activation store.

use std::path::PathBuf;

/// An activation store that cannot be written or read. Every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A shard the manifest lists is not on disk.
    #[error("{path}: shard listed in the manifest is missing")]
    MissingShard {
        /// The shard file.
        path: PathBuf,
    },
    /// A shard whose size differs from the manifest's (truncated or rewritten).
    #[error("{path}: shard is {got} bytes, the manifest says {expected}")]
    ShardSize {
        /// The shard file.
        path: PathBuf,
        /// The size in the manifest.
        expected: u64,
        /// The size on disk.
        got: u64,
    },
    /// A shard whose sha256 differs from the manifest's (corrupt).
    #[error("{path}: shard is corrupt (sha256 {got}, the manifest says {expected})")]
    ShardChecksum {
        /// The shard file.
        path: PathBuf,
        /// The checksum in the manifest.
        expected: String,
        /// The checksum of the file.
        got: String,
    },
    /// A shard that is not the tensor the manifest announces (name, dtype, shape).
    #[error("{path}: {message}")]
    InvalidShard {
        /// The shard file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A manifest that is missing, unreadable, or inconsistent (with itself or other parts).
    #[error("{path}: {message}")]
    InvalidManifest {
        /// The manifest file (or the store folder).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A block that the writer (or the manifest part) does not own: writer `index` of `count`
    /// owns the blocks `b` with `b % count == index`.
    #[error("{path}: block {block} is not owned by writer {index} of {count} (it owns the blocks b with b % {count} == {index})")]
    BlockNotOwned {
        /// The store folder (writing) or the manifest part (reading).
        path: PathBuf,
        /// The block.
        block: usize,
        /// The writer's index.
        index: usize,
        /// How many writers build the store.
        count: usize,
    },
    /// A block started (or listed) after a block it does not follow: blocks must increase.
    #[error("{path}: block {block} comes after block {after}; blocks must increase")]
    BlockOrder {
        /// The store folder (writing) or the manifest (reading).
        path: PathBuf,
        /// The block out of order.
        block: usize,
        /// The block before it.
        after: usize,
    },
    /// Two shards listed with the same (block, piece), in one manifest or across the parts of
    /// a store.
    #[error("{path}: two shards are listed as block {block}, piece {piece}")]
    DuplicateShard {
        /// The manifest (or the store folder, when merging parts).
        path: PathBuf,
        /// The block.
        block: usize,
        /// The piece.
        piece: usize,
    },
    /// A batch that does not fit the store (wrong rank or width).
    #[error("batch of shape {got:?} does not fit a store of width {d}: expected [rows, {d}]")]
    BatchShape {
        /// The store's width.
        d: usize,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A setting the store cannot use (zero rows per shard, shard 3 of 2, ...).
    #[error("activation store: {0}")]
    InvalidArgument(String),
    /// An I/O error on a file of the store.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn manifest(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::InvalidManifest {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
