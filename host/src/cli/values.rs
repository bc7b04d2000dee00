//! JSON ↔ component values, driven by the component's own types, so `wasp plugin test`
//! follows the contract without a hand-written mirror of its records.
//!
//! The JSON shape is the fixture format of `sdk/README.md`: records are objects keyed by the
//! contract's field names in snake_case (`preview-url` → `preview_url`); enum cases are strings;
//! variant cases are `{"case": payload}`, or the bare string for a case without a payload;
//! options are the value or `null`; tuples are arrays; unknown keys are refused. Options and
//! lists may be left out. Where the fixture format says so (the context), every field may be
//! left out and takes its neutral value (see [`neutral`]). Owns the conversion only.

use std::fmt;

use serde_json::{Map, Number, Value};
use wasmtime::component::{Type, Val};

/// How a record treats a field the JSON leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Only options (none) and lists (empty) may be left out.
    Refused,
    /// Every field may be left out and takes its neutral value.
    Neutral,
}

/// Strings whose neutral value is not empty, by field path; they mirror the SDK's
/// `Default` for the context (`RecipientFacts::default` has the time zone `UTC`).
const NEUTRAL_STRINGS: &[(&str, &str)] = &[("context.recipient.time_zone", "UTC")];

/// A value that does not fit its type, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "`{}`: {}", self.path, self.message)
    }
}

impl std::error::Error for ValueError {}

/// A contract name (kebab-case) as fixtures spell it (snake_case).
pub fn snake(name: &str) -> String {
    name.replace('-', "_")
}

