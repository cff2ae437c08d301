//! Tool call ids that carry Gemini's thought signatures, for clients that echo only the id.

use std::borrow::Cow;

use crate::providers::Fnv1a;

/// A tool call id handed to the client, decoded.
///
/// Gemini 3 rejects a conversation whose function calls lack the `thoughtSignature` it sent,
/// but OpenAI clients echo back only a call's id, name and arguments. So the id carries it:
///
/// `call_g{t}{len}_{core}[_{signature}]`
///
/// - `t` is `i` when `core` is Gemini's own `functionCall.id` (echoed back to it), `r` when
///   the router made `core` up because Gemini gave none (never sent back);
/// - `len` is the byte length of `core`, so the core may hold any character;
/// - `signature` is the base64 signature in the URL-safe alphabet without padding, so the id
///   stays within `[A-Za-z0-9_-]` (Anthropic's id pattern) when the core does.
///
/// Without a signature a made-up id is 26 characters. A signature can be a few kilobytes and
/// the id grows with it: that is the price of a router that keeps no conversation state.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CallId<'a> {
    /// Gemini's own id of the call, when it gave one.
    pub(super) gemini_id: Option<&'a str>,
    /// The encoded signature, when the call had one.
    pub(super) signature: Option<&'a str>,
}

/// The start of every id this adapter hands out.
pub(super) const CALL_ID_PREFIX: &str = "call_g";

impl<'a> CallId<'a> {
    /// Builds a client-facing id.
    pub(super) fn encode(
        gemini_id: Option<&str>,
        generated: &str,
        signature: Option<&str>,
    ) -> String {
        let (tag, core) = match gemini_id.filter(|id| !id.is_empty()) {
            Some(id) => ('i', id),
            None => ('r', generated),
        };
        let mut id = format!("{CALL_ID_PREFIX}{tag}{}_{core}", core.len());
        if let Some(encoded) = signature.and_then(encode_signature) {
            id.push('_');
            id.push_str(&encoded);
        }
        id
    }

    /// Reads an id this adapter made; `None` for any other id.
    pub(super) fn decode(id: &'a str) -> Option<Self> {
        let rest = id.strip_prefix(CALL_ID_PREFIX)?;
        let from_gemini = match rest.as_bytes().first()? {
            b'i' => true,
            b'r' => false,
            _ => return None,
        };
        let (digits, rest) = rest.get(1..)?.split_once('_')?;
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: usize = digits.parse().ok()?;
        let core = rest.get(..len).filter(|c| !c.is_empty())?;
        let signature = match rest.get(len..)? {
            "" => None,
            tail => Some(tail.strip_prefix('_').filter(|s| is_url_safe_base64(s))?),
        };
        Some(Self {
            gemini_id: from_gemini.then_some(core),
            signature,
        })
    }

    /// The signature in the standard base64 Gemini sent.
    pub(super) fn signature(&self) -> Option<Cow<'static, str>> {
        self.signature.map(|s| Cow::Owned(decode_signature(s)))
    }
}

