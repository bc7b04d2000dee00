//! The facts a policy decides on, assembled into the plugin context for each call: the time,
//! the recipient's country, time zone and offset, and what the store knows of the contact
//! (first seen, last inbound, interactions, the 24-hour service window, opt-out, attributes).
//!
//! The time zone comes from a contact attribute when set, else from the number: the area
//! code for countries with several zones where it is known, else the country's main zone.
//! Sends per category over 24 hours and 7 days come from the store's hourly rollups, region
//! health from [`crate::regions`], the sender's tier, quality and daily volume from
//! [`crate::senders`], the shard's backlog from the dispatcher's last count, and degraded mode
//! from the health rules.

use crate::{
    message::{PhoneNumber, Quality},
    policy::wit,
    regions::RegionState,
    senders::SenderFacts,
    store::{CategoryCounts, Contact, SendCounts},
};

/// How long an inbound message keeps the customer-service window open.
pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1_000;

/// Main IANA zone by country calling code.
const COUNTRY_ZONES: &[(u16, &str)] = &[
    (1, "America/New_York"),
    (7, "Europe/Moscow"),
    (20, "Africa/Cairo"),
    (27, "Africa/Johannesburg"),
    (30, "Europe/Athens"),
    (31, "Europe/Amsterdam"),
    (32, "Europe/Brussels"),
    (33, "Europe/Paris"),
    (34, "Europe/Madrid"),
    (36, "Europe/Budapest"),
    (39, "Europe/Rome"),
    (40, "Europe/Bucharest"),
    (41, "Europe/Zurich"),
    (43, "Europe/Vienna"),
    (44, "Europe/London"),
    (45, "Europe/Copenhagen"),
    (46, "Europe/Stockholm"),
    (47, "Europe/Oslo"),
    (48, "Europe/Warsaw"),
    (49, "Europe/Berlin"),
    (51, "America/Lima"),
    (52, "America/Mexico_City"),
    (53, "America/Havana"),
    (54, "America/Argentina/Buenos_Aires"),
    (55, "America/Sao_Paulo"),
    (56, "America/Santiago"),
    (57, "America/Bogota"),
    (58, "America/Caracas"),
    (60, "Asia/Kuala_Lumpur"),
    (61, "Australia/Sydney"),
    (62, "Asia/Jakarta"),
    (63, "Asia/Manila"),
    (64, "Pacific/Auckland"),
    (65, "Asia/Singapore"),
    (66, "Asia/Bangkok"),
    (81, "Asia/Tokyo"),
    (82, "Asia/Seoul"),
    (84, "Asia/Ho_Chi_Minh"),
    (86, "Asia/Shanghai"),
    (90, "Europe/Istanbul"),
    (91, "Asia/Kolkata"),
    (92, "Asia/Karachi"),
    (93, "Asia/Kabul"),
    (94, "Asia/Colombo"),
    (95, "Asia/Yangon"),
    (98, "Asia/Tehran"),
    (212, "Africa/Casablanca"),
    (213, "Africa/Algiers"),
    (216, "Africa/Tunis"),
    (233, "Africa/Accra"),
    (234, "Africa/Lagos"),
    (254, "Africa/Nairobi"),
    (255, "Africa/Dar_es_Salaam"),
    (256, "Africa/Kampala"),
    (351, "Europe/Lisbon"),
    (352, "Europe/Luxembourg"),
    (353, "Europe/Dublin"),
    (354, "Atlantic/Reykjavik"),
    (358, "Europe/Helsinki"),
    (359, "Europe/Sofia"),
    (380, "Europe/Kyiv"),
    (420, "Europe/Prague"),
    (421, "Europe/Bratislava"),
    (852, "Asia/Hong_Kong"),
    (880, "Asia/Dhaka"),
    (886, "Asia/Taipei"),
    (962, "Asia/Amman"),
    (965, "Asia/Kuwait"),
    (966, "Asia/Riyadh"),
    (971, "Asia/Dubai"),
    (972, "Asia/Jerusalem"),
    (974, "Asia/Qatar"),
    (977, "Asia/Kathmandu"),
];

/// Zones by national prefix, for countries that span several (longest prefix wins).
const AREA_ZONES: &[(u16, &str, &str)] = &[
    // United States and Canada, by area code.
    (1, "206", "America/Los_Angeles"),
    (1, "213", "America/Los_Angeles"),
    (1, "310", "America/Los_Angeles"),
    (1, "415", "America/Los_Angeles"),
    (1, "604", "America/Vancouver"),
    (1, "303", "America/Denver"),
    (1, "480", "America/Phoenix"),
    (1, "602", "America/Phoenix"),
    (1, "312", "America/Chicago"),
    (1, "214", "America/Chicago"),
    (1, "713", "America/Chicago"),
    (1, "403", "America/Edmonton"),
    (1, "808", "Pacific/Honolulu"),
    (1, "907", "America/Anchorage"),
    // Australia, by the first digit after the country code.
    (61, "8", "Australia/Perth"),
    (61, "7", "Australia/Brisbane"),
    (61, "3", "Australia/Melbourne"),
    // Indonesia: Bali and Makassar (WITA), Jayapura (WIT).
    (62, "361", "Asia/Makassar"),
    (62, "411", "Asia/Makassar"),
    (62, "967", "Asia/Jayapura"),
    // Brazil: Manaus.
    (55, "92", "America/Manaus"),
    // Mexico: Tijuana.
    (52, "664", "America/Tijuana"),
    // Russia: Yekaterinburg, Novosibirsk, Vladivostok.
    (7, "343", "Asia/Yekaterinburg"),
    (7, "383", "Asia/Novosibirsk"),
    (7, "423", "Asia/Vladivostok"),
];

