//! `[http.auth]`: who may call. A caller shows an API key (`X-API-Key`,
//! each key read from the environment variable named in `api_keys`) or a
//! bearer JWT (verified with `jsonwebtoken`, HS256 or RS256), and gets the
//! roles the key grants or the token's `roles_claim` lists. An endpoint with
//! `roles` needs one of them. Keys and secrets are never logged or printed.

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::{AuthConfig, JwtConfig};
use crate::error::Error;
use crate::http::problem::Problem;

/// The header API keys travel in.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// The credentials the listener accepts.
pub(crate) struct Auth {
    keys: Vec<ApiKey>,
    jwt: Option<Jwt>,
    pub(crate) protect_operations: bool,
}

struct ApiKey {
    secret: Vec<u8>,
    roles: Vec<String>,
}

struct Jwt {
    key: DecodingKey,
    validation: Validation,
    roles_claim: String,
}

/// Which kinds of credential are accepted, for the OpenAPI document.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Schemes {
    pub(crate) api_key: bool,
    pub(crate) bearer: bool,
}

impl Auth {
    /// `None` when `[http.auth]` names no credential: the endpoints are open.
    pub(crate) fn from_config(c: &AuthConfig) -> Result<Option<Auth>, Error> {
        if c.api_keys.is_empty() && c.jwt.is_none() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for (var, roles) in &c.api_keys {
            let secret = secret_from_env(&format!("http.auth.api_keys.{var}"), var)?;
            keys.push(ApiKey {
                secret,
                roles: roles.clone(),
            });
        }
        let jwt = c.jwt.as_ref().map(jwt).transpose()?;
        Ok(Some(Auth {
            keys,
            jwt,
            protect_operations: c.protect_operations,
        }))
    }

    pub(crate) fn schemes(&self) -> Schemes {
        Schemes {
            api_key: !self.keys.is_empty(),
            bearer: self.jwt.is_some(),
        }
    }

    /// The caller's roles, or `401` (no valid credential) / `403` (none of
    /// `needed`, when it is not empty).
    pub(crate) fn check(&self, headers: &HeaderMap, needed: &[String]) -> Result<(), Problem> {
        let roles = self.roles(headers)?;
        if needed.is_empty() || needed.iter().any(|r| roles.contains(r)) {
            return Ok(());
        }
        Err(Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("this endpoint needs one of the roles {}", needed.join(", ")),
        ))
    }

    fn roles(&self, headers: &HeaderMap) -> Result<Vec<String>, Problem> {
        if let Some(given) = headers.get(API_KEY_HEADER) {
            let given = given.as_bytes();
            return match self.keys.iter().find(|k| same(&k.secret, given)) {
                Some(k) => Ok(k.roles.clone()),
                None => Err(Problem::unauthorized("the API key is not valid")),
            };
        }
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (bearer, &self.jwt) {
            (Some(token), Some(jwt)) => jwt.roles(token.trim()),
            (Some(_), None) => Err(Problem::unauthorized(
                "bearer tokens are not accepted here; send an X-API-Key header",
            )),
            (None, _) => Err(Problem::unauthorized(match self.schemes() {
                Schemes {
                    api_key: true,
                    bearer: true,
                } => "send an X-API-Key header or an Authorization: Bearer token",
                Schemes { api_key: true, .. } => "send an X-API-Key header",
                _ => "send an Authorization: Bearer token",
            })),
        }
    }
}

impl Jwt {
    fn roles(&self, token: &str) -> Result<Vec<String>, Problem> {
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation)
            .map_err(|e| Problem::unauthorized(format!("the bearer token is not valid: {e}")))?;
        Ok(match data.claims.get(&self.roles_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            // OAuth2's `scope`: space-separated.
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        })
    }
}

