//! The Avro payload codec: decodes Confluent-framed payloads with their writer
//! schema (fetched from the registry by id, once) resolved to the handler's
//! reader schema, and encodes replies and emitted events with the schema
//! registered under the destination's subject.
//!
//! The hot path (`decode`, `encode`, `record_name`) reads caches only; a miss
//! answers `NotReady` and Spine's slow path awaits `prepare`, which fetches.

use std::any::Any;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use spine_kafka_core::codec::{CodecError, Decoded, PayloadCodec, Reader};
use spine_kafka_core::config::{Config, SubjectStrategy};

use crate::error::AvroError;
use crate::registry::{compat, Auth, RegistryClient, RegistryError};
use crate::subject::subject_name;
use crate::wire;

// Schemas are leaked into `&'static` so that apache-avro's resolving readers
// and writers (which borrow their schemas and are costly to build) can be
// built once and cached. A codec holds a handful of distinct schemas, each
// parsed once, for the life of the app.
fn leak(schema: Schema) -> &'static Schema {
    Box::leak(Box::new(schema))
}

/// A writer schema, by registry id.
struct Writer {
    schema: &'static Schema,
    fingerprint: String,
    /// Full name of the record (for the `record` event source).
    name: Option<String>,
}

/// A handler's reader schema.
struct ReaderSchema {
    schema: Option<&'static Schema>,
    fingerprint: String,
}

/// What encoding for one (subject, schema) needs.
struct Encoder {
    id: u32,
    writer: GenericDatumWriter<'static>,
    schema: &'static Schema,
}

/// The resolving reader of a (writer, reader) pair, or why there is none.
type Resolution = Result<Arc<Resolved>, AvroError>;

/// A (writer, reader) pair that resolves: its resolving reader, and the writer
/// union branches and enum symbols the reader lacks. Those fail only the
/// records that carry them, as the Avro specification has it.
struct Resolved {
    reader: GenericDatumReader<'static>,
    writer: &'static Schema,
    gaps: Vec<compat::Incompatibility>,
    schema_id: u32,
    writer_fingerprint: String,
    reader_fingerprint: String,
}

impl Resolved {
    /// Reads one record from `body`, leaving what follows it.
    fn read(&self, body: &mut &[u8]) -> Result<Value, AvroError> {
        let whole = *body;
        self.reader
            .read_value(body)
            .map_err(|e| self.read_error(whole, e.to_string()))
    }

    /// A record that does not read: `Incompatible`, naming the gaps, when it
    /// decodes with its writer schema alone (so it carries a branch or symbol
    /// the reader lacks); `Corrupt` otherwise.
    #[cold]
    fn read_error(&self, mut body: &[u8], reason: String) -> AvroError {
        let writes = !self.gaps.is_empty()
            && GenericDatumReader::builder(self.writer)
                .build()
                .is_ok_and(|r| r.read_value(&mut body).is_ok());
        if !writes {
            return AvroError::Corrupt {
                schema_id: self.schema_id,
                reason,
            };
        }
        let gaps: Vec<String> = self.gaps.iter().map(|g| g.to_string()).collect();
        let field = match &self.gaps[..] {
            [one] => one.field.clone(),
            _ => None,
        };
        AvroError::Incompatible {
            schema_id: self.schema_id,
            writer_fingerprint: self.writer_fingerprint.clone(),
            reader_fingerprint: self.reader_fingerprint.clone(),
            field,
            reason: format!(
                "this record carries a value the handler's schema lacks ({}; {reason})",
                gaps.join("; ")
            ),
        }
    }
}

/// (subject, the value type's own schema if the caller gave it).
type EncoderKey = (String, Option<String>);

/// A decoded Avro value, resolved to the reader's schema.
struct AvroValue(Value);

impl Decoded for AvroValue {
    fn value(&self) -> &(dyn Any + Send + Sync) {
        &self.0
    }
}

