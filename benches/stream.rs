//! Per-chunk work of a streamed answer, without I/O: decoding the upstream's event stream, and
//! each adapter's translation of a whole stream into OpenAI `data:` frames. Run with
//! `cargo bench --bench stream`.

#![expect(
    clippy::expect_used,
    reason = "a fixture the router refuses leaves nothing to measure: stop loudly"
)]

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use switchboard::config::ProviderKind;
use switchboard::openai::ChatRequest;
use switchboard::providers::adapter_for;
use switchboard::sse::{SseDecoder, SseEvent};

use common::{ANSWER, MISTRAL_USAGE, QWEN_USAGE, body, json_string, large_request};

/// The router's own limit on one event (`stream::MAX_EVENT_BYTES`); no fixture comes near it.
const MAX_EVENT: usize = 8 << 20;

/// The payload of one TCP segment on an Ethernet path: how the bytes of a stream that is read
/// as fast as it arrives are cut, mid-event included.
const SEGMENT: usize = 1460;

/// Events of a provider's own making per stream, as in `scripts/bench.sh`'s fake provider;
/// the OpenAI wire's usage-only chunk and the `[DONE]` markers come on top.
const CHUNKS: usize = 20;

/// `SseDecoder`: an OpenAI stream's bytes in, events out.
fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_decode");
    let wire = wire(ProviderKind::OpenAi);
    let events = decode_all(&[&wire]).len();
    group.throughput(Throughput::Elements(events as u64));
    let whole = [wire.as_slice()];
    let segments: Vec<&[u8]> = wire.chunks(SEGMENT).collect();
    for (name, pieces) in [
        ("one_buffer", &whole[..]),
        ("1460_byte_pieces", &segments[..]),
    ] {
        group.bench_function(name, |b| b.iter(|| decode_all(black_box(pieces))));
    }
    group.finish();
}

/// Every event of a stream that arrives as `pieces`.
fn decode_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new(MAX_EVENT);
    let mut events = Vec::with_capacity(CHUNKS + 2);
    for piece in pieces {
        decoder.push(piece);
        while let Some(event) = decoder.next_event().expect("events within the limit") {
            events.push(event);
        }
    }
    events.extend(decoder.finish());
    events
}

/// `Adapter::stream` and its `StreamTranslator`: one whole stream, from decoded events to the
/// frames the client receives. The request is the large one (translators build per-request
/// state from it, such as Mistral's tool-call id map), streamed with the usage chunk asked for.
fn translate_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate_stream");
    let request = body(
        large_request(),
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let mut chat = ChatRequest::parse(&request).expect("a valid request");
    chat.created = 1_764_115_200;
    for (kind, target) in &common::targets() {
        let adapter = adapter_for(*kind);
        let events = decode_all(&[&wire(*kind)]);
        group.throughput(Throughput::Elements(events.len() as u64));
        // Reused like the router's scratch buffer, which keeps its capacity across events.
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::from_parameter(kind.as_str()), |b| {
            b.iter(|| {
                let mut translator = adapter.stream(&chat, target);
                out.clear();
                for event in &events {
                    translator
                        .event(black_box(event), &mut out)
                        .expect("a well-formed event");
                }
                translator.finish(&mut out).expect("a complete stream");
                black_box(&out);
                translator.usage()
            });
        });
    }
    group.finish();
}

/// A whole stream answering [`ANSWER`] in `kind`'s wire, as the provider sends it: `CHUNKS`
/// events in each provider's own framing and key order.
fn wire(kind: ProviderKind) -> Vec<u8> {
    let frames = match kind {
        ProviderKind::OpenAi | ProviderKind::Mock => openai_wire(
            |choices, usage| {
                format!(
                    r#"{{"id":"chatcmpl-CXq1Zt8Hn2vLpR4sQw9Ey7Ub3Kd","object":"chat.completion.chunk","created":1764115201,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":{choices},"usage":{usage}}}"#
                )
            },
            OPENAI_USAGE,
        ),
        ProviderKind::Qwen => openai_wire(
            |choices, usage| {
                format!(
                    r#"{{"choices":{choices},"object":"chat.completion.chunk","usage":{usage},"created":1764115201,"system_fingerprint":null,"model":"qwen-plus","id":"chatcmpl-6ada9ed2-7f33-9de2-8bb0-78bd4035025a"}}"#
                )
            },
            QWEN_USAGE,
        ),
        ProviderKind::Mistral => mistral_wire(),
        ProviderKind::Anthropic => anthropic_wire(),
        ProviderKind::Gemini => gemini_wire(),
    };
    frames.concat().into_bytes()
}

/// `usage` as OpenAI reports it in the stream's usage chunk.
const OPENAI_USAGE: &str = r#"{"prompt_tokens":1012,"completion_tokens":96,"total_tokens":1108,"prompt_tokens_details":{"cached_tokens":896,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#;

