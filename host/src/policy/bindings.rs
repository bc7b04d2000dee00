//! The plugin contract as Rust types, and the conversions between them and wasp's own
//! message and template types. Conversions that can fail name what was wrong, so a plugin
//! returning something wasp cannot send is a fault, never a silent change.
//!
//! Every released contract version is spoken. `sdk/wit/v0.1.0` generates the message types
//! ([`wit`]) and the 0.1.0 world; [`v0_2`] generates the 0.2.0 world with its `types`
//! interface remapped onto those same Rust types (0.2.0's `types` is 0.1.0's, and component
//! type checking is structural), so only 0.2.0's new `templates` records and its `host`
//! import (a copy of 0.1.0's, under the new version's name) are generated anew. Which world
//! a component implements is read from its imports and exports at load ([`Contract::of`]);
//! [`PolicyBindingsPre`] and [`PolicyBindings`] then call it through the matching bindings.

use crate::message::{
    self, Category, Channel, Priority,
    content::{
        Button, ButtonAction, Content, Currency, DateTime, Interactive, ListAction, Media, Reply, Row, Section,
        Template, TemplateComponent, TemplateLanguage, TemplateParameter, TextBody, TextHeader, TextOnly,
    },
};

wasmtime::component::bindgen!({
    path: "../sdk/wit/v0.1.0",
    world: "wasp:policy/policy",
    additional_derives: [PartialEq],
});

pub use self::wasp::policy::types as wit;

/// The `wasp:policy@0.2.0` world. Its `types` are [`wit`]'s; only the `templates`
/// interface, the `host` import and the world's own glue are new.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../sdk/wit/v0.2.0",
        world: "wasp:policy/policy",
        additional_derives: [PartialEq],
        with: {
            "wasp:policy/types@0.2.0": crate::policy::bindings::wasp::policy::types,
        },
    });

    pub use self::wasp::policy::templates as template_wit;
}

pub use v0_2::template_wit;

/// A released version of the `wasp:policy` contract that this host speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Contract {
    #[serde(rename = "0.1.0")]
    V0_1,
    #[serde(rename = "0.2.0")]
    V0_2,
}

/// The package every contract version belongs to.
pub const PACKAGE: &str = "wasp:policy";
/// The export only 0.2.0 (and later) components have.
pub const ON_TEMPLATE: &str = "on-template";

impl Contract {
    /// Every version this host speaks, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1, Contract::V0_2];

    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    pub fn from_version(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|contract| contract.version() == version)
    }

    /// The exports the world requires beside `init`.
    pub fn hooks(self) -> &'static [&'static str] {
        match self {
            Contract::V0_1 => &["on-submit", "on-dispatch", "on-event"],
            Contract::V0_2 => &["on-submit", "on-dispatch", "on-event", ON_TEMPLATE],
        }
    }

    /// Whether the world has the `on-template` hook.
    pub fn has_templates(self) -> bool {
        self >= Contract::V0_2
    }

    /// Reads the version a component was built for: the version of the `wasp:policy`
    /// interfaces it imports (all must agree and be one this host speaks), or, when it
    /// imports none, 0.2.0 if it exports `on-template` and 0.1.0 if not. The exports are
    /// then checked against that version's world; an error names what does not fit.
    pub fn of(engine: &wasmtime::Engine, component: &wasmtime::component::Component) -> Result<Contract, String> {
        use wasmtime::component::types::ComponentItem;
        let component_type = component.component_type();
        let spoken = || {
            Contract::ALL
                .iter()
                .map(|contract| format!("{PACKAGE}@{}", contract.version()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut imported: Option<(Contract, String)> = None;
        for (import, _) in component_type.imports(engine) {
            let Some((_, version)) = import.strip_prefix(PACKAGE).and_then(|rest| rest.split_once('@')) else {
                continue;
            };
            let Some(contract) = Contract::from_version(version) else {
                return Err(format!(
                    "it imports {import}, built for {PACKAGE}@{version}; this host speaks {}",
                    spoken()
                ));
            };
            match &imported {
                Some((earlier, earlier_import)) if *earlier != contract => {
                    return Err(format!(
                        "it imports both {earlier_import} and {import}: one component implements one contract version"
                    ));
                }
                Some(_) => {}
                None => imported = Some((contract, import.to_owned())),
            }
        }
        let exports: Vec<String> = component_type
            .exports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
            .map(|(export, _)| export.to_owned())
            .collect();
        let contract = match imported {
            Some((contract, _)) => contract,
            None if exports.iter().any(|export| export == ON_TEMPLATE) => Contract::V0_2,
            None => Contract::V0_1,
        };
        for required in std::iter::once("init").chain(contract.hooks().iter().copied()) {
            if !exports.iter().any(|export| export == required) {
                return Err(format!(
                    "it does not export `{required}` (exports: {}); build it with wasp-sdk for {contract}",
                    if exports.is_empty() {
                        "none".to_owned()
                    } else {
                        exports.join(", ")
                    }
                ));
            }
        }
        Ok(contract)
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{PACKAGE}@{}", self.version())
    }
}

/// A component pre-instantiated against the world of its contract version.
pub enum PolicyBindingsPre<T: 'static> {
    V0_1(PolicyPre<T>),
    V0_2(v0_2::PolicyPre<T>),
}

// Not derived: a derive would ask `T: Clone`, which the store's data need not be.
impl<T: 'static> Clone for PolicyBindingsPre<T> {
    fn clone(&self) -> Self {
        match self {
            PolicyBindingsPre::V0_1(pre) => PolicyBindingsPre::V0_1(pre.clone()),
            PolicyBindingsPre::V0_2(pre) => PolicyBindingsPre::V0_2(pre.clone()),
        }
    }
}