/// Options of the codec, from `[schema_registry]` and `[topics.*]`.
#[derive(Debug, Clone, Default)]
pub struct CodecOptions {
    /// Register unknown reply schemas instead of failing.
    pub auto_register: bool,
    /// Default subject naming.
    pub subject_strategy: SubjectStrategy,
    /// Per-topic subject naming.
    pub topic_strategies: HashMap<String, SubjectStrategy>,
}

/// The Avro codec. One per app, shared by every Avro topic.
pub struct AvroCodec {
    client: RegistryClient,
    options: CodecOptions,
    writers: RwLock<HashMap<u32, Arc<Writer>>>,
    readers: Mutex<HashMap<String, Arc<ReaderSchema>>>,
    /// The resolving reader of a (writer id, reader schema) pair, or why the
    /// writer schema cannot be read as the reader's.
    resolutions: RwLock<HashMap<(u32, usize), Resolution>>,
    encoders: RwLock<HashMap<EncoderKey, Arc<Encoder>>>,
    /// One registry fetch at a time, so a burst of messages with a new
    /// schema id makes one call, not one per message.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AvroCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroCodec")
            .field("registry", &self.client.url())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn fingerprint(schema: &Schema) -> String {
    schema.fingerprint::<Rabin>().to_string()
}

fn full_name(schema: &Schema) -> Option<String> {
    schema.name().map(|n| n.fullname(None))
}

fn failed(e: AvroError) -> CodecError {
    let headers = match &e {
        AvroError::Incompatible {
            writer_fingerprint,
            reader_fingerprint,
            field,
            schema_id,
            ..
        } => {
            let mut h = vec![
                (
                    "spine.dlq.avro.writer_fingerprint".to_owned(),
                    writer_fingerprint.clone(),
                ),
                (
                    "spine.dlq.avro.reader_fingerprint".to_owned(),
                    reader_fingerprint.clone(),
                ),
                ("spine.dlq.avro.schema_id".to_owned(), schema_id.to_string()),
            ];
            if let Some(f) = field {
                h.push(("spine.dlq.avro.field".to_owned(), f.clone()));
            }
            h
        }
        AvroError::SchemaNotFound { schema_id, .. } | AvroError::Corrupt { schema_id, .. } => {
            vec![("spine.dlq.avro.schema_id".to_owned(), schema_id.to_string())]
        }
        _ => Vec::new(),
    };
    CodecError::Failed {
        code: e.code(),
        transient: e.is_transient(),
        message: e.to_string(),
        headers,
    }
}

impl AvroCodec {
    /// A codec using `client`.
    pub fn new(client: RegistryClient, options: CodecOptions) -> AvroCodec {
        AvroCodec {
            client,
            options,
            writers: Default::default(),
            readers: Default::default(),
            resolutions: Default::default(),
            encoders: Default::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// A codec configured from `[schema_registry]` and the topics' settings.
    pub fn from_config(config: &Config) -> Result<AvroCodec, spine_kafka_core::Error> {
        let sr = &config.schema_registry;
        let Some(url) = sr.url.as_deref() else {
            return Err(spine_kafka_core::Error::Config {
                key: "schema_registry.url".into(),
                reason: "Avro topics need a schema registry: set `url` under [schema_registry] \
                         in spine.toml, or SPINE_SCHEMA_REGISTRY_URL"
                    .into(),
            });
        };
        let auth = match (&sr.token, &sr.username, &sr.password) {
            (Some(t), _, _) => Auth::Bearer(t.clone()),
            (None, Some(u), p) => Auth::Basic {
                username: u.clone(),
                password: p.clone().unwrap_or_default(),
            },
            _ => Auth::None,
        };
        let client =
            RegistryClient::new(url, auth).map_err(|e| spine_kafka_core::Error::Config {
                key: "schema_registry.url".into(),
                reason: e.to_string(),
            })?;
        let topic_strategies = config
            .topics
            .iter()
            .filter_map(|(t, c)| c.subject_strategy.map(|s| (t.clone(), s)))
            .collect();
        Ok(AvroCodec::new(
            client,
            CodecOptions {
                auto_register: sr.auto_register,
                subject_strategy: sr.subject_strategy,
                topic_strategies,
            },
        ))
    }

    /// The registry client (its [`RegistryClient::calls`] counts requests).
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    fn writer(&self, id: u32) -> Option<Arc<Writer>> {
        self.writers.read().get(&id).cloned()
    }

    /// Fetches and caches the writer schema `id`.
    async fn fetch_writer(&self, id: u32) -> Result<Arc<Writer>, AvroError> {
        if let Some(w) = self.writer(id) {
            return Ok(w);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(w) = self.writer(id) {
            return Ok(w);
        }
        let fetched = self
            .client
            .schema_by_id(id)
            .await
            .map_err(|e| AvroError::from_registry(Some(id), e))?;
        if fetched.schema_type.as_deref().is_some_and(|t| t != "AVRO") {
            return Err(AvroError::Registry(format!(
                "schema {id} is {}, not AVRO",
                fetched.schema_type.unwrap_or_default()
            )));
        }
        let schema = Schema::parse_str(&fetched.schema).map_err(|e| {
            AvroError::Registry(format!("schema {id} from the registry does not parse: {e}"))
        })?;
        let writer = Arc::new(Writer {
            fingerprint: fingerprint(&schema),
            name: full_name(&schema),
            schema: leak(schema),
        });
        tracing::debug!(schema_id = id, name = writer.name, "fetched writer schema");
        self.writers.write().insert(id, writer.clone());
        Ok(writer)
    }

    /// The subject a value for `topic` is registered under.
    pub fn subject(&self, topic: &str, schema: Option<&Schema>) -> Result<String, AvroError> {
        let strategy = self
            .options
            .topic_strategies
            .get(topic)
            .copied()
            .unwrap_or(self.options.subject_strategy);
        let record = schema.and_then(full_name);
        subject_name(strategy, topic, record.as_deref()).ok_or_else(|| AvroError::Encode {
            subject: format!("{topic} ({strategy:?} strategy)"),
            reason: "this subject strategy needs the record's name: attach the schema \
                     with `spine::avro::reply`"
                .into(),
        })
    }

    fn encoder_key(
        &self,
        topic: &str,
        schema: Option<&str>,
    ) -> Result<(String, Option<String>), AvroError> {
        let parsed = match schema {
            Some(s) => Some(Schema::parse_str(s).map_err(|e| AvroError::Encode {
                subject: topic.to_owned(),
                reason: format!("the attached schema does not parse: {e}"),
            })?),
            None => None,
        };
        Ok((
            self.subject(topic, parsed.as_ref())?,
            schema.map(str::to_owned),
        ))
    }

    /// Looks up (or registers, with `auto_register`) the schema to encode with.
    async fn fetch_encoder(
        &self,
        topic: &str,
        schema: Option<&str>,
    ) -> Result<Arc<Encoder>, AvroError> {
        let key = self.encoder_key(topic, schema)?;
        if let Some(e) = self.encoders.read().get(&key) {
            return Ok(e.clone());
        }
        let subject = key.0.clone();
        let map_err = |e: RegistryError| AvroError::from_registry(None, e);
        let (id, text) =
            match schema {
                None => {
                    let latest =
                        self.client.version(&subject, "latest").await.map_err(|e| {
                            match e {
                    RegistryError::NotFound { .. } => AvroError::Encode {
                        subject: subject.clone(),
                        reason: "the subject has no schema; register one, or build the reply with \
                                 `spine::avro::reply` and set `auto_register = true`"
                            .into(),
                    },
                    e => map_err(e),
                }
                        })?;
                    (latest.id, latest.schema)
                }
                Some(text) => match self.client.lookup(&subject, text).await {
                    Ok(found) => (found.id, text.to_owned()),
                    Err(RegistryError::NotFound { .. }) if self.options.auto_register => {
                        let id = self
                            .client
                            .register(&subject, text)
                            .await
                            .map_err(map_err)?;
                        tracing::info!(subject, id, "registered reply schema");
                        (id, text.to_owned())
                    }
                    Err(RegistryError::NotFound { .. }) => {
                        return Err(AvroError::Encode {
                            subject,
                            reason: "this schema is not registered under the subject; register it \
                                 (`spine schemas register`) or set `auto_register = true`"
                                .into(),
                        })
                    }
                    Err(e) => return Err(map_err(e)),
                },
            };
        let parsed = leak(Schema::parse_str(&text).map_err(|e| AvroError::Encode {
            subject: subject.clone(),
            reason: format!("the registered schema does not parse: {e}"),
        })?);
        let writer =
            GenericDatumWriter::builder(parsed)
                .build()
                .map_err(|e| AvroError::Encode {
                    subject: subject.clone(),
                    reason: e.to_string(),
                })?;
        let encoder = Arc::new(Encoder {
            id,
            writer,
            schema: parsed,
        });
        self.encoders.write().insert(key, encoder.clone());
        Ok(encoder)
    }

    /// Encodes `value` for `topic` in the Confluent wire format, fetching the
    /// schema id if needed. For producing Avro outside handlers.
    pub async fn encode_value<T: serde::Serialize>(
        &self,
        topic: &str,
        value: &T,
        schema: Option<&str>,
    ) -> Result<Vec<u8>, AvroError> {
        let encoder = self.fetch_encoder(topic, schema).await?;
        encode_with(&encoder, &self.encoder_key(topic, schema)?.0, value)
    }

    /// Decodes a framed payload into `T` with the writer schema and `T`'s
    /// reader schema. For consuming Avro outside handlers and in tests.
    pub async fn decode_value<T: serde::de::DeserializeOwned + apache_avro::AvroSchema>(
        &self,
        payload: &[u8],
    ) -> Result<T, AvroError> {
        let (id, _) = wire::split(payload)?;
        self.fetch_writer(id).await?;
        let reader = self.reader_for(Some(&T::get_schema()));
        let value = self.decode_cached(payload, &reader)?;
        apache_avro::from_value::<T>(&value).map_err(|e| AvroError::Deserialize(e.to_string()))
    }

    fn reader_for(&self, schema: Option<&Schema>) -> Arc<ReaderSchema> {
        let key = schema
            .map(|s| serde_json::to_string(s).unwrap_or_else(|_| s.canonical_form()))
            .unwrap_or_default();
        self.readers
            .lock()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ReaderSchema {
                    fingerprint: schema.map(fingerprint).unwrap_or_else(|| "none".into()),
                    schema: schema.cloned().map(leak),
                })
            })
            .clone()
    }