/// [`ANSWER`] cut at spaces into `n` pieces of a few words, as models stream a few tokens per
/// chunk; each piece a JSON string literal.
fn pieces(n: usize) -> Vec<String> {
    let words: Vec<&str> = ANSWER.split_inclusive(' ').collect();
    let cut = |i: usize| i * words.len() / n;
    (0..n)
        .map(|i| json_string(&words[cut(i)..cut(i + 1)].concat()))
        .collect()
}

/// An OpenAI-wire stream with `include_usage` (the router always asks for it): a role chunk,
/// the content, a finish chunk, the usage-only chunk and `[DONE]`. `envelope` wraps a
/// `choices` array and a `usage` value in the provider's chunk object; while usage is asked
/// for, every chunk carries `"usage":null`.
fn openai_wire(envelope: impl Fn(&str, &str) -> String, usage: &str) -> Vec<String> {
    let choice = |delta: &str, finish: &str| {
        format!(r#"[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]"#)
    };
    let mut chunks = vec![envelope(
        &choice(
            r#"{"role":"assistant","content":"","refusal":null}"#,
            "null",
        ),
        "null",
    )];
    for piece in pieces(CHUNKS - 2) {
        let delta = format!(r#"{{"content":{piece}}}"#);
        chunks.push(envelope(&choice(&delta, "null"), "null"));
    }
    chunks.push(envelope(&choice("{}", r#""stop""#), "null"));
    chunks.push(envelope("[]", usage));
    chunks.push("[DONE]".to_owned());
    chunks
        .iter()
        .map(|data| format!("data: {data}\n\n"))
        .collect()
}

/// Mistral: a role chunk, the content, the last content chunk with the finish reason and the
/// usage (Mistral has no usage-only chunk), then `[DONE]`.
fn mistral_wire() -> Vec<String> {
    let chunk = |delta: &str, finish: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"8d9c1f0e2b7a4c3e9f6d5a4b3c2d1e0f\",\"object\":\"chat.completion.chunk\",\
             \"created\":1764115201,\"model\":\"mistral-small-latest\",\"choices\":[{{\"index\":0,\
             \"delta\":{delta},\"finish_reason\":{finish}}}]{usage}}}\n\n"
        )
    };
    let mut frames = vec![chunk(r#"{"role":"assistant","content":""}"#, "null", "")];
    let text = pieces(CHUNKS - 1);
    let (last, content) = text.split_last().expect("several pieces");
    for piece in content {
        frames.push(chunk(&format!(r#"{{"content":{piece}}}"#), "null", ""));
    }
    frames.push(chunk(
        &format!(r#"{{"content":{last}}}"#),
        r#""stop""#,
        &format!(r#","usage":{MISTRAL_USAGE}"#),
    ));
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

/// Anthropic Messages: `message_start`, one text block (start, ping, deltas, stop),
/// `message_delta` with the final usage, `message_stop`; each event named.
fn anthropic_wire() -> Vec<String> {
    let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = vec![
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":118,"cache_creation_input_tokens":0,"cache_read_input_tokens":921,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}"#,
        ),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        event("ping", r#"{"type": "ping"}"#),
    ];
    // Six events frame the deltas.
    for piece in pieces(CHUNKS - 6) {
        let data = format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{piece}}}}}"#
        );
        frames.push(event("content_block_delta", &data));
    }
    frames.push(event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    frames.push(event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":118,"cache_creation_input_tokens":0,"cache_read_input_tokens":921,"output_tokens":101}}"#,
    ));
    frames.push(event("message_stop", r#"{"type":"message_stop"}"#));
    frames
}

/// Gemini `streamGenerateContent?alt=sse`: CRLF-framed chunks in Google's spacing, each with
/// the running `usageMetadata`; the last one carries `finishReason` (Gemini has no end marker).
fn gemini_wire() -> Vec<String> {
    let text = pieces(CHUNKS);
    let last = text.len() - 1;
    text.iter()
        .enumerate()
        .map(|(i, piece)| {
            let finish = if i == last {
                r#","finishReason": "STOP""#
            } else {
                ""
            };
            let output = 5 * (i + 1);
            let total = 1003 + output;
            format!(
                "data: {{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": {piece}}}],\"role\": \"model\"}}{finish},\"index\": 0}}],\
                 \"usageMetadata\": {{\"promptTokenCount\": 1003,\"candidatesTokenCount\": {output},\"totalTokenCount\": {total},\
                 \"promptTokensDetails\": [{{\"modality\": \"TEXT\",\"tokenCount\": 1003}}]}},\
                 \"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"kq0maeD3BbWXz7IPqJPlmQc\"}}\r\n\r\n"
            )
        })
        .collect()
}

criterion_group!(benches, decode, translate_stream);
criterion_main!(benches);
