//! Consumer settings held in a database (feature `config-db`), as seed 004
//! keeps its `consumer_configs`: one row of `spine_consumer_configs` per
//! consumer name, on SQLite or PostgreSQL.
//!
//! Owns the row (reading, checking, writing: [`ConsumerConfigs`], which
//! `spine config` uses), what a row changes in a [`Config`], and, in
//! `supervise`, the app that runs under a row and takes its changes while
//! it runs ([`Supervised`]).
//!
//! | column | what it sets | a change |
//! |---|---|---|
//! | `topics_input` | `[app] topics` (JSON array) | resubscribes (the app is rebuilt in-process) |
//! | `topics_output` | [`Settings::topics_output`](crate::Settings) (JSON array) | live |
//! | `metadata` | [`Settings::metadata`](crate::Settings) (JSON object) | live |
//! | `bootstrap_servers` | `kafka."bootstrap.servers"` | reconnects (rebuilt) |
//! | `timeout` | every aggregation's timeout ("30s") | live |
//! | `max_in_flight` | `[dispatch] max_in_flight` | live |
//! | `enabled` | 0 stops consuming after committing what is done; 1 resumes | |
//!
//! A column left NULL keeps what `spine.toml` and the environment say.

mod supervise;

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::config::live::LiveValues;
use crate::config::Config;
use crate::error::Error;
use crate::store::{now_ms, Store};

pub use supervise::{Supervised, SupervisorState};

/// The columns `spine config set` can change, in table order.
pub const COLUMNS: &[&str] = &[
    "topics_input",
    "topics_output",
    "metadata",
    "bootstrap_servers",
    "timeout",
    "max_in_flight",
    "enabled",
];

/// One row of `spine_consumer_configs` as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConsumerConfigRow {
    /// The consumer: the app's name, or a named consumer's
    /// (`spine::run_many`).
    pub consumer_name: String,
    /// Input topics, a JSON array.
    pub topics_input: Option<String>,
    /// Output topics, a JSON array.
    pub topics_output: Option<String>,
    /// A JSON object handed to handlers.
    pub metadata: Option<String>,
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: Option<String>,
    /// The aggregation timeout, e.g. "30s".
    pub timeout: Option<String>,
    /// Messages in flight at once.
    pub max_in_flight: Option<i64>,
    /// 1 consumes; 0 does not.
    pub enabled: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// A row's values, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ConsumerSettings {
    /// See [`ConsumerConfigRow::consumer_name`].
    pub consumer_name: String,
    /// Input topics (replace `[app] topics`).
    pub topics_input: Option<Vec<String>>,
    /// Output topics.
    pub topics_output: Option<Vec<String>>,
    /// Metadata for handlers.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Bootstrap servers.
    pub bootstrap_servers: Option<String>,
    /// The aggregation timeout.
    #[serde(with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
    /// `max_in_flight`.
    pub max_in_flight: Option<usize>,
    /// Whether the consumer consumes.
    pub enabled: bool,
}

mod humantime_serde_opt {
    use std::time::Duration;
    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// A column whose value cannot be used: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("consumer `{consumer}`, column `{column}`: {reason}")]
#[non_exhaustive]
pub struct InvalidColumn {
    /// The row's consumer name.
    pub consumer: String,
    /// The column.
    pub column: &'static str,
    /// What is wrong with it, and what it should be.
    pub reason: String,
}

impl From<InvalidColumn> for Error {
    fn from(e: InvalidColumn) -> Error {
        Error::config(
            format!("spine_consumer_configs[{}].{}", e.consumer, e.column),
            e.reason,
        )
    }
}

impl ConsumerConfigRow {
    /// A new row: every column NULL, enabled.
    pub fn new(consumer_name: &str) -> ConsumerConfigRow {
        ConsumerConfigRow {
            consumer_name: consumer_name.to_owned(),
            topics_input: None,
            topics_output: None,
            metadata: None,
            bootstrap_servers: None,
            timeout: None,
            max_in_flight: None,
            enabled: 1,
            updated_at: 0,
        }
    }

