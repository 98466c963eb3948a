//! What `vene collect` reads: a text file (one example per line), JSON lines (a string field
//! per line) or pre-tokenized ids (a JSON list per line), example by example, each cut into
//! sequences of at most the context length. Errors name the file and line.

use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;

use serde_json::Value;

use super::train_sae::chunk_ids;
use crate::load::LoadedModel;
use crate::{CliError, Result};

/// How the lines of the input file are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFormat {
    /// One text per line.
    Text,
    /// One JSON object per line; this field holds the text.
    Jsonl {
        /// The field's name.
        field: String,
    },
    /// One JSON list of token ids per line, or an object with `input_ids` or `tokens`.
    TokenIds,
}

/// The input file and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectInput {
    /// The file.
    pub path: PathBuf,
    /// How its lines are read.
    pub format: InputFormat,
}

/// How examples become sequences: the tokenizer, the context length, the BOS token each
/// sequence starts with (if any) and the model's vocabulary size (ids are checked against it).
pub struct Sequencing<'a> {
    /// The model and its tokenizer.
    pub lm: &'a LoadedModel,
    /// Tokens per sequence at most.
    pub chunk: usize,
    /// The BOS token every sequence starts with, when prompts start with one.
    pub bos: Option<u32>,
    /// Token ids must be below this.
    pub vocab: usize,
}

/// One example of the input: its sequences, and the bytes read for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Its tokens cut into sequences of at most the context length.
    pub sequences: Vec<Vec<u32>>,
    /// Bytes of the file read up to and including it (for a progress bar).
    pub bytes: u64,
}

/// The examples of an input file, in order (blank lines skipped).
pub struct Examples<'a> {
    input: &'a CollectInput,
    sequencing: &'a Sequencing<'a>,
    lines: Lines<BufReader<File>>,
    line: usize,
    bytes: u64,
}

impl CollectInput {
    /// The file's size in bytes (0 when unknown).
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Opens the file for a pass over its examples.
    pub fn examples<'a>(&'a self, sequencing: &'a Sequencing<'a>) -> Result<Examples<'a>> {
        let file = File::open(&self.path).map_err(CliError::io(&self.path))?;
        Ok(Examples {
            input: self,
            sequencing,
            lines: BufReader::new(file).lines(),
            line: 0,
            bytes: 0,
        })
    }
}

impl Iterator for Examples<'_> {
    type Item = Result<Example>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(e) => return Some(Err(CliError::io(&self.input.path)(e))),
            };
            self.line += 1;
            self.bytes += line.len() as u64 + 1;
            let at_line = |msg: String| {
                CliError::invalid(format!(
                    "{}:{}: {msg}",
                    self.input.path.display(),
                    self.line
                ))
            };
            let ids = match example_ids(&line, &self.input.format, self.sequencing) {
                Ok(Some(ids)) => ids,
                Ok(None) => continue,
                Err(msg) => return Some(Err(at_line(msg))),
            };
            let s = self.sequencing;
            return Some(Ok(Example {
                sequences: chunk_ids(&ids, s.chunk, s.bos),
                bytes: self.bytes,
            }));
        }
    }
}

/// The token ids of one line, `None` for a line without an example (blank, or an empty
/// text), or what is wrong with it.
fn example_ids(
    line: &str,
    format: &InputFormat,
    s: &Sequencing<'_>,
) -> std::result::Result<Option<Vec<u32>>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let ids = match format {
        InputFormat::Text => tokenize(line, s)?,
        InputFormat::Jsonl { field } => {
            let value: Value =
                serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
            let Value::Object(object) = value else {
                return Err(format!(
                    "expected a JSON object with a string field `{field}`"
                ));
            };
            let text = match object.get(field) {
                Some(Value::String(t)) => t.trim(),
                Some(other) => {
                    return Err(format!(
                        "field `{field}` is not a string but {}",
                        json_kind(other)
                    ))
                }
                None => return Err(format!("no field `{field}` (choose one with --field)")),
            };
            if text.is_empty() {
                return Ok(None);
            }
            tokenize(text, s)?
        }
        InputFormat::TokenIds => {
            let value: Value =
                serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
            let ids = token_ids(&value)?;
            if ids.is_empty() {
                return Err("no token ids".into());
            }
            ids
        }
    };
    if let Some((k, id)) = ids
        .iter()
        .enumerate()
        .find(|&(_, &id)| id as usize >= s.vocab)
    {
        return Err(format!(
            "token id {id} (token {k} of the line) is out of the model's vocabulary of {} tokens",
            s.vocab
        ));
    }
    Ok(Some(ids))
}

/// The ids of `text`, with the BOS token as the model's `prepend_bos` says.
fn tokenize(text: &str, s: &Sequencing<'_>) -> std::result::Result<Vec<u32>, String> {
    let ids =
        s.lm.tokenizer
            .encode_bos(text, s.lm.prepend_bos)
            .map_err(|e| e.to_string())?;
    if ids.is_empty() {
        return Err(format!("the text {text:?} has no tokens"));
    }
    Ok(ids)
}

/// The ids of a pre-tokenized line: a list of ids, or an object whose `input_ids` (or
/// `tokens`) is one.
fn token_ids(value: &Value) -> std::result::Result<Vec<u32>, String> {
    let list = match value {
        Value::Array(list) => list,
        Value::Object(object) => match object.get("input_ids").or_else(|| object.get("tokens")) {
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(format!(
                    "`input_ids`/`tokens` is {}, not a list of token ids",
                    json_kind(other)
                ))
            }
            None => return Err("an object without `input_ids` or `tokens`".into()),
        },
        other => {
            return Err(format!(
                "expected a list of token ids (or an object with `input_ids` or `tokens`), not {}",
                json_kind(other)
            ))
        }
    };
    list.iter()
        .enumerate()
        .map(|(k, v)| {
            v.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| format!("token {k} of the line, {v}, is not a token id"))
        })
        .collect()
}

/// What kind of JSON value `v` is, for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
