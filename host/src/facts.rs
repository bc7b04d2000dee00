//! The facts a policy decides on, assembled into the plugin context for each call.
//!
//! This version knows the time, the recipient's country (from the number) and shard, and the
//! sender; contact history, sender tiers and region health are not tracked yet and read as
//! empty (no interactions, unknown quality, healthy region).

use crate::{message::PhoneNumber, policy::wit};

pub fn context(to: Option<&PhoneNumber>, sender: &str, shard: u16, now_ms: i64) -> wit::Context {
    let empty_counts = wit::CategoryCounts {
        authentication: 0,
        utility: 0,
        marketing: 0,
        service: 0,
    };
    let country_code = to.and_then(PhoneNumber::country_code).unwrap_or(0);
    wit::Context {
        now_ms,
        recipient: wit::RecipientFacts {
            country_code,
            time_zone: "UTC".into(),
            utc_offset_minutes: 0,
            first_seen_ms: None,
            last_inbound_ms: None,
            interactions: 0,
            service_window_open: false,
            sent24h: empty_counts,
            sent7d: empty_counts,
            opted_out: false,
            device_hints: Vec::new(),
            attributes: Vec::new(),
        },
        sender: wit::SenderFacts {
            phone_number_id: sender.to_owned(),
            tier_limit: None,
            quality: wit::Quality::Unknown,
            sent24h: 0,
        },
        region: wit::RegionHealth {
            country_code,
            error_rate: 0.0,
            p50_latency_ms: 0,
            degraded: false,
        },
        shard,
        shard_backlog: 0,
        degraded_mode: false,
    }
}
