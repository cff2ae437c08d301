//! Each adapter's stream translation: whatever events arrive (well-formed ones from a small
//! grammar of each provider's wire, garbage, and both mixed), the translator never panics,
//! every frame it emits is one complete `data:` frame carrying JSON or `[DONE]`, output stays
//! within a multiple of the input, and on the OpenAI wire valid events pass byte for byte.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard::config::ProviderKind;
use switchboard::openai::ChatRequest;
use switchboard::providers::adapter_for;
use switchboard::sse::{SseDecoder, SseEvent, data_frame};

use super::cases;
use super::generate::{hostile_literal, identifier, is_json, json_value, targets, text};

/// Output of one event may be this many times its input, plus [`SLACK`]: adapters that
/// rebuild chunks repeat the stream's id and model in each and add role and finish chunks.
const FACTOR: usize = 4;
/// See [`FACTOR`].
const SLACK: usize = 4096;

/// Streaming request bodies: with and without the usage chunk, one and two choices.
const REQUESTS: [&str; 3] = [
    r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
    r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"n":2,"stream_options":{"include_usage":true}}"#,
];

fn event(name: Option<&str>, data: impl Into<Bytes>) -> SseEvent {
    SseEvent {
        name: name.map(|n| Bytes::copy_from_slice(n.as_bytes())),
        data: data.into(),
    }
}

/// Data as the decoder hands it out: never a CR (a line end), lines joined with LF.
fn decoder_shaped(mut data: Vec<u8>) -> Vec<u8> {
    data.iter_mut()
        .filter(|b| **b == b'\r')
        .for_each(|b| *b = b'\n');
    data
}

/// Checks that `frame` is one complete OpenAI SSE frame whose payload is JSON or `[DONE]`.
fn check_frame(frame: &[u8]) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(frame);
    let Some(lines) = frame.strip_suffix(b"\n\n") else {
        return Err(TestCaseError::fail(format!(
            "a frame without its blank line: {shown:?}"
        )));
    };
    prop_assert!(!frame.contains(&b'\r'), "a CR in a frame: {:?}", shown);
    for line in lines.split(|&b| b == b'\n') {
        prop_assert!(
            line.starts_with(b"data: "),
            "not a data line in {:?}",
            shown
        );
    }
    let mut decoder = SseDecoder::new(usize::MAX);
    decoder.push(frame);
    let decoded = decoder.next_event().ok().flatten();
    prop_assert!(
        decoder.finish().is_none(),
        "more than one event in {:?}",
        shown
    );
    let Some(decoded) = decoded else {
        return Err(TestCaseError::fail(format!("no event in {shown:?}")));
    };
    let payload = &decoded.data[..];
    prop_assert!(
        payload == b"[DONE]" || is_json(payload),
        "a payload that is neither JSON nor [DONE]: {:?}",
        shown
    );
    Ok(())
}

/// Runs `events` through a fresh translator of `kind` for the request `REQUESTS[request]`,
/// checking every frame and the output bound. Returns the frames of each event (until the
/// first `Err`) and whether `finish` succeeded.
fn translate(
    kind: ProviderKind,
    request: usize,
    events: &[SseEvent],
) -> Result<(Vec<Vec<Bytes>>, bool), TestCaseError> {
    let target = &targets()
        .iter()
        .find(|(k, _)| *k == kind)
        .expect("a target of every kind")
        .1;
    let chat = ChatRequest::parse(REQUESTS[request].as_bytes())
        .map_err(|e| TestCaseError::fail(format!("a fixture request was refused: {e}")))?;
    let mut translator = adapter_for(kind).stream(&chat, target);
    let mut outputs = Vec::new();
    for event in events {
        let mut out = Vec::new();
        let result = translator.event(event, &mut out);
        let size: usize = out.iter().map(Bytes::len).sum();
        let input = event.data.len() + event.name.as_ref().map_or(0, Bytes::len);
        prop_assert!(
            size <= FACTOR * input + SLACK,
            "{:?}: {} bytes out of an event of {}",
            kind,
            size,
            input
        );
        for frame in &out {
            check_frame(frame)?;
        }
        outputs.push(out);
        if result.is_err() {
            return Ok((outputs, false));
        }
    }
    let mut out = Vec::new();
    let finished = translator.finish(&mut out).is_ok();
    prop_assert!(out.iter().map(Bytes::len).sum::<usize>() <= SLACK);
    for frame in &out {
        check_frame(frame)?;
    }
    outputs.push(out);
    Ok((outputs, finished))
}

// === the OpenAI wire (openai, qwen) and Mistral's variant of it ===

