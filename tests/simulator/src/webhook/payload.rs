//! Webhook bodies in Meta's shape, field for field and in Meta's key order: status
//! batches (grouped into one `changes` item per phone number id) and inbound messages.
//!
//! Owns the body types and `StatusError` (the `errors[]` of a `failed` status). Calls
//! `wire` to encode; the bytes returned are the bytes to sign and post.

use serde::{Serialize, Serializer};

use super::schedule::{StatusKind, StatusUpdate};
use crate::config::SimulatorConfig;
use crate::inbound::{Inbound, InboundContent};
use crate::templates::review::RejectionInfo;
use crate::templates::{Template, TemplateStatus, rejection_info};
use crate::wire;

/// Where Meta's status errors point.
pub const ERROR_CODES_HREF: &str = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/";

/// One entry of a failed status's `errors[]`.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct StatusError {
    /// Meta error code.
    pub code: u32,
    /// Short title.
    pub title: &'static str,
    /// Message (Meta repeats the title).
    pub message: &'static str,
    /// `error_data`.
    pub error_data: StatusErrorData,
    /// Link to Meta's error code page.
    pub href: &'static str,
}

/// `error_data` of a status error.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct StatusErrorData {
    /// Longer explanation.
    pub details: &'static str,
}

/// 131026, what recipients matching `failing_prefixes` get.
pub const UNDELIVERABLE: StatusError = StatusError {
    code: 131026,
    title: "Message undeliverable",
    message: "Message undeliverable",
    error_data: StatusErrorData {
        details: "Message Undeliverable.",
    },
    href: ERROR_CODES_HREF,
};

/// 131000, Meta's generic failure ("Message failed to send because of an unknown error").
pub const SOMETHING_WENT_WRONG: StatusError = StatusError {
    code: 131000,
    title: "Something went wrong",
    message: "Something went wrong",
    error_data: StatusErrorData {
        details: "Message failed to send because of an unknown error. Try again later.",
    },
    href: ERROR_CODES_HREF,
};

/// 131047, as in Meta's samples: more than 24 hours since the customer last wrote.
pub const RE_ENGAGEMENT: StatusError = StatusError {
    code: 131047,
    title: "Re-engagement message",
    message: "Re-engagement message",
    error_data: StatusErrorData {
        details: "Message failed to send because more than 24 hours have passed since the \
                  customer last replied to this number.",
    },
    href: ERROR_CODES_HREF,
};

/// 131049, as in Meta's samples: the per-user marketing limit.
pub const ECOSYSTEM_ENGAGEMENT: StatusError = StatusError {
    code: 131049,
    title: "This message was not delivered to maintain healthy ecosystem engagement.",
    message: "This message was not delivered to maintain healthy ecosystem engagement.",
    error_data: StatusErrorData {
        details: "In order to maintain a healthy ecosystem engagement, the message failed to \
                  be delivered.",
    },
    href: ERROR_CODES_HREF,
};

/// 130472, as in Meta's samples: the recipient is part of an experiment.
pub const EXPERIMENT: StatusError = StatusError {
    code: 130472,
    title: "User's number is part of an experiment",
    message: "User's number is part of an experiment",
    error_data: StatusErrorData {
        details: "Failed to send message because this user's phone number is part of an experiment",
    },
    href: ERROR_CODES_HREF,
};

/// The codes a `failed` status can carry (`failing_region_error_code`).
pub const FAILURE_CODES: [u32; 5] = [
    UNDELIVERABLE.code,
    SOMETHING_WENT_WRONG.code,
    RE_ENGAGEMENT.code,
    ECOSYSTEM_ENGAGEMENT.code,
    EXPERIMENT.code,
];

/// The `errors[0]` of a `failed` status with this code, when the simulator knows it
/// (see [`FAILURE_CODES`]).
pub fn status_error(code: u32) -> Option<&'static StatusError> {
    match code {
        131026 => Some(&UNDELIVERABLE),
        131000 => Some(&SOMETHING_WENT_WRONG),
        131047 => Some(&RE_ENGAGEMENT),
        131049 => Some(&ECOSYSTEM_ENGAGEMENT),
        130472 => Some(&EXPERIMENT),
        _ => None,
    }
}

/// Pricing block on `sent`, `delivered` and `read` statuses.
#[derive(Serialize)]
struct Pricing {
    billable: bool,
    pricing_model: &'static str,
    #[serde(rename = "type")]
    pricing_type: &'static str,
    category: &'static str,
}

