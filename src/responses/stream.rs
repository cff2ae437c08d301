//! A chat stream's frames as Responses events.
//!
//! [`ResponsesStream`] wraps the [`ChatStream`] the chat pipeline built (which still does the
//! commit point, deadlines, accounting and the record) and rewrites what it sends: each chat
//! chunk becomes the typed events the SDKs parse, each as `event: <type>` and a `data:` object
//! with that `type` and an increasing `sequence_number`:
//!
//! - `response.created`, `response.in_progress` first;
//! - per output item: `response.output_item.added`, then for a message
//!   `response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
//!   `response.content_part.done`; for reasoning the same with `response.reasoning_text.*`;
//!   for a function call `response.function_call_arguments.delta`…, `.done`; then
//!   `response.output_item.done`;
//! - at the end `response.completed` (or `response.incomplete`, as OpenAI sends for a response
//!   cut by `max_output_tokens` or a content filter) with the whole response and its usage,
//!   cost included when the target is priced;
//! - when the stream breaks after the commit point, `error` and then `response.failed`
//!   (status `failed`, the error inside) in place of chat's error chunk.
//!
//! Items are closed when the next kind begins (reasoning, then text, then calls) or at the
//! finish. A refusal streamed by the provider arrives as text.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::response::{ContentPart, ErrorOut, OutputItem, ReasoningPart, ResponseObject, Status};
use super::{Echo, ResponseUsage};
use crate::openai::{DONE, Usage};
use crate::sse::SseDecoder;
use crate::stream::ChatStream;

/// The largest frame the decoder holds: the chat stream's own frames are small.
const MAX_EVENT_BYTES: usize = 8 << 20;

/// The response body of a streamed Responses request.
pub struct ResponsesStream {
    inner: ChatStream,
    decoder: SseDecoder,
    events: Events,
    /// The inner stream has ended.
    ended: bool,
}

impl ResponsesStream {
    /// The Responses events of `inner`, a chat stream served for `echo`'s request.
    pub fn new(inner: ChatStream, echo: Echo) -> Self {
        let mut events = Events::new(echo);
        events.start();
        Self {
            inner,
            decoder: SseDecoder::new(MAX_EVENT_BYTES),
            events,
            ended: false,
        }
    }

    /// Rewrites the chat frames in `data`.
    fn absorb(&mut self, data: &[u8]) {
        self.decoder.push(data);
        while let Ok(Some(event)) = self.decoder.next_event() {
            self.events.chat_frame(&event.data);
        }
    }
}

impl Body for ResponsesStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while !this.ended {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.absorb(&data);
                    }
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => {
                    this.ended = true;
                    this.events.end_without_finish();
                }
                Poll::Pending => break,
            }
            if !this.events.out.is_empty() {
                break;
            }
        }
        if !this.events.out.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(this.events.out.split().freeze()))));
        }
        if this.ended {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.events.out.is_empty()
    }
}

/// One output item as the stream builds it.
enum Item {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    fn id(&self) -> &str {
        match self {
            Self::Reasoning { id, .. } | Self::Message { id, .. } | Self::Call { id, .. } => id,
        }
    }

    /// The item as `output` shows it, in `status`.
    fn output(&self, status: &'static str) -> OutputItem<'_> {
        match self {
            Self::Reasoning { id, text } => OutputItem::Reasoning {
                id,
                summary: [],
                content: if text.is_empty() && status == "in_progress" {
                    Vec::new()
                } else {
                    vec![ReasoningPart::new(text)]
                },
                status,
            },
            Self::Message { id, text } => OutputItem::Message {
                id,
                role: "assistant",
                status,
                content: if text.is_empty() && status == "in_progress" {
                    Vec::new()
                } else {
                    vec![ContentPart::text(text)]
                },
            },
            Self::Call {
                id,
                call_id,
                name,
                arguments,
            } => OutputItem::FunctionCall {
                id,
                call_id,
                name,
                arguments,
                status,
            },
        }
    }
}

/// The event writer: what the response holds so far, and the frames not yet sent.
struct Events {
    echo: Echo,
    model: String,
    sequence: u64,
    items: Vec<Item>,
    /// Each item's final status (by output index), once it is done.
    done: Vec<Option<&'static str>>,
    /// The open reasoning and message items, by output index.
    reasoning: Option<usize>,
    message: Option<usize>,
    /// The open function call items: (the chat tool call index, output index).
    calls: Vec<(u32, usize)>,
    status: Option<Status>,
    usage: Option<ResponseUsage>,
    /// The response ended (completed, incomplete or failed): nothing more is written.
    over: bool,
    out: BytesMut,
}

/// A chat chunk, the members the events are made of.
#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<ChoiceIn<'a>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaIn<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaIn<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<CallDeltaIn<'a>>>,
}

