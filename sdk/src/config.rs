//! Parsing a plugin's JSON config into its typed config struct, with errors that name the
//! field at fault. Calls only serde.

use serde::de::DeserializeOwned;

/// Parses a plugin's config.
///
/// An empty config (`""`, `"{}"` or `"null"`, surrounding whitespace ignored) gives
/// `T::default()`. Anything else must deserialize into `T`; put
/// `#[serde(default, deny_unknown_fields)]` on the struct so missing keys take their
/// defaults and misspelt keys are refused. The error names the field at fault, for
/// example ``config field `max_rows`: invalid type: string "ten", expected u32 at line 1 column 18``.
pub fn parse_config<T: DeserializeOwned + Default>(config: &str) -> Result<T, String> {
    let trimmed = config.trim();
    if trimmed.is_empty() || trimmed == "null" || is_empty_object(trimmed) {
        return Ok(T::default());
    }
    let mut deserializer = serde_json::Deserializer::from_str(trimmed);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            format!("config: {}", error.inner())
        } else {
            format!("config field `{path}`: {}", error.inner())
        }
    })?;
    deserializer.end().map_err(|error| format!("config: {error}"))?;
    Ok(parsed)
}

fn is_empty_object(text: &str) -> bool {
    text.strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|inside| inside.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::parse_config;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Limits {
        max_rows: u32,
        label: String,
        nested: Nested,
    }

    #[derive(Debug, PartialEq, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Nested {
        deadline_ms: u64,
    }

    impl Default for Limits {
        fn default() -> Self {
            Limits {
                max_rows: 10,
                label: "Choose".to_string(),
                nested: Nested::default(),
            }
        }
    }

    #[test]
    fn empty_configs_give_defaults() {
        for config in ["", "  ", "{}", "{ }", "null", " null\n"] {
            assert_eq!(parse_config::<Limits>(config), Ok(Limits::default()), "{config:?}");
        }
    }

    #[test]
    fn given_keys_override_defaults() {
        let parsed: Limits = parse_config(r#"{"max_rows": 5}"#).expect("parses");
        assert_eq!(parsed.max_rows, 5);
        assert_eq!(parsed.label, "Choose");
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let error = parse_config::<Limits>(r#"{"max_rows": "ten"}"#).expect_err("refused");
        assert!(error.starts_with("config field `max_rows`: invalid type"), "{error}");

        let error = parse_config::<Limits>(r#"{"nested": {"deadline_ms": -1}}"#).expect_err("refused");
        assert!(error.starts_with("config field `nested.deadline_ms`:"), "{error}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let error = parse_config::<Limits>(r#"{"max_row": 5}"#).expect_err("refused");
        assert!(error.contains("unknown field `max_row`"), "{error}");
    }

    #[test]
    fn malformed_json_and_trailing_text_are_refused() {
        assert!(parse_config::<Limits>("{").is_err());
        assert!(parse_config::<Limits>(r#"{"max_rows": 5} x"#).is_err());
    }
}