/// Whether `s` is non-empty URL-safe base64 without padding.
pub(super) fn is_url_safe_base64(s: &str) -> bool {
    !s.is_empty()
        && s.len() % 4 != 1
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A base64 signature in the URL-safe alphabet without padding; `None` when it is not base64
/// (it then cannot travel in an id and the call will get the sentinel instead).
pub(super) fn encode_signature(signature: &str) -> Option<String> {
    let body = signature.trim_end_matches('=');
    let valid = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    if body.is_empty() || !valid || body.len() % 4 == 1 {
        return None;
    }
    Some(
        body.chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect(),
    )
}

/// The reverse of [`encode_signature`]: standard alphabet, padded. Gemini reads the field as
/// bytes, so this is the same signature even if it was sent URL-safe or unpadded.
pub(super) fn decode_signature(encoded: &str) -> String {
    let mut signature: String = encoded
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    signature
}

/// A stable made-up core for a call Gemini gave no id: a hash of the response id, the choice
/// and the call's position, so the same response always yields the same ids.
pub(super) fn generated_core(response_id: &str, choice: u32, call: usize) -> String {
    let mut hash = Fnv1a::default();
    hash.write(response_id.as_bytes());
    hash.write(&[0xff]);
    hash.write(&choice.to_le_bytes());
    hash.write(&(call as u64).to_le_bytes());
    format!("{:016x}", hash.finish())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::providers::gemini::fixtures::{answer, parsed, run_stream, stream_chat};

    use crate::providers::gemini::fixtures::{
        chat_body, request, request_error, request_with, target_with, user,
    };
    use crate::providers::gemini::request::SKIP_SIGNATURE;

    #[test]
    fn thought_signatures_round_trip_through_tool_call_ids() {
        let signature = "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pk=";
        let (body, _) = answer(json!({
            "candidates": [{"content": {"parts": [
                {"functionCall": {"name": "a", "args": {"x": 1}, "id": "gem_id-1"}, "thoughtSignature": signature},
                {"functionCall": {"name": "b", "args": {}}}
            ]}, "finishReason": "STOP"}],
            "responseId": "turn-1"
        }))
        .unwrap();
        let calls = body["choices"][0]["message"]["tool_calls"].clone();
        for call in calls.as_array().unwrap() {
            let id = call["id"].as_str().unwrap();
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{id}"
            );
        }
        let history = json!([
            user("go"),
            {"role": "assistant", "content": null, "tool_calls": calls},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "1"},
            {"role": "tool", "tool_call_id": calls[1]["id"], "content": "2"}
        ]);
        let next = request(chat_body(history, json!({})));
        assert_eq!(
            next["contents"][1]["parts"],
            json!([
                {"functionCall": {"name": "a", "args": {"x": 1}, "id": "gem_id-1"}, "thoughtSignature": signature},
                {"functionCall": {"name": "b", "args": {}}}
            ])
        );
        assert_eq!(
            next["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "a", "response": {"result": "1"}, "id": "gem_id-1"}},
                {"functionResponse": {"name": "b", "response": {"result": "2"}}}
            ])
        );
    }

    #[test]
    fn signatures_ride_on_extra_content_and_come_back_from_it() {
        let (body, _) = answer(json!({
            "candidates": [{"content": {"parts": [
                {"text": "Checking.", "thoughtSignature": "dGV4dA=="},
                {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "Y2FsbA=="}
            ]}, "finishReason": "STOP"}],
            "responseId": "turn-2"
        }))
        .unwrap();
        let message = &body["choices"][0]["message"];
        assert_eq!(
            message["extra_content"],
            json!({"google": {"thought_signature": "dGV4dA=="}})
        );
        let call = &message["tool_calls"][0];
        assert_eq!(
            call["extra_content"],
            json!({"google": {"thought_signature": "Y2FsbA=="}})
        );

        // The client's extra_content wins over the id; the text signature goes on the text.
        let history = json!([
            user("go"),
            {"role": "assistant", "content": "Checking.",
                "extra_content": {"google": {"thought_signature": "dGV4dA=="}},
                "tool_calls": [{"id": call["id"], "type": "function", "function": call["function"],
                    "extra_content": {"google": {"thought_signature": "b3RoZXI="}}}]},
            {"role": "tool", "tool_call_id": call["id"], "content": "ok"}
        ]);
        let next = request(chat_body(history, json!({})));
        assert_eq!(
            next["contents"][1]["parts"],
            json!([
                {"text": "Checking.", "thoughtSignature": "dGV4dA=="},
                {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "b3RoZXI="}
            ])
        );
    }

    #[test]
    fn stream_signatures_arrive_as_extra_content() {
        let (payloads, result) = run_stream(
            stream_chat(json!({})),
            &[
                r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}},"thoughtSignature":"Y2FsbA=="}]}}],"responseId":"s"}"#,
                r#"{"candidates":[{"content":{"parts":[{"text":"","thoughtSignature":"dGV4dA=="}]},"finishReason":"STOP"}],"responseId":"s"}"#,
            ],
        );
        result.unwrap();
        let chunks = parsed(&payloads);
        let call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            call["extra_content"],
            json!({"google": {"thought_signature": "Y2FsbA=="}})
        );
        assert_eq!(
            chunks[2]["choices"][0]["delta"],
            json!({"extra_content": {"google": {"thought_signature": "dGV4dA=="}}})
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn thinking_per_model_family() {
        let config = |model: &str, extra: Value| {
            let target = target_with("https://x", model, None);
            request_with(chat_body(json!([user("hi")]), extra), &target)
                .map(|body| body["generationConfig"]["thinkingConfig"].clone())
        };
        let effort = |e: &str| json!({"reasoning_effort": e});
        let cases = [
            (
                "gemini-3-flash-preview",
                "minimal",
                json!({"thinkingLevel": "minimal"}),
            ),
            (
                "gemini-3-flash-preview",
                "medium",
                json!({"thinkingLevel": "medium"}),
            ),
            (
                "gemini-3-flash-preview",
                "xhigh",
                json!({"thinkingLevel": "high"}),
            ),
            (
                "gemini-3-pro-preview",
                "minimal",
                json!({"thinkingLevel": "low"}),
            ),
            (
                "gemini-3-pro-preview",
                "medium",
                json!({"thinkingLevel": "high"}),
            ),
            (
                "gemini-3.1-pro-preview",
                "medium",
                json!({"thinkingLevel": "medium"}),
            ),
            (
                "models/gemini-2.5-pro",
                "minimal",
                json!({"thinkingBudget": 512}),
            ),
            ("gemini-2.5-flash", "none", json!({"thinkingBudget": 0})),
            ("gemini-2.5-flash", "low", json!({"thinkingBudget": 1024})),
            ("gemini-2.5-flash", "high", json!({"thinkingBudget": 24576})),
        ];
        for (model, level, expected) in cases {
            assert_eq!(
                config(model, effort(level)).unwrap(),
                expected,
                "{model} {level}"
            );
        }
        for model in [
            "gemini-2.5-pro",
            "gemini-3-flash-preview",
            "gemini-3-pro-preview",
        ] {
            let error = config(model, effort("none")).unwrap_err();
            assert_eq!(error["param"], "reasoning_effort", "{model}");
        }
        assert_eq!(
            config(
                "gemini-3-flash-preview",
                json!({"reasoning_effort": "low", "include_reasoning": true})
            )
            .unwrap(),
            json!({"thinkingLevel": "low", "includeThoughts": true})
        );
        assert_eq!(
            config("gemini-2.5-flash", json!({"include_reasoning": true})).unwrap(),
            json!({"includeThoughts": true})
        );
        assert!(
            config("gemini-2.5-flash", json!({"include_reasoning": false}))
                .unwrap()
                .is_null()
        );
    }

    #[test]
    fn tool_result_media_and_user_files() {
        let history = |model_turn: Value| {
            json!([
                user("look"),
                model_turn,
                {"role": "tool", "tool_call_id": "c1", "content": [
                    {"type": "text", "text": "two files"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
                ]}
            ])
        };
        let call = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]});
        let older = request(chat_body(history(call.clone()), json!({})));
        assert_eq!(
            older["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "shot", "response": {"result": "two files"}}},
                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}
            ])
        );
        let three = target_with("https://x", "gemini-3-flash-preview", None);
        let newer = request_with(chat_body(history(call), json!({})), &three).unwrap();
        assert_eq!(
            newer["contents"][2]["parts"],
            json!([{"functionResponse": {"name": "shot", "response": {"result": "two files"}, "parts": [
                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}
            ]}}])
        );

        let file = request(chat_body(
            json!([{"role": "user", "content": [{"type": "text", "text": "sum up"},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}}]}]),
            json!({}),
        ));
        assert_eq!(
            file["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}})
        );
        let by_id = request_error(chat_body(
            json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]),
            json!({}),
        ));
        assert_eq!(by_id["param"], "messages[0].content[0].file.file_data");
        assert!(
            by_id["message"].as_str().unwrap().contains("file_id"),
            "{by_id}"
        );
    }

    #[test]
    fn call_ids_encode_and_decode() {
        let cases: [(Option<&str>, Option<&str>); 5] = [
            (None, None),
            (Some("abc"), None),
            (Some("with_underscore_9_x"), Some("AAAA")),
            (Some("üñí ©ode"), Some("a+b/cw==")),
            (None, Some("-_-_AB")),
        ];
        for (gemini_id, signature) in cases {
            let id = CallId::encode(gemini_id, "0123456789abcdef", signature);
            let decoded = CallId::decode(&id).unwrap();
            assert_eq!(decoded.gemini_id, gemini_id, "{id}");
            assert_eq!(decoded.signature.is_some(), signature.is_some(), "{id}");
        }
        assert_eq!(
            CallId::decode(&CallId::encode(None, "0123456789abcdef", Some("a+b/cw==")))
                .unwrap()
                .signature()
                .unwrap(),
            "a+b/cw=="
        );
        assert_eq!(CallId::encode(None, "0123456789abcdef", None).len(), 26);
        // A signature that is not base64 cannot travel; the id still works without it.
        let plain = CallId::encode(None, "0123456789abcdef", Some("not base64!"));
        assert_eq!(CallId::decode(&plain).unwrap().signature, None);
        for foreign in [
            "call_abc123",
            "toolu_01A",
            "call_gx3_abc",
            "call_gi99_short",
            "call_gi3_abc_",
            "call_gi3_abc_!!",
            "call_gi_x",
            "",
            "call_gr0_",
        ] {
            assert_eq!(CallId::decode(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn first_unsigned_call_of_a_turn_gets_the_sentinel() {
        let ours = CallId::encode(None, "0123456789abcdef", None);
        let body = request(chat_body(
            json!([user("go"), {"role": "assistant", "tool_calls": [
                {"id": ours, "type": "function", "function": {"name": "a", "arguments": "{}"}}
            ]}, {"role": "tool", "tool_call_id": ours, "content": "ok"}]),
            json!({}),
        ));
        assert_eq!(
            body["contents"][1]["parts"][0]["thoughtSignature"],
            SKIP_SIGNATURE
        );
        assert!(
            body["contents"][2]["parts"][0]["functionResponse"]
                .get("id")
                .is_none()
        );
    }
}
