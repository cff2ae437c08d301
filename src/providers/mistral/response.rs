//! Answers, edited in place: only the spans where Mistral departs from the OpenAI wire change.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::ids::IdMap;
use crate::error::{FailureKind, UpstreamFailure};
use crate::openai::Usage;

/// The parts of a Mistral completion or chunk that may need rewriting, borrowed from the
/// upstream's bytes so their exact spans are known.
#[derive(Deserialize)]
pub(super) struct Answer<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) choices: Option<Vec<Choice<'a>>>,
    #[serde(borrow, default)]
    pub(super) usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) error: Option<&'a RawValue>,
}

/// One choice: `message` in a completion, `delta` in a chunk.
#[derive(Deserialize)]
pub(super) struct Choice<'a> {
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) message: Option<Turn<'a>>,
    #[serde(borrow, default)]
    pub(super) delta: Option<Turn<'a>>,
}

/// The assistant's output in a choice.
#[derive(Deserialize)]
pub(super) struct Turn<'a> {
    #[serde(borrow, default)]
    pub(super) content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) tool_calls: Option<Vec<Call<'a>>>,
}

/// A tool call in a turn.
#[derive(Deserialize)]
pub(super) struct Call<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) function: Option<CallFunction<'a>>,
}

/// The function of a tool call.
#[derive(Deserialize)]
pub(super) struct CallFunction<'a> {
    #[serde(borrow, default)]
    pub(super) arguments: Option<&'a RawValue>,
}

/// One piece of a chunk-list `content`: `text`, or `thinking` holding text pieces.
#[derive(Deserialize)]
pub(super) struct Piece<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) thinking: Option<Vec<Piece<'a>>>,
}

/// Replaces `span` of the upstream's bytes.
pub(super) struct Edit {
    pub(super) span: Range<usize>,
    pub(super) with: Vec<u8>,
}

/// The edits that bring one completion or chunk to the OpenAI wire, or the failure it reports
/// (as `kind`: a completion's failure can fail over, a stream's is mid-stream).
pub(super) fn rewrite(
    data: &[u8],
    answer: &Answer<'_>,
    ids: &IdMap,
    kind: FailureKind,
) -> Result<Vec<Edit>, UpstreamFailure> {
    let mut edits = Vec::new();
    for choice in answer.choices.iter().flatten() {
        if let Some(reason) = choice.finish_reason {
            match string(reason).as_deref() {
                // The context window filled up: to an OpenAI client that is `length`.
                Some("model_length") => edits.push(Edit {
                    span: span_of(data, reason),
                    with: b"\"length\"".to_vec(),
                }),
                Some("error") => {
                    return Err(UpstreamFailure::new(
                        kind,
                        "the provider stopped generating with finish_reason \"error\"",
                    ));
                }
                _ => {}
            }
        }
        for turn in choice.message.iter().chain(&choice.delta) {
            if let Some(content) = turn.content.filter(|c| c.get().starts_with('[')) {
                edits.push(Edit {
                    span: span_of(data, content),
                    with: flatten(content, kind)?,
                });
            }
            for call in turn.tool_calls.iter().flatten() {
                edits.extend(call_edits(data, call, ids));
            }
        }
    }
    Ok(edits)
}

/// A tool call's id mapped back to the client's, and object `arguments` made a JSON string.
pub(super) fn call_edits(data: &[u8], call: &Call<'_>, ids: &IdMap) -> Vec<Edit> {
    let mut edits = Vec::new();
    if let Some(id) = call.id
        && let Some(original) = string(id).as_deref().and_then(|m| ids.original(m))
    {
        edits.push(Edit {
            span: span_of(data, id),
            with: json_string(original),
        });
    }
    if let Some(arguments) = call.function.as_ref().and_then(|f| f.arguments)
        && arguments.get().starts_with('{')
    {
        edits.push(Edit {
            span: span_of(data, arguments),
            with: json_string(arguments.get()),
        });
    }
    edits
}

/// A reasoning model's chunk-list `content` as OpenAI's string `content` followed by a
/// `reasoning_content` member (written into the same span, so the object stays valid).
pub(super) fn flatten(content: &RawValue, kind: FailureKind) -> Result<Vec<u8>, UpstreamFailure> {
    let pieces: Vec<Piece<'_>> =
        serde_json::from_str(content.get()).map_err(|e| malformed(kind, "content", &e))?;
    let mut text: Option<String> = None;
    let mut reasoning = String::new();
    for piece in &pieces {
        match &*piece.kind {
            "text" => text
                .get_or_insert_default()
                .push_str(piece.text.as_deref().unwrap_or("")),
            "thinking" => {
                let inner = piece.thinking.iter().flatten().filter(|p| p.kind == "text");
                reasoning.extend(inner.filter_map(|p| p.text.as_deref()));
            }
            // References and other pieces have no place in the OpenAI message.
            _ => {}
        }
    }
    let mut out = text.map_or_else(|| b"null".to_vec(), |t| json_string(&t));
    if !reasoning.is_empty() {
        out.extend_from_slice(b",\"reasoning_content\":");
        out.extend_from_slice(&json_string(&reasoning));
    }
    Ok(out)
}

