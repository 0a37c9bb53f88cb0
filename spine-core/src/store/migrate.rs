//! Spine's schema (the inbox, the outbox, the consumer configs), created
//! and migrated at startup.
//!
//! Written by hand rather than with `sqlx::migrate!`: sqlx's migrator keeps
//! its history in `_sqlx_migrations`, a table the application's own sqlx
//! migrations use too when they share the database, and each would then
//! refuse the other's versions as unknown. Spine's history lives in
//! `spine_migrations`, with one statement list per dialect.

use sqlx::{AnyPool, Row};

/// (version, what it does, SQLite statements, PostgreSQL statements).
type Migration = (
    i64,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const MIGRATIONS: &[Migration] = &[
    (
        1,
        "inbox and outbox tables",
        &[
            "CREATE TABLE spine_inbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            consumer TEXT NOT NULL,
            message_id TEXT NOT NULL,
            status TEXT NOT NULL,
            topic TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL,
            kafka_offset BIGINT NOT NULL,
            msg_key BLOB,
            event TEXT,
            headers TEXT,
            payload BLOB,
            attempts BIGINT NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            next_attempt_at BIGINT,
            lease_until BIGINT,
            UNIQUE (consumer, message_id)
        )",
            "CREATE INDEX spine_inbox_due ON spine_inbox (status, next_attempt_at)",
            "CREATE INDEX spine_inbox_key ON spine_inbox (consumer, msg_key, id)",
            "CREATE TABLE spine_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            topic TEXT NOT NULL,
            msg_key BLOB,
            headers TEXT NOT NULL,
            payload BLOB,
            created_at BIGINT NOT NULL,
            sent_at BIGINT,
            error TEXT
        )",
            "CREATE INDEX spine_outbox_unsent ON spine_outbox (id) WHERE sent_at IS NULL",
        ],
        &[
            "CREATE TABLE spine_inbox (
            id BIGSERIAL PRIMARY KEY,
            consumer TEXT NOT NULL,
            message_id TEXT NOT NULL,
            status TEXT NOT NULL,
            topic TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL,
            kafka_offset BIGINT NOT NULL,
            msg_key BYTEA,
            event TEXT,
            headers TEXT,
            payload BYTEA,
            attempts BIGINT NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            next_attempt_at BIGINT,
            lease_until BIGINT,
            UNIQUE (consumer, message_id)
        )",
            "CREATE INDEX spine_inbox_due ON spine_inbox (status, next_attempt_at)",
            "CREATE INDEX spine_inbox_key ON spine_inbox (consumer, msg_key, id)",
            "CREATE TABLE spine_outbox (
            id BIGSERIAL PRIMARY KEY,
            kind TEXT NOT NULL,
            topic TEXT NOT NULL,
            msg_key BYTEA,
            headers TEXT NOT NULL,
            payload BYTEA,
            created_at BIGINT NOT NULL,
            sent_at BIGINT,
            error TEXT
        )",
            "CREATE INDEX spine_outbox_unsent ON spine_outbox (id) WHERE sent_at IS NULL",
        ],
    ),
    (
        2,
        "consumer configs table",
        &[CONSUMER_CONFIGS],
        &[
            CONSUMER_CONFIGS,
            // A change of any row is announced on channel
            // `spine_consumer_configs`, its payload the consumer's name: running
            // apps LISTEN and reload within a moment.
            "CREATE FUNCTION spine_consumer_configs_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('spine_consumer_configs',
                CASE WHEN TG_OP = 'DELETE' THEN OLD.consumer_name ELSE NEW.consumer_name END);
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql",
            "CREATE TRIGGER spine_consumer_configs_changed
            AFTER INSERT OR UPDATE OR DELETE ON spine_consumer_configs
            FOR EACH ROW EXECUTE FUNCTION spine_consumer_configs_notify()",
        ],
    ),
];

/// The same on both: every column is a type both spell alike.
const CONSUMER_CONFIGS: &str = "CREATE TABLE spine_consumer_configs (
    consumer_name TEXT PRIMARY KEY,
    topics_input TEXT,
    topics_output TEXT,
    metadata TEXT,
    bootstrap_servers TEXT,
    timeout TEXT,
    max_in_flight BIGINT,
    enabled BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL
)";

/// Applies the migrations the database has not seen. Two instances starting
/// together must not both apply one: on PostgreSQL an advisory lock keeps
/// them apart (and each migration has a transaction of its own); on SQLite
/// the whole run is one `BEGIN IMMEDIATE` transaction, which takes the
/// database's write lock before the version is read.
pub(super) async fn run(pool: &AnyPool, postgres: bool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if postgres {
        // Any number will do, as long as it is Spine's own: "spine" in ASCII.
        sqlx::query("SELECT pg_advisory_lock(495350746981)")
            .execute(&mut *conn)
            .await?;
        let result = apply(postgres, &mut conn).await;
        sqlx::query("SELECT pg_advisory_unlock(495350746981)")
            .execute(&mut *conn)
            .await?;
        return result;
    }
    // By hand: sqlx's `begin` has no IMMEDIATE on the Any driver.
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    match apply(postgres, &mut conn).await {
        Ok(()) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| ()),
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

async fn apply(postgres: bool, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS spine_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM spine_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let current: i64 = row.try_get("v")?;
    for (version, description, sqlite, pg) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        if postgres {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            apply_one(&mut tx, *version, description, pg).await?;
            tx.commit().await?;
        } else {
            // Inside the run's own transaction.
            apply_one(conn, *version, description, sqlite).await?;
        }
        tracing::info!(version, description, "inbox database migrated");
    }
    Ok(())
}

async fn apply_one(
    conn: &mut sqlx::AnyConnection,
    version: i64,
    description: &str,
    statements: &[&str],
) -> Result<(), sqlx::Error> {
    {
        for s in statements.iter() {
            sqlx::query(s).execute(&mut *conn).await?;
        }
        sqlx::query(
            "INSERT INTO spine_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(description.to_owned())
        .bind(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
