//! How bodies look on the wire: Meta's JSON encoding and the webhook signature.
//!
//! Meta sends compact JSON that is ASCII only: every non-ASCII character is written as
//! a lowercase `\uXXXX` escape (a surrogate pair above U+FFFF) and `/` is written `\/`.
//! It signs exactly those bytes with HMAC-SHA256 under the app secret and sends the
//! result as `X-Hub-Signature-256: sha256=<lowercase hex>`. Owns both; calls nothing
//! else in the crate.

use std::io;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::error::{Error, Result};

/// Header that carries the webhook signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Prefix of the signature header value.
pub const SIGNATURE_PREFIX: &str = "sha256=";

/// Serialises `value` the way Meta does into `buffer` (appending).
pub fn write_meta_json<T: Serialize + ?Sized>(buffer: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    let mut serializer = serde_json::Serializer::with_formatter(buffer, MetaFormatter);
    value.serialize(&mut serializer)
}

/// Serialises `value` the way Meta does into a new buffer.
pub fn to_meta_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut buffer = Vec::with_capacity(256);
    write_meta_json(&mut buffer, value)?;
    Ok(buffer)
}

/// The `X-Hub-Signature-256` value for `body` signed with `app_secret`.
pub fn signature(app_secret: &str, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).map_err(|_| Error::SigningKey)?;
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut header = String::with_capacity(SIGNATURE_PREFIX.len() + digest.len() * 2);
    header.push_str(SIGNATURE_PREFIX);
    header.push_str(&hex::encode(digest));
    Ok(header)
}

/// serde_json formatter that writes compact, ASCII-only JSON with `/` escaped.
#[derive(Clone, Copy, Debug, Default)]
struct MetaFormatter;

impl serde_json::ser::Formatter for MetaFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (index, character) in fragment.char_indices() {
            if character.is_ascii() && character != '/' {
                continue;
            }
            writer.write_all(&bytes[start..index])?;
            if character == '/' {
                writer.write_all(b"\\/")?;
            } else {
                let mut units = [0u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    write_unicode_escape(writer, *unit)?;
                }
            }
            start = index + character.len_utf8();
        }
        writer.write_all(&bytes[start..])
    }
}

fn write_unicode_escape<W: ?Sized + io::Write>(writer: &mut W, unit: u16) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let escape = [
        b'\\',
        b'u',
        HEX[usize::from(unit >> 12)],
        HEX[usize::from((unit >> 8) & 0xf)],
        HEX[usize::from((unit >> 4) & 0xf)],
        HEX[usize::from(unit & 0xf)],
    ];
    writer.write_all(&escape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signature_matches_the_published_vector() {
        let header = signature(
            "test_app_secret",
            br#"{"object":"whatsapp_business_account","entry":[]}"#,
        )
        .expect("any key length is fine");
        assert_eq!(
            header,
            "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756"
        );
    }

    #[test]
    fn ascii_stays_compact_and_unchanged() {
        let body = to_meta_json(&json!({"a": "plain text", "b": [1, 2]})).expect("encodes");
        assert_eq!(body, br#"{"a":"plain text","b":[1,2]}"#);
    }

    #[test]
    fn slash_is_escaped() {
        let body = to_meta_json(&json!("https://developers.facebook.com/docs/")).expect("encodes");
        assert_eq!(body, br#""https:\/\/developers.facebook.com\/docs\/""#);
    }

    #[test]
    fn non_ascii_becomes_lowercase_escapes() {
        let body = to_meta_json(&json!("café ñ é")).expect("encodes");
        assert_eq!(body, br#""caf\u00e9 \u00f1 \u00e9""#);
        let body = to_meta_json(&json!("\u{4e2d}\u{fffd}")).expect("encodes");
        assert_eq!(body, br#""\u4e2d\ufffd""#);
    }

    #[test]
    fn astral_characters_become_surrogate_pairs() {
        let body = to_meta_json(&json!("hi 😮/👍🏽")).expect("encodes");
        assert_eq!(body, br#""hi \ud83d\ude2e\/\ud83d\udc4d\ud83c\udffd""#);
        assert!(body.is_ascii());
    }

    #[test]
    fn standard_escapes_are_kept() {
        let body = to_meta_json(&json!("a\"b\\c\nd\u{1}")).expect("encodes");
        assert_eq!(body, br#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn escaped_output_parses_back_to_the_same_value() {
        let value = json!({"name": "Zoë 😮", "url": "a/b", "k/ey": "ü"});
        let body = to_meta_json(&value).expect("encodes");
        let back: serde_json::Value = serde_json::from_slice(&body).expect("valid json");
        assert_eq!(back, value);
        assert!(body.windows(4).any(|w| w == br"k\/e"), "keys are escaped too");
    }
}
