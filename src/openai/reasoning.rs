//! What a reasoning model needs back on the next turn, in the OpenAI-compatible fields other
//! gateways use, so a tool loop through the router keeps its signed reasoning.
//!
//! - Claude's extended thinking comes back on the assistant message as `thinking_blocks`
//!   (each `thinking` block with its `signature`, or `redacted_thinking` with its `data`),
//!   the field LiteLLM and other OpenAI-compatible gateways use; `reasoning_content` carries
//!   the readable text, as DeepSeek and Qwen name it.
//! - Gemini's thought signatures ride on `extra_content.google.thought_signature`, the field
//!   Google's own OpenAI-compatible endpoint uses, on a tool call or the message itself.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One block of Claude's extended thinking, as the client echoes it back.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock<'a> {
    /// Readable thinking with the signature that vouches for it.
    Thinking {
        /// The thinking text, as Claude wrote it.
        #[serde(borrow)]
        thinking: Cow<'a, str>,
        /// Claude's signature over it; required to send the block back.
        #[serde(borrow)]
        signature: Cow<'a, str>,
    },
    /// Thinking Claude's safety systems encrypted; only sent back, never shown.
    RedactedThinking {
        /// The encrypted thinking.
        #[serde(borrow)]
        data: Cow<'a, str>,
    },
}

/// `extra_content` on a tool call or an assistant message.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ExtraContent<'a> {
    /// Google's part.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleExtra<'a>>,
}

/// `extra_content.google`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct GoogleExtra<'a> {
    /// Gemini's `thoughtSignature` of the part this rides on.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<Cow<'a, str>>,
}

impl<'a> ExtraContent<'a> {
    /// `{"google":{"thought_signature":...}}`.
    pub fn thought_signature_of(signature: Cow<'a, str>) -> Self {
        Self {
            google: Some(GoogleExtra {
                thought_signature: Some(signature),
            }),
        }
    }

    /// The Gemini thought signature, when there is one.
    pub fn thought_signature(&self) -> Option<&str> {
        self.google.as_ref()?.thought_signature.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_blocks_round_trip_byte_for_byte() {
        let json = r#"[{"type":"thinking","thinking":"Let me see","signature":"EqQB"},{"type":"redacted_thinking","data":"EmwK"}]"#;
        let blocks: Vec<ThinkingBlock<'_>> = serde_json::from_str(json).unwrap();
        assert!(
            matches!(&blocks[0], ThinkingBlock::Thinking { signature, .. } if signature == "EqQB")
        );
        assert_eq!(serde_json::to_string(&blocks).unwrap(), json);
    }

    #[test]
    fn extra_content_reads_the_google_signature() {
        let extra: ExtraContent<'_> =
            serde_json::from_str(r#"{"google":{"thought_signature":"c2ln"}}"#).unwrap();
        assert_eq!(extra.thought_signature(), Some("c2ln"));
        assert_eq!(ExtraContent::default().thought_signature(), None);
    }
}