fn error(path: &str, message: impl Into<String>) -> ValueError {
    ValueError {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(path: &str, what: &str, value: &Value) -> ValueError {
    error(path, format!("expected {what}, got {}", kind(value)))
}

fn integer<T: TryFrom<i64> + TryFrom<u64>>(value: &Value, path: &str, name: &str) -> Result<T, ValueError> {
    let out_of_range = || error(path, format!("{value} does not fit in {name}"));
    match value {
        Value::Number(number) => {
            if let Some(unsigned) = number.as_u64() {
                T::try_from(unsigned).map_err(|_| out_of_range())
            } else if let Some(signed) = number.as_i64() {
                T::try_from(signed).map_err(|_| out_of_range())
            } else {
                Err(error(path, format!("expected a whole number ({name}), got {number}")))
            }
        }
        other => Err(expected(path, &format!("a whole number ({name})"), other)),
    }
}

/// Converts `value` to a value of type `ty`; `path` names it in errors (`message.content`).
pub fn from_json(value: &Value, ty: &Type, path: &str, absent: Absent) -> Result<Val, ValueError> {
    Ok(match ty {
        Type::Bool => match value {
            Value::Bool(flag) => Val::Bool(*flag),
            other => return Err(expected(path, "true or false", other)),
        },
        Type::S8 => Val::S8(integer(value, path, "s8")?),
        Type::U8 => Val::U8(integer(value, path, "u8")?),
        Type::S16 => Val::S16(integer(value, path, "s16")?),
        Type::U16 => Val::U16(integer(value, path, "u16")?),
        Type::S32 => Val::S32(integer(value, path, "s32")?),
        Type::U32 => Val::U32(integer(value, path, "u32")?),
        Type::S64 => Val::S64(integer(value, path, "s64")?),
        Type::U64 => Val::U64(integer(value, path, "u64")?),
        Type::Float32 | Type::Float64 => {
            let number = value.as_f64().ok_or_else(|| expected(path, "a number", value))?;
            if matches!(ty, Type::Float32) {
                // The contract's f32 fields are ratios; the narrowing is the point.
                #[allow(clippy::cast_possible_truncation)]
                Val::Float32(number as f32)
            } else {
                Val::Float64(number)
            }
        }
        Type::Char => {
            let text = value
                .as_str()
                .ok_or_else(|| expected(path, "a one-character string", value))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(single), None) => Val::Char(single),
                _ => return Err(error(path, format!("expected one character, got {text:?}"))),
            }
        }
        Type::String => match value {
            Value::String(text) => Val::String(text.clone()),
            other => return Err(expected(path, "a string", other)),
        },
        Type::List(list) => {
            let items = value.as_array().ok_or_else(|| expected(path, "an array", value))?;
            let element = list.ty();
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| from_json(item, &element, &format!("{path}[{index}]"), absent))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Tuple(tuple) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected(path, "an array (a tuple)", value))?;
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return Err(error(
                    path,
                    format!("expected a tuple of {} items, got {}", types.len(), items.len()),
                ));
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(index, (item, ty))| from_json(item, ty, &format!("{path}[{index}]"), absent))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(record) => {
            let object = value.as_object().ok_or_else(|| expected(path, "an object", value))?;
            let fields: Vec<(String, Type)> = record.fields().map(|field| (field.name.to_owned(), field.ty)).collect();
            if let Some(unknown) = object
                .keys()
                .find(|key| !fields.iter().any(|(name, _)| snake(name) == **key))
            {
                let known: Vec<String> = fields.iter().map(|(name, _)| snake(name)).collect();
                return Err(error(
                    &format!("{path}.{unknown}"),
                    format!("unknown field; expected one of: {}", known.join(", ")),
                ));
            }
            let mut values = Vec::with_capacity(fields.len());
            for (name, ty) in &fields {
                let key = snake(name);
                let field_path = format!("{path}.{key}");
                let converted = match object.get(&key) {
                    Some(field) => from_json(field, ty, &field_path, absent)?,
                    None => match (ty, absent) {
                        (Type::Option(_), _) => Val::Option(None),
                        (Type::List(_), _) => Val::List(Vec::new()),
                        (_, Absent::Neutral) => neutral(ty, &field_path)?,
                        (_, Absent::Refused) => return Err(error(&field_path, "missing; this field is required")),
                    },
                };
                values.push((name.clone(), converted));
            }
            Val::Record(values)
        }
        Type::Variant(variant) => {
            let cases: Vec<(String, Option<Type>)> =
                variant.cases().map(|case| (case.name.to_owned(), case.ty)).collect();
            let names = || cases.iter().map(|(name, _)| snake(name)).collect::<Vec<_>>().join(", ");
            let (key, payload) = one_key(value, path).map_err(|_| {
                error(
                    path,
                    format!(
                        "expected a case as \"case\" or {{\"case\": payload}}, one of: {}",
                        names()
                    ),
                )
            })?;
            let Some((name, ty)) = cases.iter().find(|(name, _)| snake(name) == key) else {
                return Err(error(
                    path,
                    format!("unknown case {key:?}; expected one of: {}", names()),
                ));
            };
            let case_path = format!("{path}.{key}");
            let payload = match (ty, payload) {
                (None, None | Some(Value::Null)) => None,
                (None, Some(_)) => return Err(error(&case_path, "this case takes no payload")),
                (Some(ty), Some(payload)) => Some(Box::new(from_json(payload, ty, &case_path, absent)?)),
                (Some(_), None) => return Err(error(&case_path, "this case needs a payload: {\"case\": payload}")),
            };
            Val::Variant(name.clone(), payload)
        }
        Type::Enum(enumeration) => {
            let text = value
                .as_str()
                .ok_or_else(|| expected(path, "a string (an enum case)", value))?;
            match enumeration.names().find(|name| snake(name) == text) {
                Some(name) => Val::Enum(name.to_owned()),
                None => {
                    let names: Vec<String> = enumeration.names().map(snake).collect();
                    return Err(error(
                        path,
                        format!("unknown case {text:?}; expected one of: {}", names.join(", ")),
                    ));
                }
            }
        }
        Type::Option(option) => match value {
            Value::Null => Val::Option(None),
            some => Val::Option(Some(Box::new(from_json(some, &option.ty(), path, absent)?))),
        },
        Type::Result(result) => {
            let (key, payload) = one_key(value, path)?;
            let side = match key {
                "ok" => result.ok(),
                "err" => result.err(),
                other => {
                    return Err(error(
                        path,
                        format!("expected {{\"ok\": …}} or {{\"err\": …}}, got {other:?}"),
                    ));
                }
            };
            let converted = match (side, payload) {
                (None, None | Some(Value::Null)) => None,
                (Some(ty), Some(payload)) => Some(Box::new(from_json(payload, &ty, &format!("{path}.{key}"), absent)?)),
                _ => return Err(error(path, format!("`{key}` payload does not match the type"))),
            };
            Val::Result(if key == "ok" { Ok(converted) } else { Err(converted) })
        }
        Type::Flags(flags) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected(path, "an array of flag names", value))?;
            let mut set = Vec::with_capacity(items.len());
            for item in items {
                let text = item.as_str().ok_or_else(|| expected(path, "a flag name", item))?;
                match flags.names().find(|name| snake(name) == text) {
                    Some(name) => set.push(name.to_owned()),
                    None => return Err(error(path, format!("unknown flag {text:?}"))),
                }
            }
            Val::Flags(set)
        }
        other => {
            return Err(error(
                path,
                format!("values of type {other:?} cannot be written in a fixture"),
            ));
        }
    })
}

