//! Several `wasp serve` nodes on one PostgreSQL, black-box: a node killed with `kill -9` or
//! stopped past its lease loses no message, has none sent twice and breaks no recipient's
//! order, and the nodes together keep to the sender's rate. What reached "Meta" is read from
//! the simulator's log of accepted sends, where wasp's message id is the
//! `biz_opaque_callback_data` of each. Needs PostgreSQL (`WASP_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); without one the tests fail, they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};
use wasp_integration::{ClusterNode, HostOptions, TestCluster};
use wasp_simulator::{SentMessage, SimulatorConfig};

/// Shard leases run out 2 s after their last renewal, renewed every 500 ms, and a claimed
/// message is retaken 3 s after its claim: the defaults (5 s, 1 s, 30 s) shrunk so a
/// takeover fits in a test.
const LEASE_TTL_MS: u64 = 2_000;
const RENEW_INTERVAL_MS: u64 = 500;
const CLAIM_LEASE_MS: u64 = 3_000;
/// How long the pause test stops a node: past both leases.
const PAUSE: Duration = Duration::from_secs(5);
const SHARDS: usize = 256;
/// How long every accepted message has to reach a final state.
const SETTLE: Duration = Duration::from_secs(30);
/// What a send that was on the wire when its node stopped may trail the stop by, in the
/// simulator's clock: the simulator is in this process, so only scheduling separates them.
const IN_FLIGHT_SLACK_MS: u64 = 100;

fn options(cloud_api: &str) -> HostOptions {
    HostOptions {
        cloud_api: cloud_api.to_owned(),
        dispatch: format!("lease_ms = {CLAIM_LEASE_MS}\n"),
        extra_config: format!("[cluster]\nlease_ttl_ms = {LEASE_TTL_MS}\nrenew_interval_ms = {RENEW_INTERVAL_MS}\n"),
        simulator: SimulatorConfig {
            // A send takes a moment upstream, so some are in flight when a node dies.
            latency_ms: 2,
            ..HostOptions::default().simulator
        },
        ..HostOptions::default()
    }
}