/// A usage object with consistent totals.
fn usage() -> impl Strategy<Value = Value> {
    (
        0u64..100_000,
        0u64..100_000,
        proptest::option::of(0u64..1000),
    )
        .prop_map(|(p, c, cached)| {
            let mut usage =
                json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
            if let Some(cached) = cached {
                usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
            }
            usage
        })
}

/// A tool call delta as OpenAI sends it (Mistral: whole, arguments possibly an object).
fn tool_call_delta(mistral: bool) -> impl Strategy<Value = Value> {
    let arguments = if mistral {
        prop_oneof![
            text().prop_map(Value::from),
            proptest::collection::btree_map(identifier(), json_value(), 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
        .boxed()
    } else {
        text().prop_map(Value::from).boxed()
    };
    (
        0u32..3,
        "[A-Za-z0-9]{9}|call_[a-z0-9]{8}",
        identifier(),
        arguments,
    )
        .prop_map(|(index, id, name, arguments)| {
            json!([{"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": arguments}}])
        })
}

/// One chunk of an OpenAI-wire (or Mistral) stream, as JSON text, compact or pretty (an
/// upstream may spread one event over several `data:` lines), sometimes with literals that
/// `serde_json::Value` would not write back the same (`1000.00`, `\u00e9`).
fn openai_chunk(mistral: bool) -> impl Strategy<Value = String> {
    let content = if mistral {
        prop_oneof![
            text().prop_map(Value::from),
            text().prop_map(|t| json!([{"type": "text", "text": t}])),
        ]
        .boxed()
    } else {
        text().prop_map(Value::from).boxed()
    };
    let delta = prop_oneof![
        Just(json!({"role": "assistant", "content": ""})),
        content.prop_map(|c| json!({"content": c})),
        text().prop_map(|t| json!({"reasoning_content": t})),
        tool_call_delta(mistral).prop_map(|calls| json!({"tool_calls": calls})),
        Just(json!({})),
    ];
    let finish = proptest::option::of(prop_oneof![
        Just("stop"),
        Just("length"),
        Just("tool_calls")
    ]);
    let choice = (0u32..2, delta, finish).prop_map(
        |(index, delta, finish)| json!({"index": index, "delta": delta, "finish_reason": finish}),
    );
    let chunk = (
        vec(choice, 0..3),
        proptest::option::of(usage()),
        any::<bool>(),
    )
        .prop_map(|(choices, usage, null_usage)| {
            let mut chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                   "created": 1_700_000_000, "model": "m", "choices": choices});
            match usage {
                Some(usage) => chunk["usage"] = usage,
                None if null_usage => chunk["usage"] = Value::Null,
                None => {}
            }
            chunk
        });
    let literal = prop_oneof![
        Just(r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"caf\u00e9 1000.00"},"finish_reason":null}],"x_price":1000.00}"#.to_owned()),
        Just(r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"\ud83d\ude00"}}],"system_fingerprint":null}"#.to_owned()),
    ];
    prop_oneof![
        6 => (chunk, any::<bool>()).prop_map(|(chunk, pretty)| if pretty {
            serde_json::to_string_pretty(&chunk).unwrap_or_default()
        } else {
            chunk.to_string()
        }),
        1 => literal,
    ]
}

/// A well-formed OpenAI-wire event: a chunk or `[DONE]`.
fn openai_event(mistral: bool) -> impl Strategy<Value = SseEvent> {
    prop_oneof![
        8 => openai_chunk(mistral).prop_map(|data| event(None, data)),
        1 => Just(event(None, "[DONE]")),
    ]
}

// === Anthropic ===

