//! Text to token ids and back, from a `tokenizer.json`.

use std::path::Path;

use crate::{ModelError, Result};

/// A Hugging Face tokenizer (`tokenizer.json`) with typed errors.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/tokenizers/gpt2/tokenizer.json");
/// let tok = vene_models::Tokenizer::from_file(path)?;
/// let ids = tok.encode("Hello world!")?;
/// assert_eq!(ids, vec![15496, 995, 0]);
/// assert_eq!(tok.decode(&ids)?, "Hello world!");
/// # Ok::<(), vene_models::ModelError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// What `tokenizer_config.json` beside `tokenizer.json` says the BOS token is: `None` when
    /// there is no such file or it has no `bos_token` key, `Some(None)` when it says `null`.
    config_bos: Option<Option<String>>,
}

/// Tokens taken as the BOS token when no `tokenizer_config.json` names one, in this order
/// (Llama 3, Llama/Mistral, Gemma, GPT-2/GPT-NeoX, which start documents with `<|endoftext|>`).
pub const FALLBACK_BOS_TOKENS: [&str; 4] = ["<|begin_of_text|>", "<s>", "<bos>", "<|endoftext|>"];

/// The `bos_token` of a `tokenizer_config.json` (a string, or an object with `content`).
fn config_bos(path: &Path) -> Result<Option<Option<String>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let cfg = crate::loader::read_json(path)?;
    Ok(match cfg.get("bos_token") {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(serde_json::Value::String(s)) => Some(Some(s.clone())),
        Some(v) => match v.get("content").and_then(|c| c.as_str()) {
            Some(s) => Some(Some(s.to_string())),
            None => {
                return Err(ModelError::Tokenizer(format!(
                    "{}: bos_token is neither a string nor an object with `content`",
                    path.display()
                )))
            }
        },
    })
}

impl Tokenizer {
    /// Reads a `tokenizer.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "tokenizer file not found",
                ),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        let config_bos = match path.parent() {
            Some(dir) => config_bos(&dir.join("tokenizer_config.json"))?,
            None => None,
        };
        Ok(Self { inner, config_bos })
    }

    /// The id of the BOS (beginning of sequence) token: the `bos_token` of the
    /// `tokenizer_config.json` beside `tokenizer.json`, else the first of the usual BOS tokens
    /// in the vocabulary (`<|begin_of_text|>`, `<s>`, `<bos>`, `<|endoftext|>`: `<s>` for
    /// Llama/Mistral, `<|endoftext|>` for GPT-2). A clear [`ModelError::Tokenizer`] when the model has none.
    ///
    /// ```
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/tokenizers");
    /// let gpt2 = vene_models::Tokenizer::from_file(format!("{dir}/gpt2/tokenizer.json"))?;
    /// assert_eq!(gpt2.bos_token_id()?, 50256); // <|endoftext|>
    /// let mistral = vene_models::Tokenizer::from_file(format!("{dir}/mistral-7b/tokenizer.json"))?;
    /// assert_eq!(mistral.bos_token_id()?, 1); // <s>, from tokenizer_config.json
    /// # Ok::<(), vene_models::ModelError>(())
    /// ```
    pub fn bos_token_id(&self) -> Result<u32> {
        match &self.config_bos {
            Some(Some(tok)) => self.token_to_id(tok).ok_or_else(|| {
                ModelError::Tokenizer(format!(
                    "tokenizer_config.json names the BOS token {tok:?}, which is not in the vocabulary"
                ))
            }),
            Some(None) => Err(ModelError::Tokenizer(
                "this model has no BOS token (tokenizer_config.json sets bos_token to null); \
                 do not ask for one to be prepended"
                    .to_string(),
            )),
            None => FALLBACK_BOS_TOKENS
                .iter()
                .find_map(|t| self.token_to_id(t))
                .ok_or_else(|| {
                    ModelError::Tokenizer(format!(
                        "this tokenizer has no BOS token (no tokenizer_config.json naming one, and \
                         none of {} in its vocabulary); do not ask for one to be prepended",
                        FALLBACK_BOS_TOKENS.join(", ")
                    ))
                }),
        }
    }

    /// Token ids of `text` with the BOS token as asked: `None` leaves what the tokenizer does
    /// ([`Tokenizer::encode`]), `Some(true)` makes the ids start with exactly one BOS (added
    /// unless the tokenizer already added it; an error when the model has none), `Some(false)`
    /// removes a BOS the tokenizer put first.
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/tokenizers/gpt2/tokenizer.json");
    /// let tok = vene_models::Tokenizer::from_file(path)?;
    /// assert_eq!(tok.encode_bos("Hello", Some(true))?, vec![50256, 15496]);
    /// assert_eq!(tok.encode_bos("Hello", None)?, vec![15496]);
    /// # Ok::<(), vene_models::ModelError>(())
    /// ```
    pub fn encode_bos(&self, text: &str, prepend_bos: Option<bool>) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        match prepend_bos {
            None => {}
            Some(true) => {
                let bos = self.bos_token_id()?;
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
            Some(false) => {
                if let Ok(bos) = self.bos_token_id() {
                    if ids.first() == Some(&bos) {
                        ids.remove(0);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Token ids of `text`, with the special tokens the tokenizer adds (as HF's
    /// `tokenizer(text)` does, e.g. Llama's BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    /// Token ids of `text`, choosing whether special tokens are added.
    pub fn encode_with(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
