//! A client for the Confluent Schema Registry REST API.
//!
//! Written on `reqwest` rather than taken from `schema_registry_converter`:
//! Spine must tell a missing schema (HTTP 404, the message goes to the
//! dead-letter topic) from a registry that is down or answering 5xx (the
//! message waits and is retried), and that crate reports 500 and 404 alike as
//! non-retryable and drops the status code. The API surface used here is small
//! (ids, subjects, versions, lookup, register, config, compatibility).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::types::{
    CompatibilityLevel, CompatibilityResult, ErrorBody, RegisteredSchema, SchemaBody, SchemaById,
};

/// A schema registry request that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// 404: subject (40401), version (40402) or schema (40403) not found.
    #[error("not found ({code}): {message}")]
    NotFound {
        /// Confluent's error code.
        code: u32,
        /// The registry's message.
        message: String,
    },
    /// 409: the schema is incompatible with the subject's earlier versions.
    #[error("incompatible schema (409): {message}")]
    Incompatible {
        /// The registry's message.
        message: String,
    },
    /// 422 / 42201: the schema is invalid.
    #[error("invalid schema (42201): {message}")]
    InvalidSchema {
        /// The registry's message.
        message: String,
    },
    /// The registry could not be reached, timed out, or answered 5xx or 429.
    #[error("registry at {url} unavailable: {reason}")]
    Unavailable {
        /// The request's URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Another refusal (authentication, authorization, bad request).
    #[error("registry refused the request ({status}, code {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Confluent's error code, 0 if none.
        code: u32,
        /// The registry's message.
        message: String,
    },
    /// The response was not what the API promises.
    #[error("unexpected registry response: {0}")]
    Protocol(String),
}

impl RegistryError {
    /// Whether trying again later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

/// How the client authenticates. Secrets are never printed.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// A schema registry client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    auth: Auth,
    calls: std::sync::Arc<AtomicU64>,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl RegistryClient {
    /// A client for the registry at `url` (e.g. `http://localhost:8081`).
    pub fn new(url: &str, auth: Auth) -> Result<RegistryClient, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| RegistryError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(RegistryClient {
            base: url.trim_end_matches('/').to_owned(),
            http,
            auth,
            calls: Default::default(),
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Requests made so far (to check that caching works).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, RegistryError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method, &url)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE);
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { username, password } => req.basic_auth(username, Some(password)),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        if let Some(b) = body {
            let json = serde_json::to_vec(b)
                .map_err(|e| RegistryError::Protocol(format!("cannot encode the request: {e}")))?;
            req = req
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(json);
        }
        let resp = req.send().await.map_err(|e| RegistryError::Unavailable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Unavailable {
            url: url.clone(),
            reason: format!("reading the response: {e}"),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::Protocol(format!(
                    "{url} answered {status} with a body that does not parse: {e}"
                ))
            });
        }
        let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
            error_code: 0,
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        Err(match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                code: err.error_code,
                message: err.message,
            },
            StatusCode::CONFLICT => RegistryError::Incompatible {
                message: err.message,
            },
            StatusCode::UNPROCESSABLE_ENTITY => RegistryError::InvalidSchema {
                message: err.message,
            },
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                RegistryError::Unavailable {
                    url,
                    reason: format!("HTTP {s}: {}", err.message),
                }
            }
            s => RegistryError::Rejected {
                status: s.as_u16(),
                code: err.error_code,
                message: err.message,
            },
        })
    }

    /// `GET /schemas/ids/{id}`: the schema text of an id.
    pub async fn schema_by_id(&self, id: u32) -> Result<SchemaById, RegistryError> {
        self.call(Method::GET, &format!("/schemas/ids/{id}"), None::<&()>)
            .await
    }

    /// `GET /subjects`.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        self.call(Method::GET, "/subjects", None::<&()>).await
    }

    /// `GET /subjects/{subject}/versions`.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        self.call(
            Method::GET,
            &format!("/subjects/{}/versions", enc(subject)),
            None::<&()>,
        )
        .await
    }

    /// `GET /subjects/{subject}/versions/{version}`; `version` is a number or `latest`.
    pub async fn version(
        &self,
        subject: &str,
        version: &str,
    ) -> Result<RegisteredSchema, RegistryError> {
        self.call(
            Method::GET,
            &format!("/subjects/{}/versions/{}", enc(subject), enc(version)),
            None::<&()>,
        )
        .await
    }

    /// `POST /subjects/{subject}`: the id and version of `schema` under `subject`.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<RegisteredSchema, RegistryError> {
        self.call(
            Method::POST,
            &format!("/subjects/{}", enc(subject)),
            Some(&SchemaBody::avro(schema)),
        )
        .await
    }

    /// `POST /subjects/{subject}/versions`: registers `schema`, returns its id.
    /// Registering an identical schema again returns the same id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        #[derive(Deserialize)]
        struct Id {
            id: u32,
        }
        let r: Id = self
            .call(
                Method::POST,
                &format!("/subjects/{}/versions", enc(subject)),
                Some(&SchemaBody::avro(schema)),
            )
            .await?;
        Ok(r.id)
    }

    /// `DELETE /subjects/{subject}`: returns the deleted versions.
    pub async fn delete_subject(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        self.call(
            Method::DELETE,
            &format!("/subjects/{}", enc(subject)),
            None::<&()>,
        )
        .await
    }

    /// `POST /compatibility/subjects/{subject}/versions/{version}`.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        version: &str,
        schema: &str,
    ) -> Result<CompatibilityResult, RegistryError> {
        self.call(
            Method::POST,
            &format!(
                "/compatibility/subjects/{}/versions/{}?verbose=true",
                enc(subject),
                enc(version)
            ),
            Some(&SchemaBody::avro(schema)),
        )
        .await
    }

    /// `GET /config` or `GET /config/{subject}`: the compatibility level.
    pub async fn compatibility(
        &self,
        subject: Option<&str>,
    ) -> Result<CompatibilityLevel, RegistryError> {
        #[derive(Deserialize)]
        struct Level {
            #[serde(rename = "compatibilityLevel")]
            level: CompatibilityLevel,
        }
        let path = match subject {
            Some(s) => format!("/config/{}", enc(s)),
            None => "/config".to_owned(),
        };
        let l: Level = self.call(Method::GET, &path, None::<&()>).await?;
        Ok(l.level)
    }

    /// `PUT /config` or `PUT /config/{subject}`: sets the compatibility level.
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel, RegistryError> {
        #[derive(Serialize, Deserialize)]
        struct Set {
            compatibility: CompatibilityLevel,
        }
        let path = match subject {
            Some(s) => format!("/config/{}", enc(s)),
            None => "/config".to_owned(),
        };
        let r: Set = self
            .call(
                Method::PUT,
                &path,
                Some(&Set {
                    compatibility: level,
                }),
            )
            .await?;
        Ok(r.compatibility)
    }
}

/// Percent-encodes a path segment (subjects may contain `/` and other characters).
fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("orders-value"), "orders-value");
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn secrets_are_not_printed() {
        let a = Auth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::Bearer("tok".into())).contains("tok"));
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_transient() {
        // Port 9 (discard) on loopback: nothing listens there.
        let c = RegistryClient::new("http://127.0.0.1:9", Auth::None).unwrap();
        let e = c.schema_by_id(1).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
    }
}
