//! The body of a streamed answer: upstream bytes → SSE events → translator → client frames.
//!
//! A stream has a commit point: its first content or tool-call delta. Until then the router
//! holds the preamble (the role-only chunk) back and [`PrimedStream::open`] reports any failure
//! as a failed attempt, so the router can fail over without the client seeing anything. After
//! it, frames leave as soon as they are translated (events that arrived together leave
//! together, in one write); the body enforces the stream's deadlines
//! (the request's overall timeout and the longest silence between events) and ends a broken
//! stream with an OpenAI error event and no `[DONE]`, so a client can never mistake a
//! provider's failure for a normal finish. The request's log record is written, and its
//! token estimate settled, when the stream ends or when the client goes away.
//!
//! The router reads a stream to its commit point as a [`PrimedStream`]; the chat handler,
//! which holds the record and the account, makes it the [`ChatStream`] body in one call.
//!
//! Accounting: the router always asks the upstream for usage, so the stream's usage chunk
//! (`"choices": []` with `usage`) is the one frame that may change on its way out. A client
//! that asked for it gets it with `usage.cost` (when the target has prices); a client that did
//! not ask never sees it. The cost is charged once: at the usage chunk, or when the stream
//! closes (also when the client went away: what was received is still accounted; a stream
//! that did not finish cleanly pays no transaction fee).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::{Instant, Sleep};

use crate::access_log::RequestRecord;
use crate::accounting::{Account, Cost, UsageChunk};
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::limits::TokenSettlement;
use crate::providers::StreamTranslator;
use crate::redact::Redactor;
use crate::sse::{SseDecoder, data_frame, is_done_frame};
use crate::upstream::UpstreamBody;

/// The largest single event the router will hold (a provider's chunk is a few KiB at most).
const MAX_EVENT_BYTES: usize = 8 << 20;

/// The most frames the router holds back to send together (see [`ChatStream`]'s `poll_frame`).
const MAX_BATCH_FRAMES: usize = 64;

/// How many turns without news the router waits before it sends what it holds. hyper's
/// client passes a body on one chunk at a time, and the next chunk takes two turns of the
/// runtime to come through (measured), so two quiet turns mean the burst is over.
const QUIET_TURNS_BEFORE_SENDING: u8 = 2;

/// Deadlines that bound a stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// When the whole request must be over.
    pub deadline: Instant,
    /// The longest silence allowed between upstream events.
    pub idle_timeout: Duration,
}

/// An upstream stream read to its commit point: the router's half of a [`ChatStream`]. It
/// decodes and translates; the [`ChatStream`] built from it sends, accounts and records.
pub struct PrimedStream {
    upstream: UpstreamBody,
    decoder: SseDecoder,
    translator: Box<dyn StreamTranslator>,
    ready: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    limits: StreamLimits,
    deadline: Pin<Box<Sleep>>,
    idle: Pin<Box<Sleep>>,
    finished: bool,
    /// Something arrived since the idle timer was last set.
    heard_from_upstream: bool,
    /// Takes the configuration's secrets out of a failure before it is logged or sent.
    redactor: Arc<Redactor>,
}

/// What a stream settles when it is over besides the request's record: known to the handler
/// once the router answered.
pub struct StreamEnd {
    /// The tokens taken on estimate, corrected with the stream's usage.
    pub settlement: TokenSettlement,
    /// What the request costs, charged once.
    pub account: Account,
    /// Whether the client asked for the usage chunk (it gets it with `usage.cost`) or not (it
    /// is dropped).
    pub client_wants_usage: bool,
}

/// A streaming response body in the OpenAI SSE wire.
pub struct ChatStream {
    source: PrimedStream,
    /// Turns given to the upstream connection since anything last arrived.
    quiet_turns: u8,
    /// Something has been sent: the first content goes out at once, unbatched.
    sent_any: bool,
    /// Taken when the record is written, once.
    record: Option<RequestRecord>,
    /// Taken when the estimate is settled, once.
    settlement: Option<TokenSettlement>,
    /// Taken when the request is charged, once.
    account: Option<Account>,
    client_wants_usage: bool,
}

