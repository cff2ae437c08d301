//! The request options whose meaning adapters translate: `tool_choice`, `response_format`,
//! `reasoning_effort` and `logit_bias`, typed once at the front door.
//!
//! A shape the router cannot read is a 400 naming the member for every provider alike; a
//! shape it can read but a provider cannot honour is that adapter's refusal.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// `tool_choice`.
#[derive(Debug, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    /// `"none"`: no calls.
    None,
    /// `"auto"`: the model decides.
    Auto,
    /// `"required"`: at least one call.
    Required,
    /// `{"type":"function","function":{"name":...}}`: this function.
    Function(Cow<'a, str>),
    /// Another object type (`allowed_tools`, `custom`): passed to OpenAI-wire upstreams,
    /// refused by translating adapters by its `type`.
    Other(Cow<'a, str>),
}

/// `response_format`.
#[derive(Debug)]
pub enum ResponseFormat<'a> {
    /// Free text (the default).
    Text,
    /// Any single JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema(JsonSchema<'a>),
}

/// `response_format.json_schema`.
#[derive(Debug)]
pub struct JsonSchema<'a> {
    /// The schema's name.
    pub name: Cow<'a, str>,
    /// What the output is for, when given.
    pub description: Option<Cow<'a, str>>,
    /// The JSON Schema itself, as sent.
    pub schema: &'a RawValue,
    /// Whether the provider must follow the schema exactly.
    pub strict: Option<bool>,
}

/// `reasoning_effort`: how much a reasoning model may think before it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// No reasoning (models that can turn it off).
    None,
    /// The least reasoning short of none.
    Minimal,
    /// Little reasoning.
    Low,
    /// The default of most reasoning models.
    Medium,
    /// Much reasoning.
    High,
    /// More than high, on the models that offer it.
    Xhigh,
    /// As much as the model allows.
    Max,
}

impl ReasoningEffort {
    /// The value as the client spelled it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Xhigh => "xhigh",
            Self::Max => "max",
        }
    }
}

/// `logit_bias`: token id to bias. Only whether it asks for anything matters to the router.
#[derive(Debug)]
pub struct LogitBias {
    /// How many tokens it biases.
    pub entries: usize,
}

/// `tool_choice`'s object form, as sent.
#[derive(Deserialize)]
struct ToolChoiceObject<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    function: Option<NamedFunction<'a>>,
}

/// The function of a named `tool_choice`.
#[derive(Deserialize)]
struct NamedFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoiceVisitor;
        impl<'de> Visitor<'de> for ChoiceVisitor {
            type Value = ToolChoice<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "\"none\", \"auto\", \"required\" or \
                     {\"type\":\"function\",\"function\":{\"name\":...}}",
                )
            }
            fn visit_str<E: de::Error>(self, mode: &str) -> Result<Self::Value, E> {
                match mode {
                    "none" => Ok(ToolChoice::None),
                    "auto" => Ok(ToolChoice::Auto),
                    "required" => Ok(ToolChoice::Required),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let object =
                    ToolChoiceObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (&*object.kind, object.function) {
                    ("function", Some(function)) => Ok(ToolChoice::Function(function.name)),
                    ("function", None) => Err(de::Error::custom(
                        "a function tool_choice needs 'function.name'",
                    )),
                    _ => Ok(ToolChoice::Other(object.kind)),
                }
            }
        }
        deserializer.deserialize_any(ChoiceVisitor)
    }
}

/// `response_format` as sent.
#[derive(Deserialize)]
struct ResponseFormatWire<'a> {
    #[serde(rename = "type")]
    kind: FormatKind,
    #[serde(borrow, default)]
    json_schema: Option<JsonSchemaWire<'a>>,
}

/// `response_format.json_schema` as sent. A member missing or of the wrong type is a 400
/// naming it (`response_format.json_schema.schema`).
#[derive(Deserialize)]
struct JsonSchemaWire<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    schema: SchemaObject<'a>,
    #[serde(default)]
    strict: Option<bool>,
}

/// A JSON Schema, which must be an object.
struct SchemaObject<'a>(&'a RawValue);

impl<'de: 'a, 'a> Deserialize<'de> for SchemaObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        if raw.get().starts_with('{') {
            Ok(Self(raw))
        } else {
            Err(de::Error::custom("expected a JSON Schema object"))
        }
    }
}

/// `response_format.type`; another value is a 400 naming `response_format.type`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FormatKind {
    Text,
    JsonObject,
    JsonSchema,
}

