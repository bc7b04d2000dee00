//! `wasp bench`: one or several hosts, two Cloud API simulators and a load generator in one
//! process, on a temporary SQLite database or a PostgreSQL schema of the bench's own, measured
//! in one run.
//!
//! Phases: end-to-end throughput (batches over HTTP → policies → upstream → signed webhooks
//! → `read`), accept-to-upstream latency at 50% and 90% of that maximum, webhook ingest
//! (Meta-shaped POSTs of 1,000 statuses), failover (the preferred endpoint is shut down), and
//! two baselines on the same cores: a bare reqwest client posting the same bodies to the
//! simulator at one host's send concurrency, and a bare axum handler doing a group-commit
//! SQLite insert per request (a baseline of the machine: SQLite whatever `--store` says).
//!
//! Several nodes (`--nodes`, PostgreSQL only) are several hosts started in this process, each
//! with its own port and `cluster.node_id`, sharing the database and the simulators; the
//! simulators post their webhooks to node 1 and the load goes round-robin over the nodes.
//! Measuring starts once `GET /v1/cluster` shows every node live and every shard held. On
//! PostgreSQL the end-to-end phase is also counted in the database's own statistics
//! (`pg_stat_database`, and `pg_stat_statements` when it is installed): transactions, row
//! writes and statements per message, what the nodes pay to coordinate through the database.
//!
//! CPU: the simulators run on their own runtime (threads named `bench-sim`), the load
//! generator on another (`bench-load`). The host's CPU is the process's CPU time
//! (`/proc/self/stat`, which keeps the time of exited threads) minus the CPU time of those
//! threads (`/proc/self/task/*/stat`), read before and after the end-to-end phase; with
//! several nodes it is all of them, and on PostgreSQL it leaves the database server out.
//! Owns no part of the host; calls `app`, `config` and the simulator library, and PostgreSQL
//! directly only for its schema and statistics.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    str::FromStr as _,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use tokio::{
    runtime::Runtime,
    sync::{Semaphore, mpsc, oneshot},
};
use wasp_simulator::{RunningSimulator, Simulator, SimulatorConfig};

use crate::{
    app,
    config::{Config, FailurePolicy, PluginEntry},
};

