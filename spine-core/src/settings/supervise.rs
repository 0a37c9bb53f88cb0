//! [`Supervised`]: an app run under its `spine_consumer_configs` row, taking
//! the row's changes while it runs.
//!
//! The row is watched: PostgreSQL announces each change (a trigger calls
//! `pg_notify`, and the supervisor LISTENs), with a poll every few seconds
//! as a backstop; SQLite has no notifications and is polled every second.
//! A changed row is checked first; an invalid one is logged with its column
//! and reason, and the running settings stay. Metadata, output topics,
//! `max_in_flight` and the aggregation timeout apply to the running app.
//! `enabled`, input topics and bootstrap servers need a new consumer: the
//! running app stops as at shutdown (in-flight handlers finish, offsets are
//! committed, it leaves the group), and, unless disabled, is built again
//! from the same builder with the new settings, in the same process.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{ConsumerConfigRow, ConsumerConfigs, ConsumerSettings};
use crate::app::{stop_on_signals, Builder};
use crate::config::live::Live;
use crate::config::Config;
use crate::error::Error;
use crate::metrics as m;
use crate::shutdown::Shutdown;
use crate::store::Dialect;

/// How often SQLite is polled, and PostgreSQL besides its notifications.
const SQLITE_POLL: Duration = Duration::from_secs(1);
const POSTGRES_POLL: Duration = Duration::from_secs(5);

/// What a supervised app is doing, for tests and status displays.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SupervisorState {
    /// An app is consuming.
    pub running: bool,
    /// Apps built so far (1 at the start; +1 per rebuild).
    pub builds: u64,
    /// Changes applied since the start (live or by a rebuild).
    pub reloads: u64,
    /// The settings in force.
    pub settings: Option<ConsumerSettings>,
    /// The last row refused, with its column and reason.
    pub rejected: Option<String>,
}

/// An app whose settings live in a database row (`[app] config_source`).
pub struct Supervised {
    builder: Builder,
    base: Config,
    source: String,
    consumer: String,
    shutdown: Shutdown,
    state: watch::Sender<SupervisorState>,
}

impl Supervised {
    /// The supervisor of `builder`'s app, whose row is `consumer`'s
    /// (default: `[app] name`). `Ok(Err(builder))` when the configuration
    /// has no `config_source`: run the app as usual.
    pub fn new(
        mut builder: Builder,
        consumer: Option<&str>,
    ) -> Result<Result<Supervised, Builder>, Error> {
        let base = match builder.take_config() {
            Some(c) => c,
            None => Config::load()?,
        };
        let Some(source) = base.app.config_source.clone() else {
            return Ok(Err(builder.config(base)));
        };
        base.validate()?;
        Ok(Ok(Supervised {
            builder,
            consumer: consumer.unwrap_or(&base.app.name).to_owned(),
            base,
            source,
            shutdown: Shutdown::new(),
            state: watch::Sender::new(SupervisorState::default()),
        }))
    }

    /// Stops the app (and the supervisor) from elsewhere.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Follows what the supervisor is doing.
    pub fn state(&self) -> watch::Receiver<SupervisorState> {
        self.state.subscribe()
    }

    /// Runs until SIGINT or SIGTERM, as [`crate::App::run`] does.
    pub async fn run(self) -> Result<(), Error> {
        stop_on_signals(self.shutdown.clone())?;
        self.run_until_stopped().await
    }

