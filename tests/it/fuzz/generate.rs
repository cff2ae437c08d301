//! Generators shared by the properties: JSON values, hostile JSON literals, valid chat
//! requests written member by member (so a test knows where each member's bytes are), and a
//! target of every wire format.

use std::sync::LazyLock;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use switchboard::config::{self, ProviderKind, Target};

/// Short text of any characters: control characters, quotes, backslashes, every plane.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 .,!?]{0,24}",
        2 => vec(any::<char>(), 0..16).prop_map(String::from_iter),
        1 => Just("caf\u{e9} \u{1f600} \u{2028}\"\\\u{0}\u{7f}".to_owned()),
    ]
}

/// A name the providers accept for functions and fields.
pub(crate) fn identifier() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,11}"
}

/// Any JSON value, nested up to four levels.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON text the router must carry without reading it the way `serde_json::Value` would:
/// numbers beyond f64 and u64, trailing zeros, escapes, surrogate pairs, deep nesting (up to
/// the door's limit). A lone surrogate escape is not here: the door refuses it (tests/it/poison.rs).
pub(crate) fn hostile_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1000.00".to_owned()),
        Just("1e400".to_owned()),
        Just("-1e-400".to_owned()),
        Just("123456789012345678901234567890".to_owned()),
        Just("-0.0".to_owned()),
        Just(r#""caf\u00e9 \ud83d\ude00 \/ \b\f\n\r\t""#.to_owned()),
        Just(r#"{"a":{"b":[1,2,{"c":null}]},"":""}"#.to_owned()),
        (1usize..120).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        (1usize..60).prop_map(|depth| format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth))),
    ]
}

/// A JSON value's text: a generated value or a hostile literal.
pub(crate) fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json_value().prop_map(|v| v.to_string()),
        1 => hostile_literal(),
    ]
}

/// A JSON object written member by member: each member's key and value text are known, so a
/// test can say which bytes an adapter may change.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    /// `(key, value text)` in wire order.
    pub(crate) members: Vec<(String, String)>,
    /// Between `:` and a value: `""` or `" "`.
    pub(crate) after_colon: &'static str,
    /// Between members: `","` or `",\n  "`.
    pub(crate) separator: &'static str,
}

impl Body {
    /// The body's bytes.
    pub(crate) fn render(&self) -> Vec<u8> {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|(key, value)| {
                format!("{}:{}{value}", Value::from(key.as_str()), self.after_colon)
            })
            .collect();
        format!("{{{}}}", members.join(self.separator)).into_bytes()
    }

    /// The value text of member `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The same body with member `key`'s value text replaced.
    pub(crate) fn with(&self, key: &str, value: String) -> Self {
        let mut body = self.clone();
        if let Some(member) = body.members.iter_mut().find(|(k, _)| k == key) {
            member.1 = value;
        }
        body
    }
}

/// A value written compact or pretty.
fn written(value: Value, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        value.to_string()
    }
}

/// Content parts: text and images (https URLs and data URLs).
fn parts(images: bool) -> impl Strategy<Value = Value> {
    let text_part = text().prop_map(|t| json!({"type": "text", "text": t}));
    let image = prop_oneof![
        Just("https://example.com/cat.png".to_owned()),
        Just("data:image/png;base64,iVBORw0KGgo=".to_owned()),
        Just("data:image/jpeg;base64,/9j/4AAQSkZJRg==".to_owned()),
        text(),
    ];
    let image_part = (
        image,
        option::of(prop_oneof![Just("auto"), Just("low"), Just("high")]),
    )
        .prop_map(|(url, detail)| {
            let mut image_url = json!({"url": url});
            if let Some(detail) = detail {
                image_url["detail"] = Value::from(detail);
            }
            json!({"type": "image_url", "image_url": image_url})
        });
    let part = if images {
        prop_oneof![2 => text_part, 1 => image_part].boxed()
    } else {
        text_part.boxed()
    };
    vec(part, 1..4).prop_map(Value::Array)
}

/// Message content: a string or parts.
fn content(images: bool) -> impl Strategy<Value = Value> {
    prop_oneof![2 => text().prop_map(Value::from), 1 => parts(images)]
}

/// A tool call's arguments: usually a JSON object's text, sometimes not JSON at all.
fn arguments() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => btree_map(identifier(), json_value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()).to_string()),
        1 => Just(String::new()),
        1 => text(),
    ]
}

fn tool_call() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        "call_[A-Za-z0-9]{1,24}",
        "toolu_[A-Za-z0-9]{1,24}",
        "[A-Za-z0-9]{9}",
        text(),
    ];
    (id, identifier(), arguments()).prop_map(|(id, name, arguments)| {
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
    })
}