impl<'de: 'a, 'a> Deserialize<'de> for ResponseFormat<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ResponseFormatWire::deserialize(deserializer)?;
        match wire.kind {
            FormatKind::Text => Ok(Self::Text),
            FormatKind::JsonObject => Ok(Self::JsonObject),
            FormatKind::JsonSchema => json_schema(wire.json_schema).map(Self::JsonSchema),
        }
    }
}

/// The one rule for a `json_schema` format, whatever the provider: it names itself and
/// carries a schema object. A schema-less format would be honoured by some providers as plain
/// JSON mode and refused by others; refusing it everywhere keeps the answer's shape certain.
fn json_schema<E: de::Error>(wire: Option<JsonSchemaWire<'_>>) -> Result<JsonSchema<'_>, E> {
    let wire = wire.ok_or_else(|| E::custom("a json_schema format needs 'json_schema'"))?;
    Ok(JsonSchema {
        name: wire.name,
        description: wire.description,
        schema: wire.schema.0,
        strict: wire.strict,
    })
}

impl<'de> Deserialize<'de> for LogitBias {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BiasVisitor;
        impl<'de> Visitor<'de> for BiasVisitor {
            type Value = LogitBias;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of token ids to numbers from -100 to 100")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = 0;
                while let Some((_, bias)) = map.next_entry::<de::IgnoredAny, f64>()? {
                    if !(-100.0..=100.0).contains(&bias) {
                        return Err(de::Error::custom(format!(
                            "bias {bias} is outside -100 to 100"
                        )));
                    }
                    entries += 1;
                }
                Ok(LogitBias { entries })
            }
        }
        deserializer.deserialize_map(BiasVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_choice_forms() {
        let choice = |json: &'static str| serde_json::from_str::<ToolChoice<'_>>(json);
        assert_eq!(choice(r#""none""#).unwrap(), ToolChoice::None);
        assert_eq!(choice(r#""auto""#).unwrap(), ToolChoice::Auto);
        assert_eq!(choice(r#""required""#).unwrap(), ToolChoice::Required);
        assert_eq!(
            choice(r#"{"function":{"name":"f"},"type":"function"}"#).unwrap(),
            ToolChoice::Function("f".into())
        );
        assert_eq!(
            choice(r#"{"type":"allowed_tools","allowed_tools":{}}"#).unwrap(),
            ToolChoice::Other("allowed_tools".into())
        );
        for bad in [
            r#""any""#,
            r#"{"type":"function"}"#,
            "3",
            r#"{"function":{}}"#,
        ] {
            assert!(choice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_format_forms() {
        let format = |json: &'static str| serde_json::from_str::<ResponseFormat<'_>>(json);
        assert!(matches!(
            format(r#"{"type":"text"}"#),
            Ok(ResponseFormat::Text)
        ));
        assert!(matches!(
            format(r#"{"type":"json_object"}"#),
            Ok(ResponseFormat::JsonObject)
        ));
        let Ok(ResponseFormat::JsonSchema(schema)) = format(
            r#"{"type":"json_schema","json_schema":{"name":"n","strict":true,"schema":{"type":"object"}}}"#,
        ) else {
            panic!("not a schema");
        };
        assert_eq!(schema.name, "n");
        assert_eq!(schema.strict, Some(true));
        assert_eq!(schema.schema.get(), r#"{"type":"object"}"#);
        for (bad, says) in [
            (r#"{"type":"json_schema"}"#, "needs 'json_schema'"),
            (
                r#"{"type":"json_schema","json_schema":{"name":"n"}}"#,
                "missing field `schema`",
            ),
            (
                r#"{"type":"json_schema","json_schema":{"name":"n","schema":null}}"#,
                "expected a JSON Schema object",
            ),
            (
                r#"{"type":"json_schema","json_schema":{"schema":{}}}"#,
                "missing field `name`",
            ),
            (r#"{"type":"xml"}"#, "unknown variant `xml`"),
        ] {
            let error = format(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn logit_bias_counts_and_checks_entries() {
        let bias = |json: &'static str| serde_json::from_str::<LogitBias>(json);
        assert_eq!(bias("{}").unwrap().entries, 0);
        assert_eq!(bias(r#"{"50256":-100,"7":2.5}"#).unwrap().entries, 2);
        assert!(bias(r#"{"1":101}"#).is_err());
        assert!(bias(r#"{"1":"x"}"#).is_err());
        assert!(bias("[]").is_err());
    }

    #[test]
    fn reasoning_effort_values() {
        let effort = |json: &'static str| serde_json::from_str::<ReasoningEffort>(json);
        assert_eq!(effort(r#""xhigh""#).unwrap(), ReasoningEffort::Xhigh);
        assert_eq!(effort(r#""none""#).unwrap().as_str(), "none");
        assert!(effort(r#""extreme""#).is_err());
    }
}
