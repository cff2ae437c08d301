//! `kind = "gemini"` end to end: a mock Gemini API (real HTTP on 127.0.0.1:0) behind the real
//! router, driven with plain OpenAI-shaped requests. The mock speaks Gemini's wire: the
//! `generateContent` / `streamGenerateContent?alt=sse` paths, full-response SSE chunks framed
//! with CRLF and no `[DONE]`, function calls that end with `finishReason: STOP`, and Google's
//! error bodies (RetryInfo, QuotaFailure, ErrorInfo).

use serde_json::{Value, json};

use crate::support::{MockUpstream, Reply, chat, spawn_router};

/// The model the route targets.
const MODEL: &str = "gemini-2.5-flash";
/// The Gemini key the router is configured with.
const KEY: &str = "gemini-test-key";

/// A router whose route `smart` goes to the mock Gemini API.
async fn router_for(upstream: &MockUpstream) -> crate::support::RouterHandle {
    let toml = format!(
        r#"
[providers.g]
kind = "gemini"
base_url = "{base}"
api_key_env = "GEMINI_API_KEY"

[providers.g.models."{MODEL}"]

[routes.smart]
targets = ["g/{MODEL}"]
"#,
        base = upstream.url("")
    );
    spawn_router(&toml, &[("GEMINI_API_KEY", KEY)]).await
}

/// Gemini's SSE framing: `data: <json>` and a CRLF blank line.
pub(crate) fn gemini_sse(chunks: &[&str]) -> Reply {
    let framed: Vec<String> = chunks
        .iter()
        .map(|c| format!("data: {c}\r\n\r\n"))
        .collect();
    let refs: Vec<&str> = framed.iter().map(String::as_str).collect();
    Reply::sse_raw(&refs)
}

/// One function tool, with JSON Schema keywords Gemini's OpenAPI subset lacks.
fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}}}])
}

/// A `generateContent` answer with one `functionCall` (and its thought signature) ending with
/// `STOP`, and usage with thinking tokens: completion = 15 candidates + 52 thoughts.
const FUNCTION_CALL_ANSWER: &str = r#"{
  "candidates": [
    {
      "content": {
        "parts": [
          {
            "functionCall": {
              "name": "get_weather",
              "args": {
                "city": "Paris"
              }
            },
            "thoughtSignature": "CiQBVKhc7yXf0Rb8RmUc+/Zr0g=="
          }
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 31,
    "candidatesTokenCount": 15,
    "totalTokenCount": 98,
    "thoughtsTokenCount": 52
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "wZ1BaPqWEbX3nvgPy8mS-A4"
}"#;

#[tokio::test]
async fn request_shape_and_function_call_answer() {
    let upstream = MockUpstream::start(vec![Reply::json(200, FUNCTION_CALL_ANSWER)]).await;
    let router = router_for(&upstream).await;
    let request = json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris?"}
        ],
        "tools": weather_tools(),
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_completion_tokens": 256,
        "stop": ["END"]
    });
    let answer = chat(&router, &request.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(body["id"], "chatcmpl-wZ1BaPqWEbX3nvgPy8mS-A4");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["usage"]["prompt_tokens"], 31);
    assert_eq!(body["usage"]["completion_tokens"], 67);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        52
    );

    let received = upstream.requests();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent.method, http::Method::POST);
    assert_eq!(sent.path, format!("/v1beta/models/{MODEL}:generateContent"));
    assert_eq!(sent.headers["x-goog-api-key"], KEY);
    assert!(sent.headers.get("authorization").is_none());
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(
        sent.json(),
        json!({
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather",
                "parametersJsonSchema": weather_tools()[0]["function"]["parameters"]}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256, "stopSequences": ["END"]}
        })
    );

    // The client sends the call back with its result: the signature and name travel back.
    let follow_up = json!({
        "model": "smart",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "18°C, sunny"}
        ],
        "tools": weather_tools()
    });
    let answer = chat(&router, &follow_up.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = upstream.requests()[1].json();
    assert_eq!(
        sent["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "CiQBVKhc7yXf0Rb8RmUc+/Zr0g=="}]})
    );
    assert_eq!(
        sent["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
            "response": {"result": "18°C, sunny"}}}]})
    );
}