    /// Runs until [`Supervised::shutdown_handle`] is triggered.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let configs = ConsumerConfigs::open(&self.source).await?;
        let mut watcher = Watcher::start(&self.source, &configs, &self.consumer).await;
        let mut row = configs.get(&self.consumer).await?;
        let mut current = settings_of(&self.consumer, row.as_ref())?;
        tracing::info!(
            consumer = %self.consumer,
            source = configs.shown(),
            row = row.is_some(),
            "consumer settings loaded"
        );
        let live = Arc::new(Live::default());
        // An app built from a changed row before the old one stops: a row
        // that does not build is refused like an invalid one.
        let mut next = None;
        loop {
            live.set(current.live(), current.timeout);
            self.state
                .send_modify(|s| s.settings = Some(current.clone()));
            let running = if current.enabled {
                let app = match next.take() {
                    Some(app) => app,
                    None => self.build(&current, &live)?,
                };
                let stop = app.shutdown_handle();
                let forced = self.shutdown.clone();
                let force = stop.clone();
                let forwarding = tokio::spawn(async move {
                    forced.forced().await;
                    force.force();
                });
                self.state.send_modify(|s| {
                    s.running = true;
                    s.builds += 1;
                });
                let task = tokio::spawn(app.run_until(std::future::pending()));
                Some((task, stop, forwarding))
            } else {
                tracing::info!(consumer = %self.consumer, "disabled in its consumer config: not consuming until `enabled` is 1");
                self.state.send_modify(|s| s.running = false);
                None
            };
            let (mut task, stop, forwarding) = match running {
                Some((t, s, f)) => (Some(t), Some(s), Some(f)),
                None => (None, None, None),
            };
            // Until the app must be rebuilt (or stops).
            let outcome = loop {
                tokio::select! {
                    _ = self.shutdown.wait() => break Step::Stop,
                    joined = async { task.as_mut().expect("polled only when running").await }, if task.is_some() => {
                        task = None;
                        break Step::Ended(joined.unwrap_or_else(|e| Err(Error::Store(format!("the app's task failed: {e}")))));
                    }
                    () = watcher.changed() => {
                        let fresh = match configs.get(&self.consumer).await {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::warn!(consumer = %self.consumer, error = %e, "cannot read the consumer config; keeping the current settings");
                                continue;
                            }
                        };
                        if fresh.as_ref().map(without_stamp) == row.as_ref().map(without_stamp) {
                            continue;
                        }
                        let new = match settings_of(&self.consumer, fresh.as_ref()) {
                            Ok(s) => s,
                            Err(e) => {
                                self.reject(&e);
                                row = fresh;
                                continue;
                            }
                        };
                        row = fresh;
                        self.state.send_modify(|s| s.rejected = None);
                        let changes = current.changes(&new);
                        if changes.is_empty() {
                            continue;
                        }
                        let rebuild = current.needs_rebuild(&new);
                        if rebuild && new.enabled {
                            match self.build(&new, &live) {
                                Ok(app) => next = Some(app),
                                Err(e) => {
                                    self.reject(&e);
                                    continue;
                                }
                            }
                        }
                        tracing::info!(
                            consumer = %self.consumer,
                            changes = %changes.join("; "),
                            applied = if rebuild { "by rebuilding the consumer" } else { "live" },
                            "consumer config reloaded"
                        );
                        metrics::counter!(m::CONFIG_RELOADS, "outcome" => "applied").increment(1);
                        self.state.send_modify(|s| s.reloads += 1);
                        current = new;
                        if rebuild {
                            break Step::Rebuild;
                        }
                        live.set(current.live(), current.timeout);
                        self.state.send_modify(|s| s.settings = Some(current.clone()));
                    }
                }
            };
            let result = match (outcome, task, stop) {
                (Step::Ended(result), _, _) => Some(result),
                (step, Some(task), Some(stop)) => {
                    // As at shutdown: in-flight handlers finish, offsets
                    // commit, the consumer leaves its group.
                    stop.trigger();
                    let result = task.await.unwrap_or_else(|e| {
                        Err(Error::Store(format!("the app's task failed: {e}")))
                    });
                    match step {
                        Step::Rebuild => {
                            result?;
                            None
                        }
                        _ => Some(result),
                    }
                }
                (Step::Rebuild, _, _) => None,
                (_, _, _) => Some(Ok(())),
            };
            if let Some(f) = forwarding {
                f.abort();
            }
            self.state.send_modify(|s| s.running = false);
            if let Some(result) = result {
                return result;
            }
        }
    }
}

impl Supervised {
    /// The app as `settings` make it.
    fn build(&self, settings: &ConsumerSettings, live: &Arc<Live>) -> Result<crate::App, Error> {
        self.builder
            .duplicate(settings.apply(&self.base), live.clone())
            .build()
    }

    /// A row that is invalid, or does not build: logged and counted; the
    /// settings in force stay.
    fn reject(&self, e: &dyn std::fmt::Display) {
        tracing::error!(consumer = %self.consumer, error = %e, "consumer config rejected; the previous settings stay");
        metrics::counter!(m::CONFIG_RELOADS, "outcome" => "rejected").increment(1);
        self.state.send_modify(|s| s.rejected = Some(e.to_string()));
    }
}

enum Step {
    Stop,
    Rebuild,
    Ended(Result<(), Error>),
}

/// The row without its `updated_at`: a write that changes nothing else is
/// not a change.
fn without_stamp(r: &ConsumerConfigRow) -> ConsumerConfigRow {
    ConsumerConfigRow {
        updated_at: 0,
        ..r.clone()
    }
}

/// The settings of `row`; no row: the file's.
fn settings_of(consumer: &str, row: Option<&ConsumerConfigRow>) -> Result<ConsumerSettings, Error> {
    match row {
        Some(r) => Ok(r.settings()?),
        None => Ok(ConsumerConfigRow::new(consumer).settings()?),
    }
}

/// Says when the row may have changed.
struct Watcher {
    poll: tokio::time::Interval,
    /// PostgreSQL: the LISTEN connection, while it works.
    listener: Option<sqlx::postgres::PgListener>,
    /// PostgreSQL: the URL to LISTEN again on after losing the connection.
    url: Option<String>,
    consumer: String,
}

impl Watcher {
    async fn start(url: &str, configs: &ConsumerConfigs, consumer: &str) -> Watcher {
        let postgres = configs.store().dialect == Dialect::Postgres;
        let listener = if postgres { listen(url).await } else { None };
        let period = if postgres { POSTGRES_POLL } else { SQLITE_POLL };
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Watcher {
            poll,
            listener,
            url: postgres.then(|| url.to_owned()),
            consumer: consumer.to_owned(),
        }
    }

    /// Completes when the row should be read again.
    async fn changed(&mut self) {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                self.poll.tick().await;
                if let Some(url) = &self.url {
                    self.listener = listen(url).await;
                }
                return;
            };
            tokio::select! {
                _ = self.poll.tick() => return,
                n = listener.recv() => match n {
                    Ok(n) if n.payload() == self.consumer => return,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the LISTEN connection for consumer configs; polling until it is back");
                        self.listener = None;
                        return;
                    }
                },
            }
        }
    }
}

async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let listening = async {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen("spine_consumer_configs").await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match listening.await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for consumer config changes; polling every {POSTGRES_POLL:?}");
            None
        }
    }
}
