//! `POST /v1/responses`: the OpenAI Responses API (stateless), served by the chat pipeline
//! (see [`crate::responses`] for the rewrite both ways).

use bytes::Bytes;

use super::chat::Front;
use crate::access_log::RequestRecord;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::responses::{Echo, ResponsesStream, from_chat, to_chat};
use crate::stream::ChatStream;

/// The Responses front door: what the client asked for, kept for the answer.
#[derive(Debug, Default)]
pub(super) struct Responses {
    echo: Echo,
}

impl Front for Responses {
    fn chat_body(&mut self, body: Bytes) -> Result<Bytes, ApiError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let converted = to_chat(&body, now)?;
        self.echo = converted.echo;
        Ok(converted.body)
    }

    fn complete(&self, chat: Bytes, record: &RequestRecord) -> Result<Bytes, ApiError> {
        from_chat(
            &chat,
            &self.echo,
            record.usage.as_ref(),
            record.cost.as_ref(),
        )
    }

    fn stream(self, stream: ChatStream) -> ResponseBody {
        ResponseBody::Responses(Box::new(ResponsesStream::new(stream, self.echo)))
    }
}