impl PrimedStream {
    /// Reads an upstream body that answered 2xx ahead to the commit point: the first frame
    /// that is more than a preamble, or the stream's clean end. Any failure before it is
    /// returned (nothing has reached the client), including no content by
    /// `first_content_by`; the router redacts it. `redactor` cleans the failures after it.
    pub async fn open(
        upstream: UpstreamBody,
        translator: Box<dyn StreamTranslator>,
        limits: StreamLimits,
        redactor: Arc<Redactor>,
        first_content_by: Instant,
    ) -> Result<Self, UpstreamFailure> {
        let mut stream = Self {
            upstream,
            decoder: SseDecoder::new(MAX_EVENT_BYTES).with_bare_json(translator.reads_bare_json()),
            translator,
            ready: VecDeque::new(),
            scratch: Vec::new(),
            limits,
            deadline: Box::pin(tokio::time::sleep_until(limits.deadline)),
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            finished: false,
            heard_from_upstream: false,
            redactor,
        };
        stream.prime(first_content_by).await?;
        Ok(stream)
    }

    /// Reads ahead to the commit point (see [`PrimedStream::open`]).
    async fn prime(&mut self, first_content_by: Instant) -> Result<(), UpstreamFailure> {
        let mut checked = 0;
        loop {
            if self
                .ready
                .iter()
                .skip(checked)
                .any(|frame| !is_preamble(frame))
                || self.finished
            {
                return Ok(());
            }
            checked = self.ready.len();
            let pulled =
                tokio::time::timeout_at(first_content_by, std::future::poll_fn(|cx| self.pull(cx)))
                    .await;
            match pulled {
                Ok(result) => result?,
                Err(_) => {
                    return Err(UpstreamFailure::new(
                        FailureKind::Timeout,
                        "no content within routing.attempt_timeout",
                    ));
                }
            }
        }
    }

    /// Decodes newly received bytes and translates every complete event. The frames of the
    /// events before a failing one are kept: after the commit point they are sound answer
    /// the client is owed, ahead of the error event.
    fn absorb(&mut self, data: &[u8]) -> Result<(), UpstreamFailure> {
        self.decoder.push(data);
        let translated = self.translate_events();
        self.ready.extend(self.scratch.drain(..));
        translated
    }

    /// Translates the complete events the decoder holds into `scratch`, up to `[DONE]`.
    fn translate_events(&mut self) -> Result<(), UpstreamFailure> {
        while let Some(event) = self
            .decoder
            .next_event()
            .map_err(|e| UpstreamFailure::new(FailureKind::Stream, e.to_string()))?
        {
            self.translator.event(&event, &mut self.scratch)?;
            if self
                .scratch
                .last()
                .is_some_and(|frame| is_done_frame(frame))
            {
                // The answer is complete: whatever the upstream does next (linger, stall,
                // drop the connection) is no longer the client's concern.
                self.finished = true;
                break;
            }
        }
        Ok(())
    }

    /// The upstream body ended: flush the last event and let the translator check the ending.
    fn end(&mut self) -> Result<(), UpstreamFailure> {
        if let Some(event) = self.decoder.finish() {
            self.translator.event(&event, &mut self.scratch)?;
        }
        self.translator.finish(&mut self.scratch)?;
        self.ready.extend(self.scratch.drain(..));
        Ok(())
    }

