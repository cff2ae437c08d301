//! A fast fake provider for `scripts/bench.sh`: answers with canned responses in three wires,
//! told apart by the request path as the real APIs' endpoints are:
//!
//! - `POST .../v1/messages`: Anthropic's Messages API, a `message` or, when the body asks for
//!   `"stream":true`, the named-event stream (`message_start` ... `message_stop`, 18 text
//!   deltas).
//! - `POST .../models/{model}:generateContent` and `...:streamGenerateContent?alt=sse`: Gemini,
//!   a `GenerateContentResponse` or 18 CRLF-framed `data:` chunks, each with the running
//!   `usageMetadata`, the last with `finishReason`.
//! - any other path: an OpenAI chat completion, or a 20-chunk SSE stream (role, 18 tokens,
//!   finish) plus the usage chunk and `[DONE]` when the body asks for `"stream":true`.
//!
//! Every stream carries the same 18 tokens and every answer the same sentence, so the router's
//! translation paths are measured on the same content as its pass-through path.
//!
//! `bench_upstream ADDR [CHUNK_DELAY_MS]`: the optional delay spaces the stream's chunks, so the
//! benchmark can hold many streams open at once.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The streamed answer: `token0 ` ... `token17 `, one per content event.
const TOKENS: usize = 18;

/// The OpenAI chat completion every plain request on that wire gets.
const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;

