//! The command line every Spine service gets from [`crate::run`] (one app)
//! or [`crate::run_many`] (named consumers in one binary): `run` (the
//! default), `consumers`, `routes`, `schemas export`, `schemas check`,
//! `replay`, `asyncapi` and `openapi`, so operators use the same commands for
//! every service.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use spine_kafka_core::{Builder, RouteInfo};

/// A Spine service.
#[derive(Debug, Parser)]
#[command(
    about = "A Spine service. Without a command, it runs: consumes and handles until SIGINT or SIGTERM."
)]
#[command(
    after_help = "Examples:\n  my-service                 # run\n  my-service routes\n  my-service schemas export schemas/\n  my-service schemas check --registry http://127.0.0.1:8081\n  my-service asyncapi > asyncapi.json\n  my-service openapi > openapi.json\n\nSettings come from spine.toml (or $SPINE_CONFIG) and SPINE_* variables.\n\nExit status: 0 on a clean stop, 1 on an error, 2 on a usage error, 3 when it stopped without committing messages it handled (the broker did not confirm in time, or a second SIGINT/SIGTERM): those are handled again after the restart."
)]
struct ServiceCli {
    /// The named consumer to act on, in a service that runs several
    /// (`spine::run_many`); `run` without it runs them all.
    #[arg(long, global = true, value_name = "NAME")]
    consumer: Option<String>,
    #[command(subcommand)]
    command: Option<ServiceCommand>,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Consumes and handles until SIGINT or SIGTERM (the default); a second
    /// signal stops at once.
    #[command(
        after_help = "Examples:\n  SPINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 my-service run\n  my-service run --consumer orders --group orders-eu --topics orders.eu,orders.eu.retry\n\nWithout --consumer, every consumer of the service runs, each in its own group. Stops within dispatch.shutdown_timeout plus dispatch.commit_timeout. Exit status 3: stopped without committing messages it handled; they are handled again after the restart."
    )]
    Run(RunArgs),
    /// Lists the service's named consumers: group, topics and handlers.
    #[command(after_help = "Example:\n  my-service consumers")]
    Consumers,
    /// Prints the dispatch table: topic, event, handler or pipeline, payload type, codec, source.
    #[command(after_help = "Example:\n  my-service routes")]
    Routes,
    /// Avro schemas of the handlers' payload types.
    #[cfg(feature = "avro")]
    #[command(
        subcommand,
        after_help = "Examples:\n  my-service schemas export schemas/\n  my-service schemas check --registry http://127.0.0.1:8081"
    )]
    Schemas(SchemasCommand),
    /// Reprocesses a range of offsets through the same handlers, without moving
    /// the live group's committed offsets. Publishes nothing unless --publish.
    #[command(
        after_help = "Examples:\n  my-service replay --group my-service-replay --from 2026-11-24T09:00:00Z --until 2026-11-24T10:00:00Z --dry-run\n  my-service replay --group my-service-replay --from earliest --publish"
    )]
    Replay(ReplayArgs),
    /// The database inbox's rows (`[inbox] url`): list, show, retry, purge.
    #[cfg(feature = "inbox")]
    #[command(
        subcommand,
        after_help = "Examples:\n  my-service inbox list --status error --limit 20\n  my-service inbox show 42\n  my-service inbox retry 42\n  my-service inbox retry --status dead\n  my-service inbox purge --older-than 7d"
    )]
    Inbox(InboxCommand),
    /// Prints an AsyncAPI 3.0 document (JSON) of the service.
    #[command(after_help = "Example:\n  my-service asyncapi > asyncapi.json")]
    Asyncapi,
    /// Prints the OpenAPI 3.1 document (JSON) of the handlers served over
    /// HTTP, as GET /openapi.json serves it.
    #[cfg(feature = "http")]
    #[command(
        after_help = "Example:\n  my-service openapi > openapi.json\n\nA handler is served over HTTP with #[on(..., http = \"POST /orders\")] or [http.endpoints.<handler>] route in spine.toml."
    )]
    Openapi,
}

