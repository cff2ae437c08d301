//! `kind = "mistral"`: Mistral's chat completions (reference/provider-apis.md section 4).
//!
//! Mistral speaks nearly the OpenAI wire but validates with extra fields forbidden, so the
//! request is rebuilt from an allowlist: renamed where Mistral names a field differently,
//! silently dropped where the OpenAI field is harmless bookkeeping, and refused with a 400
//! where dropping it would change the answer. Foreign tool-call ids become Mistral's nine
//! alphanumerics on the way out and are mapped back on the way in.
//!
//! Answers are edited in place, never re-serialised: only the spans where Mistral departs from
//! the OpenAI wire change (`model_length`, mapped tool-call ids, object `arguments`, chunk-list
//! `content`, the position of stream usage); every other byte is the upstream's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::openai::{
    ErrorFields, bearer_headers, classify_fields, failure_from, in_band_failure,
    require_end_marker, validate,
};
use super::{Adapter, Honours, StreamTranslator, Translated, UpstreamRequest, event_text};
use crate::config::Target;
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::json_scan::{ERROR, Key, USAGE, contains};
use crate::openai::{ChatRequest, DONE, Usage};
use crate::sse::{SseEvent, data_frame};

/// The Mistral adapter.
pub(super) struct Mistral;

/// Mistral has no log probabilities, token biasing, audio output, web search or deprecated
/// functions API; everything else it takes, under its own name where it differs.
const HONOURS: Honours = Honours {
    max_choices: crate::openai::MAX_CHOICES,
    penalties: true,
    logprobs: false,
    logit_bias: false,
    audio_output: false,
    web_search: false,
    legacy_functions: false,
    reasoning_effort: true,
    other_tool_types: false,
};

impl Adapter for Mistral {
    fn honours(&self, _target: &Target) -> &'static Honours {
        &HONOURS
    }

    fn translate(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        Ok(UpstreamRequest {
            method: Method::POST,
            path: "/chat/completions".to_owned(),
            headers: bearer_headers(target, chat.is_stream())?,
            body: request_body(chat, target)?,
        })
    }

    fn response(
        &self,
        chat: &ChatRequest<'_>,
        _target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        let kind = FailureKind::Unavailable;
        let answer: Answer<'_> =
            serde_json::from_slice(&body).map_err(|e| malformed(kind, "response body", &e))?;
        let usage = answer.usage.map(|raw| read_usage(raw, kind)).transpose()?;
        let edits = rewrite(&body, &answer, &IdMap::of(chat), kind)?;
        let body = if edits.is_empty() {
            body
        } else {
            Bytes::from(apply(&body, edits))
        };
        Ok(Translated { body, usage })
    }

    fn stream(&self, chat: &ChatRequest<'_>, _target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(Stream {
            ids: IdMap::of(chat),
            include_usage: chat.include_usage(),
            usage: None,
            usage_chunk: None,
            done: false,
        })
    }

    fn failure(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        let fields = ErrorFields::parse(body);
        if status == StatusCode::TOO_MANY_REQUESTS && is_spend_cap(&fields) {
            return failure_from(FailureKind::Account, status, headers, fields);
        }
        if status == StatusCode::BAD_REQUEST
            && fields.is("invalid_function_call")
            && mentions_tool_call_id(&fields)
        {
            // The router rewrites every foreign id, so Mistral refusing one means the mapping
            // is broken, not the client's conversation (reference 7.4, "adapter bug"). The
            // upstream's words are left to the router, which redacts them before it logs the
            // failure: an adapter never sees the secrets.
            tracing::error!(
                "mistral refused a tool-call id the router sent: the id mapping is broken \
                 (the rejection itself is logged at debug level, redacted)"
            );
        }
        classify_fields(status, headers, fields)
    }
}

// === Request ===

