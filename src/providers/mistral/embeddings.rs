//! Mistral's embeddings (`mistral-embed`, `codestral-embed`): `POST /embeddings` on the
//! provider's base URL. Mistral forbids fields it does not know, so the body is rebuilt from
//! the typed request: `dimensions` becomes `output_dimension` (only some models take it;
//! Mistral's 422 reaches the client for the others), `encoding_format` is passed on (Mistral
//! takes `float` and `base64`), and `user`, which Mistral lacks and which does not change the
//! answer, is dropped. The answer is OpenAI's shape and passes as Mistral wrote it.

use bytes::Bytes;
use http::Method;
use serde::Serialize;

use crate::config::Target;
use crate::error::{ApiError, UpstreamFailure};
use crate::openai::embeddings::{EmbeddingsRequest, EncodingFormat, Input};
use crate::providers::openai::{bearer_headers, embeddings_answer};
use crate::providers::{Embedder, Translated, UpstreamRequest};

/// The Mistral embeddings translation.
pub(in crate::providers) struct Embeddings;

/// Mistral's `EmbeddingRequest`, with only the members the router sets.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
    encoding_format: &'static str,
}

impl Embedder for Embeddings {
    fn request(
        &self,
        embeddings: &EmbeddingsRequest<'_>,
        target: &Target,
    ) -> Result<UpstreamRequest, ApiError> {
        let Input::Texts(texts) = &embeddings.input else {
            return Err(ApiError::unsupported(
                format!(
                    "Token-array input is not supported by provider '{}' (kind mistral): send \
                     text.",
                    target.provider.name
                ),
                "input",
            ));
        };
        let body = Body {
            model: &target.model,
            input: texts,
            output_dimension: embeddings.dimensions,
            encoding_format: match embeddings.encoding_format {
                EncodingFormat::Float => "float",
                EncodingFormat::Base64 => "base64",
            },
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| ApiError::Internal(format!("cannot write a Mistral request: {e}")))?;
        Ok(UpstreamRequest {
            method: Method::POST,
            path: "/embeddings".to_owned(),
            headers: bearer_headers(target, false)?,
            body: Bytes::from(body),
        })
    }

    fn response(
        &self,
        embeddings: &EmbeddingsRequest<'_>,
        _target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        embeddings_answer(embeddings, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_holds_only_what_mistral_takes() {
        let target = crate::config::test_target("mistral", "m", "mistral-embed");
        let raw =
            r#"{"model":"r","input":"hi","dimensions":256,"encoding_format":"base64","user":"u"}"#;
        let request = EmbeddingsRequest::parse(raw.as_bytes()).unwrap();
        let sent = Embeddings.request(&request, &target).unwrap();
        assert_eq!(sent.path, "/embeddings");
        let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model":"mistral-embed","input":["hi"],
                "output_dimension":256,"encoding_format":"base64"})
        );
        let tokens = EmbeddingsRequest::parse(br#"{"model":"r","input":[[1]]}"#).unwrap();
        let refused = Embeddings.request(&tokens, &target).unwrap_err();
        assert_eq!(refused.status(), http::StatusCode::BAD_REQUEST);
    }
}