    /// Checks every column; the first bad one is the error.
    pub fn settings(&self) -> Result<ConsumerSettings, InvalidColumn> {
        let bad = |column: &'static str, reason: String| InvalidColumn {
            consumer: self.consumer_name.clone(),
            column,
            reason,
        };
        let topics = |column: &'static str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_topics(t).map_err(|r| bad(column, r)))
                .transpose()
        };
        let metadata = match self.metadata.as_deref() {
            None => None,
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(map)) => Some(map),
                Ok(other) => {
                    return Err(bad(
                        "metadata",
                        format!("must be a JSON object, like {{\"region\": \"eu\"}}; got {other}"),
                    ))
                }
                Err(e) => return Err(bad("metadata", format!("is not JSON ({e}): `{text}`"))),
            },
        };
        let bootstrap_servers = self
            .bootstrap_servers
            .as_deref()
            .map(|b| check_bootstrap(b).map_err(|r| bad("bootstrap_servers", r)))
            .transpose()?;
        let timeout = self
            .timeout
            .as_deref()
            .map(|t| parse_timeout(t).map_err(|r| bad("timeout", r)))
            .transpose()?;
        let max_in_flight = match self.max_in_flight {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => return Err(bad("max_in_flight", format!("must be at least 1, got {n}"))),
        };
        let enabled = match self.enabled {
            0 => false,
            1 => true,
            n => return Err(bad("enabled", format!("must be 0 or 1, got {n}"))),
        };
        Ok(ConsumerSettings {
            consumer_name: self.consumer_name.clone(),
            topics_input: topics("topics_input", &self.topics_input)?,
            topics_output: topics("topics_output", &self.topics_output)?,
            metadata,
            bootstrap_servers,
            timeout,
            max_in_flight,
            enabled,
        })
    }

    /// Sets `column` from text as `spine config set` takes it: topics as a
    /// JSON array or `a,b`; metadata as a JSON object; `enabled` as
    /// true/false/1/0; `null` (or an empty value) clears a column. Checks the
    /// value; the whole row is checked before it is written.
    pub fn set(&mut self, column: &str, value: &str) -> Result<(), InvalidColumn> {
        let Some(&column) = COLUMNS.iter().find(|c| **c == column) else {
            return Err(InvalidColumn {
                consumer: self.consumer_name.clone(),
                column: "(none)",
                reason: format!("no column `{column}`; one of: {}", COLUMNS.join(", ")),
            });
        };
        let bad = |reason: String| InvalidColumn {
            consumer: self.consumer_name.clone(),
            column,
            reason,
        };
        let value = value.trim();
        let cleared = value.is_empty() || value == "null";
        let text = |v: &str| (!cleared).then(|| v.to_owned());
        match column {
            "topics_input" | "topics_output" => {
                let list = if cleared {
                    None
                } else if value.starts_with('[') {
                    Some(parse_topics(value).map_err(bad)?)
                } else {
                    Some(value.split(',').map(|t| t.trim().to_owned()).collect())
                };
                let json = list.map(|l| serde_json::to_string(&l).unwrap_or_default());
                if column == "topics_input" {
                    self.topics_input = json;
                } else {
                    self.topics_output = json;
                }
            }
            "metadata" => self.metadata = text(value),
            "bootstrap_servers" => self.bootstrap_servers = text(value),
            "timeout" => self.timeout = text(value),
            "max_in_flight" => {
                self.max_in_flight = if cleared {
                    None
                } else {
                    Some(value.parse().map_err(|_| {
                        bad(format!("must be a whole number of messages, got `{value}`"))
                    })?)
                }
            }
            _ => {
                self.enabled = match value {
                    "1" | "true" | "yes" | "on" => 1,
                    "0" | "false" | "no" | "off" => 0,
                    _ => return Err(bad(format!("must be true or false, got `{value}`"))),
                }
            }
        }
        self.settings().map(|_| ())
    }
}

fn parse_topics(text: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| {
        format!(
            "must be a JSON array of topic names, like [\"orders\", \"payments\"] ({e}): `{text}`"
        )
    })?;
    if let Some(bad) = list.iter().find(|t| !valid_topic(t)) {
        return Err(format!(
            "`{bad}` is not a topic name (letters, digits, `.`, `_`, `-`; at most 249)"
        ));
    }
    Ok(list)
}

/// Kafka's own rule for topic names.
fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_bootstrap(text: &str) -> Result<String, String> {
    let text = text.trim();
    for server in text.split(',') {
        let ok = server
            .trim()
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(format!(
                "`{server}` is not host:port (a list is comma-separated: \"k1:9092,k2:9092\")"
            ));
        }
    }
    Ok(text.to_owned())
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".to_owned()),
        Err(e) => Err(format!("is not a duration like \"30s\" ({e}): `{text}`")),
    }
}

