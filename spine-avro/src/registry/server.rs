//! A small schema registry speaking the Confluent REST API, for tests and
//! `spine dev`: subjects and versions, ids, lookup, deletion, global and
//! per-subject compatibility levels (all seven), compatibility checks, and
//! Confluent's error codes. State lives in memory, optionally persisted to a
//! JSON file after every change.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use apache_avro::Schema;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::compat;
use super::types::{
    CompatibilityLevel, CompatibilityResult, ErrorBody, RegisteredSchema, SchemaBody, SchemaById,
};

/// What the registry knows. Serialised as is to the persistence file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    /// Schema texts; id = index + 1.
    schemas: Vec<String>,
    /// Ids by canonical form, so an identical schema keeps its id.
    #[serde(skip)]
    by_canonical: HashMap<String, u32>,
    /// Schema ids of each subject's versions; version = index + 1.
    subjects: BTreeMap<String, Vec<u32>>,
    #[serde(default)]
    global: CompatibilityLevel,
    #[serde(default)]
    levels: BTreeMap<String, CompatibilityLevel>,
}

struct Shared {
    registry: Mutex<Registry>,
    persist: Option<PathBuf>,
}

/// Builds and starts a dev registry.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let registry = spine_kafka_avro::registry::DevRegistry::new()
///     .start("127.0.0.1:0".parse().unwrap())
///     .await?;
/// println!("registry at {}", registry.url());
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct DevRegistry {
    persist: Option<PathBuf>,
}

/// A running dev registry; stops when dropped or on [`DevRegistryHandle::stop`].
#[derive(Debug)]
pub struct DevRegistryHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DevRegistryHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits until the port is released.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DevRegistryHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl DevRegistry {
    /// An empty registry, in memory.
    pub fn new() -> DevRegistry {
        DevRegistry::default()
    }

    /// Loads state from `path` if it exists, and writes it there after every change.
    #[must_use]
    pub fn persist_to(mut self, path: impl Into<PathBuf>) -> DevRegistry {
        self.persist = Some(path.into());
        self
    }

    /// Serves on `addr` (port 0 picks a free one) until the handle stops.
    pub async fn start(self, addr: SocketAddr) -> std::io::Result<DevRegistryHandle> {
        let registry = match &self.persist {
            Some(p) if p.exists() => load(p)?,
            _ => Registry::default(),
        };
        let state = Arc::new(Shared {
            registry: Mutex::new(registry),
            persist: self.persist,
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "dev schema registry stopped");
            }
        });
        tracing::info!(%addr, "dev schema registry listening");
        Ok(DevRegistryHandle {
            addr,
            stop: Some(tx),
            task: Some(task),
        })
    }
}

impl Registry {
    fn reindex(&mut self) {
        self.by_canonical = self
            .schemas
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Schema::parse_str(s)
                    .ok()
                    .map(|p| (p.canonical_form(), i as u32 + 1))
            })
            .collect();
    }

    fn level(&self, subject: &str) -> CompatibilityLevel {
        self.levels.get(subject).copied().unwrap_or(self.global)
    }

    fn schema(&self, id: u32) -> Option<&String> {
        self.schemas.get((id as usize).checked_sub(1)?)
    }

    fn versions_parsed(&self, subject: &str) -> Vec<(u32, Schema)> {
        self.subjects
            .get(subject)
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .filter_map(|(i, id)| {
                        let text = self.schema(*id)?;
                        Some((i as u32 + 1, Schema::parse_str(text).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn load(path: &std::path::Path) -> std::io::Result<Registry> {
    let text = std::fs::read_to_string(path)?;
    let mut r: Registry = serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a dev registry state file: {e}", path.display()),
        )
    })?;
    r.reindex();
    Ok(r)
}

fn save(state: &Shared, r: &Registry) {
    if let Some(path) = &state.persist {
        let result = serde_json::to_vec_pretty(r)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)
            });
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "cannot persist the dev registry");
        }
    }
}

/// A Confluent-style error response.
struct ApiError(StatusCode, u32, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorBody {
                error_code: self.1,
                message: self.2,
            }),
        )
            .into_response()
    }
}

fn subject_not_found(s: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        40401,
        format!("Subject '{s}' not found."),
    )
}

fn version_not_found(v: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        40402,
        format!("Version {v} not found."),
    )
}

fn schema_not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, 40403, "Schema not found".into())
}

fn invalid_schema(e: impl std::fmt::Display) -> ApiError {
    ApiError(
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
        format!("Invalid schema: {e}"),
    )
}

fn parse(body: &SchemaBody) -> Result<Schema, ApiError> {
    match body.schema_type.as_deref() {
        None | Some("AVRO") => Schema::parse_str(&body.schema).map_err(invalid_schema),
        Some(other) => Err(invalid_schema(format!(
            "schema type {other} is not supported by the dev registry (AVRO only)"
        ))),
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route("/schemas/ids/{id}", get(get_by_id))
        .route("/config", get(get_global).put(put_global))
        .route(
            "/config/{subject}",
            get(get_subject_level).put(put_subject_level),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_compatibility),
        )
        .with_state(state)
}

async fn list_subjects(State(s): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(s.registry.lock().subjects.keys().cloned().collect())
}

async fn list_versions(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
) -> ApiResult<Vec<u32>> {
    let r = s.registry.lock();
    let ids = r
        .subjects
        .get(&subject)
        .ok_or_else(|| subject_not_found(&subject))?;
    Ok(Json((1..=ids.len() as u32).collect()))
}

