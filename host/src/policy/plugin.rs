//! One loaded plugin: its compiled component, a pool of reusable instances, and the sandbox
//! every call runs in (fuel, memory cap, epoch deadline). A trap or overrun is a [`Fault`];
//! the instance that faulted is thrown away, never reused.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use tokio::sync::mpsc;
use wasmtime::{
    Store, StoreLimits, StoreLimitsBuilder,
    component::{Component, Linker, ResourceTable},
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Contract, Policy, PolicyBindings, PolicyBindingsPre, v0_2, wasp::policy::host};
use crate::{config::FailurePolicy, store::StateWrite};

/// Sandbox limits for each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub fuel_per_call: u64,
    pub memory_limit_bytes: usize,
    pub call_deadline_ms: u64,
}

/// A plugin misbehaved: trapped, ran out of fuel or time, or returned something unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("trap: {0}")]
    Trap(String),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    #[error("malformed result: {0}")]
    Malformed(String),
    #[error("init refused the config: {0}")]
    ConfigRefused(String),
}

impl Fault {
    /// The metric label (`kind` of `wasp_policy_faults_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Trap(_) => "trap",
            Fault::Instantiate(_) => "instantiate",
            Fault::Malformed(_) => "malformed",
            Fault::ConfigRefused(_) => "config_refused",
        }
    }
}

/// Why a plugin could not be made ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The component does not fit the host's world (exports or imports).
    World(String),
    /// `init` refused the config, with the plugin's own reason.
    ConfigRefused(String),
    /// Instantiation or `init` trapped.
    Fault(Fault),
}

/// Key/value state of one plugin: read from memory, written through to the store.
pub struct PluginKv {
    plugin: String,
    values: Mutex<HashMap<String, (String, Option<i64>)>>,
    persist: mpsc::UnboundedSender<StateWrite>,
}

impl PluginKv {
    pub fn new(
        plugin: String,
        entries: Vec<crate::store::StateEntry>,
        persist: mpsc::UnboundedSender<StateWrite>,
    ) -> Self {
        let values = entries
            .into_iter()
            .map(|entry| (entry.key, (entry.value, entry.expires_at_ms)))
            .collect();
        Self {
            plugin,
            values: Mutex::new(values),
            persist,
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        let now = crate::store::now_ms();
        let mut values = self.values.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match values.get(key) {
            Some((_, Some(expires))) if *expires <= now => {
                values.remove(key);
                None
            }
            Some((value, _)) => Some(value.clone()),
            None => None,
        }
    }

    fn set(&self, key: String, value: Option<String>, ttl_ms: Option<u64>) {
        let expires_at_ms =
            ttl_ms.map(|ttl| crate::store::now_ms().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)));
        {
            let mut values = self.values.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match &value {
                Some(value) => values.insert(key.clone(), (value.clone(), expires_at_ms)),
                None => values.remove(&key),
            };
        }
        let write = StateWrite {
            plugin: self.plugin.clone(),
            key,
            value,
            expires_at_ms,
        };
        if self.persist.send(write).is_err() {
            tracing::warn!(plugin = %self.plugin, "plugin state writer has stopped; change kept in memory only");
        }
    }
}

/// Longest piece of one write of a plugin's stdout or stderr that reaches the log.
const MAX_LOGGED_OUTPUT_BYTES: usize = 1_024;

/// A plugin's stdout or stderr: each write becomes a host log line tagged with the plugin,
/// cut to [`MAX_LOGGED_OUTPUT_BYTES`] so a chatty plugin cannot flood the log.
#[derive(Clone)]
struct PluginOutput {
    plugin: Arc<str>,
    stream: &'static str,
}

impl wasmtime_wasi::cli::IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only the WASIp2 stream is used by components of this contract.
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for PluginOutput {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::OutputStream for PluginOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        let shown = &bytes[..bytes.len().min(MAX_LOGGED_OUTPUT_BYTES)];
        let text = String::from_utf8_lossy(shown);
        for line in text.lines().map(str::trim_end).filter(|line| !line.is_empty()) {
            tracing::info!(plugin = %self.plugin, stream = self.stream, "{line}");
        }
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

/// What a store's instance carries: WASI with nothing granted, limits, and the plugin's host state.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    plugin: Arc<str>,
    kv: Arc<PluginKv>,
    counters: Arc<Mutex<HashMap<String, u64>>>,
}

