//! `wasp plugin push|ls|activate|rollback|shadow`: thin clients of the admin API's
//! `/v1/plugins` routes. Each command builds one request (see [`AdminClient`]), sends it with
//! the bearer token, and prints the answer; an error answer's `{"error": {"code", "message",
//! "field"}}` is shown as the server wrote it and the command exits non-zero.
//!
//! May call the admin API over HTTP and, for `push DIR`, cargo through [`super::build`].

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use reqwest::{Method, Request, StatusCode, Url, header};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    build,
    table::{Table, short_version, thousands, truncate},
};

/// Where the admin API is unless `--url` or `WASP_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// How long one admin request may take (an upload compiles the component on the server).
pub const REQUEST_TIMEOUT_MS: u64 = 120_000;
/// Characters a full version (a hex sha256) has.
const VERSION_CHARS: usize = 64;

/// The server and the credentials every admin command takes.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The wasp server's base URL.
    #[arg(long, env = "WASP_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The bearer token (the admin token, or one made with `wasp token create`).
    #[arg(long, env = "WASP_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Upload a component as a new version of a plugin.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// A `.wasm` component, or a plugin crate's folder to build first.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The plugin's name (default: the crate's package name or the file name, `_` as `-`).
    #[arg(long)]
    pub name: Option<String>,
    /// The cargo profile, when PATH is a crate.
    #[arg(long, default_value = build::DEFAULT_PROFILE)]
    pub profile: String,
}

/// List the plugins, or show one in detail.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// One plugin to show with its versions and settings.
    pub name: Option<String>,
}

/// Make a version live.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    #[command(flatten)]
    pub connection: Connection,
    pub name: String,
    /// The version (its sha256, or a unique prefix of it).
    pub version: String,
}

/// Go back to the version that was live before.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub connection: Connection,
    pub name: String,
}

/// Run a version in shadow beside the live one, or, without a version, show how they agree.
#[derive(Debug, Args)]
pub struct ShadowArgs {
    #[command(flatten)]
    pub connection: Connection,
    pub name: String,
    /// The version to run in shadow (its sha256, or a unique prefix); none shows the report.
    pub version: Option<String>,
}

/// An admin request that did not get the answer it wanted.
#[derive(Debug)]
pub enum AdminError {
    /// The server answered with its error shape.
    Api {
        status: StatusCode,
        code: String,
        message: String,
        field: Option<String>,
    },
    /// The server answered with an error that is not in wasp's shape (a proxy, another server).
    Status { status: StatusCode, body: String },
    /// No answer.
    Unreachable { url: String, reason: String },
    /// An answer that is not what the route promises.
    Unexpected { url: String, reason: String },
}

impl fmt::Display for AdminError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Api {
                status, message, field, ..
            } => {
                write!(formatter, "{message}")?;
                if let Some(field) = field {
                    write!(formatter, " (field `{field}`)")?;
                }
                if *status == StatusCode::UNAUTHORIZED {
                    write!(formatter, "; set --token or WASP_ADMIN_TOKEN")?;
                }
                Ok(())
            }
            AdminError::Status { status, body } => {
                write!(formatter, "the server answered {status}")?;
                if !body.trim().is_empty() {
                    write!(formatter, ": {}", truncate(body.trim(), 200))?;
                }
                Ok(())
            }
            AdminError::Unreachable { url, reason } => write!(
                formatter,
                "cannot reach the wasp server at {url}: {reason} (is it running? set --url or WASP_URL)"
            ),
            AdminError::Unexpected { url, reason } => write!(formatter, "unexpected answer from {url}: {reason}"),
        }
    }
}

impl std::error::Error for AdminError {}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// `201` of an upload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UploadedView {
    pub name: String,
    pub version: String,
    pub size_bytes: u64,
    pub hooks: Vec<String>,
}

/// A plugin as `GET /v1/plugins/{name}` shows it; fields the server adds are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PluginView {
    pub name: String,
    pub live_version: Option<String>,
    pub shadow_version: Option<String>,
    pub position: Option<i64>,
    pub hooks: Vec<String>,
    pub failure: Option<String>,
    pub limits: Value,
    pub config: Value,
    pub quarantined: bool,
    pub versions: Vec<VersionView>,
    pub stats: Option<StatsView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VersionView {
    pub version: String,
    pub size_bytes: Option<u64>,
    /// A time as the server writes it.
    pub uploaded_at: Value,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct StatsView {
    pub calls: u64,
    pub faults: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
}

/// `GET /v1/plugins/{name}/shadow`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ShadowReport {
    pub version: String,
    pub live_version: Option<String>,
    pub compared: u64,
    pub agreed: u64,
    pub agreement: Option<f64>,
    pub disagreements: Vec<Value>,
}

