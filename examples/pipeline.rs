//! A three-step pipeline: normalise submitted texts, enrich each through a
//! request-reply to a second handler of the same app (a word-statistics
//! service), and publish the result.
//!
//! ```text
//! texts (text.submitted) ─► normalize ─► enrich ──request──► text.stats (stats.requested)
//!                                          ▲                        │ word_stats
//!                                          └──response── pipeline-example.replies
//!                            publish ─► texts.enriched (text.enriched)
//! ```
//!
//! ```sh
//! # With nothing installed: an in-process mock Kafka cluster, a batch of
//! # sample texts, a summary, exit.
//! cargo run --example pipeline
//!
//! # As a long-lived service against a broker, until Ctrl-C or SIGTERM:
//! SPINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example pipeline
//! ```
//!
//! `[pipelines.enrich_text.args] max_chars = 40` in spine.toml (or
//! `SPINE_PIPELINES__ENRICH_TEXT__ARGS__MAX_CHARS=40`) changes the first
//! step's fixed argument.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spine::dev::MockKafka;
use spine::prelude::*;
use spine::{Config, Publisher};

/// A text was submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextSubmitted {
    /// The text's id.
    pub id: String,
    /// The text, as typed.
    pub text: String,
}

/// A text, trimmed, lower-cased, with single spaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Normalized {
    /// The text's id.
    pub id: String,
    /// The normalised text.
    pub text: String,
}

/// What the word-statistics service answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WordStats {
    /// Number of words.
    pub words: usize,
    /// The longest word.
    pub longest: String,
}

/// The published result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enriched {
    /// The text's id.
    pub id: String,
    /// The normalised text.
    pub text: String,
    /// Its statistics.
    pub stats: WordStats,
}

/// Counts what the pipeline did, for the demo's summary.
#[derive(Default)]
pub struct Progress {
    enriched: AtomicU64,
    skipped: AtomicU64,
}

#[pipeline(
    event = "text.submitted",
    topic = "texts",
    max_concurrent = 16,
    args(max_chars = 80)
)]
mod enrich_text {
    use super::*;

    /// Trims, lower-cases and collapses whitespace; a blank text ends here.
    pub fn normalize(
        t: TextSubmitted,
        #[arg] max_chars: usize,
        progress: State<Progress>,
    ) -> Option<Normalized> {
        let text = t.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            progress.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let text = text.to_lowercase().chars().take(max_chars).collect();
        Some(Normalized { id: t.id, text })
    }

    /// Asks the word-statistics service and waits for its answer.
    pub async fn enrich(n: Normalized, ctx: Context) -> Result<Enriched, HandlerError> {
        let stats: WordStats = ctx
            .request("text.stats", "stats.requested", &n)
            .timeout(Duration::from_secs(10))
            .await?;
        Ok(Enriched {
            id: n.id,
            text: n.text,
            stats,
        })
    }

    /// Publishes the result; the pipeline ends here.
    #[publish(topic = "texts.enriched", event = "text.enriched")]
    pub fn publish(e: Enriched, progress: State<Progress>) -> Enriched {
        progress.enriched.fetch_add(1, Ordering::Relaxed);
        e
    }
}

/// The word-statistics service, answering requests.
#[on(event = "stats.requested", topic = "text.stats")]
async fn word_stats(n: Normalized) -> Reply {
    // The first of the longest words (`max_by_key` keeps the last).
    let longest = n
        .text
        .split(' ')
        .rev()
        .max_by_key(|w| w.chars().count())
        .unwrap_or_default()
        .to_owned();
    spine::respond(
        "stats.computed",
        WordStats {
            words: n.text.split(' ').count(),
            longest,
        },
    )
}

fn app(config: Config, progress: Arc<Progress>) -> Result<spine::App, spine::Error> {
    Spine::builder()
        .config(config)
        .state_arc(progress)
        .handlers(spine::handlers![enrich_text, word_stats])
        .build()
}

#[tokio::main]
async fn main() {
    spine::init_tracing();
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::load()?;
    if config.app.name == spine::config::AppConfig::default().name {
        config.app.name = "pipeline-example".to_owned();
    }
    let progress = Arc::new(Progress::default());
    if config.bootstrap_servers().is_some() {
        app(config, progress)?.run().await?;
        return Ok(());
    }
    demo(config, progress).await
}

const SAMPLES: [&str; 5] = [
    "  The QUICK brown   fox ",
    "Typed handlers for Kafka",
    "   ",
    "Pipelines compose small steps",
    "Request and reply, matched in process",
];

/// No broker configured: run on librdkafka's mock cluster, push sample texts
/// through, print a summary and exit.
async fn demo(
    mut config: Config,
    progress: Arc<Progress>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockKafka::start(1)?;
    let replies = config
        .requests
        .reply_topic
        .replace("{app}", &config.app.name);
    for topic in [
        "texts",
        "text.stats",
        "texts.enriched",
        "texts.dlq",
        "text.stats.dlq",
        &replies,
    ] {
        mock.create_topic(topic, 2)?;
    }
    config.set_kafka("bootstrap.servers", mock.bootstrap_servers());
    println!(
        "No SPINE_BOOTSTRAP_SERVERS set: running on an in-process mock Kafka cluster ({}).",
        mock.bootstrap_servers()
    );
    let app = app(config.clone(), progress.clone())?;
    let (stats, stop) = (app.stats(), app.shutdown_handle());
    let running = tokio::spawn(app.run_until(std::future::pending()));

    let count: u64 = std::env::var("PIPELINE_DEMO_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let publisher = Publisher::new(&config)?;
    for i in 0..count {
        let id = format!("text-{i}");
        let text = SAMPLES[i as usize % SAMPLES.len()].to_owned();
        publisher
            .publish(
                "texts",
                "text.submitted",
                Some(&id),
                &TextSubmitted {
                    id: id.clone(),
                    text,
                },
            )
            .await?;
    }
    println!("Published {count} texts.");
    let started = Instant::now();
    let done = || {
        progress.enriched.load(Ordering::Relaxed)
            + progress.skipped.load(Ordering::Relaxed)
            + stats.snapshot().dead_lettered
    };
    while done() < count {
        if started.elapsed() > Duration::from_secs(60) {
            stop.trigger();
            return Err(format!("timed out: {} of {count} texts finished", done()).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.trigger();
    running.await??;
    println!(
        "Summary: submitted {count}, enriched {} (to texts.enriched), skipped {} blank, dead-lettered {}.",
        progress.enriched.load(Ordering::Relaxed),
        progress.skipped.load(Ordering::Relaxed),
        stats.snapshot().dead_lettered,
    );
    Ok(())
}
