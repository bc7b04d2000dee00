//! The message as wasp knows it: ids, categories, priority classes, lifecycle states, and
//! the submission a business sends. Pure data shared by every part; owns no I/O.

pub mod content;
pub mod phone;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

pub use content::Content;
pub use phone::PhoneNumber;

/// A message id: UUIDv7, so ids sort by acceptance time and index cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub uuid::Uuid);

impl MessageId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for MessageId {
    type Err = uuid::Error;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(text).map(Self)
    }
}

/// Meta's id for a message it accepted (`wamid.…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Wamid(pub String);

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}, expected one of: {}",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Meta's conversation categories.
    Category {
        Authentication = "authentication",
        Utility = "utility",
        Marketing = "marketing",
        Service = "service",
    }
);

text_enum!(
    /// A sender number's quality rating, as Meta reports it (`unknown` until it has).
    Quality {
        Unknown = "unknown",
        Green = "green",
        Yellow = "yellow",
        Red = "red",
    }
);

// The variants come from `text_enum!`, which cannot mark one `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for Quality {
    fn default() -> Self {
        Quality::Unknown
    }
}

text_enum!(
    /// Dispatch classes, highest first.
    Priority {
        Critical = "critical",
        High = "high",
        Normal = "normal",
        Bulk = "bulk",
    }
);

text_enum!(
    /// Where a message leaves wasp.
    Channel {
        Whatsapp = "whatsapp",
        Sms = "sms",
    }
);

text_enum!(
    /// The lifecycle: `accepted → queued → (deferred) → sending → sent → delivered → read`,
    /// with `rejected`, `failed`, `expired`, `fell_back` and `cancelled` as ends.
    Status {
        Accepted = "accepted",
        Queued = "queued",
        Deferred = "deferred",
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Rejected = "rejected",
        Failed = "failed",
        Expired = "expired",
        FellBack = "fell_back",
        Cancelled = "cancelled",
    }
);

impl Priority {
    /// Sort key: lower goes first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Bulk => 3,
        }
    }

    /// The class a category gets when the submission names none.
    pub fn default_for(category: Category) -> Self {
        match category {
            Category::Authentication => Priority::Critical,
            Category::Utility => Priority::High,
            Category::Service => Priority::Normal,
            Category::Marketing => Priority::Bulk,
        }
    }
}

impl Status {
    /// Waiting in the store for the dispatcher.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Status::Accepted | Status::Queued | Status::Deferred | Status::Sending
        )
    }

    /// Nothing more happens to the message.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Read | Status::Rejected | Status::Failed | Status::Expired | Status::FellBack | Status::Cancelled
        )
    }

    /// Progress of a sent message as Meta reports it; statuses only move up this order,
    /// so a late or repeated webhook never moves a message backwards.
    pub fn delivery_rank(self) -> u8 {
        match self {
            Status::Accepted | Status::Queued | Status::Deferred => 0,
            Status::Sending => 1,
            Status::Sent => 2,
            Status::Delivered => 3,
            Status::Read => 4,
            Status::Rejected | Status::Failed | Status::Expired | Status::FellBack | Status::Cancelled => 5,
        }
    }
}

/// What `biz_opaque_callback_data` ends with for a sensitive message: the real Cloud API
/// keeps the field opaque (and echoes it on statuses); the simulator redacts such bodies.
pub const SENSITIVE_CALLBACK_SUFFIX: &str = ";sensitive";

/// The `biz_opaque_callback_data` a send carries: the message id, marked when it is sensitive.
pub fn callback_reference(id: MessageId, sensitive: bool) -> String {
    if sensitive {
        format!("{id}{SENSITIVE_CALLBACK_SUFFIX}")
    } else {
        id.to_string()
    }
}

/// The message id in a status's `biz_opaque_callback_data`, without the sensitive mark.
pub fn callback_message_ref(callback_data: &str) -> &str {
    callback_data
        .strip_suffix(SENSITIVE_CALLBACK_SUFFIX)
        .unwrap_or(callback_data)
}

/// A message as accepted from a business, before any policy has seen it.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub to: PhoneNumber,
    pub category: Category,
    pub priority: Priority,
    /// WhatsApp unless a plugin's follow-up asks for SMS.
    pub channel: Channel,
    pub idempotency_key: Option<String>,
    pub tags: Vec<String>,
    pub content: Content,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), *status);
        }
        assert!("shipped".parse::<Status>().unwrap_err().contains("expected one of"));
    }

    #[test]
    fn ids_sort_by_creation() {
        let first = MessageId::new();
        let second = MessageId::new();
        assert!(first < second);
    }

    #[test]
    fn a_sensitive_reference_still_names_its_message() {
        let id = MessageId::new();
        let plain = callback_reference(id, false);
        let marked = callback_reference(id, true);
        assert_eq!(plain, id.to_string());
        assert!(marked.ends_with(SENSITIVE_CALLBACK_SUFFIX));
        assert_eq!(callback_message_ref(&marked), plain);
        assert_eq!(callback_message_ref(&plain), plain);
    }

    #[test]
    fn delivery_rank_never_goes_back() {
        assert!(Status::Read.delivery_rank() > Status::Delivered.delivery_rank());
        assert!(Status::Delivered.delivery_rank() > Status::Sent.delivery_rank());
    }
}