const PRICING: Pricing = Pricing {
    billable: true,
    pricing_model: "PMP",
    pricing_type: "regular",
    category: "utility",
};

#[derive(Serialize)]
struct Envelope<'a, V> {
    object: &'static str,
    entry: [Entry<'a, V>; 1],
}

#[derive(Serialize)]
struct Entry<'a, V> {
    id: &'a str,
    changes: Vec<Change<V>>,
}

#[derive(Serialize)]
struct Change<V> {
    value: V,
    field: &'static str,
}

#[derive(Serialize)]
struct Metadata<'a> {
    display_phone_number: &'a str,
    phone_number_id: &'a str,
}

#[derive(Serialize)]
struct StatusesValue<'a> {
    messaging_product: &'static str,
    metadata: Metadata<'a>,
    statuses: Vec<StatusJson<'a>>,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    id: &'a str,
    status: &'static str,
    #[serde(serialize_with = "as_string")]
    timestamp: u64,
    recipient_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing: Option<&'static Pricing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<[&'static StatusError; 1]>,
}

#[derive(Serialize)]
struct InboundValue<'a> {
    messaging_product: &'static str,
    metadata: Metadata<'a>,
    contacts: [ContactJson<'a>; 1],
    messages: [InboundMessageJson<'a>; 1],
}

#[derive(Serialize)]
struct ContactJson<'a> {
    profile: Profile<'a>,
    wa_id: &'a str,
}

#[derive(Serialize)]
struct Profile<'a> {
    name: &'a str,
}

/// Key order as in Meta's samples: `text` sits before `type`, `interactive` after it.
#[derive(Serialize)]
struct InboundMessageJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<ContextJson<'a>>,
    from: &'a str,
    id: &'a str,
    #[serde(serialize_with = "as_string")]
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextJson<'a>>,
    #[serde(rename = "type")]
    message_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    interactive: Option<InteractiveJson<'a>>,
}

#[derive(Serialize)]
struct ContextJson<'a> {
    from: &'a str,
    id: &'a str,
}

#[derive(Serialize)]
struct TextJson<'a> {
    body: &'a str,
}

#[derive(Serialize)]
struct InteractiveJson<'a> {
    #[serde(rename = "type")]
    interactive_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    button_reply: Option<ReplyJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    list_reply: Option<ReplyJson<'a>>,
}

#[derive(Serialize)]
struct ReplyJson<'a> {
    id: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// `entry` of a WABA-level webhook (templates): it carries `time`, unlike `messages`.
#[derive(Serialize)]
struct TimedEntry<'a, V> {
    id: &'a str,
    time: u64,
    changes: [Change<V>; 1],
}

#[derive(Serialize)]
struct TimedEnvelope<'a, V> {
    object: &'static str,
    entry: [TimedEntry<'a, V>; 1],
}

/// `value` of a `message_template_status_update`, in the key order of Meta's reference.
#[derive(Serialize)]
struct TemplateStatusValue<'a> {
    event: &'static str,
    message_template_id: u64,
    message_template_name: &'a str,
    message_template_language: &'a str,
    reason: &'a str,
    message_template_category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_info: Option<DisableInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_info: Option<OtherInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejection_info: Option<&'static RejectionInfo>,
}

#[derive(Serialize)]
struct DisableInfo {
    #[serde(serialize_with = "as_string")]
    disable_date: u64,
}

#[derive(Serialize)]
struct OtherInfo {
    title: &'static str,
    description: &'static str,
}

/// `other_info` of a `PAUSED` event.
const FIRST_PAUSE: OtherInfo = OtherInfo {
    title: "FIRST_PAUSE",
    description: "Your WhatsApp message template has been paused for 3 hours because it had issues.",
};

/// The `message_template_status_update` body for the template's status now, at `time`
/// (Unix seconds): `entry[].id` is the template's WABA.
pub(crate) fn template_status_body(template: &Template, time: u64) -> Result<Vec<u8>, serde_json::Error> {
    let rejected = template.status == TemplateStatus::Rejected;
    let value = TemplateStatusValue {
        event: template.status.as_str(),
        message_template_id: template.id.parse().unwrap_or(0),
        message_template_name: &template.name,
        message_template_language: &template.language,
        reason: &template.reason,
        message_template_category: template.category.as_str(),
        disable_info: (template.status == TemplateStatus::Disabled).then_some(DisableInfo { disable_date: time }),
        other_info: (template.status == TemplateStatus::Paused).then_some(FIRST_PAUSE),
        rejection_info: if rejected {
            rejection_info(&template.reason)
        } else {
            None
        },
    };
    let envelope = TimedEnvelope {
        object: "whatsapp_business_account",
        entry: [TimedEntry {
            id: &template.waba_id,
            time,
            changes: [Change {
                value,
                field: "message_template_status_update",
            }],
        }],
    };
    wire::to_meta_json(&envelope)
}

