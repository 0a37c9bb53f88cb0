//! The handlers served over HTTP (`#[on(http = "POST /orders")]`,
//! `[http.endpoints.<handler>]`):
//! - `endpoint`: which handlers are served, where, for whom;
//! - `request`: a request as a record (CloudEvents HTTP binding);
//! - this module: the route that checks the caller, bounds the requests in
//!   flight, dispatches the record and answers with the replies or a
//!   [`Problem`].

pub(crate) mod endpoint;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};

use crate::dispatch::direct::DirectFailure;
use crate::dispatch::Shared;
use crate::error::FailureKind;
use crate::http::auth::Auth;
use crate::http::problem::Problem;
use crate::metrics as m;
pub(crate) use endpoint::Endpoint;

/// What every endpoint shares.
pub(crate) struct Api {
    pub(crate) shared: Arc<Shared>,
    pub(crate) auth: Option<Arc<Auth>>,
    limit: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

impl Api {
    pub(crate) fn new(shared: Arc<Shared>, auth: Option<Arc<Auth>>) -> Api {
        let http = &shared.config.http;
        Api {
            limit: Arc::new(tokio::sync::Semaphore::new(http.max_in_flight.max(1))),
            timeout: http.request_timeout,
            shared,
            auth,
        }
    }
}

#[derive(Clone)]
struct Served {
    api: Arc<Api>,
    endpoint: Arc<Endpoint>,
}

/// One route per endpoint.
pub(crate) fn router(api: Arc<Api>, endpoints: &[Endpoint]) -> Router {
    let mut router = Router::new();
    for e in endpoints {
        let filter = MethodFilter::try_from(e.method.clone())
            .expect("endpoint::parse_route admits only POST, PUT and PATCH");
        let served = Served {
            api: api.clone(),
            endpoint: Arc::new(e.clone()),
        };
        router = router.route(&e.path, on(filter, serve).with_state(served));
    }
    router
}

async fn serve(
    State(s): State<Served>,
    params: RawPathParams,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let e = &s.endpoint;
    let (response, kind) = match answer(&s, params, &headers, &body).await {
        Ok(replies) => (
            Json(serde_json::json!({ "replies": replies })).into_response(),
            "ok",
        ),
        Err(p) => {
            let kind = p.kind;
            (p.into_response(), kind)
        }
    };
    metrics::counter!(
        m::HTTP_REQUESTS,
        "handler" => e.handler.clone(),
        "status" => response.status().as_u16().to_string(),
        "kind" => kind
    )
    .increment(1);
    response
}

async fn answer(
    s: &Served,
    params: RawPathParams,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<crate::dispatch::direct::ShownReply>, Problem> {
    let (api, e) = (&s.api, &s.endpoint);
    if let Some(auth) = &api.auth {
        auth.check(headers, &e.roles)?;
    }
    let Ok(_permit) = api.limit.clone().try_acquire_owned() else {
        return Err(Problem::unavailable(
            "overloaded",
            format!(
                "{} requests are in flight already ([http] max_in_flight); retry shortly",
                api.shared.config.http.max_in_flight
            ),
            1,
        ));
    };
    let key = e
        .key_param
        .as_ref()
        .and_then(|name| params.iter().find(|(k, _)| k == name))
        .map(|(_, v)| v.to_owned());
    let (msg, event) = request::record(e, headers, body, key)?;
    let handled = api
        .shared
        .handle_direct(msg, e.topic_idx, event.as_deref(), e.publish, "http");
    match tokio::time::timeout(api.timeout, handled).await {
        Err(_) => Err(Problem::unavailable(
            "timeout",
            format!(
                "the request took longer than {:?} ([http] request_timeout); its replies may still be published",
                api.timeout
            ),
            1,
        )),
        Ok(Ok(replies)) => Ok(replies),
        Ok(Err(f)) => Err(problem(e, f)),
    }
}

/// What the caller is told of a failure: `400` for a body that does not
/// decode, `422` for a handler's error, `500` with a logged id for the rest.
fn problem(e: &Endpoint, f: DirectFailure) -> Problem {
    let DirectFailure { failure, handler } = f;
    match failure.kind {
        FailureKind::Decode => {
            let field = failure
                .headers
                .iter()
                .find(|(k, _)| k == crate::headers::dead_letter::ERROR_FIELD)
                .map(|(_, v)| v.clone());
            Problem::new(StatusCode::BAD_REQUEST, "decode", failure.message).with_field(field)
        }
        FailureKind::Handler if !failure.fatal => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "handler", failure.message)
                .with_handler(handler)
        }
        kind => {
            let id = uuid::Uuid::new_v4().to_string();
            tracing::error!(
                error_id = %id,
                endpoint = %e.route(),
                handler = handler.as_deref(),
                kind = kind.as_str(),
                error = %failure.message,
                "an HTTP request failed"
            );
            let message = format!(
                "the request failed ({kind}); the service's log has it under error id {id}"
            );
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
                .with_handler(handler)
                .with_error_id(id)
        }
    }
}