/// One server, one token, one HTTP client for every request of a command.
pub struct AdminClient {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let base = Url::parse(&connection.url)
            .with_context(|| format!("--url / WASP_URL {:?} is not a URL", connection.url))?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https") && !base.cannot_be_a_base(),
            "--url / WASP_URL {:?} must be an http:// or https:// URL",
            connection.url
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base,
            token: connection.token.clone().filter(|token| !token.is_empty()),
            http,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(super) fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, self.endpoint(segments))
            .header(header::ACCEPT, "application/json");
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `POST /v1/plugins/{name}/versions` with the component as the body.
    pub fn upload_request(&self, name: &str, component: Vec<u8>) -> reqwest::Result<Request> {
        self.request(Method::POST, &["v1", "plugins", name, "versions"])
            .header(header::CONTENT_TYPE, "application/wasm")
            .body(component)
            .build()
    }

    /// `GET /v1/plugins`.
    pub fn list_request(&self) -> reqwest::Result<Request> {
        self.request(Method::GET, &["v1", "plugins"]).build()
    }

    /// `GET /v1/plugins/{name}`.
    pub fn plugin_request(&self, name: &str) -> reqwest::Result<Request> {
        self.request(Method::GET, &["v1", "plugins", name]).build()
    }

    /// `POST /v1/plugins/{name}/activate {"version"}`.
    pub fn activate_request(&self, name: &str, version: &str) -> reqwest::Result<Request> {
        self.request(Method::POST, &["v1", "plugins", name, "activate"])
            .json(&json!({"version": version}))
            .build()
    }

    /// `POST /v1/plugins/{name}/rollback`.
    pub fn rollback_request(&self, name: &str) -> reqwest::Result<Request> {
        self.request(Method::POST, &["v1", "plugins", name, "rollback"]).build()
    }

    /// `POST /v1/plugins/{name}/shadow {"version"}`.
    pub fn shadow_request(&self, name: &str, version: &str) -> reqwest::Result<Request> {
        self.request(Method::POST, &["v1", "plugins", name, "shadow"])
            .json(&json!({"version": version}))
            .build()
    }

    /// `GET /v1/plugins/{name}/shadow`.
    pub fn shadow_report_request(&self, name: &str) -> reqwest::Result<Request> {
        self.request(Method::GET, &["v1", "plugins", name, "shadow"]).build()
    }

    /// Sends `request` and reads a success answer as `T`, or the server's error.
    pub async fn send<T: DeserializeOwned>(&self, request: reqwest::Result<Request>) -> Result<T, AdminError> {
        let request = request.map_err(|error| AdminError::Unexpected {
            url: self.base.to_string(),
            reason: format!("building the request: {error}"),
        })?;
        let url = request.url().to_string();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|error| AdminError::Unreachable {
                url: self.base.to_string(),
                reason: causes(&error.without_url()),
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| AdminError::Unreachable {
            url: url.clone(),
            reason: format!("reading the answer: {}", causes(&error.without_url())),
        })?;
        decode(status, &body, &url)
    }
}

/// An error and its causes on one line (`error sending request: …: Connection refused`).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reads an answer: a success as `T` (an empty body as JSON `null`), an error in wasp's shape
/// as [`AdminError::Api`], anything else as [`AdminError::Status`].
pub fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8], url: &str) -> Result<T, AdminError> {
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => AdminError::Api {
                status,
                code: error.code,
                message: error.message,
                field: error.field,
            },
            Err(_) => AdminError::Status {
                status,
                body: String::from_utf8_lossy(body).into_owned(),
            },
        });
    }
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| AdminError::Unexpected {
        url: url.to_owned(),
        reason: error.to_string(),
    })
}

