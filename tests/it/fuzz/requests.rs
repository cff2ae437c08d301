//! Each adapter's request translation: a valid chat request becomes valid JSON of bounded
//! size or a 400, and OpenAI-wire upstreams receive the client's bytes with only `model`
//! (and a stream's `stream_options.include_usage`) changed.

use proptest::prelude::*;
use switchboard::config::{ProviderKind, Target};
use switchboard::openai::ChatRequest;
use switchboard::providers::adapter_for;

use super::cases;
use super::generate::{Body, chat_body, is_json, targets, with_include_usage};

/// What an OpenAI-wire upstream must receive for `body`: only `model` replaced, and for a
/// stream whose client did not ask for usage, `include_usage: true` in `stream_options`
/// (added as the first member when absent).
fn expected_pass_through(body: &Body, chat: &ChatRequest<'_>, target: &Target) -> Vec<u8> {
    let model = serde_json::Value::from(&*target.model).to_string();
    let body = body.with("model", model);
    if !chat.is_stream() || chat.include_usage() {
        return body.render();
    }
    match body.get("stream_options") {
        Some(options) => body
            .with("stream_options", with_include_usage(options))
            .render(),
        None => {
            let mut rendered = body.render();
            rendered.splice(
                1..1,
                br#""stream_options":{"include_usage":true},"#.iter().copied(),
            );
            rendered
        }
    }
}

/// Checks one adapter's translation of `raw`.
fn check(
    kind: ProviderKind,
    target: &Target,
    body: &Body,
    raw: &[u8],
) -> Result<(), TestCaseError> {
    let chat = ChatRequest::parse(raw)
        .map_err(|e| TestCaseError::fail(format!("a valid request was refused: {e}")))?;
    let request = match adapter_for(kind).request(&chat, target) {
        Ok(request) => request,
        Err(error) => {
            // Refusing a field the provider cannot honour is fine; an internal error is not.
            prop_assert_eq!(error.status().as_u16(), 400, "{:?}: {}", kind, error);
            return Ok(());
        }
    };
    prop_assert!(
        is_json(&request.body),
        "{:?} sent a body that is not JSON: {}",
        kind,
        String::from_utf8_lossy(&request.body)
    );
    prop_assert!(
        request.body.len() <= 3 * raw.len() + 1024,
        "{:?} made {} bytes of {}",
        kind,
        request.body.len(),
        raw.len()
    );
    if matches!(kind, ProviderKind::OpenAi | ProviderKind::Qwen) {
        let expected = expected_pass_through(body, &chat, target);
        prop_assert!(
            request.body[..] == expected[..],
            "{:?} changed the client's bytes:\n sent {}\n want {}",
            kind,
            String::from_utf8_lossy(&request.body),
            String::from_utf8_lossy(&expected)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn fuzz_adapters_translate_any_valid_request(body in chat_body()) {
        let raw = body.render();
        for (kind, target) in targets() {
            check(*kind, target, &body, &raw)?;
        }
    }
}
