//! The sender facts policies see: the account's messaging tier, its numbers' quality rating
//! and its business-initiated sends over the last 24 hours.
//!
//! Tier and quality come from Meta's `phone_number_quality_update` webhooks or from an operator
//! (`PUT /v1/senders/{phone_number}`), kept in the store; before either has said anything the
//! tier is `channel.cloud_api.daily_tier_limit` (0: none known) and the quality `unknown`.
//! Since Meta counts messaging limits per business portfolio, the facts are the account's:
//! the smallest tier and the worst quality any number reported. Read at most once a second.
//! May call the store.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    message::Quality,
    store::{self, SenderNumber, Store},
};

/// How long the facts are reused before the store is read again.
const REFRESH: Duration = Duration::from_secs(1);

/// What a policy learns of the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SenderFacts {
    /// Business-initiated conversations allowed per 24 h; none: unlimited or not known.
    pub tier_limit: Option<u32>,
    pub quality: Quality,
    /// Business-initiated WhatsApp sends of the account in the last 24 hours.
    pub sent_24h: u32,
}

pub struct Senders {
    store: Store,
    configured_tier: Option<u32>,
    cached: Mutex<Option<(Instant, SenderFacts)>>,
}

impl Senders {
    pub fn new(store: Store, configured_tier_limit: u32) -> Self {
        Self {
            store,
            configured_tier: (configured_tier_limit > 0).then_some(configured_tier_limit),
            cached: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<SenderFacts> {
        let guard = self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < REFRESH)
            .map(|(_, facts)| *facts)
    }

    /// The facts now (at most [`REFRESH`] old).
    pub async fn facts(&self, now_ms: i64) -> store::Result<SenderFacts> {
        if let Some(facts) = self.cached() {
            return Ok(facts);
        }
        self.fresh_facts(now_ms).await
    }

    /// The facts read from the store now, for the admin API.
    pub async fn fresh_facts(&self, now_ms: i64) -> store::Result<SenderFacts> {
        let numbers = self.store.sender_numbers().await?;
        let facts = SenderFacts {
            sent_24h: self.store.account_sends_24h(now_ms).await?,
            ..self.combine(&numbers)
        };
        *self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), facts));
        Ok(facts)
    }

    /// The account's tier and quality from what its numbers reported.
    fn combine(&self, numbers: &[SenderNumber]) -> SenderFacts {
        if numbers.is_empty() {
            return SenderFacts {
                tier_limit: self.configured_tier,
                ..SenderFacts::default()
            };
        }
        let tier_limit = numbers.iter().filter_map(|number| number.tier_limit).min();
        let unlimited = numbers.iter().any(|number| number.tier_limit.is_none());
        let quality = numbers
            .iter()
            .map(|number| number.quality)
            .max_by_key(|quality| quality_rank(*quality))
            .unwrap_or(Quality::Unknown);
        SenderFacts {
            tier_limit: if unlimited && tier_limit.is_none() {
                None
            } else {
                tier_limit
            },
            quality,
            sent_24h: 0,
        }
    }

    pub async fn numbers(&self) -> store::Result<Vec<SenderNumber>> {
        self.store.sender_numbers().await
    }

    /// Records what Meta or an operator said of a number; the next read sees it.
    pub async fn record(&self, number: SenderNumber) -> store::Result<()> {
        self.store.put_sender_number(number).await?;
        *self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(())
    }

    /// [`Senders::record`] for an operator, with its audit row in the same transaction.
    pub async fn record_audited(&self, number: SenderNumber, audit: store::AuditEntry) -> store::Result<()> {
        self.store.put_sender_number_audited(number, audit).await?;
        *self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(())
    }

    /// Applies a `phone_number_quality_update` webhook: its `current_limit` sets the tier, its
    /// `event` moves the quality (`FLAGGED` and `DOWNGRADE`: red; `UNFLAGGED` and `UPGRADE`:
    /// green; others keep what was known).
    pub async fn quality_update(
        &self,
        phone_number: &str,
        event: Option<&str>,
        current_limit: Option<&str>,
        now_ms: i64,
    ) -> store::Result<()> {
        let known = self
            .store
            .sender_numbers()
            .await?
            .into_iter()
            .find(|number| number.phone_number == phone_number);
        let quality = match event {
            Some("FLAGGED" | "DOWNGRADE") => Quality::Red,
            Some("UNFLAGGED" | "UPGRADE") => Quality::Green,
            _ => known.as_ref().map_or(Quality::Unknown, |number| number.quality),
        };
        let tier_limit = match current_limit.map(parse_tier) {
            Some(Some(tier)) => tier,
            _ => known.as_ref().and_then(|number| number.tier_limit),
        };
        self.record(SenderNumber {
            phone_number: phone_number.to_owned(),
            tier_limit,
            quality,
            last_event: event.map(str::to_owned),
            source: "webhook".into(),
            updated_at_ms: now_ms,
        })
        .await
    }
}

fn quality_rank(quality: Quality) -> u8 {
    match quality {
        Quality::Unknown => 0,
        Quality::Green => 1,
        Quality::Yellow => 2,
        Quality::Red => 3,
    }
}

/// Meta's `current_limit` (`TIER_250`, `TIER_1K`, `TIER_UNLIMITED`, ...): `Some(None)` is
/// unlimited; `None` a value not understood.
pub fn parse_tier(text: &str) -> Option<Option<u32>> {
    let size = text.strip_prefix("TIER_")?;
    if size == "UNLIMITED" {
        return Some(None);
    }
    let (digits, multiplier) = match size.strip_suffix('K') {
        Some(digits) => (digits, 1_000),
        None => match size.strip_suffix('M') {
            Some(digits) => (digits, 1_000_000),
            None => (size, 1),
        },
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|count| count.checked_mul(multiplier))
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_tiers_parse() {
        assert_eq!(parse_tier("TIER_250"), Some(Some(250)));
        assert_eq!(parse_tier("TIER_1K"), Some(Some(1_000)));
        assert_eq!(parse_tier("TIER_2K"), Some(Some(2_000)));
        assert_eq!(parse_tier("TIER_100K"), Some(Some(100_000)));
        assert_eq!(parse_tier("TIER_UNLIMITED"), Some(None));
        assert_eq!(parse_tier("TIER_HUGE"), None);
        assert_eq!(parse_tier("250"), None);
    }

    #[tokio::test]
    async fn webhooks_move_tier_and_quality_and_the_account_takes_the_worst() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("wasp.db").display());
        let store = Store::open(&url, 1_000).await.unwrap();
        let senders = Senders::new(store, 250);
        let fresh = senders.facts(0).await.unwrap();
        assert_eq!((fresh.tier_limit, fresh.quality), (Some(250), Quality::Unknown));

        senders
            .quality_update("15550783881", Some("UPGRADE"), Some("TIER_10K"), 1)
            .await
            .unwrap();
        let upgraded = senders.facts(1).await.unwrap();
        assert_eq!((upgraded.tier_limit, upgraded.quality), (Some(10_000), Quality::Green));

        senders
            .quality_update("15550783882", Some("FLAGGED"), None, 2)
            .await
            .unwrap();
        let flagged = senders.facts(2).await.unwrap();
        assert_eq!((flagged.tier_limit, flagged.quality), (Some(10_000), Quality::Red));
        let numbers = senders.numbers().await.unwrap();
        assert_eq!(numbers.len(), 2);
        assert_eq!(numbers[0].last_event.as_deref(), Some("FLAGGED"));
    }
}
