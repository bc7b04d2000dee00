//! Sensitive message bodies at rest: AES-256-GCM under named keys, so keys rotate (a new
//! active key seals new bodies while every configured key still opens the bodies it sealed).
//!
//! A sealed body is one text value, stored where the JSON body would be:
//! `wasp-aes256gcm-v1:<key id>:<base64url, no padding, of nonce (12 random bytes) ‖ ciphertext ‖ tag>`.
//! The message id and the column (`content`, `content_sent`) are the associated data, so a
//! sealed body cannot be moved to another message or column unnoticed. Owns no I/O; calls
//! nothing else in wasp.

use std::collections::{BTreeMap, HashMap};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine as _, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::message::{Content, MessageId, content::TextBody};

/// What every sealed body starts with: the format and its version.
pub const SEALED_PREFIX: &str = "wasp-aes256gcm-v1";
/// Bytes of an AES-256 key.
pub const KEY_BYTES: usize = 32;
/// Bytes of a GCM nonce (96 bits), drawn at random for every body sealed.
const NONCE_BYTES: usize = 12;
/// Domain separation of the subkey a key's digests are keyed with.
const DIGEST_LABEL: &[u8] = b"wasp request hash v1\0";
/// Most characters of a key id; ids are letters, digits, `-` and `_`.
pub const MAX_KEY_ID_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no encryption key is configured (store.encryption_keys and store.active_key_id)")]
    NoActiveKey,
    #[error("encryption key {0:?} is not configured (store.encryption_keys): the body cannot be decrypted")]
    UnknownKey(String),
    #[error("the stored body is not a sealed body this build reads: {0}")]
    Malformed(&'static str),
    #[error("the body does not decrypt under key {0:?}: the key is wrong or the data was altered")]
    Undecryptable(String),
    #[error("encryption key {id:?}: {message}")]
    BadKey { id: String, message: String },
}

/// Checks one configured key: its id and its base64 text. The key itself never appears in
/// an error.
pub fn decode_key(id: &str, base64_key: &str) -> Result<[u8; KEY_BYTES], SealError> {
    if id.is_empty()
        || id.chars().count() > MAX_KEY_ID_CHARS
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(SealError::BadKey {
            id: id.to_owned(),
            message: format!("a key id is 1 to {MAX_KEY_ID_CHARS} letters, digits, '-' or '_'"),
        });
    }
    let bytes = STANDARD
        .decode(base64_key.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(base64_key.trim()))
        .map_err(|_| SealError::BadKey {
            id: id.to_owned(),
            message: "is not base64".into(),
        })?;
    <[u8; KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| SealError::BadKey {
        id: id.to_owned(),
        message: format!("must be {KEY_BYTES} bytes (base64), not {}", bytes.len()),
    })
}

/// The configured keys, by id, and the one that seals new bodies.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: HashMap<String, Aes256Gcm>,
    /// Per key, a subkey for keyed digests (sha256 of a label and the key), never the key.
    digest_keys: HashMap<String, [u8; 32]>,
    active: Option<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        formatter
            .debug_struct("Keyring")
            .field("key_ids", &ids)
            .field("active", &self.active)
            .finish()
    }
}

impl Keyring {
    /// From `store.encryption_keys` (id → base64 of 32 bytes) and `store.active_key_id`.
    pub fn new(keys: &BTreeMap<String, String>, active: Option<&str>) -> Result<Self, SealError> {
        let mut ring = HashMap::with_capacity(keys.len());
        let mut digest_keys = HashMap::with_capacity(keys.len());
        for (id, text) in keys {
            let key = decode_key(id, text)?;
            ring.insert(id.clone(), Aes256Gcm::new(&key.into()));
            let mut subkey = Sha256::new();
            subkey.update(DIGEST_LABEL);
            subkey.update(key);
            digest_keys.insert(id.clone(), subkey.finalize().into());
        }
        if let Some(active) = active
            && !ring.contains_key(active)
        {
            return Err(SealError::BadKey {
                id: active.to_owned(),
                message: "store.active_key_id names no key of store.encryption_keys".into(),
            });
        }
        Ok(Self {
            keys: ring,
            digest_keys,
            active: active.map(str::to_owned),
        })
    }