/// Applies non-overlapping edits to `data`.
pub(super) fn apply(data: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|edit| edit.span.start);
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut at = 0;
    for edit in edits {
        out.extend_from_slice(&data[at..edit.span.start]);
        out.extend_from_slice(&edit.with);
        at = edit.span.end;
    }
    out.extend_from_slice(&data[at..]);
    out
}

/// The byte range of a value borrowed from `data`.
pub(super) fn span_of(data: &[u8], raw: &RawValue) -> Range<usize> {
    let start = (raw.get().as_ptr() as usize).saturating_sub(data.as_ptr() as usize);
    start..start + raw.get().len()
}

/// The text of a JSON string value; `None` for other values.
pub(super) fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

/// `text` as a JSON string literal.
pub(super) fn json_string(text: &str) -> Vec<u8> {
    // Serialising a &str cannot fail.
    serde_json::to_vec(text).unwrap_or_default()
}

/// The usage object the upstream reported.
pub(super) fn read_usage(raw: &RawValue, kind: FailureKind) -> Result<Usage, UpstreamFailure> {
    serde_json::from_str(raw.get()).map_err(|e| malformed(kind, "usage", &e))
}

/// The failure for an answer the router cannot read.
pub(super) fn malformed(
    kind: FailureKind,
    what: &str,
    error: &serde_json::Error,
) -> UpstreamFailure {
    UpstreamFailure::new(
        kind,
        format!("the provider sent a malformed {what} ({error})"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::providers::mistral::fixtures::*;
    use crate::providers::mistral::ids::hashed_id;

    #[test]
    fn untouched_bodies_are_forwarded_byte_for_byte() {
        let body = r#"{"id":"c1","object":"chat.completion","created":1,"model":"mistral-small-latest","choices":[{"index":0,"message":{"role":"assistant","content":"caf\u00e9 1000.00","tool_calls":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let translated = answered(STREAM_PLAIN.replace("true", "false").as_str(), body).unwrap();
        assert_eq!(translated.body, body.as_bytes());
        assert_eq!(translated.usage.unwrap().total_tokens, 7);
    }

    #[test]
    fn model_length_becomes_length_and_nothing_else_moves() {
        let body = r#"{"id":"c1", "choices":[{"index":0,"message":{"role":"assistant","content":"1000.00 \u00e9"},"finish_reason": "model_length"}],"usage":null}"#;
        let translated = answered(TOOL_HISTORY, body).unwrap();
        assert_eq!(
            std::str::from_utf8(&translated.body).unwrap(),
            body.replace("\"model_length\"", "\"length\"")
        );
        assert_eq!(translated.usage, None);
    }

    #[test]
    fn mapped_ids_are_mapped_back_and_object_arguments_become_strings() {
        let mapped = hashed_id("call_abc123");
        let body = format!(
            r#"{{"choices":[{{"index":0,"message":{{"role":"assistant","content":"","tool_calls":[
            {{"id":"{mapped}","type":"function","function":{{"name":"w","arguments":{{"city": "Paris"}}}}}},
            {{"id":"Zz9Yy8Xx7","type":"function","function":{{"name":"w","arguments":"{{}}"}}}}]}},
            "finish_reason":"tool_calls"}}]}}"#
        );
        let translated = answered(TOOL_HISTORY, &body).unwrap();
        let json: Value = serde_json::from_slice(&translated.body).unwrap();
        let calls = &json["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], "call_abc123");
        assert_eq!(calls[0]["function"]["arguments"], r#"{"city": "Paris"}"#);
        assert_eq!(calls[1]["id"], "Zz9Yy8Xx7");
        assert_eq!(calls[1]["function"]["arguments"], "{}");
    }

    #[test]
    fn thinking_content_is_flattened_into_content_and_reasoning() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":[
            {"type":"thinking","thinking":[{"type":"text","text":"Two plus "},{"type":"text","text":"two."}]},
            {"type":"text","text":"It is "},{"type":"text","text":"4."}]},"finish_reason":"stop"}]}"#;
        let translated = answered(TOOL_HISTORY, body).unwrap();
        let json: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(
            json["choices"][0]["message"],
            json!({"role": "assistant", "content": "It is 4.", "reasoning_content": "Two plus two."})
        );
    }

    #[test]
    fn finish_reason_error_is_an_upstream_failure() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"error"}]}"#;
        let failure = answered(TOOL_HISTORY, body).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Unavailable);
        let failure = answered(TOOL_HISTORY, "<html>").unwrap_err();
        assert_eq!(failure.kind, FailureKind::Unavailable);
    }
}
