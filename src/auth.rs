//! Client authentication: `Authorization: Bearer <key>` against the configured `[[keys]]`.
//!
//! Keys are stored and compared as SHA-256 digests, in constant time, and every configured key
//! is compared so the time taken says nothing about which one (nearly) matched. The result is
//! the key's *name*, which is all the rest of the router ever sees.

use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::config::ClientKey;
use crate::error::ApiError;

/// The name used for requests when no keys are configured.
pub const ANONYMOUS: &str = "anonymous";

/// The name of the key presented in `headers`, or 401.
pub fn authenticate(keys: &[ClientKey], headers: &HeaderMap) -> Result<Arc<str>, ApiError> {
    if keys.is_empty() {
        return Ok(Arc::from(ANONYMOUS));
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found: Option<&ClientKey> = None;
    for key in keys {
        let Some(expected) = &key.digest else {
            continue;
        };
        let matches: Choice = expected.ct_eq(&digest);
        if bool::from(matches) {
            found = Some(key);
        }
    }
    found
        .map(|key| key.name.clone())
        .ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn key(name: &str, secret: &str) -> ClientKey {
        ClientKey {
            name: Arc::from(name),
            digest: Some(Sha256::digest(secret.as_bytes()).into()),
            source: String::new(),
            limits: Default::default(),
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn no_keys_means_open() {
        assert_eq!(&*authenticate(&[], &HeaderMap::new()).unwrap(), ANONYMOUS);
    }

    #[test]
    fn the_right_key_gives_its_name() {
        let keys = [key("web", "s1"), key("batch", "s2")];
        assert_eq!(&*authenticate(&keys, &bearer("s2")).unwrap(), "batch");
    }

    #[test]
    fn wrong_missing_or_inactive_keys_are_refused() {
        let inactive = ClientKey {
            name: Arc::from("off"),
            digest: None,
            source: String::new(),
            limits: Default::default(),
        };
        let keys = [key("web", "s1"), inactive];
        for headers in [bearer("s3"), HeaderMap::new(), bearer("")] {
            assert!(matches!(
                authenticate(&keys, &headers),
                Err(ApiError::Unauthorized)
            ));
        }
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic czE="));
        assert!(authenticate(&keys, &basic).is_err());
    }
}
