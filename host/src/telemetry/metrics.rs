//! Prometheus metrics: the process-wide recorder, the `GET /metrics` rendering, and one small
//! function per thing counted, so every name and label set lives here and nowhere else.
//!
//! Names are `wasp_<thing>_<unit>` (`_total` for counters, `_seconds` for durations); labels are
//! bounded enums (status, category, priority, channel, error class, hook, route template) or
//! names an operator chose (plugins), never a phone number, a message id or a raw path.
//! Calls only the `metrics` facade; callers pass what they already know.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::message::{Category, Priority, Status};

/// Shards named in `wasp_shard_backlog_messages`: the largest backlogs only, so 256 shards do
/// not become 256 series.
pub const TOP_SHARDS: usize = 10;
/// Distinct `counter-add` names a plugin may export; later names still count in the plugin's
/// own report (`GET /v1/plugins/{name}`) but make no new series.
pub const MAX_PLUGIN_COUNTERS: usize = 32;
/// How often histograms are folded in when nothing scrapes (so they do not grow unbounded).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// A gauge not set for this long leaves the scrape: a shard that dropped out of the top list
/// is zeroed once, then goes, so the shards ever named do not pile up. Six backlog resyncs.
pub const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Latency buckets in seconds: sub-millisecond plugin calls up to slow upstream answers.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Rows per group-commit batch, up to the default `store.write_batch_rows`.
const ROWS_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0];

/// The recorder's handle. Installs the global recorder on first call; when another recorder
/// already holds the slot (several in-process hosts in tests), the handle of a detached
/// recorder is kept instead, which renders nothing rather than failing start-up.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|builder| builder.set_buckets_for_metric(Matcher::Suffix("_rows".into()), ROWS_BUCKETS))
        };
        let installed = builder().and_then(PrometheusBuilder::install_recorder);
        let handle = match installed {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed; /metrics stays empty");
                match builder() {
                    Ok(builder) => builder.build_recorder().handle(),
                    Err(_) => PrometheusBuilder::new().build_recorder().handle(),
                }
            }
        };
        describe();
        handle
    })
}

/// The text exposition (format 0.0.4) of every series.
pub fn render() -> String {
    handle().render()
}

/// Keeps histograms folded in between scrapes; runs until the process ends.
pub fn spawn_upkeep() {
    let handle = handle().clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    });
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "wasp_messages_accepted_total",
        "Messages accepted over the API or as plugin follow-ups"
    );
    describe_counter!(
        "wasp_messages_total",
        "Message status transitions (sent, delivered, read, failed, fell_back, rejected, expired, cancelled)"
    );
    describe_gauge!(
        "wasp_backlog_messages",
        "Messages waiting to be sent, by priority class, at the last count (every 10 s)"
    );
    describe_gauge!(
        "wasp_shard_backlog_messages",
        "Messages waiting, for the shards with the largest backlogs at the last count"
    );
    describe_histogram!(
        "wasp_upstream_request_duration_seconds",
        Unit::Seconds,
        "Sends to the Cloud API or the SMS provider, by outcome (ok or error class)"
    );
    describe_counter!("wasp_webhook_events_total", "Webhook events received, by kind");
    describe_histogram!(
        "wasp_policy_call_duration_seconds",
        Unit::Seconds,
        "Plugin hook calls, by plugin and hook"
    );
    describe_counter!("wasp_policy_faults_total", "Plugin faults, by plugin and kind");
    describe_counter!("wasp_plugin_counter_total", "Plugins' own counters (counter-add)");
    describe_histogram!(
        "wasp_store_batch_rows",
        Unit::Count,
        "Rows per group-commit transaction"
    );
    describe_histogram!(
        "wasp_store_commit_duration_seconds",
        Unit::Seconds,
        "Time to run and commit one group-commit transaction"
    );
    describe_gauge!("wasp_cluster_shards_held", "Shards this node holds a lease on");
    describe_gauge!(
        "wasp_cluster_live_nodes",
        "Nodes heartbeating within the lease TTL, as this node saw them"
    );
    describe_counter!(
        "wasp_cluster_fenced_messages_total",
        "Messages whose pre-send write was refused: this node no longer held their shard"
    );
    describe_gauge!(
        "wasp_health_rule_firing",
        "1 while the health rule fires (for any subject), else 0, by rule"
    );
    describe_gauge!(
        "wasp_degraded_mode",
        "1 while a health rule holds the node in degraded mode (bulk paused, media degraded)"
    );
    describe_counter!(
        "wasp_health_webhook_failures_total",
        "Health rule notices the operator's webhook did not take (after every attempt, or queue full)"
    );
    describe_counter!(
        "wasp_http_requests_total",
        "HTTP requests, by route template, method and status"
    );
}

/// `count` messages accepted in one class.
pub fn accepted(category: Category, priority: Priority, count: u64) {
    metrics::counter!(
        "wasp_messages_accepted_total",
        "category" => category.as_str(),
        "priority" => priority.as_str()
    )
    .increment(count);
}

/// Whether a status is counted in `wasp_messages_total`: the steps a message makes towards
/// its end, not the queue's own moves (queued, deferred, sending) or acceptance (counted apart).
pub fn counts_status(status: Status) -> bool {
    !status.is_pending()
}

/// One message moved to `status`.
pub fn status(status: Status, category: Category, priority: Priority) {
    if counts_status(status) {
        metrics::counter!(
            "wasp_messages_total",
            "status" => status.as_str(),
            "category" => category.as_str(),
            "priority" => priority.as_str()
        )
        .increment(1);
    }
}

