//! `--sae <path-or-hub-path>` or `--sae-release R --sae-id I`: the SAE a command applies,
//! shared by the commands that read one (flatten [`SaeArgs`] into their arguments).

use vene::autoencoder::{HubOptions, LoadedSae, PretrainedSae, SaeRegistry};

use crate::{load, CliError, Result};

/// Which SAE to load: a local folder or file or a hub path (`--sae`), or a pretrained release
/// and id (`--sae-release`, `--sae-id`; `vene sae-releases` lists them). Exactly one of the
/// two ways is required; clap refuses both or neither.
///
/// ```
/// use clap::Parser;
/// use vene_cli::sae_args::SaeArgs;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     sae: SaeArgs,
/// }
/// let cli = Cli::try_parse_from(["x", "--sae-release", "gpt2-small-res-jb", "--sae-id", "blocks.8.hook_resid_pre"]).unwrap();
/// assert_eq!(cli.sae.describe(), "--sae-release gpt2-small-res-jb --sae-id blocks.8.hook_resid_pre");
/// let cli = Cli::try_parse_from(["x", "--sae", "saes/layer8"]).unwrap();
/// assert_eq!(cli.sae.sae.as_deref(), Some("saes/layer8"));
/// // Both ways, neither, or a release without an id: clap's own errors.
/// assert!(Cli::try_parse_from(["x", "--sae", "a", "--sae-release", "r", "--sae-id", "i"]).is_err());
/// assert!(Cli::try_parse_from(["x"]).is_err());
/// assert!(Cli::try_parse_from(["x", "--sae-release", "r"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct SaeArgs {
    /// SAE folder or file, or a hub path `org/repo/path-in-repo` (or use --sae-release and
    /// --sae-id).
    #[arg(long, required_unless_present = "sae_release", conflicts_with_all = ["sae_release", "sae_id"])]
    pub sae: Option<String>,
    /// A pretrained SAE release, e.g. gemma-scope-2b-pt-res-canonical (`vene sae-releases`
    /// lists them; with --sae-id).
    #[arg(long, requires = "sae_id")]
    pub sae_release: Option<String>,
    /// The SAE's id in --sae-release, e.g. layer_20/width_16k/canonical.
    #[arg(long, requires = "sae_release")]
    pub sae_id: Option<String>,
}

impl SaeArgs {
    /// `--sae path`.
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            sae: Some(path.into()),
            ..Self::default()
        }
    }

    /// `--sae-release release --sae-id id`.
    pub fn pretrained(release: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            sae: None,
            sae_release: Some(release.into()),
            sae_id: Some(id.into()),
        }
    }

    /// The flags as given, for messages.
    pub fn describe(&self) -> String {
        match (&self.sae, &self.sae_release, &self.sae_id) {
            (Some(p), _, _) => format!("--sae {p}"),
            (None, Some(r), Some(i)) => format!("--sae-release {r} --sae-id {i}"),
            _ => "no SAE".into(),
        }
    }

    /// Loads the SAE: `--sae` as [`load::sae`] does; a release and id from the registry (the
    /// built-in one plus `$VENE_SAE_REGISTRY`) through the hub cache (`HF_HUB_CACHE`,
    /// `HF_HOME`, `HF_HUB_OFFLINE`), with the hook point and layer the registry knows when
    /// the files do not name one vene reads ([`vene::hooks::site_from_name`]; e.g.
    /// dictionary_learning's `resid_post_layer_12`).
    pub fn load(&self) -> Result<LoadedSae> {
        self.load_with(&HubOptions::default())
    }

    /// [`SaeArgs::load`] with hub options for a release and id.
    pub fn load_with(&self, opts: &HubOptions) -> Result<LoadedSae> {
        match (&self.sae, &self.sae_release, &self.sae_id) {
            (Some(p), None, None) => load::sae(p),
            (None, Some(r), Some(i)) => pretrained(r, i, opts)
                .map_err(|e| CliError::invalid(format!("--sae-release {r} --sae-id {i}: {e}"))),
            (Some(_), _, _) => Err(CliError::invalid(
                "pass either --sae or --sae-release with --sae-id, not both",
            )),
            _ => Err(CliError::invalid(
                "no SAE: pass --sae <path>, or --sae-release <release> with --sae-id <id>",
            )),
        }
    }
}

/// The SAE `id` of `release`, with the registry's hook point when the files name none that
/// [`vene::hooks::site_from_name`] reads.
fn pretrained(release: &str, id: &str, opts: &HubOptions) -> vene::autoencoder::Result<LoadedSae> {
    let reg = SaeRegistry::from_env()?;
    let mut sae = reg.load(release, id, opts)?;
    let (_, entry) = reg.resolve(release, id)?;
    take_registry_site(&mut sae, entry);
    Ok(sae)
}

/// Sets `sae`'s hook point and layer to the registry's `entry` when its files name no hook
/// point that [`vene::hooks::site_from_name`] reads and the registry's is one.
pub fn take_registry_site(sae: &mut LoadedSae, entry: &PretrainedSae) {
    let readable = |h: Option<&str>| h.and_then(vene::hooks::site_from_name).is_some();
    if !readable(sae.hook_name.as_deref()) && readable(entry.hook_name.as_deref()) {
        sae.hook_name = entry.hook_name.clone();
        sae.layer = entry.layer.or(sae.layer);
    }
}
