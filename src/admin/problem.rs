//! RFC 9457 problem details: what the admin API answers for every error.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::web::response::{self, OwnBody};

/// An error, as RFC 9457 says (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Problem {
    /// A URI naming the kind of problem (`about:blank`: the status says it).
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) title: String,
    pub(crate) status: u16,
    pub(crate) detail: String,
    /// For a `405`: the methods the resource takes (`Allow`).
    #[serde(skip)]
    pub(crate) allow: Option<&'static str>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            allow: None,
        }
    }

    /// The same problem, saying which methods the resource takes.
    pub(crate) fn allowing(mut self, allow: &'static str) -> Self {
        self.allow = Some(allow);
        self
    }

    pub(crate) fn into_response(self) -> Response<OwnBody> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut answer = response::json(status, &self);
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(allow) = self.allow {
            answer
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        answer
    }
}

impl From<DbError> for Problem {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, detail),
            other => Problem::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}
