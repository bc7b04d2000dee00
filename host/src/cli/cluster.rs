//! `wasp cluster status`: a thin client of the admin API's `GET /v1/cluster` (scope
//! `messages:read`), with the same `--url` / `WASP_URL` and `--token` / `WASP_ADMIN_TOKEN` as
//! every command that talks to a server. Prints one row per node (liveness, heartbeat, the
//! shards it leases, how old its leases are, its backlog) and a line about the whole cluster;
//! `--json` prints the answer itself.
//!
//! May call the admin API over HTTP, through [`AdminClient`].

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::{Method, Request};
use serde::Deserialize;
use serde_json::Value;

use super::{
    admin::{AdminClient, AdminError, Connection},
    table::{Table, thousands},
};

/// `wasp cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the nodes sharing the database, the shards each one leases, and the shards nobody
    /// holds. Shard lists are compacted: `0-3` is a run, `0-255/3` every third shard from 0 to 255.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Print the JSON answer of `GET /v1/cluster` instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The cluster as `GET /v1/cluster` shows it; fields the server adds are ignored, fields it
/// leaves out are an error (a table that quietly shows zeros would mislead).
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node_id: String,
    /// `postgres` or `sqlite`.
    pub store: String,
    pub shard_count: u16,
    pub lease_ttl_ms: u64,
    /// The database's clock when the answer was made; every age below is measured from it.
    pub at_ms: i64,
    pub nodes: Vec<NodeView>,
    pub unowned_shards: Vec<u16>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub address: String,
    pub live: bool,
    pub heartbeat_age_ms: i64,
    pub started_at_ms: i64,
    pub shards: Vec<u16>,
    /// None while the node holds no lease.
    pub lease_age_ms: Option<Span>,
    pub lease_expires_in_ms: Option<Span>,
    pub backlog: u64,
}

/// The smallest and largest of one figure over a node's leases, in milliseconds.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Span {
    pub min: i64,
    pub max: i64,
}

impl AdminClient {
    /// `GET /v1/cluster`.
    pub fn cluster_request(&self) -> reqwest::Result<Request> {
        self.request(Method::GET, &["v1", "cluster"]).build()
    }
}

pub async fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status(args) => {
            let client = AdminClient::new(&args.connection)?;
            let answer = read_answer(client.send(client.cluster_request()).await)?;
            if args.json {
                let text = serde_json::to_string_pretty(&answer).context("writing the cluster status as JSON")?;
                println!("{text}");
            } else {
                print!("{}", render_status(&parse_status(answer)?));
            }
        }
    }
    Ok(())
}

/// The answer of `GET /v1/cluster` as JSON, or an error that says what went wrong. The answer
/// is read as any JSON value first, so a decoding error here can only mean it was not JSON.
pub fn read_answer(answer: Result<Value, AdminError>) -> anyhow::Result<Value> {
    answer.map_err(|error| match error {
        AdminError::Unexpected { url, reason } => {
            anyhow::anyhow!("{url} did not answer JSON ({reason}); is --url / WASP_URL a wasp server?")
        }
        other => anyhow::Error::new(other).context("reading the cluster status"),
    })
}

/// The JSON answer as a [`ClusterView`]; a server without the cluster status (or an older
/// shape of it) is named as such.
pub fn parse_status(answer: Value) -> anyhow::Result<ClusterView> {
    serde_json::from_value(answer)
        .context("GET /v1/cluster answered JSON that is not a cluster status; is the server older than this command?")
}

/// Shards as short text: sorted, repeats dropped, runs of consecutive shards as `a-b`, runs of
/// three or more with a common step `k > 1` as `a-b/k` (the shape an even spread over several
/// nodes takes), everything else one by one; `-` for none.
pub fn compact_shards(shards: &[u16]) -> String {
    let mut sorted = shards.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() {
        return "-".to_owned();
    }
    let mut parts = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let Some(&next) = sorted.get(start + 1) else {
            parts.push(sorted[start].to_string());
            break;
        };
        let step = next - sorted[start];
        let mut end = start + 1;
        while end + 1 < sorted.len() && sorted[end + 1] - sorted[end] == step {
            end += 1;
        }
        let length = end - start + 1;
        if step == 1 {
            parts.push(format!("{}-{}", sorted[start], sorted[end]));
            start = end + 1;
        } else if length >= 3 {
            parts.push(format!("{}-{}/{step}", sorted[start], sorted[end]));
            start = end + 1;
        } else {
            // Two shards a gap apart: the first stands alone, the second may start a run.
            parts.push(sorted[start].to_string());
            start += 1;
        }
    }
    parts.join(",")
}

