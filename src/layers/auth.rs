//! Who is calling: the client key presented as `Authorization: Bearer`, checked against the
//! request's snapshot (see [`crate::auth`]), or 401; for admin endpoints an `admin = true`
//! key, or 403. The key's *name* goes into the request's context, and into its record, so a
//! later refusal (413) is still logged under the key.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::auth;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::layers::context::RequestContext;

/// Which keys may pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any configured client key (or anyone, when none are configured).
    Client,
    /// A key with `admin = true`; never open.
    Admin,
}

/// Lets through only requests with the key `need` asks for.
#[derive(Clone, Copy, Debug)]
pub struct AuthLayer {
    need: Need,
}

impl AuthLayer {
    /// Checks for `need`.
    pub fn new(need: Need) -> Self {
        Self { need }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            need: self.need,
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone, Debug)]
pub struct Authenticated<S> {
    inner: S,
    need: Need,
}

impl<S, B> Service<Request<B>> for Authenticated<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ResponseBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let checked = match (RequestContext::of(&request), self.need) {
            (None, _) => Err(ApiError::Internal("request without context".into())),
            (Some(context), Need::Client) => {
                auth::authenticate(&context.snapshot.keys, request.headers())
            }
            (Some(context), Need::Admin) => {
                auth::authorize_admin(&context.snapshot.keys, request.headers())
            }
        };
        let name = match checked {
            Ok(name) => name,
            Err(error) => return Either::Left(ready(Ok(error.into_response()))),
        };
        if let Some(context) = RequestContext::of_mut(&mut request) {
            if let Some(slot) = &context.record {
                slot.update(|record| record.key = name.clone());
            }
            context.caller = Some(name);
        }
        Either::Right(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::layers::testing::{error_json, snapshot_with};

    /// The name the inner service saw, or the refusal.
    async fn call(need: Need, keys: &str, bearer: Option<&str>) -> Response<ResponseBody> {
        let inner = service_fn(|request: Request<()>| async move {
            let name = RequestContext::of(&request)
                .and_then(|context| context.caller.as_deref())
                .unwrap_or_default()
                .to_owned();
            Ok::<_, Infallible>(Response::new(ResponseBody::full(name)))
        });
        let mut request = Request::new(());
        if let Some(bearer) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        }
        let env = |name: &str| {
            (name == "WEB")
                .then(|| "s-web".to_owned())
                .or_else(|| (name == "OPS").then(|| "s-ops".to_owned()))
        };
        request
            .extensions_mut()
            .insert(RequestContext::now(snapshot_with(keys, &env)));
        AuthLayer::new(need)
            .layer(inner)
            .oneshot(request)
            .await
            .unwrap()
    }

    const KEYS: &str = "[[keys]]\nname = \"web\"\nkey_env = \"WEB\"\n[[keys]]\nname = \"ops\"\nkey_env = \"OPS\"\nadmin = true\n";

    #[tokio::test]
    async fn a_valid_key_passes_with_its_name() {
        let response = call(Need::Client, KEYS, Some("s-web")).await;
        assert_eq!(crate::layers::testing::body(response).await, "web");
        let response = call(Need::Admin, KEYS, Some("s-ops")).await;
        assert_eq!(crate::layers::testing::body(response).await, "ops");
        let open = call(Need::Client, "", None).await;
        assert_eq!(crate::layers::testing::body(open).await, "anonymous");
    }

    #[tokio::test]
    async fn a_missing_or_wrong_key_is_401_and_a_client_key_on_admin_is_403() {
        for bearer in [None, Some("nope")] {
            let response = call(Need::Client, KEYS, bearer).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                error_json(response).await["error"]["code"],
                "invalid_api_key"
            );
        }
        let response = call(Need::Admin, KEYS, Some("s-web")).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = call(Need::Admin, "", None).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