#[derive(Debug, Default, clap::Args)]
struct RunArgs {
    /// Consumer group, instead of the configured one.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Topics to subscribe besides the handlers' own, comma-separated
    /// (replaces `[app] topics`, or `[consumers.<name>] topics`).
    #[arg(long, value_name = "TOPICS", value_delimiter = ',')]
    topics: Option<Vec<String>>,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The replay's own consumer group (never committed; not the live group).
    #[arg(long)]
    group: String,
    /// Where to start: `earliest`, an offset, or an RFC 3339 time.
    #[arg(long, value_name = "WHERE")]
    from: spine_kafka_core::Position,
    /// Where to stop (exclusive): an offset, an RFC 3339 time, or `latest` (the default: the end as it is now).
    #[arg(long, value_name = "WHERE", default_value = "latest")]
    until: spine_kafka_core::Position,
    /// Print the events that would be published, one per line.
    #[arg(long)]
    dry_run: bool,
    /// Publish what the handlers produce (replies, emitted events, dead letters).
    #[arg(long, conflicts_with = "dry_run")]
    publish: bool,
    /// Only this topic (repeatable; default: every topic the service handles).
    #[arg(long)]
    topic: Vec<String>,
}

#[cfg(feature = "inbox")]
#[derive(Debug, Subcommand)]
enum InboxCommand {
    /// Rows, newest first: status, attempts, last error, where the message came from.
    #[command(after_help = "Example:\n  my-service inbox list --status error --limit 20")]
    List {
        /// Only rows of this status: pending, error, dead, processed.
        #[arg(long)]
        status: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One row, with its message's headers and payload.
    #[command(after_help = "Example:\n  my-service inbox show 42")]
    Show {
        /// The row's id (first column of `inbox list`).
        id: i64,
    },
    /// Makes a row, or every row of a status, due now; a dead row gets its
    /// attempts back. The service's workers (queue mode) take them.
    #[command(
        after_help = "Examples:\n  my-service inbox retry 42\n  my-service inbox retry --status dead"
    )]
    Retry {
        /// The row's id.
        #[arg(required_unless_present = "status")]
        id: Option<i64>,
        /// Every row of this status (error or dead).
        #[arg(long, conflicts_with = "id")]
        status: Option<String>,
    },
    /// Deletes processed and dead rows, and sent outbox rows, older than a duration.
    #[command(after_help = "Example:\n  my-service inbox purge --older-than 7d")]
    Purge {
        /// How old: 7d, 12h, 30m.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: std::time::Duration,
    },
}

#[cfg(feature = "avro")]
#[derive(Debug, Subcommand)]
enum SchemasCommand {
    /// Writes the Avro schema of every payload type, and of the reply types
    /// declared with `#[on(replies(...))]`, as `<record full name>.avsc`.
    #[command(after_help = "Example:\n  my-service schemas export schemas/")]
    Export {
        /// Where to write the files.
        #[arg(default_value = "schemas")]
        dir: std::path::PathBuf,
    },
    /// Checks that every Avro handler can read its subject's latest registered
    /// schema (Avro resolution rules): schema drift, caught before deploy.
    #[command(
        after_help = "Example:\n  my-service schemas check --registry http://127.0.0.1:8081\n\nExits non-zero if a handler cannot read its subject's latest schema."
    )]
    Check {
        /// The registry (default: `[schema_registry] url`).
        #[arg(long = "registry", value_name = "URL")]
        registry: Option<String>,
    },
}

/// Runs the service's command line: `run` (the default), `routes`,
/// `schemas export|check`, `asyncapi`. The exit status is 0 on a clean stop,
/// 1 on an error, 2 on a usage error, and 3 when the service stopped without
/// committing messages it had handled ([`crate::Error::Uncommitted`]: the broker did
/// not confirm the final commit within `dispatch.commit_timeout`, or a second
/// signal forced the stop). Call it from `main`:
///
/// ```no_run
/// use spine::prelude::*;
///
/// #[on(event = "order.placed", topic = "orders")]
/// async fn accept(_order: serde_json::Value) {}
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     spine::init_tracing();
///     spine::run(Spine::builder().handlers(spine::handlers![accept])).await
/// }
/// ```
pub async fn run(builder: Builder) -> ExitCode {
    run_from(builder, std::env::args_os()).await
}

/// [`run`] with the given command line instead of the process's (the first
/// item is the program's name).
pub async fn run_from<I, T>(builder: Builder, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    command_line(vec![(None, builder)], args).await
}

