//! `vene`: SAE features, activation patching, steering and SAE training from the shell.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use vene_cli::commands::{
    collect, dashboard, demo, eval_sae, features, patch, sae_releases, steer, train_sae,
};

/// Causal interventions on transformer internals, with SAEs (vene).
#[derive(Debug, Parser)]
#[command(name = "vene", version, about, arg_required_else_help = true)]
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
    TrainSae(Box<train_sae::TrainSaeArgs>),
    /// Collect activations of sites over text, JSON lines or token ids into activation stores
    /// (--shard i/n: job i of n collects every n-th block of sequences).
    Collect(collect::CollectArgs),
    /// How good an SAE is inside its model: L0, reconstruction, loss recovered, KL, densities.
    EvalSae(eval_sae::EvalSaeArgs),
    /// Static HTML pages of SAE latents: top-activating contexts, histogram, logit effects.
    Dashboard(dashboard::DashboardArgs),
    /// Write a small model, an SAE and a corpus made on the spot, to try every command offline.
    Demo(demo::DemoArgs),
    /// List the pretrained SAE releases (--sae-release), or one release's SAE ids.
    SaeReleases(sae_releases::SaeReleasesArgs),
}

fn main() {
    // clap prints its own errors (the missing arguments, a similar subcommand, the usage) and
    // help, and exits with code 2; `vene` alone prints the usage. vene's own failures below
    // are one line on stderr and exit code 1.
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Features(a) => features::run(a),
        Command::Patch(a) => patch::run(a),
        Command::Steer(a) => steer::run(a),
        Command::TrainSae(a) => train_sae::run(a),
        Command::Collect(a) => collect::run(a),
        Command::EvalSae(a) => eval_sae::run(a),
        Command::Dashboard(a) => dashboard::run(a),
        Command::Demo(a) => demo::run(a),
        Command::SaeReleases(a) => sae_releases::run(a),
    };
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            std::process::exit(1);
        }
    }
}
