//! Listing, cancelling and opting out, black-box: `GET /v1/messages` with each filter and
//! across pages, `POST /v1/messages/{id}/cancel` on a message waiting for its rate limit, one
//! being sent and messages racing the dispatcher (a cancel that wins is never sent, one that
//! loses is), and STOP / START texts sent to the business (`POST /_sim/inbound`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use wasp_integration::{HostOptions, TOKEN, TestHost, history_field, history_statuses, text_message};

const WAIT: Duration = Duration::from_secs(20);
const PHONE_NUMBER_ID: &str = "100000000000001";

/// `GET /v1/messages?{query}`.
async fn list(host: &TestHost, query: &str) -> anyhow::Result<(u16, Value)> {
    host.call(reqwest::Method::GET, &format!("/v1/messages?{query}"), None)
        .await
}

/// Every message `query` lists, following `next_cursor` page by page with `limit`; also
/// the number of pages.
async fn list_all(host: &TestHost, query: &str, limit: usize) -> anyhow::Result<(Vec<Value>, usize)> {
    let mut messages = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut page_query = format!("{query}&limit={limit}");
        if let Some(cursor) = &cursor {
            page_query.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = list(host, &page_query).await?;
        anyhow::ensure!(status == 200, "GET /v1/messages?{page_query}: {status} {page}");
        let items = page["messages"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(items.len() <= limit, "a page of {} with limit {limit}", items.len());
        messages.extend(items);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok((messages, pages)),
        }
    }
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn cancel(host: &TestHost, id: &str) -> anyhow::Result<(u16, Value)> {
    host.call(reqwest::Method::POST, &format!("/v1/messages/{id}/cancel"), None)
        .await
}

/// The message ids the simulated Cloud API accepted (each send carries its id as
/// `biz_opaque_callback_data`).
async fn sent_ids(host: &TestHost) -> anyhow::Result<Vec<String>> {
    let sent: Value = host
        .client
        .get(format!("{}/_sim/sent?limit=1000", host.simulator.base_url()))
        .send()
        .await?
        .json()
        .await?;
    Ok(sent
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| entry["body"]["biz_opaque_callback_data"].as_str().map(str::to_owned))
        .collect())
}

async fn send(host: &TestHost, body: &Value) -> anyhow::Result<String> {
    let (status, answer) = host.send(body).await?;
    anyhow::ensure!(status == 202, "send: {status} {answer}");
    Ok(answer["id"].as_str().unwrap_or_default().to_owned())
}