/// Several apps in one binary, each a named consumer with its own group
/// (`[consumers.<name>] group`, or the app's group followed by `.<name>`) and
/// topics, under one command line: `run` runs them all, `run --consumer
/// orders [--group G] [--topics a,b]` one of them, and `consumers` lists
/// them. Only the first serves `[http]` (metrics and probes cover all).
///
/// ```no_run
/// use spine::prelude::*;
///
/// #[on(event = "order.placed", topic = "orders")]
/// async fn accept(_order: serde_json::Value) {}
///
/// #[on(event = "order.placed", topic = "orders")]
/// async fn audit(_order: serde_json::Value) {}
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     spine::init_tracing();
///     spine::run_many([
///         ("orders", Spine::builder().handlers(spine::handlers![accept])),
///         ("audit", Spine::builder().handlers(spine::handlers![audit])),
///     ])
///     .await
/// }
/// ```
pub async fn run_many<N: Into<String>>(
    consumers: impl IntoIterator<Item = (N, Builder)>,
) -> ExitCode {
    run_many_from(consumers, std::env::args_os()).await
}

/// [`run_many`] with the given command line instead of the process's.
pub async fn run_many_from<N, I, T>(
    consumers: impl IntoIterator<Item = (N, Builder)>,
    args: I,
) -> ExitCode
where
    N: Into<String>,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let named = consumers
        .into_iter()
        .map(|(n, b)| (Some(n.into()), b))
        .collect();
    command_line(named, args).await
}

/// An app of the service; `None` names the one app of `spine::run`.
type Named = (Option<String>, Builder);