    fn decode_cached(
        &self,
        payload: &[u8],
        reader: &Arc<ReaderSchema>,
    ) -> Result<Value, AvroError> {
        let (id, mut body) = wire::split(payload)?;
        let Some(writer) = self.writer(id) else {
            return Err(AvroError::RegistryUnavailable(format!(
                "writer schema {id} is not fetched yet"
            )));
        };
        let key = (id, Arc::as_ptr(reader) as usize);
        let known = self.resolutions.read().get(&key).cloned();
        let datum_reader = match known {
            Some(v) => v,
            None => {
                let v = self.resolving_reader(id, &writer, reader);
                self.resolutions.write().insert(key, v.clone());
                v
            }
        }?;
        let value = datum_reader.read(&mut body)?;
        let mut rest = [0u8; 1];
        if body.read(&mut rest).unwrap_or(0) > 0 {
            return Err(AvroError::Corrupt {
                schema_id: id,
                reason: format!("{} bytes left over after the record", body.len() + 1),
            });
        }
        Ok(value)
    }
}

impl AvroCodec {
    /// Resolves a (writer, reader) pair once, by the rules of
    /// [`compat::resolve`]: an error names the rule and the field; gaps (writer
    /// union branches or enum symbols the reader lacks) fail only the records
    /// that carry them.
    fn resolving_reader(
        &self,
        id: u32,
        writer: &Writer,
        reader: &ReaderSchema,
    ) -> Result<Arc<Resolved>, AvroError> {
        let incompatible = |field: Option<String>, reason: String| AvroError::Incompatible {
            schema_id: id,
            writer_fingerprint: writer.fingerprint.clone(),
            reader_fingerprint: reader.fingerprint.clone(),
            field,
            reason,
        };
        let gaps = match reader.schema {
            None => Vec::new(),
            Some(r) => match compat::resolve(writer.schema, r) {
                Ok(compat::Resolution::Full) => Vec::new(),
                Ok(compat::Resolution::Partial(gaps)) => gaps,
                Err(e) => return Err(incompatible(e.field.clone(), e.to_string())),
            },
        };
        let datum_reader = GenericDatumReader::builder(writer.schema)
            .maybe_reader_schema(reader.schema)
            .build()
            .map_err(|e| incompatible(None, e.to_string()))?;
        Ok(Arc::new(Resolved {
            reader: datum_reader,
            writer: writer.schema,
            gaps,
            schema_id: id,
            writer_fingerprint: writer.fingerprint.clone(),
            reader_fingerprint: reader.fingerprint.clone(),
        }))
    }
}

fn encode_with<T: serde::Serialize + ?Sized>(
    encoder: &Encoder,
    subject: &str,
    value: &T,
) -> Result<Vec<u8>, AvroError> {
    let err = |reason: String| AvroError::Encode {
        subject: subject.to_owned(),
        reason,
    };
    let value = apache_avro::to_value(value).map_err(|e| err(e.to_string()))?;
    let value = conform(value, encoder.schema)
        .resolve(encoder.schema)
        .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::with_capacity(64);
    out.push(wire::MAGIC);
    out.extend_from_slice(&encoder.id.to_be_bytes());
    encoder
        .writer
        .write_value(&mut out, value)
        .map_err(|e| err(e.to_string()))?;
    Ok(out)
}

/// Adjusts what serde produced to the schema where apache-avro's serializer
/// and the Avro types disagree: it writes every `u64` as `fixed(8)` (Avro has
/// no unsigned types), and `serde_json::Value` numbers are `u64` when
/// positive. Where the schema wants a number, such a value becomes one.
/// Written by hand because apache-avro has no hook for it.
fn conform(value: Value, schema: &Schema) -> Value {
    use apache_avro::schema::Schema as S;
    let by_field = |entries: Vec<(String, Value)>, rs: &apache_avro::schema::RecordSchema| {
        entries
            .into_iter()
            .map(|(name, v)| {
                let v = match rs.lookup.get(&name) {
                    Some(&i) => conform(v, &rs.fields[i].schema),
                    None => v,
                };
                (name, v)
            })
            .collect::<Vec<_>>()
    };
    match (value, schema) {
        (Value::Fixed(8, bytes), S::Long | S::Int | S::Float | S::Double) => {
            let mut le = [0u8; 8];
            le.copy_from_slice(&bytes);
            let n = u64::from_le_bytes(le);
            match schema {
                S::Int if n <= i32::MAX as u64 => Value::Int(n as i32),
                S::Float => Value::Float(n as f32),
                S::Double => Value::Double(n as f64),
                S::Long if n <= i64::MAX as u64 => Value::Long(n as i64),
                _ => Value::Fixed(8, bytes),
            }
        }
        (Value::Record(fields), S::Record(rs)) => Value::Record(by_field(fields, rs)),
        (Value::Map(entries), S::Record(rs)) => Value::Map(
            by_field(entries.into_iter().collect(), rs)
                .into_iter()
                .collect(),
        ),
        (Value::Array(items), S::Array(a)) => {
            Value::Array(items.into_iter().map(|v| conform(v, &a.items)).collect())
        }
        (Value::Map(entries), S::Map(m)) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, conform(v, &m.types)))
                .collect(),
        ),
        (Value::Union(i, inner), S::Union(u)) => {
            let inner = match u.variants().get(i as usize) {
                Some(s) => conform(*inner, s),
                None => *inner,
            };
            Value::Union(i, Box::new(inner))
        }
        (v, S::Union(u)) if !matches!(v, Value::Null) => {
            // A bare value for a union: conform it to the first branch that is
            // not null (the `["null", T]` shape of optional fields).
            match u.variants().iter().find(|s| !matches!(s, S::Null)) {
                Some(s) => conform(v, s),
                None => v,
            }
        }
        (v, _) => v,
    }
}