impl<T: 'static> PolicyBindingsPre<T> {
    /// Reads the component's contract version ([`Contract::of`]) and checks its exports
    /// against that world.
    pub fn new(instance_pre: wasmtime::component::InstancePre<T>) -> Result<Self, String> {
        let engine = instance_pre.component().engine().clone();
        let contract = Contract::of(&engine, instance_pre.component())?;
        let checked = match contract {
            Contract::V0_1 => PolicyPre::new(instance_pre).map(PolicyBindingsPre::V0_1),
            Contract::V0_2 => v0_2::PolicyPre::new(instance_pre).map(PolicyBindingsPre::V0_2),
        };
        checked.map_err(|error| format!("does not implement the {contract} world: {error:#}"))
    }

    pub fn contract(&self) -> Contract {
        match self {
            PolicyBindingsPre::V0_1(_) => Contract::V0_1,
            PolicyBindingsPre::V0_2(_) => Contract::V0_2,
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            PolicyBindingsPre::V0_1(pre) => pre.engine(),
            PolicyBindingsPre::V0_2(pre) => pre.engine(),
        }
    }

    pub fn instantiate(&self, store: impl wasmtime::AsContextMut<Data = T>) -> wasmtime::Result<PolicyBindings> {
        Ok(match self {
            PolicyBindingsPre::V0_1(pre) => PolicyBindings::V0_1(pre.instantiate(store)?),
            PolicyBindingsPre::V0_2(pre) => PolicyBindings::V0_2(pre.instantiate(store)?),
        })
    }
}

/// An instance's exports, through the bindings of its contract version. The hooks both
/// versions share take and return the same [`wit`] types.
pub enum PolicyBindings {
    V0_1(Policy),
    V0_2(v0_2::Policy),
}

impl PolicyBindings {
    pub fn contract(&self) -> Contract {
        match self {
            PolicyBindings::V0_1(_) => Contract::V0_1,
            PolicyBindings::V0_2(_) => Contract::V0_2,
        }
    }

    pub fn call_init<S: wasmtime::AsContextMut>(&self, store: S, config: &str) -> wasmtime::Result<Result<(), String>> {
        match self {
            PolicyBindings::V0_1(bindings) => bindings.call_init(store, config),
            PolicyBindings::V0_2(bindings) => bindings.call_init(store, config),
        }
    }

    pub fn call_on_submit<S: wasmtime::AsContextMut>(
        &self,
        store: S,
        message: &wit::Message,
        context: &wit::Context,
    ) -> wasmtime::Result<wit::Verdict> {
        match self {
            PolicyBindings::V0_1(bindings) => bindings.call_on_submit(store, message, context),
            PolicyBindings::V0_2(bindings) => bindings.call_on_submit(store, message, context),
        }
    }

    pub fn call_on_dispatch<S: wasmtime::AsContextMut>(
        &self,
        store: S,
        message: &wit::Message,
        context: &wit::Context,
    ) -> wasmtime::Result<wit::Verdict> {
        match self {
            PolicyBindings::V0_1(bindings) => bindings.call_on_dispatch(store, message, context),
            PolicyBindings::V0_2(bindings) => bindings.call_on_dispatch(store, message, context),
        }
    }

