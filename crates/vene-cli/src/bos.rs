//! `--prepend-bos` / `--no-prepend-bos`: whether prompts start with the tokenizer's BOS token.

use vene::autoencoder::LoadedSae;

/// The BOS flag pair, shared by every command that tokenizes prompts (flattened into their
/// arguments; the last of the two given wins).
///
/// With neither flag, prompts are tokenized as the SAE was trained when its files say
/// (SAELens `cfg.json` `prepend_bos`), else as the tokenizer does by itself (no BOS for
/// GPT-2, a BOS for Llama-style tokenizers that add one).
///
/// ```
/// use clap::Parser;
/// use vene_cli::bos::BosArgs;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     bos: BosArgs,
/// }
/// assert_eq!(Cli::parse_from(["x"]).bos.resolve(None), None);
/// assert_eq!(Cli::parse_from(["x", "--prepend-bos"]).bos.resolve(None), Some(true));
/// assert_eq!(
///     Cli::parse_from(["x", "--prepend-bos", "--no-prepend-bos"]).bos.resolve(None),
///     Some(false)
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::Args)]
pub struct BosArgs {
    /// Start every prompt with the tokenizer's BOS token (default: what the SAE's cfg.json
    /// says, `prepend_bos`; else the tokenizer's own behaviour, no BOS for GPT-2).
    #[arg(long, overrides_with = "no_prepend_bos")]
    pub prepend_bos: bool,
    /// Never start prompts with the BOS token (one the tokenizer adds is removed).
    #[arg(long, overrides_with = "prepend_bos")]
    pub no_prepend_bos: bool,
}

impl BosArgs {
    /// What to do with the BOS token: `Some(true)` prepend, `Some(false)` leave out, `None` as
    /// the tokenizer does. A flag wins; else the SAE's `prepend_bos`, when it has one.
    pub fn resolve(&self, sae: Option<&LoadedSae>) -> Option<bool> {
        if self.prepend_bos {
            Some(true)
        } else if self.no_prepend_bos {
            Some(false)
        } else {
            sae.and_then(|s| s.prepend_bos)
        }
    }
}
