//! The client-facing APIs a request can come through. Each request's record carries its
//! endpoint, so the usage log (`"endpoint"`) and the request metrics (the `endpoint` label)
//! can tell chat from embeddings and the endpoints still to come.

use serde::Serialize;

/// A front door of the router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    #[default]
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/messages` (Anthropic Messages ingress).
    Messages,
}

impl Endpoint {
    /// Every endpoint, in [`Endpoint::index`] order.
    pub const ALL: [Self; 4] = [
        Self::Chat,
        Self::Embeddings,
        Self::Responses,
        Self::Messages,
    ];

    /// The name in the usage log and in the metrics' `endpoint` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
            Self::Messages => "messages",
        }
    }

    /// A small dense number, for per-endpoint tables indexed without hashing.
    pub fn index(self) -> usize {
        match self {
            Self::Chat => 0,
            Self::Embeddings => 1,
            Self::Responses => 2,
            Self::Messages => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes_agree_with_all() {
        for (i, endpoint) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(endpoint.index(), i);
            let json = serde_json::to_string(&endpoint).unwrap();
            assert_eq!(json, format!("\"{}\"", endpoint.as_str()));
        }
    }
}
