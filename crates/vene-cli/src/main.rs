//! `vene`: SAE features, activation patching, steering and SAE training from the shell.

use clap::{Parser, Subcommand};
use vene_cli::commands::{features, patch, steer, train_sae};

/// Causal interventions on transformer internals, with SAEs (vene).
#[derive(Debug, Parser)]
#[command(name = "vene", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Top SAE latents of every token of a prompt.
    Features(features::FeaturesArgs),
    /// Interchange intervention from a source prompt into a base prompt.
    Patch(patch::PatchArgs),
    /// Generation steered along an SAE latent's decoder direction.
    Steer(steer::SteerArgs),
    /// Collect activations over a text file and train an SAE (SAELens layout).
    TrainSae(train_sae::TrainSaeArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let msg = e.to_string();
            let mut lines = msg.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("invalid arguments");
            // "the following required arguments were not provided:" names them on the next line.
            match lines.next().filter(|_| first.ends_with(':')) {
                Some(next) => eprintln!("{first} {next}"),
                None => eprintln!("{first}"),
            }
            std::process::exit(1);
        }
    };
    let result = match &cli.command {
        Command::Features(a) => features::run(a),
        Command::Patch(a) => patch::run(a),
        Command::Steer(a) => steer::run(a),
        Command::TrainSae(a) => train_sae::run(a),
    };
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            std::process::exit(1);
        }
    }
}
