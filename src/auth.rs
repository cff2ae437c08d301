//! Client authentication: `Authorization: Bearer <key>` against the configured `[[keys]]`.
//!
//! Keys are stored and compared as SHA-256 digests, in constant time, and every configured key
//! is compared so the time taken says nothing about which one (nearly) matched. The result is
//! the key's *name*, which is all the rest of the router ever sees. Keys marked `admin = true`
//! may also use the `/admin/*` endpoints.

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
    find(keys, headers).map(|key| key.name.clone())
}

/// The name of the admin key presented in `headers`: 401 without a valid key, 403 for a key
/// without `admin = true`. A router with no keys is open to chat but never to admin endpoints:
/// anyone who can reach it could otherwise reload or read its configuration.
pub fn authorize_admin(keys: &[ClientKey], headers: &HeaderMap) -> Result<Arc<str>, ApiError> {
    if keys.is_empty() {
        return Err(ApiError::Forbidden {
            message: "Admin endpoints need a client key with `admin = true` in [[keys]]; this \
                      router has no keys configured, so they are refused."
                .to_owned(),
            code: "admin_key_required",
        });
    }
    let key = find(keys, headers)?;
    if !key.admin {
        return Err(ApiError::Forbidden {
            message: format!(
                "The key `{}` is not an admin key; admin endpoints need a key with \
                 `admin = true` in [[keys]].",
                key.name
            ),
            code: "admin_key_required",
        });
    }
    Ok(key.name.clone())
}

/// The configured key whose secret is presented as `Authorization: Bearer`, or 401.
fn find<'k>(keys: &'k [ClientKey], headers: &HeaderMap) -> Result<&'k ClientKey, ApiError> {
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
    found.ok_or(ApiError::Unauthorized)
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
            admin: name.starts_with("admin"),
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
            admin: true,
        };
        let keys = [key("web", "s1"), inactive];
        for headers in [bearer("s3"), HeaderMap::new(), bearer("")] {
            assert!(matches!(
                authenticate(&keys, &headers),
                Err(ApiError::Unauthorized)
            ));
        }
        assert!(matches!(
            authorize_admin(&keys, &HeaderMap::new()),
            Err(ApiError::Unauthorized)
        ));
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic czE="));
        assert!(authenticate(&keys, &basic).is_err());
    }

    #[test]
    fn admin_endpoints_need_an_admin_key() {
        let keys = [key("web", "s1"), key("admin-ops", "s2")];
        assert_eq!(
            &*authorize_admin(&keys, &bearer("s2")).unwrap(),
            "admin-ops"
        );
        let refused = authorize_admin(&keys, &bearer("s1")).unwrap_err();
        assert_eq!(refused.status(), http::StatusCode::FORBIDDEN);
        assert!(refused.to_string().contains("admin = true"), "{refused}");
        let open = authorize_admin(&[], &HeaderMap::new()).unwrap_err();
        assert_eq!(open.status(), http::StatusCode::FORBIDDEN);
        assert!(open.to_string().contains("no keys configured"), "{open}");
    }
}
