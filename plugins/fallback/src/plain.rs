//! Plain-text renderings the rules share: interactive choices as numbered lines, media as
//! caption, file name and link, template body parameters as text, and cutting a text to a
//! number of characters on a character boundary. Pure functions over the contract's types;
//! calls nothing.

use wasp_sdk::{ButtonsMessage, ListMessage, Media, Template, TemplateParameter};

/// What a cut text ends with, so the reader sees it was cut.
pub const CUT_MARKER: &str = "...";

/// A message with numbered options, as plain text: header, body, the options (`1. Yes`,
/// one per line) with `reply_hint` on the line under them, then the footer; the parts
/// separated by a blank line, absent or blank parts left out.
pub fn numbered(
    header: Option<&str>,
    body: &str,
    options: &[String],
    reply_hint: &str,
    footer: Option<&str>,
) -> String {
    let mut block: Vec<String> = options
        .iter()
        .enumerate()
        .map(|(index, option)| format!("{}. {option}", index + 1))
        .collect();
    if !reply_hint.trim().is_empty() {
        block.push(reply_hint.to_string());
    }
    let block = block.join("\n");
    [header, Some(body), Some(block.as_str()), footer]
        .into_iter()
        .flatten()
        .filter(|part| !part.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The options of a buttons message: the button titles, in order.
pub fn button_options(buttons: &ButtonsMessage) -> Vec<String> {
    buttons.buttons.iter().map(|button| button.title.clone()).collect()
}

/// The options of a list message: every row, section after section, as `title` or
/// `title - description`.
pub fn list_options(list: &ListMessage) -> Vec<String> {
    list.rows()
        .map(
            |row| match row.description.as_deref().filter(|text| !text.trim().is_empty()) {
                Some(description) => format!("{} - {description}", row.title),
                None => row.title.clone(),
            },
        )
        .collect()
}

/// A buttons message as numbered text.
pub fn buttons_text(buttons: &ButtonsMessage, reply_hint: &str) -> String {
    numbered(
        buttons.header.as_deref(),
        &buttons.body,
        &button_options(buttons),
        reply_hint,
        buttons.footer.as_deref(),
    )
}

/// A list message as numbered text.
pub fn list_text(list: &ListMessage, reply_hint: &str) -> String {
    numbered(
        list.header.as_deref(),
        &list.body,
        &list_options(list),
        reply_hint,
        list.footer.as_deref(),
    )
}

/// Media as text lines: the caption, the file name (when it is not the caption), the link;
/// each only when present and not blank. `None` when nothing is left.
pub fn media_text(media: &Media) -> Option<String> {
    let caption = media.caption.as_deref().filter(|text| !text.trim().is_empty());
    let filename = media
        .filename
        .as_deref()
        .filter(|name| !name.trim().is_empty() && Some(*name) != caption);
    let link = media.link.as_deref().filter(|link| !link.trim().is_empty());
    let lines: Vec<&str> = [caption, filename, link].into_iter().flatten().collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The body parameters of a template as text, in order: text and date-time as given,
/// currency as its fallback value, media as its link (or caption); payloads, which belong
/// to buttons, are left out.
pub fn body_parameters(template: &Template) -> Vec<String> {
    template
        .components
        .iter()
        .filter(|component| component.kind.eq_ignore_ascii_case("body"))
        .flat_map(|component| component.parameters.iter())
        .filter_map(|parameter| match parameter {
            TemplateParameter::Text(text) | TemplateParameter::DateTime(text) => Some(text.clone()),
            TemplateParameter::Currency(currency) => Some(currency.fallback_value.clone()),
            TemplateParameter::Image(media) | TemplateParameter::Document(media) | TemplateParameter::Video(media) => {
                media.link.clone().or_else(|| media.caption.clone())
            }
            TemplateParameter::Payload(_) => None,
        })
        .collect()
}

/// Fills `{{1}}`, `{{2}}`… in `text` with `parameters` (1-based). A placeholder without a
/// parameter becomes empty; anything else between braces is left as written.
pub fn fill_placeholders(text: &str, parameters: &[String]) -> String {
    let mut filled = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        filled.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let number = after
            .find("}}")
            .map(|end| &after[..end])
            .filter(|inside| !inside.is_empty() && inside.bytes().all(|byte| byte.is_ascii_digit()));
        match number {
            Some(digits) => {
                let value = digits
                    .parse::<usize>()
                    .ok()
                    .and_then(|position| position.checked_sub(1))
                    .and_then(|index| parameters.get(index));
                if let Some(value) = value {
                    filled.push_str(value);
                }
                rest = &after[digits.len() + 2..];
            }
            None => {
                filled.push_str("{{");
                rest = after;
            }
        }
    }
    filled.push_str(rest);
    filled
}

/// `text` cut to at most `max_chars` characters on a character boundary, ending in
/// [`CUT_MARKER`] when it was cut. `max_chars` is at least the marker's length.
pub fn fit(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let keep = max_chars.saturating_sub(CUT_MARKER.len());
    let end = text.char_indices().nth(keep).map_or(text.len(), |(index, _)| index);
    format!("{}{CUT_MARKER}", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use wasp_sdk::{ListRow, ListSection, ReplyButton, TemplateComponent};

    use super::*;

    fn yes_no() -> ButtonsMessage {
        ButtonsMessage::new(
            "Is Tuesday fine?",
            vec![ReplyButton::new("yes", "Yes"), ReplyButton::new("no", "No")],
        )
    }

    #[test]
    fn buttons_become_numbered_lines_with_the_hint() {
        assert_eq!(
            buttons_text(&yes_no(), "Reply with the number."),
            "Is Tuesday fine?\n\n1. Yes\n2. No\nReply with the number."
        );
        let mut buttons = yes_no();
        buttons.header = Some("Delivery".to_string());
        buttons.footer = Some("Acme Parcels".to_string());
        assert_eq!(
            buttons_text(&buttons, ""),
            "Delivery\n\nIs Tuesday fine?\n\n1. Yes\n2. No\n\nAcme Parcels"
        );
    }

    #[test]
    fn list_rows_are_numbered_across_sections_with_descriptions() {
        let list = ListMessage {
            header: None,
            body: "Pick a slot".to_string(),
            footer: None,
            button: "Slots".to_string(),
            sections: vec![
                ListSection {
                    title: Some("Morning".to_string()),
                    rows: vec![ListRow {
                        id: "m".to_string(),
                        title: "9-12".to_string(),
                        description: Some("Driver calls ahead".to_string()),
                    }],
                },
                ListSection {
                    title: Some("Afternoon".to_string()),
                    rows: vec![ListRow::new("a", "12-17"), ListRow::new("e", "17-20")],
                },
            ],
        };
        assert_eq!(
            list_text(&list, "Reply with the number."),
            "Pick a slot\n\n1. 9-12 - Driver calls ahead\n2. 12-17\n3. 17-20\nReply with the number."
        );
    }

    #[test]
    fn media_text_keeps_what_is_there() {
        let media = Media {
            id: None,
            link: Some("https://example.com/invoice.pdf".to_string()),
            caption: Some("Your invoice".to_string()),
            filename: Some("invoice.pdf".to_string()),
        };
        assert_eq!(
            media_text(&media).as_deref(),
            Some("Your invoice\ninvoice.pdf\nhttps://example.com/invoice.pdf")
        );
        let bare = Media {
            id: Some("1234".to_string()),
            link: None,
            caption: Some("  ".to_string()),
            filename: None,
        };
        assert_eq!(media_text(&bare), None);
    }

    #[test]
    fn placeholders_are_filled_by_position() {
        let parameters = vec!["Ana".to_string(), "#4411".to_string()];
        assert_eq!(
            fill_placeholders("Hi {{1}}, order {{2}} has shipped.", &parameters),
            "Hi Ana, order #4411 has shipped."
        );
        assert_eq!(fill_placeholders("{{2}}{{1}}{{3}}", &parameters), "#4411Ana");
        assert_eq!(
            fill_placeholders("{{name}} {{ 1}} {{", &parameters),
            "{{name}} {{ 1}} {{"
        );
        assert_eq!(fill_placeholders("{{0}}!", &parameters), "!");
    }

    #[test]
    fn body_parameters_come_from_the_body_only() {
        let template = Template {
            name: "order_shipped".to_string(),
            language: "en_US".to_string(),
            components: vec![
                TemplateComponent {
                    kind: "header".to_string(),
                    sub_type: None,
                    index: None,
                    parameters: vec![TemplateParameter::Text("ignored".to_string())],
                },
                TemplateComponent {
                    kind: "body".to_string(),
                    sub_type: None,
                    index: None,
                    parameters: vec![
                        TemplateParameter::Text("Ana".to_string()),
                        TemplateParameter::Currency(wasp_sdk::Currency {
                            fallback_value: "$12.50".to_string(),
                            code: "USD".to_string(),
                            amount1000: 12_500,
                        }),
                        TemplateParameter::DateTime("March 5".to_string()),
                    ],
                },
            ],
        };
        assert_eq!(body_parameters(&template), vec!["Ana", "$12.50", "March 5"]);
    }

    #[test]
    fn fit_cuts_on_a_character_boundary() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("ééééééééééé", 8), "ééééé...");
        assert_eq!(fit("ééééééééééé", 8).chars().count(), 8);
        assert_eq!(fit("one two three", 10), "one two...");
        let long = "🙂".repeat(2_000);
        let cut = fit(&long, 1_600);
        assert_eq!(cut.chars().count(), 1_600);
        assert!(cut.ends_with(CUT_MARKER));
    }
}