/// The IANA zone of a number: its area's where known, else its country's main zone, else UTC.
pub fn zone_for(number: &PhoneNumber) -> &'static str {
    let Some(country) = number.country_code() else {
        return "UTC";
    };
    let national = &number.digits()[country.to_string().len()..];
    let by_area = AREA_ZONES
        .iter()
        .filter(|(code, prefix, _)| *code == country && national.starts_with(prefix))
        .max_by_key(|(_, prefix, _)| prefix.len())
        .map(|(_, _, zone)| *zone);
    by_area
        .or_else(|| {
            COUNTRY_ZONES
                .iter()
                .find(|(code, _)| *code == country)
                .map(|(_, zone)| *zone)
        })
        .unwrap_or("UTC")
}

/// Whether `name` is a time zone this host knows.
pub fn is_known_zone(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

/// The offset of `zone` from UTC at `now_ms`, in minutes (0 for an unknown zone).
pub fn utc_offset_minutes(zone: &str, now_ms: i64) -> i32 {
    let Ok(time_zone) = jiff::tz::TimeZone::get(zone) else {
        return 0;
    };
    let Ok(instant) = jiff::Timestamp::from_millisecond(now_ms) else {
        return 0;
    };
    time_zone.to_offset(instant).seconds() / 60
}

/// Everything known for one call; what is missing reads as nothing known.
#[derive(Clone, Copy, Default)]
pub struct Known<'a> {
    pub to: Option<&'a PhoneNumber>,
    pub contact: Option<&'a Contact>,
    pub sends: Option<&'a SendCounts>,
    pub region: Option<&'a RegionState>,
    /// The phone number id messages leave from.
    pub sender: &'a str,
    pub sender_facts: SenderFacts,
    pub shard: u16,
    pub shard_backlog: u32,
    /// The node is shedding load (a health rule put it in degraded mode).
    pub degraded_mode: bool,
}

fn wit_counts(counts: &CategoryCounts) -> wit::CategoryCounts {
    wit::CategoryCounts {
        authentication: counts.authentication,
        utility: counts.utility,
        marketing: counts.marketing,
        service: counts.service,
    }
}

fn wit_quality(quality: Quality) -> wit::Quality {
    match quality {
        Quality::Unknown => wit::Quality::Unknown,
        Quality::Green => wit::Quality::Green,
        Quality::Yellow => wit::Quality::Yellow,
        Quality::Red => wit::Quality::Red,
    }
}