impl PayloadCodec for AvroCodec {
    fn name(&self) -> &'static str {
        "avro"
    }

    fn reader(&self, schema: Option<&str>) -> Result<Reader, CodecError> {
        let parsed = match schema {
            Some(s) => Some(Schema::parse_str(s).map_err(|e| {
                CodecError::failed(
                    "avro.reader_schema",
                    format!("its payload's Avro schema does not parse: {e}"),
                )
            })?),
            None => None,
        };
        Ok(self.reader_for(parsed.as_ref()))
    }

    fn decode(
        &self,
        payload: Option<&[u8]>,
        reader: &Reader,
    ) -> Result<Box<dyn Decoded>, CodecError> {
        let reader = reader
            .clone()
            .downcast::<ReaderSchema>()
            .map_err(|_| failed(AvroError::Registry("reader from another codec".into())))?;
        let payload = payload.unwrap_or_default();
        match self.decode_cached(payload, &reader) {
            Ok(v) => Ok(Box::new(AvroValue(v))),
            Err(AvroError::RegistryUnavailable(_)) => Err(CodecError::NotReady),
            Err(e) => Err(failed(e)),
        }
    }

    fn decode_with(
        &self,
        payload: Option<&[u8]>,
        reader: &Reader,
        sink: &mut dyn FnMut(&(dyn Any + Send + Sync)),
    ) -> Result<(), CodecError> {
        // The common case, once warm: the resolving reader of this (writer,
        // reader) pair is cached; decode under the read lock, no clone, no box.
        let bytes = payload.unwrap_or_default();
        let (id, mut body) = wire::split(bytes).map_err(failed)?;
        let key = (id, Arc::as_ptr(reader) as *const () as usize);
        let value = {
            let resolutions = self.resolutions.read();
            match resolutions.get(&key) {
                Some(Ok(resolved)) => Some(resolved.read(&mut body).map_err(failed)?),
                _ => None,
            }
        };
        match value {
            Some(value) if body.is_empty() => {
                sink(&value);
                Ok(())
            }
            Some(_) => Err(failed(AvroError::Corrupt {
                schema_id: id,
                reason: format!("{} bytes left over after the record", body.len()),
            })),
            // Cold, or a known failure: the general path fetches or reports it.
            None => {
                let decoded = self.decode(payload, reader)?;
                sink(decoded.value());
                Ok(())
            }
        }
    }

    fn record_name(&self, payload: Option<&[u8]>) -> Result<String, CodecError> {
        let (id, _) = wire::split(payload.unwrap_or_default()).map_err(failed)?;
        match self.writer(id) {
            None => Err(CodecError::NotReady),
            Some(w) => w.name.clone().ok_or_else(|| {
                failed(AvroError::Registry(format!(
                    "writer schema {id} is not a named type, so it has no record name"
                )))
            }),
        }
    }

    fn prepare<'a>(&'a self, payload: Option<&'a [u8]>) -> BoxFuture<'a, Result<(), CodecError>> {
        async move {
            let (id, _) = wire::split(payload.unwrap_or_default()).map_err(failed)?;
            self.fetch_writer(id).await.map(|_| ()).map_err(failed)
        }
        .boxed()
    }

    fn encode(
        &self,
        topic: &str,
        value: &dyn erased_serde::Serialize,
        schema: Option<&str>,
    ) -> Result<Vec<u8>, CodecError> {
        let key = self.encoder_key(topic, schema).map_err(failed)?;
        let Some(encoder) = self.encoders.read().get(&key).cloned() else {
            return Err(CodecError::NotReady);
        };
        encode_with(&encoder, &key.0, value).map_err(failed)
    }

    fn encoder_ready(&self, topic: &str, schema: Option<&str>) -> bool {
        self.encoder_key(topic, schema)
            .map(|k| self.encoders.read().contains_key(&k))
            .unwrap_or(true) // a bad key fails at encode time, with the reason
    }

    fn prepare_encode<'a>(
        &'a self,
        topic: &'a str,
        schema: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), CodecError>> {
        async move {
            self.fetch_encoder(topic, schema)
                .await
                .map(|_| ())
                .map_err(failed)
        }
        .boxed()
    }

    fn content_type(&self) -> &'static str {
        "application/avro"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client
                .subjects()
                .await
                .map(|_| ())
                .map_err(|e| format!("schema registry {}: {e}", self.client.url()))
        })
    }
}