impl ConsumerSettings {
    /// The configuration `base` becomes under this row: what the row leaves
    /// NULL stays as `base` has it.
    pub(crate) fn apply(&self, base: &Config) -> Config {
        let mut c = base.clone();
        // The app built from it is the supervisor's; see `Builder::build`.
        c.app.config_source = None;
        if let Some(topics) = &self.topics_input {
            c.app.topics = topics.clone();
        }
        if let Some(servers) = &self.bootstrap_servers {
            c.kafka.remove("metadata.broker.list");
            c.kafka
                .insert("bootstrap.servers".to_owned(), servers.clone());
        }
        if let Some(n) = self.max_in_flight {
            c.dispatch.max_in_flight = n;
        }
        c
    }

    /// What handlers and the running loop read.
    pub(crate) fn live(&self) -> LiveValues {
        LiveValues {
            metadata: self.metadata.clone().unwrap_or_default(),
            topics_output: self.topics_output.clone().unwrap_or_default(),
            max_in_flight: self.max_in_flight,
        }
    }

    /// Whether going from `self` to `new` needs the app rebuilt (a new
    /// subscription, a new broker, or stopping/starting).
    pub(crate) fn needs_rebuild(&self, new: &ConsumerSettings) -> bool {
        self.enabled != new.enabled
            || self.topics_input != new.topics_input
            || self.bootstrap_servers != new.bootstrap_servers
    }

    /// The columns that differ, as `column: old → new`, for the log.
    pub(crate) fn changes(&self, new: &ConsumerSettings) -> Vec<String> {
        fn show<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap_or_default()
        }
        let (a, b) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(new).unwrap_or_default(),
        );
        COLUMNS
            .iter()
            .filter(|c| a.get(**c) != b.get(**c))
            .map(|c| format!("{c}: {} → {}", show(&a.get(*c)), show(&b.get(*c))))
            .collect()
    }
}

/// The `spine_consumer_configs` table of one database.
pub struct ConsumerConfigs {
    store: Store,
}

impl ConsumerConfigs {
    /// Connects to `url` (`sqlite://<file>` or `postgres://...`) and
    /// creates or migrates Spine's tables.
    pub async fn open(url: &str) -> Result<ConsumerConfigs, Error> {
        Ok(ConsumerConfigs {
            store: Store::open_for("app.config_source", url, 2).await?,
        })
    }

    /// The database, its password hidden.
    pub fn shown(&self) -> &str {
        &self.store.shown
    }

    /// Every row, by consumer name.
    pub async fn list(&self) -> Result<Vec<ConsumerConfigRow>, Error> {
        let rows = sqlx::query(&format!("{SELECT} ORDER BY consumer_name"))
            .fetch_all(&self.store.pool)
            .await
            .map_err(|e| store_error("listing the consumer configs", e))?;
        rows.iter().map(row_of).collect()
    }

    /// The row of `consumer`, if there is one.
    pub async fn get(&self, consumer: &str) -> Result<Option<ConsumerConfigRow>, Error> {
        let row = sqlx::query(&format!("{SELECT} WHERE consumer_name = $1"))
            .bind(consumer.to_owned())
            .fetch_optional(&self.store.pool)
            .await
            .map_err(|e| store_error("reading a consumer config", e))?;
        row.as_ref().map(row_of).transpose()
    }

    /// Sets one column of `consumer`'s row (creating the row if missing)
    /// after checking the value and the row it makes; returns that row.
    pub async fn set(
        &self,
        consumer: &str,
        column: &str,
        value: &str,
    ) -> Result<ConsumerConfigRow, Error> {
        let mut row = self
            .get(consumer)
            .await?
            .unwrap_or_else(|| ConsumerConfigRow::new(consumer));
        row.set(column, value)?;
        row.updated_at = now_ms();
        self.put(&row).await?;
        Ok(row)
    }