/// Text in two chunks, then a function call with `finishReason: STOP` and the final usage.
const STREAM: [&str; 3] = [
    r#"{"candidates": [{"content": {"parts": [{"text": "Let me check"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 12,"candidatesTokenCount": 3,"totalTokenCount": 15},"modelVersion": "gemini-2.5-flash","responseId": "sse-1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"text": " the weather."}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 12,"candidatesTokenCount": 6,"totalTokenCount": 18},"modelVersion": "gemini-2.5-flash","responseId": "sse-1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather","args": {"city": "Rome"}}}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 12,"candidatesTokenCount": 14,"thoughtsTokenCount": 20,"totalTokenCount": 46},"modelVersion": "gemini-2.5-flash","responseId": "sse-1"}"#,
];

#[tokio::test]
async fn stream_with_text_and_a_function_call() {
    let upstream = MockUpstream::start(vec![gemini_sse(&STREAM)]).await;
    let router = router_for(&upstream).await;
    let request = json!({
        "model": "smart", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
        "tools": weather_tools()
    });
    let answer = chat(&router, &request.to_string()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let sent = &upstream.requests()[0];
    assert_eq!(
        sent.path,
        format!("/v1beta/models/{MODEL}:streamGenerateContent?alt=sse")
    );
    assert_eq!(sent.headers["x-goog-api-key"], KEY);

    let data = answer.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).map(|c| c["delta"].clone()))
        .collect();
    assert_eq!(deltas[0], json!({"role": "assistant", "content": ""}));
    assert_eq!(deltas[1], json!({"content": "Let me check"}));
    assert_eq!(deltas[2], json!({"content": " the weather."}));
    let call = &deltas[3]["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Rome"}"#);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 12);
    assert_eq!(usage["usage"]["completion_tokens"], 34);
    assert_eq!(usage["usage"]["total_tokens"], 46);
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-sse-1");
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
}

#[tokio::test]
async fn stream_events_split_across_writes_and_no_usage_unless_asked() {
    // The same stream, cut at arbitrary byte positions (one mid-CRLF).
    let whole: String = STREAM
        .iter()
        .map(|c| format!("data: {c}\r\n\r\n"))
        .collect();
    let cuts = [7, 150, whole.find("\r\n").unwrap() + 1, 400, 555];
    let mut pieces = Vec::new();
    let mut last = 0;
    let mut sorted = cuts.to_vec();
    sorted.sort_unstable();
    for cut in sorted {
        pieces.push(&whole[last..cut]);
        last = cut;
    }
    pieces.push(&whole[last..]);
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&pieces)]).await;
    let router = router_for(&upstream).await;
    let request = json!({"model": "smart", "stream": true,
        "messages": [{"role": "user", "content": "Weather in Rome?"}], "tools": weather_tools()});
    let answer = chat(&router, &request.to_string()).await;
    let data = answer.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let contents: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .inspect(|chunk| assert!(chunk.get("usage").is_none()))
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(contents, "Let me check the weather.");
}

