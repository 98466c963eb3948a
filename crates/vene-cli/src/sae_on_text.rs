//! The arguments `vene eval-sae` and `vene dashboard` share (a model, an SAE and the site it
//! is applied at, a text file cut into chunks), and opening them.

use std::path::PathBuf;

use vene::autoencoder::LoadedSae;
use vene::hooks::Component;

use crate::backend::{Backend, BackendArgs};
use crate::bos::BosArgs;
use crate::commands::train_sae::chunk_length;
use crate::load::{self, LoadedModel, SaeSite};
use crate::sae_args::SaeArgs;
use crate::Result;

/// A model, an SAE at a site, and a corpus: the arguments of the commands that run an SAE over
/// a text file.
#[derive(Debug, Clone, clap::Args)]
pub struct SaeOnTextArgs {
    /// Model folder (it needs tokenizer.json) or hub repo id `owner/name`.
    #[arg(long)]
    pub model: String,
    /// The SAE: --sae, or --sae-release with --sae-id.
    #[command(flatten)]
    pub sae: SaeArgs,
    /// Layer (default: the layer the SAE's files name).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Component the SAE reads (default: the site its files name).
    #[arg(long)]
    pub component: Option<Component>,
    /// The corpus: a text file, one text per line (blank lines skipped); each line is cut
    /// into chunks of --context-length tokens.
    #[arg(long)]
    pub text: PathBuf,
    /// Tokens per chunk (default: the model's context).
    #[arg(long)]
    pub context_length: Option<usize>,
    /// Device and precision.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Whether texts start with the BOS token.
    #[command(flatten)]
    pub bos: BosArgs,
}

/// What [`SaeOnTextArgs::open`] loaded.
#[derive(Debug)]
pub struct OpenedSae {
    /// The device and dtypes.
    pub backend: Backend,
    /// The model with its tokenizer, BOS as the flags and the SAE ask.
    pub lm: LoadedModel,
    /// The SAE as its files describe it.
    pub sae: LoadedSae,
    /// Where it is applied (with a warning when that is not its own site).
    pub site: SaeSite,
    /// Tokens per chunk, checked against the model's positions.
    pub chunk: usize,
}

impl SaeOnTextArgs {
    /// Opens the backend, loads the model and the SAE, and resolves the site and the chunk
    /// length; prints the site warning, if any, on stderr.
    pub fn open(&self) -> Result<OpenedSae> {
        let backend = self.backend.open()?;
        let lm = load::model(&self.model, &backend)?;
        let sae = self.sae.load()?;
        let lm = lm.with_prepend_bos(self.bos.resolve(Some(&sae)))?;
        let site = load::sae_site(self.layer, self.component, &sae)?;
        if let Some(w) = &site.warning {
            eprintln!("{w}");
        }
        let chunk = chunk_length(&lm.model, &self.model, self.context_length)?;
        Ok(OpenedSae {
            backend,
            lm,
            sae,
            site,
            chunk,
        })
    }

    /// The SAE as the user named it: its path, or release and id.
    pub fn sae_name(&self) -> String {
        self.sae.sae.clone().unwrap_or_else(|| self.sae.describe())
    }
}
