//! Tool-call ids: Mistral's nine alphanumerics on the way out, the client's ids on the way back.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::json_scan::contains;
use crate::openai::ChatRequest;

/// Whether Mistral accepts `id` as a tool-call id: exactly nine ASCII letters and digits.
pub(super) fn is_mistral_id(id: &str) -> bool {
    id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Replaces a foreign id (`call_…`, `toolu_…`) with its Mistral id; valid ids stay as they are.
pub(super) fn to_mistral_id(id: &mut String) {
    if !is_mistral_id(id) {
        *id = hashed_id(id);
    }
}

/// Nine base62 digits of the id's SHA-256: deterministic, so the assistant turn and the tool
/// turn that answers it agree without shared state, and retries send the same body.
pub(super) fn hashed_id(id: &str) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::digest(id.as_bytes());
    let mut n = digest
        .iter()
        .take(16)
        .fold(0u128, |n, &b| (n << 8) | u128::from(b));
    (0..9)
        .map(|_| {
            let digit = DIGITS[(n % 62) as usize];
            n /= 62;
            char::from(digit)
        })
        .collect()
}

/// The request's Mistral ids that stand for foreign ids, each with the client's original.
pub(super) struct IdMap(HashMap<String, String>);

impl IdMap {
    /// Built from the request alone, so the request, response and stream sides agree.
    pub(super) fn of(chat: &ChatRequest<'_>) -> Self {
        let mut back = HashMap::new();
        for message in chat.messages() {
            let calls = message.tool_calls.iter().flatten().map(|call| &*call.id);
            for id in calls.chain(message.tool_call_id.as_deref()) {
                if !is_mistral_id(id) {
                    back.insert(hashed_id(id), id.to_owned());
                }
            }
        }
        Self(back)
    }

    /// The client's id behind a Mistral id, if the router minted it.
    pub(super) fn original(&self, mistral_id: &str) -> Option<&str> {
        self.0.get(mistral_id).map(String::as_str)
    }

    /// Whether any minted id occurs in `data` (a cheap pre-check before parsing).
    pub(super) fn occurs_in(&self, data: &[u8]) -> bool {
        self.0.keys().any(|id| contains(data, id.as_bytes()))
    }
}
