//! Fixtures both benches need: a target of every wire format and the client's request bodies.

use serde_json::{Value, json};
use switchboard::config::{self, ProviderKind, Target};

/// The router's allocator (see `src/main.rs`), so allocations cost what they cost in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

include!("../../tests/fixtures/every_wire.rs");
/// A target of every wire format, resolved by the real configuration validation. Every key
/// variable is set, so requests carry their authentication header as in production.
pub(crate) fn targets() -> Vec<(ProviderKind, Target)> {
    let env = |name: &str| {
        name.ends_with("_API_KEY")
            .then(|| format!("sk-bench-{}", name.to_ascii_lowercase()))
    };
    let snapshot = config::parse(CONFIG, "bench.toml", &env).expect("the bench configuration");
    ADDRESSES
        .iter()
        .map(|&(kind, address)| {
            let route = snapshot.route(address).expect("a declared model");
            (kind, route.targets[0].clone())
        })
        .collect()
}

/// The body of `request` as an SDK sends it (compact JSON), with the members of `extra` (such
/// as `"stream": true`) added.
pub(crate) fn body(mut request: Value, extra: Value) -> Vec<u8> {
    if let (Value::Object(request), Value::Object(extra)) = (&mut request, extra) {
        request.extend(extra);
    }
    serde_json::to_vec(&request).expect("JSON values serialise")
}

/// A request of an agent a few steps into a task (about 4 KiB): a system prompt, several
/// turns with two tool calls and their results, and four tools.
pub(crate) fn large_request() -> Value {
    let weather = json!({"city": "Lisbon", "month": 12});
    let flights = json!({"from": "ZRH", "to": "LIS", "date": "2026-12-11", "direct_only": true});
    json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You are the travel assistant of Contoso Travel. \
                Answer concisely, cite the tool results you relied on, and never invent prices \
                or schedules. Today is 2026-11-26. The user is signed in: home airport ZRH, \
                prefers window seats, loyalty tier Gold, pays in EUR."},
            {"role": "user", "content": "I'd like a long weekend in Lisbon in December. What \
                is the weather usually like, and are there direct flights from Zurich?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_Wm3nHqQ0xV1pZ8sL2kT7bYfA", "type": "function",
                 "function": {"name": "get_weather", "arguments": weather.to_string()}},
                {"id": "call_9dKsQe4RtU7yPz1mNc3bVx8L", "type": "function",
                 "function": {"name": "search_flights", "arguments": flights.to_string()}},
            ]},
            {"role": "tool", "tool_call_id": "call_Wm3nHqQ0xV1pZ8sL2kT7bYfA",
             "content": r#"{"avg_high_c":15,"avg_low_c":9,"rain_days":10,"sunshine_hours":5}"#},
            {"role": "tool", "tool_call_id": "call_9dKsQe4RtU7yPz1mNc3bVx8L",
             "content": r#"[{"flight":"TP 929","departs":"07:05","arrives":"08:55","price_eur":189},{"flight":"LX 2086","departs":"16:40","arrives":"18:35","price_eur":214}]"#},
            {"role": "assistant", "content": "December in Lisbon is mild: highs around 15 °C, \
                lows around 9 °C, and rain on about ten days of the month, so pack a light rain \
                jacket. Two direct flights leave Zurich on Friday 11 December: TAP TP 929 at \
                07:05 (189 EUR) and SWISS LX 2086 at 16:40 (214 EUR)."},
            {"role": "user", "content": "Great. Book the Friday morning TAP flight, and find me \
                a hotel near Alfama for three nights under 180 EUR a night."},
        ],
        "tools": [
            tool("get_weather", "Typical weather of a city in a given month.", json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, in English."},
                    "month": {"type": "integer", "minimum": 1, "maximum": 12},
                },
                "required": ["city", "month"],
            })),
            tool("search_flights", "Scheduled flights between two airports on a day.", json!({
                "type": "object",
                "properties": {
                    "from": {"type": "string", "description": "IATA code of the origin."},
                    "to": {"type": "string", "description": "IATA code of the destination."},
                    "date": {"type": "string", "format": "date"},
                    "direct_only": {"type": "boolean", "default": false},
                },
                "required": ["from", "to", "date"],
            })),
            tool("book_flight", "Books a seat on a flight for the signed-in user.", json!({
                "type": "object",
                "properties": {
                    "flight": {"type": "string", "description": "Flight number, e.g. TP 929."},
                    "date": {"type": "string", "format": "date"},
                    "seat": {"type": "string", "enum": ["window", "aisle", "any"]},
                },
                "required": ["flight", "date"],
            })),
            tool("search_hotels", "Hotels with free rooms in a neighbourhood.", json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "neighbourhood": {"type": "string"},
                    "check_in": {"type": "string", "format": "date"},
                    "nights": {"type": "integer", "minimum": 1},
                    "max_price_eur": {"type": "number"},
                },
                "required": ["city", "check_in", "nights"],
            })),
        ],
        "tool_choice": "auto",
        "temperature": 0.3,
        "max_completion_tokens": 1024,
        "user": "user-4821",
    })
}

/// An OpenAI function tool.
fn tool(name: &str, description: &str, parameters: Value) -> Value {
    json!({
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    })
}

/// The assistant's answer in every response fixture: a short paragraph, a typical reply.
pub(crate) const ANSWER: &str = "Done: you are booked on TAP TP 929 on Friday 11 December, \
    departing Zurich at 07:05 and landing in Lisbon at 08:55, window seat 14A, 189 EUR. For \
    three nights near Alfama I found Memmo Alfama (172 EUR a night, rooftop terrace, 4 minutes \
    from the Sé cathedral) and Solar do Castelo (165 EUR a night, inside the castle walls). \
    Shall I book one of them?";

/// `text` as a JSON string literal, for splicing into fixtures written in wire order (a
/// `serde_json::Value` would sort their keys).
pub(crate) fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

/// `usage` as DashScope (Qwen) reports it, in a complete answer and in the stream's usage chunk.
pub(crate) const QWEN_USAGE: &str = r#"{"prompt_tokens":1025,"completion_tokens":98,"total_tokens":1123,"prompt_tokens_details":{"cached_tokens":768}}"#;

/// `usage` as Mistral reports it (its own key order).
pub(crate) const MISTRAL_USAGE: &str =
    r#"{"prompt_tokens":1040,"total_tokens":1139,"completion_tokens":99}"#;
