//! The body of a streamed answer: upstream bytes → SSE events → translator → client frames.
//!
//! Frames leave as soon as they are translated, with no buffering beyond one event. The body
//! enforces the stream's deadlines (the request's overall timeout and the longest silence
//! between events) and ends a broken stream with an OpenAI error event and no `[DONE]`, so a
//! client can never mistake a provider's failure for a normal finish. The request's log
//! record is written when the stream ends, or when the client goes away.

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
}

impl ChatStream {
    /// Wraps an upstream body that answered 2xx.
    pub fn new(
        upstream: UpstreamBody,
        translator: Box<dyn StreamTranslator>,
        limits: StreamLimits,
        record: RequestRecord,
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
            record: Some(record),
        }
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
        if let Some(mut record) = self.record.take() {
            record.usage = self.translator.usage();
            record.emit();
        }
    }

    /// Polls the upstream once; `Pending` means nothing new arrived.
    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.fail(UpstreamFailure::new(
                FailureKind::Timeout,
                "the request took longer than routing.request_timeout",
            ));
            return Poll::Ready(());
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the provider sent nothing for {:?} (routing.stream_idle_timeout)",
                self.limits.idle_timeout
            );
            self.fail(UpstreamFailure::new(FailureKind::Stream, message));
            return Poll::Ready(());
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
        if let Err(failure) = result {
            self.fail(failure);
        }
        Poll::Ready(())
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
        loop {
            if let Some(frame) = this.ready.pop_front() {
                this.note_sent();
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            if this.finished {
                this.close_record();
                return Poll::Ready(None);
            }
            ready!(this.poll_upstream(cx));
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