impl InstanceState {
    /// Sets a value of the plugin's state as its own `state-set` would, without a TTL: for
    /// tools that prepare a call (`wasp plugin test` preloading a fixture's `state`).
    pub fn preload_state(&self, key: &str, value: &str) {
        self.kv.set(key.to_owned(), Some(value.to_owned()), None);
    }

    /// The plugin's value under `key`, as its own `state-get` would read it now.
    pub fn state_value(&self, key: &str) -> Option<String> {
        self.kv.get(key)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for InstanceState {
    fn log(&mut self, level: host::LogLevel, message: String) {
        let plugin = &*self.plugin;
        match level {
            host::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            host::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            host::LogLevel::Info => tracing::info!(plugin, "{message}"),
            host::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            host::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn state_get(&mut self, key: String) -> Option<String> {
        self.kv.get(&key)
    }

    fn state_set(&mut self, key: String, value: String, ttl_ms: Option<u64>) {
        self.kv.set(key, Some(value), ttl_ms);
    }

    fn state_delete(&mut self, key: String) {
        self.kv.set(key, None, None);
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Names are the guest's: past a bound, new names make no new series.
        let exported = counters.contains_key(&name) || counters.len() < crate::telemetry::metrics::MAX_PLUGIN_COUNTERS;
        if exported {
            crate::telemetry::metrics::plugin_counter(&self.plugin, &name, delta);
        }
        let counter = counters.entry(name).or_default();
        *counter = counter.saturating_add(delta);
    }
}

// The shared types interface declares no functions; its trait is empty.
impl super::bindings::wit::Host for InstanceState {}

// 0.2.0's `templates` interface declares no functions either.
impl v0_2::wasp::policy::templates::Host for InstanceState {}

/// 0.2.0's `host` import is 0.1.0's under the new version's name: each call is 0.1.0's.
impl v0_2::wasp::policy::host::Host for InstanceState {
    fn log(&mut self, level: v0_2::wasp::policy::host::LogLevel, message: String) {
        use v0_2::wasp::policy::host::LogLevel;
        let level = match level {
            LogLevel::Trace => host::LogLevel::Trace,
            LogLevel::Debug => host::LogLevel::Debug,
            LogLevel::Info => host::LogLevel::Info,
            LogLevel::Warn => host::LogLevel::Warn,
            LogLevel::Error => host::LogLevel::Error,
        };
        host::Host::log(self, level, message);
    }

    fn state_get(&mut self, key: String) -> Option<String> {
        host::Host::state_get(self, key)
    }

    fn state_set(&mut self, key: String, value: String, ttl_ms: Option<u64>) {
        host::Host::state_set(self, key, value, ttl_ms);
    }

    fn state_delete(&mut self, key: String) {
        host::Host::state_delete(self, key);
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        host::Host::counter_add(self, name, delta);
    }
}

/// Links WASI (nothing granted) and the host imports of every contract version.
pub fn add_host_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    type Data = wasmtime::component::HasSelf<InstanceState>;
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    Policy::add_to_linker::<InstanceState, Data>(linker, |state| state)?;
    v0_2::wasp::policy::host::add_to_linker::<InstanceState, Data>(linker, |state| state)?;
    v0_2::wasp::policy::templates::add_to_linker::<InstanceState, Data>(linker, |state| state)?;
    Ok(())
}

struct Instance {
    store: Store<InstanceState>,
    bindings: PolicyBindings,
}

/// Recent call durations kept for percentiles.
const LATENCY_SAMPLES: usize = 1_024;

/// Counts and timings a plugin has gathered since it was loaded.
#[derive(Debug)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub faults: AtomicU64,
    pub call_nanos: AtomicU64,
    /// Faults since the last good call; quarantine counts these.
    pub consecutive_faults: AtomicU64,
    recent_micros: Box<[AtomicU64]>,
}

impl Default for PluginStats {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            call_nanos: AtomicU64::new(0),
            consecutive_faults: AtomicU64::new(0),
            recent_micros: (0..LATENCY_SAMPLES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A point-in-time view of [`PluginStats`].
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub faults: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub consecutive_faults: u64,
}

impl PluginStats {
    fn record(&self, micros: u64) {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        // Slot by call number: lock-free, and old samples are overwritten in turn.
        let slot = usize::try_from(call).unwrap_or_default() % LATENCY_SAMPLES;
        self.recent_micros[slot].store(micros.max(1), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let mut samples: Vec<u64> = self
            .recent_micros
            .iter()
            .map(|sample| sample.load(Ordering::Relaxed))
            .filter(|micros| *micros > 0)
            .collect();
        samples.sort_unstable();
        let percentile = |fraction: f64| -> u64 {
            if samples.is_empty() {
                return 0;
            }
            let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
            samples[index.min(samples.len() - 1)]
        };
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            p50_us: percentile(0.50),
            p99_us: percentile(0.99),
            consecutive_faults: self.consecutive_faults.load(Ordering::Relaxed),
        }
    }
}

pub struct LoadedPlugin {
    pub name: Arc<str>,
    /// sha256 of the component bytes, hex.
    pub version: String,
    pub failure: FailurePolicy,
    pub config_json: String,
    pub stats: PluginStats,
    pub counters: Arc<Mutex<HashMap<String, u64>>>,
    /// Set after `quarantine_after` faults in a row: the chain skips the plugin.
    pub quarantined: std::sync::atomic::AtomicBool,
    quarantine_after: u64,
    limits: Limits,
    pre: PolicyBindingsPre<InstanceState>,
    kv: Arc<PluginKv>,
    idle: Mutex<Vec<Instance>>,
    max_idle: usize,
}

impl LoadedPlugin {
    /// Prepares the plugin and proves its config with a first instance's `init`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        version: String,
        component: &Component,
        linker: &Linker<InstanceState>,
        failure: FailurePolicy,
        config_json: String,
        limits: Limits,
        kv: Arc<PluginKv>,
        max_idle: usize,
        quarantine_after: u64,
    ) -> Result<Self, LoadError> {
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|error| LoadError::World(format!("does not fit the host's imports: {error:#}")))?;
        let pre = PolicyBindingsPre::new(instance_pre).map_err(LoadError::World)?;
        let plugin = Self {
            name: Arc::from(name),
            version,
            failure,
            config_json,
            stats: PluginStats::default(),
            counters: Arc::default(),
            quarantined: std::sync::atomic::AtomicBool::new(false),
            quarantine_after: quarantine_after.max(1),
            limits,
            pre,
            kv,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        };
        let instance = plugin.instantiate().map_err(|fault| match fault {
            Fault::ConfigRefused(reason) => LoadError::ConfigRefused(reason),
            other => LoadError::Fault(other),
        })?;
        plugin.release(instance);
        Ok(plugin)
    }

    fn instantiate(&self) -> Result<Instance, Fault> {
        let engine = self.pre.engine();
        let state = InstanceState {
            wasi: WasiCtx::builder()
                .stdout(PluginOutput {
                    plugin: self.name.clone(),
                    stream: "stdout",
                })
                .stderr(PluginOutput {
                    plugin: self.name.clone(),
                    stream: "stderr",
                })
                .build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_limit_bytes)
                .trap_on_grow_failure(true)
                .instances(8)
                .tables(8)
                .memories(4)
                .build(),
            plugin: self.name.clone(),
            kv: self.kv.clone(),
            counters: self.counters.clone(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        self.arm(&mut store)?;
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|error| Fault::Instantiate(format!("{error:#}")))?;
        self.arm(&mut store)?;
        match bindings.call_init(&mut store, &self.config_json) {
            Ok(Ok(())) => Ok(Instance { store, bindings }),
            Ok(Err(reason)) => Err(Fault::ConfigRefused(reason)),
            Err(error) => Err(Fault::Trap(format!("in init: {}", describe_trap(&error)))),
        }
    }

    fn arm(&self, store: &mut Store<InstanceState>) -> Result<(), Fault> {
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|error| Fault::Instantiate(format!("setting fuel: {error}")))?;
        store.set_epoch_deadline(self.limits.call_deadline_ms.div_ceil(super::EPOCH_TICK_MS).max(1));
        Ok(())
    }