fn jwt(c: &JwtConfig) -> Result<Jwt, Error> {
    let (key, algorithm) = match (&c.hs256_secret_env, &c.rs256_public_key_file) {
        (Some(var), None) => {
            let field = "http.auth.jwt.hs256_secret_env";
            let key = DecodingKey::from_secret(&secret_from_env(field, var)?)
                .map_err(|e| Error::config(field, format!("the secret is not usable: {e}")))?;
            (key, Algorithm::HS256)
        }
        (None, Some(file)) => {
            let field = "http.auth.jwt.rs256_public_key_file";
            let pem = std::fs::read(file).map_err(|e| {
                Error::config(field, format!("cannot read {}: {e}", file.display()))
            })?;
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                Error::config(
                    field,
                    format!("{} is not an RSA public key in PEM: {e}", file.display()),
                )
            })?;
            (key, Algorithm::RS256)
        }
        _ => {
            return Err(Error::config(
                "http.auth.jwt",
                "set exactly one of `hs256_secret_env` and `rs256_public_key_file`",
            ))
        }
    };
    let mut validation = Validation::new(algorithm);
    if let Some(iss) = &c.issuer {
        validation.set_issuer(&[iss]);
    }
    match &c.audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    Ok(Jwt {
        key,
        validation,
        roles_claim: c.roles_claim.clone(),
    })
}

/// The value of environment variable `var`, which must be set and not empty.
fn secret_from_env(field: &str, var: &str) -> Result<Vec<u8>, Error> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v.into_bytes()),
        _ => Err(Error::config(
            field,
            format!("the environment variable `{var}` is not set (or is empty); export it before starting"),
        )),
    }
}

/// Compares in time that does not depend on where the inputs differ, so
/// that response times do not leak a key. Written here rather than adding a
/// crate for eight lines.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth() -> Auth {
        std::env::set_var("SPINE_TEST_AUTH_KEY", "k-123");
        std::env::set_var("SPINE_TEST_AUTH_SECRET", "s3cret");
        let mut c = AuthConfig::default();
        c.api_keys
            .insert("SPINE_TEST_AUTH_KEY".into(), vec!["orders.write".into()]);
        c.jwt = Some(JwtConfig {
            hs256_secret_env: Some("SPINE_TEST_AUTH_SECRET".into()),
            ..JwtConfig::default()
        });
        Auth::from_config(&c).unwrap().unwrap()
    }

    fn token(secret: &str, roles: serde_json::Value) -> String {
        let claims = serde_json::json!({ "sub": "u1", "exp": 4_000_000_000u64, "roles": roles });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn keys_and_tokens_grant_their_roles() {
        let a = auth();
        let need = vec!["orders.write".to_owned()];
        assert!(a.check(&with(API_KEY_HEADER, "k-123"), &need).is_ok());
        assert_eq!(
            a.check(&with(API_KEY_HEADER, "k-124"), &need)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(a.check(&HeaderMap::new(), &need).unwrap_err().status, 401);
        let good = token("s3cret", serde_json::json!(["orders.write"]));
        assert!(a
            .check(&with("authorization", &format!("Bearer {good}")), &need)
            .is_ok());
        let reader = token("s3cret", serde_json::json!("orders.read other"));
        let denied = a
            .check(&with("authorization", &format!("Bearer {reader}")), &need)
            .unwrap_err();
        assert_eq!((denied.status.as_u16(), denied.kind), (403, "forbidden"));
        let forged = token("wrong", serde_json::json!(["orders.write"]));
        let e = a
            .check(&with("authorization", &format!("Bearer {forged}")), &need)
            .unwrap_err();
        assert_eq!(e.status, 401);
    }

    #[test]
    fn a_missing_secret_names_its_variable_not_a_value() {
        let mut c = AuthConfig::default();
        c.api_keys.insert("SPINE_TEST_AUTH_UNSET".into(), vec![]);
        let e = Auth::from_config(&c).err().unwrap().to_string();
        assert!(
            e.contains("SPINE_TEST_AUTH_UNSET") && e.contains("not set"),
            "{e}"
        );
    }
}
