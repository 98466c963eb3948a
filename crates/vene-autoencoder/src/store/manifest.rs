//! The store's manifest (`manifest.json`) and the parts that shard-writers leave
//! (`manifest-<i>-of-<n>.json`), merged into one by [`merge_manifests`]. Shards are listed in
//! canonical order, by (block, piece), whichever writer wrote them.

use std::path::{Path, PathBuf};

use candle_core::DType;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The `format` field of every manifest.
pub const STORE_FORMAT: &str = "vene-activation-store";
/// The manifest version this crate writes. Version 1 manifests (no blocks: shards named by
/// writer) are read too, their shards given (block, piece) in their listed order (see
/// [`Manifest::read`]).
pub const STORE_VERSION: u32 = 2;
/// The name of the tensor in every shard.
pub const SHARD_TENSOR: &str = "activations";
/// The largest manifest file read (a million shards' entries fit).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;
/// The merged manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The dtype the shards hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDType {
    /// 32-bit floats.
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half.
    F16,
}

impl StoreDType {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }
}

/// One shard file as the manifest lists it: piece `piece` of block `block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// The file name, relative to the store folder.
    pub file: String,
    /// The block the rows belong to (a unit of the input that one writer owns: see
    /// [`super::StoreWriter::start_block`]).
    pub block: usize,
    /// The shard's index within its block (a block of more than `rows_per_shard` rows is
    /// split into pieces 0, 1, ...).
    pub piece: usize,
    /// Rows in the shard.
    pub rows: usize,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The file's sha256, lower-case hex.
    pub sha256: String,
}

/// What a store (or one writer's part of it) holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`STORE_FORMAT`].
    pub format: String,
    /// [`STORE_VERSION`].
    pub version: u32,
    /// The model the activations come from (a hub id or a path; free text).
    pub model: String,
    /// The site's name (e.g. `blocks.0.hook_resid_post`).
    pub site: String,
    /// The width of a row.
    pub d: usize,
    /// The dtype of the shards.
    pub dtype: StoreDType,
    /// The most rows a shard holds (the last shard of each writer may hold fewer).
    pub rows_per_shard: usize,
    /// Rows in all shards.
    pub total_rows: usize,
    /// How many writers built the store.
    pub writers: usize,
    /// For a writer's part: its index (`i` of `i/writers`); `None` once merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<usize>,
    /// The shards, in canonical order: by (block, piece), each pair once.
    pub shards: Vec<ShardEntry>,
}

/// The file name of writer `i` of `n`'s manifest part.
pub fn part_file_name(index: usize, count: usize) -> String {
    format!("manifest-{index}-of-{count}.json")
}

/// The file name of piece `piece` of block `block`: `shard-<block:08>-<piece>.safetensors`.
/// Named by block, not by writer, so a store's files do not depend on how many writers
/// built it.
///
/// ```
/// assert_eq!(vene_autoencoder::store::shard_file_name(12, 1), "shard-00000012-1.safetensors");
/// ```
pub fn shard_file_name(block: usize, piece: usize) -> String {
    format!("shard-{block:08}-{piece}.safetensors")
}