    /// Reads and translates one upstream frame; `Pending` means nothing new arrived. The
    /// timers are looked at only when the upstream has nothing ready, which a stream always
    /// reaches between bursts: one clock read and one timer update per burst, not per frame.
    fn pull(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamFailure>> {
        let Poll::Ready(frame) = Pin::new(&mut self.upstream).poll_frame(cx) else {
            return self.poll_deadlines(cx);
        };
        self.heard_from_upstream = true;
        Poll::Ready(match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => self.absorb(&data),
                Err(_trailers) => Ok(()),
            },
            Some(Err(e)) => Err(UpstreamFailure::new(
                FailureKind::Stream,
                format!("the connection to the provider broke: {e}"),
            )),
            None => {
                self.finished = true;
                self.end()
            }
        })
    }

    /// While the upstream is silent: `Ready(Err)` once the request's deadline or the idle
    /// timeout has passed, else `Pending` with both timers set to wake the stream.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamFailure>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(UpstreamFailure::new(
                FailureKind::Timeout,
                "the request took longer than routing.request_timeout",
            )));
        }
        if std::mem::take(&mut self.heard_from_upstream) {
            let idle_until = Instant::now() + self.limits.idle_timeout;
            self.idle.as_mut().reset(idle_until);
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the provider sent nothing for {:?} (routing.stream_idle_timeout)",
                self.limits.idle_timeout
            );
            return Poll::Ready(Err(UpstreamFailure::new(FailureKind::Stream, message)));
        }
        Poll::Pending
    }
}

impl ChatStream {
    /// The body of a stream the router primed: `record` is written, and `end` settled, when
    /// it is over.
    pub fn new(source: PrimedStream, record: RequestRecord, end: StreamEnd) -> Self {
        Self {
            source,
            quiet_turns: 0,
            sent_any: false,
            record: Some(record),
            settlement: Some(end.settlement),
            account: Some(end.account),
            client_wants_usage: end.client_wants_usage,
        }
    }

    /// What leaves for the client in place of `frame`: the frame itself, the usage chunk with
    /// its cost, or nothing (a usage chunk the client did not ask for).
    fn outgoing(&mut self, frame: Bytes) -> Option<Bytes> {
        let Some(chunk) = UsageChunk::find(&frame) else {
            return Some(frame);
        };
        if !self.client_wants_usage {
            return None;
        }
        // The usage chunk comes after the finish: the answer is complete, and due its fee.
        match self.charge(true) {
            Some(cost) => Some(data_frame(&chunk.with_cost(&cost))),
            None => Some(frame),
        }
    }

    /// Charges the account (once) for the usage received so far and notes it on the record;
    /// returns the cost, if the target has prices.
    fn charge(&mut self, succeeded: bool) -> Option<Cost> {
        let account = self.account.take()?;
        let usage = self.source.translator.usage();
        let charge = account.charge(usage.as_ref(), succeeded);
        if let Some(record) = &mut self.record {
            record.cost = charge.cost.clone();
            record.fee_charged = charge.fee_charged;
        }
        charge.cost
    }

    /// Ends the stream with an error event; nothing after it, no `[DONE]`.
    fn fail(&mut self, failure: UpstreamFailure) {
        let failure = failure.redacted(&self.source.redactor);
        tracing::warn!(kind = failure.kind.as_str(), message = %failure.message, "stream failed");
        let kind = failure.kind;
        let error = ApiError::StreamInterrupted(failure);
        if let Some(record) = &mut self.record {
            record.error_code = Some(error.code().to_owned());
            record.stream_broke(kind);
        }
        self.source.ready.push_back(data_frame(&error.body()));
        self.source.finished = true;
    }

    fn note_sent(&mut self) {
        if let Some(record) = &mut self.record
            && record.time_to_first_token.is_none()
        {
            record.time_to_first_token = Some(record.started.elapsed());
        }
    }

    /// Completes and writes the record: the stream is over.
    fn close_record(&mut self) {
        if let Some(record) = self.closed_record() {
            record.emit();
        }
    }

    /// Settles the token estimate, charges what was received (the fee only for a stream that
    /// finished cleanly) and hands back the completed record, once.
    fn closed_record(&mut self) -> Option<RequestRecord> {
        let succeeded = self.source.finished
            && self
                .record
                .as_ref()
                .is_some_and(|record| record.error_code.is_none());
        self.charge(succeeded);
        let usage = self.source.translator.usage();
        if let Some(settlement) = self.settlement.take() {
            settlement.settle(usage);
        }
        let mut record = self.record.take()?;
        record.usage = usage;
        Some(record)
    }

    /// The record of a stream being dropped: an unfinished one means the client went away, or
    /// the server cut it at the end of its shutdown grace.
    fn abandoned_record(&mut self) -> Option<RequestRecord> {
        if let Some(record) = &mut self.record
            && !self.source.finished
        {
            record.error_code = Some(record.abandoned_because().to_owned());
        }
        self.closed_record()
    }

