//! `vene demo`: a model, an SAE and a corpus made on the spot, to try every command offline.

use std::path::PathBuf;

use candle_core::D;

use crate::backend::BackendArgs;
use crate::demo::{self, cities::CITIES, SAE_LAYER};
use crate::{load, CliError, Result};

/// Arguments of `vene demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The folder to create (it must not exist yet, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the model's and the SAE's weights and of the SAE's batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training steps of the SAE.
    #[arg(long, default_value_t = 1000)]
    pub sae_steps: usize,
}

/// The prompt the suggested commands use.
const PARIS: &str = "The city of Paris is in the country of";

/// Runs `vene demo`: writes the folder and returns what it holds and the commands to try.
pub fn run(args: &DemoArgs) -> Result<String> {
    if args.sae_steps == 0 {
        return Err(CliError::invalid("--sae-steps must be at least 1"));
    }
    let written = demo::write_demo(&args.out, args.seed, args.sae_steps)?;
    let latent = top_latent(&written)?;
    let out = args.out.display();
    let q = |p: &std::path::Path| shell_word(&p.display().to_string());
    let (model, sae, corpus) = (q(&written.model), q(&written.sae), q(&written.corpus));
    let mut text = format!(
        "wrote {out}:\n  \
         model/      a 2-layer GPT-2 (width {}) trained on {} city facts, with its tokenizer\n  \
         corpus.txt  those facts with their answers, and a few sentences\n  \
         sae/        an SAE on block_output of layer {SAE_LAYER}, trained on the corpus:\n",
        demo::folders::WIDTH,
        2 * CITIES.len(),
    );
    for line in written.sae_report.lines() {
        text.push_str(&format!("              {line}\n"));
    }
    text.push_str(&format!(
        "try (offline):\n  \
         vene features  --model {model} --sae {sae} --prompt \"{PARIS}\"\n  \
         vene patch     --model {model} --base \"{PARIS}\" --source \"The city of Tokyo is in the country of\"\n  \
         vene steer     --model {model} --sae {sae} --latent {latent} --scale 8 --prompt \"The city of Rome\"\n  \
         vene eval-sae  --model {model} --sae {sae} --text {corpus}\n  \
         vene train-sae --model {model} --layer 1 --data {corpus} --out my-sae\n  \
         vene dashboard --model {model} --sae {sae} --latent {latent} --text {corpus} --out dashboard\n"
    ));
    Ok(text)
}

/// The SAE latent most active at the last token of [`PARIS`] (the one `steer` is shown with).
fn top_latent(written: &demo::Demo) -> Result<usize> {
    let backend = BackendArgs::default().open()?;
    let lm = load::model(&written.model.to_string_lossy(), &backend)?;
    let sae = load::sae(&written.sae.to_string_lossy())?;
    let ae = load::sae_for(
        &lm.model,
        sae,
        vene::hooks::Component::BlockOutput,
        &backend,
    )?;
    let (_, ids) = lm.encode(PARIS)?;
    let acts = super::collect_all(
        &lm.model,
        SAE_LAYER,
        vene::hooks::Component::BlockOutput,
        &ids,
    )?;
    let last = acts.dim(0)? - 1;
    let z = ae.encode(&acts.narrow(0, last, 1)?)?;
    Ok(z.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?[0] as usize)
}

/// `s` as one shell word: unchanged when it has nothing a shell treats specially, else quoted.
fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
