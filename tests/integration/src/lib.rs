//! Black-box test support: start the built `wasp` binary against an in-process Cloud API
//! simulator, talk to it over HTTP, and wait for messages to reach a state.
//!
//! The binary comes from `WASP_BIN` or `target/debug/wasp`; plugin components from
//! `target/wasm32-wasip2/plugin/`. `scripts/test` builds both before the tests run.
//!
//! [`TestHost`] is one node on its own SQLite file; [`TestCluster`] is several nodes sharing one
//! simulator and one fresh PostgreSQL schema (the server named by `WASP_TEST_POSTGRES_URL`).

use std::{
    net::TcpListener as StdListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use wasp_simulator::{RunningSimulator, Simulator, SimulatorConfig};

pub const TOKEN: &str = "test-admin-token";
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const SMS_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const SMS_FROM: &str = "+15550001111";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn wasp_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("WASP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug").join("wasp"));
    anyhow::ensure!(
        path.exists(),
        "the wasp binary is not built at {}: run `cargo build -p wasp` (scripts/test does)",
        path.display()
    );
    Ok(path)
}

/// A built plugin component, by crate name (`button-limit`, `hostile`).
pub fn plugin(name: &str) -> anyhow::Result<PathBuf> {
    let path = target_dir()
        .join("wasm32-wasip2")
        .join("plugin")
        .join(format!("{}.wasm", name.replace('-', "_")));
    anyhow::ensure!(
        path.exists(),
        "plugin {name} is not built at {}: run scripts/build-plugins",
        path.display()
    );
    Ok(path)
}

/// The real Meta webhook bodies in `shared/meta-webhooks`, beside the repository.
pub fn meta_webhooks_dir() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("WASP_META_WEBHOOKS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("..").join("shared").join("meta-webhooks"));
    anyhow::ensure!(
        path.is_dir(),
        "no webhook fixtures at {} (set WASP_META_WEBHOOKS)",
        path.display()
    );
    Ok(path)
}

pub fn free_port() -> anyhow::Result<u16> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One plugin in the chain of a test host.
pub struct ChainEntry {
    pub name: &'static str,
    pub file: PathBuf,
    /// TOML inline table, such as `{ mode = "loop" }`.
    pub config: Option<String>,
    pub failure: &'static str,
}

impl ChainEntry {
    pub fn new(name: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            name,
            file: plugin(name)?,
            config: None,
            failure: "closed",
        })
    }

    pub fn with_config(mut self, config: &str) -> Self {
        self.config = Some(config.to_owned());
        self
    }
}

pub struct HostOptions {
    pub chain: Vec<ChainEntry>,
    pub simulator: SimulatorConfig,
    /// Extra lines appended to the config file.
    pub extra_config: String,
    /// Configure the SMS channel against the simulator's Twilio-compatible API
    /// (account [`SMS_ACCOUNT_SID`], sender [`SMS_FROM`]).
    pub sms: bool,
    /// Extra `key = value` lines in the `[server]` section.
    pub server: String,
    /// Extra `key = value` lines in the `[dispatch]` section.
    pub dispatch: String,
    /// Extra `key = value` lines in the `[policy]` section.
    pub policy: String,
    /// Extra `key = value` lines in the `[channel.cloud_api]` section.
    pub cloud_api: String,
    /// Start a second simulator and list it first in `base_urls`, before `simulator`:
    /// stopping it is "an endpoint down".
    pub failover: bool,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            chain: Vec::new(),
            simulator: SimulatorConfig {
                sent_after_ms: 10,
                delivered_after_ms: 20,
                read_after_ms: 20,
                read_ratio: 1.0,
                webhook_flush_ms: 5,
                ..SimulatorConfig::default()
            },
            extra_config: String::new(),
            sms: false,
            server: String::new(),
            dispatch: String::new(),
            policy: String::new(),
            cloud_api: String::new(),
            failover: false,
        }
    }
}

