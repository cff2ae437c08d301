//! Client compatibility: the `async-openai` crate, pointed at the router, must read every
//! answer the router gives (plain, streamed, tool calls) and map its errors to
//! `OpenAIError::ApiError` with the router's status, `type`, `code`, `param` and `message`.
#![cfg(test)] // Test-only helpers: lets clippy apply its test allowances (expect, panic).

use async_openai::error::{ApiErrorResponse, OpenAIError};
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionNamedToolChoice, ChatCompletionRequestMessage,
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequest, FinishReason,
    FunctionName, FunctionObject,
};
use serde_json::json;

use crate::support::{
    MockUpstream, Reply, SdkStream, UP_ENV, one_provider, sdk_client, spawn_router,
};

/// The built-in mock, routed as `demo`.
const MOCK_ONLY: &str = r#"
[providers.local]
kind = "mock"

[providers.local.models.echo]

[routes.demo]
targets = ["local/echo"]
"#;

const CLIENT_KEY: &str = "sk-switchboard-client-test";

fn user(text: &str) -> ChatCompletionRequestMessage {
    ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(text))
}

fn request(model: &str, text: &str) -> CreateChatCompletionRequest {
    CreateChatCompletionRequest {
        model: model.to_owned(),
        messages: vec![user(text)],
        ..Default::default()
    }
}

/// A request offering `get_weather` and forcing the model to call it.
fn tool_request(model: &str) -> CreateChatCompletionRequest {
    CreateChatCompletionRequest {
        tools: Some(vec![ChatCompletionTools::Function(ChatCompletionTool {
            function: FunctionObject {
                name: "get_weather".into(),
                description: Some("Current weather for a city.".into()),
                parameters: Some(json!({
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["city"]
                })),
                strict: None,
            },
        })]),
        tool_choice: Some(ChatCompletionToolChoiceOption::Function(
            ChatCompletionNamedToolChoice {
                function: FunctionName {
                    name: "get_weather".into(),
                },
            },
        )),
        ..request(model, "What is the weather in Paris?")
    }
}

/// The router's error as async-openai reports it.
fn api_error(result: Result<impl std::fmt::Debug, OpenAIError>) -> ApiErrorResponse {
    match result {
        Err(OpenAIError::ApiError(error)) => error,
        other => panic!("expected OpenAIError::ApiError, got {other:?}"),
    }
}

/// The arguments the scripted upstream calls `get_weather` with.
pub(crate) const TOOL_ARGUMENTS: &str = r#"{"city":"Paris","unit":"celsius"}"#;

/// An upstream answer that calls `get_weather` with [`TOOL_ARGUMENTS`].
pub(crate) fn tool_call_completion() -> Reply {
    let body = json!({
        "id": "chatcmpl-tool-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": "tool-model",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{
                    "id": "call_abc", "type": "function",
                    "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}
                }]
            },
            "logprobs": null, "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    });
    Reply::json(200, &body.to_string())
}

/// A tool call streamed as OpenAI does: id and name first, then argument fragments.
pub(crate) fn tool_call_stream() -> Reply {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        json!({
            "id": "chatcmpl-tool-2", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "tool-model",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        })
        .to_string()
    };
    let fragment = |arguments: &str| {
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
            None,
        )
    };
    let payloads = [
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "index": 0, "id": "call_xyz", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}
            }]}),
            None,
        ),
        fragment(r#"{"city":"#),
        fragment(r#""Paris","unit""#),
        fragment(r#":"celsius"}"#),
        chunk(json!({}), Some("tool_calls")),
        "[DONE]".to_owned(),
    ];
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    Reply::sse_data(&refs)
}

#[tokio::test]
async fn non_stream_chat_on_the_mock_route() {
    let router = spawn_router(MOCK_ONLY, &[]).await;
    let response = sdk_client(&router, "unused")
        .chat()
        .create(request("demo", "hello from async-openai"))
        .await
        .expect("the mock answers");

    assert_eq!(response.object, "chat.completion");
    assert_eq!(response.model, "echo");
    assert_eq!(response.choices.len(), 1);
    let choice = &response.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("hello from async-openai")
    );
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.expect("usage");
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
}

#[tokio::test]
async fn non_stream_chat_through_an_openai_wire_upstream() {
    let upstream = MockUpstream::start(vec![Reply::json(
        200,
        &json!({
            "id": "chatcmpl-up-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there, from upstream."},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
            "system_fingerprint": "fp_test"
        })
        .to_string(),
    )])
    .await;
    let router = spawn_router(
        &one_provider("openai", &upstream, "gpt", "gpt-4o-mini"),
        UP_ENV,
    )
    .await;

    let response = sdk_client(&router, "unused")
        .chat()
        .create(request("gpt", "Say hi"))
        .await
        .expect("the upstream answers");

    assert_eq!(response.id, "chatcmpl-up-1");
    assert_eq!(
        response.choices[0].message.content.as_deref(),
        Some("Hi there, from upstream.")
    );
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(response.usage.expect("usage").total_tokens, 11);

    let sent = upstream.requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["messages"][0]["content"], "Say hi");
}