/// Polls the message until `done` holds.
async fn wait_until(host: &TestHost, id: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let message = host.message(id).await?;
        if done(&message) {
            return Ok(message);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "message {id} did not get there: {message:#}\nlog:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_final(message: &Value) -> bool {
    matches!(
        message["status"].as_str(),
        Some("read" | "rejected" | "failed" | "expired" | "fell_back" | "cancelled")
    )
}

#[tokio::test]
async fn each_filter_narrows_the_list_and_pages_cover_it_exactly_once() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, empty) = list(&host, "").await?;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty, json!({"messages": [], "next_cursor": null}));

    // Twelve messages: even ones to A (utility, tag `order`), odd ones to B (marketing, tags
    // `promo` and `sale`).
    let mut sent = Vec::new();
    for index in 0..12 {
        let body = if index % 2 == 0 {
            json!({"to": "+6591000001", "category": "utility", "tags": ["order"],
                   "content": {"type": "text", "text": {"body": format!("order {index}")}}})
        } else {
            json!({"to": "+6591000002", "category": "marketing", "tags": ["promo", "sale"],
                   "content": {"type": "text", "text": {"body": format!("sale {index}")}}})
        };
        sent.push(send(&host, &body).await?);
    }
    for id in &sent {
        host.wait_for(id, "read", WAIT).await?;
    }

    // Everything, newest first, with the summary's fields.
    let (status, all) = list(&host, "").await?;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["next_cursor"], Value::Null);
    let all = all["messages"].as_array().cloned().unwrap();
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    assert_eq!(ids(&all), newest_first);
    let first = &all[0];
    for field in [
        "id",
        "to",
        "category",
        "priority",
        "channel",
        "status",
        "tags",
        "reason",
        "error_code",
        "created_at",
        "updated_at",
    ] {
        assert!(first.get(field).is_some(), "{field} missing from {first}");
    }
    assert!(first.get("content").is_none(), "a summary has no content: {first}");
    assert_eq!(first["to"], "+6591000002");
    assert_eq!(first["priority"], "bulk");
    assert_eq!(first["channel"], "whatsapp");
    assert_eq!(first["status"], "read");
    assert_eq!(first["tags"], json!(["promo", "sale"]));

    let expect = |keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
        ids(&all.iter().filter(|message| keep(message)).cloned().collect::<Vec<_>>())
    };
    // RFC 3339 drops trailing zeros of the fraction (`.28Z`), so compare on whole milliseconds.
    let created_at = |message: &Value| comparable_time(message["created_at"].as_str().unwrap_or_default());
    let since = message_time(&all[8]);
    let until = message_time(&all[3]);
    let cases: Vec<(String, Vec<String>)> = vec![
        ("status=read".into(), newest_first.clone()),
        ("status=failed,read".into(), newest_first.clone()),
        ("status=failed&status=read".into(), newest_first.clone()),
        ("status=queued,sending".into(), Vec::new()),
        ("category=marketing".into(), expect(&|m| m["category"] == "marketing")),
        ("to=%2B6591000001".into(), expect(&|m| m["to"] == "+6591000001")),
        ("to=6591000001".into(), expect(&|m| m["to"] == "+6591000001")),
        ("tag=sale".into(), expect(&|m| m["to"] == "+6591000002")),
        (
            "tag=order&category=utility".into(),
            expect(&|m| m["to"] == "+6591000001"),
        ),
        ("tag=sal".into(), Vec::new()),
        (
            format!("since={since}"),
            expect(&|m| created_at(m) >= comparable_time(&since)),
        ),
        (
            format!("until={until}"),
            expect(&|m| created_at(m) < comparable_time(&until)),
        ),
        (
            format!("since={since}&until={until}&to=%2B6591000002"),
            expect(&|m| {
                created_at(m) >= comparable_time(&since)
                    && created_at(m) < comparable_time(&until)
                    && m["to"] == "+6591000002"
            }),
        ),
    ];
    for (query, expected) in cases {
        let (status, page) = list(&host, &query).await?;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(ids(page["messages"].as_array().unwrap()), expected, "{query}: {page}");
        // The same filter page by page: the same messages, once each, in the same order.
        let (paged, _) = list_all(&host, &query, 2).await?;
        assert_eq!(ids(&paged), expected, "{query}, two at a time");
    }

    // Pages of five: 5 + 5 + 2, no duplicates, no gaps, newest first; a message accepted
    // while paging is newer than every cursor and does not join the walk.
    let (status, page) = list(&host, "limit=5").await?;
    assert_eq!(status, 200, "{page}");
    let mut walked = ids(page["messages"].as_array().unwrap());
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    let late = send(&host, &text_message("+6591000003", "late")).await?;
    let mut pages = 1;
    while let Some(next) = cursor {
        let (status, page) = list(&host, &format!("limit=5&cursor={next}")).await?;
        assert_eq!(status, 200, "{page}");
        walked.extend(ids(page["messages"].as_array().unwrap()));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(walked, newest_first);
    let (_, newest) = list(&host, "limit=1").await?;
    assert_eq!(newest["messages"][0]["id"], late.as_str());
    assert!(newest["next_cursor"].is_string());
    Ok(())
}

#[tokio::test]
async fn bad_filters_are_refused_naming_the_parameter() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let cases = [
        ("status=shipped", "status"),
        ("status=read,", "status"),
        ("category=spam", "category"),
        ("to=12", "to"),
        ("to=%2B65abc", "to"),
        ("tag=", "tag"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("category=utility&category=marketing", "category"),
        ("recipient=%2B6591000001", "recipient"),
    ];
    for (query, field) in cases {
        let (status, answer) = list(&host, query).await?;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field", "{query}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{query}: {answer}");
    }
    // An offset given with `+` unencoded arrives as a space and is still read.
    let (status, answer) = list(&host, "since=2026-01-01T08:00:00+08:00&limit=500").await?;
    assert_eq!(status, 200, "{answer}");
    let unauthorised = host.client.get(format!("{}/v1/messages", host.url)).send().await?;
    assert_eq!(unauthorised.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn a_message_waiting_for_its_rate_limit_is_cancelled_and_never_sent() -> anyhow::Result<()> {
    // One message per recipient every 4 s: the second waits in the queue, due later.
    let host = TestHost::start(HostOptions {
        cloud_api: "pair_burst = 1\npair_interval_ms = 4000\n".into(),
        ..HostOptions::default()
    })
    .await?;
    let recipient = "+6591230001";
    let first = send(&host, &text_message(recipient, "first")).await?;
    let second = send(&host, &text_message(recipient, "second")).await?;
    host.wait_for(&first, "read", WAIT).await?;
    // Back in the queue for the rate limit (after `sending`): not leased, not sent.
    wait_until(&host, &second, |message| {
        message["status"] == "queued" && history_statuses(message).iter().any(|status| status == "sending")
    })
    .await?;
    let (status, answer) = cancel(&host, &second).await?;
    let third = send(&host, &text_message(recipient, "third")).await?;
    if status == 200 {
        assert_eq!(answer, json!({"id": second, "status": "cancelled"}));
        let view = host.message(&second).await?;
        assert_eq!(view["status"], "cancelled", "{view:#}");
        assert_eq!(
            history_field(&view, "cause").last().map(String::as_str),
            Some("cancelled over the API")
        );
        // The third, accepted later, goes in the slot the second would have had: by the time
        // it is read, the second would have been sent. It never is.
        host.wait_for(&third, "read", WAIT).await?;
        let sent = sent_ids(&host).await?;
        assert!(sent.contains(&first) && sent.contains(&third), "{sent:?}");
        assert!(!sent.contains(&second), "a cancelled message was sent: {sent:?}");
        assert_eq!(host.message(&second).await?["status"], "cancelled");
        // Listed as cancelled, and a second cancel is a conflict naming the status.
        let (_, listed) = list(&host, "status=cancelled").await?;
        assert_eq!(ids(listed["messages"].as_array().unwrap()), vec![second.clone()]);
        let (status, again) = cancel(&host, &second).await?;
        assert_eq!(status, 409, "{again}");
        assert!(
            again["error"]["message"].as_str().unwrap().contains("cancelled"),
            "{again}"
        );
    } else {
        // The dispatcher took it first (the 4 s passed): then it is sent, and says so.
        assert_eq!(status, 409, "{answer}");
        host.wait_for(&second, "read", WAIT).await?;
        assert!(sent_ids(&host).await?.contains(&second));
    }

    // Sent messages are too late to cancel; unknown and malformed ids are named.
    let (status, answer) = cancel(&host, &first).await?;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "not_cancellable");
    assert_eq!(answer["error"]["field"], "status");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("read"),
        "{answer}"
    );
    let (status, answer) = cancel(&host, "0190aaaa-0000-7000-8000-000000000000").await?;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = cancel(&host, "nope").await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "id");
    Ok(())
}