pub async fn push(args: PushArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection)?;
    let (component, default_name) = if args.path.is_dir() {
        let built = build::build_crate(&args.path, &args.profile).await?;
        let [component] = built.as_slice() else {
            anyhow::bail!(
                "{} built {} components; push one of them by path: {}",
                args.path.display(),
                built.len(),
                built
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let name = package_name(&args.path)?.unwrap_or_else(|| super::plugin_name(component));
        (component.clone(), name)
    } else {
        (args.path.clone(), super::plugin_name(&args.path))
    };
    let name = args.name.unwrap_or(default_name);
    let bytes = std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let uploaded: UploadedView = client.send(client.upload_request(&name, bytes)).await?;
    print!("{}", render_uploaded(&uploaded));
    Ok(())
}

/// The package name in the crate's Cargo.toml, if it has one.
fn package_name(dir: &Path) -> anyhow::Result<Option<String>> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let parsed: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    Ok(parsed
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(|name| name.as_str())
        .map(str::to_owned))
}

pub fn render_uploaded(uploaded: &UploadedView) -> String {
    format!(
        "uploaded {name} version {version}\n\
         size     {size} bytes\n\
         hooks    {hooks}\n\
         \n\
         next: wasp plugin shadow {name} {short}     # run it beside the live version\n\
         \x20     wasp plugin activate {name} {short}   # make it live\n",
        name = uploaded.name,
        version = uploaded.version,
        size = thousands(uploaded.size_bytes),
        hooks = uploaded.hooks.join(", "),
        short = short_version(&uploaded.version),
    )
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection)?;
    match &args.name {
        None => {
            let list: PluginList = client.send(client.list_request()).await?;
            print!("{}", render_list(&list));
        }
        Some(name) => {
            let view: PluginView = client.send(client.plugin_request(name)).await?;
            print!("{}", render_plugin(&view));
        }
    }
    Ok(())
}

fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), str::to_owned)
}

fn microseconds(value: u64) -> String {
    format!("{}µs", thousands(value))
}

/// The state a plugin is in, in a word.
fn state(view: &PluginView) -> &'static str {
    if view.quarantined {
        "quarantined"
    } else if view.live_version.is_some() {
        "live"
    } else {
        "uploaded"
    }
}

pub fn render_list(list: &PluginList) -> String {
    if list.plugins.is_empty() {
        return "no plugins; upload one with `wasp plugin push`\n".to_owned();
    }
    let mut table = Table::new(&[
        "POS", "NAME", "STATE", "LIVE", "SHADOW", "HOOKS", "FAILURE", "CALLS", "FAULTS", "P50", "P99",
    ]);
    for plugin in &list.plugins {
        let stats = plugin.stats.unwrap_or_default();
        table.row(vec![
            plugin
                .position
                .map_or_else(|| "-".to_owned(), |position| position.to_string()),
            plugin.name.clone(),
            state(plugin).to_owned(),
            or_dash(plugin.live_version.as_deref().map(short_version)),
            or_dash(plugin.shadow_version.as_deref().map(short_version)),
            if plugin.hooks.is_empty() {
                "-".to_owned()
            } else {
                plugin.hooks.join(",")
            },
            or_dash(plugin.failure.as_deref()),
            thousands(stats.calls),
            thousands(stats.faults),
            microseconds(stats.p50_us),
            microseconds(stats.p99_us),
        ]);
    }
    table.render()
}