    fn acquire(&self) -> Result<Instance, Fault> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        match idle {
            Some(instance) => Ok(instance),
            None => self.instantiate(),
        }
    }

    fn release(&self, instance: Instance) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    /// Runs one hook on a reused instance under the sandbox limits; `hook_name` (the export,
    /// `on-submit`) labels its time in the metrics.
    pub fn call<R>(
        &self,
        hook_name: &'static str,
        hook: impl FnOnce(&PolicyBindings, &mut Store<InstanceState>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let started = Instant::now();
        let result = self.acquire().and_then(|mut instance| {
            self.arm(&mut instance.store)?;
            match hook(&instance.bindings, &mut instance.store) {
                Ok(value) => {
                    self.release(instance);
                    Ok(value)
                }
                // The instance's memory may be half-written: it is dropped here, not reused.
                Err(error) => Err(Fault::Trap(describe_trap(&error))),
            }
        });
        let took = started.elapsed();
        crate::telemetry::metrics::policy_call(&self.name, hook_name, took);
        let elapsed = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.stats.call_nanos.fetch_add(elapsed, Ordering::Relaxed);
        self.stats.record(elapsed / 1_000);
        match &result {
            Ok(_) => self.stats.consecutive_faults.store(0, Ordering::Relaxed),
            Err(fault) => self.record_fault(fault),
        }
        result
    }

    /// Counts and logs a fault, including one the chain found in a result the call returned,
    /// and quarantines the plugin after too many in a row.
    pub fn record_fault(&self, fault: &Fault) {
        self.stats.faults.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::metrics::policy_fault(&self.name, fault.kind());
        let in_a_row = self.stats.consecutive_faults.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(plugin = %self.name, version = %short(&self.version), %fault, in_a_row, "plugin fault");
        if in_a_row >= self.quarantine_after && !self.quarantined.swap(true, Ordering::Relaxed) {
            tracing::error!(
                plugin = %self.name,
                version = %short(&self.version),
                faults_in_a_row = in_a_row,
                "plugin quarantined: the chain skips it until a version is activated again"
            );
        }
    }

    /// The plugin's own counters, by name.
    pub fn counters_snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        let counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counters.iter().map(|(name, value)| (name.clone(), *value)).collect()
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The contract version the component implements.
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }
}

fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}

/// Names the kind of trap in words an operator reads: fuel, deadline, memory, or the guest's own.
pub fn describe_trap(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => "fuel budget exhausted".to_owned(),
        Some(wasmtime::Trap::Interrupt) => "wall-clock deadline exceeded".to_owned(),
        Some(wasmtime::Trap::StackOverflow) => "stack overflow".to_owned(),
        Some(trap) => format!("{trap}"),
        None => format!("{error:#}"),
    }
}

/// A store outside a [`LoadedPlugin`], set up as its instances' stores are (WASI with nothing
/// granted but stdout/stderr to the log, the memory cap, fuel and deadline armed), for tools
/// that call a plugin's exports by name (`wasp plugin test`, `wasp bench policy`). Keep it in
/// step with [`LoadedPlugin`]'s own instantiation.
pub fn detached_store(
    engine: &wasmtime::Engine,
    plugin: &str,
    limits: Limits,
    kv: Arc<PluginKv>,
) -> Result<Store<InstanceState>, Fault> {
    let plugin: Arc<str> = Arc::from(plugin);
    let state = InstanceState {
        wasi: WasiCtx::builder()
            .stdout(PluginOutput {
                plugin: plugin.clone(),
                stream: "stdout",
            })
            .stderr(PluginOutput {
                plugin: plugin.clone(),
                stream: "stderr",
            })
            .build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_limit_bytes)
            .trap_on_grow_failure(true)
            .instances(8)
            .tables(8)
            .memories(4)
            .build(),
        plugin,
        kv,
        counters: Arc::default(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    arm(&mut store, limits)?;
    Ok(store)
}

/// Gives a detached store a full fuel budget and call deadline for its next call.
pub fn arm(store: &mut Store<InstanceState>, limits: Limits) -> Result<(), Fault> {
    store
        .set_fuel(limits.fuel_per_call)
        .map_err(|error| Fault::Instantiate(format!("setting fuel: {error}")))?;
    store.set_epoch_deadline(limits.call_deadline_ms.div_ceil(super::EPOCH_TICK_MS).max(1));
    Ok(())
}