fn as_string<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The body for a batch of statuses: one `entry` for the WABA, one `changes` item per
/// phone number id (in order of first appearance), statuses in batch order.
pub(crate) fn statuses_body(config: &SimulatorConfig, batch: &[StatusUpdate]) -> Result<Vec<u8>, serde_json::Error> {
    let mut phone_number_ids: Vec<&str> = Vec::new();
    for update in batch {
        let id = &*update.message.phone_number_id;
        if !phone_number_ids.contains(&id) {
            phone_number_ids.push(id);
        }
    }
    let changes = phone_number_ids
        .into_iter()
        .map(|phone_number_id| Change {
            value: StatusesValue {
                messaging_product: "whatsapp",
                metadata: Metadata {
                    display_phone_number: &config.display_phone_number,
                    phone_number_id,
                },
                statuses: batch
                    .iter()
                    .filter(|update| &*update.message.phone_number_id == phone_number_id)
                    .map(status_json)
                    .collect(),
            },
            field: "messages",
        })
        .collect();
    let envelope = Envelope {
        object: "whatsapp_business_account",
        entry: [Entry {
            id: &config.waba_id,
            changes,
        }],
    };
    let mut body = Vec::with_capacity(256 + batch.len() * 256);
    wire::write_meta_json(&mut body, &envelope)?;
    Ok(body)
}

fn status_json(update: &StatusUpdate) -> StatusJson<'_> {
    let failed = update.status == StatusKind::Failed;
    StatusJson {
        id: &update.message.wamid,
        status: update.status.as_str(),
        timestamp: update.timestamp,
        recipient_id: &update.message.recipient,
        biz_opaque_callback_data: update.message.callback_data.as_deref(),
        pricing: (!failed).then_some(&PRICING),
        errors: if failed {
            update.message.failure.map(|error| [error])
        } else {
            None
        },
    }
}

/// The body for one inbound message from `inbound.from` with id `wamid`.
pub(crate) fn inbound_body(
    config: &SimulatorConfig,
    inbound: &Inbound,
    sender_digits: &str,
    wamid: &str,
    timestamp: u64,
) -> Result<Vec<u8>, serde_json::Error> {
    let context = inbound.reply_to.as_deref().map(|id| ContextJson {
        from: &config.display_phone_number,
        id,
    });
    let (text, message_type, interactive) = match &inbound.content {
        InboundContent::Text { body } => (Some(TextJson { body }), "text", None),
        InboundContent::ButtonReply { id, title } => (
            None,
            "interactive",
            Some(InteractiveJson {
                interactive_type: "button_reply",
                button_reply: Some(ReplyJson {
                    id,
                    title,
                    description: None,
                }),
                list_reply: None,
            }),
        ),
        InboundContent::ListReply { id, title, description } => (
            None,
            "interactive",
            Some(InteractiveJson {
                interactive_type: "list_reply",
                button_reply: None,
                list_reply: Some(ReplyJson {
                    id,
                    title,
                    description: description.as_deref(),
                }),
            }),
        ),
    };
    let envelope = Envelope {
        object: "whatsapp_business_account",
        entry: [Entry {
            id: &config.waba_id,
            changes: vec![Change {
                value: InboundValue {
                    messaging_product: "whatsapp",
                    metadata: Metadata {
                        display_phone_number: &config.display_phone_number,
                        phone_number_id: &inbound.phone_number_id,
                    },
                    contacts: [ContactJson {
                        profile: Profile {
                            name: &inbound.profile_name,
                        },
                        wa_id: sender_digits,
                    }],
                    messages: [InboundMessageJson {
                        context,
                        from: sender_digits,
                        id: wamid,
                        timestamp,
                        text,
                        message_type,
                        interactive,
                    }],
                },
                field: "messages",
            }],
        }],
    };
    wire::to_meta_json(&envelope)
}

#[cfg(test)]
mod tests;