#[derive(Deserialize)]
struct CallDeltaIn<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDeltaIn<'a>>,
}

#[derive(Deserialize)]
struct FunctionDeltaIn<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    #[serde(borrow, default)]
    message: Cow<'a, str>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
}

/// The router's cost in a usage chunk.
#[derive(Deserialize)]
struct CostIn {
    #[serde(default)]
    cost: Option<CostFields>,
}

#[derive(Deserialize)]
struct CostFields {
    amount: String,
    currency: String,
}

#[derive(Serialize)]
struct WithResponse<'a> {
    response: ResponseObject<'a>,
}

#[derive(Serialize)]
struct WithItem<'a> {
    output_index: usize,
    item: OutputItem<'a>,
}

#[derive(Serialize)]
struct WithPart<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    part: PartOut<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PartOut<'a> {
    Text(ContentPart<'a>),
    Reasoning(ReasoningPart<'a>),
}

#[derive(Serialize)]
struct TextDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}

#[derive(Serialize)]
struct TextDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    code: &'a str,
    message: &'a str,
    param: Option<()>,
}

impl Events {
    fn new(echo: Echo) -> Self {
        let model = echo.model.clone();
        Self {
            echo,
            model,
            sequence: 0,
            items: Vec::new(),
            done: Vec::new(),
            reasoning: None,
            message: None,
            calls: Vec::new(),
            status: None,
            usage: None,
            over: false,
            out: BytesMut::new(),
        }
    }

    /// Writes a lifecycle event carrying the response as it stands.
    fn write_response(&mut self, kind: &str, status: Status, error: Option<ErrorOut<'_>>) {
        let item_status = status.item_status();
        let output: Vec<OutputItem<'_>> = self
            .items
            .iter()
            .zip(&self.done)
            .map(|(item, done)| item.output(done.unwrap_or(item_status)))
            .collect();
        let response = ResponseObject::new(
            &self.echo,
            &self.model,
            status,
            &output,
            self.usage.as_ref(),
            error,
        );
        emit(
            &mut self.out,
            &mut self.sequence,
            kind,
            WithResponse { response },
        );
    }

    /// `response.created` and `response.in_progress`.
    fn start(&mut self) {
        self.write_response("response.created", Status::InProgress, None);
        self.write_response("response.in_progress", Status::InProgress, None);
    }