/// A variant case as JSON: a bare string, or an object with exactly one key.
fn one_key<'a>(value: &'a Value, path: &str) -> Result<(&'a str, Option<&'a Value>), ValueError> {
    match value {
        Value::String(name) => Ok((name.as_str(), None)),
        Value::Object(object) if object.len() == 1 => match object.iter().next() {
            Some((name, payload)) => Ok((name.as_str(), Some(payload))),
            None => Err(expected(path, "an object with one key", value)),
        },
        other => Err(expected(path, "a string or an object with one key", other)),
    }
}

/// The neutral value of `ty`: zero, false, empty, none, the first case; records field by
/// field. The path picks the exceptions in [`NEUTRAL_STRINGS`].
pub fn neutral(ty: &Type, path: &str) -> Result<Val, ValueError> {
    Ok(match ty {
        Type::Bool => Val::Bool(false),
        Type::S8 => Val::S8(0),
        Type::U8 => Val::U8(0),
        Type::S16 => Val::S16(0),
        Type::U16 => Val::U16(0),
        Type::S32 => Val::S32(0),
        Type::U32 => Val::U32(0),
        Type::S64 => Val::S64(0),
        Type::U64 => Val::U64(0),
        Type::Float32 => Val::Float32(0.0),
        Type::Float64 => Val::Float64(0.0),
        Type::Char => Val::Char('\0'),
        Type::String => Val::String(
            NEUTRAL_STRINGS
                .iter()
                .find(|(field, _)| *field == path)
                .map(|(_, text)| (*text).to_owned())
                .unwrap_or_default(),
        ),
        Type::List(_) => Val::List(Vec::new()),
        Type::Option(_) => Val::Option(None),
        Type::Flags(_) => Val::Flags(Vec::new()),
        Type::Tuple(tuple) => Val::Tuple(
            tuple
                .types()
                .enumerate()
                .map(|(index, ty)| neutral(&ty, &format!("{path}[{index}]")))
                .collect::<Result<_, _>>()?,
        ),
        Type::Record(record) => Val::Record(
            record
                .fields()
                .map(|field| {
                    Ok((
                        field.name.to_owned(),
                        neutral(&field.ty, &format!("{path}.{}", snake(field.name)))?,
                    ))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        Type::Enum(enumeration) => match enumeration.names().next() {
            Some(first) => Val::Enum(first.to_owned()),
            None => return Err(error(path, "an enum without cases has no neutral value")),
        },
        Type::Variant(variant) => match variant.cases().next() {
            Some(case) => {
                let payload = match &case.ty {
                    Some(ty) => Some(Box::new(neutral(ty, &format!("{path}.{}", snake(case.name)))?)),
                    None => None,
                };
                Val::Variant(case.name.to_owned(), payload)
            }
            None => return Err(error(path, "a variant without cases has no neutral value")),
        },
        other => {
            return Err(error(
                path,
                format!("type {other:?} has no neutral value; give it in the fixture"),
            ));
        }
    })
}

/// A value as fixtures write it (for showing what a plugin returned).
pub fn to_json(value: &Val) -> Value {
    match value {
        Val::Bool(flag) => Value::Bool(*flag),
        Val::S8(number) => Value::from(*number),
        Val::U8(number) => Value::from(*number),
        Val::S16(number) => Value::from(*number),
        Val::U16(number) => Value::from(*number),
        Val::S32(number) => Value::from(*number),
        Val::U32(number) => Value::from(*number),
        Val::S64(number) => Value::from(*number),
        Val::U64(number) => Value::from(*number),
        Val::Float32(number) => Number::from_f64(f64::from(*number)).map_or(Value::Null, Value::Number),
        Val::Float64(number) => Number::from_f64(*number).map_or(Value::Null, Value::Number),
        Val::Char(single) => Value::String(single.to_string()),
        Val::String(text) => Value::String(text.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(to_json).collect())
        }
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| (snake(name), to_json(field)))
                .collect::<Map<String, Value>>(),
        ),
        Val::Variant(name, None) | Val::Enum(name) => Value::String(snake(name)),
        Val::Variant(name, Some(payload)) => {
            let mut object = Map::new();
            object.insert(snake(name), to_json(payload));
            Value::Object(object)
        }
        Val::Option(None) => Value::Null,
        Val::Option(Some(inner)) => to_json(inner),
        Val::Result(result) => {
            let (key, payload) = match result {
                Ok(payload) => ("ok", payload),
                Err(payload) => ("err", payload),
            };
            let mut object = Map::new();
            object.insert(key.to_owned(), payload.as_deref().map_or(Value::Null, to_json));
            Value::Object(object)
        }
        Val::Flags(names) => Value::Array(names.iter().map(|name| Value::String(snake(name))).collect()),
        Val::Map(entries) => Value::Array(
            entries
                .iter()
                .map(|(key, value)| Value::Array(vec![to_json(key), to_json(value)]))
                .collect(),
        ),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
            Value::String("<handle>".to_owned())
        }
    }
}