/// One message of any role, valid for the front door.
fn message() -> impl Strategy<Value = Value> {
    let name = || option::of(identifier());
    let with_name = |mut message: Value, name: Option<String>| {
        if let Some(name) = name {
            message["name"] = Value::from(name);
        }
        message
    };
    let system = (
        prop_oneof![Just("system"), Just("developer")],
        content(false),
        name(),
    )
        .prop_map(move |(role, content, name)| {
            with_name(json!({"role": role, "content": content}), name)
        });
    let user = (content(true), name()).prop_map(move |(content, name)| {
        with_name(json!({"role": "user", "content": content}), name)
    });
    let assistant = (
        option::of(prop_oneof![content(false), Just(Value::Null)]),
        option::of(vec(tool_call(), 1..3)),
        any::<bool>(),
    )
        .prop_map(|(content, calls, reasoning)| {
            let mut message = json!({"role": "assistant"});
            match (content, calls) {
                (None, None) => message["content"] = Value::from("ok"),
                (content, calls) => {
                    if let Some(content) = content {
                        message["content"] = content;
                    }
                    if let Some(calls) = calls {
                        message["tool_calls"] = Value::Array(calls);
                    }
                }
            }
            if message["content"].is_null() && message.get("tool_calls").is_none() {
                message["content"] = Value::from("ok");
            }
            if reasoning {
                message["reasoning_content"] = Value::from("thinking");
            }
            message
        });
    let tool = ("call_[A-Za-z0-9]{1,24}|[A-Za-z0-9]{9}", content(false))
        .prop_map(|(id, content)| json!({"role": "tool", "tool_call_id": id, "content": content}));
    let message = prop_oneof![1 => system, 3 => user, 2 => assistant, 1 => tool];
    (message, proptest::bool::weighted(0.1)).prop_map(|(mut message, hostile)| {
        if hostile {
            message["x_raw"] = Value::from(HOSTILE);
        }
        message
    })
}

/// Stands for a [`hostile_literal`] inside a message until the body is written: a
/// `serde_json::Value` cannot hold `1e400` or a lone surrogate.
const HOSTILE: &str = "@@hostile@@";

/// A JSON-Schema-ish `parameters` object, or any value at all.
fn schema() -> impl Strategy<Value = Value> {
    prop_oneof![4 => object_schema(), 1 => json_value()]
}

/// A JSON-Schema-ish object schema (what a `json_schema` response format must carry).
fn object_schema() -> impl Strategy<Value = Value> {
    let property = (
        prop_oneof![
            Just("string"),
            Just("integer"),
            Just("number"),
            Just("boolean"),
            Just("array"),
            Just("object")
        ],
        option::of(text()),
    )
        .prop_map(|(kind, description)| {
            let mut property = json!({"type": kind});
            if let Some(description) = description {
                property["description"] = Value::from(description);
            }
            if kind == "array" {
                property["items"] = json!({"type": "string"});
            }
            property
        });
    (btree_map(identifier(), property, 0..5), any::<bool>()).prop_map(|(properties, require)| {
        let required: Vec<&String> = if require {
            properties.keys().collect()
        } else {
            Vec::new()
        };
        json!({"type": "object", "properties": properties, "required": required})
    })
}

fn tool() -> impl Strategy<Value = Value> {
    (identifier(), option::of(text()), option::of(schema())).prop_map(
        |(name, description, parameters)| {
            let mut function = json!({"name": name});
            if let Some(description) = description {
                function["description"] = Value::from(description);
            }
            if let Some(parameters) = parameters {
                function["parameters"] = parameters;
            }
            json!({"type": "function", "function": function})
        },
    )
}

fn stop() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        vec(text(), 0..4).prop_map(Value::from)
    ]
}

fn response_format() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "text"})),
        Just(json!({"type": "json_object"})),
        (identifier(), object_schema()).prop_map(|(name, schema)| {
            json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema}})
        }),
    ]
}

fn tool_choice(tool_names: Vec<String>) -> BoxedStrategy<Value> {
    let fixed = prop_oneof![Just("none"), Just("auto"), Just("required")].prop_map(Value::from);
    if tool_names.is_empty() {
        return fixed.boxed();
    }
    let named = proptest::sample::select(tool_names)
        .prop_map(|name| json!({"type": "function", "function": {"name": name}}));
    prop_oneof![fixed, named].boxed()
}

