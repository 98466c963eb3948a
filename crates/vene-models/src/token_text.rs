//! The readable text of one token, for tables that show tokens one at a time.
//!
//! Decoding a single token is not always readable: a byte-level BPE (GPT-2, Llama 3, Qwen,
//! Pythia) splits a character such as `🙂` over several tokens, each of which decodes to an
//! empty string or to `U+FFFD`, and some tokens decode to nothing at all.

use tokenizers::DecoderWrapper;

use crate::Tokenizer;

/// The 256 bytes in GPT-2's byte-to-unicode order: printable bytes stand for themselves, the
/// others are written as the characters from U+0100 on, in byte order.
fn byte_of_char(c: char) -> Option<u8> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let code = c as u32;
    if code < 256 && printable(code) {
        return u8::try_from(code).ok();
    }
    let n = code.checked_sub(256)?;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(n as usize)
        .and_then(|b| u8::try_from(b).ok())
}

/// `bytes` as text, with every byte that is not part of valid UTF-8 written as `\xNN`.
fn escape_invalid_utf8(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

impl Tokenizer {
    /// The text of token `id` as a person should read it in a table: its decoded text when
    /// that is whole; for a byte-level BPE token that holds part of a character, its bytes,
    /// the partial ones as `\xNN`; else the vocabulary's own string for it (e.g. `<0xF0>` of a
    /// SentencePiece byte token); `<id N>` for an id the vocabulary does not have. Never empty.
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/tokenizers/gpt2/tokenizer.json");
    /// let tok = vene_models::Tokenizer::from_file(path)?;
    /// let ids = tok.encode("日本")?; // 6 bytes of UTF-8 over 4 tokens
    /// let texts: Vec<String> = ids.iter().map(|&id| tok.token_text(id)).collect();
    /// assert_eq!(texts, vec!["\\xe6\\x97", "\\xa5", "\\xe6\\x9c", "\\xac"]);
    /// assert_eq!(tok.token_text(tok.encode(" Paris")?[0]), " Paris");
    /// # Ok::<(), vene_models::ModelError>(())
    /// ```
    pub fn token_text(&self, id: u32) -> String {
        if let Ok(text) = self.decode(&[id]) {
            if !text.is_empty() && !text.contains('\u{FFFD}') {
                return text;
            }
        }
        let Some(raw) = self.inner().id_to_token(id) else {
            return format!("<id {id}>");
        };
        let byte_level = matches!(
            self.inner().get_decoder(),
            Some(DecoderWrapper::ByteLevel(_))
        );
        if byte_level {
            if let Some(bytes) = raw.chars().map(byte_of_char).collect::<Option<Vec<u8>>>() {
                if !bytes.is_empty() {
                    return escape_invalid_utf8(&bytes);
                }
            }
        }
        if raw.is_empty() {
            format!("<id {id}>")
        } else {
            raw
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_to_unicode_is_gpt2s() {
        // Printable ASCII stands for itself; space (0x20) is `Ġ` (U+0120), newline `Ċ`
        // (U+010A), 0x00 is U+0100, 0xAD (soft hyphen) is `Ń` (U+0143): the last of the 68.
        assert_eq!(byte_of_char('a'), Some(b'a'));
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('Ċ'), Some(b'\n'));
        assert_eq!(byte_of_char('\u{100}'), Some(0));
        assert_eq!(byte_of_char('\u{143}'), Some(0xAD));
        assert_eq!(byte_of_char('\u{144}'), None);
        assert_eq!(byte_of_char('é'), Some(0xE9));
    }

    #[test]
    fn every_gpt2_token_has_text() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/tokenizers/gpt2/tokenizer.json"
        );
        let tok = Tokenizer::from_file(path).unwrap();
        for id in (0..tok.vocab_size() as u32).step_by(97) {
            let text = tok.token_text(id);
            assert!(
                !text.is_empty() && !text.contains('\u{FFFD}'),
                "{id}: {text:?}"
            );
        }
        // Whole characters stay text (`é` is one token, ` 🙂` another); the three characters
        // of 日本語 are split over six tokens, shown as their bytes.
        let texts = |s: &str| -> Vec<String> {
            let ids = tok.encode(s).unwrap();
            ids.iter().map(|&id| tok.token_text(id)).collect()
        };
        assert_eq!(texts("café 🙂"), vec!["c", "af", "é", " 🙂"]);
        assert_eq!(
            texts("日本語").concat(),
            "\\xe6\\x97\\xa5\\xe6\\x9c\\xac\\xe8\\xaa\\x9e"
        );
        assert_eq!(tok.token_text(u32::MAX), format!("<id {}>", u32::MAX));
    }
}
