//! PLACEHOLDER: being written. Delegates to the OpenAI adapter so the crate compiles.

use bytes::Bytes;

use super::openai::OpenAi;
use super::{Adapter, StreamTranslator, Translated, UpstreamRequest};
use crate::config::Target;
use crate::error::{ApiError, UpstreamFailure};
use crate::openai::ChatRequest;

/// PLACEHOLDER.
pub(super) struct Anthropic;

impl Adapter for Anthropic {
    fn request(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        OpenAi.request(chat, target)
    }

    fn response(
        &self,
        chat: &ChatRequest<'_>,
        target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        OpenAi.response(chat, target, body)
    }

    fn stream(&self, chat: &ChatRequest<'_>, target: &Target) -> Box<dyn StreamTranslator> {
        OpenAi.stream(chat, target)
    }
}
