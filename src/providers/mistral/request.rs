//! The request: an allowlist over the client's members, since Mistral refuses unknown fields.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::ids::to_mistral_id;
use crate::config::Target;
use crate::error::ApiError;
use crate::openai::ChatRequest;

/// What becomes of one top-level request field on its way to Mistral.
pub(super) enum Field {
    /// Mistral accepts it under the same name.
    Keep,
    /// Mistral knows it under this name.
    Rename(&'static str),
    /// OpenAI-only bookkeeping that does not change the answer.
    Drop,
    /// No Mistral equivalent and it would change the answer (unless its value is inert).
    Refuse,
}

/// The fate of a top-level field. Mistral answers 422 to anything it does not know, hence an
/// allowlist rather than a blocklist.
pub(super) fn field(name: &str) -> Field {
    match name {
        "model"
        | "messages"
        | "temperature"
        | "top_p"
        | "max_tokens"
        | "stream"
        | "stop"
        | "random_seed"
        | "response_format"
        | "tools"
        | "tool_choice"
        | "presence_penalty"
        | "frequency_penalty"
        | "n"
        | "parallel_tool_calls"
        | "safe_prompt"
        | "prediction"
        | "prompt_mode"
        | "reasoning_effort"
        | "prompt_cache_key"
        | "guardrails" => Field::Keep,
        "max_completion_tokens" => Field::Rename("max_tokens"),
        "seed" => Field::Rename("random_seed"),
        // Mistral always reports usage on its last stream chunk, so `stream_options` has
        // nothing left to ask for.
        "stream_options"
        | "user"
        | "store"
        | "service_tier"
        | "metadata"
        | "safety_identifier"
        | "prompt_cache_retention" => Field::Drop,
        _ => Field::Refuse,
    }
}

/// Whether a refused field's value asks for nothing beyond the default, so it can be dropped.
pub(super) fn is_inert(name: &str, value: &Value) -> bool {
    match (name, value) {
        (_, Value::Null) | ("logprobs", Value::Bool(false)) => true,
        ("modalities", Value::Array(items)) => items.iter().all(|m| m == "text"),
        _ => false,
    }
}

/// The 400 for a field Mistral cannot honour.
pub(super) fn unsupported(name: &str, target: &Target) -> ApiError {
    ApiError::unsupported(
        format!(
            "Unsupported parameter: '{name}' has no equivalent at provider '{}' (kind {}). \
             Remove it, or send the request to a route whose provider supports it.",
            target.provider.name,
            target.provider.kind.as_str()
        ),
        name,
    )
}

/// Rebuilds the client's body as Mistral accepts it.
pub(super) fn request_body(chat: &ChatRequest<'_>, target: &Target) -> Result<Bytes, ApiError> {
    // The front door only skims members it does not type, so a number no `f64` holds
    // (`1e400`) can get this far; rebuilding the body reads every member, and finds it here.
    let client: Map<String, Value> = serde_json::from_slice(chat.raw()).map_err(|e| {
        ApiError::bad_request(
            format!("The request cannot be sent to Mistral as written: {e}."),
            None,
        )
    })?;
    let mut body = Map::new();
    let mut renamed = Vec::new();
    for (name, value) in client {
        match field(&name) {
            Field::Keep => {
                body.insert(name, value);
            }
            Field::Rename(to) if !value.is_null() => renamed.push((to, value)),
            Field::Rename(_) | Field::Drop => {}
            Field::Refuse if is_inert(&name, &value) => {}
            Field::Refuse => return Err(unsupported(&name, target)),
        }
    }
    // Inserted last so the OpenAI name wins over the one it replaces, as OpenAI itself
    // prefers `max_completion_tokens` over `max_tokens` (reference 1.2).
    body.extend(renamed.into_iter().map(|(to, v)| (to.to_owned(), v)));
    body.insert("model".to_owned(), Value::from(&*target.model));
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        messages.iter_mut().for_each(message);
    }
    tools(&mut body);
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("could not encode the Mistral request: {e}")))
}