/// One Messages-stream event; the name is the event's `type`, or absent.
fn anthropic_event() -> impl Strategy<Value = SseEvent> {
    let start = (identifier(), 0u64..1000).prop_map(|(id, input)| {
        json!({"type": "message_start", "message": {"id": format!("msg_{id}"), "type": "message",
               "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
               "usage": {"input_tokens": input, "output_tokens": 1,
                         "cache_read_input_tokens": 0}}})
    });
    let block = prop_oneof![
        Just(json!({"type": "text", "text": ""})),
        Just(json!({"type": "thinking", "thinking": ""})),
        (identifier(), identifier()).prop_map(|(id, name)| {
            json!({"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}})
        }),
    ];
    let block_start = (0u64..3, block)
        .prop_map(|(index, block)| json!({"type": "content_block_start", "index": index, "content_block": block}));
    let delta = prop_oneof![
        text().prop_map(|t| json!({"type": "text_delta", "text": t})),
        text().prop_map(|t| json!({"type": "thinking_delta", "thinking": t})),
        text().prop_map(|t| json!({"type": "input_json_delta", "partial_json": t})),
        Just(json!({"type": "signature_delta", "signature": "c2ln"})),
    ];
    let block_delta = (0u64..3, delta).prop_map(
        |(index, delta)| json!({"type": "content_block_delta", "index": index, "delta": delta}),
    );
    let stop_reason = prop_oneof![
        Just("end_turn"),
        Just("max_tokens"),
        Just("tool_use"),
        Just("stop_sequence")
    ];
    let message_delta = (stop_reason, 0u64..1000).prop_map(|(reason, output)| {
        json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null},
               "usage": {"output_tokens": output}})
    });
    let event_json = prop_oneof![
        2 => start,
        2 => block_start,
        4 => block_delta,
        1 => (0u64..3).prop_map(|index| json!({"type": "content_block_stop", "index": index})),
        2 => message_delta,
        1 => Just(json!({"type": "message_stop"})),
        1 => Just(json!({"type": "ping"})),
        1 => Just(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ];
    (event_json, any::<bool>()).prop_map(|(data, named)| {
        let name = data["type"].as_str().filter(|_| named).map(str::to_owned);
        event(name.as_deref(), data.to_string())
    })
}

/// A whole, well-ordered Messages stream: start, blocks with their deltas, delta, stop.
fn anthropic_stream() -> impl Strategy<Value = Vec<SseEvent>> {
    let block = (any::<bool>(), vec(text(), 0..4), identifier());
    vec(block, 0..3).prop_map(|blocks| {
        let mut events = vec![json!({"type": "message_start", "message": {"id": "msg_1",
            "model": "claude-sonnet-4-5", "usage": {"input_tokens": 5, "output_tokens": 1}}})];
        for (index, (tool, pieces, name)) in blocks.into_iter().enumerate() {
            let (block, delta) = if tool {
                (json!({"type": "tool_use", "id": format!("toolu_{index}"), "name": name, "input": {}}),
                 "input_json_delta")
            } else {
                (json!({"type": "text", "text": ""}), "text_delta")
            };
            events.push(json!({"type": "content_block_start", "index": index, "content_block": block}));
            for piece in pieces {
                let field = if tool { "partial_json" } else { "text" };
                events.push(json!({"type": "content_block_delta", "index": index,
                                   "delta": {"type": delta, field: piece}}));
            }
            events.push(json!({"type": "content_block_stop", "index": index}));
        }
        events.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 9}}));
        events.push(json!({"type": "message_stop"}));
        events
            .into_iter()
            .map(|data| {
                let name = data["type"].as_str().map(str::to_owned);
                event(name.as_deref(), data.to_string())
            })
            .collect()
    })
}

// === Gemini ===

/// One `streamGenerateContent` chunk (`alt=sse`).
fn gemini_event() -> impl Strategy<Value = SseEvent> {
    let part = prop_oneof![
        text().prop_map(|t| json!({"text": t})),
        text().prop_map(|t| json!({"text": t, "thought": true})),
        (identifier(), proptest::collection::btree_map(identifier(), json_value(), 0..3)).prop_map(
            |(name, args)| json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": "c2ln"}),
        ),
    ];
    let finish = proptest::option::of(prop_oneof![
        Just("STOP"),
        Just("MAX_TOKENS"),
        Just("SAFETY")
    ]);
    let candidate = (vec(part, 0..3), finish, proptest::option::of(0u32..3)).prop_map(
        |(parts, finish, index)| {
            let mut candidate = json!({"content": {"parts": parts, "role": "model"}});
            if let Some(finish) = finish {
                candidate["finishReason"] = Value::from(finish);
            }
            if let Some(index) = index {
                candidate["index"] = Value::from(index);
            }
            candidate
        },
    );
    let usage = (0u64..1000, 0u64..1000, 0u64..100).prop_map(|(p, c, t)| {
        json!({"promptTokenCount": p, "candidatesTokenCount": c, "thoughtsTokenCount": t,
               "totalTokenCount": p + c + t})
    });
    let chunk = (
        vec(candidate, 0..3),
        proptest::option::of(usage),
        any::<bool>(),
    )
        .prop_map(|(candidates, usage, blocked)| {
            let mut chunk = json!({"candidates": candidates, "modelVersion": "gemini-2.5-flash",
                                   "responseId": "r1"});
            if let Some(usage) = usage {
                chunk["usageMetadata"] = usage;
            }
            if blocked {
                chunk["promptFeedback"] = json!({"blockReason": "SAFETY"});
            }
            chunk.to_string()
        });
    let error = Just(
        r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#
            .to_owned(),
    );
    prop_oneof![8 => chunk, 1 => error].prop_map(|data| event(None, data))
}