#[tokio::test]
async fn stream_without_finish_reason_ends_with_an_error_event() {
    let upstream = MockUpstream::start(vec![gemini_sse(&STREAM[..2])]).await;
    let router = router_for(&upstream).await;
    let request = json!({"model": "smart", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let answer = chat(&router, &request.to_string()).await;
    assert_eq!(answer.status, 200);
    let data = answer.sse_data();
    assert!(!data.contains(&"[DONE]".to_owned()), "{data:?}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(last["error"]["message"].as_str().is_some(), "{last}");
}

#[tokio::test]
async fn error_chunk_mid_stream_ends_with_an_error_event() {
    let error = r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#;
    let upstream = MockUpstream::start(vec![gemini_sse(&[STREAM[0], error])]).await;
    let router = router_for(&upstream).await;
    let request = json!({"model": "smart", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let answer = chat(&router, &request.to_string()).await;
    let data = answer.sse_data();
    assert!(!data.contains(&"[DONE]".to_owned()));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{last}"
    );
}

/// Gemini's error object as it writes it when a stream fails after it started: bare (no
/// `data:`), pretty-printed, CRLF line ends.
fn bare_error(code: u16, status: &str, message: &str) -> String {
    format!(
        "{{\r\n  \"error\": {{\r\n    \"code\": {code},\r\n    \"message\": \"{message}\",\r\n    \"status\": \"{status}\"\r\n  }}\r\n}}\r\n"
    )
}

#[tokio::test]
async fn bare_error_object_mid_stream_ends_with_its_error_event() {
    let first = format!("data: {}\r\n\r\n", STREAM[0]);
    let error = bare_error(500, "INTERNAL", "Internal error encountered.");
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&[&first, &error])]).await;
    let router = router_for(&upstream).await;
    let request = json!({"model": "smart", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let answer = chat(&router, &request.to_string()).await;
    let data = answer.sse_data();
    assert!(!data.contains(&"[DONE]".to_owned()), "{data:?}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Internal error encountered."),
        "{last}"
    );
}

#[tokio::test]
async fn bare_quota_error_before_any_content_is_a_429() {
    let error = bare_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.");
    let upstream = MockUpstream::start(vec![Reply::sse_raw(&[&error])]).await;
    let router = router_for(&upstream).await;
    let request = json!({"model": "smart", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let answer = chat(&router, &request.to_string()).await;
    assert_eq!(answer.status, 429, "{}", answer.text());
}

#[tokio::test]
async fn resource_exhausted_is_a_429_with_the_retry_delay() {
    let body = r#"{"error": {"code": 429, "message": "You exceeded your current quota, please check your plan and billing details.", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, "quotaValue": "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}"#;
    let upstream = MockUpstream::start(vec![Reply::json(429, body)]).await;
    let router = router_for(&upstream).await;
    let answer = chat(
        &router,
        r#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 429, "{}", answer.text());
    assert_eq!(answer.error()["code"], "all_targets_rate_limited");
    assert_eq!(answer.headers["retry-after"], "37");
}

#[tokio::test]
async fn a_bad_gemini_key_is_a_502_never_the_clients_fault() {
    let body = r#"[{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}]"#;
    let upstream = MockUpstream::start(vec![Reply::json(400, body)]).await;
    let router = router_for(&upstream).await;
    let answer = chat(
        &router,
        r#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(!answer.text().contains("API key not valid"));
}

#[tokio::test]
async fn overload_is_a_503() {
    let body = r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#;
    let upstream = MockUpstream::start(vec![Reply::json(503, body)]).await;
    let router = router_for(&upstream).await;
    let answer = chat(
        &router,
        r#"{"model":"smart","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 503, "{}", answer.text());
}

#[tokio::test]
async fn invalid_argument_reaches_the_client_as_its_own_400() {
    let body = r#"{"error": {"code": 400, "message": "* GenerateContentRequest.generation_config.max_output_tokens: must be positive", "status": "INVALID_ARGUMENT"}}"#;
    let upstream = MockUpstream::start(vec![Reply::json(400, body)]).await;
    let router = router_for(&upstream).await;
    let answer = chat(
        &router,
        r#"{"model":"smart","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
    )
    .await;
    assert_eq!(answer.status, 400);
    let error = answer.error();
    assert_eq!(error["code"], "INVALID_ARGUMENT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_output_tokens")
    );
}

#[tokio::test]
async fn what_gemini_cannot_do_never_reaches_it() {
    let upstream = MockUpstream::start(vec![Reply::json(200, "{}")]).await;
    let router = router_for(&upstream).await;
    let image = json!({"model": "smart", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let answer = chat(&router, &image.to_string()).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.error()["param"],
        "messages[0].content[0].image_url.url"
    );
    let logprobs = json!({"model": "smart", "logprobs": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let answer = chat(&router, &logprobs.to_string()).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error()["param"], "logprobs");
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn a_blocked_prompt_is_a_content_filter_finish() {
    let body = r#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}, "modelVersion": "gemini-2.5-flash", "responseId": "blk-1"}"#;
    let upstream = MockUpstream::start(vec![Reply::json(200, body)]).await;
    let router = router_for(&upstream).await;
    let answer = chat(
        &router,
        r#"{"model":"smart","messages":[{"role":"user","content":"something bad"}]}"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(body["choices"][0]["message"]["content"], "");
}

/// The async-openai SDK, pointed at the router, reads Gemini's answers as OpenAI ones.
mod sdk {
    use async_openai::Client;
    use async_openai::config::OpenAIConfig;
    use async_openai::types::chat::{
        ChatCompletionMessageToolCalls, CreateChatCompletionRequest, FinishReason,
    };
    use serde_json::{Value, json};

    use super::{FUNCTION_CALL_ANSWER, MODEL, STREAM, gemini_sse, router_for, weather_tools};
    use crate::support::{MockUpstream, Reply, RouterHandle, SdkStream};

    fn client(router: &RouterHandle) -> Client<OpenAIConfig> {
        crate::support::sdk_client(router, "client-key")
    }

    fn request(stream: bool) -> serde_json::Result<CreateChatCompletionRequest> {
        crate::support::sdk_weather_request("smart", weather_tools(), stream)
    }

    #[tokio::test]
    async fn non_stream_tool_call_and_usage() {
        let upstream = MockUpstream::start(vec![Reply::json(200, FUNCTION_CALL_ANSWER)]).await;
        let router = router_for(&upstream).await;
        let response = client(&router)
            .chat()
            .create(request(false).unwrap())
            .await
            .unwrap();
        assert_eq!(response.id, "chatcmpl-wZ1BaPqWEbX3nvgPy8mS-A4");
        let choice = &response.choices[0];
        assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(choice.message.content, None);
        let calls = choice.message.tool_calls.as_ref().expect("tool_calls");
        assert_eq!(calls.len(), 1, "{calls:?}");
        let ChatCompletionMessageToolCalls::Function(call) = &calls[0] else {
            panic!("no function call: {choice:?}");
        };
        assert!(call.id.starts_with("call_"), "{}", call.id);
        assert_eq!(call.function.name, "get_weather");
        let arguments: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert_eq!(arguments, json!({"city": "Paris"}));
        // completion_tokens = candidatesTokenCount (15) + thoughtsTokenCount (52).
        let usage = response.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (31, 67, 98)
        );
        assert_eq!(
            usage.completion_tokens_details.unwrap().reasoning_tokens,
            Some(52)
        );

        let sent = upstream.requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].path,
            format!("/v1beta/models/{MODEL}:generateContent")
        );
        let body = sent[0].json();
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["name"],
            "get_weather"
        );
    }

    #[tokio::test]
    async fn stream_tool_call_and_usage() {
        let upstream = MockUpstream::start(vec![gemini_sse(&STREAM)]).await;
        let router = router_for(&upstream).await;
        let stream = client(&router)
            .chat()
            .create_stream(request(true).unwrap())
            .await
            .unwrap();
        let read = SdkStream::read(stream).await;
        assert!(read.chunks.iter().all(|c| c.id == "chatcmpl-sse-1"));
        assert_eq!(read.text, "Let me check the weather.");
        let call_id = read.call_id.as_deref().expect("a call id");
        assert!(call_id.starts_with("call_"), "{call_id}");
        assert_eq!(read.call_name, "get_weather");
        assert_eq!(read.arguments_json(), json!({"city": "Rome"}));
        assert_eq!(read.finishes, [FinishReason::ToolCalls], "one finish chunk");
        // One usage chunk, last and without choices, from the last usageMetadata: 12 prompt,
        // 14 + 20 completion.
        let usage = read.usage();
        assert!(read.chunks.last().is_some_and(|c| c.choices.is_empty()));
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (12, 34, 46)
        );

        let sent = upstream.requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].path,
            format!("/v1beta/models/{MODEL}:streamGenerateContent?alt=sse")
        );
        assert!(sent[0].json().get("stream_options").is_none());
    }
}

/// Multi-turn agent loops against a Gemini mock that enforces the API's own rules: it refuses
/// schema keywords outside what Gemini documents for its JSON Schema fields, and, for
/// `gemini-3*` models, a function-call model turn whose first call lacks the thought signature
/// it issued. Both refusals are Gemini's 400 `INVALID_ARGUMENT`, so a translation bug shows as
/// a failed turn.
#[cfg(test)]
mod strict {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::{Value, json};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use crate::support::{RouterHandle, chat, spawn_router, sse_data};

    /// The Gemini 3 model the route targets.
    const MODEL3: &str = "gemini-3-flash-preview";
    /// The signature the mock puts on its function call.
    const CALL_SIGNATURE: &str = "Q2FsbFNpZ25hdHVyZQ==";
    /// The signature the mock puts on its text.
    const TEXT_SIGNATURE: &str = "VGV4dFNpZ25hdHVyZQ==";

    /// The keywords Gemini documents for `parametersJsonSchema` / `responseJsonSchema`.
    const KEYWORDS: [&str; 17] = [
        "type",
        "format",
        "title",
        "description",
        "enum",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "anyOf",
        "properties",
        "additionalProperties",
        "required",
        "propertyOrdering",
        "default",
    ];

    /// A strict mock: answers `turns[n]` to the n-th request that passes its checks.
    struct StrictGemini {
        addr: SocketAddr,
        received: Arc<Mutex<Vec<Value>>>,
        _task: JoinHandle<()>,
    }

    impl StrictGemini {
        async fn start(turns: Vec<&'static str>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let received: Arc<Mutex<Vec<Value>>> = Arc::default();
            let log = received.clone();
            let turns = Arc::new(turns);
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let log = log.clone();
                    let turns = turns.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let log = log.clone();
                            let turns = turns.clone();
                            async move { Ok::<_, Infallible>(answer(request, &log, &turns).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            Self {
                addr,
                received,
                _task: task,
            }
        }

        fn received(&self) -> Vec<Value> {
            self.received.lock().unwrap().clone()
        }
    }

    async fn answer(
        request: Request<Incoming>,
        log: &Mutex<Vec<Value>>,
        turns: &[&str],
    ) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let stream = request.uri().query() == Some("alt=sse");
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        let problem = schema_problem(&body).or_else(|| signature_problem(&path, &body));
        let turn = {
            let mut log = log.lock().unwrap();
            log.push(body);
            log.len() - 1
        };
        if let Some(message) = problem {
            let error =
                json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}});
            return reply(400, "application/json", error.to_string());
        }
        let answer = turns[turn.min(turns.len() - 1)];
        if stream {
            // One chunk per candidate part, as Gemini streams a turn.
            let whole: Value = serde_json::from_str(answer).unwrap();
            let parts = whole["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap()
                .clone();
            let last = parts.len() - 1;
            let mut sse = String::new();
            for (i, part) in parts.into_iter().enumerate() {
                let mut chunk = whole.clone();
                chunk["candidates"][0]["content"]["parts"] = json!([part]);
                if i != last {
                    chunk["candidates"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("finishReason");
                }
                sse.push_str(&format!("data: {chunk}\r\n\r\n"));
            }
            return reply(200, "text/event-stream", sse);
        }
        reply(200, "application/json", answer.to_owned())
    }

    fn reply(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    /// Gemini's complaint about the first schema keyword it does not know, if any.
    fn schema_problem(body: &Value) -> Option<String> {
        let mut schemas = Vec::new();
        for (t, tool) in body["tools"].as_array().into_iter().flatten().enumerate() {
            for (d, decl) in tool["functionDeclarations"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if decl.get("parameters").is_some() {
                    return Some("this mock expects parametersJsonSchema".into());
                }
                if let Some(schema) = decl.get("parametersJsonSchema") {
                    let at =
                        format!("tools[{t}].function_declarations[{d}].parameters_json_schema");
                    schemas.push((at, schema));
                }
            }
        }
        if let Some(schema) = body["generationConfig"].get("responseJsonSchema") {
            schemas.push(("generation_config.response_json_schema".into(), schema));
        }
        schemas
            .into_iter()
            .find_map(|(at, schema)| unknown_keyword(schema, &at))
    }

    fn unknown_keyword(schema: &Value, at: &str) -> Option<String> {
        let object = schema.as_object()?;
        for (key, value) in object {
            if !KEYWORDS.contains(&key.as_str()) {
                return Some(format!(
                    "Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field."
                ));
            }
            let inner = match key.as_str() {
                "properties" => value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .find_map(|(name, s)| unknown_keyword(s, &format!("{at}.properties[{name}]"))),
                "items" | "additionalProperties" => unknown_keyword(value, &format!("{at}.{key}")),
                "anyOf" | "prefixItems" => value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .find_map(|(i, s)| unknown_keyword(s, &format!("{at}.{key}[{i}]"))),
                _ => None,
            };
            if inner.is_some() {
                return inner;
            }
        }
        None
    }

    /// Gemini 3's complaint about a model turn whose first function call lacks its signature.
    fn signature_problem(path: &str, body: &Value) -> Option<String> {
        if !path.contains("/models/gemini-3") {
            return None;
        }
        for (i, turn) in body["contents"].as_array()?.iter().enumerate() {
            if turn["role"] != "model" {
                continue;
            }
            let first_call = turn["parts"]
                .as_array()?
                .iter()
                .find(|p| p.get("functionCall").is_some());
            if let Some(call) = first_call
                && call["thoughtSignature"] != CALL_SIGNATURE
            {
                return Some(format!(
                    "Function call is missing a thought_signature in functionCall parts. This is \
                     required for tools to work correctly, and missing thought_signature may lead \
                     to degraded model performance. Additional data, function call \
                     `default_api:get_weather` , position {i}. Please refer to \
                     https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                ));
            }
        }
        None
    }

    /// Turn one: a signed text part and a signed function call.
    const CALL_TURN: &str = r#"{"candidates":[{"content":{"role":"model","parts":[
        {"text":"Checking the weather.","thoughtSignature":"VGV4dFNpZ25hdHVyZQ=="},
        {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"Q2FsbFNpZ25hdHVyZQ=="}]},
        "finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":9,"thoughtsTokenCount":30,"totalTokenCount":59},
        "modelVersion":"gemini-3-flash-preview","responseId":"turn-one"}"#;
    /// Turn two: the answer.
    const DONE_TURN: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"18°C and sunny."}]},
        "finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":5,"totalTokenCount":45},
        "modelVersion":"gemini-3-flash-preview","responseId":"turn-two"}"#;

    async fn router_for(mock: &StrictGemini) -> RouterHandle {
        let toml = format!(
            r#"
[providers.g]
kind = "gemini"
base_url = "http://{addr}"
api_key_env = "GEMINI_API_KEY"

[providers.g.models."{MODEL3}"]

[routes.smart]
targets = ["g/{MODEL3}"]
"#,
            addr = mock.addr
        );
        spawn_router(&toml, &[("GEMINI_API_KEY", "k")]).await
    }

    /// A tool whose schema carries what agent frameworks emit and Gemini refuses.
    fn agent_tools() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"$ref": "#/$defs/City"},
                "days": {"type": "integer", "exclusiveMinimum": 0, "default": 1},
                "unit": {"type": "string", "const": "celsius", "examples": ["celsius"]},
                "note": {"type": ["string", "null"], "format": "uri", "pattern": "^h"}
            },
            "required": ["city"],
            "additionalProperties": false,
            "$defs": {"City": {"type": "string", "title": "City", "minLength": 1}}
        }}}])
    }

    fn first_turn(stream: bool) -> Value {
        json!({"model": "smart", "stream": stream, "reasoning_effort": "low",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": agent_tools()})
    }

    fn second_turn(stream: bool, assistant: Value, call_id: &Value) -> Value {
        json!({"model": "smart", "stream": stream, "reasoning_effort": "low",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                assistant,
                {"role": "tool", "tool_call_id": call_id, "content": "18°C, sunny"}
            ],
            "tools": agent_tools()})
    }

    /// The assistant message a client rebuilds from a stream's deltas, `extra_content`
    /// included, the way SDK accumulators merge unknown fields.
    fn assemble(data: &[String]) -> Value {
        let mut content = String::new();
        let mut extra = Value::Null;
        let mut call = json!({"type": "function", "function": {"name": "", "arguments": ""}});
        for payload in data.iter().filter(|d| *d != "[DONE]") {
            let chunk: Value = serde_json::from_str(payload).unwrap();
            let Some(delta) = chunk["choices"].get(0).map(|c| c["delta"].clone()) else {
                continue;
            };
            content.push_str(delta["content"].as_str().unwrap_or_default());
            if let Some(e) = delta.get("extra_content") {
                extra = e.clone();
            }
            if let Some(fragment) = delta["tool_calls"].get(0) {
                for key in ["id", "extra_content"] {
                    if let Some(v) = fragment.get(key) {
                        call[key] = v.clone();
                    }
                }
                if let Some(name) = fragment["function"]["name"].as_str() {
                    call["function"]["name"] = json!(name);
                }
                let arguments = call["function"]["arguments"].as_str().unwrap().to_owned()
                    + fragment["function"]["arguments"]
                        .as_str()
                        .unwrap_or_default();
                call["function"]["arguments"] = json!(arguments);
            }
        }
        json!({"role": "assistant", "content": content, "extra_content": extra, "tool_calls": [call]})
    }

    /// Keeps only what a plain OpenAI client keeps: role, content, and each call's id, type,
    /// name and arguments.
    fn ids_only(assistant: &Value) -> Value {
        let calls: Vec<Value> = assistant["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!({"id": c["id"], "type": "function", "function": c["function"]}))
            .collect();
        json!({"role": "assistant", "content": assistant["content"], "tool_calls": calls})
    }

    /// Runs the two-turn loop; `keep` is what the client sends back of the assistant turn.
    async fn tool_loop(stream: bool, keep: fn(&Value) -> Value) -> Vec<Value> {
        let mock = StrictGemini::start(vec![CALL_TURN, DONE_TURN]).await;
        let router = router_for(&mock).await;
        let first = chat(&router, &first_turn(stream).to_string()).await;
        assert_eq!(first.status, 200, "{}", first.text());
        let assistant = if stream {
            assemble(&sse_data(&first.text()))
        } else {
            first.json()["choices"][0]["message"].clone()
        };
        assert_eq!(
            assistant["extra_content"],
            json!({"google": {"thought_signature": TEXT_SIGNATURE}})
        );
        let call = &assistant["tool_calls"][0];
        assert_eq!(
            call["extra_content"],
            json!({"google": {"thought_signature": CALL_SIGNATURE}})
        );
        assert_eq!(call["function"]["name"], "get_weather");
        let echoed = keep(&assistant);
        let second = chat(
            &router,
            &second_turn(stream, echoed, &call["id"]).to_string(),
        )
        .await;
        assert_eq!(second.status, 200, "{}", second.text());
        let text = if stream {
            assemble(&sse_data(&second.text()))["content"].clone()
        } else {
            second.json()["choices"][0]["message"]["content"].clone()
        };
        assert_eq!(text, "18°C and sunny.");
        mock.received()
    }

    #[tokio::test]
    async fn gemini_3_tool_loop_echoing_extra_content() {
        let sent = tool_loop(false, Value::clone).await;
        assert_eq!(
            sent[1]["contents"][1]["parts"],
            json!([
                {"text": "Checking the weather.", "thoughtSignature": TEXT_SIGNATURE},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": CALL_SIGNATURE}
            ])
        );
        // What the mock received is what Gemini accepts: the schema cut to its keywords.
        assert_eq!(
            sent[0]["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"],
            json!({"type": "object", "properties": {
                "city": {"type": "string", "title": "City"},
                "days": {"type": "integer", "minimum": 1, "default": 1},
                "unit": {"type": "string", "enum": ["celsius"]},
                "note": {"type": ["string", "null"]}
            }, "required": ["city"], "additionalProperties": false})
        );
        assert_eq!(
            sent[0]["generationConfig"]["thinkingConfig"],
            json!({"thinkingLevel": "low"})
        );
    }

    #[tokio::test]
    async fn gemini_3_tool_loop_keeping_only_ids() {
        let sent = tool_loop(false, ids_only).await;
        assert_eq!(
            sent[1]["contents"][1]["parts"][1]["thoughtSignature"],
            CALL_SIGNATURE
        );
    }

    #[tokio::test]
    async fn gemini_3_streamed_tool_loop_echoing_extra_content() {
        let sent = tool_loop(true, Value::clone).await;
        assert_eq!(
            sent[1]["contents"][1]["parts"][0]["thoughtSignature"],
            TEXT_SIGNATURE
        );
    }

    #[tokio::test]
    async fn gemini_3_streamed_tool_loop_keeping_only_ids() {
        let sent = tool_loop(true, ids_only).await;
        assert_eq!(
            sent[1]["contents"][1]["parts"][1]["thoughtSignature"],
            CALL_SIGNATURE
        );
    }

    #[tokio::test]
    async fn the_mock_refuses_what_gemini_refuses() {
        // An unsigned call from another provider gets the sentinel, which this mock (knowing
        // every call came from it) refuses as Gemini 3 refuses a lost signature.
        let mock = StrictGemini::start(vec![DONE_TURN]).await;
        let router = router_for(&mock).await;
        let lost = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
            "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]});
        let answer = chat(
            &router,
            &second_turn(false, lost, &json!("call_1")).to_string(),
        )
        .await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(
            answer.text().contains("thought_signature"),
            "{}",
            answer.text()
        );
    }

    #[tokio::test]
    async fn an_inexpressible_schema_is_refused_before_gemini_sees_it() {
        let mock = StrictGemini::start(vec![DONE_TURN]).await;
        let router = router_for(&mock).await;
        let request = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                "properties": {"x": {"type": "array", "items": {"not": {"type": "string"}}}}}}}]});
        let answer = chat(&router, &request.to_string()).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert_eq!(
            answer.error()["param"],
            "tools[0].function.parameters.properties.x.items.not"
        );
        assert!(mock.received().is_empty());

        let format = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema":
                {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMaximum": 10}},
                 "additionalProperties": false, "$schema": "s"}}}});
        let answer = chat(&router, &format.to_string()).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(
            mock.received()[0]["generationConfig"]["responseJsonSchema"],
            json!({"type": "object", "properties": {"n": {"type": "integer", "maximum": 9}},
                "additionalProperties": false})
        );
    }
}