    /// Writes a whole row (checked first), replacing the one of its name.
    pub async fn put(&self, row: &ConsumerConfigRow) -> Result<(), Error> {
        row.settings()?;
        sqlx::query(
            "INSERT INTO spine_consumer_configs (consumer_name, topics_input, topics_output, \
             metadata, bootstrap_servers, timeout, max_in_flight, enabled, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (consumer_name) DO UPDATE SET topics_input = excluded.topics_input, \
             topics_output = excluded.topics_output, metadata = excluded.metadata, \
             bootstrap_servers = excluded.bootstrap_servers, timeout = excluded.timeout, \
             max_in_flight = excluded.max_in_flight, enabled = excluded.enabled, \
             updated_at = excluded.updated_at",
        )
        .bind(row.consumer_name.clone())
        .bind(row.topics_input.clone())
        .bind(row.topics_output.clone())
        .bind(row.metadata.clone())
        .bind(row.bootstrap_servers.clone())
        .bind(row.timeout.clone())
        .bind(row.max_in_flight)
        .bind(row.enabled)
        .bind(if row.updated_at > 0 {
            row.updated_at
        } else {
            now_ms()
        })
        .execute(&self.store.pool)
        .await
        .map_err(|e| store_error("writing a consumer config", e))?;
        Ok(())
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

const SELECT: &str = "SELECT consumer_name, topics_input, topics_output, metadata, \
     bootstrap_servers, timeout, max_in_flight, enabled, updated_at FROM spine_consumer_configs";

fn row_of(r: &sqlx::any::AnyRow) -> Result<ConsumerConfigRow, Error> {
    let read = || -> Result<ConsumerConfigRow, sqlx::Error> {
        Ok(ConsumerConfigRow {
            consumer_name: r.try_get("consumer_name")?,
            topics_input: r.try_get("topics_input")?,
            topics_output: r.try_get("topics_output")?,
            metadata: r.try_get("metadata")?,
            bootstrap_servers: r.try_get("bootstrap_servers")?,
            timeout: r.try_get("timeout")?,
            max_in_flight: r.try_get("max_in_flight")?,
            enabled: r.try_get("enabled")?,
            updated_at: r.try_get("updated_at")?,
        })
    };
    read().map_err(|e| store_error("reading a consumer config", e))
}

fn store_error(doing: &str, e: sqlx::Error) -> Error {
    Error::Store(format!("{doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_checks_each_column() {
        let mut row = ConsumerConfigRow::new("orders");
        row.set("topics_input", "a, b").unwrap();
        assert_eq!(row.topics_input.as_deref(), Some(r#"["a","b"]"#));
        row.set("max_in_flight", "16").unwrap();
        row.set("enabled", "false").unwrap();
        row.set("timeout", "30s").unwrap();
        let s = row.settings().unwrap();
        assert_eq!(s.max_in_flight, Some(16));
        assert!(!s.enabled);
        assert_eq!(s.timeout, Some(Duration::from_secs(30)));
        for (column, value, says) in [
            ("max_in_flight", "0", "at least 1"),
            ("max_in_flight", "many", "whole number"),
            ("metadata", "[1]", "JSON object"),
            ("metadata", "{", "not JSON"),
            ("topics_output", "[\"a b\"]", "not a topic name"),
            ("bootstrap_servers", "localhost", "host:port"),
            ("timeout", "soon", "duration"),
            ("enabled", "maybe", "true or false"),
            ("colour", "red", "no column"),
        ] {
            let mut r = row.clone();
            let e = r.set(column, value).unwrap_err();
            assert!(e.reason.contains(says), "{column}={value}: {e}");
        }
    }

    #[test]
    fn a_row_fills_only_what_it_sets() {
        let base = Config::from_toml(
            "[kafka]\n\"bootstrap.servers\" = \"file:1\"\n[dispatch]\nmax_in_flight = 8\n[app]\ntopics = [\"x\"]\n",
        )
        .unwrap();
        let mut row = ConsumerConfigRow::new("c");
        row.set("max_in_flight", "3").unwrap();
        let c = row.settings().unwrap().apply(&base);
        assert_eq!(c.dispatch.max_in_flight, 3);
        assert_eq!(c.app.topics, ["x"]);
        assert_eq!(c.bootstrap_servers(), Some("file:1"));
        let old = row.settings().unwrap();
        row.set("topics_input", "y").unwrap();
        let new = row.settings().unwrap();
        assert!(old.needs_rebuild(&new));
        assert_eq!(old.changes(&new), [r#"topics_input: null → ["y"]"#]);
    }
}