/// The same answer as a Messages API `message` (reference/provider-apis.md 2.3).
const ANTHROPIC_MESSAGE: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{"type":"text","text":"The quick brown fox jumps over the lazy dog."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":10,"service_tier":"standard"}}"#;

/// The same answer as a `GenerateContentResponse` (reference 3.3), pretty-printed as Google
/// sends it: the router's parser pays for the whitespace as it would in production.
const GEMINI_RESPONSE: &str = r#"{
  "candidates": [
    {
      "content": {
        "parts": [
          {
            "text": "The quick brown fox jumps over the lazy dog."
          }
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 12,
    "candidatesTokenCount": 10,
    "totalTokenCount": 22,
    "promptTokensDetails": [
      {
        "modality": "TEXT",
        "tokenCount": 12
      }
    ]
  },
  "modelVersion": "bench",
  "responseId": "bench-response"
}
"#;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The endpoint a request was sent to, from its path as the real APIs lay them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    /// `.../chat/completions`; also any path not recognised below.
    OpenAi,
    /// `{base}/v1/messages`.
    Anthropic,
    /// `{base}/v1beta/models/{model}:generateContent`.
    Gemini,
    /// `{base}/v1beta/models/{model}:streamGenerateContent?alt=sse` (the adapter always asks
    /// for SSE, so the JSON-array variant without `alt=sse` is not served).
    GeminiStream,
}

impl Endpoint {
    /// Matched on the end of the path, so any `base_url` prefix works.
    fn of(path: &str) -> Self {
        if path.ends_with("/messages") {
            Self::Anthropic
        } else if path.ends_with(":generateContent") {
            Self::Gemini
        } else if path.ends_with(":streamGenerateContent") {
            Self::GeminiStream
        } else {
            Self::OpenAi
        }
    }

    /// Whether to answer with a stream. Gemini says so in the path (its body has no `stream`
    /// member); the OpenAI and Anthropic bodies are compact JSON, so the member has no spaces.
    fn streams(self, body: &[u8]) -> bool {
        match self {
            Self::Gemini => false,
            Self::GeminiStream => true,
            Self::OpenAi | Self::Anthropic => body.windows(13).any(|w| w == b"\"stream\":true"),
        }
    }

    /// The answers in this endpoint's wire.
    fn canned(self) -> &'static Canned {
        match self {
            Self::OpenAi => &OPENAI,
            Self::Anthropic => &ANTHROPIC,
            Self::Gemini | Self::GeminiStream => &GEMINI,
        }
    }
}

/// One wire's canned answer: the JSON body and the stream's frames, built once at start-up so
/// the fake provider spends as little CPU as it can beside the router it measures.
struct Canned {
    json: Bytes,
    frames: Vec<Bytes>,
}

static OPENAI: LazyLock<Canned> = LazyLock::new(|| Canned {
    json: Bytes::from_static(COMPLETION.as_bytes()),
    frames: openai_frames(),
});

static ANTHROPIC: LazyLock<Canned> = LazyLock::new(|| Canned {
    json: Bytes::from_static(ANTHROPIC_MESSAGE.as_bytes()),
    frames: anthropic_frames(),
});

static GEMINI: LazyLock<Canned> = LazyLock::new(|| Canned {
    json: Bytes::from_static(GEMINI_RESPONSE.as_bytes()),
    frames: gemini_frames(),
});

/// OpenAI: a role chunk, the tokens, the finish chunk, the usage chunk and `[DONE]`.
fn openai_frames() -> Vec<Bytes> {
    let chunk = |delta: &str, finish: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        ))
    };
    let mut frames = vec![chunk(r#"{"role":"assistant","content":""}"#, "null")];
    for i in 0..TOKENS {
        frames.push(chunk(&format!(r#"{{"content":"token{i} "}}"#), "null"));
    }
    frames.push(chunk("{}", r#""stop""#));
    frames.push(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":19,\"total_tokens\":31}}\n\n",
    ));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

/// Anthropic (reference 2.4): `message_start` with the input usage, one text block (start, a
/// ping as the API sends after it, the deltas, stop), `message_delta` with the stop reason and
/// the final output count, `message_stop`. 24 named events.
fn anthropic_frames() -> Vec<Bytes> {
    let event = |name: &str, data: &str| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut frames = vec![
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}"#,
        ),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        event("ping", r#"{"type": "ping"}"#),
    ];
    for i in 0..TOKENS {
        let data = format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"token{i} "}}}}"#
        );
        frames.push(event("content_block_delta", &data));
    }
    frames.push(event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    frames.push(event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":19}}"#,
    ));
    frames.push(event("message_stop", r#"{"type":"message_stop"}"#));
    frames
}

/// Gemini (reference 3.4): one CRLF-framed chunk per token in Google's spacing, each with the
/// running `usageMetadata`; the last carries `finishReason`, and nothing follows it (Gemini
/// has no end marker; the body just ends).
fn gemini_frames() -> Vec<Bytes> {
    (0..TOKENS)
        .map(|i| {
            let finish = if i + 1 == TOKENS {
                r#","finishReason": "STOP""#
            } else {
                ""
            };
            let output = i + 2;
            let total = 12 + output;
            Bytes::from(format!(
                "data: {{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": \"token{i} \"}}],\"role\": \"model\"}}{finish},\"index\": 0}}],\
                 \"usageMetadata\": {{\"promptTokenCount\": 12,\"candidatesTokenCount\": {output},\"totalTokenCount\": {total},\
                 \"promptTokensDetails\": [{{\"modality\": \"TEXT\",\"tokenCount\": 12}}]}},\
                 \"modelVersion\": \"bench\",\"responseId\": \"bench-response\"}}\r\n\r\n"
            ))
        })
        .collect()
}

/// A response with `body` and `content_type`.
fn with_type(body: Body, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `frames` as an event stream, each frame `delay` after the previous one when a delay is set.
fn event_stream(frames: &'static [Bytes], delay: Duration) -> Response<Body> {
    let frames = futures_util::stream::iter(frames).then(move |frame| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(Frame::data(frame.clone()))
    });
    with_type(StreamBody::new(frames).boxed_unsync(), "text/event-stream")
}

/// The canned answer for `request`'s endpoint; the body is read whole first, as a provider
/// would, and only searched for the stream flag.
async fn answer(request: Request<Incoming>, delay: Duration) -> Result<Response<Body>, Infallible> {
    let endpoint = Endpoint::of(request.uri().path());
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let canned = endpoint.canned();
    if endpoint.streams(&body) {
        return Ok(event_stream(&canned.frames, delay));
    }
    Ok(with_type(
        Full::new(canned.json.clone()).boxed_unsync(),
        "application/json",
    ))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18900".to_owned());
    let delay = Duration::from_millis(args.next().and_then(|d| d.parse().ok()).unwrap_or(0));
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, delay));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
