//! WhatsApp message ids (`wamid.…`) shaped like Meta's and unique for the process.
//!
//! A real wamid is `wamid.` + base64 of a small binary record: the peer's number and a
//! hex message id. Outbound ids carry marker `0x11` and an 18-digit id, inbound ones
//! `0x12` and a 20-digit id starting `3A`. Here the id is a random per-process salt
//! followed by a counter, so ids never repeat within a process. Owns the generator and
//! calls nothing else in the crate.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;

/// Prefix of every message id.
pub const WAMID_PREFIX: &str = "wamid.";

const OUTBOUND_MARKER: u8 = 0x11;
const INBOUND_MARKER: u8 = 0x12;
/// Counter bits that fit in the 10 hex digits after the 8-digit salt.
const COUNTER_MASK: u64 = 0xff_ffff_ffff;

/// Hands out unique wamids.
#[derive(Debug)]
pub struct WamidGenerator {
    salt: u32,
    next: AtomicU64,
}

impl Default for WamidGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl WamidGenerator {
    /// A generator with a random salt, so two processes rarely collide either.
    pub fn new() -> Self {
        Self::with_salt(rand::random())
    }

    /// A generator with a fixed salt (for tests).
    pub fn with_salt(salt: u32) -> Self {
        Self {
            salt,
            next: AtomicU64::new(1),
        }
    }

    /// A new id for a message the business sends to `recipient_digits`.
    pub fn outbound(&self, recipient_digits: &str) -> String {
        let id = format!("{:08X}{:010X}", self.salt, self.next_counter());
        encode(OUTBOUND_MARKER, recipient_digits, &id)
    }

    /// A new id for a message `sender_digits` sends to the business.
    pub fn inbound(&self, sender_digits: &str) -> String {
        let id = format!("3A{:08X}{:010X}", self.salt, self.next_counter());
        encode(INBOUND_MARKER, sender_digits, &id)
    }

    fn next_counter(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) & COUNTER_MASK
    }
}

fn encode(marker: u8, phone_digits: &str, id: &str) -> String {
    let phone = &phone_digits.as_bytes()[..phone_digits.len().min(usize::from(u8::MAX))];
    let mut record = Vec::with_capacity(phone.len() + id.len() + 10);
    record.extend_from_slice(&[0x1c, 0x18, phone.len() as u8]);
    record.extend_from_slice(phone);
    record.extend_from_slice(&[0x15, 0x02, 0x00, marker, 0x18, id.len() as u8]);
    record.extend_from_slice(id.as_bytes());
    record.push(0x00);
    let mut wamid = String::with_capacity(WAMID_PREFIX.len() + record.len().div_ceil(3) * 4);
    wamid.push_str(WAMID_PREFIX);
    base64::engine::general_purpose::STANDARD.encode_string(&record, &mut wamid);
    wamid
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn record_layout_reproduces_real_wamids() {
        // Ids from Meta's documented webhooks, rebuilt from their parts.
        assert_eq!(
            encode(INBOUND_MARKER, "16503879439", "3AADF8441347E8571C10"),
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
        );
        assert_eq!(
            encode(OUTBOUND_MARKER, "16503879439", "4AD62084F2FA1632DE"),
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"
        );
    }

    #[test]
    fn ids_are_unique_and_shaped_like_metas() {
        let generator = WamidGenerator::with_salt(0xdead_beef);
        let ids: HashSet<String> = (0..10_000).map(|_| generator.outbound("6281234567890")).collect();
        assert_eq!(ids.len(), 10_000);
        let id = generator.outbound("16505551234");
        assert!(id.starts_with("wamid.HBgLMTY1MDU1NTEyMzQVAgAR"), "{id}");
        let inbound = generator.inbound("16505551234");
        assert!(inbound.starts_with("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz"), "{inbound}");
    }
}
