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
        Ok(Self { inner })
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
