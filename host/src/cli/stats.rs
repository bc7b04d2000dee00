//! `wasp stats [--window 15m] [--by template]`: a thin client of the admin API's
//! `GET /v1/stats` (scope `messages:read`), with the same `--url` / `WASP_URL` and `--token` /
//! `WASP_ADMIN_TOKEN` as every command that talks to a server. Prints one row per group
//! (counts, rates, median times, the most frequent failure codes) and the total; `--json`
//! prints the answer itself.
//!
//! May call the admin API over HTTP, through [`AdminClient`].

use anyhow::Context as _;
use clap::Args;
use reqwest::{Method, Request};
use serde::Deserialize;
use serde_json::Value;

use super::{
    admin::{AdminClient, AdminError, Connection},
    cluster::duration,
    table::{Table, thousands},
};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// How far back: whole minutes and up, such as 5m, 15m, 1h, 24h, 7d.
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// Group by category, template, region, sender or minute.
    #[arg(long, default_value = "category")]
    pub by: String,
    /// Print the JSON answer of `GET /v1/stats` instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Failure codes a row shows; the rest are summed as `+N more`.
const CODES_SHOWN: usize = 3;

/// The stats as `GET /v1/stats` shows them; fields the server adds are ignored, fields it
/// leaves out are an error (a table that quietly shows zeros would mislead).
#[derive(Debug, Clone, Deserialize)]
pub struct StatsView {
    pub by: String,
    pub from: String,
    pub to: String,
    pub window: String,
    pub groups: Vec<GroupView>,
    pub total: FiguresView,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GroupView {
    pub key: String,
    #[serde(flatten)]
    pub figures: FiguresView,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FiguresView {
    pub accepted: u64,
    pub sent: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    pub fell_back: u64,
    pub rejected: u64,
    pub expired: u64,
    pub delivered_rate: Option<f64>,
    pub read_rate: Option<f64>,
    pub median_ms_to_delivered: Option<i64>,
    pub median_ms_to_read: Option<i64>,
    pub failure_codes: Vec<FailureCodeView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FailureCodeView {
    pub code: i64,
    pub count: u64,
}

impl AdminClient {
    /// `GET /v1/stats?window=…&by=…`.
    pub fn stats_request(&self, window: &str, by: &str) -> reqwest::Result<Request> {
        self.request(Method::GET, &["v1", "stats"])
            .query(&[("window", window), ("by", by)])
            .build()
    }
}

pub async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection)?;
    let answer = read_answer(client.send(client.stats_request(&args.window, &args.by)).await)?;
    if args.json {
        let text = serde_json::to_string_pretty(&answer).context("writing the stats as JSON")?;
        println!("{text}");
    } else {
        print!("{}", render(&parse(answer)?));
    }
    Ok(())
}

/// The answer as JSON, or an error that says what went wrong (a bad `--window` or `--by` is
/// the server's 400, naming the parameter).
fn read_answer(answer: Result<Value, AdminError>) -> anyhow::Result<Value> {
    answer.map_err(|error| match error {
        AdminError::Unexpected { url, reason } => {
            anyhow::anyhow!("{url} did not answer JSON ({reason}); is --url / WASP_URL a wasp server?")
        }
        other => anyhow::Error::new(other).context("reading the stats"),
    })
}

pub fn parse(answer: Value) -> anyhow::Result<StatsView> {
    serde_json::from_value(answer)
        .context("GET /v1/stats answered JSON that is not stats; is the server older than this command?")
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |rate| format!("{:.1}%", rate * 100.0))
}

fn median(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), duration)
}

fn codes(codes: &[FailureCodeView]) -> String {
    if codes.is_empty() {
        return "-".to_owned();
    }
    let mut sorted: Vec<&FailureCodeView> = codes.iter().collect();
    sorted.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    let mut parts: Vec<String> = sorted
        .iter()
        .take(CODES_SHOWN)
        .map(|code| format!("{}×{}", code.code, code.count))
        .collect();
    if sorted.len() > CODES_SHOWN {
        parts.push(format!("+{} more", sorted.len() - CODES_SHOWN));
    }
    parts.join(" ")
}

