//! Shared by vene's examples (each includes this folder with `#[path]`): the offline model
//! and SAE folders made on the spot and the city prompts (both from [`vene_cli::demo`]), and
//! the body of an example's `main`.
//!
//! Not every example uses every item, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vene_cli::{CliError, Result};

#[allow(unused_imports)]
pub use vene_cli::demo::{cities, folders as offline};

/// A fresh folder under the system's temporary directory for `name`.
pub fn temp_root(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vene-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(CliError::io(&dir))?;
    Ok(dir)
}

/// The body of an example's `main`: `run` on the folders the user gave (`given`), or, when
/// none were given, on folders `make` writes into a temporary root that is removed afterwards.
/// Prints the report, or the error as one line with exit code 1.
pub fn run_main<T>(
    name: &str,
    given: Result<Option<T>>,
    make: impl FnOnce(&Path) -> Result<T>,
    run: impl FnOnce(&T) -> Result<String>,
) {
    let mut root = None;
    let result = (|| -> Result<String> {
        let target = match given? {
            Some(target) => target,
            None => {
                let r = temp_root(name)?;
                root = Some(r.clone());
                make(&r)?
            }
        };
        run(&target)
    })();
    if let Some(r) = root {
        let _ = std::fs::remove_dir_all(r);
    }
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            std::process::exit(1);
        }
    }
}