pub fn render_plugin(view: &PluginView) -> String {
    let stats = view.stats.unwrap_or_default();
    let mut out = format!(
        "name         {name}\n\
         state        {state}\n\
         live         {live}\n\
         shadow       {shadow}\n\
         position     {position}\n\
         hooks        {hooks}\n\
         failure      {failure}\n\
         limits       {limits}\n\
         config       {config}\n\
         stats        {calls} calls, {faults} faults, p50 {p50}, p99 {p99}\n",
        name = view.name,
        state = state(view),
        live = or_dash(view.live_version.as_deref()),
        shadow = or_dash(view.shadow_version.as_deref()),
        position = view
            .position
            .map_or_else(|| "-".to_owned(), |position| position.to_string()),
        hooks = if view.hooks.is_empty() {
            "-".to_owned()
        } else {
            view.hooks.join(", ")
        },
        failure = or_dash(view.failure.as_deref()),
        limits = compact(&view.limits),
        config = compact(&view.config),
        calls = thousands(stats.calls),
        faults = thousands(stats.faults),
        p50 = microseconds(stats.p50_us),
        p99 = microseconds(stats.p99_us),
    );
    if !view.versions.is_empty() {
        let mut table = Table::new(&["VERSION", "SIZE", "UPLOADED", ""]);
        for version in &view.versions {
            let role = if view.live_version.as_deref() == Some(version.version.as_str()) {
                "live"
            } else if view.shadow_version.as_deref() == Some(version.version.as_str()) {
                "shadow"
            } else {
                ""
            };
            table.row(vec![
                short_version(&version.version).to_owned(),
                version
                    .size_bytes
                    .map_or_else(|| "-".to_owned(), |size| format!("{} bytes", thousands(size))),
                text(&version.uploaded_at),
                role.to_owned(),
            ]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    out
}

/// JSON on one line; `-` for null.
fn compact(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A JSON value as text: strings without their quotes.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => compact(other),
    }
}

pub async fn activate(args: ActivateArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection)?;
    let version = resolve_version(&client, &args.name, &args.version).await?;
    let view: PluginView = client.send(client.activate_request(&args.name, &version)).await?;
    println!(
        "{}: live version is now {}",
        view.name,
        or_dash(view.live_version.as_deref())
    );
    Ok(())
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection)?;
    let view: PluginView = client.send(client.rollback_request(&args.name)).await?;
    println!(
        "{}: rolled back; live version is now {}",
        view.name,
        or_dash(view.live_version.as_deref())
    );
    Ok(())
}

pub async fn shadow(args: ShadowArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection)?;
    match &args.version {
        Some(version) => {
            let version = resolve_version(&client, &args.name, version).await?;
            let view: PluginView = client.send(client.shadow_request(&args.name, &version)).await?;
            println!(
                "{name}: version {shadow} runs in shadow beside live {live}; its verdicts are recorded, never acted on\n\
                 see how they agree: wasp plugin shadow {name}",
                name = view.name,
                shadow = or_dash(view.shadow_version.as_deref()),
                live = or_dash(view.live_version.as_deref().map(short_version)),
            );
        }
        None => {
            let report: ShadowReport = client.send(client.shadow_report_request(&args.name)).await?;
            print!("{}", render_shadow(&args.name, &report));
        }
    }
    Ok(())
}

pub fn render_shadow(name: &str, report: &ShadowReport) -> String {
    let agreement = report
        .agreement
        .map_or_else(|| "-".to_owned(), |share| format!("{:.1}%", share * 100.0));
    let mut out = format!(
        "{name}: shadow {shadow} beside live {live}\n\
         agreed on {agreed} of {compared} compared ({agreement})\n",
        shadow = short_version(&report.version),
        live = or_dash(report.live_version.as_deref().map(short_version)),
        agreed = thousands(report.agreed),
        compared = thousands(report.compared),
    );
    if !report.disagreements.is_empty() {
        let mut table = Table::new(&["MESSAGE", "HOOK", "LIVE", "SHADOW", "AT"]);
        for disagreement in &report.disagreements {
            let field = |key: &str| disagreement.get(key).map_or_else(|| "-".to_owned(), text);
            table.row(vec![
                field("message_id"),
                field("hook"),
                truncate(&field("live"), 40),
                truncate(&field("shadow"), 40),
                field("at"),
            ]);
        }
        out.push_str("\ndisagreements:\n");
        out.push_str(&table.render());
    }
    out
}

/// A full version from a unique prefix of one of `name`'s versions (a full one is kept as is).
async fn resolve_version(client: &AdminClient, name: &str, given: &str) -> anyhow::Result<String> {
    if given.len() >= VERSION_CHARS {
        return Ok(given.to_owned());
    }
    let view: PluginView = client.send(client.plugin_request(name)).await?;
    let matching: Vec<&str> = view
        .versions
        .iter()
        .map(|version| version.version.as_str())
        .filter(|version| version.starts_with(given))
        .collect();
    match matching.as_slice() {
        [version] => Ok((*version).to_owned()),
        [] => anyhow::bail!("plugin {name} has no version starting with {given:?}; see `wasp plugin ls {name}`"),
        several => anyhow::bail!(
            "{given:?} matches {} versions of {name}; give more of it",
            several.len()
        ),
    }
}

#[cfg(test)]
mod tests;
