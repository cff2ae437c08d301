//! The per-request translation work in a loop, for `scripts/bench-translate.sh` to count
//! with callgrind: `translate_loop N small|large parse|KIND` parses the client's body N times
//! and, unless the last argument is `parse`, has KIND's adapter translate it each time.
//! Run once with N and once with 0, the difference over N is the work per request,
//! whatever the process costs to start.

#![expect(
    clippy::expect_used,
    reason = "a benchmark driver: a bad argument or fixture should stop it loudly"
)]

#[path = "../benches/common/mod.rs"]
#[expect(
    dead_code,
    reason = "the benches' shared fixtures, only some used here"
)]
mod common;

use std::hint::black_box;

use serde_json::json;
use switchboard::openai::ChatRequest;
use switchboard::providers::adapter_for;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).expect("N rounds");
    let size = args.next().expect("small or large");
    let kind = args.next().expect("parse or a provider kind");
    let body = match size.as_str() {
        "small" => common::body(
            json!({"model": "chat", "messages": [{"role": "user", "content": "What is the capital of Portugal?"}]}),
            json!({}),
        ),
        _ => common::body(common::large_request(), json!({})),
    };
    let target = common::targets()
        .into_iter()
        .find(|(k, _)| k.as_str() == kind);
    for _ in 0..rounds {
        let chat = ChatRequest::parse(black_box(&body)).expect("a valid request");
        if let Some((kind, target)) = &target {
            let request = adapter_for(*kind).request(&chat, target);
            black_box(request.expect("a translatable request"));
        }
    }
}