impl Manifest {
    /// Reads and checks a manifest file (format, version, totals, shard names, shard order).
    /// A version-1 manifest is read as version 2: its shards, listed in order, become
    /// pieces 0, 1, ... of one block (the writer's index for a part, else 0), so their order
    /// is unchanged.
    pub fn read(path: &Path) -> Result<Self, StoreError> {
        let size = std::fs::metadata(path)
            .map_err(|e| StoreError::io(path, e))?
            .len();
        if size > MAX_MANIFEST_BYTES {
            return Err(StoreError::manifest(
                path,
                format!("{size} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may have"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
        let not_manifest =
            |e: serde_json::Error| StoreError::manifest(path, format!("not a store manifest: {e}"));
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(not_manifest)?;
        if value.get("version").and_then(serde_json::Value::as_u64) == Some(1) {
            upgrade_v1(&mut value);
        }
        let m: Manifest = serde_json::from_value(value).map_err(not_manifest)?;
        m.check(path)?;
        Ok(m)
    }

    /// Checks the fields agree with each other.
    pub fn check(&self, path: &Path) -> Result<(), StoreError> {
        let bad = |msg: String| Err(StoreError::manifest(path, msg));
        if self.format != STORE_FORMAT {
            return bad(format!(
                "format `{}`, expected `{STORE_FORMAT}`",
                self.format
            ));
        }
        if self.version != STORE_VERSION {
            return bad(format!(
                "version {} is not supported (this build reads 1 to {STORE_VERSION})",
                self.version
            ));
        }
        if self.d == 0 || self.rows_per_shard == 0 || self.writers == 0 {
            return bad("d, rows_per_shard and writers must be positive".into());
        }
        if crate::limits::checked_elements(&[self.rows_per_shard, self.d]).is_none() {
            return bad(format!(
                "shards of {} rows of width {} are more than the {} values allowed per tensor",
                self.rows_per_shard,
                self.d,
                crate::limits::MAX_NEW_TENSOR_ELEMENTS
            ));
        }
        if matches!(self.part, Some(i) if i >= self.writers) {
            return bad(format!(
                "part {} of {} writers",
                self.part.unwrap_or(0),
                self.writers
            ));
        }
        let mut sum = 0usize;
        let mut files = std::collections::HashSet::new();
        for (k, s) in self.shards.iter().enumerate() {
            if let Some(prev) = k.checked_sub(1).map(|j| &self.shards[j]) {
                if (prev.block, prev.piece) == (s.block, s.piece) {
                    return Err(StoreError::DuplicateShard {
                        path: path.to_path_buf(),
                        block: s.block,
                        piece: s.piece,
                    });
                }
                if s.block < prev.block {
                    return Err(StoreError::BlockOrder {
                        path: path.to_path_buf(),
                        block: s.block,
                        after: prev.block,
                    });
                }
                if s.block == prev.block && s.piece < prev.piece {
                    return bad(format!(
                        "block {} lists piece {} after piece {}",
                        s.block, s.piece, prev.piece
                    ));
                }
            }
            if !files.insert(s.file.as_str()) {
                return bad(format!("shard `{}` is listed twice", s.file));
            }
            if s.rows == 0 || s.rows > self.rows_per_shard {
                return bad(format!(
                    "shard {} has {} rows (1..={} allowed)",
                    s.file, s.rows, self.rows_per_shard
                ));
            }
            let plain = Path::new(&s.file).file_name().map(|n| n == s.file.as_str());
            if plain != Some(true) || !s.file.ends_with(".safetensors") {
                return bad(format!(
                    "shard name `{}` is not a .safetensors file in the store",
                    s.file
                ));
            }
            sum += s.rows;
        }
        if sum != self.total_rows {
            return bad(format!(
                "total_rows {} but the shards hold {sum}",
                self.total_rows
            ));
        }
        Ok(())
    }

    /// Checks that a writer's part lists only blocks its writer owns (`block % writers ==
    /// part`).
    fn check_owned(&self, path: &Path) -> Result<(), StoreError> {
        let Some(index) = self.part else {
            return Ok(());
        };
        match self.shards.iter().find(|s| s.block % self.writers != index) {
            Some(s) => Err(StoreError::BlockNotOwned {
                path: path.to_path_buf(),
                block: s.block,
                index,
                count: self.writers,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Gives a version-1 manifest (as JSON) the fields of version 2: shard `k` of the list becomes
/// piece `k` of block `part` (a writer's part; the block a writer that never starts one
/// writes) or of block 0 (a merged or single-writer manifest), which keeps the listed order.
fn upgrade_v1(value: &mut serde_json::Value) {
    let block = value
        .get("part")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if let Some(shards) = value
        .get_mut("shards")
        .and_then(serde_json::Value::as_array_mut)
    {
        for (k, shard) in shards.iter_mut().enumerate() {
            if let Some(entry) = shard.as_object_mut() {
                entry.insert("block".into(), block.into());
                entry.insert("piece".into(), k.into());
            }
        }
    }
    value["version"] = STORE_VERSION.into();
}

/// Reads the manifest of the store in `dir`: `manifest.json`, or else all the writers'
/// parts `manifest-<i>-of-<n>.json` merged in memory (every part must be there).
pub fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let merged = dir.join(MANIFEST_FILE);
    if merged.is_file() {
        let m = Manifest::read(&merged)?;
        if m.part.is_some() {
            return Err(StoreError::manifest(
                &merged,
                "a writer's part, not a merged manifest",
            ));
        }
        return Ok(m);
    }
    merge_parts(dir)
}

/// Merges the writers' manifest parts of the store in `dir` into `manifest.json` (written
/// atomically) and returns it. Every part `0..n` must be present and agree on model, site,
/// width, dtype and rows per shard; the merged shards are listed by (block, piece), each pair
/// once, and each part may list only the blocks its writer owns.
pub fn merge_manifests(dir: &Path) -> Result<Manifest, StoreError> {
    let m = merge_parts(dir)?;
    let path = dir.join(MANIFEST_FILE);
    crate::atomic::write_file(&path, &m.to_json()).map_err(|e| StoreError::io(&path, e))?;
    Ok(m)
}

fn merge_parts(dir: &Path) -> Result<Manifest, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut found: Vec<PathBuf> = Vec::new();
    for e in entries {
        let p = e.map_err(|e| StoreError::io(dir, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("manifest-") && name.ends_with(".json") {
            found.push(p);
        }
    }
    if found.is_empty() {
        return Err(StoreError::manifest(
            dir,
            "no manifest.json and no writer parts (manifest-<i>-of-<n>.json): not an activation store, or no writer finished",
        ));
    }
    let mut parts = Vec::with_capacity(found.len());
    for p in &found {
        let m = Manifest::read(p)?;
        let Some(i) = m.part else {
            return Err(StoreError::manifest(
                p,
                "a merged manifest under a part's name",
            ));
        };
        if p.file_name().and_then(|n| n.to_str()) != Some(&part_file_name(i, m.writers)) {
            return Err(StoreError::manifest(
                p,
                format!("holds part {i} of {}, which is not its name", m.writers),
            ));
        }
        parts.push(m);
    }
    parts.sort_by_key(|m| m.part);
    let first = parts[0].clone();
    let n = first.writers;
    for m in &parts {
        let same = m.writers == n
            && m.model == first.model
            && m.site == first.site
            && m.d == first.d
            && m.dtype == first.dtype
            && m.rows_per_shard == first.rows_per_shard;
        if !same {
            return Err(StoreError::manifest(
                dir.join(part_file_name(m.part.unwrap_or(0), m.writers)),
                format!(
                    "does not agree with {} (writers, model, site, d, dtype and rows_per_shard must match)",
                    part_file_name(0, n)
                ),
            ));
        }
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| !parts.iter().any(|m| m.part == Some(*i)))
        .map(|i| part_file_name(i, n))
        .collect();
    if !missing.is_empty() {
        return Err(StoreError::manifest(
            dir,
            format!("writer parts missing: {}", missing.join(", ")),
        ));
    }
    let mut merged = first;
    merged.part = None;
    merged.shards = parts.iter().flat_map(|m| m.shards.clone()).collect();
    merged
        .shards
        .sort_by_key(|s| (s.block, s.piece, s.file.clone()));
    merged.total_rows = parts.iter().map(|m| m.total_rows).sum();
    merged.check(dir)?;
    for m in &parts {
        m.check_owned(&dir.join(part_file_name(m.part.unwrap_or(0), m.writers)))?;
    }
    Ok(merged)
}