/// What becomes of one top-level request field on its way to Mistral.
enum Field {
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
fn field(name: &str) -> Field {
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
fn is_inert(name: &str, value: &Value) -> bool {
    match (name, value) {
        (_, Value::Null) | ("logprobs", Value::Bool(false)) => true,
        ("modalities", Value::Array(items)) => items.iter().all(|m| m == "text"),
        _ => false,
    }
}

/// The 400 for a field Mistral cannot honour.
fn unsupported(name: &str, target: &Target) -> ApiError {
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
fn request_body(chat: &ChatRequest<'_>, target: &Target) -> Result<Bytes, ApiError> {
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
fn message(message: &mut Value) {
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
fn tools(body: &mut Map<String, Value>) {
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

// === Tool-call ids ===

/// Whether Mistral accepts `id` as a tool-call id: exactly nine ASCII letters and digits.
fn is_mistral_id(id: &str) -> bool {
    id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Replaces a foreign id (`call_…`, `toolu_…`) with its Mistral id; valid ids stay as they are.
fn to_mistral_id(id: &mut String) {
    if !is_mistral_id(id) {
        *id = hashed_id(id);
    }
}

/// Nine base62 digits of the id's SHA-256: deterministic, so the assistant turn and the tool
/// turn that answers it agree without shared state, and retries send the same body.
fn hashed_id(id: &str) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::digest(id.as_bytes());
    let mut n = digest
        .iter()
        .take(16)
        .fold(0u128, |n, &b| (n << 8) | u128::from(b));
    (0..9)
        .map(|_| {
            let digit = DIGITS[(n % 62) as usize];
            n /= 62;
            char::from(digit)
        })
        .collect()
}

/// The request's Mistral ids that stand for foreign ids, each with the client's original.
struct IdMap(HashMap<String, String>);

impl IdMap {
    /// Built from the request alone, so the request, response and stream sides agree.
    fn of(chat: &ChatRequest<'_>) -> Self {
        let mut back = HashMap::new();
        for message in chat.messages() {
            let calls = message.tool_calls.iter().flatten().map(|call| &*call.id);
            for id in calls.chain(message.tool_call_id.as_deref()) {
                if !is_mistral_id(id) {
                    back.insert(hashed_id(id), id.to_owned());
                }
            }
        }
        Self(back)
    }

    /// The client's id behind a Mistral id, if the router minted it.
    fn original(&self, mistral_id: &str) -> Option<&str> {
        self.0.get(mistral_id).map(String::as_str)
    }

    /// Whether any minted id occurs in `data` (a cheap pre-check before parsing).
    fn occurs_in(&self, data: &[u8]) -> bool {
        self.0.keys().any(|id| contains(data, id.as_bytes()))
    }
}

// === Answers ===

/// The parts of a Mistral completion or chunk that may need rewriting, borrowed from the
/// upstream's bytes so their exact spans are known.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// One choice: `message` in a completion, `delta` in a chunk.
#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<Turn<'a>>,
    #[serde(borrow, default)]
    delta: Option<Turn<'a>>,
}

/// The assistant's output in a choice.
#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<Call<'a>>>,
}

/// A tool call in a turn.
#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function: Option<CallFunction<'a>>,
}

/// The function of a tool call.
#[derive(Deserialize)]
struct CallFunction<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// One piece of a chunk-list `content`: `text`, or `thinking` holding text pieces.
#[derive(Deserialize)]
struct Piece<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Vec<Piece<'a>>>,
}

/// Replaces `span` of the upstream's bytes.
struct Edit {
    span: Range<usize>,
    with: Vec<u8>,
}

/// The edits that bring one completion or chunk to the OpenAI wire, or the failure it reports
/// (as `kind`: a completion's failure can fail over, a stream's is mid-stream).
fn rewrite(
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
fn call_edits(data: &[u8], call: &Call<'_>, ids: &IdMap) -> Vec<Edit> {
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
fn flatten(content: &RawValue, kind: FailureKind) -> Result<Vec<u8>, UpstreamFailure> {
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
fn apply(data: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
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
fn span_of(data: &[u8], raw: &RawValue) -> Range<usize> {
    let start = (raw.get().as_ptr() as usize).saturating_sub(data.as_ptr() as usize);
    start..start + raw.get().len()
}

/// The text of a JSON string value; `None` for other values.
fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> Vec<u8> {
    // Serialising a &str cannot fail.
    serde_json::to_vec(text).unwrap_or_default()
}

/// The usage object the upstream reported.
fn read_usage(raw: &RawValue, kind: FailureKind) -> Result<Usage, UpstreamFailure> {
    serde_json::from_str(raw.get()).map_err(|e| malformed(kind, "usage", &e))
}

/// The failure for an answer the router cannot read.
fn malformed(kind: FailureKind, what: &str, error: &serde_json::Error) -> UpstreamFailure {
    UpstreamFailure::new(
        kind,
        format!("the provider sent a malformed {what} ({error})"),
    )
}

// === Streams ===

/// Per-stream state: Mistral's chunks in, OpenAI's chunk layout out.
struct Stream {
    /// Ids to map back in tool-call deltas.
    ids: IdMap,
    /// Whether the client asked for OpenAI's separate usage chunk.
    include_usage: bool,
    /// The usage Mistral reported on its last chunk.
    usage: Option<Usage>,
    /// The OpenAI-style usage chunk, held until `[DONE]` so it is always the last one.
    usage_chunk: Option<Vec<u8>>,
    /// `[DONE]` was seen; anything after it is ignored.
    done: bool,
}

impl Stream {
    /// Whether a chunk may need more than forwarding. False positives only cost a parse.
    fn worth_parsing(&self, data: &[u8]) -> bool {
        static MODEL_LENGTH: Key = Key::new(b"\"model_length\"");
        static CONTENT: Key = Key::new(b"\"content\"");
        static ARGUMENTS: Key = Key::new(b"\"arguments\"");
        MODEL_LENGTH.occurs_in(data)
            || ERROR.occurs_in(data)
            || USAGE.has_value_starting_with(data, b'{')
            || CONTENT.has_value_starting_with(data, b'[')
            || ARGUMENTS.has_value_starting_with(data, b'{')
            || self.ids.occurs_in(data)
    }

    /// Translates one chunk that needs a look; `None` when nothing of it is left to send.
    fn translate(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, UpstreamFailure> {
        let kind = FailureKind::Stream;
        let chunk: Answer<'_> = serde_json::from_str(event_text(data)?)
            .map_err(|e| malformed(kind, "stream event", &e))?;
        if let Some(error) = chunk.error {
            return Err(in_band_failure(error.get().as_bytes()));
        }
        // Mistral's own error shape, `{"object":"error","message":...}`, sent in-band.
        if chunk.object.is_some_and(|o| o.get() == "\"error\"") {
            return Err(in_band_failure(data));
        }
        let mut edits = rewrite(data, &chunk, &self.ids, kind)?;
        if let Some(usage) = chunk.usage {
            self.usage = Some(read_usage(usage, kind)?);
            if self.include_usage {
                self.usage_chunk = Some(usage_chunk(&chunk, usage));
            }
            if chunk.choices.as_ref().is_some_and(Vec::is_empty) {
                return Ok(None);
            }
            edits.push(without_member(data, span_of(data, usage)));
        }
        Ok(Some(apply(data, edits)))
    }
}

impl StreamTranslator for Stream {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let data = &event.data[..];
        if self.done {
            return Ok(());
        }
        if data == DONE {
            self.done = true;
            if let Some(chunk) = self.usage_chunk.take() {
                out.push(data_frame(&chunk));
            }
            out.push(data_frame(DONE));
            return Ok(());
        }
        if !self.worth_parsing(data) {
            // Forwarded as it came, so it must be JSON (and UTF-8) first.
            validate(event_text(data)?)?;
            out.push(data_frame(data));
            return Ok(());
        }
        if let Some(chunk) = self.translate(data)? {
            out.push(data_frame(&chunk));
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        require_end_marker(self.done)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// OpenAI's separate usage chunk (reference 1.4 step 5), built from the chunk that carried it.
fn usage_chunk(chunk: &Answer<'_>, usage: &RawValue) -> Vec<u8> {
    fn raw(value: Option<&RawValue>) -> &str {
        value.map_or("null", RawValue::get)
    }
    format!(
        r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{}}}"#,
        raw(chunk.id),
        raw(chunk.created),
        raw(chunk.model),
        usage.get()
    )
    .into_bytes()
}

/// The edit that removes the member whose value is at `value`, with one adjacent comma. When
/// the bytes around it are not the plain `"key": value` the scan expects, the value becomes
/// `null` instead, which OpenAI clients read the same way.
fn without_member(data: &[u8], value: Range<usize>) -> Edit {
    match member_span(data, value.clone()) {
        Some(span) => Edit {
            span,
            with: Vec::new(),
        },
        None => Edit {
            span: value,
            with: b"null".to_vec(),
        },
    }
}

/// The span of `"key": value` plus the comma that separates it from a neighbour.
fn member_span(data: &[u8], value: Range<usize>) -> Option<Range<usize>> {
    let last_non_space = |slice: &[u8]| slice.iter().rposition(|b| !b.is_ascii_whitespace());
    let colon = last_non_space(&data[..value.start])?;
    let key_end = last_non_space(&data[..colon])?;
    if data[colon] != b':' || data[key_end] != b'"' {
        return None;
    }
    let key_start = data[..key_end].iter().rposition(|&b| b == b'"')?;
    let before = last_non_space(&data[..key_start])?;
    match data[before] {
        b',' => Some(before..value.end),
        b'{' => {
            let after = data[value.end..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map(|offset| value.end + offset);
            match after {
                Some(comma) if data[comma] == b',' => Some(key_start..comma + 1),
                _ => Some(key_start..value.end),
            }
        }
        _ => None,
    }
}

/// Whether a 429 is a spent monthly budget or usage limit rather than a burst: not transient,
/// so it must not be retried after a short cooldown (reference section 4 and 7.4).
fn is_spend_cap(fields: &ErrorFields) -> bool {
    let message = fields.message.as_deref().unwrap_or("").to_ascii_lowercase();
    [
        "month",
        "spend",
        "budget",
        "billing",
        "usage limit",
        "quota",
    ]
    .iter()
    .any(|word| message.contains(word))
}

/// Whether an `invalid_function_call` error is about a tool-call id's format.
fn mentions_tool_call_id(fields: &ErrorFields) -> bool {
    fields
        .message
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().contains("tool call id"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target() -> Target {
        crate::config::test_target("mistral", "eu", "mistral-small-latest")
    }

    fn chat(raw: &str) -> ChatRequest<'_> {
        ChatRequest::parse(raw.as_bytes()).unwrap()
    }

    /// The body Mistral would receive for a client request.
    fn sent(raw: &str) -> Value {
        let request = Mistral.request(&chat(raw), &target()).unwrap();
        assert_eq!(request.path, "/chat/completions");
        serde_json::from_slice(&request.body).unwrap()
    }

    /// The router's 400 for a client request, as the client sees it.
    fn refused(raw: &str) -> Value {
        let error = Mistral.request(&chat(raw), &target()).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        serde_json::from_slice::<Value>(&error.body()).unwrap()["error"].clone()
    }

    /// What the client gets for a non-stream Mistral body.
    fn answered(request: &str, body: &str) -> Result<Translated, UpstreamFailure> {
        Mistral.response(
            &chat(request),
            &target(),
            Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    #[test]
    fn events_that_are_not_json_or_not_utf8_end_the_stream_unforwarded() {
        let latin1 = |text: &str| -> Vec<u8> {
            text.bytes()
                .map(|b| if b == b'~' { 0xe9 } else { b })
                .collect()
        };
        let cases = [
            b"{not json".to_vec(),
            // Forwarded untouched when sound, so validated without a parse into fields.
            latin1(r#"{"id":"c","choices":[{"index":0,"delta":{"content":"caf~"}}]}"#),
            // Parsed into fields (it has usage), with an unread member that is not UTF-8.
            latin1(
                r#"{"id":"~","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            ),
        ];
        for data in cases {
            let mut translator = Mistral.stream(&chat(STREAM_WITH_USAGE), &target());
            let mut out = Vec::new();
            let event = SseEvent {
                name: None,
                data: Bytes::from(data.clone()),
            };
            let failure = translator.event(&event, &mut out).unwrap_err();
            let shown = String::from_utf8_lossy(&data);
            assert_eq!(failure.kind, FailureKind::Stream, "{shown}");
            assert!(out.is_empty(), "{shown} was forwarded");
        }
    }

    /// The frames a stream produces, and how it ended.
    fn streamed(
        request: &str,
        events: &[&str],
    ) -> (Vec<String>, Result<(), UpstreamFailure>, Option<Usage>) {
        let mut translator = Mistral.stream(&chat(request), &target());
        let mut out = Vec::new();
        let mut result = Ok(());
        for data in events {
            let event = SseEvent {
                name: None,
                data: Bytes::copy_from_slice(data.as_bytes()),
            };
            result = translator.event(&event, &mut out);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = translator.finish(&mut out);
        }
        let frames = out
            .iter()
            .map(|frame| {
                let text = std::str::from_utf8(frame).unwrap();
                let payload = text.strip_prefix("data: ").unwrap();
                payload.strip_suffix("\n\n").unwrap().to_owned()
            })
            .collect();
        (frames, result, translator.usage())
    }

    const USER_HI: &str = r#"{"role":"user","content":"hi"}"#;
    const STREAM_WITH_USAGE: &str = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    const STREAM_PLAIN: &str =
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

    // --- request ---

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

    // --- response ---

    const TOOL_HISTORY: &str = r#"{"model":"m","messages":[{"role":"user","content":"w?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"w","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_abc123","content":"sunny"}]}"#;

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

    // --- stream ---

    const ROLE: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
    const TEXT: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"caf\u00e9 1000.00 error"},"finish_reason":null}]}"#;
    const LAST: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"total_tokens":10,"completion_tokens":2}}"#;
    const LAST_WITHOUT_USAGE: &str = r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}"#;

    #[test]
    fn usage_gets_its_own_chunk_when_the_client_asked() {
        let (frames, result, usage) = streamed(STREAM_WITH_USAGE, &[ROLE, TEXT, LAST, "[DONE]"]);
        result.unwrap();
        assert_eq!(
            frames,
            [
                ROLE,
                TEXT,
                LAST_WITHOUT_USAGE,
                r#"{"id":"s1","object":"chat.completion.chunk","created":17,"model":"mistral-small-latest","choices":[],"usage":{"prompt_tokens":8,"total_tokens":10,"completion_tokens":2}}"#,
                "[DONE]"
            ]
        );
        assert_eq!(usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn usage_is_removed_when_the_client_did_not_ask_but_still_recorded() {
        let (frames, result, usage) = streamed(STREAM_PLAIN, &[ROLE, LAST, "[DONE]"]);
        result.unwrap();
        assert_eq!(frames, [ROLE, LAST_WITHOUT_USAGE, "[DONE]"]);
        assert_eq!(usage.unwrap().prompt_tokens, 8);
    }

    #[test]
    fn usage_is_removed_wherever_it_sits_in_the_chunk() {
        let first = r#"{ "usage" : {"prompt_tokens":1,"completion_tokens":1,"total_tokens":2} , "id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let (frames, result, _) = streamed(STREAM_PLAIN, &[first, "[DONE]"]);
        result.unwrap();
        assert_eq!(
            frames[0],
            r#"{  "id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#
        );
        let only = r#"{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        assert_eq!(
            member_span(only.as_bytes(), 9..only.len() - 1),
            Some(1..only.len() - 1)
        );
    }

    #[test]
    fn an_openai_style_usage_chunk_is_not_sent_twice() {
        let usage_only = r#"{"id":"s1","created":17,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        let (frames, result, _) = streamed(
            STREAM_WITH_USAGE,
            &[LAST_WITHOUT_USAGE, usage_only, "[DONE]"],
        );
        result.unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames[1].contains(r#""choices":[],"usage":{"prompt_tokens":1"#));
    }

    #[test]
    fn stream_chunks_get_the_same_rewrites_as_bodies() {
        let mapped = hashed_id("call_abc123");
        let request = TOOL_HISTORY.replacen("{", r#"{"stream":true,"#, 1);
        let call = format!(
            r#"{{"id":"s1","choices":[{{"index":0,"delta":{{"tool_calls":[{{"id":"{mapped}","function":{{"name":"w","arguments":{{"a":1}}}},"index":0}}]}},"finish_reason":"model_length"}}]}}"#
        );
        let thinking = r#"{"id":"s1","choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]}]},"finish_reason":null}]}"#;
        let (frames, result, _) = streamed(&request, &[thinking, &call, "[DONE]"]);
        result.unwrap();
        assert_eq!(
            frames[0],
            r#"{"id":"s1","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"hmm"},"finish_reason":null}]}"#
        );
        assert_eq!(
            frames[1],
            r#"{"id":"s1","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_abc123","function":{"name":"w","arguments":"{\"a\":1}"},"index":0}]},"finish_reason":"length"}]}"#
        );
    }

    #[test]
    fn chunks_that_only_look_suspicious_are_forwarded_byte_for_byte() {
        let chunks = [
            r#"{"id":"s1","choices":[{"index":0,"delta":{"content":"error"},"finish_reason":null}],"usage":null}"#,
            r#"{"id":"s1","choices":[{"index":0,"delta":{"content":"\"usage\": {\"content\": [1]}"},"finish_reason":null}]}"#,
        ];
        let (frames, result, usage) =
            streamed(STREAM_WITH_USAGE, &[chunks[0], chunks[1], "[DONE]"]);
        result.unwrap();
        assert_eq!(frames, [chunks[0], chunks[1], "[DONE]"]);
        assert_eq!(usage, None);
    }

    #[test]
    fn events_that_are_not_json_end_the_stream_unforwarded() {
        for garbage in ["", "[DONE] ", "{\"choices\":[", "<html>"] {
            let (frames, result, _) = streamed(STREAM_PLAIN, &[ROLE, garbage]);
            assert_eq!(frames, [ROLE], "{garbage:?}");
            assert_eq!(result.unwrap_err().kind, FailureKind::Stream, "{garbage:?}");
        }
        let mut translator = Mistral.stream(&chat(STREAM_PLAIN), &target());
        let event = SseEvent {
            name: None,
            data: Bytes::from_static(b"{\"choices\":[{\"delta\":{\"content\":\"\xc3\"}}]}"),
        };
        let mut out = Vec::new();
        assert!(translator.event(&event, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn a_stream_without_done_is_cut_short() {
        let (frames, result, usage) = streamed(STREAM_WITH_USAGE, &[ROLE, LAST]);
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
        assert_eq!(frames, [ROLE, LAST_WITHOUT_USAGE]);
        assert_eq!(usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn error_events_and_error_finishes_end_the_stream() {
        let openai_style =
            r#"{"error":{"message":"overloaded","type":"server_error","code":"3000"}}"#;
        let (frames, result, _) = streamed(STREAM_PLAIN, &[ROLE, openai_style, "[DONE]"]);
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Stream);
        assert!(failure.message.contains("overloaded"));
        assert_eq!(frames, [ROLE]);

        let mistral_style = r#"{"object":"error","message":"Internal error","type":"internal","param":null,"code":"1000"}"#;
        let (_, result, _) = streamed(STREAM_PLAIN, &[mistral_style]);
        assert_eq!(result.unwrap_err().code.as_deref(), Some("1000"));

        let finish = r#"{"id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#;
        let (_, result, _) = streamed(STREAM_PLAIN, &[ROLE, finish, "[DONE]"]);
        assert_eq!(result.unwrap_err().kind, FailureKind::Stream);
    }

    #[test]
    fn nothing_after_done_is_forwarded() {
        let (frames, result, _) = streamed(STREAM_PLAIN, &[ROLE, "[DONE]", TEXT]);
        result.unwrap();
        assert_eq!(frames, [ROLE, "[DONE]"]);
    }

    // --- failures ---

    fn classify(status: u16, body: &str) -> UpstreamFailure {
        Mistral.failure(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn failures_follow_mistrals_error_shapes() {
        let cases = [
            (
                429,
                r#"{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#,
                FailureKind::RateLimited,
            ),
            (
                429,
                r#"{"message":"Requests rate limit exceeded"}"#,
                FailureKind::RateLimited,
            ),
            (
                429,
                r#"{"object":"error","message":"Service tier capacity exceeded for this model.","type":"invalid_request_error","param":null,"code":null}"#,
                FailureKind::RateLimited,
            ),
            (
                429,
                r#"{"object":"error","message":"You have reached your monthly spending limit.","type":"rate_limited","param":null,"code":"1300"}"#,
                FailureKind::Account,
            ),
            (
                422,
                r#"{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted","input":{}}]}"#,
                FailureKind::Rejected,
            ),
            (
                422,
                r#"{"object":"error","message":{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required"}]},"type":"invalid_request_error","param":null,"code":"3001"}"#,
                FailureKind::Rejected,
            ),
            (
                400,
                r#"{"object":"error","message":"Tool call id was call_abc123 but must be a-z, A-Z, 0-9, with a length of 9.","type":"invalid_function_call","param":null,"code":"3280"}"#,
                FailureKind::Rejected,
            ),
            (
                401,
                r#"{"message":"Unauthorized","request_id":"r1"}"#,
                FailureKind::Account,
            ),
            (500, "{}", FailureKind::Unavailable),
            (503, "upstream connect error", FailureKind::Unavailable),
        ];
        for (status, body, kind) in cases {
            assert_eq!(classify(status, body).kind, kind, "{status} {body}");
        }
    }

    #[test]
    fn rejections_keep_mistrals_message_and_code() {
        let failure = classify(
            422,
            r#"{"object":"error","message":{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required"}]},"type":"invalid_request_error","param":null,"code":"3001"}"#,
        );
        assert!(failure.message.contains("Field required"));
        assert_eq!(failure.code.as_deref(), Some("3001"));
        assert_eq!(failure.status, Some(StatusCode::UNPROCESSABLE_ENTITY));
    }
}