// === garbage ===

/// Events no provider should send: random bytes, JSON of the wrong shape, hostile literals,
/// truncated or padded valid events, `[DONE]` with trailing bytes.
fn garbage() -> impl Strategy<Value = SseEvent> {
    let truncated = (openai_chunk(false), any::<proptest::sample::Index>())
        .prop_map(|(data, at)| data.as_bytes()[..at.index(data.len() + 1)].to_vec());
    let data = prop_oneof![
        vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        hostile_literal().prop_map(String::into_bytes),
        truncated,
        openai_chunk(false).prop_map(|data| format!("{data} trailing").into_bytes()),
        Just(b"[DONE] ".to_vec()),
        Just(vec![b'{', 0xff, 0xfe, b'}']),
        Just(br#"{"choices":[{"delta":{"content":"\xc3"}}]}"#.to_vec()),
    ];
    let name = proptest::option::of(prop_oneof![
        Just("message_start"),
        Just("content_block_delta"),
        Just("message_stop"),
        Just("error"),
        Just("ping"),
    ]);
    (name, data).prop_map(|(name, data)| event(name, decoder_shaped(data)))
}

/// A kind's grammar events and garbage, mixed.
fn mixed(kind: ProviderKind) -> BoxedStrategy<Vec<SseEvent>> {
    let valid = match kind {
        ProviderKind::OpenAi | ProviderKind::Qwen | ProviderKind::Mock => {
            openai_event(false).boxed()
        }
        ProviderKind::Mistral => openai_event(true).boxed(),
        ProviderKind::Anthropic => anthropic_event().boxed(),
        ProviderKind::Gemini => gemini_event().boxed(),
    };
    vec(prop_oneof![3 => valid, 1 => garbage()], 0..12).boxed()
}

const KINDS: [ProviderKind; 5] = [
    ProviderKind::OpenAi,
    ProviderKind::Qwen,
    ProviderKind::Mistral,
    ProviderKind::Anthropic,
    ProviderKind::Gemini,
];

fn kind_and_events() -> impl Strategy<Value = (ProviderKind, Vec<SseEvent>)> {
    proptest::sample::select(&KINDS[..]).prop_flat_map(|kind| (Just(kind), mixed(kind)))
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn fuzz_streams_any_events_give_valid_frames_or_an_error(
        (kind, events) in kind_and_events(),
        request in 0..REQUESTS.len(),
    ) {
        translate(kind, request, &events)?;
    }

    #[test]
    fn fuzz_streams_garbage_gives_valid_frames_or_an_error(
        kind in proptest::sample::select(&KINDS[..]),
        events in vec(garbage(), 1..6),
        request in 0..REQUESTS.len(),
    ) {
        translate(kind, request, &events)?;
    }

    #[test]
    fn fuzz_streams_openai_wire_passes_valid_events_byte_for_byte(
        events in vec(openai_event(false), 0..12),
        qwen in any::<bool>(),
        request in 0..REQUESTS.len(),
    ) {
        let kind = if qwen { ProviderKind::Qwen } else { ProviderKind::OpenAi };
        let (outputs, finished) = translate(kind, request, &events)?;
        let done_at = events.iter().position(|e| &e.data[..] == b"[DONE]");
        prop_assert_eq!(finished, done_at.is_some());
        for (i, (event, out)) in events.iter().zip(&outputs).enumerate() {
            if done_at.is_some_and(|done| i > done) {
                prop_assert!(out.is_empty(), "an event after [DONE] was forwarded");
                continue;
            }
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(&out[0], &data_frame(&event.data));
            let mut decoder = SseDecoder::new(usize::MAX);
            decoder.push(&out[0]);
            let decoded = decoder.next_event().ok().flatten().map(|e| e.data);
            prop_assert_eq!(decoded.as_ref(), Some(&event.data), "the client reads other bytes");
        }
    }

    #[test]
    fn fuzz_streams_whole_anthropic_messages_end_with_done(
        events in anthropic_stream(),
        request in 0..REQUESTS.len(),
    ) {
        let (outputs, finished) = translate(ProviderKind::Anthropic, request, &events)?;
        prop_assert!(finished);
        let last = outputs.iter().flatten().last().cloned();
        prop_assert_eq!(last, Some(data_frame(b"[DONE]")));
    }
}
