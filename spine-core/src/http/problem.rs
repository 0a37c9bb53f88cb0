//! [`Problem`]: the JSON body of every error the listener answers, with a
//! stable `kind` a client can match on, and the status it goes with.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error answer: `{"kind": "...", "message": "...", ...}`.
#[derive(Debug, Serialize)]
pub(crate) struct Problem {
    #[serde(skip)]
    pub(crate) status: StatusCode,
    /// Stable: `decode`, `handler`, `internal`, `unauthorized`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `overloaded`, `timeout`, ...
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    /// Boxed: a `Result<_, Problem>` stays small on the paths that succeed.
    #[serde(flatten)]
    detail: Box<Detail>,
    #[serde(skip)]
    retry_after: Option<u64>,
    #[serde(skip)]
    challenge: bool,
}

/// What some problems add.
#[derive(Debug, Default, Serialize)]
struct Detail {
    /// The field a body failed to decode at (`items[0].qty`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// The handler that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    handler: Option<String>,
    /// The id of an internal error, also in the service's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_id: Option<String>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            message: message.into(),
            detail: Box::default(),
            retry_after: None,
            challenge: false,
        }
    }

    /// Names the field a body failed to decode at.
    pub(crate) fn with_field(mut self, field: Option<String>) -> Self {
        self.detail.field = field;
        self
    }

    /// Names the handler that failed.
    pub(crate) fn with_handler(mut self, handler: Option<String>) -> Self {
        self.detail.handler = handler;
        self
    }

    /// The id an internal error is logged under.
    pub(crate) fn with_error_id(mut self, id: String) -> Self {
        self.detail.error_id = Some(id);
        self
    }

    /// `503` with `Retry-After`.
    pub(crate) fn unavailable(
        kind: &'static str,
        message: impl Into<String>,
        after_s: u64,
    ) -> Self {
        Problem {
            retry_after: Some(after_s),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, kind, message)
        }
    }

    /// `401` with a `WWW-Authenticate` challenge.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Problem {
            challenge: true,
            ..Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    pub(crate) fn not_found() -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route; GET /openapi.json lists the endpoints",
        )
    }

    pub(crate) fn method_not_allowed() -> Self {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method; GET /openapi.json lists the endpoints",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let retry_after = self.retry_after;
        let challenge = self.challenge;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        if let Some(s) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, ApiKey header=\"X-API-Key\""),
            );
        }
        response
    }
}

/// The fallback for paths no route serves.
pub(crate) async fn not_found() -> Problem {
    Problem::not_found()
}

/// The fallback for a served path asked with another method.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}
