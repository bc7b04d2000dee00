//! Rule (c), old devices: a recipient whose device hints name an old device gets plain
//! text. Characters such phones render as boxes (emoji and other pictographs, variation
//! selectors, zero-width joiners, skin-tone modifiers, flags, keycap marks) are removed;
//! typographic punctuation (curly quotes, dashes, ellipsis, odd spaces) becomes ASCII; reply
//! buttons and lists become numbered text options. Owns the character cleaning and the
//! content rewrite; calls `plain` for the numbered text.

use wasp_sdk::{Content, Media, TextBody};

use crate::config::{CLOUD_API_MAX_TEXT_CHARS, OldDeviceConfig};
use crate::plain;

/// The content an old device gets instead of `content`, or `None` to leave it as it is.
///
/// Text is cleaned; buttons and lists become cleaned numbered text with the reply hint;
/// media captions are cleaned (the media stays). Templates are left alone: their text is
/// Meta's approved wording, rendered by Meta. A text that cleaning would leave blank is
/// left as it is (an empty message would be refused).
pub fn rewrite(config: &OldDeviceConfig, content: &Content) -> Option<Content> {
    match content {
        Content::Text(text) => {
            let cleaned = clean(&text.body);
            if cleaned == text.body || cleaned.trim().is_empty() {
                return None;
            }
            Some(Content::Text(TextBody {
                body: cleaned,
                preview_url: text.preview_url,
            }))
        }
        Content::InteractiveButtons(buttons) => Some(numbered_text(
            buttons.header.as_deref(),
            &buttons.body,
            &plain::button_options(buttons),
            &config.reply_hint,
            buttons.footer.as_deref(),
        )),
        Content::InteractiveList(list) => Some(numbered_text(
            list.header.as_deref(),
            &list.body,
            &plain::list_options(list),
            &config.reply_hint,
            list.footer.as_deref(),
        )),
        Content::Image(media) => clean_caption(media).map(Content::Image),
        Content::Document(media) => clean_caption(media).map(Content::Document),
        Content::Video(media) => clean_caption(media).map(Content::Video),
        Content::Audio(media) => clean_caption(media).map(Content::Audio),
        Content::Template(_) => None,
    }
}

/// Numbered text from cleaned parts. An option that cleaning would leave blank (a title
/// that was only an emoji) keeps its original text, so the numbers still line up.
fn numbered_text(
    header: Option<&str>,
    body: &str,
    options: &[String],
    reply_hint: &str,
    footer: Option<&str>,
) -> Content {
    let options: Vec<String> = options
        .iter()
        .map(|option| {
            let cleaned = clean(option);
            if cleaned.is_empty() { option.clone() } else { cleaned }
        })
        .collect();
    let header = header.map(clean);
    let footer = footer.map(clean);
    let mut body_text = clean(body);
    if body_text.is_empty() {
        body_text = body.to_string();
    }
    let text = plain::numbered(
        header.as_deref(),
        &body_text,
        &options,
        &clean(reply_hint),
        footer.as_deref(),
    );
    Content::text(plain::fit(&text, CLOUD_API_MAX_TEXT_CHARS))
}

fn clean_caption(media: &Media) -> Option<Media> {
    let caption = media.caption.as_deref()?;
    let cleaned = clean(caption);
    (cleaned != caption).then(|| Media {
        caption: (!cleaned.is_empty()).then_some(cleaned),
        ..media.clone()
    })
}

/// `text` as an old device renders it well: pictographs and the invisible characters that
/// build emoji removed, typographic punctuation as ASCII, then runs of spaces left by the
/// removal collapsed, line ends trimmed and the whole trimmed.
pub fn clean(text: &str) -> String {
    let mut mapped = String::with_capacity(text.len());
    for character in text.chars() {
        match replacement(character) {
            Replacement::Keep => mapped.push(character),
            Replacement::Remove => {}
            Replacement::With(ascii) => mapped.push_str(ascii),
        }
    }
    let mut tidy = String::with_capacity(mapped.len());
    for (index, line) in mapped.split('\n').enumerate() {
        if index > 0 {
            tidy.push('\n');
        }
        let mut previous_space = false;
        for character in line.trim_end().chars() {
            let space = character == ' ';
            if !(space && previous_space) {
                tidy.push(character);
            }
            previous_space = space;
        }
    }
    tidy.trim().to_string()
}