    /// Pulls what the upstream has ready, up to [`MAX_BATCH_FRAMES`] held frames; true when
    /// anything arrived (a failure included).
    fn read_ahead(&mut self, cx: &mut Context<'_>) -> bool {
        let mut arrived = false;
        while !self.source.finished && self.source.ready.len() < MAX_BATCH_FRAMES {
            match self.source.pull(cx) {
                Poll::Ready(Ok(())) => arrived = true,
                Poll::Ready(Err(failure)) => {
                    self.fail(failure);
                    arrived = true;
                }
                Poll::Pending => break,
            }
        }
        arrived
    }

    /// Whether to hold what is ready for another turn: after the first content, while the
    /// batch has room and the upstream has not been quiet for long.
    fn burst_may_go_on(&self) -> bool {
        self.sent_any
            && !self.source.finished
            && !self.source.ready.is_empty()
            && self.source.ready.len() < MAX_BATCH_FRAMES
            && self.quiet_turns < QUIET_TURNS_BEFORE_SENDING
    }

    /// Everything held, as the client gets it, in one frame: several SSE events in one
    /// chunk are one write for the router and one read for the client.
    fn take_batch(&mut self) -> Option<Bytes> {
        while let Some(frame) = self.source.ready.pop_front() {
            if let Some(frame) = self.outgoing(frame) {
                self.source.scratch.push(frame);
            }
        }
        if self.source.scratch.len() <= 1 {
            return self.source.scratch.pop();
        }
        let size = self.source.scratch.iter().map(Bytes::len).sum();
        let mut batch = BytesMut::with_capacity(size);
        for frame in self.source.scratch.drain(..) {
            batch.extend_from_slice(&frame);
        }
        Some(batch.freeze())
    }
}

/// Whether a frame is only preamble: a chunk whose deltas carry nothing but the role (and
/// empty content), with no finish reason, usage or error. Only frames before the commit point
/// are parsed here.
fn is_preamble(frame: &[u8]) -> bool {
    let Some(payload) = frame.strip_prefix(b"data: ") else {
        return false;
    };
    let Ok(chunk) = serde_json::from_slice::<ChunkShape<'_>>(payload) else {
        return false;
    };
    if !is_empty_json(chunk.usage) || chunk.error.is_some() {
        return false;
    }
    chunk.choices.is_some_and(|choices| {
        choices.iter().all(|choice| {
            is_empty_json(choice.finish_reason)
                && choice.delta.as_ref().is_some_and(|delta| {
                    delta
                        .iter()
                        .all(|(key, value)| key == "role" || is_empty_json(Some(value)))
                })
        })
    })
}

/// The members of a chunk that tell preamble from content, borrowed from its bytes.
#[derive(Deserialize)]
struct ChunkShape<'a> {
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceShape<'a>>>,
}

/// One choice of a [`ChunkShape`].
#[derive(Deserialize)]
struct ChoiceShape<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<BTreeMap<Cow<'a, str>, &'a RawValue>>,
}

/// Absent, `null`, `""` or an empty array.
fn is_empty_json(value: Option<&RawValue>) -> bool {
    let Some(value) = value else {
        return true;
    };
    match value.get().as_bytes() {
        b"null" | b"\"\"" => true,
        [b'[', inner @ .., b']'] => inner.iter().all(u8::is_ascii_whitespace),
        _ => false,
    }
}