#[tokio::test]
async fn stream_on_the_mock_route_ends_cleanly_with_usage() {
    let router = spawn_router(MOCK_ONLY, &[]).await;
    let prompt = "streaming through the router works word by word";
    let stream = sdk_client(&router, "unused")
        .chat()
        .create_stream(CreateChatCompletionRequest {
            stream_options: Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            ..request("demo", prompt)
        })
        .await
        .expect("the stream starts");
    let read = SdkStream::read(stream).await;
    let chunks = &read.chunks;

    assert!(chunks.len() > 3, "{chunks:#?}");
    assert!(chunks.iter().all(|c| c.object == "chat.completion.chunk"));
    let first_id = &chunks[0].id;
    assert!(
        chunks.iter().all(|c| &c.id == first_id),
        "one id per stream"
    );

    assert_eq!(read.text, prompt);
    assert_eq!(read.finishes, [FinishReason::Stop]);

    // The usage chunk comes last, with no choices.
    let last = chunks.last().expect("chunks");
    assert!(last.choices.is_empty());
    let usage = last.usage.as_ref().expect("final usage chunk");
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    assert!(
        chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()),
        "only the last chunk carries usage"
    );
}

#[tokio::test]
async fn tool_calls_non_stream_and_stream() {
    let upstream = MockUpstream::start(vec![tool_call_completion(), tool_call_stream()]).await;
    let router = spawn_router(
        &one_provider("openai", &upstream, "tools", "tool-model"),
        UP_ENV,
    )
    .await;
    let client = sdk_client(&router, "unused");

    // Non-stream: the whole call in one message.
    let response = client
        .chat()
        .create(tool_request("tools"))
        .await
        .expect("the upstream answers");
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(choice.message.content, None);
    let calls = choice.message.tool_calls.as_ref().expect("tool_calls");
    assert_eq!(calls.len(), 1);
    let ChatCompletionMessageToolCalls::Function(call) = &calls[0] else {
        panic!("expected a function tool call, got {:?}", calls[0]);
    };
    assert_eq!(call.id, "call_abc");
    assert_eq!(call.function.name, "get_weather");
    let arguments: serde_json::Value =
        serde_json::from_str(&call.function.arguments).expect("arguments are JSON");
    assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));

    // Stream: id and name once, arguments in fragments to be joined.
    let stream = client
        .chat()
        .create_stream(tool_request("tools"))
        .await
        .expect("the stream starts");
    let read = SdkStream::read(stream).await;
    assert_eq!(read.call_id.as_deref(), Some("call_xyz"));
    assert_eq!(read.call_name, "get_weather");
    assert_eq!(read.arguments, TOOL_ARGUMENTS);
    assert_eq!(
        read.arguments_json(),
        json!({"city": "Paris", "unit": "celsius"})
    );
    assert_eq!(read.finishes, [FinishReason::ToolCalls]);

    // The router passed the tool definitions and choice through, and asked for a stream.
    let sent = upstream.requests();
    assert_eq!(sent.len(), 2);
    for (recorded, stream) in sent.iter().zip([false, true]) {
        let body = recorded.json();
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(body["tool_choice"]["function"]["name"], "get_weather");
        assert_eq!(body["stream"].as_bool().unwrap_or(false), stream);
    }
}

#[tokio::test]
async fn errors_map_to_api_errors_with_the_routers_fields() {
    let toml = format!(
        r#"
[[keys]]
name = "sdk-test"
key_env = "SDK_TEST_KEY"
{MOCK_ONLY}"#
    );
    let router = spawn_router(&toml, &[("SDK_TEST_KEY", CLIENT_KEY)]).await;
    let good = sdk_client(&router, CLIENT_KEY);

    // The right key works.
    let ok = good.chat().create(request("demo", "ping")).await;
    assert_eq!(
        ok.expect("authorised").choices[0]
            .message
            .content
            .as_deref(),
        Some("ping")
    );

    // 400: no messages.
    let error = api_error(
        good.chat()
            .create(CreateChatCompletionRequest {
                model: "demo".into(),
                messages: Vec::new(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(error.status_code.as_u16(), 400);
    assert_eq!(
        error.api_error.r#type.as_deref(),
        Some("invalid_request_error")
    );
    assert_eq!(
        error.api_error.code.as_deref(),
        Some("invalid_request_error")
    );
    assert_eq!(error.api_error.param.as_deref(), Some("messages"));
    assert_eq!(
        error.api_error.message,
        "'messages' must contain at least one message."
    );

    // 401: a wrong key.
    let error = api_error(
        sdk_client(&router, "sk-wrong")
            .chat()
            .create(request("demo", "ping"))
            .await,
    );
    assert_eq!(error.status_code.as_u16(), 401);
    assert_eq!(error.api_error.code.as_deref(), Some("invalid_api_key"));
    assert_eq!(
        error.api_error.r#type.as_deref(),
        Some("invalid_request_error")
    );
    assert_eq!(error.api_error.param, None);
    assert!(
        error
            .api_error
            .message
            .starts_with("Incorrect API key provided."),
        "{}",
        error.api_error.message
    );

    // 404: an unknown model, plain and streamed (the error comes before any event).
    let error = api_error(good.chat().create(request("no-such-model", "ping")).await);
    assert_eq!(error.status_code.as_u16(), 404);
    assert_eq!(error.api_error.code.as_deref(), Some("model_not_found"));
    assert_eq!(
        error.api_error.r#type.as_deref(),
        Some("invalid_request_error")
    );
    assert_eq!(error.api_error.param.as_deref(), Some("model"));
    assert_eq!(
        error.api_error.message,
        "The model `no-such-model` does not exist or you do not have access to it."
    );
    let streamed = good
        .chat()
        .create_stream(request("no-such-model", "ping"))
        .await
        .map(|_| "a stream");
    let error = api_error(streamed);
    assert_eq!(error.status_code.as_u16(), 404);
    assert_eq!(error.api_error.code.as_deref(), Some("model_not_found"));
}