fn row(key: String, figures: &FiguresView) -> Vec<String> {
    vec![
        key,
        thousands(figures.accepted),
        thousands(figures.sent),
        thousands(figures.delivered),
        thousands(figures.read),
        thousands(figures.failed),
        thousands(figures.fell_back),
        thousands(figures.rejected),
        thousands(figures.expired),
        percent(figures.delivered_rate),
        percent(figures.read_rate),
        median(figures.median_ms_to_delivered),
        median(figures.median_ms_to_read),
        codes(&figures.failure_codes),
    ]
}

pub fn render(view: &StatsView) -> String {
    let mut table = Table::new(&[
        &view.by.to_uppercase(),
        "ACCEPTED",
        "SENT",
        "DELIVERED",
        "READ",
        "FAILED",
        "FELL BACK",
        "REJECTED",
        "EXPIRED",
        "DELIVERED%",
        "READ%",
        "TO DELIVERED",
        "TO READ",
        "FAILURE CODES",
    ]);
    for group in &view.groups {
        table.row(row(group.key.clone(), &group.figures));
    }
    table.row(row("total".to_owned(), &view.total));
    format!(
        "{}\nlast {} ({} to {}); median times from sent\n",
        table.render(),
        view.window,
        view.from,
        view.to
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn figures(accepted: u64, failed: u64, codes: Value) -> Value {
        json!({
            "accepted": accepted, "sent": 10, "delivered": 9, "read": 5, "failed": failed,
            "fell_back": 0, "rejected": 0, "expired": 0, "delivered_rate": 0.9, "read_rate": 0.5556,
            "median_ms_to_delivered": 1200, "median_ms_to_read": 65000, "failure_codes": codes
        })
    }

    fn sample() -> Value {
        let mut utility = figures(10, 1, json!([{"code": 131026, "count": 1}]));
        utility["key"] = json!("utility");
        let mut marketing = figures(
            1_200,
            5,
            json!([
                {"code": 1, "count": 1}, {"code": 2, "count": 2}, {"code": 3, "count": 1}, {"code": 4, "count": 1}
            ]),
        );
        marketing["key"] = json!("marketing");
        marketing["delivered_rate"] = Value::Null;
        marketing["median_ms_to_read"] = Value::Null;
        json!({
            "by": "category", "window": "1h",
            "from": "2026-11-27T01:00:00Z", "to": "2026-11-27T02:00:00Z",
            "groups": [marketing, utility],
            "total": figures(1_210, 6, json!([])),
            "added_later": true
        })
    }

    #[test]
    fn the_table_shows_one_row_per_group_and_the_total() {
        let text = render(&parse(sample()).unwrap());
        assert_eq!(
            text,
            "CATEGORY   ACCEPTED  SENT  DELIVERED  READ  FAILED  FELL BACK  REJECTED  EXPIRED  DELIVERED%  READ%  TO DELIVERED  TO READ  FAILURE CODES\n\
             marketing  1,200     10    9          5     5       0          0         0        -           55.6%  1.2s          -        2×2 1×1 3×1 +1 more\n\
             utility    10        10    9          5     1       0          0         0        90.0%       55.6%  1.2s          1m05s    131026×1\n\
             total      1,210     10    9          5     6       0          0         0        90.0%       55.6%  1.2s          1m05s    -\n\
             \n\
             last 1h (2026-11-27T01:00:00Z to 2026-11-27T02:00:00Z); median times from sent\n"
        );
    }

    #[test]
    fn an_answer_missing_a_field_is_an_error() {
        let mut answer = sample();
        answer["total"].as_object_mut().unwrap().remove("read");
        let error = parse(answer).unwrap_err();
        assert!(format!("{error:#}").contains("not stats"), "{error:#}");
    }

    #[test]
    fn the_request_carries_window_by_and_token() {
        let client = AdminClient::new(&Connection {
            url: "http://127.0.0.1:8081".to_owned(),
            token: Some("secret".to_owned()),
        })
        .unwrap();
        let request = client.stats_request("15m", "template").unwrap();
        assert_eq!(
            (request.method(), request.url().as_str()),
            (&Method::GET, "http://127.0.0.1:8081/v1/stats?window=15m&by=template")
        );
        assert_eq!(
            request.headers()[reqwest::header::AUTHORIZATION].to_str().unwrap(),
            "Bearer secret"
        );
    }
}