    pub fn call_on_event<S: wasmtime::AsContextMut>(
        &self,
        store: S,
        event: &wit::Event,
        context: &wit::Context,
    ) -> wasmtime::Result<Vec<wit::Action>> {
        match self {
            PolicyBindings::V0_1(bindings) => bindings.call_on_event(store, event, context),
            PolicyBindings::V0_2(bindings) => bindings.call_on_event(store, event, context),
        }
    }

    /// `on-template`, or `None` for a contract version without it (0.1.0).
    pub fn call_on_template<S: wasmtime::AsContextMut>(
        &self,
        store: S,
        template: &template_wit::TemplateDefinition,
    ) -> Option<wasmtime::Result<Vec<template_wit::LintFinding>>> {
        match self {
            PolicyBindings::V0_1(_) => None,
            PolicyBindings::V0_2(bindings) => Some(bindings.call_on_template(store, template)),
        }
    }
}

/// A template definition as plugins see it, with the index in `components` of each part so
/// a finding can point back into Meta's JSON.
pub fn template_to_wit(definition: &crate::templates::TemplateDefinition) -> template_wit::TemplateDefinition {
    use crate::templates::{DefinitionComponent, ParameterFormat};
    let index_of = |wanted: fn(&DefinitionComponent) -> bool| {
        definition
            .components
            .iter()
            .position(wanted)
            .and_then(|index| u32::try_from(index).ok())
    };
    let header = definition.header();
    template_wit::TemplateDefinition {
        name: definition.name.clone(),
        language: definition.language.clone(),
        category: definition.category.into(),
        parameter_format: match definition.parameter_format {
            ParameterFormat::Positional => "positional",
            ParameterFormat::Named => "named",
        }
        .to_owned(),
        header_format: header.map(|(format, _)| format.to_ascii_uppercase()),
        header_text: header.and_then(|(_, text)| text.map(str::to_owned)),
        body: definition.body().unwrap_or_default().to_owned(),
        footer: definition.footer().map(str::to_owned),
        buttons: definition
            .buttons()
            .iter()
            .map(|button| template_wit::TemplateButton {
                kind: button.kind.to_ascii_uppercase(),
                text: button.text.clone(),
                url: button.url.clone(),
                phone_number: button.phone_number.clone(),
            })
            .collect(),
        body_examples: definition.body_examples(),
        header_index: index_of(|component| matches!(component, DefinitionComponent::Header { .. })),
        body_index: index_of(|component| matches!(component, DefinitionComponent::Body { .. })),
        footer_index: index_of(|component| matches!(component, DefinitionComponent::Footer { .. })),
        buttons_index: index_of(|component| matches!(component, DefinitionComponent::Buttons { .. })),
    }
}

/// A plugin's finding as the host keeps it, naming the plugin.
pub fn finding_from_wit(plugin: &str, finding: template_wit::LintFinding) -> crate::templates::LintFinding {
    crate::templates::LintFinding {
        plugin: plugin.to_owned(),
        check: finding.check,
        severity: match finding.severity {
            template_wit::Severity::Error => crate::templates::Severity::Error,
            template_wit::Severity::Warning => crate::templates::Severity::Warning,
        },
        field: finding.field,
        message: finding.message,
    }
}

impl From<Category> for wit::Category {
    fn from(value: Category) -> Self {
        match value {
            Category::Authentication => wit::Category::Authentication,
            Category::Utility => wit::Category::Utility,
            Category::Marketing => wit::Category::Marketing,
            Category::Service => wit::Category::Service,
        }
    }
}

impl From<wit::Category> for Category {
    fn from(value: wit::Category) -> Self {
        match value {
            wit::Category::Authentication => Category::Authentication,
            wit::Category::Utility => Category::Utility,
            wit::Category::Marketing => Category::Marketing,
            wit::Category::Service => Category::Service,
        }
    }
}

impl From<Priority> for wit::Priority {
    fn from(value: Priority) -> Self {
        match value {
            Priority::Critical => wit::Priority::Critical,
            Priority::High => wit::Priority::High,
            Priority::Normal => wit::Priority::Normal,
            Priority::Bulk => wit::Priority::Bulk,
        }
    }
}

impl From<wit::Priority> for Priority {
    fn from(value: wit::Priority) -> Self {
        match value {
            wit::Priority::Critical => Priority::Critical,
            wit::Priority::High => Priority::High,
            wit::Priority::Normal => Priority::Normal,
            wit::Priority::Bulk => Priority::Bulk,
        }
    }
}