    /// Rewrites one chat `data:` payload.
    fn chat_frame(&mut self, data: &[u8]) {
        if self.over {
            return;
        }
        if data == DONE {
            self.finish();
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<ChunkIn<'_>>(data) else {
            return;
        };
        if let Some(error) = &chunk.error {
            let code = error.code.as_deref().unwrap_or("server_error").to_owned();
            self.fail(&code, &error.message);
            return;
        }
        if let Some(model) = chunk.model.as_deref()
            && model != self.model
        {
            model.clone_into(&mut self.model);
        }
        if let Some(usage) = chunk.usage.filter(|raw| raw.get() != "null") {
            self.note_usage(usage);
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(delta) = choice.delta {
            self.delta(delta);
        }
        if let Some(finish) = choice.finish_reason.as_deref() {
            self.status = Some(Status::of_finish(Some(finish)));
            self.close_all();
        }
    }

    fn note_usage(&mut self, raw: &RawValue) {
        let Ok(usage) = serde_json::from_str::<Usage>(raw.get()) else {
            return;
        };
        let cost = serde_json::from_str::<CostIn>(raw.get())
            .ok()
            .and_then(|c| c.cost);
        let mut usage = ResponseUsage::new(&usage, None);
        usage.cost = cost.map(|cost| super::CostOut {
            amount: cost.amount,
            currency: cost.currency,
        });
        self.usage = Some(usage);
    }

    fn delta(&mut self, delta: DeltaIn<'_>) {
        if let Some(text) = delta.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
            self.reasoning_delta(text);
        }
        for text in [delta.content.as_deref(), delta.refusal.as_deref()]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            self.text_delta(text);
        }
        for call in delta.tool_calls.into_iter().flatten() {
            self.call_delta(call);
        }
    }

    fn add_item(&mut self, item: Item) -> usize {
        let index = self.items.len();
        self.items.push(item);
        self.done.push(None);
        let body = WithItem {
            output_index: index,
            item: self.items[index].output("in_progress"),
        };
        emit(
            &mut self.out,
            &mut self.sequence,
            "response.output_item.added",
            body,
        );
        index
    }

    fn reasoning_delta(&mut self, text: &str) {
        let index = match self.reasoning {
            Some(index) => index,
            None => {
                self.close_message();
                self.close_calls();
                let id = if self.items.is_empty() {
                    self.echo.reasoning_id()
                } else {
                    format!("{}_{}", self.echo.reasoning_id(), self.items.len())
                };
                let index = self.add_item(Item::Reasoning {
                    id,
                    text: String::new(),
                });
                self.part_event("response.content_part.added", index);
                self.reasoning = Some(index);
                index
            }
        };
        if let Item::Reasoning { text: all, .. } = &mut self.items[index] {
            all.push_str(text);
        }
        self.text_event("response.reasoning_text.delta", index, text, false);
    }

    fn text_delta(&mut self, text: &str) {
        let index = match self.message {
            Some(index) => index,
            None => {
                self.close_reasoning();
                self.close_calls();
                let id = if self.items.iter().any(|i| matches!(i, Item::Message { .. })) {
                    format!("{}_{}", self.echo.message_id(), self.items.len())
                } else {
                    self.echo.message_id()
                };
                let index = self.add_item(Item::Message {
                    id,
                    text: String::new(),
                });
                self.part_event("response.content_part.added", index);
                self.message = Some(index);
                index
            }
        };
        if let Item::Message { text: all, .. } = &mut self.items[index] {
            all.push_str(text);
        }
        self.text_event("response.output_text.delta", index, text, true);
    }

    fn call_delta(&mut self, call: CallDeltaIn<'_>) {
        let open = self
            .calls
            .iter()
            .find(|(chat_index, _)| *chat_index == call.index)
            .map(|(_, index)| *index);
        let (name, arguments) = match call.function {
            Some(function) => (function.name, function.arguments),
            None => (None, None),
        };
        let index = match open {
            Some(index) => index,
            None => {
                self.close_reasoning();
                self.close_message();
                let call_number = self
                    .items
                    .iter()
                    .filter(|i| matches!(i, Item::Call { .. }))
                    .count();
                let index = self.add_item(Item::Call {
                    id: self.echo.call_item_id(call_number),
                    call_id: call.id.map(Cow::into_owned).unwrap_or_default(),
                    name: name.map(Cow::into_owned).unwrap_or_default(),
                    arguments: String::new(),
                });
                self.calls.push((call.index, index));
                index
            }
        };
        let Some(fragment) = arguments.filter(|a| !a.is_empty()) else {
            return;
        };
        if let Item::Call { arguments, .. } = &mut self.items[index] {
            arguments.push_str(&fragment);
        }
        let body = ArgumentsDelta {
            item_id: self.items[index].id(),
            output_index: index,
            delta: &fragment,
        };
        emit(
            &mut self.out,
            &mut self.sequence,
            "response.function_call_arguments.delta",
            body,
        );
    }

    /// `response.content_part.added`/`.done` for item `index`'s one part.
    fn part_event(&mut self, kind: &str, index: usize) {
        let part = match &self.items[index] {
            Item::Reasoning { text, .. } => PartOut::Reasoning(ReasoningPart::new(text)),
            Item::Message { text, .. } => PartOut::Text(ContentPart::text(text)),
            Item::Call { .. } => return,
        };
        let body = WithPart {
            item_id: self.items[index].id(),
            output_index: index,
            content_index: 0,
            part,
        };
        emit(&mut self.out, &mut self.sequence, kind, body);
    }

    /// A text or reasoning delta of item `index`.
    fn text_event(&mut self, kind: &str, index: usize, delta: &str, logprobs: bool) {
        let body = TextDelta {
            item_id: self.items[index].id(),
            output_index: index,
            content_index: 0,
            delta,
            logprobs: logprobs.then_some([]),
        };
        emit(&mut self.out, &mut self.sequence, kind, body);
    }

    /// The `.done` events of item `index`, which ends.
    fn close_item(&mut self, index: usize) {
        if self.done[index].is_some() {
            return;
        }
        let (out, sequence) = (&mut self.out, &mut self.sequence);
        let item = &self.items[index];
        let id = item.id();
        match item {
            Item::Reasoning { text, .. } => {
                let done = TextDone {
                    item_id: id,
                    output_index: index,
                    content_index: 0,
                    text,
                    logprobs: None,
                };
                emit(out, sequence, "response.reasoning_text.done", done);
                let part = PartOut::Reasoning(ReasoningPart::new(text));
                emit(
                    out,
                    sequence,
                    "response.content_part.done",
                    part_of(id, index, part),
                );
            }
            Item::Message { text, .. } => {
                let done = TextDone {
                    item_id: id,
                    output_index: index,
                    content_index: 0,
                    text,
                    logprobs: Some([]),
                };
                emit(out, sequence, "response.output_text.done", done);
                let part = PartOut::Text(ContentPart::text(text));
                emit(
                    out,
                    sequence,
                    "response.content_part.done",
                    part_of(id, index, part),
                );
            }
            Item::Call {
                name, arguments, ..
            } => {
                let done = ArgumentsDone {
                    item_id: id,
                    output_index: index,
                    name,
                    arguments,
                };
                emit(out, sequence, "response.function_call_arguments.done", done);
            }
        }
        let status = match (item, self.status) {
            (Item::Message { .. }, Some(status)) => status.item_status(),
            _ => "completed",
        };
        let body = WithItem {
            output_index: index,
            item: item.output(status),
        };
        emit(out, sequence, "response.output_item.done", body);
        self.done[index] = Some(status);
    }

    fn close_reasoning(&mut self) {
        if let Some(index) = self.reasoning.take() {
            self.close_item(index);
        }
    }

    fn close_message(&mut self) {
        if let Some(index) = self.message.take() {
            self.close_item(index);
        }
    }

    fn close_calls(&mut self) {
        for (_, index) in std::mem::take(&mut self.calls) {
            self.close_item(index);
        }
    }

    fn close_all(&mut self) {
        self.close_reasoning();
        self.close_message();
        self.close_calls();
    }

    /// The chat stream's `[DONE]`: every item closed, then the response's last event.
    fn finish(&mut self) {
        self.close_all();
        let status = self.status.unwrap_or(Status::Completed);
        let kind = if status == Status::Completed {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.write_response(kind, status, None);
        self.over = true;
    }

    /// The chat stream broke after the commit point: `error`, then `response.failed`.
    fn fail(&mut self, code: &str, message: &str) {
        let event = ErrorEvent {
            code,
            message,
            param: None,
        };
        emit(&mut self.out, &mut self.sequence, "error", event);
        let error = ErrorOut { code, message };
        self.write_response("response.failed", Status::Failed, Some(error));
        self.over = true;
    }

    /// The chat stream ended with neither `[DONE]` nor an error: never a normal finish.
    fn end_without_finish(&mut self) {
        if !self.over {
            self.fail(
                "stream_interrupted",
                "The stream ended before the response was complete.",
            );
        }
    }
}

/// The body of a `response.content_part.*` event.
fn part_of<'a>(item_id: &'a str, output_index: usize, part: PartOut<'a>) -> WithPart<'a> {
    WithPart {
        item_id,
        output_index,
        content_index: 0,
        part,
    }
}

/// Writes the event `kind` with `body` (an object with members) as an SSE block, numbered
/// from `sequence`: `type` and `sequence_number` first, then the body's own members.
fn emit<T: Serialize>(out: &mut BytesMut, sequence: &mut u64, kind: &str, body: T) {
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: {\"type\":\"");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\",\"sequence_number\":");
    // Writing into memory cannot fail.
    let _ = write!(out, "{sequence}");
    *sequence += 1;
    // The body's opening brace becomes the comma after the number: one pass, no flattening.
    let brace = out.len();
    // Serialising these plain structs into memory cannot fail.
    let _ = serde_json::to_writer(out.writer(), &body);
    if let Some(byte) = out.get_mut(brace) {
        *byte = b',';
    }
    out.put_slice(b"\n\n");
}