/// No rate limit: the tests about losing nothing want the load through quickly.
const UNLIMITED: &str = "messages_per_second = 0\npair_burst = 0\n";

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn sent_ms(sent: &SentMessage) -> u64 {
    u64::try_from(sent.time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The wasp message id a send carried.
fn message_id(sent: &SentMessage) -> String {
    let reference = sent.body["biz_opaque_callback_data"].as_str().unwrap_or_default();
    reference.strip_suffix(";sensitive").unwrap_or(reference).to_owned()
}

/// Polls `node`'s `GET /v1/cluster` until `live` nodes are live, they hold every shard
/// evenly (each within two of an equal share), and no other node holds any. Answers the view.
async fn wait_for_even_spread(node: &ClusterNode, live: usize, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let view = node.cluster_view().await?;
        let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
        let live_nodes: Vec<&Value> = nodes.iter().filter(|node| node["live"] == true).collect();
        let held = |node: &Value| node["shards"].as_array().map_or(0, Vec::len);
        let even = live_nodes.len() == live
            && view["unowned_shards"].as_array().is_some_and(Vec::is_empty)
            && live_nodes.iter().map(|node| held(node)).sum::<usize>() == SHARDS
            && live_nodes.iter().all(|node| held(node).abs_diff(SHARDS / live) <= 2)
            && nodes
                .iter()
                .filter(|node| node["live"] != true)
                .all(|node| held(node) == 0);
        if even {
            return Ok(view);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the shards were not spread over {live} live nodes within {timeout:?}: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shards `id` holds in `view`.
fn shards_of(view: &Value, id: &str) -> Vec<u64> {
    view["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|node| node["id"] == id))
        .and_then(|node| node["shards"].as_array())
        .map(|shards| shards.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Polls `observer` until `lost` holds no shard and the others hold them all; answers how long
/// that took from `since`.
async fn wait_for_takeover(observer: &ClusterNode, lost: &str, since: Instant) -> anyhow::Result<Duration> {
    let deadline = since + Duration::from_secs(15);
    loop {
        let view = observer.cluster_view().await?;
        let held_elsewhere: usize = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|node| node["id"] != lost)
            .map(|node| node["shards"].as_array().map_or(0, Vec::len))
            .sum();
        if shards_of(&view, lost).is_empty()
            && held_elsewhere == SHARDS
            && view["unowned_shards"].as_array().is_some_and(Vec::is_empty)
        {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the shards of {lost} were not taken over: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the tests posted: ids in the order they were accepted, per recipient too.
#[derive(Default)]
struct Load {
    accepted: Vec<String>,
    by_recipient: HashMap<String, Vec<String>>,
    shard: HashMap<String, u64>,
    next: usize,
}

impl Load {
    /// `size` text messages, one each to the next recipients of `recipients` in turn (so every
    /// recipient gets several over the test), all of priority `normal`.
    fn items(&mut self, size: usize, recipients: usize) -> Vec<Value> {
        (0..size)
            .map(|_| {
                let recipient = format!("+65912{:05}", self.next % recipients);
                self.next += 1;
                json!({"to": recipient, "category": "utility", "priority": "normal",
                       "content": {"type": "text", "text": {"body": format!("message {}", self.next)}}})
            })
            .collect()
    }

    /// Posts `items` as one batch to `node`; every item must be accepted.
    async fn post(&mut self, node: &ClusterNode, items: &[Value]) -> anyhow::Result<()> {
        let (status, answer) = node.send_batch(items).await?;
        anyhow::ensure!(status == 202, "batch to {}: {status} {answer}", node.url);
        let results = answer["results"].as_array().unwrap();
        for (item, result) in items.iter().zip(results) {
            let id = result["id"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("an item was refused by {}: {result}", node.url))?;
            self.accepted.push(id.to_owned());
            let recipient = item["to"].as_str().unwrap().trim_start_matches('+').to_owned();
            self.by_recipient.entry(recipient).or_default().push(id.to_owned());
        }
        Ok(())
    }

    /// Waits (on `node`) until every accepted message left the queue; each must have been sent
    /// (the simulator refuses nothing here). Notes each message's shard.
    async fn wait_all_final(&mut self, node: &ClusterNode) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE;
        for id in &self.accepted {
            loop {
                let message = node.message(id).await?;
                let status = message["status"].as_str().unwrap_or_default();
                if !matches!(status, "accepted" | "queued" | "deferred" | "sending") {
                    anyhow::ensure!(
                        matches!(status, "sent" | "delivered" | "read"),
                        "message {id} ended {status}: {message:#}"
                    );
                    self.shard.insert(id.clone(), message["shard"].as_u64().unwrap());
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "message {id} still {status} after {SETTLE:?}: {message:#}"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        Ok(())
    }
}

/// Each accepted message reached the simulator, and none more than once unless that is the
/// documented at-least-once case: its node stopped (`kill -9`, `SIGSTOP`) at `interrupted_ms`
/// with the send already on the wire, so the first copy arrived by then, and the node that took
/// the shard over sent it again with a `resending` row in its history. A node sending for a
/// shard it had lost would show as a second copy with no such first one. Answers how many
/// went twice.
async fn check_sent_once(
    load: &Load,
    sent: &[SentMessage],
    interrupted_ms: u64,
    observer: &ClusterNode,
) -> anyhow::Result<usize> {
    let mut copies: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in sent {
        copies.entry(message_id(entry)).or_default().push(sent_ms(entry));
    }
    let accepted: HashSet<&String> = load.accepted.iter().collect();
    anyhow::ensure!(
        copies.keys().all(|id| accepted.contains(id)),
        "the simulator received sends for messages nobody accepted"
    );
    let mut twice = 0;
    for id in &load.accepted {
        let times = copies.get(id).map(Vec::as_slice).unwrap_or_default();
        anyhow::ensure!(!times.is_empty(), "message {id} never reached the simulator");
        if times.len() == 1 {
            continue;
        }
        twice += 1;
        let message = observer.message(id).await?;
        let resent = message["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["cause"].as_str().unwrap_or_default().contains("resending"));
        anyhow::ensure!(
            times.len() == 2 && resent && times[0] <= interrupted_ms + IN_FLIGHT_SLACK_MS,
            "message {id} was sent {} times (at {times:?} ms; the node stopped at {interrupted_ms} ms): {message:#}",
            times.len()
        );
    }
    Ok(twice)
}

/// Per recipient, the simulator received the messages (first copies) in the order they were
/// accepted: all are of one priority, so that order is the order owed.
async fn check_order(load: &Load, sent: &[SentMessage], observer: &ClusterNode) -> anyhow::Result<()> {
    let mut arrived: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen = HashSet::new();
    for entry in sent {
        let id = message_id(entry);
        if seen.insert(id.clone()) {
            arrived.entry(entry.to.clone()).or_default().push(id);
        }
    }
    for (recipient, owed) in &load.by_recipient {
        let got = arrived.get(recipient).cloned().unwrap_or_default();
        if &got != owed {
            let mut histories = String::new();
            for id in owed {
                let message = observer.message(id).await?;
                let rows: Vec<String> = message["history"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|row| format!("{} {}: {}", row["at"], row["status"], row["cause"]))
                    .collect();
                histories.push_str(&format!("{id}:\n  {}\n", rows.join("\n  ")));
            }
            anyhow::bail!(
                "{recipient} got its messages out of order:\n accepted {owed:?}\n arrived  {got:?}\n{histories}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_lose_one_to_kill_9_and_lose_nothing() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3, options(UNLIMITED)).await?;
    wait_for_even_spread(&cluster.nodes[0], 3, Duration::from_secs(15)).await?;
    // The victim is not the first node: the simulator's webhooks go there.
    let victim = cluster.nodes[2].cluster_view().await?["node_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 600 messages to 60 recipients, ten each, in batches of 50 posted in turn to the nodes.
    let mut load = Load::default();
    for batch in 0..6 {
        let items = load.items(50, 60);
        load.post(&cluster.nodes[batch % 3], &items).await?;
    }
    cluster.nodes[2].kill_hard()?;
    let killed_ms = now_ms();
    let killed = Instant::now();
    let (survivors, _) = cluster.nodes.split_at(2);
    let posting = async {
        for batch in 0..6 {
            let items = load.items(50, 60);
            load.post(&survivors[batch % 2], &items).await?;
        }
        anyhow::Ok(())
    };
    let (posted, takeover) = tokio::join!(posting, wait_for_takeover(&survivors[1], &victim, killed));
    posted?;
    let takeover = takeover?;
    eprintln!("the survivors held every shard {takeover:?} after the kill");
    let allowed = Duration::from_millis(LEASE_TTL_MS + 1_000);
    anyhow::ensure!(
        takeover <= allowed,
        "the survivors took {takeover:?} to hold the dead node's shards, more than {allowed:?}"
    );
    wait_for_even_spread(&survivors[0], 2, Duration::from_secs(5)).await?;

    load.wait_all_final(&survivors[0]).await?;
    let sent = cluster.simulator.sent();
    let twice = check_sent_once(&load, &sent, killed_ms, &survivors[0]).await?;
    check_order(&load, &sent, &survivors[0]).await?;
    eprintln!(
        "{} accepted, {} sends upstream, {twice} sent again after the kill",
        load.accepted.len(),
        sent.len()
    );
    Ok(())
}

/// Posts batches of 10 every 100 ms to `nodes` in turn, for `duration`; answers the longest
/// a batch took to be answered.
async fn load_for(load: &mut Load, nodes: &[&ClusterNode], duration: Duration) -> anyhow::Result<Duration> {
    let until = Instant::now() + duration;
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    let mut turn = 0;
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        pace.tick().await;
        let items = load.items(10, 60);
        let posted = Instant::now();
        load.post(nodes[turn % nodes.len()], &items).await?;
        slowest = slowest.max(posted.elapsed());
        turn += 1;
    }
    Ok(slowest)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_node_never_sends_for_shards_it_lost() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, options(UNLIMITED)).await?;
    let [first, paused, third] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    wait_for_even_spread(first, 3, Duration::from_secs(15)).await?;
    let paused_id = paused.cluster_view().await?["node_id"].as_str().unwrap().to_owned();

    let mut load = Load::default();
    load_for(&mut load, &[first, paused, third], Duration::from_secs(1)).await?;

    // Stopped for `PAUSE` (5 s), more than its 2 s lease and the 3 s claim lease: the others take its
    // shards and then the messages it had claimed, while messages for those shards keep coming.
    paused.pause()?;
    let paused_ms = now_ms();
    let paused_at = Instant::now();
    let log_before_resume = paused.log().len();
    let awake = [first, third];
    // The pause ends on its own clock, whatever the load is doing meanwhile.
    let pause = async {
        tokio::time::sleep(PAUSE).await;
        paused.resume()
    };
    let (slowest, takeover, resumed) = tokio::join!(
        load_for(&mut load, &awake, PAUSE),
        wait_for_takeover(first, &paused_id, paused_at),
        pause
    );
    resumed?;
    let slowest_during_pause = slowest?;
    let takeover = takeover?;
    eprintln!(
        "the others held every shard {takeover:?} after the pause; their slowest batch answer meanwhile took {slowest_during_pause:?}"
    );
    // The bound of the kill test, with a second more: here the survivors also carry the load.
    let allowed = Duration::from_millis(LEASE_TTL_MS + 2_000);
    anyhow::ensure!(
        takeover <= allowed,
        "the others took {takeover:?} to hold the paused node's shards, more than {allowed:?}"
    );

    // It wakes with its leases past their deadline by its own clock, and the database has
    // epochs newer than its own: it must rejoin, not carry on.
    load_for(&mut load, &[first, paused, third], Duration::from_secs(3)).await?;
    wait_for_even_spread(first, 3, Duration::from_secs(10)).await?;
    load.wait_all_final(first).await?;

    // The simulator cannot tell the nodes apart (they share one sender number), so "never sent
    // for a shard it lost" is checked by what such a send would leave behind: a message taken
    // over while the node was stopped, sent by its new holder and then again by the woken node,
    // is a second copy whose first copy is not an attempt that was on the wire at the pause —
    // `check_sent_once` refuses exactly that. A stale send would also arrive behind newer
    // messages of its recipient, which `check_order` refuses.
    let sent = cluster.simulator.sent();
    let twice = check_sent_once(&load, &sent, paused_ms, first).await?;
    check_order(&load, &sent, first).await?;

    // And the woken node's own account: it found its leases gone and took its share back.
    let woke = paused.log()[log_before_resume..].to_owned();
    anyhow::ensure!(
        woke.contains("shard leases changed") || woke.contains("shard lease lost"),
        "the woken node's log does not show it losing or retaking its shards:\n{woke}"
    );
    let lost_shards: HashSet<u64> = shards_of(&cluster.nodes[0].cluster_view().await?, &paused_id)
        .into_iter()
        .collect();
    let on_its_shards = load
        .accepted
        .iter()
        .filter(|id| load.shard.get(*id).is_some_and(|shard| lost_shards.contains(shard)))
        .count();
    eprintln!(
        "{} accepted ({on_its_shards} on the paused node's shards), {} sends upstream, {twice} sent again after the pause",
        load.accepted.len(),
        sent.len()
    );
    // The live nodes kept taking messages while the other was stopped: a stopped node must not
    // hold anything (a row lock in an open transaction) the others wait for.
    anyhow::ensure!(
        slowest_during_pause < Duration::from_millis(LEASE_TTL_MS),
        "a live node took {slowest_during_pause:?} to accept a batch while another node was stopped"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_together_keep_to_the_senders_rate() -> anyhow::Result<()> {
    // 30/s for the one sender number, split by the share of shards: about 10/s per node.
    const PER_SECOND: u64 = 30;
    let cloud_api = format!("messages_per_second = {PER_SECOND}\npair_burst = 0\n");
    let cluster = TestCluster::start(3, options(&cloud_api)).await?;
    wait_for_even_spread(&cluster.nodes[0], 3, Duration::from_secs(15)).await?;

    // 120 recipients, one message each, posted at once through all three nodes.
    let mut load = Load::default();
    for node in &cluster.nodes {
        let items = load.items(40, 120);
        load.post(node, &items).await?;
    }
    load.wait_all_final(&cluster.nodes[0]).await?;
    let times: Vec<u64> = cluster.simulator.sent().iter().map(sent_ms).collect();
    anyhow::ensure!(times.len() == 120, "{} sends for 120 messages", times.len());

    // Each node may run a burst (a tenth of its second's share, at least one) ahead of its
    // steady rate; the log's clock rounds to the millisecond, hence one more.
    let allowed = PER_SECOND + 3 + 1;
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let busiest = (0..sorted.len())
        .map(|first| {
            sorted[first..]
                .iter()
                .take_while(|time| **time < sorted[first] + 1_000)
                .count()
        })
        .max()
        .unwrap_or_default();
    let span = sorted.last().unwrap() - sorted.first().unwrap();
    eprintln!("120 sends over {span} ms; at most {busiest} in any second");
    anyhow::ensure!(
        u64::try_from(busiest).unwrap() <= allowed,
        "{busiest} sends within one second, more than {allowed}"
    );
    Ok(())
}

/// A plugin uploaded and activated through one node runs on every node within a second: the
/// other node learns of it from the store's change feed and swaps its chain. Half the shards
/// are the other node's, so messages to many recipients go through both chains.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_activated_on_one_node_runs_on_every_node_within_a_second() -> anyhow::Result<()> {
    let cluster = TestCluster::start(2, options(UNLIMITED)).await?;
    wait_for_even_spread(&cluster.nodes[0], 2, Duration::from_secs(15)).await?;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);

    let upload = first
        .client
        .post(format!("{}/v1/plugins/limits/versions", first.url))
        .bearer_auth(wasp_integration::TOKEN)
        .header("content-type", "application/wasm")
        .body(std::fs::read(wasp_integration::plugin("button-limit")?)?)
        .send()
        .await?;
    anyhow::ensure!(upload.status().as_u16() == 201, "upload: {}", upload.status());
    let version = upload.json::<Value>().await?["version"].as_str().unwrap().to_owned();
    let (status, view) = first
        .call(
            reqwest::Method::POST,
            "/v1/plugins/limits/activate",
            Some(json!({"version": version})),
        )
        .await?;
    anyhow::ensure!(status == 200, "activate: {status} {view}");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Five reply buttons are more than the plugin lets through: it turns them into a list.
    let items: Vec<Value> = (0..24)
        .map(|index| wasp_integration::buttons_message(&format!("+65913{index:05}"), 5, None))
        .collect();
    let (status, answer) = second.send_batch(&items).await?;
    anyhow::ensure!(status == 202, "batch: {status} {answer}");
    let ids: Vec<String> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["id"].as_str().unwrap().to_owned())
        .collect();
    let mut shards_seen = HashSet::new();
    let deadline = Instant::now() + SETTLE;
    for id in &ids {
        let message = loop {
            let message = second.message(id).await?;
            if !matches!(
                message["status"].as_str(),
                Some("accepted" | "queued" | "deferred" | "sending")
            ) {
                break message;
            }
            anyhow::ensure!(Instant::now() < deadline, "message {id} not sent: {message:#}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        anyhow::ensure!(
            message["upstream"]["rewritten_by"] == json!(["limits"]),
            "message {id} (shard {}) went out without the plugin: {message:#}",
            message["shard"]
        );
        shards_seen.insert(message["shard"].as_u64().unwrap());
    }
    // Both nodes dispatched some of them: each one's chain had the plugin.
    let view = first.cluster_view().await?;
    let dispatched_by: HashSet<String> = shards_seen
        .iter()
        .flat_map(|shard| {
            view["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(move |node| {
                    node["shards"]
                        .as_array()
                        .is_some_and(|held| held.iter().any(|held| held.as_u64() == Some(*shard)))
                })
                .map(|node| node["id"].as_str().unwrap().to_owned())
        })
        .collect();
    anyhow::ensure!(
        dispatched_by.len() == 2,
        "all 24 messages were in one node's shards ({shards_seen:?}); the test proves nothing"
    );
    Ok(())
}