/// The optional members of a chat request, each with a valid value, and `stream` with its
/// options.
fn optional_members() -> impl Strategy<Value = Vec<(String, Value)>> {
    let numbers = (
        option::of(0.0f64..=2.0),
        option::of(0.0f64..=1.0),
        option::of(1u32..=3),
        option::of(1u32..100_000),
        option::of(1u32..100_000),
        option::of(any::<i64>()),
        option::of(-2.0f64..=2.0),
        option::of(-2.0f64..=2.0),
    );
    let others = (
        option::of(stop()),
        option::of(any::<bool>()),
        option::of(response_format()),
        option::of(text()),
        any::<bool>(),
        option::of(prop_oneof![
            Just(Value::Null),
            Just(json!({})),
            any::<bool>().prop_map(|usage| json!({"include_usage": usage})),
            Just(json!({"include_usage": false, "x_future": [1]})),
        ]),
    );
    (numbers, others).prop_map(|(numbers, others)| {
        let (temperature, top_p, n, max_tokens, max_completion_tokens, seed, presence, frequency) =
            numbers;
        let (stop, parallel, format, user, stream, stream_options) = others;
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                members.push((key.to_owned(), value));
            }
        };
        put("temperature", temperature.map(Value::from));
        put("top_p", top_p.map(Value::from));
        put("n", n.map(Value::from));
        put("max_tokens", max_tokens.map(Value::from));
        put(
            "max_completion_tokens",
            max_completion_tokens.map(Value::from),
        );
        put("seed", seed.map(Value::from));
        put("presence_penalty", presence.map(Value::from));
        put("frequency_penalty", frequency.map(Value::from));
        put("stop", stop);
        put("parallel_tool_calls", parallel.map(Value::from));
        put("response_format", format);
        put("user", user.map(Value::from));
        if stream {
            put("stream", Some(Value::Bool(true)));
            put("stream_options", stream_options);
        }
        members
    })
}

/// A valid chat request, written member by member in a shuffled order, with unknown members
/// of any value (hostile literals included) that OpenAI-wire upstreams must receive intact.
pub(crate) fn chat_body() -> impl Strategy<Value = Body> {
    let extras = btree_map("x_[a-z0-9_]{1,10}", json_text(), 0..4);
    let model = prop_oneof![
        Just("chat".to_owned()),
        text().prop_map(|t| format!("m{t}"))
    ];
    (
        model,
        vec(message(), 1..6),
        option::of(vec(tool(), 1..4)),
        optional_members(),
        extras,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_flat_map(
            |(
                model,
                messages,
                tools,
                optional,
                extras,
                pretty,
                spaced,
                tool_choice_wanted,
                order,
            )| {
                let names: Vec<String> = tools
                    .iter()
                    .flatten()
                    .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                    .collect();
                let choice = if tool_choice_wanted {
                    option::of(tool_choice(names)).boxed()
                } else {
                    Just(None).boxed()
                };
                (
                    Just((
                        model, messages, tools, optional, extras, pretty, spaced, order,
                    )),
                    choice,
                )
            },
        )
        .prop_map(
            |((model, messages, tools, optional, extras, pretty, spaced, order), choice)| {
                let mut members = vec![
                    ("model".to_owned(), Value::from(model).to_string()),
                    (
                        "messages".to_owned(),
                        written(Value::Array(messages), pretty),
                    ),
                ];
                if let Some(tools) = tools {
                    members.push(("tools".to_owned(), written(Value::Array(tools), pretty)));
                }
                if let Some(choice) = choice {
                    members.push(("tool_choice".to_owned(), choice.to_string()));
                }
                members.extend(optional.into_iter().map(|(k, v)| (k, written(v, pretty))));
                members.extend(extras);
                // A deterministic shuffle from the generated seed: wire order is the client's.
                let mut state = order;
                for i in (1..members.len()).rev() {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let j = usize::try_from(state >> 33).unwrap_or(0) % (i + 1);
                    members.swap(i, j);
                }
                Body {
                    members,
                    after_colon: if spaced { " " } else { "" },
                    separator: if spaced { ",\n  " } else { "," },
                }
            },
        )
}

include!("../../fixtures/every_wire.rs");
/// A target of every wire format, resolved once.
pub(crate) fn targets() -> &'static [(ProviderKind, Target)] {
    static TARGETS: LazyLock<Vec<(ProviderKind, Target)>> = LazyLock::new(resolve_targets);
    &TARGETS
}

fn resolve_targets() -> Vec<(ProviderKind, Target)> {
    let env = |name: &str| {
        name.ends_with("_API_KEY")
            .then(|| format!("sk-fuzz-{name}"))
    };
    let snapshot = config::parse(CONFIG, "fuzz.toml", &env).expect("the fuzz configuration");
    ADDRESSES
        .iter()
        .map(|&(kind, address)| {
            let route = snapshot.route(address).expect("a provider/model address");
            (kind, route.targets[0].clone())
        })
        .collect()
}

/// `value` (an object or `null`) with `include_usage: true`, as `serde_json` writes it.
pub(crate) fn with_include_usage(value: &str) -> String {
    let mut options: Map<String, Value> = serde_json::from_str(value).unwrap_or_default();
    options.insert("include_usage".to_owned(), Value::Bool(true));
    Value::Object(options).to_string()
}

/// Whether `bytes` are JSON text in UTF-8. Syntax only: `1e400` is JSON although no `f64`
/// holds it, and a client's JSON reader takes it.
pub(crate) fn is_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}
