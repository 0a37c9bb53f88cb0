//! `GET /`: the status page, plain server-rendered HTML with its own small
//! stylesheet and no external assets, refreshing itself every 5 seconds.
//! It never shows payloads, headers or configuration values.

use std::fmt::Write;
use std::time::Duration;

use axum::extract::State;
use axum::response::Html;
use html_escape::encode_text as esc;

use super::ops::Ops;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
td.t{white-space:nowrap}.muted{color:#777}.bad{color:#b00}.ok{color:#070}";

pub(super) async fn status_page(State(ops): State<Ops>) -> Html<String> {
    let shared = &ops.shared;
    let status = &shared.status;
    let config = &shared.config;
    let (uptime, started) = status.started();
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>{app} · Spine</title>\
         <style>{STYLE}</style></head><body>\
         <h1 id=\"app\">{app}</h1><p class=\"muted\">",
        app = esc(&config.app.name),
    );
    if let Some(v) = ops.version {
        let _ = write!(h, "version <span id=\"version\">{}</span> · ", esc(v));
    }
    let _ = write!(
        h,
        "Spine {spine} · group <span id=\"group\">{group}</span> · up <span id=\"uptime\">{up}</span> \
         (since {since})</p>",
        spine = env!("CARGO_PKG_VERSION"),
        group = esc(config.group_id()),
        up = humantime::format_duration(Duration::from_secs(uptime.as_secs())),
        since = humantime::format_rfc3339_seconds(started),
    );
    match status.since_beat() {
        Ok(_) => {}
        Err(why) => {
            let _ = write!(h, "<p class=\"bad\" id=\"stopped\">{}</p>", esc(&why));
        }
    }
    let (up, known, _) = status.brokers();
    let (class, brokers) = if up > 0 {
        ("ok", format!("{up} of {known} brokers up"))
    } else {
        ("bad", "no broker reachable".to_owned())
    };
    let _ = write!(
        h,
        "<p id=\"brokers\" class=\"{class}\">{brokers} ({})</p>",
        esc(config.bootstrap_servers().unwrap_or("?"))
    );

    // Partitions.
    let assigned = status.assigned();
    let _ = write!(
        h,
        "<h2>Assigned partitions ({})</h2><table id=\"partitions\"><tr><th>topic</th>\
         <th>partition</th><th>committed</th><th>end</th><th>lag</th></tr>",
        assigned.len()
    );
    let num = |v: Option<i64>| v.map_or("–".to_owned(), |v| v.to_string());
    for ((topic, p), st) in &assigned {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{p}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            esc(topic),
            num(st.committed),
            num(st.high),
            num(st.lag),
        );
    }
    h.push_str("</table>");
    if assigned.is_empty() {
        h.push_str(
            "<p class=\"muted\">None: joining, or the group has more members than partitions.</p>",
        );
    }

    // Counters by topic.
    h.push_str(
        "<h2>Messages by topic</h2><table id=\"topics\"><tr><th>topic</th><th>consumed</th>\
         <th>handled</th><th>failed</th><th>no handler</th></tr>",
    );
    for t in shared.table.topics().iter().filter(|t| t.subscribed) {
        // Not kept when the app installed a recorder of its own.
        let c = t.metrics.counts().unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            esc(&t.topic),
            c.consumed,
            c.handled,
            c.failed,
            c.unknown_event
        );
    }
    let s = shared.stats.snapshot();
    let _ = write!(
        h,
        "</table><p class=\"muted\">retries {} · dead-lettered {} · replies {} · parked keys {}</p>",
        s.retried,
        s.dead_lettered,
        s.replied,
        s.parks - s.unparks
    );

    // In flight.
    let (n, slow) = status.in_flight();
    let _ = write!(
        h,
        "<h2>In flight: <span id=\"in-flight\">{n}</span></h2>\
         <table id=\"slow\"><tr><th>topic</th><th>partition</th><th>offset</th><th>handler</th>\
         <th>for</th><th>waits for</th></tr>"
    );
    if slow.is_empty() {
        h.push_str("<tr><td colspan=\"6\" class=\"muted\">none for long</td></tr>");
    }
    for m in &slow {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td>\
             <td class=\"n\">{:.1} s</td><td>{}</td></tr>",
            esc(&m.topic),
            m.partition,
            m.offset,
            esc(m.handler.as_deref().unwrap_or("–")),
            m.for_.as_secs_f64(),
            esc(m.waits_for)
        );
    }
    h.push_str("</table>");

    // Failures.
    let failures = status.failures();
    let _ = write!(
        h,
        "<h2>Last failures ({})</h2><table id=\"failures\"><tr><th>time</th><th>topic</th>\
         <th>partition</th><th>offset</th><th>handler</th><th>kind</th><th>error</th></tr>",
        failures.len()
    );
    for f in &failures {
        let _ = write!(
            h,
            "<tr><td class=\"t\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            humantime::format_rfc3339_seconds(f.at),
            esc(&f.topic),
            f.partition,
            f.offset,
            esc(f.handler.as_deref().unwrap_or("–")),
            f.kind,
            esc(&f.error)
        );
    }
    h.push_str(
        "</table><p class=\"muted\">Refreshes every 5 s · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/health/ready\">readiness</a> · <a href=\"/routes\">routes</a> · \
         <a href=\"/asyncapi.json\">AsyncAPI</a></p></body></html>",
    );
    Html(h)
}