/// A `wasp serve` process and the simulator it talks to; both stop when this is dropped.
pub struct TestHost {
    pub url: String,
    pub client: reqwest::Client,
    pub simulator: RunningSimulator,
    /// With `failover`: the endpoint listed first.
    pub first_endpoint: Option<RunningSimulator>,
    /// The config the simulators were started with (webhooks to this host).
    pub simulator_config: SimulatorConfig,
    pub data_dir: tempfile::TempDir,
    child: Child,
    log_path: PathBuf,
    binary: PathBuf,
    config_path: PathBuf,
}

impl TestHost {
    pub async fn start(options: HostOptions) -> anyhow::Result<Self> {
        let binary = wasp_binary()?;
        let data_dir = tempfile::tempdir()?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");

        let mut simulator_config = options.simulator.clone();
        simulator_config.app_secret = APP_SECRET.to_owned();
        simulator_config.webhook_url = Some(format!("{url}/webhooks/whatsapp"));
        simulator_config.access_token = Some("test-cloud-token".to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let simulator = Simulator::start(simulator_config.clone(), listener).await?;
        let first_endpoint = if options.failover {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            Some(Simulator::start(simulator_config.clone(), listener).await?)
        } else {
            None
        };
        let database_url = format!("sqlite://{}/wasp.db", data_dir.path().display());
        let config = host_config(
            &options,
            port,
            data_dir.path(),
            &simulator,
            first_endpoint.as_ref(),
            &database_url,
        );
        let config_path = data_dir.path().join("wasp.toml");
        std::fs::write(&config_path, config)?;

        let log_path = data_dir.path().join("wasp.log");
        let child = spawn_host(&binary, &config_path, &log_path)?;
        let host = Self {
            url,
            client: reqwest::Client::new(),
            simulator,
            first_endpoint,
            simulator_config,
            data_dir,
            child,
            log_path,
            binary,
            config_path,
        };
        host.wait_ready().await?;
        Ok(host)
    }

    /// `kill -9`: the process ends at once, mid-whatever it was doing.
    pub fn kill_hard(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing wasp")?;
        self.child.wait().context("reaping wasp")?;
        Ok(())
    }

    /// SIGTERM, then waits (bounded) for the process to exit; returns whether it exited 0.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("running kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                bail!(
                    "wasp did not exit within {timeout:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the binary again on the same config and data directory (after a kill or exit).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            self.kill_hard()?;
        }
        self.child = spawn_host(&self.binary, &self.config_path, &self.log_path)?;
        self.wait_ready().await
    }

    /// `POST /v1/messages/batch` with these items.
    pub async fn send_batch(&self, messages: &[Value]) -> anyhow::Result<(u16, Value)> {
        let body = serde_json::json!({"messages": messages});
        self.call(reqwest::Method::POST, "/v1/messages/batch", Some(body)).await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        wait_ready(&self.client, &self.url, &self.log_path).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `method path` with `token` (none: no `Authorization`) and an optional JSON body; answers
    /// the status and the JSON body (`null` when it has none).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        call_json(&self.client, &self.url, token, method, path, body).await
    }

    /// [`TestHost::call_as`] with the admin token.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        self.call_as(Some(TOKEN), method, path, body).await
    }

    pub async fn send(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, "/v1/messages", Some(body.clone()))
            .await
    }

    pub async fn message(&self, id: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}/v1/messages/{id}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET message {id}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// Polls until the message reaches `status` (or any final state), within `timeout`.
    pub async fn wait_for(&self, id: &str, status: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.message(id).await?;
            let current = message["status"].as_str().unwrap_or_default().to_owned();
            if current == status {
                return Ok(message);
            }
            if Instant::now() > deadline {
                bail!(
                    "message {id} is {current}, not {status}, after {timeout:?}: {message:#}\nlog:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Posts a webhook body signed with `secret` (the right one unless testing a wrong one).
    pub async fn post_webhook(&self, body: &[u8], secret: Option<&str>) -> anyhow::Result<u16> {
        let mut request = self
            .client
            .post(format!("{}/webhooks/whatsapp", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            request = request.header("x-hub-signature-256", sign(secret, body));
        }
        Ok(request.send().await?.status().as_u16())
    }
}

/// The config file of one `wasp serve`: `options` on `port`, its files in `data_dir`, its
/// store at `database_url`, sending to `simulator` (after `first_endpoint`, when given).
fn host_config(
    options: &HostOptions,
    port: u16,
    data_dir: &Path,
    simulator: &RunningSimulator,
    first_endpoint: Option<&RunningSimulator>,
    database_url: &str,
) -> String {
    let endpoints = match first_endpoint {
        Some(first) => format!("base_urls = [\"{}\", \"{}\"]\n", first.base_url(), simulator.base_url()),
        None => String::new(),
    };
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\
         [store]\ndatabase_url = \"{database_url}\"\n\
         [policy]\nplugins_dir = \"{data}\"\ncompiled_cache_dir = \"{cache}\"\n{policy}\n\
         [channel.cloud_api]\nbase_url = \"{simulator}\"\naccess_token = \"test-cloud-token\"\n\
         probe_interval_ms = 100\n{endpoints}{cloud_api}\n\
         [dispatch]\npoll_interval_ms = 50\n{retry}{dispatch}\n",
        data = data_dir.display(),
        cache = target_dir().join("wasp-test-compiled").display(),
        simulator = simulator.base_url(),
        cloud_api = options.cloud_api,
        // Fast retries unless the test sets its own.
        retry = if options.dispatch.contains("retry_base_ms") {
            ""
        } else {
            "retry_base_ms = 50\n"
        },
        dispatch = options.dispatch,
        policy = options.policy,
        server = options.server,
    );
    for entry in &options.chain {
        config.push_str(&format!(
            "[[policy.plugins]]\nname = \"{}\"\nfile = \"{}\"\nfailure = \"{}\"\n",
            entry.name,
            entry.file.display(),
            entry.failure
        ));
        if let Some(plugin_config) = &entry.config {
            config.push_str(&format!("config = {plugin_config}\n"));
        }
    }
    if options.sms {
        config.push_str(&format!(
            "[channel.sms]\nbase_url = \"{}\"\naccount_sid = \"{SMS_ACCOUNT_SID}\"\nauth_token = \"test-sms-token\"\nfrom = \"{SMS_FROM}\"\n",
            simulator.base_url()
        ));
    }
    config.push_str(&options.extra_config);
    config
}

/// Polls `GET /readyz` until it answers 2xx (60 s at most); the error carries the log.
async fn wait_ready(client: &reqwest::Client, url: &str, log_path: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "wasp at {url} did not become ready; its log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `method base+path` with `token` (none: no `Authorization`) and an optional JSON body; answers
/// the status and the JSON body (`null` when it has none, or is an event stream).
async fn call_json(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = client.request(method.clone(), format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| format!("{method} {base}{path}"))?;
    let status = response.status().as_u16();
    // An event stream (`GET /v1/events/stream`) does not end: its status is the answer.
    let streams = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    if streams {
        return Ok((status, Value::Null));
    }
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Sends `signal` (`STOP`, `CONT`) to `child` with `kill`.
fn signal(child: &Child, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .with_context(|| format!("running kill -{signal}"))?;
    anyhow::ensure!(status.success(), "kill -{signal} {} failed", child.id());
    Ok(())
}

fn spawn_host(binary: &Path, config_path: &Path, log_path: &Path) -> anyhow::Result<Child> {
    // Appends, so the log of every run of a restarted host is kept.
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path)?;
    Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(config_path)
        .env("WASP_ADMIN_TOKEN", TOKEN)
        .env("WASP_APP_SECRET", APP_SECRET)
        .env("WASP_VERIFY_TOKEN", VERIFY_TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if self.child.kill().is_ok() {
            // Reaping the child only; its exit status says nothing after a kill.
            self.child.wait().ok();
        }
    }
}

/// One field (`status`, `cause`) of each history row of a message, in order, from
/// `GET /v1/messages/{id}`.
pub fn history_field(message: &Value, field: &str) -> Vec<String> {
    message["history"]
        .as_array()
        .map(|history| {
            history
                .iter()
                .filter_map(|entry| entry[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The statuses of a message's history, in order.
pub fn history_statuses(message: &Value) -> Vec<String> {
    history_field(message, "status")
}

/// A message body with `buttons` reply buttons.
pub fn buttons_message(to: &str, buttons: usize, key: Option<&str>) -> Value {
    let buttons: Vec<Value> = (0..buttons)
        .map(|index| serde_json::json!({"type": "reply", "reply": {"id": format!("b{index}"), "title": format!("Choice {index}")}}))
        .collect();
    let mut body = serde_json::json!({
        "to": to,
        "category": "utility",
        "content": {"type": "interactive", "interactive": {"type": "button",
            "body": {"text": "How was your delivery?"}, "action": {"buttons": buttons}}}
    });
    if let Some(key) = key {
        body["idempotency_key"] = key.into();
    }
    body
}

pub fn text_message(to: &str, text: &str) -> Value {
    serde_json::json!({"to": to, "category": "utility", "content": {"type": "text", "text": {"body": text}}})
}

/// The PostgreSQL server cluster tests use when `WASP_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Longest a call to a cluster node may take.
const CLUSTER_CALL_TIMEOUT_S: u64 = 10;

/// One `wasp serve` of a [`TestCluster`]; killed when dropped.
pub struct ClusterNode {
    pub url: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    child: Child,
    log_path: PathBuf,
}

impl ClusterNode {
    /// `kill -9`: the process ends at once, mid-whatever it was doing.
    pub fn kill_hard(&mut self) -> anyhow::Result<()> {
        // A stopped process dies of SIGKILL as well.
        self.child
            .kill()
            .with_context(|| format!("killing the node at {}", self.url))?;
        self.child
            .wait()
            .with_context(|| format!("reaping the node at {}", self.url))?;
        Ok(())
    }

    /// `SIGSTOP`: the process stops where it is, its sockets and leases left as they are.
    pub fn pause(&self) -> anyhow::Result<()> {
        signal(&self.child, "STOP")
    }

    /// `SIGCONT` after [`ClusterNode::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        signal(&self.child, "CONT")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `method path` with the admin token; see [`TestHost::call_as`].
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        call_json(&self.client, &self.url, Some(TOKEN), method, path, body).await
    }

    /// `POST /v1/messages/batch` with these items.
    pub async fn send_batch(&self, messages: &[Value]) -> anyhow::Result<(u16, Value)> {
        let body = serde_json::json!({"messages": messages});
        self.call(reqwest::Method::POST, "/v1/messages/batch", Some(body)).await
    }

    /// `GET /v1/messages/{id}`.
    pub async fn message(&self, id: &str) -> anyhow::Result<Value> {
        let (status, message) = self
            .call(reqwest::Method::GET, &format!("/v1/messages/{id}"), None)
            .await?;
        anyhow::ensure!(status == 200, "GET message {id} from {}: {status} {message}", self.url);
        Ok(message)
    }

    /// `GET /v1/cluster`, as this node answers it.
    pub async fn cluster_view(&self) -> anyhow::Result<Value> {
        let (status, view) = self.call(reqwest::Method::GET, "/v1/cluster", None).await?;
        anyhow::ensure!(status == 200, "GET /v1/cluster from {}: {status} {view}", self.url);
        Ok(view)
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        if self.child.kill().is_ok() {
            // Reaping the child only; its exit status says nothing after a kill.
            self.child.wait().ok();
        }
    }
}

/// A fresh schema on the test PostgreSQL server, dropped (with everything in it) on drop.
pub struct PostgresSchema {
    /// The server URL, without a schema.
    pub server_url: String,
    pub name: String,
}

impl PostgresSchema {
    /// Creates `wasp_it_<random>` on the server named by `WASP_TEST_POSTGRES_URL` (default
    /// [`DEFAULT_TEST_POSTGRES_URL`]). A server that cannot be reached fails the test: the
    /// cluster tests never skip.
    pub async fn create() -> anyhow::Result<Self> {
        use sqlx::Connection as _;
        let server_url =
            std::env::var("WASP_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned());
        let name = format!("wasp_it_{}", uuid::Uuid::now_v7().simple());
        let mut connection = sqlx::PgConnection::connect(&server_url).await.with_context(|| {
            format!("cluster tests need PostgreSQL: cannot connect to {server_url} (set WASP_TEST_POSTGRES_URL)")
        })?;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut connection)
            .await
            .with_context(|| format!("creating schema {name} on {server_url}"))?;
        connection.close().await.ok();
        Ok(Self { server_url, name })
    }

    /// The server URL with this schema as the search path: what `store.database_url` takes.
    pub fn database_url(&self) -> String {
        let separator = if self.server_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.server_url, self.name)
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop cannot await, and may run inside a runtime: the drop gets a thread and a
        // runtime of its own. A schema left behind is only clutter, so failures are reported,
        // not raised.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            use sqlx::Connection as _;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&server_url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut connection)
                    .await?;
                connection.close().await.ok();
                anyhow::Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("dropping test schema {}: {error:#}", self.name),
            Err(_) => eprintln!("dropping test schema {}: the thread panicked", self.name),
        }
    }
}

/// Several `wasp serve` processes on one PostgreSQL schema and one simulator, whose webhooks go
/// to the first node (any node takes them). Nodes are killed, then the schema dropped, on drop.
pub struct TestCluster {
    // Declared first so the nodes die before the schema they use is dropped.
    pub nodes: Vec<ClusterNode>,
    pub simulator: RunningSimulator,
    pub schema: PostgresSchema,
}

impl TestCluster {
    /// Starts `count` nodes, each with `options` (the `[cluster]` section goes in
    /// `extra_config`); `failover` and `sms` are not for clusters. The first node runs the
    /// migrations alone, then the others start.
    pub async fn start(count: usize, options: HostOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(count >= 1, "a cluster has at least one node");
        anyhow::ensure!(!options.failover, "failover endpoints are for a single TestHost");
        let binary = wasp_binary()?;
        let schema = PostgresSchema::create().await?;
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect::<anyhow::Result<_>>()?;

        let mut simulator_config = options.simulator.clone();
        simulator_config.app_secret = APP_SECRET.to_owned();
        simulator_config.webhook_url = Some(format!("http://127.0.0.1:{}/webhooks/whatsapp", ports[0]));
        simulator_config.access_token = Some("test-cloud-token".to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let simulator = Simulator::start(simulator_config, listener).await?;

        let database_url = schema.database_url();
        let mut nodes: Vec<ClusterNode> = Vec::with_capacity(count);
        for port in ports {
            let data_dir = tempfile::tempdir()?;
            let config = host_config(&options, port, data_dir.path(), &simulator, None, &database_url);
            let config_path = data_dir.path().join("wasp.toml");
            std::fs::write(&config_path, config)?;
            let log_path = data_dir.path().join("wasp.log");
            let child = spawn_host(&binary, &config_path, &log_path)?;
            nodes.push(ClusterNode {
                url: format!("http://127.0.0.1:{port}"),
                // A node that hangs (stopped, or waiting on a lock a stopped node holds) fails
                // the call rather than the whole test run.
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(CLUSTER_CALL_TIMEOUT_S))
                    .build()
                    .context("building the HTTP client")?,
                data_dir,
                child,
                log_path,
            });
            if nodes.len() == 1 {
                let first = &nodes[0];
                wait_ready(&first.client, &first.url, &first.log_path).await?;
            }
        }
        for node in &nodes[1..] {
            wait_ready(&node.client, &node.url, &node.log_path).await?;
        }
        Ok(Self {
            nodes,
            simulator,
            schema,
        })
    }

    /// The logs of every node, headed by their URLs: what a failing cluster test prints.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("==== node {} ====\n{}", node.url, node.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