#[tokio::test]
async fn a_message_being_sent_cannot_be_cancelled() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let slow = host
        .client
        .put(format!("{}/_sim/config", host.simulator.base_url()))
        .json(&json!({"latency_ms": 1500}))
        .send()
        .await?;
    assert!(slow.status().is_success());
    let id = send(&host, &text_message("+6591230002", "slow")).await?;
    wait_until(&host, &id, |message| message["status"] == "sending").await?;
    let (status, answer) = cancel(&host, &id).await?;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("sending"),
        "{answer}"
    );
    host.wait_for(&id, "read", WAIT).await?;
    assert_eq!(sent_ids(&host).await?.iter().filter(|sent| **sent == id).count(), 1);
    Ok(())
}

#[tokio::test]
async fn cancels_racing_the_dispatcher_agree_with_what_was_sent() -> anyhow::Result<()> {
    // 20 sends a second: the dispatcher takes the batch a few at a time while the cancels come.
    let host = TestHost::start(HostOptions {
        cloud_api: "messages_per_second = 20\n".into(),
        ..HostOptions::default()
    })
    .await?;
    let messages: Vec<Value> = (0..40)
        .map(|index| text_message(&format!("+65912{index:05}"), "race"))
        .collect();
    let (status, batch) = host.send_batch(&messages).await?;
    assert_eq!(status, 202, "{batch}");
    let batch_ids: Vec<String> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["id"].as_str().unwrap().to_owned())
        .collect();
    let mut won = HashSet::new();
    let mut lost = HashSet::new();
    for id in &batch_ids {
        let (status, answer) = cancel(&host, id).await?;
        match status {
            200 => won.insert(id.clone()),
            409 => lost.insert(id.clone()),
            other => panic!("cancel {id}: {other} {answer}"),
        };
    }
    assert!(!won.is_empty(), "every cancel came too late: {lost:?}");
    let mut finals = Vec::new();
    for id in &batch_ids {
        finals.push(wait_until(&host, id, is_final).await?);
    }
    let sent: HashSet<String> = sent_ids(&host).await?.into_iter().collect();
    for message in finals {
        let id = message["id"].as_str().unwrap();
        if won.contains(id) {
            assert_eq!(message["status"], "cancelled", "{message:#}");
            assert!(!sent.contains(id), "cancelled {id} was sent");
        } else {
            assert!(lost.contains(id));
            assert_eq!(message["status"], "read", "{message:#}");
            assert!(sent.contains(id), "{id} answered 409 but was never sent");
        }
    }
    // The backlog counts no cancelled message: nothing is left waiting.
    let (_, pending) = list(&host, "status=accepted,queued,deferred,sending").await?;
    assert_eq!(pending["messages"], json!([]));
    Ok(())
}