impl Body for ChatStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let arrived = this.read_ahead(cx);
        // hyper's client hands a response body over one chunk per turn of its connection
        // task, and hyper's server writes whatever it holds as soon as a body is pending. So
        // while chunks keep arriving, give the connection task another turn before sending:
        // a burst then leaves in one write instead of one write (and one client wake-up) per
        // chunk. A quiet upstream costs two extra turns, microseconds. The first content is
        // not held: it leaves with the response headers, as early as it can.
        if arrived {
            this.quiet_turns = 0;
        }
        if this.burst_may_go_on() {
            this.quiet_turns += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(batch) = this.take_batch() {
            this.sent_any = true;
            this.note_sent();
            return Poll::Ready(Some(Ok(Frame::data(batch))));
        }
        if this.source.finished {
            this.close_record();
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.source.finished && self.source.ready.is_empty()
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        // The client went away mid-stream (or the server cut it): still account for what was
        // received.
        if let Some(record) = self.abandoned_record() {
            record.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full};
    use rust_decimal::Decimal;

    use super::*;
    use crate::accounting::{AccountingSettings, Prices, SeenTransactions};
    use crate::config::{ProviderKind, test_target};
    use crate::openai::ChatRequest;
    use crate::providers::adapter_for;

    /// An OpenAI-wire answer with its usage chunk, as the upstream sends it when asked.
    const OPENAI_EVENTS: [&str; 4] = [
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"caf\u00e9 1.50"}}],"usage":null}"#,
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
        r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1234,"completion_tokens":56,"total_tokens":1290,"prompt_tokens_details":{"cached_tokens":100}}}"#,
        "[DONE]",
    ];

    fn qwen_max() -> Arc<Prices> {
        let dec = |text| Decimal::from_str(text).ok();
        Arc::new(Prices {
            input_per_mtok: dec("1.6"),
            output_per_mtok: dec("6.4"),
            cached_input_per_mtok: dec("0.64"),
            cache_write_per_mtok: None,
            per_transaction: dec("0.01"),
            currency: Arc::from("USD"),
        })
    }

    /// An upstream body that sends `events` (each a whole SSE block) and ends.
    fn ending(events: &[String]) -> UpstreamBody {
        Full::new(Bytes::from(events.concat()))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// An upstream body that sends `events` and then stays open, saying nothing more.
    fn left_open(events: &[String]) -> UpstreamBody {
        use futures_util::StreamExt as _;
        let frames = futures_util::stream::iter(events.to_vec())
            .map(|event| Ok(Frame::data(Bytes::from(event))))
            .chain(futures_util::stream::pending());
        http_body_util::StreamBody::new(frames).boxed_unsync()
    }

    /// A primed stream of `kind` over `upstream`, accounted at qwen-max prices, for a client
    /// that did or did not ask for usage.
    async fn stream(
        kind: ProviderKind,
        upstream: UpstreamBody,
        client_wants_usage: bool,
    ) -> ChatStream {
        let options = if client_wants_usage {
            r#","stream_options":{"include_usage":true}"#
        } else {
            ""
        };
        let body = format!(
            r#"{{"model":"m","stream":true{options},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let chat = ChatRequest::parse(body.as_bytes()).unwrap();
        let target = test_target(kind.as_str(), "p", "m");
        let limits = StreamLimits {
            deadline: Instant::now() + Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        };
        let translator = adapter_for(kind).stream(&chat, &target);
        let primed = PrimedStream::open(
            upstream,
            translator,
            limits,
            Arc::default(),
            limits.deadline,
        )
        .await
        .unwrap();
        let ledger = Arc::new(SeenTransactions::default());
        let settings = AccountingSettings::default();
        let record = RequestRecord::new("r".into(), std::time::Instant::now());
        let end = StreamEnd {
            settlement: TokenSettlement::new(Vec::new(), 0),
            account: Account::new(Some(qwen_max()), ledger, &settings, "k", None),
            client_wants_usage,
        };
        ChatStream::new(primed, record, end)
    }

    fn data_events(payloads: &[&str]) -> Vec<String> {
        payloads.iter().map(|p| format!("data: {p}\n\n")).collect()
    }

    async fn next_frame(stream: &mut ChatStream) -> Option<Bytes> {
        let frame = stream.frame().await?;
        frame.ok()?.into_data().ok()
    }

    async fn all_frames(stream: &mut ChatStream) -> String {
        let mut text = String::new();
        while let Some(frame) = next_frame(stream).await {
            text.push_str(std::str::from_utf8(&frame).unwrap());
        }
        text
    }

    #[tokio::test]
    async fn a_usage_chunk_the_client_did_not_ask_for_is_dropped_and_nothing_else_changes() {
        let events = data_events(&OPENAI_EVENTS);
        let mut stream = stream(ProviderKind::OpenAi, ending(&events), false).await;
        let sent = all_frames(&mut stream).await;
        let expected = [&events[0], &events[1], &events[3]]
            .map(String::as_str)
            .concat();
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn a_usage_chunk_the_client_asked_for_carries_the_cost_fee_included() {
        let events = data_events(&OPENAI_EVENTS);
        let mut stream = stream(ProviderKind::OpenAi, ending(&events), true).await;
        let sent = all_frames(&mut stream).await;
        // 1134 x 1.6 + 100 x 0.64 + 56 x 6.4 = 2236.8 per MTok, plus the 0.01 fee.
        let usage_chunk = OPENAI_EVENTS[2].replace(
            r#""cached_tokens":100}}"#,
            r#""cached_tokens":100},"cost":{"amount":"0.012236800","currency":"USD"}}"#,
        );
        let expected = [
            events[0].clone(),
            events[1].clone(),
            format!("data: {usage_chunk}\n\n"),
            events[3].clone(),
        ]
        .concat();
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn an_abandoned_stream_is_accounted_with_what_was_received_and_pays_no_fee() {
        // Anthropic reports the input at message_start; the client leaves after the first
        // words, before any output count or the end.
        let events = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1000,\"cache_read_input_tokens\":500,\"output_tokens\":1}}}\n\n".to_owned(),
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n".to_owned(),
        ];
        let mut stream = stream(ProviderKind::Anthropic, left_open(&events), false).await;
        assert!(next_frame(&mut stream).await.is_some());
        let record = stream.abandoned_record().unwrap();
        assert_eq!(record.error_code.as_deref(), Some("client_disconnected"));
        assert_eq!(record.usage.unwrap().prompt_tokens, 1500);
        // 1000 x 1.6 + 500 x 0.64 + 1 x 6.4 = 1926.4 per MTok; no fee for an unfinished stream.
        let cost = record.cost.clone().unwrap();
        assert_eq!(cost.header_value(), "0.001926400 USD");
        assert!(!record.fee_charged);
    }

    fn content_events(words: &[&str]) -> Vec<String> {
        let payloads: Vec<String> = words
            .iter()
            .map(|word| {
                format!(r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{word}"}}}}]}}"#)
            })
            .collect();
        data_events(&payloads.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn events_that_arrive_together_leave_in_one_frame() {
        let events = content_events(&["one", "two", "three", "four"]);
        let mut stream = stream(ProviderKind::OpenAi, left_open(&events), false).await;
        let frame = next_frame(&mut stream).await.unwrap();
        assert_eq!(frame, events.concat());
    }

    #[tokio::test]
    async fn an_event_that_arrives_alone_leaves_without_waiting_for_more() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let event = receiver.recv().await?;
            Some((Ok(Frame::data(Bytes::from(event))), receiver))
        });
        let upstream = http_body_util::StreamBody::new(frames).boxed_unsync();
        let events = content_events(&["first", "second"]);
        sender.send(events[0].clone()).unwrap();
        let mut stream = stream(ProviderKind::OpenAi, upstream, false).await;
        assert_eq!(next_frame(&mut stream).await.unwrap(), events[0]);
        sender.send(events[1].clone()).unwrap();
        // The upstream stays open: the frame must not wait for a burst that never comes.
        let second = tokio::time::timeout(Duration::from_secs(5), next_frame(&mut stream)).await;
        assert_eq!(second.unwrap().unwrap(), events[1]);
    }

    #[test]
    fn only_role_chunks_are_preamble() {
        let preamble = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"refusal":null}}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{}}]}"#,
        ];
        for chunk in preamble {
            assert!(is_preamble(&data_frame(chunk.as_bytes())), "{chunk}");
        }
        let committing = [
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1"}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            "[DONE]",
            "not json",
        ];
        for chunk in committing {
            assert!(!is_preamble(&data_frame(chunk.as_bytes())), "{chunk}");
        }
    }
}
