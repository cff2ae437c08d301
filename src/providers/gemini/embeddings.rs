//! Gemini's embeddings: `models/{model}:batchEmbedContents`, one request per input, and the
//! answer's `embeddings[].values` written back in OpenAI's list shape.
//!
//! Gemini embeds text only (a token-array input is refused, so a route can fail over to a
//! target that takes it) and reports no token counts: the usage is the router's estimate
//! ([`EmbeddingsRequest::estimated_tokens`]), which is also what a Gemini embedding is
//! charged.

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::Target;
use crate::error::{ApiError, FailureKind, UpstreamFailure};
use crate::openai::Usage;
use crate::openai::embeddings::{EmbeddingsRequest, Input, ListWriter};
use crate::providers::{Embedder, Translated, UpstreamRequest};

/// The `batchEmbedContents` translation.
pub(in crate::providers) struct Embeddings;

/// `BatchEmbedContentsRequest`.
#[derive(Serialize)]
struct Batch<'a> {
    requests: Vec<EmbedContent<'a>>,
}

/// `EmbedContentRequest`: one text, and the vector length when the client chose one.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedContent<'a> {
    model: &'a str,
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

/// `BatchEmbedContentsResponse`, each vector kept as the upstream wrote it.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    embeddings: Vec<Values<'a>>,
}

#[derive(Deserialize)]
struct Values<'a> {
    #[serde(borrow)]
    values: &'a RawValue,
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
                    "Token-array input is not supported by provider '{}' (kind gemini): send \
                     text.",
                    target.provider.name
                ),
                "input",
            ));
        };
        // The chat path's model resource and API version, with the batch method instead.
        let chat_path = super::path(target, false);
        let resource = chat_path
            .strip_suffix(":generateContent")
            .unwrap_or(&chat_path);
        let model = super::model_resource(&target.model);
        let batch = Batch {
            requests: texts
                .iter()
                .map(|text| EmbedContent {
                    model: &model,
                    content: Content {
                        parts: [Part { text }],
                    },
                    output_dimensionality: embeddings.dimensions,
                })
                .collect(),
        };
        let body = serde_json::to_vec(&batch)
            .map_err(|e| ApiError::Internal(format!("cannot write a Gemini request: {e}")))?;
        Ok(UpstreamRequest {
            method: Method::POST,
            path: format!("{resource}:batchEmbedContents"),
            headers: super::headers(target, false)?,
            body: Bytes::from(body),
        })
    }

    fn response(
        &self,
        embeddings: &EmbeddingsRequest<'_>,
        target: &Target,
        body: Bytes,
    ) -> Result<Translated, UpstreamFailure> {
        let malformed = |what: String| {
            UpstreamFailure::new(
                FailureKind::Unavailable,
                format!("the provider sent a malformed embeddings answer ({what})"),
            )
        };
        let answer: Answer<'_> =
            serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
        if answer.embeddings.len() != embeddings.input.len() {
            return Err(malformed(format!(
                "{} vectors for {} inputs",
                answer.embeddings.len(),
                embeddings.input.len()
            )));
        }
        let mut list = ListWriter::new(embeddings.encoding_format, body.len() + 256);
        for vector in &answer.embeddings {
            list.push_json(vector.values)
                .map_err(|e| malformed(e.to_string()))?;
        }
        let tokens = embeddings.estimated_tokens();
        Ok(Translated {
            body: list.finish(&target.model, tokens),
            usage: Some(Usage {
                prompt_tokens: tokens,
                total_tokens: tokens,
                ..Usage::default()
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> EmbeddingsRequest<'_> {
        EmbeddingsRequest::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn each_text_is_one_embed_request_with_the_asked_dimensions() {
        let target = crate::config::test_target("gemini", "g", "gemini-embedding-001");
        let sent = Embeddings
            .request(
                &request(r#"{"model":"r","input":["a","b"],"dimensions":8}"#),
                &target,
            )
            .unwrap();
        assert_eq!(sent.path, "/models/gemini-embedding-001:batchEmbedContents");
        assert_eq!(sent.headers["x-goog-api-key"], "sk-test");
        let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
        let one = |text: &str| {
            serde_json::json!({"model":"models/gemini-embedding-001",
                "content":{"parts":[{"text":text}]},"outputDimensionality":8})
        };
        assert_eq!(body, serde_json::json!({"requests":[one("a"), one("b")]}));
        let tokens = Embeddings.request(&request(r#"{"model":"r","input":[1,2]}"#), &target);
        assert_eq!(tokens.unwrap_err().status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn answers_become_the_openai_list_with_estimated_usage() {
        let target = crate::config::test_target("gemini", "g", "gemini-embedding-001");
        let body = Bytes::from_static(br#"{"embeddings":[{"values":[0.5,-1]},{"values":[2]}]}"#);
        let asked = request(r#"{"model":"r","input":["abcdefgh","x"]}"#);
        let translated = Embeddings.response(&asked, &target, body).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"object":"list","data":[
                {"object":"embedding","index":0,"embedding":[0.5,-1]},
                {"object":"embedding","index":1,"embedding":[2]}],
                "model":"gemini-embedding-001",
                "usage":{"prompt_tokens":3,"total_tokens":3}})
        );
        assert_eq!(translated.usage.unwrap().prompt_tokens, 3);
        let short = Bytes::from_static(br#"{"embeddings":[{"values":[0.5]}]}"#);
        assert!(Embeddings.response(&asked, &target, short).is_err());
    }
}