enum Replacement {
    Keep,
    Remove,
    With(&'static str),
}

fn replacement(character: char) -> Replacement {
    match character {
        // Typographic punctuation and spaces that have plain ASCII forms.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => Replacement::With("'"),
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => Replacement::With("\""),
        '\u{2010}'..='\u{2015}' | '\u{2212}' => Replacement::With("-"),
        '\u{2026}' => Replacement::With("..."),
        '\u{2022}' => Replacement::With("-"),
        '\u{203C}' => Replacement::With("!!"),
        '\u{2049}' => Replacement::With("!?"),
        '\u{00A0}' | '\u{2002}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => Replacement::With(" "),
        _ if is_pictograph(character) || is_emoji_glue(character) => Replacement::Remove,
        _ => Replacement::Keep,
    }
}

/// Characters that only hold emoji together and show as boxes or gaps on their own: the
/// zero-width joiner, variation selectors, the keycap mark, tag characters (subdivision
/// flags), and zero-width space, word joiner and byte-order mark.
fn is_emoji_glue(character: char) -> bool {
    matches!(
        character,
        '\u{200B}'
            | '\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
            | '\u{20E3}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0020}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Emoji and other pictographs: the supplementary emoji blocks (which hold the regional
/// indicators that make flags and the skin-tone modifiers too), the miscellaneous symbols
/// and dingbats, and the emoji scattered through the technical, arrow and CJK symbol
/// blocks. Letters, digits, Latin-1 symbols (©, ®), ™, plain arrows and geometric shapes are
/// kept: old devices draw those.
fn is_pictograph(character: char) -> bool {
    matches!(
        character,
        '\u{1F000}'..='\u{1FAFF}'
            | '\u{2600}'..='\u{27BF}'
            | '\u{231A}'..='\u{231B}'
            | '\u{2328}'
            | '\u{23CF}'
            | '\u{23E9}'..='\u{23F3}'
            | '\u{23F8}'..='\u{23FA}'
            | '\u{2B05}'..='\u{2B07}'
            | '\u{2B1B}'..='\u{2B1C}'
            | '\u{2B50}'
            | '\u{2B55}'
            | '\u{3030}'
            | '\u{303D}'
            | '\u{3297}'
            | '\u{3299}'
    )
}

#[cfg(test)]
mod tests {
    use wasp_sdk::{ButtonsMessage, ListMessage, ListRow, ListSection, ReplyButton};

    use super::*;

    #[test]
    fn emoji_and_their_glue_are_removed() {
        assert_eq!(clean("Your parcel is on its way 🚚"), "Your parcel is on its way");
        assert_eq!(clean("Thanks 🙏🏽 see you"), "Thanks see you");
        // A family (ZWJ sequence), a heart with a variation selector, a keycap, a flag.
        assert_eq!(clean("👨‍👩‍👧 ❤️ 1️⃣ 🇸🇬 Singapore"), "1 Singapore");
        // A subdivision flag: black flag plus tag characters.
        assert_eq!(clean("Go 🏴󠁧󠁢󠁳󠁣󠁴󠁿!"), "Go !");
        assert_eq!(clean("Rated ⭐⭐⭐ ☀ ✅"), "Rated");
    }

    #[test]
    fn typography_becomes_ascii() {
        assert_eq!(
            clean("“Hello” – it’s ready… see 9‒5\u{00A0}today"),
            "\"Hello\" - it's ready... see 9-5 today"
        );
        assert_eq!(clean("Wow‼ • Done"), "Wow!! - Done");
    }

    #[test]
    fn letters_of_every_script_and_plain_symbols_are_kept() {
        let text = "Olá, 你好, مرحبا, Привет, नमस्ते © ® ™ → ▶ 100%";
        assert_eq!(clean(text), text);
        assert_eq!(clean("line one  \n\nline two"), "line one\n\nline two");
    }

    #[test]
    fn buttons_become_numbered_text() {
        let mut buttons = ButtonsMessage::new(
            "Can we deliver on Tuesday? 📦",
            vec![ReplyButton::new("yes", "Yes 👍"), ReplyButton::new("no", "No")],
        );
        buttons.footer = Some("Acme – Parcels".to_string());
        let rewritten = rewrite(&OldDeviceConfig::default(), &Content::InteractiveButtons(buttons));
        assert_eq!(
            rewritten,
            Some(Content::text(
                "Can we deliver on Tuesday?\n\n1. Yes\n2. No\nReply with the number.\n\nAcme - Parcels"
            ))
        );
    }

    #[test]
    fn an_option_that_is_only_an_emoji_keeps_it() {
        let buttons = ButtonsMessage::new(
            "How was it?",
            vec![ReplyButton::new("up", "👍"), ReplyButton::new("down", "👎 Bad")],
        );
        let config = OldDeviceConfig {
            reply_hint: String::new(),
            ..OldDeviceConfig::default()
        };
        assert_eq!(
            rewrite(&config, &Content::InteractiveButtons(buttons)),
            Some(Content::text("How was it?\n\n1. 👍\n2. Bad"))
        );
    }

    #[test]
    fn lists_become_numbered_text() {
        let list = ListMessage {
            header: Some("Slots".to_string()),
            body: "When should we come?".to_string(),
            footer: None,
            button: "Choose".to_string(),
            sections: vec![ListSection {
                title: None,
                rows: vec![ListRow::new("am", "Morning ☀️"), ListRow::new("pm", "Afternoon")],
            }],
        };
        assert_eq!(
            rewrite(&OldDeviceConfig::default(), &Content::InteractiveList(list)),
            Some(Content::text(
                "Slots\n\nWhen should we come?\n\n1. Morning\n2. Afternoon\nReply with the number."
            ))
        );
    }

    #[test]
    fn text_is_cleaned_only_when_something_changes() {
        let config = OldDeviceConfig::default();
        assert_eq!(rewrite(&config, &Content::text("Plain already")), None);
        assert_eq!(rewrite(&config, &Content::text("Done ✅")), Some(Content::text("Done")));
        // Only emoji: left as it is rather than sent empty.
        assert_eq!(rewrite(&config, &Content::text("👍")), None);
    }

    #[test]
    fn captions_are_cleaned_and_the_media_kept() {
        let media = Media {
            id: None,
            link: Some("https://example.com/a.jpg".to_string()),
            caption: Some("Your new look 😎".to_string()),
            filename: None,
        };
        let Some(Content::Image(cleaned)) = rewrite(&OldDeviceConfig::default(), &Content::Image(media.clone())) else {
            panic!("expected a cleaned image");
        };
        assert_eq!(cleaned.caption.as_deref(), Some("Your new look"));
        assert_eq!(cleaned.link, media.link);
        let only_emoji = Media {
            caption: Some("😎".to_string()),
            ..media
        };
        let Some(Content::Document(cleaned)) = rewrite(&OldDeviceConfig::default(), &Content::Document(only_emoji))
        else {
            panic!("expected a cleaned document");
        };
        assert_eq!(cleaned.caption, None);
    }
}
