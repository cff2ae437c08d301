//! The OpenAI Responses API (`POST /v1/responses`), stateless, on top of the chat pipeline.
//!
//! A Responses request is rewritten once into a Chat Completions body ([`request`]), which
//! the chat handler then serves like any other: the same validation, routing, failover,
//! limits, accounting, metrics and usage log. The chat answer is written back as a
//! `response` object ([`response`]), and a chat stream's `data:` frames become the typed
//! Responses events ([`stream`]).
//!
//! Nothing is stored: `store` is accepted and answered as `false`, and whatever needs a
//! stored response (`previous_response_id`, `conversation`, `background`, `item_reference`,
//! stored prompts) is refused with a 400 that says to send the conversation as input items.

pub mod request;
pub mod response;
pub mod stream;

use serde::Serialize;
use serde_json::value::RawValue;

pub use request::{Converted, to_chat};
pub use response::from_chat;
pub use stream::ResponsesStream;

/// What the client asked for that the `response` object echoes back, taken from the request
/// (the SDKs expect these members in every `response`).
#[derive(Debug, Default)]
pub struct Echo {
    /// The response's id (`resp_…`), made up front so a stream's events can carry it.
    pub id: String,
    /// The item ids' suffix: the id without `resp_`.
    pub suffix: String,
    /// `instructions`, as sent.
    pub instructions: Option<Box<RawValue>>,
    /// `tools`, as sent (Responses' flat shape).
    pub tools: Option<Box<RawValue>>,
    /// `tool_choice`, as sent.
    pub tool_choice: Option<Box<RawValue>>,
    /// `text`, as sent.
    pub text: Option<Box<RawValue>>,
    /// `metadata`, as sent.
    pub metadata: Option<Box<RawValue>>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `max_output_tokens`.
    pub max_output_tokens: Option<u32>,
    /// `parallel_tool_calls` (OpenAI's default is true).
    pub parallel_tool_calls: Option<bool>,
    /// `reasoning.effort`.
    pub reasoning_effort: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// The model the client named (the answer's model replaces it when known).
    pub model: String,
    /// When the request arrived, Unix seconds.
    pub created_at: u64,
}

impl Echo {
    /// A fresh response id and item suffix.
    fn new_ids(&mut self) {
        self.suffix = format!("{:032x}", fastrand::u128(..));
        self.id = format!("resp_{}", self.suffix);
    }

    /// The id of the response's message item.
    pub fn message_id(&self) -> String {
        format!("msg_{}", self.suffix)
    }

    /// The id of the response's reasoning item.
    pub fn reasoning_id(&self) -> String {
        format!("rs_{}", self.suffix)
    }

    /// The id of the response's `index`th function call item.
    pub fn call_item_id(&self, index: usize) -> String {
        format!("fc_{}_{index}", self.suffix)
    }
}

/// `usage` of a `response`, with the router's cost when the target is priced.
#[derive(Debug, Serialize)]
pub struct ResponseUsage {
    /// All input tokens, cache reads included.
    pub input_tokens: u64,
    /// The input's breakdown.
    pub input_tokens_details: InputDetails,
    /// All output tokens, reasoning included.
    pub output_tokens: u64,
    /// The output's breakdown.
    pub output_tokens_details: OutputDetails,
    /// Input plus output.
    pub total_tokens: u64,
    /// What the request cost, from the router's accounting; absent when unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostOut>,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Serialize)]
pub struct InputDetails {
    /// Read from the provider's cache.
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Serialize)]
pub struct OutputDetails {
    /// Spent on reasoning.
    pub reasoning_tokens: u64,
}

/// `usage.cost`: the amount as a string, as in chat's usage chunk.
#[derive(Debug, Serialize)]
pub struct CostOut {
    /// Exact decimal amount.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
}

impl ResponseUsage {
    /// The Responses usage of the router's normalised token counts and cost.
    pub fn new(usage: &crate::openai::Usage, cost: Option<&crate::accounting::Cost>) -> Self {
        Self {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: InputDetails {
                cached_tokens: usage.cached_tokens,
            },
            output_tokens: usage.completion_tokens,
            output_tokens_details: OutputDetails {
                reasoning_tokens: usage.reasoning_tokens,
            },
            total_tokens: usage.total_tokens,
            cost: cost.map(|cost| CostOut {
                amount: cost.amount_text(),
                currency: cost.currency.to_string(),
            }),
        }
    }
}