/// The backlog per priority class at the dispatcher's resync (seconds old at most); a class
/// with nothing waiting reads 0.
pub fn backlog_by_priority(counts: &[(Priority, u64)]) {
    for priority in Priority::ALL {
        let count = counts
            .iter()
            .find(|(class, _)| class == priority)
            .map_or(0, |(_, count)| *count);
        metrics::gauge!("wasp_backlog_messages", "priority" => priority.as_str()).set(count as f64);
    }
}

/// The backlog of the [`TOP_SHARDS`] largest shards; `previous` is the list set last time,
/// whose shards that left the list are zeroed at once (and then expire, see
/// [`GAUGE_IDLE_TIMEOUT`]).
pub fn shard_backlogs(largest_first: &[(u16, u32)], previous: &mut Vec<u16>) {
    let top = &largest_first[..largest_first.len().min(TOP_SHARDS)];
    for shard in previous.iter() {
        if !top.iter().any(|(top_shard, _)| top_shard == shard) {
            metrics::gauge!("wasp_shard_backlog_messages", "shard" => shard.to_string()).set(0.0);
        }
    }
    previous.clear();
    for (shard, count) in top {
        metrics::gauge!("wasp_shard_backlog_messages", "shard" => shard.to_string()).set(f64::from(*count));
        previous.push(*shard);
    }
}

/// One upstream send: `channel` is `whatsapp` or `sms`, `outcome` `ok` or the error class.
pub fn upstream(channel: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::histogram!(
        "wasp_upstream_request_duration_seconds",
        "channel" => channel,
        "outcome" => outcome
    )
    .record(elapsed.as_secs_f64());
}

/// `count` webhook events of one kind: `status`, `inbound`, `quality`, `template`.
pub fn webhook_events(kind: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!("wasp_webhook_events_total", "kind" => kind).increment(count as u64);
    }
}

/// One plugin hook call. The name is shared, not copied: this runs for every message.
pub fn policy_call(plugin: &Arc<str>, hook: &'static str, elapsed: Duration) {
    metrics::histogram!(
        "wasp_policy_call_duration_seconds",
        "plugin" => Arc::clone(plugin),
        "hook" => hook
    )
    .record(elapsed.as_secs_f64());
}

/// One plugin fault: `trap`, `instantiate`, `malformed`, `config_refused`.
pub fn policy_fault(plugin: &Arc<str>, kind: &'static str) {
    metrics::counter!("wasp_policy_faults_total", "plugin" => Arc::clone(plugin), "kind" => kind).increment(1);
}

/// A plugin's own `counter-add`.
pub fn plugin_counter(plugin: &Arc<str>, name: &str, delta: u64) {
    metrics::counter!(
        "wasp_plugin_counter_total",
        "plugin" => Arc::clone(plugin),
        "name" => name.to_owned()
    )
    .increment(delta);
}

/// One group-commit transaction of `rows` rows.
pub fn store_commit(rows: usize, elapsed: Duration) {
    metrics::histogram!("wasp_store_batch_rows").record(rows as f64);
    metrics::histogram!("wasp_store_commit_duration_seconds").record(elapsed.as_secs_f64());
}

/// Whether health rule `rule` fires; `rule` is an operator's name from the config.
pub fn health_rule(rule: &str, firing: bool) {
    metrics::gauge!("wasp_health_rule_firing", "rule" => rule.to_owned()).set(if firing { 1.0 } else { 0.0 });
}

/// Whether the node is in degraded mode.
pub fn degraded_mode(degraded: bool) {
    metrics::gauge!("wasp_degraded_mode").set(if degraded { 1.0 } else { 0.0 });
}

/// A health notice the webhook did not take.
pub fn health_webhook_failed() {
    metrics::counter!("wasp_health_webhook_failures_total").increment(1);
}

/// One lease round: shards held and live nodes seen.
pub fn cluster_round(shards_held: usize, live_nodes: usize) {
    metrics::gauge!("wasp_cluster_shards_held").set(shards_held as f64);
    metrics::gauge!("wasp_cluster_live_nodes").set(live_nodes as f64);
}

/// Messages a fenced write refused.
pub fn fenced(count: usize) {
    metrics::counter!("wasp_cluster_fenced_messages_total").increment(count as u64);
}

/// One HTTP request; `route` is the matched template (`/v1/messages/{id}`) or `unmatched`.
pub fn http_request(route: String, method: &axum::http::Method, status: u16) {
    let method: &'static str = match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    };
    metrics::counter!(
        "wasp_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => status_label(status)
    )
    .increment(1);
}

/// Status codes as static labels (the common ones), else the class (`5xx`).
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_steps_towards_the_end_only() {
        assert!(counts_status(Status::Sent));
        assert!(counts_status(Status::Read));
        assert!(counts_status(Status::FellBack));
        assert!(!counts_status(Status::Queued));
        assert!(!counts_status(Status::Accepted));
    }

    #[test]
    fn the_handle_survives_a_second_install_and_renders() {
        handle();
        accepted(Category::Utility, Priority::Normal, 2);
        // A second recorder cannot be installed; the first keeps answering.
        assert!(PrometheusBuilder::new().install_recorder().is_err());
        let text = render();
        assert!(text.contains("wasp_messages_accepted_total"), "{text}");
    }

    #[test]
    fn only_the_largest_shards_are_named_and_those_that_leave_are_remembered_to_zero() {
        let largest_first: Vec<(u16, u32)> = (0..20u16).map(|shard| (shard, 100 - u32::from(shard))).collect();
        let mut previous = Vec::new();
        shard_backlogs(&largest_first, &mut previous);
        assert_eq!(previous, (0..10).collect::<Vec<u16>>());
        shard_backlogs(&[(42, 7)], &mut previous);
        assert_eq!(previous, vec![42]);
        shard_backlogs(&[], &mut previous);
        assert!(previous.is_empty());
    }

    #[test]
    fn status_labels_are_bounded() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
    }
}