    /// A digest of `text` keyed by the active key (`<key id>:<hex HMAC-SHA256>`): what a
    /// sensitive message's request hash is stored as, so a short body (a one-time code) cannot
    /// be found from its plain sha256 by trying every value.
    pub fn keyed_digest(&self, text: &str) -> Result<String, SealError> {
        let id = self.active.as_deref().ok_or(SealError::NoActiveKey)?;
        let key = self
            .digest_keys
            .get(id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| SealError::BadKey {
            id: id.to_owned(),
            message: "unusable for a digest".into(),
        })?;
        mac.update(text.as_bytes());
        Ok(format!("{id}:{}", hex::encode(mac.finalize().into_bytes())))
    }

    /// Whether a sensitive body can be stored now.
    pub fn can_seal(&self) -> bool {
        self.active.is_some()
    }

    /// Seals `plaintext` under the active key with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Result<String, SealError> {
        let id = self.active.as_deref().ok_or(SealError::NoActiveKey)?;
        let cipher = self.keys.get(id).ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .map_err(|_| SealError::Undecryptable(id.to_owned()))?;
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}:{id}:{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Opens a body sealed by [`Keyring::seal`] under any configured key.
    pub fn open(&self, sealed: &str, associated: &[u8]) -> Result<Vec<u8>, SealError> {
        let (id, data) = key_id_of(sealed)?;
        let cipher = self.keys.get(id).ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SealError::Malformed("the data is not base64"))?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(SealError::Malformed("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated,
                },
            )
            .map_err(|_| SealError::Undecryptable(id.to_owned()))
    }
}

/// The key id a sealed body names, and its data.
pub fn key_id_of(sealed: &str) -> Result<(&str, &str), SealError> {
    let rest = sealed
        .strip_prefix(SEALED_PREFIX)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or(SealError::Malformed("unknown format"))?;
    rest.split_once(':').ok_or(SealError::Malformed("no key id"))
}

/// The associated data of one body: the message and the column it belongs to.
pub fn associated_data(id: MessageId, column: &str) -> Vec<u8> {
    format!("{id}/{column}").into_bytes()
}

/// What the store does with sensitive bodies: the keys, and how long a body is kept at most.
#[derive(Debug, Clone)]
pub struct Sealing {
    pub keyring: Keyring,
    /// A sensitive body is purged this long after acceptance whatever its status (a message
    /// not sent by then ends `expired` first).
    pub sensitive_ttl_ms: u64,
}

impl Default for Sealing {
    fn default() -> Self {
        Self {
            keyring: Keyring::default(),
            sensitive_ttl_ms: crate::config::DEFAULT_SENSITIVE_TTL_MS,
        }
    }
}

impl Sealing {
    /// The TTL in ms as the store's times are kept.
    pub fn ttl_ms(&self) -> i64 {
        i64::try_from(self.sensitive_ttl_ms).unwrap_or(i64::MAX)
    }

    /// Seals a content for `column` of message `id`.
    pub fn seal_content(&self, id: MessageId, column: &str, content: &Content) -> Result<String, SealError> {
        let plaintext = serde_json::to_vec(content).map_err(|_| SealError::Malformed("unserialisable content"))?;
        self.keyring.seal(&plaintext, &associated_data(id, column))
    }

    /// Opens a sealed content of `column` of message `id`.
    pub fn open_content(&self, id: MessageId, column: &str, sealed: &str) -> Result<Content, SealError> {
        let plaintext = self.keyring.open(sealed, &associated_data(id, column))?;
        serde_json::from_slice(&plaintext).map_err(|_| SealError::Malformed("the decrypted body is not a content"))
    }
}

