//! Per-request work, without I/O: validating the client's body, splicing it for pass-through
//! upstreams, and each adapter's translation of a request and of a complete (non-stream)
//! answer. Run with `cargo bench --bench request`.

#![expect(
    clippy::expect_used,
    reason = "a fixture the router refuses leaves nothing to measure: stop loudly"
)]

mod common;

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchboard::config::ProviderKind;
use switchboard::json_guard;
use switchboard::openai::ChatRequest;
use switchboard::providers::adapter_for;

use common::{ANSWER, MISTRAL_USAGE, QWEN_USAGE, body, json_string, large_request};

/// A one-shot question: one user message.
fn small_request() -> Value {
    json!({
        "model": "chat",
        "messages": [{"role": "user", "content": "What is the capital of Portugal?"}],
    })
}

/// The client bodies, by the name benchmark ids give them.
fn requests() -> [(&'static str, Vec<u8>); 2] {
    [
        ("small", body(small_request(), json!({}))),
        ("large", body(large_request(), json!({}))),
    ]
}

/// `ChatRequest::parse`: the front door's validation, run on every request.
fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, body) in requests() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| ChatRequest::parse(black_box(&body)).expect("a valid request"));
        });
    }
    group.finish();
}

/// `json_guard::check`, the part of the front door that looks at every byte of the body (UTF-8,
/// nesting, surrogate escapes), also in members the parse skips.
fn guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_guard");
    for (name, body) in requests() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| json_guard::check(black_box(&body)).expect("a sound body"));
        });
    }
    group.finish();
}

/// The byte splicing that builds an OpenAI-wire upstream's body from the client's.
fn splice(c: &mut Criterion) {
    let mut group = c.benchmark_group("splice");
    let request = body(large_request(), json!({}));
    let chat = ChatRequest::parse(&request).expect("a valid request");
    group.bench_function("body_with_model/large", |b| {
        b.iter(|| chat.body_with_model(black_box("gpt-4o-mini")));
    });
    // The costlier path: a stream whose client did not ask for usage gets the member added.
    let request = body(large_request(), json!({"stream": true}));
    let chat = ChatRequest::parse(&request).expect("a valid request");
    group.bench_function("body_with_model_and_usage/large_stream", |b| {
        b.iter(|| chat.body_with_model_and_usage(black_box("gpt-4o-mini")));
    });
    group.finish();
}

/// `Adapter::request`: path, headers (authentication included) and body for each wire.
fn translate_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate_request");
    let targets = common::targets();
    for (name, body) in requests() {
        let chat = ChatRequest::parse(&body).expect("a valid request");
        for (kind, target) in &targets {
            let adapter = adapter_for(*kind);
            let id = BenchmarkId::new(kind.as_str(), name);
            group.bench_function(id, |b| {
                b.iter(|| {
                    adapter
                        .request(black_box(&chat), target)
                        .expect("a translatable request")
                });
            });
        }
    }
    group.finish();
}

/// `Adapter::response`: a complete answer in each provider's own wire, to the large request
/// (its tool-call ids are what Mistral's id mapping looks through).
fn translate_response(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate_response");
    let request = body(large_request(), json!({}));
    let mut chat = ChatRequest::parse(&request).expect("a valid request");
    chat.created = 1_764_115_200;
    for (kind, target) in &common::targets() {
        let adapter = adapter_for(*kind);
        let (work, answer) = answer(*kind);
        let answer = Bytes::from(answer);
        group.bench_function(BenchmarkId::new(kind.as_str(), work), |b| {
            b.iter(|| {
                adapter
                    .response(&chat, target, black_box(answer.clone()))
                    .expect("a readable answer")
            });
        });
    }
    group.finish();
}

/// A provider's complete answer of [`ANSWER`] in its own wire, and the name of what the adapter
/// does with it: OpenAI-wire bodies pass through with only their usage read, Mistral's are
/// edited in place, Anthropic's and Gemini's are rebuilt as OpenAI JSON. OpenAI and Google
/// pretty-print their bodies; the others send them compact.
fn answer(kind: ProviderKind) -> (&'static str, String) {
    let (work, template) = match kind {
        ProviderKind::OpenAi | ProviderKind::Mock => ("usage_sniffing", OPENAI_ANSWER),
        ProviderKind::Qwen => ("usage_sniffing", QWEN_ANSWER),
        ProviderKind::Mistral => ("edit_in_place", MISTRAL_ANSWER),
        ProviderKind::Anthropic => ("rebuild", ANTHROPIC_ANSWER),
        ProviderKind::Gemini => ("rebuild", GEMINI_ANSWER),
    };
    let body = template
        .replace("$ANSWER", &json_string(ANSWER))
        .replace("$QWEN_USAGE", QWEN_USAGE)
        .replace("$MISTRAL_USAGE", MISTRAL_USAGE);
    (work, body)
}

/// `chat.completion` from api.openai.com.
const OPENAI_ANSWER: &str = r#"{
  "id": "chatcmpl-CXq1Zt8Hn2vLpR4sQw9Ey7Ub3Kd",
  "object": "chat.completion",
  "created": 1764115201,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": $ANSWER,
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1012,
    "completion_tokens": 96,
    "total_tokens": 1108,
    "prompt_tokens_details": {
      "cached_tokens": 896,
      "audio_tokens": 0
    },
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_560af6e559"
}
"#;

/// `chat.completion` from DashScope's compatible mode.
const QWEN_ANSWER: &str = r#"{"choices":[{"message":{"role":"assistant","content":$ANSWER},"finish_reason":"stop","index":0,"logprobs":null}],"object":"chat.completion","usage":$QWEN_USAGE,"created":1764115201,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-6ada9ed2-7f33-9de2-8bb0-78bd4035025a"}"#;

/// Mistral's `chat.completion`.
const MISTRAL_ANSWER: &str = r#"{"id":"8d9c1f0e2b7a4c3e9f6d5a4b3c2d1e0f","object":"chat.completion","created":1764115201,"model":"mistral-small-latest","choices":[{"index":0,"message":{"role":"assistant","tool_calls":null,"content":$ANSWER},"finish_reason":"stop"}],"usage":$MISTRAL_USAGE}"#;

/// An Anthropic Messages response.
const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":$ANSWER}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":118,"cache_creation_input_tokens":0,"cache_read_input_tokens":921,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":101,"service_tier":"standard"}}"#;

/// A Gemini `generateContent` response.
const GEMINI_ANSWER: &str = r#"{
  "candidates": [
    {
      "content": {
        "parts": [
          {
            "text": $ANSWER
          }
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 1003,
    "candidatesTokenCount": 94,
    "totalTokenCount": 1285,
    "cachedContentTokenCount": 768,
    "promptTokensDetails": [
      {
        "modality": "TEXT",
        "tokenCount": 1003
      }
    ],
    "thoughtsTokenCount": 188
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "kq0maeD3BbWXz7IPqJPlmQc"
}
"#;

criterion_group!(
    benches,
    parse,
    guard,
    splice,
    translate_request,
    translate_response
);
criterion_main!(benches);