async fn command_line<I, T>(consumers: Vec<Named>, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match ServiceCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let command = cli
        .command
        .unwrap_or(ServiceCommand::Run(RunArgs::default()));
    let result = match command {
        ServiceCommand::Run(args) => match select(consumers, cli.consumer.as_deref(), true) {
            Ok(chosen) => run_apps(chosen, args).await,
            Err(e) => Err(e),
        },
        ServiceCommand::Consumers => list_consumers(consumers),
        other => match select(consumers, cli.consumer.as_deref(), false) {
            Ok(mut one) => {
                let (name, builder) = one.remove(0);
                match configured(builder, name.as_deref(), &RunArgs::default()) {
                    Ok(b) => single(other, b).await,
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e.downcast_ref::<spine_kafka_core::Error>() {
                Some(spine_kafka_core::Error::Uncommitted { .. }) => ExitCode::from(UNCOMMITTED),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The consumers a command acts on: the one named by `--consumer`, or all
/// (`run`), or the only one.
fn select(
    mut consumers: Vec<Named>,
    wanted: Option<&str>,
    all: bool,
) -> Result<Vec<Named>, Box<dyn std::error::Error>> {
    let names = || {
        consumers
            .iter()
            .filter_map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(want) => {
            if consumers.iter().all(|(n, _)| n.is_none()) {
                return Err(format!(
                    "--consumer {want}: this service runs one app, without named consumers; drop --consumer"
                )
                .into());
            }
            match consumers
                .iter()
                .position(|(n, _)| n.as_deref() == Some(want))
            {
                Some(i) => Ok(vec![consumers.swap_remove(i)]),
                None => {
                    Err(format!("no consumer named `{want}`; this service has: {}", names()).into())
                }
            }
        }
        None if all || consumers.len() == 1 => Ok(consumers),
        None => Err(format!(
            "this service runs {} consumers ({}): pass --consumer NAME",
            consumers.len(),
            names()
        )
        .into()),
    }
}

/// The builder with the consumer's own settings and the command line's.
fn configured(
    builder: Builder,
    name: Option<&str>,
    args: &RunArgs,
) -> Result<Builder, spine_kafka_core::Error> {
    if name.is_none() && args.group.is_none() && args.topics.is_none() {
        return Ok(builder);
    }
    builder.configure(|c| {
        if let Some(name) = name {
            c.for_consumer(name);
        }
        if let Some(g) = &args.group {
            c.app.group = Some(g.clone());
        }
        if let Some(t) = &args.topics {
            c.app.topics = t.clone();
        }
    })
}

/// Runs a command that acts on one app.
async fn single(command: ServiceCommand, builder: Builder) -> CliResult {
    match command {
        ServiceCommand::Run(_) | ServiceCommand::Consumers => unreachable!("handled by the caller"),
        ServiceCommand::Routes => builder
            .describe()
            .map(|(_, r)| print_routes(&r))
            .map_err(Into::into),
        #[cfg(feature = "avro")]
        ServiceCommand::Schemas(SchemasCommand::Export { dir }) => export(builder, &dir),
        #[cfg(feature = "avro")]
        ServiceCommand::Schemas(SchemasCommand::Check { registry }) => {
            check(builder, registry).await
        }
        ServiceCommand::Replay(args) => replay(builder, args).await,
        #[cfg(feature = "inbox")]
        ServiceCommand::Inbox(command) => inbox(builder, command).await,
        ServiceCommand::Asyncapi => builder
            .describe()
            .map(|(c, r)| {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&spine_kafka_core::asyncapi::document(&c, &r))
                        .unwrap_or_default()
                );
            })
            .map_err(Into::into),
        #[cfg(feature = "http")]
        ServiceCommand::Openapi => builder
            .openapi()
            .map(|doc| println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default()))
            .map_err(Into::into),
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The exit status of a stop that left handled messages uncommitted.
const UNCOMMITTED: u8 = 3;

/// Builds every chosen app, then runs them together until SIGINT or SIGTERM.
/// One that fails stops the others; the first error is the command's. An
/// app with `[app] config_source` runs under its supervisor, which builds it
/// from its row (and again when the row changes).
async fn run_apps(chosen: Vec<Named>, args: RunArgs) -> CliResult {
    use tracing::Instrument;
    let several = chosen.len() > 1;
    let mut apps = Vec::with_capacity(chosen.len());
    for (i, (name, builder)) in chosen.into_iter().enumerate() {
        let mut builder = configured(builder, name.as_deref(), &args)?;
        if several && i > 0 {
            // One listener per process: the first consumer's serves metrics
            // and probes; the others' would collide on its port.
            builder = builder.configure(|c| c.http.listen = None)?;
        }
        let in_consumer = |e: spine_kafka_core::Error| match &name {
            Some(n) => format!("consumer `{n}`: {e}").into(),
            None => Box::<dyn std::error::Error>::from(e),
        };
        #[cfg(feature = "config-db")]
        let builder = match spine_kafka_core::settings::Supervised::new(builder, name.as_deref())
            .map_err(in_consumer)?
        {
            Ok(supervised) => {
                apps.push((name, Runnable::Supervised(Box::new(supervised))));
                continue;
            }
            Err(builder) => builder,
        };
        let app = builder.build().map_err(in_consumer)?;
        apps.push((name, Runnable::App(app)));
    }
    let stops: Vec<_> = apps.iter().map(|(_, a)| a.shutdown_handle()).collect();
    let mut running = tokio::task::JoinSet::new();
    for (name, app) in apps {
        let span = tracing::info_span!("consumer", name = name.as_deref().unwrap_or(""));
        running.spawn(async move { (name, app.run().await) }.instrument(span));
    }
    let mut first: Option<Box<dyn std::error::Error>> = None;
    while let Some(joined) = running.join_next().await {
        let (name, result): (_, CliResult) = match joined {
            Ok((name, r)) => (name, r.map_err(Into::into)),
            Err(e) => (None, Err(format!("a consumer's task failed: {e}").into())),
        };
        if let Err(e) = result {
            if first.is_none() {
                stops.iter().for_each(spine_kafka_core::Shutdown::trigger);
                if let (Some(n), true) = (&name, several) {
                    eprintln!("consumer `{n}` stopped with an error; stopping the others");
                }
                first = Some(e);
            }
        }
    }
    crate::shutdown_tracing();
    first.map_or(Ok(()), Err)
}

/// An app to run: built, or built by its supervisor from its settings row.
enum Runnable {
    App(spine_kafka_core::App),
    #[cfg(feature = "config-db")]
    Supervised(Box<spine_kafka_core::settings::Supervised>),
}

impl Runnable {
    fn shutdown_handle(&self) -> spine_kafka_core::Shutdown {
        match self {
            Runnable::App(a) => a.shutdown_handle(),
            #[cfg(feature = "config-db")]
            Runnable::Supervised(s) => s.shutdown_handle(),
        }
    }

    async fn run(self) -> Result<(), spine_kafka_core::Error> {
        match self {
            Runnable::App(a) => a.run().await,
            #[cfg(feature = "config-db")]
            Runnable::Supervised(s) => s.run().await,
        }
    }
}

/// Prints the named consumers: group, topics, handlers.
fn list_consumers(consumers: Vec<Named>) -> CliResult {
    let mut t = table(&["consumer", "group", "topics", "handlers"]);
    for (name, builder) in consumers {
        let builder = configured(builder, name.as_deref(), &RunArgs::default())?;
        let (config, routes) = builder.describe()?;
        let topics: std::collections::BTreeSet<&str> = routes
            .iter()
            .filter(|r| r.subscribed)
            .map(|r| r.topic.as_str())
            .collect();
        let handlers: std::collections::BTreeSet<String> =
            routes.iter().map(|r| r.display_name()).collect();
        t.add_row(vec![
            name.unwrap_or_else(|| "(the app)".into()),
            config.group_id().to_owned(),
            topics.into_iter().collect::<Vec<_>>().join(", "),
            handlers.into_iter().collect::<Vec<_>>().join(", "),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn replay(builder: Builder, args: ReplayArgs) -> CliResult {
    use indicatif::{ProgressBar, ProgressStyle};
    let options = spine_kafka_core::ReplayOptions {
        group: args.group,
        from: args.from,
        until: args.until,
        publish: args.publish,
        topics: args.topic,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress =
        |all: &[spine_kafka_core::ReplayRange], r: &spine_kafka_core::ReplayRange, offset: i64| {
            if bar.length() == Some(0) {
                bar.set_length(all.iter().map(|r| (r.until - r.from) as u64).sum());
            }
            bar.inc(1);
            bar.set_message(format!(
                "{}[{}] offset {offset} of {}..{}",
                r.topic, r.partition, r.from, r.until
            ));
        };
    let report = builder.replay(options, &mut progress).await?;
    bar.finish_and_clear();
    let total: i64 = report.ranges.iter().map(|r| r.until - r.from).sum();
    let mut t = table(&["topic", "partition", "from", "until"]);
    for r in &report.ranges {
        t.add_row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            r.from.to_string(),
            r.until.to_string(),
        ]);
    }
    println!("{t}");
    if args.dry_run {
        for s in &report.unpublished {
            let payload = s
                .payload
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            println!(
                "would publish {} {} {}",
                s.topic,
                s.event().unwrap_or("-"),
                payload
            );
        }
    }
    let what = if args.publish {
        "published".to_owned()
    } else {
        format!(
            "{} record(s) not published (use --publish)",
            report.unpublished.len()
        )
    };
    println!(
        "Replayed {} of {total} message(s); {what}. The live group's offsets were not touched.",
        report.messages
    );
    Ok(())
}

/// `7d`, `12h`, `30m`, `90s`.
#[cfg(feature = "inbox")]
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}`: write a number and a unit, as in 7d, 12h, 30m or 90s"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("`{s}`: the unit is d, h, m or s (as in 7d)")),
    };
    Ok(std::time::Duration::from_secs(n * secs))
}

/// A time stored as milliseconds since the epoch, as RFC 3339 (seconds).
#[cfg(feature = "inbox")]
fn time_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(feature = "inbox")]
async fn inbox(builder: Builder, command: InboxCommand) -> CliResult {
    use spine_kafka_core::inbox::Inbox;
    // The configuration only: the inbox's rows need no topics or handlers.
    let mut config = None;
    let _ = builder.configure(|c| config = Some(c.clone()))?;
    let config = config.expect("configure calls back");
    let inbox = Inbox::open(&config).await?;
    match command {
        InboxCommand::List { status, limit } => {
            let rows = inbox.list(status.as_deref(), limit).await?;
            let mut t = table(&[
                "id",
                "status",
                "attempts",
                "topic",
                "partition",
                "offset",
                "key",
                "event",
                "last error",
                "created",
                "updated",
            ]);
            for r in &rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.status.clone(),
                    r.attempts.to_string(),
                    r.topic.clone(),
                    r.partition.to_string(),
                    r.offset.to_string(),
                    r.key.clone().unwrap_or_default(),
                    r.event.clone().unwrap_or_default(),
                    r.last_error.clone().unwrap_or_default(),
                    time_ms(r.created_at),
                    time_ms(r.updated_at),
                ]);
            }
            println!("{t}");
            let counts = inbox.counts().await?;
            let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            println!(
                "{} row(s) shown; in all: {}",
                rows.len(),
                summary.join(", ")
            );
        }
        InboxCommand::Show { id } => {
            let Some(e) = inbox.get(id).await? else {
                return Err(format!("no inbox row {id}; `inbox list` shows the ids").into());
            };
            let r = &e.row;
            let mut t = table(&["field", "value"]);
            let next = r.next_attempt_at.map(time_ms).unwrap_or_default();
            for (k, v) in [
                ("id", r.id.to_string()),
                ("status", r.status.clone()),
                ("attempts", r.attempts.to_string()),
                ("last error", r.last_error.clone().unwrap_or_default()),
                ("consumer group", r.consumer.clone()),
                ("message id", r.message_id.clone()),
                ("topic", r.topic.clone()),
                ("partition", r.partition.to_string()),
                ("offset", r.offset.to_string()),
                ("key", r.key.clone().unwrap_or_default()),
                ("event", r.event.clone().unwrap_or_default()),
                ("created", time_ms(r.created_at)),
                ("updated", time_ms(r.updated_at)),
                ("next attempt", next),
            ] {
                t.add_row(vec![k.to_owned(), v]);
            }
            for (k, v) in &e.headers {
                t.add_row(vec![
                    format!("header {k}"),
                    String::from_utf8_lossy(v).into_owned(),
                ]);
            }
            let payload = e
                .payload
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_else(|| "(not kept: dedupe mode keeps only the id)".to_owned());
            t.add_row(vec!["payload".to_owned(), payload]);
            println!("{t}");
        }
        InboxCommand::Retry { id, status } => {
            let n = inbox.retry(id, status.as_deref()).await?;
            let mut t = table(&["retried", "what"]);
            let what = match (id, &status) {
                (Some(id), _) => format!("row {id}"),
                (None, Some(s)) => format!("rows with status {s}"),
                (None, None) => String::new(),
            };
            t.add_row(vec![n.to_string(), what]);
            println!("{t}");
            if n == 0 {
                return Err("nothing to retry: no such row, or it is processed".into());
            }
        }
        InboxCommand::Purge { older_than } => {
            let (rows, outbox) = inbox.purge(older_than).await?;
            let mut t = table(&["deleted", "from"]);
            t.add_row(vec![rows.to_string(), "inbox (processed, dead)".to_owned()]);
            t.add_row(vec![outbox.to_string(), "outbox (sent)".to_owned()]);
            println!("{t}");
        }
    }
    Ok(())
}

/// A table with these column headers, in the style of every Spine command
/// (the `spine` CLI's too).
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.to_vec());
    t
}

fn print_routes(routes: &[RouteInfo]) {
    let mut t = table(&["topic", "event", "handler", "payload", "codec", "source"]);
    for r in routes {
        t.add_row(vec![
            r.topic.clone(),
            r.event.clone().unwrap_or_else(|| "*".into()),
            r.display_name(),
            r.handler.payload.to_owned(),
            r.codec.to_owned(),
            r.handler.location(),
        ]);
    }
    println!("{t}");
}

#[cfg(feature = "avro")]
/// The record full name of a schema's JSON text.
fn record_name(schema: &str) -> Option<String> {
    spine_kafka_avro::apache_avro::Schema::parse_str(schema)
        .ok()?
        .name()
        .map(|n| n.fullname(None))
}

#[cfg(feature = "avro")]
fn export(builder: Builder, dir: &std::path::Path) -> CliResult {
    let (_, routes) = builder.describe()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = std::collections::BTreeSet::new();
    for r in &routes {
        let payload = r
            .handler
            .reader_schema
            .as_ref()
            .map(|s| (r.handler.payload, s, "payload"));
        let replies = r
            .handler
            .replies
            .iter()
            .filter_map(|(ty, s)| s.as_ref().map(|s| (*ty, s, "reply")));
        for (ty, schema, role) in payload.into_iter().chain(replies) {
            let Some(name) = record_name(schema) else {
                continue;
            };
            if !written.insert(name.clone()) {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(schema)?;
            let path = dir.join(format!("{name}.avsc"));
            std::fs::write(&path, serde_json::to_string_pretty(&value)? + "\n")
                .map_err(|e| format!("{}: {e}", path.display()))?;
            println!(
                "{}  ({role} {ty} of {} on {})",
                path.display(),
                r.handler.name,
                r.topic
            );
        }
    }
    if written.is_empty() {
        println!("No payload or declared reply type derives AvroSchema; nothing written.");
    }
    Ok(())
}

#[cfg(feature = "avro")]
async fn check(builder: Builder, registry: Option<String>) -> CliResult {
    use spine_kafka_avro::apache_avro::Schema;
    use spine_kafka_avro::registry::{compat, Auth, RegistryClient, RegistryError};
    use spine_kafka_avro::subject::subject_name;

    let (config, routes) = builder.describe()?;
    let url = registry
        .or(config.schema_registry.url.clone())
        .ok_or("no registry: pass --registry URL or set [schema_registry] url")?;
    let auth = match (
        &config.schema_registry.username,
        &config.schema_registry.password,
        &config.schema_registry.token,
    ) {
        (_, _, Some(t)) => Auth::Bearer(t.clone()),
        (Some(u), Some(p), None) => Auth::Basic {
            username: u.clone(),
            password: p.clone(),
        },
        _ => Auth::None,
    };
    let client = RegistryClient::new(&url, auth)?;
    let mut t = table(&["topic", "event", "handler", "subject", "version", "status"]);
    let mut failed = 0;
    for r in routes.iter().filter(|r| r.codec == "avro") {
        let Some(reader) = &r.handler.reader_schema else {
            continue;
        };
        let reader_schema = Schema::parse_str(reader)?;
        let record = record_name(reader);
        let strategy = config.subject_strategy(&r.topic);
        let Some(subject) = subject_name(strategy, &r.topic, record.as_deref()) else {
            continue;
        };
        let (version, status) = match client.version(&subject, "latest").await {
            Ok(latest) => match Schema::parse_str(&latest.schema) {
                Ok(writer) => match compat::can_read(&writer, &reader_schema) {
                    Ok(()) => (latest.version.to_string(), "ok: can read".to_owned()),
                    Err(e) => {
                        failed += 1;
                        let field = e.field.as_ref().map(|f| format!(" (field `{f}`)"));
                        (
                            latest.version.to_string(),
                            format!("cannot read{}: {e}", field.unwrap_or_default()),
                        )
                    }
                },
                Err(e) => {
                    failed += 1;
                    (
                        latest.version.to_string(),
                        format!("registered schema is invalid: {e}"),
                    )
                }
            },
            Err(RegistryError::NotFound { .. }) => {
                failed += 1;
                ("-".into(), "not registered".into())
            }
            Err(e) => return Err(e.into()),
        };
        let event = r.event.clone().unwrap_or_else(|| "*".into());
        t.add_row(vec![
            r.topic.clone(),
            event,
            r.display_name(),
            subject,
            version,
            status,
        ]);
    }
    println!("{t}");
    if failed > 0 {
        return Err(format!(
            "{failed} handler(s) cannot read their subject's latest schema; update the payload types or the registered schemas"
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::ServiceCli;

    #[test]
    fn every_service_command_has_help_with_an_example() {
        let mut cli = ServiceCli::command();
        cli.build();
        let mut seen = 0;
        let mut stack: Vec<clap::Command> = vec![cli];
        while let Some(mut c) = stack.pop() {
            let help = c.render_long_help().to_string();
            let name = c.get_name().to_owned();
            assert!(
                help.contains("Example"),
                "`{name}` --help has an example:\n{help}"
            );
            seen += 1;
            stack.extend(
                c.get_subcommands()
                    .filter(|s| s.get_name() != "help")
                    .cloned(),
            );
        }
        // run, consumers, routes, schemas (export, check), replay, asyncapi,
        // openapi, and the root.
        assert!(seen >= 10, "{seen}");
    }
}