fn resolve_version(r: &Registry, subject: &str, version: &str) -> Result<(u32, u32), ApiError> {
    let ids = r
        .subjects
        .get(subject)
        .ok_or_else(|| subject_not_found(subject))?;
    let v = match version {
        "latest" | "-1" => ids.len() as u32,
        n => n.parse::<u32>().map_err(|_| version_not_found(version))?,
    };
    let id = ids
        .get((v as usize).wrapping_sub(1))
        .copied()
        .ok_or_else(|| version_not_found(version))?;
    Ok((v, id))
}

async fn get_version(
    State(s): State<Arc<Shared>>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult<RegisteredSchema> {
    let r = s.registry.lock();
    let (version, id) = resolve_version(&r, &subject, &version)?;
    Ok(Json(RegisteredSchema {
        subject,
        version,
        id,
        schema: r.schema(id).cloned().unwrap_or_default(),
        schema_type: None,
    }))
}

async fn get_by_id(State(s): State<Arc<Shared>>, Path(id): Path<u32>) -> ApiResult<SchemaById> {
    let r = s.registry.lock();
    let schema = r.schema(id).cloned().ok_or_else(schema_not_found)?;
    Ok(Json(SchemaById {
        schema,
        schema_type: None,
    }))
}

async fn lookup(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> ApiResult<RegisteredSchema> {
    let parsed = parse(&body)?;
    let r = s.registry.lock();
    let ids = r
        .subjects
        .get(&subject)
        .ok_or_else(|| subject_not_found(&subject))?;
    let id = r
        .by_canonical
        .get(&parsed.canonical_form())
        .copied()
        .ok_or_else(schema_not_found)?;
    let pos = ids
        .iter()
        .position(|i| *i == id)
        .ok_or_else(schema_not_found)?;
    Ok(Json(RegisteredSchema {
        subject,
        version: pos as u32 + 1,
        id,
        schema: r.schema(id).cloned().unwrap_or_default(),
        schema_type: None,
    }))
}

#[derive(Serialize)]
struct Id {
    id: u32,
}

async fn register(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> ApiResult<Id> {
    let parsed = parse(&body)?;
    let canonical = parsed.canonical_form();
    let mut r = s.registry.lock();
    let known = r.by_canonical.get(&canonical).copied();
    if let Some(id) = known {
        if r.subjects
            .get(&subject)
            .is_some_and(|ids| ids.contains(&id))
        {
            return Ok(Json(Id { id }));
        }
    }
    let messages = compat::check(r.level(&subject), &parsed, &r.versions_parsed(&subject));
    if !messages.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {}",
                messages.join("; ")
            ),
        ));
    }
    let id = match known {
        Some(id) => id,
        None => {
            r.schemas.push(body.schema.clone());
            let id = r.schemas.len() as u32;
            r.by_canonical.insert(canonical, id);
            id
        }
    };
    r.subjects.entry(subject).or_default().push(id);
    save(&s, &r);
    Ok(Json(Id { id }))
}

async fn delete_subject(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
) -> ApiResult<Vec<u32>> {
    let mut r = s.registry.lock();
    let ids = r
        .subjects
        .remove(&subject)
        .ok_or_else(|| subject_not_found(&subject))?;
    r.levels.remove(&subject);
    save(&s, &r);
    Ok(Json((1..=ids.len() as u32).collect()))
}

#[derive(Serialize)]
struct LevelOut {
    #[serde(rename = "compatibilityLevel")]
    level: CompatibilityLevel,
}

#[derive(Serialize, Deserialize)]
struct LevelIn {
    compatibility: CompatibilityLevel,
}

async fn get_global(State(s): State<Arc<Shared>>) -> Json<LevelOut> {
    Json(LevelOut {
        level: s.registry.lock().global,
    })
}

async fn put_global(State(s): State<Arc<Shared>>, Json(l): Json<LevelIn>) -> Json<LevelIn> {
    let mut r = s.registry.lock();
    r.global = l.compatibility;
    save(&s, &r);
    Json(l)
}

async fn get_subject_level(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
) -> Json<LevelOut> {
    // Like Confluent's `defaultToGlobal=true`: an unset subject reports the global level.
    Json(LevelOut {
        level: s.registry.lock().level(&subject),
    })
}

async fn put_subject_level(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    Json(l): Json<LevelIn>,
) -> Json<LevelIn> {
    let mut r = s.registry.lock();
    r.levels.insert(subject, l.compatibility);
    save(&s, &r);
    Json(l)
}

#[derive(Deserialize)]
struct Verbose {
    #[serde(default)]
    verbose: bool,
}

async fn check_compatibility(
    State(s): State<Arc<Shared>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<Verbose>,
    Json(body): Json<SchemaBody>,
) -> ApiResult<CompatibilityResult> {
    let parsed = parse(&body)?;
    let r = s.registry.lock();
    let (v, _) = resolve_version(&r, &subject, &version)?;
    let level = r.level(&subject);
    let all = r.versions_parsed(&subject);
    // A transitive level checks every version up to the one named; otherwise
    // only that one.
    let upto: Vec<(u32, Schema)> = all.into_iter().filter(|(n, _)| *n <= v).collect();
    let against: Vec<(u32, Schema)> = if level.transitive() {
        upto
    } else {
        upto.into_iter().filter(|(n, _)| *n == v).collect()
    };
    let messages = compat::check(level, &parsed, &against);
    Ok(Json(CompatibilityResult {
        is_compatible: messages.is_empty(),
        messages: if q.verbose { messages } else { Vec::new() },
    }))
}