/// A duration for a table cell: `850ms`, `4.2s`, `3m05s`, `2h07m`.
pub fn duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let text = match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1_000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1_000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    };
    format!("{sign}{text}")
}

fn span(span: Option<Span>) -> String {
    span.map_or_else(
        || "-".to_owned(),
        |Span { min, max }| format!("{}/{}", duration(min), duration(max)),
    )
}

pub fn render_status(view: &ClusterView) -> String {
    let mut table = Table::new(&[
        "NODE",
        "ADDRESS",
        "LIVE",
        "HEARTBEAT",
        "SHARDS",
        "RANGES",
        "LEASE AGE MIN/MAX",
        "BACKLOG",
    ]);
    for node in &view.nodes {
        table.row(vec![
            node.id.clone(),
            node.address.clone(),
            if node.live { "yes" } else { "no" }.to_owned(),
            format!("{} ago", duration(node.heartbeat_age_ms)),
            node.shards.len().to_string(),
            compact_shards(&node.shards),
            span(node.lease_age_ms),
            thousands(node.backlog),
        ]);
    }
    let mut out = if table.is_empty() {
        "no nodes have joined\n".to_owned()
    } else {
        table.render()
    };
    let unowned = if view.unowned_shards.is_empty() {
        "none".to_owned()
    } else {
        format!(
            "{} ({})",
            view.unowned_shards.len(),
            compact_shards(&view.unowned_shards)
        )
    };
    out.push_str(&format!(
        "\nstore {store}, {shards} shards, lease TTL {ttl}; unowned shards: {unowned}; answered by {node}\n",
        store = view.store,
        shards = view.shard_count,
        ttl = duration(i64::try_from(view.lease_ttl_ms).unwrap_or(i64::MAX)),
        node = view.node_id,
    ));
    out
}

#[cfg(test)]
mod tests {
    use reqwest::{StatusCode, header};
    use serde_json::json;

    use super::*;
    use crate::cli::admin::decode;

    fn sample() -> Value {
        let every_third = |first: u16| (first..256).step_by(3).collect::<Vec<u16>>();
        json!({
            "node_id": "alpha-1a2b3c",
            "store": "postgres",
            "shard_count": 256,
            "lease_ttl_ms": 5000,
            "at_ms": 1_790_000_000_000_i64,
            "nodes": [
                {"id": "alpha-1a2b3c", "address": "127.0.0.1:8081", "live": true,
                 "heartbeat_age_ms": 312, "started_at_ms": 1_789_999_000_000_i64,
                 "shards": every_third(0),
                 "lease_age_ms": {"min": 250, "max": 61_500},
                 "lease_expires_in_ms": {"min": 4100, "max": 4750}, "backlog": 12_345},
                {"id": "bravo-4d5e6f", "address": "127.0.0.1:8082", "live": true,
                 "heartbeat_age_ms": 980, "started_at_ms": 1_789_999_000_000_i64,
                 "shards": every_third(1),
                 "lease_age_ms": {"min": 900, "max": 900},
                 "lease_expires_in_ms": {"min": 4000, "max": 4000}, "backlog": 0},
                {"id": "charlie-7a8b9c", "address": "127.0.0.1:8083", "live": false,
                 "heartbeat_age_ms": 7_240, "started_at_ms": 1_789_999_000_000_i64,
                 "shards": [], "lease_age_ms": null, "lease_expires_in_ms": null,
                 "backlog": 7, "added_later": true}
            ],
            "unowned_shards": [2, 5, 8, 11, 14, 200]
        })
    }

