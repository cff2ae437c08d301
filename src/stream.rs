//! The body of a streamed answer: upstream bytes → SSE events → translator → client frames.
//!
//! A stream has a commit point: its first content or tool-call delta. Until then the router
//! holds the preamble (the role-only chunk) back and [`ChatStream::prime`] reports any failure
//! as a failed attempt, so the router can fail over without the client seeing anything. After
//! it, frames leave as soon as they are translated; the body enforces the stream's deadlines
//! (the request's overall timeout and the longest silence between events) and ends a broken
//! stream with an OpenAI error event and no `[DONE]`, so a client can never mistake a
//! provider's failure for a normal finish. The request's log record is written, and its
//! token estimate settled, when the stream ends or when the client goes away.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::time::{Instant, Sleep};

use crate::access_log::RequestRecord;
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::limits::TokenSettlement;
use crate::providers::StreamTranslator;
use crate::sse::{SseDecoder, data_frame, is_done_frame};
use crate::upstream::UpstreamBody;

/// The largest single event the router will hold (a provider's chunk is a few KiB at most).
const MAX_EVENT_BYTES: usize = 8 << 20;

/// Deadlines that bound a stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// When the whole request must be over.
    pub deadline: Instant,
    /// The longest silence allowed between upstream events.
    pub idle_timeout: Duration,
}

/// A streaming response body in the OpenAI SSE wire.
pub struct ChatStream {
    upstream: UpstreamBody,
    decoder: SseDecoder,
    translator: Box<dyn StreamTranslator>,
    ready: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    limits: StreamLimits,
    deadline: Pin<Box<Sleep>>,
    idle: Pin<Box<Sleep>>,
    finished: bool,
    record: Option<RequestRecord>,
    settlement: Option<TokenSettlement>,
}

impl ChatStream {
    /// Wraps an upstream body that answered 2xx.
    pub fn new(
        upstream: UpstreamBody,
        translator: Box<dyn StreamTranslator>,
        limits: StreamLimits,
    ) -> Self {
        Self {
            upstream,
            decoder: SseDecoder::new(MAX_EVENT_BYTES),
            translator,
            ready: VecDeque::new(),
            scratch: Vec::new(),
            limits,
            deadline: Box::pin(tokio::time::sleep_until(limits.deadline)),
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            finished: false,
            record: None,
            settlement: None,
        }
    }

    /// Reads ahead to the commit point: the first frame that is more than a preamble, or the
    /// stream's clean end. Any failure before it is returned (nothing has reached the
    /// client), including no content by `first_content_by`.
    pub async fn prime(&mut self, first_content_by: Instant) -> Result<(), UpstreamFailure> {
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

    /// Attaches what must be written and settled when the stream is over.
    pub fn attach(&mut self, record: RequestRecord, settlement: TokenSettlement) {
        self.record = Some(record);
        self.settlement = Some(settlement);
    }

    /// Ends the stream with an error event; nothing after it, no `[DONE]`.
    fn fail(&mut self, failure: UpstreamFailure) {
        tracing::warn!(kind = failure.kind.as_str(), message = %failure.message, "stream failed");
        let error = ApiError::StreamInterrupted(failure);
        if let Some(record) = &mut self.record {
            record.error_code = Some(error.code().to_owned());
        }
        self.ready.push_back(data_frame(&error.body()));
        self.finished = true;
    }

    /// Decodes newly received bytes and translates every complete event.
    fn absorb(&mut self, data: &[u8]) -> Result<(), UpstreamFailure> {
        self.decoder.push(data);
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
        self.ready.extend(self.scratch.drain(..));
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

    fn note_sent(&mut self) {
        if let Some(record) = &mut self.record
            && record.time_to_first_token.is_none()
        {
            record.time_to_first_token = Some(record.started.elapsed());
        }
    }

    fn close_record(&mut self) {
        let usage = self.translator.usage();
        if let Some(settlement) = self.settlement.take() {
            settlement.settle(usage);
        }
        if let Some(mut record) = self.record.take() {
            record.usage = usage;
            record.emit();
        }
    }

    /// Reads and translates one upstream frame; `Pending` means nothing new arrived.
    fn pull(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamFailure>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(UpstreamFailure::new(
                FailureKind::Timeout,
                "the request took longer than routing.request_timeout",
            )));
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the provider sent nothing for {:?} (routing.stream_idle_timeout)",
                self.limits.idle_timeout
            );
            return Poll::Ready(Err(UpstreamFailure::new(FailureKind::Stream, message)));
        }
        let result = match ready!(Pin::new(&mut self.upstream).poll_frame(cx)) {
            Some(Ok(frame)) => {
                let idle_until = Instant::now() + self.limits.idle_timeout;
                self.idle.as_mut().reset(idle_until);
                match frame.into_data() {
                    Ok(data) => self.absorb(&data),
                    Err(_trailers) => Ok(()),
                }
            }
            Some(Err(e)) => Err(UpstreamFailure::new(
                FailureKind::Stream,
                format!("the connection to the provider broke: {e}"),
            )),
            None => {
                self.finished = true;
                self.end()
            }
        };
        Poll::Ready(result)
    }
}

/// Whether a frame is only preamble: a chunk whose deltas carry nothing but the role (and
/// empty content), with no finish reason, usage or error. Only frames before the commit point
/// are parsed here.
fn is_preamble(frame: &[u8]) -> bool {
    let Some(payload) = frame.strip_prefix(b"data: ") else {
        return false;
    };
    let Ok(chunk) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    let empty = |v: Option<&serde_json::Value>| {
        v.is_none_or(|v| {
            v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    if !empty(chunk.get("usage")) || chunk.get("error").is_some() {
        return false;
    }
    let Some(choices) = chunk.get("choices").and_then(|c| c.as_array()) else {
        return false;
    };
    choices.iter().all(|choice| {
        empty(choice.get("finish_reason"))
            && choice
                .get("delta")
                .and_then(|d| d.as_object())
                .is_some_and(|delta| {
                    delta
                        .iter()
                        .all(|(key, value)| key == "role" || empty(Some(value)))
                })
    })
}

impl Body for ChatStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.ready.pop_front() {
                this.note_sent();
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            if this.finished {
                this.close_record();
                return Poll::Ready(None);
            }
            if let Err(failure) = ready!(this.pull(cx)) {
                this.fail(failure);
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.ready.is_empty()
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        // The client went away mid-stream: still account for what was received.
        if let Some(record) = &mut self.record
            && !self.finished
        {
            record.error_code = Some("client_disconnected".to_owned());
        }
        self.close_record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
