//! Finding the placeholders (`{{1}}`, `{{first_name}}`) of a template text, and the braces
//! that belong to none. Pure functions over the text; calls nothing.

use std::collections::BTreeSet;

/// One `{{…}}` in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// Byte offset of the first `{`.
    pub start: usize,
    /// Byte offset just past the last `}`.
    pub end: usize,
    /// The placeholder as written, braces included.
    pub raw: String,
    /// What is between the braces, as written.
    pub inner: String,
}

impl Placeholder {
    /// The number of a well-formed positional placeholder (`{{3}}` is 3).
    pub fn number(&self) -> Option<u32> {
        if self.inner.is_empty() || !self.inner.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        self.inner.parse().ok().filter(|number| *number > 0)
    }

    fn is_snake_case(&self) -> bool {
        let mut bytes = self.inner.bytes();
        bytes.next().is_some_and(|first| first.is_ascii_lowercase())
            && bytes.all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
    }

    /// What is wrong with this placeholder for the parameter format, if anything.
    pub fn problem(&self, named: bool) -> Option<String> {
        let raw = &self.raw;
        let trimmed = self.inner.trim();
        if self.inner.is_empty() || trimmed.is_empty() {
            return Some(format!("{raw} is an empty placeholder"));
        }
        if trimmed != self.inner {
            return Some(format!("{raw} has spaces inside the braces; write {{{{{trimmed}}}}}"));
        }
        if named {
            if self.number().is_some() {
                return Some(format!(
                    "{raw} is a positional placeholder, but the template's parameter_format is named"
                ));
            }
            if !self.is_snake_case() {
                return Some(format!(
                    "{raw} is not a named placeholder: use lower case letters, digits and underscores, starting with a letter"
                ));
            }
            return None;
        }
        if self.number().is_some() {
            return None;
        }
        if self.is_snake_case() {
            return Some(format!(
                "{raw} is a named placeholder, but the template's parameter_format is positional ({{{{1}}}}, {{{{2}}}}, ...)"
            ));
        }
        Some(format!(
            "{raw} is not a positional placeholder: write {{{{1}}}}, {{{{2}}}}, ..."
        ))
    }
}

/// A text's placeholders, in order, and its braces that belong to none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub placeholders: Vec<Placeholder>,
    /// Each stray: its character position and the text at fault (`{1}`, `{{`, `}`).
    pub stray_braces: Vec<(usize, String)>,
    /// The text with the placeholders cut out.
    outside: String,
}

impl Scan {
    pub fn of(text: &str) -> Scan {
        let bytes = text.as_bytes();
        let mut scan = Scan::default();
        let char_at = |offset: usize| text[..offset].chars().count();
        let mut index = 0;
        while index < bytes.len() {
            match bytes[index] {
                b'{' if bytes.get(index + 1) == Some(&b'{') => {
                    let inner_start = index + 2;
                    let closing = text[inner_start..].find("}}").map(|offset| inner_start + offset);
                    match closing {
                        Some(close) if !text[inner_start..close].contains(['{', '}']) => {
                            scan.placeholders.push(Placeholder {
                                start: index,
                                end: close + 2,
                                raw: text[index..close + 2].to_string(),
                                inner: text[inner_start..close].to_string(),
                            });
                            scan.outside.push(' ');
                            index = close + 2;
                        }
                        _ => {
                            scan.stray_braces.push((char_at(index), "{{".to_string()));
                            index += 2;
                        }
                    }
                }
                b'{' => {
                    // `{1}`: a single-brace placeholder is one stray, not two.
                    let close = text[index + 1..].find(['{', '}']).map(|offset| index + 1 + offset);
                    match close {
                        Some(close) if bytes[close] == b'}' && bytes.get(close + 1) != Some(&b'}') => {
                            scan.stray_braces
                                .push((char_at(index), text[index..=close].to_string()));
                            index = close + 1;
                        }
                        _ => {
                            scan.stray_braces.push((char_at(index), "{".to_string()));
                            index += 1;
                        }
                    }
                }
                b'}' => {
                    scan.stray_braces.push((char_at(index), "}".to_string()));
                    index += 1;
                }
                _ => {
                    let next = text[index..]
                        .find(['{', '}'])
                        .map_or(bytes.len(), |offset| index + offset);
                    scan.outside.push_str(&text[index..next]);
                    index = next;
                }
            }
        }
        scan
    }

    /// The distinct placeholders, by what is between their braces.
    pub fn distinct_names(&self) -> BTreeSet<&str> {
        self.placeholders
            .iter()
            .map(|placeholder| placeholder.inner.trim())
            .collect()
    }

    /// Words (runs without spaces holding a letter or digit) outside the placeholders.
    pub fn words_outside_placeholders(&self) -> usize {
        self.outside
            .split_whitespace()
            .filter(|word| word.chars().any(char::is_alphanumeric))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_strays_are_found() {
        let scan = Scan::of("Hi {{1}}, order {2} of {{ 3 }} ships }");
        let raws: Vec<&str> = scan
            .placeholders
            .iter()
            .map(|placeholder| placeholder.raw.as_str())
            .collect();
        assert_eq!(raws, ["{{1}}", "{{ 3 }}"]);
        assert_eq!(scan.stray_braces, vec![(16, "{2}".to_string()), (37, "}".to_string())]);
        assert_eq!(scan.words_outside_placeholders(), 4);
        assert!(Scan::of("unclosed {{1").stray_braces.len() == 1);
    }

    #[test]
    fn problems_depend_on_the_format() {
        let scan = Scan::of("{{1}} {{first_name}} {{ 2 }} {{First}}");
        let problems: Vec<Option<String>> = scan.placeholders.iter().map(|p| p.problem(false)).collect();
        assert!(problems[0].is_none());
        assert!(problems[1].as_deref().unwrap().contains("named placeholder"));
        assert!(problems[2].as_deref().unwrap().contains("spaces"));
        assert!(problems[3].as_deref().unwrap().contains("not a positional"));
        assert!(scan.placeholders[1].problem(true).is_none());
        assert!(
            scan.placeholders[0]
                .problem(true)
                .unwrap()
                .contains("positional placeholder")
        );
    }
}
