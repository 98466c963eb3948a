//! Activations computed while training goes: `vene train-sae --data F --stream`. The text is
//! read line by line, each line's chunks run through the model (one padded batch per line),
//! and their rows go into a
//! shuffle buffer of bounded size from which each batch draws its rows at random. Memory is
//! the buffer plus one chunk, whatever the text's size; at the end of the text the next epoch
//! starts from its top. The stream is a function of the text, the model and the seed, so a
//! resumed run can replay it.

use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use vene::autoencoder::store::take_random_row;
use vene::hooks::{Component, Site};
use vene::models::LanguageModel;

use super::site_collector::SiteCollector;
use crate::load::LoadedModel;
use crate::{CliError, Result};

/// Where the activations come from: the model, its site, and how lines are cut.
#[derive(Debug, Clone)]
pub struct StreamSite {
    /// The layer read.
    pub layer: usize,
    /// The component read.
    pub component: Component,
    /// Its width.
    pub width: usize,
    /// Tokens per forward pass.
    pub chunk: usize,
}

/// Batches of `[batch, width]` activations, drawn from a shuffle buffer that the model fills
/// from the text (see the module's docs). Endless: epoch after epoch.
pub struct ActivationStream<'a> {
    lm: &'a LoadedModel,
    collector: SiteCollector,
    path: PathBuf,
    site: StreamSite,
    bos: Option<u32>,
    dtype: DType,
    lines: Option<Lines<BufReader<File>>>,
    line_no: usize,
    rows_this_epoch: usize,
    buffer: Vec<f32>,
    buffer_rows: usize,
    batch_size: usize,
    rng: StdRng,
    peak_rows: usize,
    failed: bool,
}

impl<'a> ActivationStream<'a> {
    /// A stream over the text file `path` (one example per line, blank lines skipped) through
    /// `lm` at `site`, with a shuffle buffer of `buffer_rows` rows, `batch_size` rows per
    /// batch in `dtype`, shuffled by `seed`.
    pub fn new(
        lm: &'a LoadedModel,
        path: &Path,
        site: StreamSite,
        (buffer_rows, batch_size, seed): (usize, usize, u64),
        dtype: DType,
    ) -> Result<Self> {
        if buffer_rows == 0 || batch_size == 0 {
            return Err(CliError::invalid(
                "the shuffle buffer and the batch need at least one row",
            ));
        }
        let bos = match lm.prepend_bos {
            Some(true) => Some(lm.tokenizer.bos_token_id().map_err(CliError::from)?),
            _ => None,
        };
        let collector = SiteCollector::new(
            &lm.model,
            &[Site::new(site.layer, site.component)],
            site.chunk,
        )?;
        Ok(Self {
            lm,
            collector,
            path: path.to_path_buf(),
            site,
            bos,
            dtype,
            lines: None,
            line_no: 0,
            rows_this_epoch: 0,
            buffer: Vec::new(),
            buffer_rows,
            batch_size,
            rng: StdRng::seed_from_u64(seed),
            peak_rows: 0,
            failed: false,
        })
    }

    /// The most rows the buffer held at once so far (at most the buffer's size plus one
    /// line's chunk).
    pub fn peak_rows(&self) -> usize {
        self.peak_rows
    }

    fn rows(&self) -> usize {
        self.buffer.len() / self.site.width
    }

    /// Runs the model on the next non-blank line's chunks and appends their rows; `false`
    /// at the end of the text.
    fn read_line(&mut self) -> Result<bool> {
        let path = self.path.clone();
        if self.lines.is_none() {
            let file = File::open(&path).map_err(CliError::io(&path))?;
            self.lines = Some(BufReader::new(file).lines());
            self.line_no = 0;
            self.rows_this_epoch = 0;
        }
        let Some(lines) = self.lines.as_mut() else {
            return Ok(false);
        };
        for line in lines.by_ref() {
            self.line_no += 1;
            let line = line.map_err(CliError::io(&path))?;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let at_line = |e: CliError| {
                CliError::invalid(format!(
                    "{}:{}: {}",
                    path.display(),
                    self.line_no,
                    e.one_line()
                ))
            };
            let (ids, _) = self.lm.encode(text).map_err(at_line)?;
            // one padded forward pass for the line's chunks
            let pieces = super::train_sae::chunk_ids(&ids, self.site.chunk, self.bos);
            let acts = self
                .collector
                .collect(&pieces)
                .map_err(at_line)?
                .remove(0)
                .to_dtype(DType::F32)?;
            self.buffer
                .extend_from_slice(&acts.flatten_all()?.to_vec1::<f32>()?);
            self.rows_this_epoch += acts.dim(0)?;
            self.peak_rows = self.peak_rows.max(self.rows());
            return Ok(true);
        }
        self.lines = None;
        if self.rows_this_epoch == 0 {
            return Err(CliError::invalid(format!(
                "{}: no text (one example per line)",
                path.display()
            )));
        }
        Ok(false)
    }

    fn next_batch(&mut self) -> Result<Tensor> {
        let d = self.site.width;
        let mut out = Vec::with_capacity(self.batch_size * d);
        while out.len() < self.batch_size * d {
            while self.rows() < self.buffer_rows {
                if !self.read_line()? {
                    break;
                }
            }
            // empty when the text ended with the buffer drawn empty: the next epoch refills it
            take_random_row(&mut self.buffer, d, &mut self.rng, &mut out);
        }
        let t = Tensor::from_vec(out, (self.batch_size, d), self.lm.model.device())?;
        Ok(t.to_dtype(self.dtype)?)
    }
}

impl Iterator for ActivationStream<'_> {
    type Item = vene::autoencoder::Result<Tensor>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_batch() {
            Ok(t) => Some(Ok(t)),
            Err(e) => {
                self.failed = true;
                Some(Err(vene::autoencoder::AutoencoderError::InvalidArgument(
                    e.one_line(),
                )))
            }
        }
    }
}
