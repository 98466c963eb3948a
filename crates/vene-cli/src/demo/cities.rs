//! City prompts for real models: `The city of Paris is in the country of` -> ` France`, and
//! the continent, with every city at the same token position.

use crate::load::LoadedModel;
use crate::{CliError, Result};
use candle_core::{Device, Tensor};

/// A city with two attributes.
#[derive(Debug, Clone, Copy)]
pub struct City {
    /// The city's name (one word).
    pub name: &'static str,
    /// Its country.
    pub country: &'static str,
    /// Its continent.
    pub continent: &'static str,
}

const fn city(name: &'static str, country: &'static str, continent: &'static str) -> City {
    City {
        name,
        country,
        continent,
    }
}

/// The cities (names that GPT-2 writes as one token).
pub const CITIES: [City; 20] = [
    city("Paris", "France", "Europe"),
    city("Berlin", "Germany", "Europe"),
    city("Rome", "Italy", "Europe"),
    city("Madrid", "Spain", "Europe"),
    city("Vienna", "Austria", "Europe"),
    city("Athens", "Greece", "Europe"),
    city("Lisbon", "Portugal", "Europe"),
    city("Dublin", "Ireland", "Europe"),
    city("Tokyo", "Japan", "Asia"),
    city("Beijing", "China", "Asia"),
    city("Shanghai", "China", "Asia"),
    city("Delhi", "India", "Asia"),
    city("Seoul", "Korea", "Asia"),
    city("Bangkok", "Thailand", "Asia"),
    city("Cairo", "Egypt", "Africa"),
    city("Lagos", "Nigeria", "Africa"),
    city("Nairobi", "Kenya", "Africa"),
    city("Toronto", "Canada", "North America"),
    city("Sydney", "Australia", "Australia"),
    city("Melbourne", "Australia", "Australia"),
];

/// Which attribute a prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// `The city of X is in the country of`
    Country,
    /// `The city of X is on the continent of`
    Continent,
}

impl Attribute {
    /// The text before and after the city.
    pub fn template(self) -> (&'static str, &'static str) {
        match self {
            Attribute::Country => ("The city of", "is in the country of"),
            Attribute::Continent => ("The city of", "is on the continent of"),
        }
    }
    /// The answer for `city`.
    pub fn value(self, city: &City) -> &'static str {
        match self {
            Attribute::Country => city.country,
            Attribute::Continent => city.continent,
        }
    }
}

/// Every word of the templates (for the offline word-level tokenizer).
pub const TEMPLATE_WORDS: [&str; 2] = [
    "The city of is in the country of",
    "The city of is on the continent of",
];

/// The prompts of one attribute, tokenized.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Index into [`CITIES`] of each kept prompt.
    pub cities: Vec<usize>,
    /// Token ids of each kept prompt, all of the same length.
    pub ids: Vec<Vec<u32>>,
    /// First token of the answer (` France`) of each kept prompt.
    pub answers: Vec<u32>,
    /// The token position of the city (the same in every prompt).
    pub position: usize,
    /// Cities left out because their name is not one token.
    pub skipped: Vec<&'static str>,
}

impl Encoded {
    /// Token ids of the prompts `rows` (indices into the kept prompts) as `[rows.len(), T]`.
    pub fn batch(&self, rows: &[usize], device: &Device) -> Result<Tensor> {
        let t = self.ids.first().map_or(0, Vec::len);
        let mut flat = Vec::with_capacity(rows.len() * t);
        for &r in rows {
            let ids = self
                .ids
                .get(r)
                .ok_or_else(|| CliError::invalid(format!("no prompt {r}")))?;
            flat.extend_from_slice(ids);
        }
        Ok(Tensor::from_vec(flat, (rows.len(), t), device)?)
    }
}

/// Tokenizes the prompts of `attribute` for every city whose name is one token there.
pub fn encode(lm: &LoadedModel, attribute: Attribute) -> Result<Encoded> {
    let (prefix, suffix) = attribute.template();
    let prefix_ids = lm.tokenizer.encode(prefix)?;
    let without_city = lm.tokenizer.encode(&format!("{prefix} {suffix}"))?;
    let mut out = Encoded {
        cities: Vec::new(),
        ids: Vec::new(),
        answers: Vec::new(),
        position: prefix_ids.len(),
        skipped: Vec::new(),
    };
    for (i, c) in CITIES.iter().enumerate() {
        let prompt = format!("{prefix} {} {suffix}", c.name);
        let ids = lm.tokenizer.encode(&prompt)?;
        let with_answer = lm
            .tokenizer
            .encode(&format!("{prompt} {}", attribute.value(c)))?;
        let answer = with_answer.get(ids.len()).copied();
        let one_token = ids.len() == without_city.len() + 1 && ids.starts_with(&prefix_ids);
        match answer {
            Some(a) if one_token && with_answer.starts_with(&ids) => {
                out.cities.push(i);
                out.ids.push(ids);
                out.answers.push(a);
            }
            _ => out.skipped.push(c.name),
        }
    }
    // Cities the tokenizer writes as the same token (e.g. `<unk>` of a word-level vocabulary
    // that does not know them) cannot be told apart: leave them all out.
    let city_token = |ids: &Vec<u32>| ids.get(out.position).copied();
    let shared: Vec<bool> = out
        .ids
        .iter()
        .map(|a| {
            out.ids
                .iter()
                .filter(|b| city_token(b) == city_token(a))
                .count()
                > 1
        })
        .collect();
    if shared.iter().any(|&s| s) {
        let mut kept = Encoded {
            cities: Vec::new(),
            ids: Vec::new(),
            answers: Vec::new(),
            position: out.position,
            skipped: out.skipped.clone(),
        };
        for (i, is_shared) in shared.into_iter().enumerate() {
            if is_shared {
                kept.skipped.push(CITIES[out.cities[i]].name);
            } else {
                kept.cities.push(out.cities[i]);
                kept.ids.push(out.ids[i].clone());
                kept.answers.push(out.answers[i]);
            }
        }
        out = kept;
    }
    if out.cities.len() < 2 {
        return Err(CliError::invalid(format!(
            "only {} of the {} cities are one token of their own for this tokenizer (the others \
             are several tokens, or share one, e.g. `<unk>`); need at least 2",
            out.cities.len(),
            CITIES.len()
        )));
    }
    Ok(out)
}
