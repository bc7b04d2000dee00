//! The dispatcher at scale, black-box: the batch endpoint, backpressure, priority classes,
//! order per recipient, the answers to Meta's error codes, the rate limits (checked against
//! what the simulator received), failover between endpoints, graceful shutdown and `kill -9`.
//! Every wait is bounded polling; no figure of speed is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use wasp_integration::{HostOptions, TestHost, text_message};
use wasp_simulator::{Simulator, SimulatorConfig};

const WAIT: Duration = Duration::from_secs(30);

fn message(to: &str, priority: &str, text: &str) -> Value {
    json!({"to": to, "category": "utility", "priority": priority,
           "content": {"type": "text", "text": {"body": text}}})
}

fn ids(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` until it returns true, within `timeout`.
async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_all(host: &TestHost, ids: &[String], status: &str) -> anyhow::Result<Vec<Value>> {
    let mut messages = Vec::with_capacity(ids.len());
    for id in ids {
        messages.push(host.wait_for(id, status, WAIT).await?);
    }
    Ok(messages)
}

fn body_text(sent: &wasp_simulator::SentMessage) -> String {
    sent.body["text"]["body"].as_str().unwrap_or_default().to_owned()
}

fn causes(message: &Value) -> Vec<String> {
    message["history"]
        .as_array()
        .map(|history| {
            history
                .iter()
                .map(|entry| format!("{}: {}", entry["status"], entry["cause"]))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_batch_is_stored_at_once_with_a_result_per_item() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, answer) = host
        .send_batch(&[
            text_message("+6591230001", "one"),
            json!({"to": "6591230002", "category": "utility", "content": {"type": "text", "text": {"body": "x"}}}),
            json!({"to": "+6591230003", "category": "utility", "content": {"type": "text", "text": {}}}),
            text_message("+6591230004", "four"),
        ])
        .await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"], 2, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["error"]["field"], "messages[1].to", "{answer}");
    assert!(
        results[2]["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("messages[2].content"),
        "{answer}"
    );
    assert_eq!(results[3]["status"], "accepted");
    wait_all(&host, &ids(&answer), "read").await?;

    // Refused whole: not JSON, or more than 1,000 items.
    let response = host
        .client
        .post(format!("{}/v1/messages/batch", host.url))
        .bearer_auth(wasp_integration::TOKEN)
        .header("content-type", "application/json")
        .body("{\"messages\": [")
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "invalid_json", "{body}");
    let too_many: Vec<Value> = (0..1_001)
        .map(|index| text_message("+6591230005", &format!("{index}")))
        .collect();
    let (status, answer) = host.send_batch(&too_many).await?;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "messages", "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_full_backlog_answers_429_with_retry_after_until_it_drains() -> anyhow::Result<()> {
    let options = HostOptions {
        dispatch: "max_backlog = 3\nbacklog_retry_after_ms = 2000\n".into(),
        ..HostOptions::default()
    };
    let host = TestHost::start(options).await?;
    // Every send is refused with a transient error: the messages stay in the backlog.
    host.simulator.set_config(|config| {
        config.fault_code = Some(131000);
        config.fault_rate = 1.0;
    });
    let mut accepted = Vec::new();
    for index in 0..3 {
        let (status, answer) = host.send(&text_message(&format!("+659123100{index}"), "wait")).await?;
        assert_eq!(status, 202, "{answer}");
        accepted.push(answer["id"].as_str().unwrap().to_owned());
    }
    let response = host
        .client
        .post(format!("{}/v1/messages", host.url))
        .bearer_auth(wasp_integration::TOKEN)
        .json(&text_message("+6591231009", "one too many"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "backlog_full", "{body}");
    let (status, answer) = host.send_batch(&[text_message("+6591231009", "batch too")]).await?;
    assert_eq!(status, 429, "{answer}");

    // Upstream recovers, the backlog drains, and sends are taken again.
    host.simulator.set_config(|config| config.fault_code = None);
    wait_all(&host, &accepted, "read").await?;
    let (status, answer) = host.send(&text_message("+6591231009", "room again")).await?;
    assert_eq!(status, 202, "{answer}");
    Ok(())
}

#[tokio::test]
async fn critical_overtakes_a_full_bulk_backlog() -> anyhow::Result<()> {
    let options = HostOptions {
        dispatch: "workers = 1\nsends_in_flight_per_worker = 2\nclaim_batch = 4\n".into(),
        cloud_api: "messages_per_second = 0\n".into(),
        simulator: SimulatorConfig {
            latency_ms: 5,
            ..HostOptions::default().simulator
        },
        ..HostOptions::default()
    };
    let host = TestHost::start(options).await?;
    let bulk: Vec<Value> = (0..400)
        .map(|index| message(&format!("+65912{index:05}"), "bulk", &format!("bulk {index}")))
        .collect();
    let (status, answer) = host.send_batch(&bulk).await?;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = host.send(&message("+6598760000", "critical", "one-time code")).await?;
    assert_eq!(status, 202);
    wait_left_queue(&host, &[answer["id"].as_str().unwrap().to_owned()]).await?;
    let sent: Vec<String> = host.simulator.sent().iter().map(body_text).collect();
    let position = sent.iter().position(|text| text == "one-time code").unwrap();
    // The code did not wait behind the bulk backlog: most of it went after.
    assert!(
        position < 100,
        "critical went out as number {position} of {}",
        sent.len()
    );
    // And bulk is not starved: all of it is delivered too.
    eventually("all bulk sent", WAIT, || async {
        Ok(host.simulator.counters().accepted >= 401)
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn one_recipients_messages_keep_their_order_per_class_through_retries() -> anyhow::Result<()> {
    let options = HostOptions {
        cloud_api: "messages_per_second = 0\npair_burst = 0\n".into(),
        // With 30% of sends refused, 8 attempts all failing happens about once in 400 runs of
        // 40 messages: enough attempts that every message gets through.
        dispatch: "max_attempts = 30\n".into(),
        simulator: SimulatorConfig {
            error_rate: 0.3,
            ..HostOptions::default().simulator
        },
        ..HostOptions::default()
    };
    let host = TestHost::start(options).await?;
    let classes = ["critical", "bulk", "normal", "high"];
    let items: Vec<Value> = (0..40)
        .map(|index| {
            let class = classes[index % classes.len()];
            message("+4915112345678", class, &format!("{class} {index:02}"))
        })
        .collect();
    // Two batches, so later messages arrive while earlier ones are being retried.
    let (_, first) = host.send_batch(&items[..20]).await?;
    let (_, second) = host.send_batch(&items[20..]).await?;
    let mut all = ids(&first);
    all.extend(ids(&second));
    assert_eq!(all.len(), 40);
    wait_all(&host, &all, "read").await?;
    let sent: Vec<String> = host.simulator.sent().iter().map(body_text).collect();
    assert_eq!(sent.len(), 40, "each sent once: {sent:?}");
    assert!(
        host.simulator.counters().rejected_total() > 0,
        "the simulator refused some, so retries happened"
    );
    for class in classes {
        let order: Vec<&String> = sent.iter().filter(|text| text.starts_with(class)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{class} left out of order");
    }
    Ok(())
}

#[tokio::test]
async fn each_class_of_meta_error_is_answered_as_meta_means_it() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let only = |code: u32, prefix: &str| {
        let prefix = prefix.to_owned();
        host.simulator.set_config(move |config| {
            config.fault_code = Some(code);
            config.fault_rate = 1.0;
            config.fault_prefixes = vec![prefix];
        });
    };

    // Final: outside the 24-hour window, template errors. Sent once, failed with Meta's code.
    for (code, to) in [
        (131047u32, "+4915100000001"),
        (132001, "+4915100000002"),
        (131026, "+4915100000003"),
    ] {
        only(code, &to[1..]);
        let (_, answer) = host.send(&text_message(to, "final")).await?;
        let failed = host.wait_for(answer["id"].as_str().unwrap(), "failed", WAIT).await?;
        assert_eq!(failed["error_code"], code, "{failed:#}");
        assert_eq!(failed["attempts"], 1, "never retried: {failed:#}");
        assert!(
            failed["reason"].as_str().unwrap().contains(&code.to_string()),
            "{failed:#}"
        );
    }

    // Slow down and retry (rate limits), retry with backoff (5xx): retried until upstream
    // takes it, the code kept in the history.
    for (code, to) in [
        (130429u32, "+4915100000011"),
        (131056, "+4915100000012"),
        (80007, "+4915100000013"),
        (131000, "+4915100000014"),
        (131016, "+4915100000015"),
    ] {
        only(code, &to[1..]);
        let before = host
            .simulator
            .counters()
            .rejected
            .get(&code)
            .copied()
            .unwrap_or_default();
        let (_, answer) = host.send(&text_message(to, "retried")).await?;
        eventually("refused twice", WAIT, || async {
            Ok(host
                .simulator
                .counters()
                .rejected
                .get(&code)
                .copied()
                .unwrap_or_default()
                >= before + 2)
        })
        .await?;
        host.simulator.set_config(|config| config.fault_code = None);
        let read = host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await?;
        let history = causes(&read);
        assert!(
            history
                .iter()
                .filter(|cause| cause.contains("will retry") && cause.contains(&code.to_string()))
                .count()
                >= 2,
            "{history:#?}"
        );
        assert!(read["attempts"].as_u64().unwrap() >= 3, "{read:#}");
    }
    Ok(())
}

#[tokio::test]
async fn rate_limits_pace_what_the_simulator_receives() -> anyhow::Result<()> {
    // 20/s for the sender (burst 2); per recipient a burst of 2, then one per 300 ms.
    let options = HostOptions {
        cloud_api: "messages_per_second = 20\npair_interval_ms = 300\npair_burst = 2\n".into(),
        dispatch: "rate_limit_hold_ms = 100\n".into(),
        ..HostOptions::default()
    };
    let host = TestHost::start(options).await?;

    let spread: Vec<Value> = (0..30)
        .map(|index| text_message(&format!("+65913{index:05}"), "spread"))
        .collect();
    let (_, answer) = host.send_batch(&spread).await?;
    wait_left_queue(&host, &ids(&answer)).await?;
    let times: Vec<i64> = host
        .simulator
        .sent()
        .iter()
        .map(|sent| i64::try_from(sent.time.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap())
        .collect();
    assert_eq!(times.len(), 30);
    // In any stretch of the log, no more than the burst plus the rate allows (+1 for the
    // millisecond rounding of the log's clock).
    for first in 0..times.len() {
        for last in first + 1..times.len() {
            let allowed = 2 + (times[last] - times[first]) / 50 + 1;
            let count = i64::try_from(last - first + 1).unwrap();
            assert!(
                count <= allowed,
                "{count} sends within {} ms",
                times[last] - times[first]
            );
        }
    }
    assert_eq!(host.simulator.counters().rejected_total(), 0);

    // One recipient: two at once, then one per 300 ms, in order.
    let same: Vec<Value> = (0..5)
        .map(|index| text_message("+6591399999", &format!("pair {index}")))
        .collect();
    let (_, answer) = host.send_batch(&same).await?;
    let pair_ids = ids(&answer);
    wait_left_queue(&host, &pair_ids).await?;
    let pair: Vec<(String, i64)> = host
        .simulator
        .sent()
        .iter()
        .filter(|sent| sent.to == "6591399999")
        .map(|sent| {
            (
                body_text(sent),
                i64::try_from(sent.time.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap(),
            )
        })
        .collect();
    let texts: Vec<&str> = pair.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(texts, ["pair 0", "pair 1", "pair 2", "pair 3", "pair 4"]);
    for index in 2..pair.len() {
        let since_first = pair[index].1 - pair[0].1;
        let least = i64::try_from(index - 1).unwrap() * 300 - 10;
        assert!(
            since_first >= least,
            "message {index} left {since_first} ms after the first"
        );
    }
    // Waiting for the limit went through the queue, and the history says so.
    let last = host.message(&pair_ids[4]).await?;
    assert!(
        causes(&last).iter().any(|cause| cause.contains("rate limit")),
        "{last:#}"
    );
    Ok(())
}

#[tokio::test]
async fn several_numbers_share_the_load_and_each_recipient_keeps_to_one() -> anyhow::Result<()> {
    let options = HostOptions {
        cloud_api: "phone_number_ids = [\"1001\", \"1002\"]\n".into(),
        ..HostOptions::default()
    };
    let host = TestHost::start(options).await?;
    // 40 recipients, three messages each.
    let batch: Vec<Value> = (0..3)
        .flat_map(|round| (0..40).map(move |index| text_message(&format!("+65914{index:05}"), &format!("{round}"))))
        .collect();
    let (_, answer) = host.send_batch(&batch).await?;
    wait_left_queue(&host, &ids(&answer)).await?;
    let sent = host.simulator.sent();
    assert_eq!(sent.len(), 120);
    let mut numbers: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut per_number: HashMap<&str, usize> = HashMap::new();
    for message in &sent {
        numbers
            .entry(message.to.as_str())
            .or_default()
            .insert(message.phone_number_id.as_str());
        *per_number.entry(message.phone_number_id.as_str()).or_default() += 1;
    }
    assert_eq!(numbers.len(), 40);
    assert!(
        numbers.values().all(|used| used.len() == 1),
        "a recipient moved between numbers: {numbers:?}"
    );
    let mut used: Vec<&str> = per_number.keys().copied().collect();
    used.sort_unstable();
    assert_eq!(used, ["1001", "1002"], "{per_number:?}");
    assert!(per_number.values().all(|count| *count >= 15), "{per_number:?}");
    Ok(())
}

#[tokio::test]
async fn a_full_daily_tier_defers_bulk_and_lets_critical_go() -> anyhow::Result<()> {
    let options = HostOptions {
        cloud_api: "daily_tier_limit = 2\n".into(),
        ..HostOptions::default()
    };
    let host = TestHost::start(options).await?;
    let (_, answer) = host
        .send_batch(&[
            message("+6591500001", "bulk", "first"),
            message("+6591500002", "bulk", "second"),
        ])
        .await?;
    wait_left_queue(&host, &ids(&answer)).await?;
    // The tier is full: a new recipient's bulk waits, a known recipient's bulk goes, and
    // critical goes to a new recipient anyway.
    let (_, answer) = host
        .send_batch(&[
            message("+6591500003", "bulk", "deferred"),
            message("+6591500001", "bulk", "again"),
            message("+6591500004", "critical", "urgent"),
        ])
        .await?;
    let later = ids(&answer);
    wait_left_queue(&host, &later[1..]).await?;
    eventually("the bulk message requeued for the tier", WAIT, || {
        let host = &host;
        let id = later[0].clone();
        async move {
            let message = host.message(&id).await?;
            Ok(causes(&message)
                .iter()
                .any(|cause| cause.contains("daily business-initiated tier")))
        }
    })
    .await?;
    let texts: Vec<String> = host.simulator.sent().iter().map(body_text).collect();
    assert!(texts.contains(&"again".to_owned()), "{texts:?}");
    assert!(texts.contains(&"urgent".to_owned()), "{texts:?}");
    assert!(!texts.contains(&"deferred".to_owned()), "{texts:?}");
    let message = host.message(&later[0]).await?;
    assert_eq!(message["status"], "queued", "{message:#}");
    Ok(())
}

#[tokio::test]
async fn a_throughput_storm_slows_the_sender_and_loses_nothing() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    host.simulator.set_config(|config| {
        config.fault_code = Some(130429);
        config.fault_rate = 0.5;
    });
    let items: Vec<Value> = (0..30)
        .map(|index| text_message(&format!("+65914{index:05}"), &format!("storm {index}")))
        .collect();
    let (_, answer) = host.send_batch(&items).await?;
    let all = ids(&answer);
    eventually("the storm hit", WAIT, || async {
        Ok(host.simulator.counters().rejected.contains_key(&130429))
    })
    .await?;
    host.simulator.set_config(|config| config.fault_code = None);
    wait_all(&host, &all, "read").await?;
    let sent: Vec<String> = host.simulator.sent().iter().map(body_text).collect();
    let unique: HashSet<&String> = sent.iter().collect();
    assert_eq!(sent.len(), 30, "each accepted once upstream");
    assert_eq!(unique.len(), 30);
    Ok(())
}

#[tokio::test]
async fn failover_moves_traffic_loses_nothing_and_brings_the_endpoint_back() -> anyhow::Result<()> {
    let mut host = TestHost::start(HostOptions {
        failover: true,
        ..HostOptions::default()
    })
    .await?;
    let batch = |from: usize, to: usize| -> Vec<Value> {
        (from..to)
            .map(|index| text_message(&format!("+65915{index:05}"), &format!("failover {index}")))
            .collect()
    };
    let (_, answer) = host.send_batch(&batch(0, 20)).await?;
    wait_all(&host, &ids(&answer), "read").await?;
    let first = host.first_endpoint.take().expect("failover host has a first endpoint");
    assert_eq!(first.sent().len(), 20, "the first endpoint is preferred while healthy");
    let first_address = first.local_addr();
    let mut seen: Vec<String> = first.sent().iter().map(body_text).collect();

    // The first endpoint goes down: everything still arrives, at the other one.
    first.shutdown().await;
    let (_, answer) = host.send_batch(&batch(20, 60)).await?;
    wait_all(&host, &ids(&answer), "read").await?;
    seen.extend(host.simulator.sent().iter().map(body_text));
    assert_eq!(seen.len(), 60, "nothing lost, nothing sent twice");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 60);

    // It comes back on its address: the prober notices and traffic returns to it.
    let listener = tokio::net::TcpListener::bind(first_address).await?;
    let back = Simulator::start(host.simulator_config.clone(), listener).await?;
    let mut index = 60;
    eventually("traffic back on the first endpoint", WAIT, || {
        index += 1;
        let body = text_message(&format!("+65915{index:05}"), &format!("failover {index}"));
        let host = &host;
        let back = &back;
        async move {
            let (status, _) = host.send(&body).await?;
            anyhow::ensure!(status == 202);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(!back.sent().is_empty())
        }
    })
    .await?;
    assert!(host.is_running());
    host.first_endpoint = Some(back);
    Ok(())
}

#[tokio::test]
async fn messages_past_their_deadline_expire() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    host.simulator.set_config(|config| {
        config.fault_code = Some(131000);
        config.fault_rate = 1.0;
    });
    let soon = time_in(Duration::from_millis(600));
    let mut body = text_message("+6591600001", "too late");
    body["expires_at"] = soon.into();
    let (status, answer) = host.send(&body).await?;
    assert_eq!(status, 202, "{answer}");
    let expired = host.wait_for(answer["id"].as_str().unwrap(), "expired", WAIT).await?;
    assert!(
        causes(&expired).iter().any(|cause| cause.contains("deadline")),
        "{expired:#}"
    );

    let mut past = text_message("+6591600002", "already late");
    past["expires_at"] = "2001-01-01T00:00:00Z".into();
    let (status, answer) = host.send(&past).await?;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "expires_at");
    Ok(())
}

fn time_in(after: Duration) -> String {
    let at = std::time::SystemTime::now() + after;
    let ms = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let seconds = ms / 1_000;
    let millis = ms % 1_000;
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let days = i64::try_from(seconds / 86_400).unwrap_or_default();
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[tokio::test]
async fn sigterm_drains_in_flight_sends_before_exit() -> anyhow::Result<()> {
    let options = HostOptions {
        simulator: SimulatorConfig {
            latency_ms: 400,
            ..HostOptions::default().simulator
        },
        ..HostOptions::default()
    };
    let mut host = TestHost::start(options).await?;
    let items: Vec<Value> = (0..5)
        .map(|index| text_message(&format!("+65917{index:05}"), &format!("drain {index}")))
        .collect();
    let (_, answer) = host.send_batch(&items).await?;
    let all = ids(&answer);
    eventually("sends in flight", WAIT, || async {
        Ok(host.simulator.counters().requests >= 1)
    })
    .await?;
    assert!(host.terminate(WAIT).await?, "a clean exit; log:\n{}", host.log());
    let accepted_before_restart = host.simulator.counters().accepted;
    assert!(accepted_before_restart >= 1);

    host.restart().await?;
    for id in &all {
        let message = host.message(id).await?;
        let status = message["status"].as_str().unwrap_or_default();
        assert_ne!(
            status, "sending",
            "a send in flight at SIGTERM was left unrecorded: {message:#}"
        );
    }
    wait_left_queue(&host, &all).await?;
    assert_eq!(host.simulator.counters().accepted, 5, "nothing sent twice");
    for id in &all {
        let message = host.message(id).await?;
        assert!(
            !causes(&message).iter().any(|cause| cause.contains("resending")),
            "{message:#}"
        );
    }
    Ok(())
}

/// Waits until every message has left the queue: sent upstream (webhooks posted while the
/// host was down are given up on by the simulator, so `read` may never come) or ended.
async fn wait_left_queue(host: &TestHost, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        let deadline = Instant::now() + WAIT;
        loop {
            let message = host.message(id).await?;
            if !matches!(
                message["status"].as_str(),
                Some("accepted" | "queued" | "deferred" | "sending")
            ) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "stuck: {message:#}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    Ok(())
}

#[tokio::test]
async fn kill_nine_at_random_points_loses_no_accepted_message() -> anyhow::Result<()> {
    let options = HostOptions {
        cloud_api: "messages_per_second = 0\npair_burst = 0\n".into(),
        dispatch: "lease_ms = 2000\n".into(),
        simulator: SimulatorConfig {
            latency_ms: 2,
            ..HostOptions::default().simulator
        },
        ..HostOptions::default()
    };
    let mut host = TestHost::start(options).await?;
    let mut accepted: Vec<String> = Vec::new();
    let mut texts: HashMap<String, String> = HashMap::new();
    let mut counter = 0usize;
    for round in 0..4 {
        // Load for a random while, then kill -9 without warning.
        let load_for = Duration::from_millis(150 + rand_below(350));
        let started = Instant::now();
        while started.elapsed() < load_for {
            let items: Vec<Value> = (0..50)
                .map(|_| {
                    counter += 1;
                    text_message(&format!("+6591{:07}", counter % 300), &format!("crash {counter}"))
                })
                .collect();
            let Ok((status, answer)) = host.send_batch(&items).await else {
                break;
            };
            if status != 202 {
                continue;
            }
            for (item, result) in items.iter().zip(answer["results"].as_array().unwrap()) {
                if let Some(id) = result["id"].as_str() {
                    accepted.push(id.to_owned());
                    texts.insert(
                        item["content"]["text"]["body"].as_str().unwrap().to_owned(),
                        id.to_owned(),
                    );
                }
            }
        }
        host.kill_hard()?;
        assert!(!host.is_running(), "round {round}");
        host.restart().await?;
    }
    assert!(accepted.len() >= 200, "only {} accepted", accepted.len());

    // Every accepted message leaves the queue, sent upstream at least once.
    wait_left_queue(&host, &accepted).await?;
    let mut sends: HashMap<String, usize> = HashMap::new();
    for sent in host.simulator.sent() {
        *sends.entry(body_text(&sent)).or_default() += 1;
    }
    let mut resent = 0;
    for (text, id) in &texts {
        let count = sends.get(text).copied().unwrap_or_default();
        assert!(count >= 1, "{text} never reached upstream");
        let message = host.message(id).await?;
        let history = causes(&message);
        let sending = history.iter().filter(|cause| cause.starts_with("\"sending\"")).count();
        let resends = history.iter().filter(|cause| cause.contains("resending")).count();
        // Each send attempt is one `sending` row; more than one only with a documented resend.
        assert_eq!(sending, 1 + resends, "{history:#?}");
        if count > 1 {
            assert!(
                resends >= 1,
                "{text} went {count} times with no resend in its history: {history:#?}"
            );
            resent += 1;
        }
        let accepted_rows = history.iter().filter(|cause| cause.starts_with("\"accepted\"")).count();
        assert_eq!(accepted_rows, 1, "{history:#?}");
    }
    eprintln!(
        "{} accepted over 4 crashes; {resent} sent again after a crash",
        accepted.len()
    );
    Ok(())
}

fn rand_below(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| u64::from(since.subsec_nanos()))
        .unwrap_or_default();
    nanos % bound
}