    #[test]
    fn shard_lists_compact_into_runs_and_steps() {
        assert_eq!(compact_shards(&[]), "-");
        assert_eq!(compact_shards(&[7]), "7");
        assert_eq!(compact_shards(&[0, 1, 2, 3, 7, 9, 10, 11, 12]), "0-3,7,9-12");
        assert_eq!(
            compact_shards(&[12, 3, 2, 9, 0, 1, 7, 10, 11, 3]),
            "0-3,7,9-12",
            "unsorted, repeated"
        );
        assert_eq!(compact_shards(&[4, 5]), "4-5");
        assert_eq!(compact_shards(&[4, 6]), "4,6");
        assert_eq!(compact_shards(&[1, 5, 6, 7]), "1,5-7");
        let all: Vec<u16> = (0..256).collect();
        assert_eq!(compact_shards(&all), "0-255");
        let every_third: Vec<u16> = (0..256).step_by(3).collect();
        assert_eq!(compact_shards(&every_third), "0-255/3");
        let odd: Vec<u16> = (1..256).step_by(2).collect();
        assert_eq!(compact_shards(&odd), "1-255/2");
        assert_eq!(compact_shards(&[0, 3, 6, 7, 8, 20]), "0-6/3,7-8,20");
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(4_240), "4.2s");
        assert_eq!(duration(185_000), "3m05s");
        assert_eq!(duration(7_620_000), "2h07m");
        assert_eq!(duration(-40), "-40ms");
    }

    #[test]
    fn the_table_shows_one_row_per_node_and_the_cluster_line() {
        let view = parse_status(sample()).unwrap();
        assert_eq!(
            render_status(&view),
            "NODE            ADDRESS         LIVE  HEARTBEAT  SHARDS  RANGES   LEASE AGE MIN/MAX  BACKLOG\n\
             alpha-1a2b3c    127.0.0.1:8081  yes   312ms ago  86      0-255/3  250ms/1m01s        12,345\n\
             bravo-4d5e6f    127.0.0.1:8082  yes   980ms ago  85      1-253/3  900ms/900ms        0\n\
             charlie-7a8b9c  127.0.0.1:8083  no    7.2s ago   0       -        -                  7\n\
             \n\
             store postgres, 256 shards, lease TTL 5.0s; unowned shards: 6 (2-14/3,200); answered by alpha-1a2b3c\n"
        );
    }

    #[test]
    fn a_single_node_owning_everything_says_so() {
        let mut answer = sample();
        answer["store"] = json!("sqlite");
        answer["nodes"] = json!([answer["nodes"][0].clone()]);
        answer["nodes"][0]["shards"] = json!((0..256).collect::<Vec<u16>>());
        answer["unowned_shards"] = json!([]);
        let text = render_status(&parse_status(answer).unwrap());
        assert!(text.contains("  256     0-255  "), "{text}");
        assert!(
            text.ends_with(
                "store sqlite, 256 shards, lease TTL 5.0s; unowned shards: none; answered by alpha-1a2b3c\n"
            )
        );
        let mut empty = sample();
        empty["nodes"] = json!([]);
        assert!(render_status(&parse_status(empty).unwrap()).starts_with("no nodes have joined\n"));
    }

    #[test]
    fn the_request_is_a_get_with_the_token() {
        let client = AdminClient::new(&Connection {
            url: "http://127.0.0.1:8081".to_owned(),
            token: Some("secret".to_owned()),
        })
        .unwrap();
        let request = client.cluster_request().unwrap();
        assert_eq!(
            (request.method(), request.url().as_str()),
            (&Method::GET, "http://127.0.0.1:8081/v1/cluster")
        );
        assert_eq!(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok()),
            Some("Bearer secret")
        );
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let url = "http://127.0.0.1:8081/v1/cluster";
        let unauthorized = read_answer(decode(
            StatusCode::UNAUTHORIZED,
            br#"{"error": {"code": "unauthorized", "message": "a bearer token is required"}}"#,
            url,
        ))
        .unwrap_err();
        let text = format!("{unauthorized:#}");
        assert!(text.contains("a bearer token is required"), "{text}");
        assert!(text.contains("set --token or WASP_ADMIN_TOKEN"), "{text}");

        let html = read_answer(decode(StatusCode::OK, b"<html>hello</html>", url)).unwrap_err();
        let text = format!("{html:#}");
        assert!(text.contains("did not answer JSON"), "{text}");
        assert!(text.contains("WASP_URL"), "{text}");

        let proxy = read_answer(decode(StatusCode::BAD_GATEWAY, b"Bad Gateway", url)).unwrap_err();
        assert!(format!("{proxy:#}").contains("502 Bad Gateway"), "{proxy:#}");

        let mut missing = sample();
        missing.as_object_mut().unwrap().remove("nodes");
        let text = format!("{:#}", parse_status(missing).unwrap_err());
        assert!(
            text.contains("not a cluster status") && text.contains("nodes"),
            "{text}"
        );
    }
}