async fn inbound_text(host: &TestHost, from: &str, body: &str) -> anyhow::Result<()> {
    let response = host
        .client
        .post(format!("{}/_sim/inbound", host.simulator.base_url()))
        .json(&json!({"phone_number_id": PHONE_NUMBER_ID, "from": from, "type": "text", "body": body}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "POST /_sim/inbound: {}",
        response.status()
    );
    Ok(())
}

async fn opted_out(host: &TestHost, wa_id: &str) -> anyhow::Result<Option<bool>> {
    let response = host
        .client
        .get(format!("{}/v1/contacts/{wa_id}", host.url))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    if response.status().as_u16() == 404 {
        return Ok(None);
    }
    let view: Value = response.json().await?;
    Ok(view["opted_out"].as_bool())
}

async fn wait_opted_out(host: &TestHost, wa_id: &str, expected: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while opted_out(host, wa_id).await? != Some(expected) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "contact {wa_id} is not opted_out: {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn stop_opts_the_contact_out_and_start_opts_it_back_in() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let wa_id = "6591239999";
    let to = "+6591239999";
    // Words around a keyword are a conversation, not an opt-out.
    inbound_text(&host, wa_id, "please stop by the shop tomorrow").await?;
    wait_opted_out(&host, wa_id, false).await?;

    inbound_text(&host, wa_id, "  Stop ").await?;
    wait_opted_out(&host, wa_id, true).await?;
    let utility = send(&host, &text_message(to, "your parcel is on its way")).await?;
    let rejected = host.wait_for(&utility, "rejected", WAIT).await?;
    assert!(
        rejected["reason"].as_str().unwrap_or_default().contains("opted out"),
        "{rejected:#}"
    );
    assert!(!sent_ids(&host).await?.contains(&utility));

    inbound_text(&host, wa_id, "START").await?;
    wait_opted_out(&host, wa_id, false).await?;
    let again = send(&host, &text_message(to, "your parcel has arrived")).await?;
    host.wait_for(&again, "read", WAIT).await?;

    // The simulator posts the webhook and waits for wasp's 200, and wasp answers only once the
    // message (and its keyword) is kept: no waiting needed from here.
    // CANCEL is a business reply ("reply CANCEL to call off your booking"), not an opt-out.
    inbound_text(&host, wa_id, "cancel").await?;
    assert_eq!(opted_out(&host, wa_id).await?, Some(false));
    inbound_text(&host, wa_id, "Unsubscribe.").await?;
    assert_eq!(opted_out(&host, wa_id).await?, Some(true));
    Ok(())
}

#[tokio::test]
async fn cancelled_messages_leave_the_backlog_at_once() -> anyhow::Result<()> {
    // A backlog of 3 is full; one message per recipient a minute keeps the later ones waiting.
    let host = TestHost::start(HostOptions {
        dispatch: "max_backlog = 3\n".into(),
        cloud_api: "pair_burst = 1\npair_interval_ms = 60000\n".into(),
        ..HostOptions::default()
    })
    .await?;
    let recipient = "+6591230003";
    let first = send(&host, &text_message(recipient, "first")).await?;
    host.wait_for(&first, "read", WAIT).await?;
    let mut waiting = Vec::new();
    for text in ["second", "third", "fourth"] {
        waiting.push(send(&host, &text_message(recipient, text)).await?);
    }
    let (status, answer) = host.send(&text_message(recipient, "one too many")).await?;
    assert_eq!(status, 429, "{answer}");
    // The second is back in the queue for the rate limit; the others wait behind it, unclaimed.
    wait_until(&host, &waiting[0], |message| {
        message["status"] == "queued" && history_statuses(message).iter().any(|status| status == "sending")
    })
    .await?;
    for id in &waiting {
        // A worker may hold one for a moment (claimed, then handed back for the rate limit):
        // that cancel is refused as too late, so it is asked again until the worker lets go.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (status, answer) = cancel(&host, id).await?;
            if status == 409
                && answer["error"]["message"]
                    .as_str()
                    .is_some_and(|text| text.contains("dispatch worker"))
            {
                anyhow::ensure!(std::time::Instant::now() < deadline, "never let go: {answer}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            assert_eq!(status, 200, "{answer}");
            break;
        }
    }
    // Room again at once, not at the next count of the backlog.
    let (status, answer) = host.send(&text_message("+6591230004", "room again")).await?;
    assert_eq!(status, 202, "{answer}");
    let sent = sent_ids(&host).await?;
    assert!(waiting.iter().all(|id| !sent.contains(id)), "{sent:?}");
    Ok(())
}

/// A message's `created_at` as the API wrote it.
fn message_time(message: &Value) -> String {
    message["created_at"].as_str().unwrap_or_default().to_owned()
}

/// An RFC 3339 UTC time (`…T17:39:14.28Z`) with its fraction padded to milliseconds, so times
/// compare correctly as text.
fn comparable_time(time: &str) -> String {
    let without_zone = time.trim_end_matches('Z');
    let (seconds, fraction) = without_zone.split_once('.').unwrap_or((without_zone, ""));
    format!("{seconds}.{fraction:0<3}Z")
}
