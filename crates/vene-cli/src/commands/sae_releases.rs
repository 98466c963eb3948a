//! `vene sae-releases [RELEASE]`: the pretrained SAE releases `--sae-release` takes, or one
//! release's SAE ids with their layer, hook point and path in the hub repo.

use vene::autoencoder::{SaeRegistry, SaeRelease};

use crate::{table, CliError, Result};

/// Arguments of `vene sae-releases`.
#[derive(Debug, Clone, clap::Args)]
pub struct SaeReleasesArgs {
    /// A release: list its SAE ids (default: list the releases).
    pub release: Option<String>,
}

/// Runs `vene sae-releases`: a table of the releases (name, model, format, number of SAEs,
/// site, hub repo), or for one release its repo, model and format and a table of its ids.
///
/// ```
/// use vene_cli::commands::sae_releases::{run, SaeReleasesArgs};
/// let one = run(&SaeReleasesArgs { release: Some("gpt2-small-res-jb".into()) })?;
/// assert!(one.contains("repo:   jbloom/GPT2-Small-SAEs-Reformatted"));
/// assert!(one.contains("| blocks.8.hook_resid_pre "));
/// let all = run(&SaeReleasesArgs { release: None })?;
/// assert!(all.contains("| gemma-scope-2b-pt-res-canonical "));
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn run(args: &SaeReleasesArgs) -> Result<String> {
    let reg = SaeRegistry::from_env()?;
    match &args.release {
        None => Ok(list(reg.releases())),
        Some(name) => {
            let r = reg
                .release(name)
                .map_err(|e| CliError::invalid(e.to_string()))?;
            Ok(show(r))
        }
    }
}

/// The table of releases.
fn list(releases: &[SaeRelease]) -> String {
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.model.clone(),
                format!("{:?}", r.format),
                r.saes.len().to_string(),
                r.site(),
                r.repo_id.clone(),
            ]
        })
        .collect();
    format!(
        "{} pretrained SAE releases (use with --sae-release R --sae-id I; `vene sae-releases R` lists R's ids)\n",
        releases.len()
    ) + &table::render(
        &["release", "model", "format", "saes", "site", "hub repo"],
        &rows,
    )
}

/// One release: its repo, model, format and ids.
fn show(r: &SaeRelease) -> String {
    let rows: Vec<Vec<String>> = r
        .saes
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.layer.map_or("-".into(), |l| l.to_string()),
                s.hook_name.clone().unwrap_or_else(|| "-".into()),
                s.path.clone(),
            ]
        })
        .collect();
    let notes = r
        .notes
        .as_ref()
        .map(|n| format!("notes:  {n}\n"))
        .unwrap_or_default();
    format!(
        "release: {}\nrepo:   {}\nmodel:  {}\nformat: {:?}\nsaes:   {}\n{notes}",
        r.name,
        r.repo_id,
        r.model,
        r.format,
        r.saes.len()
    ) + &table::render(&["id", "layer", "hook", "path in repo"], &rows)
}
