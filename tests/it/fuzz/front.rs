//! The front request parser: any bytes and any hostile JSON end in a parsed request or a 400,
//! never a panic and never another status.

use proptest::collection::vec;
use proptest::prelude::*;
use switchboard::openai::ChatRequest;

use super::cases;
use super::generate::{chat_body, json_text};

/// Parses `raw`; a refusal must be a 400, an acceptance must hold what validation promises.
fn parse(raw: &[u8]) -> Result<(), TestCaseError> {
    match ChatRequest::parse(raw) {
        Ok(chat) => {
            prop_assert!(!chat.model.is_empty());
            prop_assert!(!chat.messages().is_empty());
        }
        Err(error) => prop_assert_eq!(error.status().as_u16(), 400, "{}", error),
    }
    Ok(())
}

/// The members the parser types, to be given values of the wrong type.
const KNOWN: [&str; 20] = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
    "x_unknown",
    "",
];

/// An object whose members are known names (repeated ones included) or any text, each with
/// any value or a hostile literal.
fn hostile_object() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        3 => proptest::sample::select(&KNOWN[..]).prop_map(str::to_owned),
        1 => super::generate::text(),
    ];
    vec((key, json_text()), 0..8).prop_map(|members| {
        let members: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
            .collect();
        format!("{{{}}}", members.join(",")).into_bytes()
    })
}

/// A valid request with one member's value replaced by any value or hostile literal.
fn one_member_wrong() -> impl Strategy<Value = Vec<u8>> {
    (chat_body(), any::<proptest::sample::Index>(), json_text()).prop_map(|(body, index, value)| {
        let mut body = body;
        let i = index.index(body.members.len());
        body.members[i].1 = value;
        body.render()
    })
}

/// A valid request with bytes overwritten, inserted or cut off.
fn mangled() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<proptest::sample::Index>(), any::<u8>(), 0u8..3);
    (chat_body(), vec(edit, 1..4)).prop_map(|(body, edits)| {
        let mut raw = body.render();
        for (at, byte, how) in edits {
            if raw.is_empty() {
                break;
            }
            let i = at.index(raw.len());
            match how {
                0 => raw[i] = byte,
                1 => raw.insert(i, byte),
                _ => raw.truncate(i),
            }
        }
        raw
    })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn fuzz_front_parser_any_bytes(raw in vec(any::<u8>(), 0..1024)) {
        parse(&raw)?;
    }

    #[test]
    fn fuzz_front_parser_hostile_objects(raw in hostile_object()) {
        parse(&raw)?;
    }

    #[test]
    fn fuzz_front_parser_one_member_of_the_wrong_type(raw in one_member_wrong()) {
        parse(&raw)?;
    }

    #[test]
    fn fuzz_front_parser_mangled_requests(raw in mangled()) {
        parse(&raw)?;
    }

    #[test]
    fn fuzz_front_parser_nesting_at_any_depth(depth in 1usize..400, key in prop_oneof![Just("messages"), Just("x_extra"), Just("tools")]) {
        let value = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let raw = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"{key}":{value}}}"#);
        // `messages` appears twice when it is the key: a 400 either way.
        parse(raw.as_bytes())?;
    }
}
