//! Byte fidelity (DESIGN "Byte fidelity"): answers from `openai` and `qwen` providers reach the
//! client exactly as the provider sent them. Alipay signs confirmation payloads that the
//! client renders untouched; re-serialising would turn `1000.00` into `1000.0`, `\u00e9`
//! into `é`, `1e2` into `100.0`, reorder keys or drop whitespace, and break the signature.
#![cfg(test)]

use crate::support::{MockUpstream, Reply, UP_ENV, chat, one_provider, spawn_router};

/// A completion a JSON library would not write back the same way.
const COMPLETION: &str = "{\"usage\": {\"total_tokens\": 30, \"completion_tokens\": 18, \"prompt_tokens\": 12},\n  \"model\":\"m1\", \"id\":\"chatcmpl-f1\",\"object\":\"chat.completion\",\"created\":1700000000,\n  \"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"message\":{\"role\":\"assistant\",\n    \"content\":\"Pay 1000.00 CNY to caf\\u00e9 \\u4e2d\\u6587 \\/ \\ud83d\\ude00\",\n    \"payment\":{\"amount\":1000.00,\"fee\":1e2,\"rate\":0.10,\"neg\":-0.0,\"big\":12345678901234567890,\"sign\":\"MEUCIQD+/=\"}}}]}\n";

/// A stream with the same kinds of bytes in every event.
const EVENTS: &[&str] = &[
    "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}",
    "{\"choices\":[{\"delta\":{\"content\":\"Pay 1000.00 CNY to caf\\u00e9\"},\"index\":0,\"finish_reason\":null}], \"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m1\"}",
    "{\"id\" : \"c\", \"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" \\u4e2d\\u6587 \\/ 1e2 \"},\"finish_reason\":null}],\"payment\":{\"amount\":1000.00,\"fee\":1e2,\"big\":12345678901234567890}}",
    "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
    "[DONE]",
];

async fn non_stream_is_byte_identical(kind: &str) {
    let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
    let router = spawn_router(&one_provider(kind, &upstream, "pay", "m1"), UP_ENV).await;

    let answer = chat(
        &router,
        r#"{"model":"pay","messages":[{"role":"user","content":"confirm"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{kind}: {}", answer.text());
    assert_eq!(
        answer.text(),
        COMPLETION,
        "{kind}: the provider's bytes, untouched"
    );
}

async fn stream_is_byte_identical(kind: &str) {
    let upstream = MockUpstream::start(vec![Reply::sse_data(EVENTS)]).await;
    let router = spawn_router(&one_provider(kind, &upstream, "pay", "m1"), UP_ENV).await;

    let answer = chat(
        &router,
        r#"{"model":"pay","stream":true,"messages":[{"role":"user","content":"confirm"}]}"#,
    )
    .await;

    assert_eq!(answer.status, 200, "{kind}: {}", answer.text());
    let expected: String = EVENTS.iter().map(|e| format!("data: {e}\n\n")).collect();
    assert_eq!(
        answer.text(),
        expected,
        "{kind}: every event's bytes, untouched"
    );
}

#[tokio::test]
async fn openai_non_stream_answers_are_byte_identical() {
    non_stream_is_byte_identical("openai").await;
}

#[tokio::test]
async fn qwen_non_stream_answers_are_byte_identical() {
    non_stream_is_byte_identical("qwen").await;
}

#[tokio::test]
async fn openai_stream_events_are_byte_identical() {
    stream_is_byte_identical("openai").await;
}

#[tokio::test]
async fn qwen_stream_events_are_byte_identical() {
    stream_is_byte_identical("qwen").await;
}

#[tokio::test]
async fn the_clients_numbers_and_escapes_reach_the_provider_untouched() {
    for kind in ["openai", "qwen"] {
        let upstream = MockUpstream::start(vec![Reply::json(200, COMPLETION)]).await;
        let router = spawn_router(&one_provider(kind, &upstream, "pay", "m1"), UP_ENV).await;
        let sent = "{\"model\": \"pay\" ,\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 1000.00 \\/\"}],\"metadata\":{\"amount\":1000.00,\"fee\":1e2,\"big\":12345678901234567890}}";

        let answer = chat(&router, sent).await;

        assert_eq!(answer.status, 200);
        assert_eq!(
            std::str::from_utf8(&upstream.requests()[0].body).unwrap(),
            sent.replace("\"pay\"", "\"m1\""),
            "{kind}"
        );
    }
}