pub fn context(known: &Known<'_>, now_ms: i64) -> wit::Context {
    let Known {
        to, contact, region, ..
    } = *known;
    let sends = known.sends.copied().unwrap_or_default();
    let country_code = to.and_then(PhoneNumber::country_code).unwrap_or(0);
    let time_zone = contact
        .and_then(|contact| contact.attributes.time_zone.clone())
        .unwrap_or_else(|| to.map_or("UTC", zone_for).to_owned());
    let last_inbound_ms = contact.and_then(|contact| contact.last_inbound_ms);
    let mut attributes = Vec::new();
    if let Some(contact) = contact {
        if let Some(language) = &contact.attributes.language {
            attributes.push(("language".to_owned(), language.clone()));
        }
        attributes.extend(
            contact
                .attributes
                .tags
                .iter()
                .map(|tag| ("tag".to_owned(), tag.clone())),
        );
    }
    wit::Context {
        now_ms,
        recipient: wit::RecipientFacts {
            country_code,
            utc_offset_minutes: utc_offset_minutes(&time_zone, now_ms),
            time_zone,
            first_seen_ms: contact.map(|contact| contact.first_seen_ms),
            last_inbound_ms,
            interactions: contact.map_or(0, |contact| contact.interactions),
            service_window_open: last_inbound_ms.is_some_and(|at| now_ms - at < SERVICE_WINDOW_MS),
            sent24h: wit_counts(&sends.last_24h),
            sent7d: wit_counts(&sends.last_7d),
            opted_out: contact.is_some_and(|contact| contact.opted_out),
            device_hints: contact
                .map(|contact| contact.attributes.device_hints.clone())
                .unwrap_or_default(),
            attributes,
        },
        sender: wit::SenderFacts {
            phone_number_id: known.sender.to_owned(),
            tier_limit: known.sender_facts.tier_limit,
            quality: wit_quality(known.sender_facts.quality),
            sent24h: known.sender_facts.sent_24h,
        },
        region: wit::RegionHealth {
            country_code,
            error_rate: region.map_or(0.0, |region| region.error_rate as f32),
            p50_latency_ms: region.map_or(0, |region| region.p50_latency_ms),
            degraded: region.is_some_and(|region| region.degraded),
        },
        shard: known.shard,
        shard_backlog: known.shard_backlog,
        degraded_mode: known.degraded_mode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ContactAttributes;

    fn number(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).unwrap()
    }

    #[test]
    fn zones_come_from_the_area_then_the_country() {
        assert_eq!(zone_for(&number("+6591234567")), "Asia/Singapore");
        assert_eq!(zone_for(&number("+14155550100")), "America/Los_Angeles");
        assert_eq!(zone_for(&number("+12125550100")), "America/New_York");
        assert_eq!(zone_for(&number("+61812345678")), "Australia/Perth");
        assert_eq!(zone_for(&number("+61212345678")), "Australia/Sydney");
        assert_eq!(zone_for(&number("+37060012345")), "UTC");
        for (_, zone) in COUNTRY_ZONES {
            assert!(is_known_zone(zone), "{zone}");
        }
        for (_, _, zone) in AREA_ZONES {
            assert!(is_known_zone(zone), "{zone}");
        }
    }

    #[test]
    fn offsets_follow_daylight_saving() {
        // 2026-01-15 and 2026-07-15, noon UTC.
        let winter = 1_768_478_400_000;
        let summer = 1_784_116_800_000;
        assert_eq!(utc_offset_minutes("Europe/Berlin", winter), 60);
        assert_eq!(utc_offset_minutes("Europe/Berlin", summer), 120);
        assert_eq!(utc_offset_minutes("Asia/Kolkata", winter), 330);
        assert_eq!(utc_offset_minutes("Asia/Singapore", summer), 480);
        assert_eq!(utc_offset_minutes("Nowhere/Atlantis", summer), 0);
    }

    #[test]
    fn contact_facts_reach_the_context() {
        let now = 1_784_116_800_000;
        let contact = Contact {
            wa_id: "4915112345678".into(),
            first_seen_ms: now - 10 * SERVICE_WINDOW_MS,
            last_inbound_ms: Some(now - 1_000),
            interactions: 3,
            opted_out: false,
            attributes: ContactAttributes {
                time_zone: Some("Asia/Tokyo".into()),
                device_hints: vec!["old-device".into()],
                ..ContactAttributes::default()
            },
            updated_at_ms: now,
        };
        let region = RegionState {
            country_code: 49,
            error_rate: 0.4,
            samples: 50,
            p50_latency_ms: 80,
            degraded: true,
            changed_at_ms: Some(now),
        };
        let mut sends = SendCounts::default();
        sends.last_24h.add(crate::message::Category::Marketing, 1);
        sends.last_7d.add(crate::message::Category::Marketing, 4);
        let to = number("+4915112345678");
        let context = context(
            &Known {
                to: Some(&to),
                contact: Some(&contact),
                sends: Some(&sends),
                region: Some(&region),
                sender: "100",
                sender_facts: SenderFacts {
                    tier_limit: Some(1_000),
                    quality: Quality::Yellow,
                    sent_24h: 640,
                },
                shard: 7,
                shard_backlog: 12,
                degraded_mode: true,
            },
            now,
        );
        assert!(context.degraded_mode);
        assert_eq!(context.recipient.sent24h.marketing, 1);
        assert_eq!(context.recipient.sent7d.marketing, 4);
        assert_eq!(context.sender.tier_limit, Some(1_000));
        assert_eq!(context.sender.quality, wit::Quality::Yellow);
        assert_eq!(context.sender.sent24h, 640);
        assert_eq!((context.shard, context.shard_backlog), (7, 12));
        assert!(context.region.degraded);
        assert_eq!(context.region.p50_latency_ms, 80);
        assert_eq!(context.recipient.country_code, 49);
        assert_eq!(context.recipient.time_zone, "Asia/Tokyo");
        assert_eq!(context.recipient.utc_offset_minutes, 540);
        assert!(context.recipient.service_window_open);
        assert_eq!(context.recipient.interactions, 3);
        assert_eq!(context.recipient.device_hints, vec!["old-device".to_owned()]);
        let stranger = super::context(
            &Known {
                to: Some(&to),
                sender: "100",
                ..Known::default()
            },
            now,
        );
        assert_eq!(stranger.recipient.sent24h.marketing, 0);
        assert_eq!(stranger.recipient.time_zone, "Europe/Berlin");
        assert!(!stranger.recipient.service_window_open);
        assert!(!stranger.degraded_mode);
    }
}
