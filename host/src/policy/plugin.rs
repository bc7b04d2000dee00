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

use super::bindings::{Policy, PolicyPre, wasp::policy::host};
use crate::{config::FailurePolicy, store::StateWrite};

/// Sandbox limits for each call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub fuel_per_call: u64,
    pub memory_limit_bytes: usize,
    /// Epoch ticks a call may run; see [`super::EPOCH_TICK_MS`].
    pub deadline_ticks: u64,
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
}

/// Key/value state of one plugin: read from memory, written through to the store.
pub struct PluginKv {
    plugin: String,
    values: Mutex<HashMap<String, (String, Option<i64>)>>,
    persist: mpsc::UnboundedSender<StateWrite>,
}

impl PluginKv {
    pub fn new(plugin: String, entries: Vec<crate::store::StateEntry>, persist: mpsc::UnboundedSender<StateWrite>) -> Self {
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
        let expires_at_ms = ttl_ms.map(|ttl| crate::store::now_ms().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)));
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

/// What a store's instance carries: WASI with nothing granted, limits, and the plugin's host state.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    plugin: Arc<str>,
    kv: Arc<PluginKv>,
    counters: Arc<Mutex<HashMap<String, u64>>>,
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
        let counter = counters.entry(name).or_default();
        *counter = counter.saturating_add(delta);
    }
}

// The shared types interface declares no functions; its trait is empty.
impl super::bindings::wit::Host for InstanceState {}

pub fn add_host_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    Policy::add_to_linker::<InstanceState, wasmtime::component::HasSelf<InstanceState>>(linker, |state| state)?;
    Ok(())
}

struct Instance {
    store: Store<InstanceState>,
    bindings: Policy,
}

/// Counts and timings a plugin has gathered since it was loaded.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub faults: AtomicU64,
    pub call_nanos: AtomicU64,
}

pub struct LoadedPlugin {
    pub name: Arc<str>,
    /// sha256 of the component bytes, hex.
    pub version: String,
    pub failure: FailurePolicy,
    pub config_json: String,
    pub stats: PluginStats,
    pub counters: Arc<Mutex<HashMap<String, u64>>>,
    limits: Limits,
    pre: PolicyPre<InstanceState>,
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
    ) -> Result<Self, String> {
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|error| format!("does not fit the host's imports: {error:#}"))?;
        let pre = PolicyPre::new(instance_pre)
            .map_err(|error| format!("does not implement the wasp:policy@0.1.0 world: {error:#}"))?;
        let plugin = Self {
            name: Arc::from(name),
            version,
            failure,
            config_json,
            stats: PluginStats::default(),
            counters: Arc::default(),
            limits,
            pre,
            kv,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        };
        let instance = plugin.instantiate().map_err(|fault| fault.to_string())?;
        plugin.release(instance);
        Ok(plugin)
    }

    fn instantiate(&self) -> Result<Instance, Fault> {
        let engine = self.pre.engine();
        let state = InstanceState {
            wasi: WasiCtx::builder().build(),
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
            Ok(Err(reason)) => Err(Fault::Instantiate(format!("init refused the config: {reason}"))),
            Err(error) => Err(Fault::Trap(format!("in init: {}", describe_trap(&error)))),
        }
    }

    fn arm(&self, store: &mut Store<InstanceState>) -> Result<(), Fault> {
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|error| Fault::Instantiate(format!("setting fuel: {error}")))?;
        store.set_epoch_deadline(self.limits.deadline_ticks);
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

    /// Runs one hook on a reused instance under the sandbox limits.
    pub fn call<R>(
        &self,
        hook: impl FnOnce(&Policy, &mut Store<InstanceState>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let started = Instant::now();
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
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
        let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats.call_nanos.fetch_add(elapsed, Ordering::Relaxed);
        if let Err(fault) = &result {
            self.record_fault(fault);
        }
        result
    }

    /// Counts and logs a fault, including one the chain found in a result the call returned.
    pub fn record_fault(&self, fault: &Fault) {
        self.stats.faults.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.name, version = %short(&self.version), %fault, "plugin fault");
    }
}

fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}

/// Names the kind of trap in words an operator reads: fuel, deadline, memory, or the guest's own.
fn describe_trap(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => "fuel budget exhausted".to_owned(),
        Some(wasmtime::Trap::Interrupt) => "wall-clock deadline exceeded".to_owned(),
        Some(wasmtime::Trap::StackOverflow) => "stack overflow".to_owned(),
        Some(trap) => format!("{trap}"),
        None => format!("{error:#}"),
    }
}
