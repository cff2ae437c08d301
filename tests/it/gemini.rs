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