impl From<Channel> for wit::Channel {
    fn from(value: Channel) -> Self {
        match value {
            Channel::Whatsapp => wit::Channel::Whatsapp,
            Channel::Sms => wit::Channel::Sms,
        }
    }
}

impl From<wit::Channel> for Channel {
    fn from(value: wit::Channel) -> Self {
        match value {
            wit::Channel::Whatsapp => Channel::Whatsapp,
            wit::Channel::Sms => Channel::Sms,
        }
    }
}

fn media_to_wit(media: &Media) -> wit::Media {
    wit::Media {
        id: media.id.clone(),
        link: media.link.clone(),
        caption: media.caption.clone(),
        filename: media.filename.clone(),
    }
}

fn media_from_wit(media: wit::Media) -> Media {
    Media {
        id: media.id,
        link: media.link,
        caption: media.caption,
        filename: media.filename,
    }
}

fn header_text(header: &Option<TextHeader>) -> Option<String> {
    header.as_ref().map(|TextHeader::Text { text }| text.clone())
}

pub fn content_to_wit(content: &Content) -> wit::Content {
    match content {
        Content::Text { text } => wit::Content::Text(wit::TextBody {
            body: text.body.clone(),
            preview_url: text.preview_url,
        }),
        Content::Template { template } => wit::Content::Template(wit::Template {
            name: template.name.clone(),
            language: template.language.code.clone(),
            components: template
                .components
                .iter()
                .map(|component| wit::TemplateComponent {
                    kind: component.kind.clone(),
                    sub_type: component.sub_type.clone(),
                    index: component.index,
                    parameters: component.parameters.iter().map(parameter_to_wit).collect(),
                })
                .collect(),
        }),
        Content::Image { image } => wit::Content::Image(media_to_wit(image)),
        Content::Document { document } => wit::Content::Document(media_to_wit(document)),
        Content::Video { video } => wit::Content::Video(media_to_wit(video)),
        Content::Audio { audio } => wit::Content::Audio(media_to_wit(audio)),
        Content::Interactive { interactive } => match interactive {
            Interactive::Button {
                header,
                body,
                footer,
                action,
            } => wit::Content::InteractiveButtons(wit::ButtonsMessage {
                header: header_text(header),
                body: body.text.clone(),
                footer: footer.as_ref().map(|footer| footer.text.clone()),
                buttons: action
                    .buttons
                    .iter()
                    .map(|Button::Reply { reply }| wit::ReplyButton {
                        id: reply.id.clone(),
                        title: reply.title.clone(),
                    })
                    .collect(),
            }),
            Interactive::List {
                header,
                body,
                footer,
                action,
            } => wit::Content::InteractiveList(wit::ListMessage {
                header: header_text(header),
                body: body.text.clone(),
                footer: footer.as_ref().map(|footer| footer.text.clone()),
                button: action.button.clone(),
                sections: action
                    .sections
                    .iter()
                    .map(|section| wit::ListSection {
                        title: section.title.clone(),
                        rows: section
                            .rows
                            .iter()
                            .map(|row| wit::ListRow {
                                id: row.id.clone(),
                                title: row.title.clone(),
                                description: row.description.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            }),
        },
    }
}

fn parameter_to_wit(parameter: &TemplateParameter) -> wit::TemplateParameter {
    match parameter {
        TemplateParameter::Text { text } => wit::TemplateParameter::Text(text.clone()),
        TemplateParameter::Currency { currency } => wit::TemplateParameter::Currency(wit::Currency {
            fallback_value: currency.fallback_value.clone(),
            code: currency.code.clone(),
            amount1000: currency.amount_1000,
        }),
        TemplateParameter::DateTime { date_time } => wit::TemplateParameter::DateTime(date_time.fallback_value.clone()),
        TemplateParameter::Image { image } => wit::TemplateParameter::Image(media_to_wit(image)),
        TemplateParameter::Document { document } => wit::TemplateParameter::Document(media_to_wit(document)),
        TemplateParameter::Video { video } => wit::TemplateParameter::Video(media_to_wit(video)),
        TemplateParameter::Payload { payload } => wit::TemplateParameter::Payload(payload.clone()),
    }
}

fn parameter_from_wit(parameter: wit::TemplateParameter) -> TemplateParameter {
    match parameter {
        wit::TemplateParameter::Text(text) => TemplateParameter::Text { text },
        wit::TemplateParameter::Currency(currency) => TemplateParameter::Currency {
            currency: Currency {
                fallback_value: currency.fallback_value,
                code: currency.code,
                amount_1000: currency.amount1000,
            },
        },
        wit::TemplateParameter::DateTime(fallback_value) => TemplateParameter::DateTime {
            date_time: DateTime { fallback_value },
        },
        wit::TemplateParameter::Image(media) => TemplateParameter::Image {
            image: media_from_wit(media),
        },
        wit::TemplateParameter::Document(media) => TemplateParameter::Document {
            document: media_from_wit(media),
        },
        wit::TemplateParameter::Video(media) => TemplateParameter::Video {
            video: media_from_wit(media),
        },
        wit::TemplateParameter::Payload(payload) => TemplateParameter::Payload { payload },
    }
}

fn text_header(header: Option<String>) -> Option<TextHeader> {
    header.map(|text| TextHeader::Text { text })
}

pub fn content_from_wit(content: wit::Content) -> Content {
    match content {
        wit::Content::Text(text) => Content::Text {
            text: TextBody {
                body: text.body,
                preview_url: text.preview_url,
            },
        },
        wit::Content::Template(template) => Content::Template {
            template: Template {
                name: template.name,
                language: TemplateLanguage {
                    code: template.language,
                    policy: None,
                },
                components: template
                    .components
                    .into_iter()
                    .map(|component| TemplateComponent {
                        kind: component.kind,
                        sub_type: component.sub_type,
                        index: component.index,
                        parameters: component.parameters.into_iter().map(parameter_from_wit).collect(),
                    })
                    .collect(),
            },
        },
        wit::Content::Image(media) => Content::Image {
            image: media_from_wit(media),
        },
        wit::Content::Document(media) => Content::Document {
            document: media_from_wit(media),
        },
        wit::Content::Video(media) => Content::Video {
            video: media_from_wit(media),
        },
        wit::Content::Audio(media) => Content::Audio {
            audio: media_from_wit(media),
        },
        wit::Content::InteractiveButtons(buttons) => Content::Interactive {
            interactive: Interactive::Button {
                header: text_header(buttons.header),
                body: TextOnly { text: buttons.body },
                footer: buttons.footer.map(|text| TextOnly { text }),
                action: ButtonAction {
                    buttons: buttons
                        .buttons
                        .into_iter()
                        .map(|button| Button::Reply {
                            reply: Reply {
                                id: button.id,
                                title: button.title,
                            },
                        })
                        .collect(),
                },
            },
        },
        wit::Content::InteractiveList(list) => Content::Interactive {
            interactive: Interactive::List {
                header: text_header(list.header),
                body: TextOnly { text: list.body },
                footer: list.footer.map(|text| TextOnly { text }),
                action: ListAction {
                    button: list.button,
                    sections: list
                        .sections
                        .into_iter()
                        .map(|section| Section {
                            title: section.title,
                            rows: section
                                .rows
                                .into_iter()
                                .map(|row| Row {
                                    id: row.id,
                                    title: row.title,
                                    description: row.description,
                                })
                                .collect(),
                        })
                        .collect(),
                },
            },
        },
    }
}

/// A message as policies see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: message::MessageId,
    pub to: message::PhoneNumber,
    pub sender: String,
    pub category: Category,
    pub priority: Priority,
    pub channel: Channel,
    pub content: Content,
    pub tags: Vec<String>,
}

impl Envelope {
    /// A stored message as policies see it: the content as the policies last left it, else
    /// as submitted.
    pub fn from_pending(message: &crate::store::PendingMessage, sender: &str) -> Self {
        Self {
            id: message.id,
            to: message.to.clone(),
            sender: sender.to_owned(),
            category: message.category,
            priority: message.priority,
            channel: message.channel,
            content: message.content_sent.clone().unwrap_or_else(|| message.content.clone()),
            tags: message.tags.clone(),
        }
    }

    pub fn to_wit(&self) -> wit::Message {
        wit::Message {
            id: self.id.to_string(),
            to: self.to.as_str().to_owned(),
            sender: self.sender.clone(),
            category: self.category.into(),
            priority: self.priority.into(),
            channel: self.channel.into(),
            content: content_to_wit(&self.content),
            tags: self.tags.clone(),
        }
    }

    /// Takes a plugin's rewrite. The id, recipient and sender are the host's: a rewrite that
    /// changes them is malformed, and the content must still be sendable.
    pub fn apply_rewrite(&self, rewritten: wit::Message) -> Result<Envelope, String> {
        if rewritten.id != self.id.to_string() {
            return Err("a rewrite may not change the message id".into());
        }
        if rewritten.to != self.to.as_str() {
            return Err("a rewrite may not change the recipient".into());
        }
        if rewritten.sender != self.sender {
            return Err("a rewrite may not change the sender".into());
        }
        let content = content_from_wit(rewritten.content);
        content
            .validate()
            .map_err(|error| format!("rewritten {} {}", error.field, error.message))?;
        Ok(Envelope {
            id: self.id,
            to: self.to.clone(),
            sender: self.sender.clone(),
            category: rewritten.category.into(),
            priority: rewritten.priority.into(),
            channel: rewritten.channel.into(),
            content,
            tags: rewritten.tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_content_kind_survives_the_boundary() {
        let cases = [
            json!({"type": "text", "text": {"body": "hello", "preview_url": true}}),
            json!({"type": "image", "image": {"link": "https://example.com/a.png", "caption": "A"}}),
            json!({"type": "document", "document": {"id": "123", "filename": "a.pdf"}}),
            json!({"type": "interactive", "interactive": {"type": "button", "header": {"type": "text", "text": "H"},
                "body": {"text": "Pick"}, "footer": {"text": "F"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}),
            json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Pick"},
                "action": {"button": "Choose", "sections": [{"title": "S", "rows": [{"id": "a", "title": "A", "description": "d"}]}]}}}),
            json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"},
                    {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}},
                    {"type": "date_time", "date_time": {"fallback_value": "today"}}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "p"}]}]}}),
        ];
        for case in cases {
            let content: Content = serde_json::from_value(case.clone()).unwrap();
            let back = content_from_wit(content_to_wit(&content));
            assert_eq!(back, content, "{case}");
        }
    }

    #[test]
    fn a_template_definition_says_where_its_components_sit() {
        let definition: crate::templates::TemplateDefinition = serde_json::from_value(json!({
            "name": "order_update", "language": "en_US", "category": "utility", "parameter_format": "NAMED",
            "components": [
                {"type": "BODY", "text": "Hi {{name}}", "example": {"body_text_named_params": [
                    {"param_name": "name", "example": "Ada"}]}},
                {"type": "HEADER", "format": "text", "text": "Order"},
                {"type": "BUTTONS", "buttons": [{"type": "url", "text": "Open", "url": "https://example.com"}]}
            ]
        }))
        .unwrap();
        let template = template_to_wit(&definition);
        assert_eq!(template.category, wit::Category::Utility);
        assert_eq!(template.parameter_format, "named");
        assert_eq!(
            (
                template.body_index,
                template.header_index,
                template.buttons_index,
                template.footer_index
            ),
            (Some(0), Some(1), Some(2), None)
        );
        assert_eq!(template.header_format.as_deref(), Some("TEXT"));
        assert_eq!(template.buttons[0].kind, "URL");
        assert_eq!(template.body_examples, ["Ada"]);
    }

    #[test]
    fn contract_versions_are_named_and_ordered() {
        assert_eq!(Contract::from_version("0.1.0"), Some(Contract::V0_1));
        assert_eq!(Contract::from_version("0.3.0"), None);
        assert!(!Contract::V0_1.has_templates() && Contract::V0_2.has_templates());
        assert_eq!(Contract::V0_2.to_string(), "wasp:policy@0.2.0");
        assert!(Contract::V0_2.hooks().contains(&ON_TEMPLATE));
    }

    #[test]
    fn rewrites_may_not_change_identity() {
        let envelope = Envelope {
            id: message::MessageId::new(),
            to: message::PhoneNumber::parse("+6591234567").unwrap(),
            sender: "100".into(),
            category: Category::Utility,
            priority: Priority::High,
            channel: Channel::Whatsapp,
            content: serde_json::from_value(json!({"type": "text", "text": {"body": "x"}})).unwrap(),
            tags: vec![],
        };
        let mut other = envelope.to_wit();
        other.to = "+6500000000".into();
        assert!(envelope.apply_rewrite(other).unwrap_err().contains("recipient"));
        let mut empty = envelope.to_wit();
        empty.content = wit::Content::Text(wit::TextBody {
            body: String::new(),
            preview_url: false,
        });
        assert!(envelope.apply_rewrite(empty).unwrap_err().contains("content.text.body"));
        let mut fine = envelope.to_wit();
        fine.priority = wit::Priority::Critical;
        assert_eq!(envelope.apply_rewrite(fine).unwrap().priority, Priority::Critical);
    }
}