/// Keeps only the fields Mistral allows for the message's role and gives tool calls Mistral ids.
pub(super) fn message(message: &mut Value) {
    let Value::Object(fields) = message else {
        return;
    };
    // Roles were validated at the front door; `developer` is OpenAI's newer name for `system`.
    let role = match fields.get("role").and_then(Value::as_str) {
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some("tool") => "tool",
        _ => "system",
    };
    // `name` on a user turn, or `reasoning_content`/`refusal` on assistant history, is a 422.
    let allowed: &[&str] = match role {
        "assistant" => &["content", "tool_calls", "prefix"],
        "tool" => &["content", "tool_call_id", "name"],
        _ => &["content"],
    };
    let mut kept = Map::new();
    kept.insert("role".to_owned(), Value::from(role));
    for &key in allowed {
        if let Some(value) = fields.remove(key) {
            kept.insert(key.to_owned(), value);
        }
    }
    if let Some(Value::Array(calls)) = kept.get_mut("tool_calls") {
        for call in calls {
            if let Some(Value::String(id)) = call.get_mut("id") {
                to_mistral_id(id);
            }
        }
    }
    if let Some(Value::String(id)) = kept.get_mut("tool_call_id") {
        to_mistral_id(id);
    }
    *fields = kept;
}

/// Tool definitions as Mistral accepts them.
pub(super) fn tools(body: &mut Map<String, Value>) {
    // An empty `tools` list has been seen to draw a 422; without tools a choice means nothing.
    if body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        body.remove("tools");
        body.remove("tool_choice");
    }
    if let Some(Value::Array(tools)) = body.get_mut("tools") {
        for tool in tools {
            if let Some(Value::Object(schema)) = tool.pointer_mut("/function/parameters") {
                schema.remove("$schema");
                schema.remove("$id");
            }
        }
    }
    if body.get("tool_choice").and_then(Value::as_str) == Some("required") {
        body.insert("tool_choice".to_owned(), Value::from("any"));
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::providers::Adapter;
    use crate::providers::mistral::Mistral;
    use crate::providers::mistral::fixtures::*;
    use crate::providers::mistral::ids::{hashed_id, is_mistral_id};

    #[test]
    fn request_keeps_the_allowlist_renames_and_drops_bookkeeping() {
        let body = sent(&format!(
            r#"{{"model":"m","messages":[{USER_HI}],"temperature":0.3,"top_p":0.9,
            "max_tokens":10,"max_completion_tokens":20,"seed":7,"stop":["END"],"n":1,
            "presence_penalty":0.5,"frequency_penalty":0.25,"parallel_tool_calls":false,
            "response_format":{{"type":"json_object"}},"safe_prompt":true,"prompt_mode":null,
            "reasoning_effort":"high","prompt_cache_key":"k","stream":false,
            "user":"u-1","store":true,"service_tier":"auto","metadata":{{"a":"b"}},
            "safety_identifier":"s","prompt_cache_retention":"24h","logprobs":false,
            "modalities":["text"],"logit_bias":null}}"#
        ));
        assert_eq!(
            body,
            json!({
                "model": "mistral-small-latest",
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 0.3,
                "top_p": 0.9,
                "max_tokens": 20,
                "random_seed": 7,
                "stop": ["END"],
                "n": 1,
                "presence_penalty": 0.5,
                "frequency_penalty": 0.25,
                "parallel_tool_calls": false,
                "response_format": {"type": "json_object"},
                "safe_prompt": true,
                "prompt_mode": null,
                "reasoning_effort": "high",
                "prompt_cache_key": "k",
                "stream": false
            })
        );
    }

    #[test]
    fn stream_options_never_reach_mistral() {
        let body = sent(STREAM_WITH_USAGE);
        assert_eq!(body["stream"], true);
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn messages_keep_only_what_mistral_accepts_for_their_role() {
        let body = sent(
            r#"{"model":"m","messages":[
            {"role":"developer","content":"Be brief.","name":"ops"},
            {"role":"user","name":"ana","content":[{"type":"text","text":"weather?"}]},
            {"role":"assistant","content":"","reasoning_content":"hmm","refusal":null,"audio":null,"name":"bot",
             "tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"abcDEF123","name":"weather","content":"sunny"},
            {"role":"assistant","content":"It is","prefix":true}]}"#,
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "abcDEF123", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "abcDEF123", "name": "weather", "content": "sunny"},
                {"role": "assistant", "content": "It is", "prefix": true}
            ])
        );
    }

    #[test]
    fn foreign_tool_call_ids_get_one_consistent_mistral_id() {
        let raw = r#"{"model":"m","messages":[{"role":"user","content":"two cities"},
            {"role":"assistant","content":null,"tool_calls":[
              {"id":"call_abc123","type":"function","function":{"name":"w","arguments":"{}"}},
              {"id":"toolu_01A09q90qw90lq917835lq9","type":"function","function":{"name":"w","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_abc123","content":"sunny"},
            {"role":"tool","tool_call_id":"toolu_01A09q90qw90lq917835lq9","content":"rain"}]}"#;
        let body = sent(raw);
        let messages = &body["messages"];
        let first = messages[1]["tool_calls"][0]["id"].as_str().unwrap();
        let second = messages[1]["tool_calls"][1]["id"].as_str().unwrap();
        for id in [first, second] {
            assert!(is_mistral_id(id), "{id}");
        }
        assert_ne!(first, second);
        assert_eq!(messages[2]["tool_call_id"], first);
        assert_eq!(messages[3]["tool_call_id"], second);
        // Deterministic: a retry or a later turn sends the same ids.
        assert_eq!(sent(raw), body);
        assert_eq!(hashed_id("call_abc123"), first);
    }

    #[test]
    fn tools_are_cleaned_and_required_becomes_any() {
        let body = sent(&format!(
            r#"{{"model":"m","messages":[{USER_HI}],"tool_choice":"required","tools":[
            {{"type":"function","function":{{"name":"w","description":"weather","strict":true,
              "parameters":{{"$schema":"http://json-schema.org/draft-07/schema#","$id":"urn:w",
                "type":"object","properties":{{"$id":{{"type":"string"}}}}}}}}}}]}}"#
        ));
        assert_eq!(body["tool_choice"], "any");
        assert_eq!(
            body["tools"][0]["function"]["parameters"],
            json!({"type": "object", "properties": {"$id": {"type": "string"}}})
        );
        assert_eq!(body["tools"][0]["function"]["strict"], true);
        let named = sent(&format!(
            r#"{{"model":"m","messages":[{USER_HI}],"tools":[{{"type":"function","function":{{"name":"w"}}}}],
            "tool_choice":{{"type":"function","function":{{"name":"w"}}}}}}"#
        ));
        assert_eq!(
            named["tool_choice"],
            json!({"type": "function", "function": {"name": "w"}})
        );
    }

    #[test]
    fn empty_tools_are_dropped_with_their_choice() {
        let body = sent(&format!(
            r#"{{"model":"m","messages":[{USER_HI}],"tools":[],"tool_choice":"auto"}}"#
        ));
        assert!(body.get("tools").is_none());
        assert!(body.get("tool_choice").is_none());
    }

    #[test]
    fn numbers_beyond_f64_are_a_400_not_an_internal_error() {
        let error = refused(&format!(
            r#"{{"model":"m","messages":[{USER_HI}],"x_extra":1e400}}"#
        ));
        assert_eq!(error["type"], "invalid_request_error");
        assert!(error["message"].as_str().unwrap().contains("out of range"));
    }

    #[test]
    fn fields_without_an_equivalent_are_a_400_naming_field_and_provider() {
        for (field, value) in [
            ("logprobs", "true"),
            ("top_logprobs", "3"),
            ("logit_bias", r#"{"50256":-100}"#),
            ("audio", r#"{"voice":"alloy","format":"wav"}"#),
            ("modalities", r#"["text","audio"]"#),
            ("web_search_options", "{}"),
            ("functions", r#"[{"name":"f"}]"#),
            ("function_call", r#""auto""#),
            ("verbosity", r#""low""#),
            ("frobnicate", "1"),
        ] {
            let error = refused(&format!(
                r#"{{"model":"m","messages":[{USER_HI}],"{field}":{value}}}"#
            ));
            assert_eq!(error["param"], field);
            assert_eq!(error["code"], "unsupported_parameter");
            assert_eq!(error["type"], "invalid_request_error");
            let message = error["message"].as_str().unwrap();
            for needle in [field, "mistral", "'eu'"] {
                assert!(message.contains(needle), "{needle} not in {message}");
            }
        }
    }

    #[test]
    fn a_null_renamed_field_does_not_override() {
        let body = sent(&format!(
            r#"{{"model":"m","messages":[{USER_HI}],"max_tokens":5,"max_completion_tokens":null}}"#
        ));
        assert_eq!(body["max_tokens"], 5);
    }

    #[test]
    fn the_router_key_is_sent_as_bearer_and_the_accept_follows_stream() {
        let request = Mistral.request(&chat(STREAM_PLAIN), &target()).unwrap();
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.headers["accept"], "text/event-stream");
        assert_eq!(request.headers["content-type"], "application/json");
    }

    #[test]
    fn valid_ids_are_left_alone_and_hashes_are_nine_alphanumerics() {
        assert!(is_mistral_id("D681PevKs"));
        for id in [
            "call_abc123",
            "toolu_01",
            "",
            "abc-def-1",
            "ABCDEFGHIJ",
            "é12345678",
        ] {
            assert!(!is_mistral_id(id), "{id}");
            assert!(is_mistral_id(&hashed_id(id)), "{id}");
        }
        let mut id = "D681PevKs".to_owned();
        to_mistral_id(&mut id);
        assert_eq!(id, "D681PevKs");
    }
}
