//! The body of every response the router sends: a complete buffer, or a translated stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::responses::ResponsesStream;
use crate::stream::ChatStream;

/// A response body: complete (JSON, metrics text, errors) or a chat stream.
pub enum ResponseBody {
    /// The whole body, in one buffer.
    Complete(Full<Bytes>),
    /// An OpenAI event stream, translated as it arrives.
    Stream(Box<ChatStream>),
    /// A chat stream rewritten as Responses events.
    Responses(Box<ResponsesStream>),
}

impl ResponseBody {
    /// A complete body holding `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Complete(Full::new(bytes.into()))
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete(full) => f.debug_tuple("Complete").field(full).finish(),
            Self::Stream(_) => f.write_str("Stream"),
            Self::Responses(_) => f.write_str("Responses"),
        }
    }
}

impl Default for ResponseBody {
    /// Empty: what CORS preflight answers carry.
    fn default() -> Self {
        Self::Complete(Full::default())
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Complete(full) => Pin::new(full).poll_frame(cx),
            Self::Stream(stream) => Pin::new(stream.as_mut()).poll_frame(cx),
            Self::Responses(stream) => Pin::new(stream.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Complete(full) => full.is_end_stream(),
            Self::Stream(stream) => stream.is_end_stream(),
            Self::Responses(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Complete(full) => full.size_hint(),
            Self::Stream(stream) => stream.size_hint(),
            Self::Responses(stream) => stream.size_hint(),
        }
    }
}