/// Thought summaries, when the client asks with `include_reasoning`, stream as
/// `delta.reasoning_content`, never mixed into the content; thinking tokens are reasoning
/// tokens in the usage chunk.
#[tokio::test]
async fn reasoning_streams_as_reasoning_content_when_asked() {
    let chunks = [
        r#"{"candidates":[{"content":{"parts":[{"text":"Weighing units.","thought":true}],"role":"model"},"index":0}],"responseId":"r-1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"It is 18°C."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":4,"thoughtsTokenCount":9,"totalTokenCount":18},"responseId":"r-1"}"#,
    ];
    let upstream = MockUpstream::start(vec![gemini_sse(&chunks)]).await;
    let router = router_for(&upstream).await;
    let request = json!({"model": "smart", "stream": true, "stream_options": {"include_usage": true},
        "include_reasoning": true, "reasoning_effort": "medium",
        "messages": [{"role": "user", "content": "Weather?"}]});
    let answer = chat(&router, &request.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        upstream.requests()[0].json()["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    let chunks: Vec<Value> = answer
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).map(|c| &c["delta"]))
        .collect();
    assert_eq!(*deltas[1], json!({"reasoning_content": "Weighing units."}));
    assert_eq!(*deltas[2], json!({"content": "It is 18°C."}));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 13);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 9);
}