/// Converts a decoded Avro value into `T`, written into `out` (an
/// `Option<T>`). What `#[on]` attaches to handlers.
pub fn value_decoder<T: serde::de::DeserializeOwned + Send + 'static>(
    value: &(dyn Any + Send + Sync),
    out: &mut dyn Any,
) -> Result<(), CodecError> {
    let failed = |message: String| CodecError::failed("avro.deserialize", message);
    let value = value
        .downcast_ref::<Value>()
        .ok_or_else(|| failed("the decoded payload is not an Avro value".into()))?;
    let out = out
        .downcast_mut::<Option<T>>()
        .ok_or_else(|| failed("the handler's payload slot is of another type".into()))?;
    *out = Some(apache_avro::from_value::<T>(value).map_err(|e| failed(e.to_string()))?);
    Ok(())
}

/// The factory the `spine` crate installs for `codec = "avro"` topics.
pub fn codec_factory(config: &Config) -> Result<Arc<dyn PayloadCodec>, spine_kafka_core::Error> {
    Ok(Arc::new(AvroCodec::from_config(config)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(strategy: SubjectStrategy) -> AvroCodec {
        let mut options = CodecOptions {
            subject_strategy: strategy,
            ..Default::default()
        };
        options
            .topic_strategies
            .insert("special".into(), SubjectStrategy::Topic);
        AvroCodec::new(
            RegistryClient::new("http://127.0.0.1:9", Auth::None).unwrap(),
            options,
        )
    }

    #[test]
    fn subjects_follow_confluent_naming_strategies() {
        let schema =
            Schema::parse_str(r#"{"type":"record","name":"Order","namespace":"shop","fields":[]}"#)
                .unwrap();
        let s = Some(&schema);
        assert_eq!(
            codec(SubjectStrategy::Topic).subject("orders", s).unwrap(),
            "orders-value"
        );
        assert_eq!(
            codec(SubjectStrategy::Record).subject("orders", s).unwrap(),
            "shop.Order"
        );
        assert_eq!(
            codec(SubjectStrategy::TopicRecord)
                .subject("orders", s)
                .unwrap(),
            "orders-shop.Order"
        );
        assert_eq!(
            codec(SubjectStrategy::Record)
                .subject("special", s)
                .unwrap(),
            "special-value",
            "per-topic override"
        );
        let e = codec(SubjectStrategy::Record)
            .subject("orders", None)
            .unwrap_err();
        assert!(e.to_string().contains("spine::avro::reply"), "{e}");
    }

    #[test]
    fn unsigned_numbers_become_avro_numbers_where_the_schema_says_so() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"n","type":"long"},{"name":"i","type":"int"},
                {"name":"o","type":["null","long"]},{"name":"f","type":{"type":"fixed","name":"F","size":8}}]}"#,
        )
        .unwrap();
        let v = apache_avro::to_value(serde_json::json!({"n": 5, "i": 6, "o": 7, "f": 8})).unwrap();
        let Value::Map(m) = conform(v, &schema) else {
            panic!("a JSON object stays a map")
        };
        assert_eq!(m["n"], Value::Long(5));
        assert_eq!(m["i"], Value::Int(6));
        assert_eq!(m["o"], Value::Long(7));
        assert!(
            matches!(m["f"], Value::Fixed(8, _)),
            "a real fixed(8) is left alone"
        );
    }
}
