//! `x-request-id` on every request and answer: the client's own id when it is printable ASCII
//! of at most 128 characters, else a new one. The context layer ([`crate::layers::context`])
//! applies these rules and answers the id; this module says which client ids are usable and
//! how new ones are made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request-id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id kept; ids go into every log line and the usage log.
const MAX_CLIENT_ID: usize = 128;

/// Makes new ids: `req_`, the process's random prefix, then a counter shared by all
/// connections, so ids are unique within the process and unlikely to collide across replicas.
#[derive(Clone, Debug)]
pub struct MakeId {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl MakeId {
    /// A maker with a random process prefix.
    pub fn new() -> Self {
        Self {
            prefix: fastrand::u32(..),
            next: Arc::default(),
        }
    }

    /// A new id.
    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(generated_id(self.prefix, n))
            .unwrap_or_else(|_| HeaderValue::from_static("req_"))
    }
}

impl Default for MakeId {
    fn default() -> Self {
        Self::new()
    }
}

/// The id of a request with `headers`: the client's when it is usable (1 to 128 visible ASCII
/// characters: ids end up in logs, where a control character could forge a line), else a new
/// one from `ids`.
pub fn of_request(headers: &HeaderMap, ids: &MakeId) -> HeaderValue {
    match headers.get(&REQUEST_ID) {
        Some(id) if is_usable(id) => id.clone(),
        _ => ids.make(),
    }
}

/// Whether a client's id can be kept.
fn is_usable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_CLIENT_ID && bytes.iter().all(u8::is_ascii_graphic)
}

/// `req_` and 20 hex digits: the process's random prefix, then a counter. Written by hand:
/// `format!` with padded hex showed up in the per-request profile.
fn generated_id(prefix: u32, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(24);
    id.push_str("req_");
    let digits = (0..8)
        .rev()
        .map(|i| (u64::from(prefix) >> (i * 4)) & 0xf)
        .chain((0..12).rev().map(|i| (n >> (i * 4)) & 0xf));
    for digit in digits {
        id.push(char::from(HEX[digit as usize]));
    }
    id
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::body::ResponseBody;
    use crate::layers::context::{ContextLayer, RequestContext};

    #[test]
    fn generated_ids_are_the_prefix_then_the_counter_in_fixed_width_hex() {
        assert_eq!(
            generated_id(0xdead_beef, 0x1234),
            "req_deadbeef000000001234"
        );
        assert_eq!(generated_id(0, 0), "req_00000000000000000000");
        assert_eq!(
            generated_id(u32::MAX, 0xffff_ffff_ffff),
            "req_ffffffffffffffffffff"
        );
    }

    /// The id the inner service saw and the id the answer carries, through the context layer.
    async fn ids(sent: Option<&'static [u8]>) -> (String, String) {
        let inner = service_fn(|request: Request<()>| {
            let seen = RequestContext::of(&request)
                .unwrap()
                .request_id()
                .to_owned();
            std::future::ready(Ok::<_, Infallible>(Response::new(ResponseBody::full(seen))))
        });
        let config = Arc::new(arc_swap::ArcSwap::new(crate::layers::testing::snapshot("")));
        let service = ContextLayer::new(config, MakeId::new()).layer(inner);
        let mut request = Request::new(());
        if let Some(sent) = sent {
            request
                .headers_mut()
                .insert(REQUEST_ID, HeaderValue::from_bytes(sent).unwrap());
        }
        let response = service.oneshot(request).await.unwrap();
        let answered = response.headers()[REQUEST_ID].to_str().unwrap().to_owned();
        let seen = crate::layers::testing::body(response).await;
        (String::from_utf8(seen.to_vec()).unwrap(), answered)
    }

    #[tokio::test]
    async fn a_printable_client_id_is_kept_and_answered() {
        let (seen, answered) = ids(Some(b"checkout-42")).await;
        assert_eq!(
            (seen.as_str(), answered.as_str()),
            ("checkout-42", "checkout-42")
        );
    }

    #[tokio::test]
    async fn no_id_or_an_unusable_one_gets_a_new_id() {
        let long = "x".repeat(129).leak().as_bytes();
        for sent in [
            None,
            Some(&b"has space"[..]),
            Some(&b"tab\there"[..]),
            Some(long),
        ] {
            let (seen, answered) = ids(sent).await;
            assert!(seen.starts_with("req_"), "{sent:?} gave {seen}");
            assert_eq!(seen, answered);
        }
        let (kept, _) = ids(Some("x".repeat(128).leak().as_bytes())).await;
        assert_eq!(kept.len(), 128);
    }
}