const ADMIN_TOKEN: &str = "bench-admin-token";
const APP_SECRET: &str = "bench-app-secret";
const CLOUD_TOKEN: &str = "bench-cloud-token";
/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/*/stat`.
const CLOCK_TICKS_PER_SECOND: u64 = 100;
/// How long each latency run lasts.
const LATENCY_RUN: Duration = Duration::from_secs(3);
/// Most messages read back to measure latency in one run.
const LATENCY_SAMPLES: usize = 2_000;
/// Messages whose statuses the webhook phase posts (the simulator's sent log holds 20,000).
const WEBHOOK_MESSAGES: usize = 10_000;
/// Requests of the raw-insert baseline, and its connections.
const INSERT_REQUESTS: usize = 30_000;
const INSERT_CONNECTIONS: usize = 64;
/// Sends of the raw-upstream baseline.
const UPSTREAM_REQUESTS: usize = 20_000;
/// The PostgreSQL server of `--store postgres` when neither `--postgres-url` nor a postgres
/// `WASP_DATABASE_URL` names one.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Read for the PostgreSQL server when `--postgres-url` is not given (a `sqlite:` value is
/// passed over: it is the host's usual store, not a server).
const DATABASE_URL_VARIABLE: &str = "WASP_DATABASE_URL";
/// How long the nodes get to show up live and split the shards.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long PostgreSQL may hold a backend's statistics back: a busy backend flushes them at
/// most once a second, an idle one after `PGSTAT_IDLE_INTERVAL` (10 s in PostgreSQL 15), and
/// `pg_stat_force_next_flush()` only flushes the backend that calls it, never the hosts'.
const STATISTICS_SETTLE: Duration = Duration::from_millis(10_500);
/// How long the idle nodes are watched after the settle, to take out what they do meanwhile
/// (heartbeats, lease renewals, claim and change polls) from the end-to-end figures.
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// Tries at dropping the bench's schema while the hosts' last transactions hold its tables.
const DROP_ATTEMPTS: usize = 5;

/// Measure the host in one run: end-to-end throughput, accept-to-upstream latency, webhook
/// ingest, failover, and the raw upstream and raw insert baselines.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchOptions {
    /// Measure one part alone instead of the host.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Messages of the end-to-end phase.
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Messages per `POST /v1/messages/batch`.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Batch requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Where the built plugin components are.
    #[arg(long, default_value = "target/wasm32-wasip2/plugin")]
    pub plugins_dir: PathBuf,
    /// The policy chain, by name (comma-separated); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "button-limit")]
    pub plugins: Vec<String>,
    /// End with one JSON line of the figures instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The hosts' store: `sqlite` (a temporary file) or `postgres` (a schema of the bench's
    /// own on the server at `--postgres-url`, dropped at the end). Default: sqlite for one
    /// node, postgres for several; `--store sqlite` with `--nodes` above 1 is refused.
    #[arg(long, value_enum)]
    pub store: Option<BenchStore>,
    /// Hosts started in this process, sharing the database and splitting its shards. Above 1
    /// needs PostgreSQL (and alone implies `--store postgres`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// The PostgreSQL server of `--store postgres`. Default: `WASP_DATABASE_URL` when it is a
    /// postgres URL, else postgres://postgres@127.0.0.1:5432/test.
    #[arg(long)]
    pub postgres_url: Option<String>,
}

/// A part `wasp bench` measures alone.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// The conversation routing engine alone, in-process: assignments per second and
    /// agent-time held for read receipts, release on read on and off.
    Conversations(crate::conversations::bench::ConversationBenchArgs),
    /// A policy's cost per call beside native Rust (the same as `wasp plugin bench`).
    Policy(crate::cli::PolicyBenchArgs),
}

/// The store `wasp bench` runs its hosts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchStore {
    Sqlite,
    Postgres,
}

impl BenchStore {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl BenchOptions {
    /// The store asked for, or the one the node count implies; several nodes on SQLite is
    /// refused, as a file is one node's.
    fn resolved_store(&self) -> anyhow::Result<BenchStore> {
        match (self.store, self.nodes) {
            (Some(BenchStore::Sqlite), nodes) if nodes > 1 => bail!(
                "--nodes {nodes} needs --store postgres: a SQLite file is one node's (drop --store sqlite, or run --nodes 1)"
            ),
            (Some(store), _) => Ok(store),
            (None, 1) => Ok(BenchStore::Sqlite),
            (None, _) => Ok(BenchStore::Postgres),
        }
    }

    /// `--postgres-url`, else a postgres `WASP_DATABASE_URL`, else the local server.
    fn postgres_server(&self) -> String {
        self.postgres_url
            .clone()
            .or_else(|| {
                std::env::var(DATABASE_URL_VARIABLE)
                    .ok()
                    .filter(|url| url.starts_with("postgres:") || url.starts_with("postgresql:"))
            })
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
    }
}

/// The figures of one run.
#[derive(Debug, Default, serde::Serialize)]
pub struct BenchReport {
    pub messages: usize,
    pub plugins: Vec<String>,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
    pub nodes: u16,
    pub e2e_msgs_per_s: f64,
    pub baseline_msgs_per_s: f64,
    pub baseline_insert_per_s: f64,
    pub p50_accept_to_upstream_ms_at_50: f64,
    pub p95_accept_to_upstream_ms_at_50: f64,
    pub p99_accept_to_upstream_ms: f64,
    pub p50_accept_to_upstream_ms_at_90: f64,
    pub p95_accept_to_upstream_ms_at_90: f64,
    pub p99_accept_to_upstream_ms_at_90: f64,
    pub webhook_events_per_s: f64,
    pub failover_ms: Option<f64>,
    pub cpu_us_per_msg: f64,
    /// PostgreSQL transactions (committed and rolled back) in the bench's database over the
    /// end-to-end phase, per message of the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_transactions_per_message: Option<f64>,
    /// Rows inserted, updated and deleted in the bench's database over the end-to-end phase,
    /// per message of the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_row_writes_per_message: Option<f64>,
    /// Statements run in the bench's database over the end-to-end phase, per message; only
    /// where `pg_stat_statements` answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_statements_per_message: Option<f64>,
    /// Why there is no statement count, for the table.
    #[serde(skip)]
    pub postgres_statements_missing: Option<String>,
    /// Whether someone else wrote to the database during the phase, for the table.
    #[serde(skip)]
    pub postgres_interference: Option<String>,
}

/// Runs every phase and prints the table (or, with `--json`, one JSON line at the end).
pub async fn run(options: BenchOptions) -> anyhow::Result<BenchReport> {
    let store = options.resolved_store()?;
    let sim_runtime = named_runtime("bench-sim", 1)?;
    let load_runtime = named_runtime("bench-load", 2)?;
    let mut database = match store {
        BenchStore::Sqlite => None,
        BenchStore::Postgres => Some(BenchDatabase::create(&options.postgres_server()).await?),
    };
    let result = run_phases(&options, store, database.as_mut(), &sim_runtime, &load_runtime).await;
    sim_runtime.shutdown_background();
    load_runtime.shutdown_background();
    if let Some(database) = database {
        let schema = database.schema.clone();
        if let Err(error) = database.drop_schema().await {
            // The figures stand; the schema is left for whoever reads this.
            tracing::warn!(%schema, error = %format!("{error:#}"), "the bench's schema was not dropped");
        }
    }
    let report = result?;
    if options.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(report)
}

fn named_runtime(name: &str, threads: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("starting the {name} runtime"))
}

fn progress(options: &BenchOptions, phase: &str) {
    if !options.json {
        eprintln!("• {phase}");
    }
}

/// `count` different ports free now, for the hosts to listen on.
fn free_ports(count: u16) -> anyhow::Result<Vec<u16>> {
    // Every listener stays open until all are found, so no port comes back twice.
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

async fn run_phases(
    options: &BenchOptions,
    store: BenchStore,
    mut database: Option<&mut BenchDatabase>,
    sim_runtime: &Runtime,
    load_runtime: &Runtime,
) -> anyhow::Result<BenchReport> {
    let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
    let ports = free_ports(options.nodes)?;
    let host_urls: Vec<String> = ports.iter().map(|port| format!("http://127.0.0.1:{port}")).collect();
    let host_url = host_urls[0].clone();
    let simulator_config = SimulatorConfig {
        access_token: Some(CLOUD_TOKEN.into()),
        app_secret: APP_SECRET.into(),
        webhook_url: Some(format!("{host_url}/webhooks/whatsapp")),
        sent_after_ms: 5,
        delivered_after_ms: 5,
        read_after_ms: 5,
        read_ratio: 1.0,
        webhook_batch_max: 1_000,
        webhook_flush_ms: 10,
        ..SimulatorConfig::default()
    };
    let preferred = start_simulator(sim_runtime, simulator_config.clone()).await?;
    let standby = start_simulator(sim_runtime, simulator_config.clone()).await?;

    let database_url = match &database {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", data_dir.path().join("wasp.db").display()),
    };
    let plugins_dir = if options.plugins.is_empty() {
        // An empty chain would load every component in the directory: point at an empty one.
        let empty = data_dir.path().join("no-plugins");
        std::fs::create_dir_all(&empty)?;
        empty
    } else {
        options.plugins_dir.clone()
    };
    let mut hosts = Vec::new();
    let mut stops = Vec::new();
    let mut send_concurrency = 0;
    // One after the other: each node's start bootstraps the plugin chain into the shared
    // database, and a node that finds it there has nothing to write.
    for (index, port) in ports.iter().enumerate() {
        let mut config = Config::load(None)?;
        config.server.listen = format!("127.0.0.1:{port}");
        config.server.admin_token = Some(ADMIN_TOKEN.into());
        config.webhook.app_secret = Some(APP_SECRET.into());
        config.store.database_url = database_url.clone();
        config.cluster.node_id = format!("bench-{}", index + 1);
        config.policy.plugins_dir = plugins_dir.display().to_string();
        config.policy.compiled_cache_dir = data_dir
            .path()
            .join(format!("compiled-{}", index + 1))
            .display()
            .to_string();
        config.policy.plugins = chain(&options.plugins_dir, &options.plugins)?;
        config.channel.cloud_api.base_urls = vec![preferred.base_url(), standby.base_url()];
        config.channel.cloud_api.access_token = Some(CLOUD_TOKEN.into());
        // The simulator takes whatever pace it is given: the sender limit would only measure
        // itself. Recipients are all different, so the pair limit never binds.
        config.channel.cloud_api.messages_per_second = 0;
        config.dispatch.max_backlog = u64::MAX;
        send_concurrency = config.dispatch.workers * config.dispatch.sends_in_flight_per_worker;
        let (stop, stopped) = oneshot::channel::<()>();
        let host = app::start(config, async {
            if stopped.await.is_err() {
                tracing::debug!("bench dropped its stop handle");
            }
        })
        .await
        .with_context(|| format!("starting node bench-{}", index + 1))?;
        hosts.push(host);
        stops.push(stop);
    }
    // One client per runtime: a pooled connection is driven by the runtime that opened it,
    // so the load's connections must never be opened (or reused) from the host's runtime.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()?;
    let reader = reqwest::Client::builder().tcp_nodelay(true).build()?;
    wait_for_cluster(&reader, &host_url, options.nodes).await?;
    let load = Load {
        client: client.clone(),
        urls: host_urls.into(),
        next: Arc::default(),
        batch_size: options.batch_size.clamp(1, 1_000),
        connections: options.connections.max(1),
    };
    let mut report = BenchReport {
        messages: options.messages,
        plugins: options.plugins.clone(),
        store: store.name(),
        nodes: options.nodes,
        ..BenchReport::default()
    };
    let mut sequence = 0usize;

    progress(options, "warm-up");
    let warm = load.clone();
    let from = sequence;
    sequence += 2_000;
    load_runtime
        .spawn(async move { warm.closed_loop(from, 2_000, "warm").await })
        .await??;
    wait_statuses(&preferred, 3 * 2_000, Duration::from_secs(60), None).await?;

    progress(options, "end to end");
    let statistics_before = match database.as_deref_mut() {
        Some(database) => {
            // The warm-up's statistics reach the counters first, so they stay out of the phase.
            tokio::time::sleep(STATISTICS_SETTLE).await;
            Some(database.sample().await?)
        }
        None => None,
    };
    let statuses_before = preferred.counters().webhook_statuses;
    let cpu_before = CpuSample::read()?;
    let started = Instant::now();
    let e2e = load.clone();
    let count = options.messages;
    let from = sequence;
    sequence += count;
    let accepting = load_runtime.spawn(async move { e2e.closed_loop(from, count, "e2e").await });
    let bar = (!options.json).then_some(count);
    wait_statuses(
        &preferred,
        statuses_before + 3 * u64::try_from(count)?,
        Duration::from_secs(600),
        bar,
    )
    .await?;
    let elapsed = started.elapsed();
    accepting.await??;
    let cpu_after = CpuSample::read()?;
    report.e2e_msgs_per_s = per_second(count, elapsed);
    report.cpu_us_per_msg = cpu_after.host_us_since(&cpu_before) / count.max(1) as f64;
    if let (Some(database), Some(before)) = (database, statistics_before) {
        progress(options, "end to end: reading PostgreSQL's statistics");
        database.coordination(&before, count, &mut report).await?;
    }

    for (share, label) in [(0.5, "50%"), (0.9, "90%")] {
        progress(options, &format!("latency at {label} of the maximum"));
        let rate = report.e2e_msgs_per_s * share;
        let open = load.clone();
        let from = sequence;
        let ids = load_runtime
            .spawn(async move { open.open_loop(from, rate, LATENCY_RUN).await })
            .await??;
        sequence += ids.len() + 1;
        let latencies = accept_to_upstream(&reader, &host_url, &ids).await?;
        let (p50, p95, p99) = (
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99),
        );
        if share < 0.6 {
            report.p50_accept_to_upstream_ms_at_50 = p50;
            report.p95_accept_to_upstream_ms_at_50 = p95;
            report.p99_accept_to_upstream_ms = p99;
        } else {
            report.p50_accept_to_upstream_ms_at_90 = p50;
            report.p95_accept_to_upstream_ms_at_90 = p95;
            report.p99_accept_to_upstream_ms_at_90 = p99;
        }
    }

    progress(options, "webhook ingest");
    report.webhook_events_per_s = webhook_phase(&preferred, &load, load_runtime, &mut sequence).await?;

    progress(options, "failover");
    let channels: Vec<Arc<crate::channel::CloudApi>> = hosts.iter().map(|host| host.channel.clone()).collect();
    report.failover_ms = failover_phase(preferred, &standby, &channels, &load, load_runtime, &mut sequence).await?;

    progress(options, "baseline: raw upstream sends");
    standby.set_config(|config| config.webhook_url = None);
    let upstream = standby.base_url();
    let upstream_client = client.clone();
    report.baseline_msgs_per_s = load_runtime
        .spawn(async move { raw_upstream(upstream_client, upstream, send_concurrency).await })
        .await??;

    progress(options, "baseline: raw durable inserts (SQLite, whatever the store)");
    report.baseline_insert_per_s = raw_inserts(data_dir.path(), &client, load_runtime).await?;
    drop(reader);

    for stop in stops {
        if stop.send(()).is_err() {
            tracing::debug!("a host had already stopped");
        }
    }
    for (index, host) in hosts.into_iter().enumerate() {
        host.server
            .await
            .with_context(|| format!("the task of node bench-{} failed", index + 1))??;
    }
    standby.shutdown().await;
    Ok(report)
}

/// Waits until `GET /v1/cluster` on `url` shows `nodes` live nodes, each holding shards, and
/// no shard without a holder: before that, some messages would wait for a lease.
async fn wait_for_cluster(client: &reqwest::Client, url: &str, nodes: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
    loop {
        let view: Value = client
            .get(format!("{url}/v1/cluster"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .context("asking node bench-1 for GET /v1/cluster")?
            .error_for_status()
            .context("GET /v1/cluster on node bench-1")?
            .json()
            .await
            .context("reading GET /v1/cluster on node bench-1")?;
        let live_holding = view["nodes"]
            .as_array()
            .map(|listed| {
                listed
                    .iter()
                    .filter(|node| {
                        node["live"] == true && node["shards"].as_array().is_some_and(|shards| !shards.is_empty())
                    })
                    .count()
            })
            .unwrap_or_default();
        let unowned = view["unowned_shards"].as_array().map_or(usize::MAX, Vec::len);
        if live_holding == usize::from(nodes) && unowned == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster did not settle in {CLUSTER_READY_TIMEOUT:?}: {live_holding} of {nodes} nodes live with shards, {unowned} shards unowned: {view}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_simulator(runtime: &Runtime, config: SimulatorConfig) -> anyhow::Result<RunningSimulator> {
    runtime
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            Simulator::start(config, listener).await
        })
        .await?
}

fn chain(plugins_dir: &Path, names: &[String]) -> anyhow::Result<Vec<PluginEntry>> {
    names
        .iter()
        .map(|name| {
            let file = plugins_dir.join(format!("{}.wasm", name.replace('-', "_")));
            anyhow::ensure!(
                file.exists(),
                "plugin {name} is not built at {} (scripts/build-plugins)",
                file.display()
            );
            Ok(PluginEntry {
                name: name.clone(),
                // Found in `policy.plugins_dir` by its cargo name.
                file: None,
                failure: FailurePolicy::Closed,
                config: None,
            })
        })
        .collect()
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Waits until the simulator has delivered `target` statuses in all (and has none pending).
async fn wait_statuses(
    simulator: &RunningSimulator,
    target: u64,
    timeout: Duration,
    bar: Option<usize>,
) -> anyhow::Result<()> {
    let start = simulator.counters().webhook_statuses;
    let deadline = Instant::now() + timeout;
    let mut shown = usize::MAX;
    loop {
        let counters = simulator.counters();
        if counters.webhook_statuses >= target && counters.webhook_backlog == 0 {
            if bar.is_some() {
                eprintln!();
            }
            return Ok(());
        }
        if let Some(total) = bar {
            let done = counters.webhook_statuses.saturating_sub(start) as f64;
            let wanted = (target.saturating_sub(start)).max(1) as f64;
            let percent = ((done / wanted) * 100.0).clamp(0.0, 100.0) as usize;
            if percent != shown {
                shown = percent;
                let filled = percent * 40 / 100;
                eprint!(
                    "\r  [{}{}] {percent:>3}% of {total} messages read",
                    "#".repeat(filled),
                    " ".repeat(40 - filled)
                );
            }
        }
        if Instant::now() > deadline {
            bail!(
                "statuses stalled at {} of {target} ({:?})",
                counters.webhook_statuses,
                counters
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The load generator: batches of text messages, one recipient each, round-robin over the
/// nodes.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    /// Each node's base URL.
    urls: Arc<[String]>,
    /// The request count, which picks the next node.
    next: Arc<std::sync::atomic::AtomicUsize>,
    batch_size: usize,
    connections: usize,
}

fn bench_message(sequence: usize, tag: &str) -> Value {
    json!({
        "to": format!("+659{:07}", sequence % 10_000_000),
        "category": "utility",
        "content": {"type": "text", "text": {"body": format!("{tag} {sequence}")}},
    })
}

impl Load {
    /// The base URL of the node the next request goes to.
    fn next_url(&self) -> &str {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.urls[turn % self.urls.len()]
    }

    async fn post_batch(&self, from: usize, count: usize, tag: &str) -> anyhow::Result<Vec<String>> {
        let messages: Vec<Value> = (from..from + count)
            .map(|sequence| bench_message(sequence, tag))
            .collect();
        let response = self
            .client
            .post(format!("{}/v1/messages/batch", self.next_url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"messages": messages}))
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        anyhow::ensure!(
            status.as_u16() == 202 && answer["rejected"] == 0,
            "batch answered {status}: {answer}"
        );
        Ok(answer["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .filter_map(|item| item["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `count` messages as fast as `connections` batch requests at a time allow.
    async fn closed_loop(self, from: usize, count: usize, tag: &'static str) -> anyhow::Result<()> {
        let load = Arc::new(self);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..load.connections {
            let load = load.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let offset = next.fetch_add(load.batch_size, std::sync::atomic::Ordering::Relaxed);
                    if offset >= count {
                        return anyhow::Ok(());
                    }
                    let size = load.batch_size.min(count - offset);
                    load.post_batch(from + offset, size, tag).await?;
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    }

    /// Batches of 50 at `rate` messages/s for `duration`; returns the ids accepted.
    async fn open_loop(self, from: usize, rate: f64, duration: Duration) -> anyhow::Result<Vec<String>> {
        const BATCH: usize = 50;
        let interval = Duration::from_secs_f64(BATCH as f64 / rate.max(1.0));
        let load = Arc::new(self);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut tasks = Vec::new();
        let mut offset = 0;
        while started.elapsed() < duration {
            ticker.tick().await;
            let load = load.clone();
            let at = from + offset;
            offset += BATCH;
            tasks.push(tokio::spawn(async move { load.post_batch(at, BATCH, "latency").await }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.extend(task.await??);
        }
        Ok(ids)
    }
}

/// Reads a sample of `ids` back and returns, for each sent one, the ms from its acceptance
/// (the `accepted` history row) to Meta's answer (the `sent` row the dispatcher wrote).
async fn accept_to_upstream(client: &reqwest::Client, url: &str, ids: &[String]) -> anyhow::Result<Vec<f64>> {
    let step = (ids.len() / LATENCY_SAMPLES).max(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies = Vec::new();
    for id in ids.iter().step_by(step) {
        loop {
            let view: Value = client
                .get(format!("{url}/v1/messages/{id}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await?
                .json()
                .await?;
            let history = view["history"].as_array().cloned().unwrap_or_default();
            let at = |status: &str| {
                history
                    .iter()
                    .find(|entry| entry["status"] == status)
                    .and_then(|entry| entry["at"].as_str())
                    .and_then(|text| {
                        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
                    })
            };
            if let (Some(accepted), Some(sent)) = (at("accepted"), at("sent")) {
                latencies.push((sent - accepted).as_seconds_f64() * 1_000.0);
                break;
            }
            if Instant::now() > deadline {
                bail!("message {id} was not sent in time: {view}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * share).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Sends messages with the simulator's webhooks off, then posts their `delivered` and `read`
/// statuses itself, 1,000 per signed POST as Meta batches them; returns statuses/s ingested.
async fn webhook_phase(
    simulator: &RunningSimulator,
    load: &Load,
    load_runtime: &Runtime,
    sequence: &mut usize,
) -> anyhow::Result<f64> {
    let webhook_url = simulator.config().webhook_url;
    simulator.set_config(|config| config.webhook_url = None);
    let accepted_before = simulator.counters().accepted;
    let sender = load.clone();
    let from = *sequence;
    *sequence += WEBHOOK_MESSAGES;
    load_runtime
        .spawn(async move { sender.closed_loop(from, WEBHOOK_MESSAGES, "hook").await })
        .await??;
    let target = accepted_before + u64::try_from(WEBHOOK_MESSAGES)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while simulator.counters().accepted < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "webhook-phase messages were not sent in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent: Vec<(String, String)> = simulator
        .sent()
        .into_iter()
        .filter(|sent| {
            sent.body["text"]["body"]
                .as_str()
                .is_some_and(|text| text.starts_with("hook "))
        })
        .map(|sent| (sent.wamid, sent.to))
        .collect();
    // The dispatcher records each send a moment after Meta's answer: let it catch up so the
    // statuses apply rather than wait as orphans.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs().to_string();
    let mut bodies = Vec::new();
    for status in ["delivered", "read"] {
        for chunk in sent.chunks(1_000) {
            let statuses: Vec<Value> = chunk
                .iter()
                .map(|(wamid, to)| json!({"id": wamid, "status": status, "timestamp": timestamp, "recipient_id": to}))
                .collect();
            let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
                "field": "messages",
                "value": {"messaging_product": "whatsapp",
                          "metadata": {"display_phone_number": "15550783881", "phone_number_id": "100000000000001"},
                          "statuses": statuses}}]}]});
            bodies.push(serde_json::to_vec(&body)?);
        }
    }
    let events = sent.len() * 2;
    let client = load.client.clone();
    let load = load.clone();
    let elapsed = load_runtime
        .spawn(async move {
            let started = Instant::now();
            let gate = Arc::new(Semaphore::new(4));
            let mut tasks = Vec::new();
            for body in bodies {
                let permit = gate.clone().acquire_owned().await?;
                let client = client.clone();
                // Any node takes Meta's webhooks: they go round-robin like the API calls.
                let url = format!("{}/webhooks/whatsapp", load.next_url());
                tasks.push(tokio::spawn(async move {
                    let signature = sign(&body);
                    let status = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-hub-signature-256", signature)
                        .body(body)
                        .send()
                        .await?
                        .status();
                    drop(permit);
                    anyhow::ensure!(status.is_success(), "webhook answered {status}");
                    anyhow::Ok(())
                }));
            }
            for task in tasks {
                task.await??;
            }
            anyhow::Ok(started.elapsed())
        })
        .await??;
    simulator.set_config(move |config| config.webhook_url = webhook_url);
    Ok(per_second(events, elapsed))
}

fn sign(body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Shuts the preferred endpoint down under load and measures from the first failed request
/// on it (the earliest of the nodes' trips) to the first message the standby accepted after
/// that.
async fn failover_phase(
    preferred: RunningSimulator,
    standby: &RunningSimulator,
    channels: &[Arc<crate::channel::CloudApi>],
    load: &Load,
    load_runtime: &Runtime,
    sequence: &mut usize,
) -> anyhow::Result<Option<f64>> {
    let trips_before: Vec<u64> = channels.iter().map(|channel| channel.failover_stats().trips).collect();
    let standby_before = standby.counters().accepted;
    let sender = load.clone();
    let from = *sequence;
    *sequence += 5_000;
    let running = load_runtime.spawn(async move { sender.closed_loop(from, 5_000, "failover").await });
    // Let traffic flow to the preferred endpoint, then take it away mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    let preferred_before = preferred.counters().accepted;
    while preferred.counters().accepted < preferred_before + 500 {
        anyhow::ensure!(Instant::now() < deadline, "no traffic reached the preferred endpoint");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    preferred.shutdown().await;
    running.await??;
    let target = standby_before + 1;
    while standby.counters().accepted < target {
        anyhow::ensure!(Instant::now() < deadline, "nothing reached the standby endpoint");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let Some(tripped_us) = channels
        .iter()
        .zip(&trips_before)
        .filter_map(|(channel, before)| {
            let stats = channel.failover_stats();
            (stats.trips > *before).then_some(stats.last_trip_unix_us)
        })
        .min()
    else {
        return Ok(None);
    };
    let first_after = standby
        .sent()
        .iter()
        .filter_map(|sent| sent.time.duration_since(UNIX_EPOCH).ok())
        .map(|since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
        .filter(|at| *at >= tripped_us)
        .min();
    Ok(first_after.map(|at| (at - tripped_us) as f64 / 1_000.0))
}

/// A bare reqwest client posting the host's request bodies to the simulator, `concurrency`
/// at a time; returns sends/s.
async fn raw_upstream(client: reqwest::Client, base_url: String, concurrency: usize) -> anyhow::Result<f64> {
    let url = format!(
        "{base_url}/{}/{}/messages",
        crate::config::DEFAULT_CLOUD_API_VERSION,
        crate::config::DEFAULT_PHONE_NUMBER_ID
    );
    let elapsed = drive(concurrency, UPSTREAM_REQUESTS, move |index| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                              "to": format!("659{:07}", index), "type": "text", "text": {"body": format!("raw {index}")}});
            let response = client.post(&url).bearer_auth(CLOUD_TOKEN).json(&body).send().await?;
            anyhow::ensure!(response.status().is_success(), "simulator answered {}", response.status());
            response.bytes().await?;
            Ok(())
        }
    })
    .await?;
    Ok(per_second(UPSTREAM_REQUESTS, elapsed))
}

/// Runs `request(0..total)` from `concurrency` tasks at once, each taking the next index as it
/// finishes one; answers the time it took, or the first error.
async fn drive<F, Fut>(concurrency: usize, total: usize, request: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= total {
                    return anyhow::Ok(());
                }
                request(index).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// A bare axum handler that writes each request's message through a group-commit SQLite
/// writer (one transaction for whatever is waiting, one multi-row insert) and answers 202.
async fn raw_inserts(directory: &Path, client: &reqwest::Client, load_runtime: &Runtime) -> anyhow::Result<f64> {
    use sqlx::{Connection as _, sqlite::SqliteConnectOptions};
    let options = SqliteConnectOptions::new()
        .filename(directory.join("baseline.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::query(
        "CREATE TABLE messages (id BLOB PRIMARY KEY, recipient TEXT NOT NULL, content TEXT NOT NULL) WITHOUT ROWID",
    )
    .execute(&mut connection)
    .await?;
    type Row = (uuid::Uuid, String, String, oneshot::Sender<()>);
    let (sender, mut receiver) = mpsc::channel::<Row>(4_096);
    tokio::spawn(async move {
        let mut rows: Vec<Row> = Vec::new();
        while receiver.recv_many(&mut rows, 2_000).await > 0 {
            let written = async {
                let mut transaction = connection.begin().await?;
                for chunk in rows.chunks(500) {
                    let mut query =
                        sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO messages (id, recipient, content) ");
                    query.push_values(chunk, |mut row, (id, recipient, content, _)| {
                        row.push_bind(*id)
                            .push_bind(recipient.as_str())
                            .push_bind(content.as_str());
                    });
                    query.build().execute(&mut *transaction).await?;
                }
                transaction.commit().await
            }
            .await;
            if let Err(error) = written {
                tracing::error!(%error, "baseline insert failed");
                return;
            }
            for (_, _, _, reply) in rows.drain(..) {
                if reply.send(()).is_err() {
                    tracing::debug!("baseline caller left");
                }
            }
        }
    });
    let router = axum::Router::new().route(
        "/insert",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sender = sender.clone();
            async move {
                let (reply, done) = oneshot::channel();
                let recipient = body["to"].as_str().unwrap_or_default().to_owned();
                let content = body["content"].to_string();
                if sender
                    .send((uuid::Uuid::now_v7(), recipient, content, reply))
                    .await
                    .is_err()
                    || done.await.is_err()
                {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/insert", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = client.clone();
    let rate = load_runtime
        .spawn(async move {
            let elapsed = drive(INSERT_CONNECTIONS, INSERT_REQUESTS, move |index| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let status = client
                        .post(&url)
                        .json(&bench_message(index, "insert"))
                        .send()
                        .await?
                        .status();
                    anyhow::ensure!(status.as_u16() == 202, "baseline insert answered {status}");
                    Ok(())
                }
            })
            .await?;
            anyhow::Ok(per_second(INSERT_REQUESTS, elapsed))
        })
        .await??;
    server.abort();
    Ok(rate)
}

/// The bench's own PostgreSQL schema, and the connection that made it: it reads the
/// database's statistics and drops the schema at the end.
struct BenchDatabase {
    connection: PgConnection,
    schema: String,
    /// What the hosts connect with: the server's URL with the schema as search path.
    url: String,
    /// Whether `pg_stat_force_next_flush()` exists (PostgreSQL 15 and later).
    can_flush: bool,
    /// Why `pg_stat_statements` gives no figure, if it does not.
    statements_missing: Option<String>,
}

/// The database's cumulative counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Statistics {
    at: Instant,
    transactions: i64,
    row_writes: i64,
    /// Row writes to the bench's schema alone, to see whether anyone else wrote meanwhile.
    schema_row_writes: i64,
    statements: Option<i64>,
}

impl BenchDatabase {
    async fn create(server: &str) -> anyhow::Result<Self> {
        let shown = masked(server);
        // Dropping the schema waits for the hosts' last transactions: expected, not worth a
        // slow-statement warning.
        let connect = sqlx::postgres::PgConnectOptions::from_str(server)
            .with_context(|| format!("reading the PostgreSQL URL {shown}"))?
            .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1));
        let mut connection = PgConnection::connect_with(&connect)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {shown} (--postgres-url)"))?;
        let schema = format!("wasp_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut connection)
            .await
            .with_context(|| format!("creating the schema {schema} at {shown}"))?;
        let mut database = Self {
            connection,
            url: with_search_path(server, &schema),
            schema,
            can_flush: false,
            statements_missing: None,
        };
        // The hosts' background tasks still use the schema when it is dropped: wait for
        // their short transactions, not for ever.
        sqlx::query("SET lock_timeout = '10s'")
            .execute(&mut database.connection)
            .await
            .context("setting the bench connection's lock_timeout")?;
        database.can_flush = sqlx::query_scalar::<_, bool>("SELECT to_regproc('pg_stat_force_next_flush') IS NOT NULL")
            .fetch_one(&mut database.connection)
            .await
            .context("looking for pg_stat_force_next_flush")?;
        database.statements_missing = database.probe_statements().await;
        Ok(database)
    }

    /// Why `pg_stat_statements` cannot count the bench's statements, or none if it can.
    async fn probe_statements(&mut self) -> Option<String> {
        let exists = sqlx::query_scalar::<_, bool>("SELECT to_regclass('pg_stat_statements') IS NOT NULL")
            .fetch_one(&mut self.connection)
            .await;
        match exists {
            Ok(true) => match self.statements().await {
                Ok(_) => None,
                Err(error) => Some(format!("pg_stat_statements does not answer: {error}")),
            },
            Ok(false) => Some(
                "no pg_stat_statements view in this database (it needs shared_preload_libraries and CREATE EXTENSION)"
                    .to_owned(),
            ),
            Err(error) => Some(format!("looking for pg_stat_statements failed: {error}")),
        }
    }

    async fn statements(&mut self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(SUM(calls), 0)::bigint FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut self.connection)
        .await
    }

    async fn sample(&mut self) -> anyhow::Result<Statistics> {
        if self.can_flush {
            // This connection's own counts; the hosts' backends flush theirs themselves.
            sqlx::query("SELECT pg_stat_force_next_flush()")
                .execute(&mut self.connection)
                .await
                .context("flushing the bench connection's statistics")?;
        }
        let (transactions, row_writes): (i64, i64) = sqlx::query_as(
            "SELECT (xact_commit + xact_rollback)::bigint, (tup_inserted + tup_updated + tup_deleted)::bigint \
             FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut self.connection)
        .await
        .context("reading pg_stat_database")?;
        let schema_row_writes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables \
             WHERE schemaname = $1",
        )
        .bind(&self.schema)
        .fetch_one(&mut self.connection)
        .await
        .with_context(|| format!("reading pg_stat_user_tables of {}", self.schema))?;
        let statements = if self.statements_missing.is_none() {
            Some(self.statements().await.context("reading pg_stat_statements")?)
        } else {
            None
        };
        Ok(Statistics {
            at: Instant::now(),
            transactions,
            row_writes,
            schema_row_writes,
            statements,
        })
    }

    /// The end-to-end phase's figures from `before` (taken as it started) to now: waits for
    /// the hosts' statistics to reach the counters, then watches the idle nodes for
    /// [`IDLE_WINDOW`] and takes what they do idle over the wait out of the counts.
    async fn coordination(
        &mut self,
        before: &Statistics,
        messages: usize,
        report: &mut BenchReport,
    ) -> anyhow::Result<()> {
        let phase_end = Instant::now();
        tokio::time::sleep(STATISTICS_SETTLE).await;
        let after = self.sample().await?;
        tokio::time::sleep(IDLE_WINDOW).await;
        let idle = self.sample().await?;
        let waited = after.at.duration_since(phase_end).as_secs_f64();
        let watched = idle.at.duration_since(after.at).as_secs_f64().max(1e-3);
        let messages = messages.max(1) as f64;
        let per_message = |before: i64, after: i64, idle: i64| {
            let idle_rate = (idle - after) as f64 / watched;
            ((after - before) as f64 - idle_rate * waited).max(0.0) / messages
        };
        report.postgres_transactions_per_message =
            Some(per_message(before.transactions, after.transactions, idle.transactions));
        report.postgres_row_writes_per_message =
            Some(per_message(before.row_writes, after.row_writes, idle.row_writes));
        if let (Some(before), Some(after), Some(idle)) = (before.statements, after.statements, idle.statements) {
            report.postgres_statements_per_message = Some(per_message(before, after, idle));
        }
        report.postgres_statements_missing = self.statements_missing.clone();
        // The database's counters are everyone's: other clients' writes show up as writes
        // outside the schema (catalogs and temporary tables aside, which the hosts do not
        // touch on the hot path).
        let database_writes = after.row_writes - before.row_writes;
        let schema_writes = after.schema_row_writes - before.schema_row_writes;
        let outside = database_writes - schema_writes;
        if outside as f64 > 0.05 * schema_writes.max(1) as f64 + 100.0 {
            report.postgres_interference = Some(format!(
                "{outside} of the {database_writes} row writes in the database over the phase were outside {}: another client was busy, the PostgreSQL figures include its work",
                self.schema
            ));
        }
        Ok(())
    }

    async fn drop_schema(mut self) -> anyhow::Result<()> {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let mut attempt = 1;
        loop {
            match sqlx::query(&statement).execute(&mut self.connection).await {
                Ok(_) => break,
                // The stopped hosts' background tasks still run transactions on the schema's
                // tables, and the drop locks them all: a deadlock (`40P01`) or lock timeout
                // (`55P03`) with one of them is tried again.
                Err(sqlx::Error::Database(error))
                    if attempt < DROP_ATTEMPTS && matches!(error.code().as_deref(), Some("40P01" | "55P03")) =>
                {
                    tracing::debug!(%error, attempt, schema = %self.schema, "dropping the bench's schema again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("dropping the schema {}", self.schema));
                }
            }
        }
        self.connection.close().await.context("closing the bench connection")
    }
}

/// `server` with `schema` as the search path of every connection made with it.
fn with_search_path(server: &str, schema: &str) -> String {
    let separator = if server.contains('?') { '&' } else { '?' };
    format!("{server}{separator}options=-c%20search_path%3D{schema}")
}

/// `url` with its password hidden, for messages.
fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some("****")).is_err() {
                return "(a URL that cannot be shown)".to_owned();
            }
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

/// CPU time of the whole process and of the simulator and load threads, in clock ticks.
struct CpuSample {
    process: u64,
    others: u64,
}

impl CpuSample {
    fn read() -> anyhow::Result<Self> {
        let process = stat_ticks(&std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?)?.1;
        let mut others = 0;
        let mut seen = HashSet::new();
        for entry in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
            let path = entry?.path().join("stat");
            // A thread may end between the listing and the read.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let (name, ticks) = stat_ticks(&text)?;
            if (name.starts_with("bench-sim") || name.starts_with("bench-load")) && seen.insert(path) {
                others += ticks;
            }
        }
        Ok(Self { process, others })
    }

    /// Microseconds of CPU the host used since `before`.
    fn host_us_since(&self, before: &Self) -> f64 {
        let process = self.process.saturating_sub(before.process);
        let others = self.others.saturating_sub(before.others);
        process.saturating_sub(others) as f64 * 1_000_000.0 / CLOCK_TICKS_PER_SECOND as f64
    }
}

/// The thread name and utime + stime of a `/proc/…/stat` line.
fn stat_ticks(text: &str) -> anyhow::Result<(String, u64)> {
    let open = text.find('(').context("no ( in stat")?;
    let close = text.rfind(')').context("no ) in stat")?;
    let name = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
    let utime: u64 = fields.get(11).context("no utime in stat")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime in stat")?.parse()?;
    Ok((name, utime + stime))
}

fn print_table(report: &BenchReport) {
    let failover = report
        .failover_ms
        .map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.1}"));
    println!(
        "\nwasp bench: {} messages, plugins: {}, store: {}, nodes: {}\n\
         \n  {:<44} {:>12}\
         \n  {:<44} {:>12.0}\
         \n  {:<44} {:>12.0}\
         \n  {:<44} {:>12.0}\
         \n  {:<44} {:>12}\
         \n  {:<44} {:>12}\
         \n  {:<44} {:>12.0}\
         \n  {:<44} {:>12}\
         \n  {:<44} {:>12.1}\n",
        report.messages,
        if report.plugins.is_empty() {
            "none".to_owned()
        } else {
            report.plugins.join(", ")
        },
        report.store,
        report.nodes,
        "figure",
        "value",
        "end to end, messages/s (accept → read)",
        report.e2e_msgs_per_s,
        "baseline: raw upstream sends/s",
        report.baseline_msgs_per_s,
        "baseline: raw durable inserts/s (SQLite)",
        report.baseline_insert_per_s,
        "accept → upstream ms p50/p95/p99 at 50%",
        format!(
            "{:.1}/{:.1}/{:.1}",
            report.p50_accept_to_upstream_ms_at_50,
            report.p95_accept_to_upstream_ms_at_50,
            report.p99_accept_to_upstream_ms
        ),
        "accept → upstream ms p50/p95/p99 at 90%",
        format!(
            "{:.1}/{:.1}/{:.1}",
            report.p50_accept_to_upstream_ms_at_90,
            report.p95_accept_to_upstream_ms_at_90,
            report.p99_accept_to_upstream_ms_at_90
        ),
        "webhook statuses ingested/s",
        report.webhook_events_per_s,
        "failover ms (first failure → standby)",
        failover,
        "host CPU µs per message",
        report.cpu_us_per_msg,
    );
    if report.store == BenchStore::Postgres.name() {
        print_coordination(report);
    }
}

/// What the end-to-end phase cost in the database, per message.
fn print_coordination(report: &BenchReport) {
    let figure = |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.2}"));
    println!(
        "  PostgreSQL over the end-to-end phase, per message (host CPU above leaves the server out)\n\
         \n  {:<44} {:>12}\
         \n  {:<44} {:>12}\
         \n  {:<44} {:>12}",
        "transactions (committed + rolled back)",
        figure(report.postgres_transactions_per_message),
        "row writes (inserted + updated + deleted)",
        figure(report.postgres_row_writes_per_message),
        "statements (pg_stat_statements)",
        figure(report.postgres_statements_per_message),
    );
    if let Some(reason) = &report.postgres_statements_missing {
        println!("  no statement count: {reason}");
    }
    if let Some(warning) = &report.postgres_interference {
        println!("  warning: {warning}");
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_name_and_cpu() {
        let line = "4242 (bench-load) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 3 0 100 0 0";
        let (name, ticks) = stat_ticks(line).unwrap();
        assert_eq!(name, "bench-load");
        assert_eq!(ticks, 150);
        // Names may hold spaces and parentheses.
        let (name, _) = stat_ticks("1 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 1 1 0").unwrap();
        assert_eq!(name, "a (b) c");
        assert!(CpuSample::read().is_ok());
    }

    fn options(arguments: &[&str]) -> BenchOptions {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            options: BenchOptions,
        }
        let mut line = vec!["bench"];
        line.extend_from_slice(arguments);
        <Command as clap::Parser>::try_parse_from(line).unwrap().options
    }

    #[test]
    fn wasp_bench_policy_is_the_plugin_bench() {
        let options = options(&["policy", "--plugin", "some.wasm"]);
        let Some(BenchCommand::Policy(args)) = options.command else {
            panic!("no policy subcommand: {options:?}");
        };
        assert_eq!(args.plugin, std::path::PathBuf::from("some.wasm"));
    }

    #[test]
    fn several_nodes_need_postgres_and_imply_it() {
        assert_eq!(options(&[]).resolved_store().unwrap(), BenchStore::Sqlite);
        assert_eq!(
            options(&["--nodes", "3"]).resolved_store().unwrap(),
            BenchStore::Postgres
        );
        assert_eq!(
            options(&["--store", "postgres"]).resolved_store().unwrap(),
            BenchStore::Postgres
        );
        let refused = options(&["--store", "sqlite", "--nodes", "2"])
            .resolved_store()
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("--nodes 2") && refused.contains("--store postgres"),
            "{refused}"
        );
        assert_eq!(
            options(&["--postgres-url", "postgres://elsewhere/db"]).postgres_server(),
            "postgres://elsewhere/db"
        );
    }

    #[test]
    fn the_schema_rides_in_the_url_and_passwords_stay_hidden() {
        assert_eq!(
            with_search_path("postgres://postgres@127.0.0.1:5432/test", "wasp_bench_1"),
            "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dwasp_bench_1"
        );
        assert!(with_search_path("postgres://h/test?sslmode=disable", "s").ends_with("&options=-c%20search_path%3Ds"));
        assert_eq!(masked("postgres://user:secret@h/test"), "postgres://user:****@h/test");
        assert_eq!(masked("postgres://user@h/test"), "postgres://user@h/test");
    }

    #[test]
    fn percentiles_pick_from_sorted_samples() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