/// Stands in for a body that is not there (purged) or cannot be read: an empty text. Never
/// sent: a purged message has left or ended, an unreadable one ends `failed`.
pub fn placeholder_content() -> Content {
    Content::Text {
        text: TextBody {
            body: String::new(),
            preview_url: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY_BYTES])
    }

    fn ring(keys: &[(&str, u8)], active: Option<&str>) -> Keyring {
        let keys = keys.iter().map(|(id, byte)| ((*id).to_owned(), key(*byte))).collect();
        Keyring::new(&keys, active).unwrap()
    }

    #[test]
    fn a_body_round_trips_and_names_its_key() {
        let keyring = ring(&[("k1", 1)], Some("k1"));
        let sealed = keyring.seal(b"your code is 123456", b"m/content").unwrap();
        assert!(sealed.starts_with("wasp-aes256gcm-v1:k1:"), "{sealed}");
        assert!(!sealed.contains("123456"));
        assert_eq!(keyring.open(&sealed, b"m/content").unwrap(), b"your code is 123456");
        // A fresh nonce each time.
        assert_ne!(sealed, keyring.seal(b"your code is 123456", b"m/content").unwrap());
    }

    #[test]
    fn rotation_keeps_old_bodies_readable() {
        let before = ring(&[("k1", 1)], Some("k1"));
        let old = before.seal(b"old", b"a").unwrap();
        let after = ring(&[("k1", 1), ("k2", 2)], Some("k2"));
        let new = after.seal(b"new", b"a").unwrap();
        assert_eq!(key_id_of(&new).unwrap().0, "k2");
        assert_eq!(after.open(&old, b"a").unwrap(), b"old");
        assert_eq!(after.open(&new, b"a").unwrap(), b"new");
        assert_eq!(before.open(&new, b"a"), Err(SealError::UnknownKey("k2".into())));
    }

    #[test]
    fn a_missing_or_wrong_key_or_moved_body_is_an_error() {
        let keyring = ring(&[("k1", 1)], Some("k1"));
        let sealed = keyring.seal(b"secret", b"m1/content").unwrap();
        let gone = ring(&[("k9", 9)], Some("k9"));
        assert_eq!(
            gone.open(&sealed, b"m1/content"),
            Err(SealError::UnknownKey("k1".into()))
        );
        let wrong = ring(&[("k1", 7)], Some("k1"));
        assert_eq!(
            wrong.open(&sealed, b"m1/content"),
            Err(SealError::Undecryptable("k1".into()))
        );
        assert_eq!(
            keyring.open(&sealed, b"m2/content"),
            Err(SealError::Undecryptable("k1".into()))
        );
        assert!(matches!(
            keyring.open("{\"type\":\"text\"}", b""),
            Err(SealError::Malformed(_))
        ));
        assert_eq!(Keyring::default().seal(b"x", b""), Err(SealError::NoActiveKey));
    }

    #[test]
    fn keyed_digests_depend_on_the_key_and_name_it() {
        let one = ring(&[("k1", 1)], Some("k1"));
        let digest = one.keyed_digest("abc").unwrap();
        assert!(digest.starts_with("k1:"));
        assert_eq!(digest, one.keyed_digest("abc").unwrap());
        assert_ne!(digest, one.keyed_digest("abd").unwrap());
        assert_ne!(digest, ring(&[("k1", 2)], Some("k1")).keyed_digest("abc").unwrap());
        assert_eq!(Keyring::default().keyed_digest("abc"), Err(SealError::NoActiveKey));
    }

    #[test]
    fn keys_are_checked_without_showing_them() {
        let short = BTreeMap::from([("k1".to_owned(), STANDARD.encode([1u8; 16]))]);
        let error = Keyring::new(&short, Some("k1")).unwrap_err().to_string();
        assert!(error.contains("32 bytes"), "{error}");
        let bad_id = BTreeMap::from([("k 1".to_owned(), key(1))]);
        assert!(Keyring::new(&bad_id, None).is_err());
        let no_such_active = BTreeMap::from([("k1".to_owned(), key(1))]);
        let error = Keyring::new(&no_such_active, Some("k2")).unwrap_err().to_string();
        assert!(error.contains("active_key_id"), "{error}");
        assert!(!format!("{:?}", ring(&[("k1", 1)], Some("k1"))).contains(&key(1)));
    }
}
