//! The policy runtime: loads plugin components, keeps the chain they form, and runs a message
//! through it. Owns the wasmtime engine, the epoch ticker and the compiled-code cache.
//!
//! Chain rules: plugins run in their configured order; the first reject ends the chain; a
//! rewrite is what the next plugin sees; defers take the latest time. A faulting plugin
//! rejects the message (fail closed) or is skipped (fail open), as its entry says.
//! May call the store (plugin state) and nothing else in wasp.

pub mod bindings;
mod plugin;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    component::{Component, Linker},
};

pub use bindings::{Envelope, wit};
pub use plugin::{Fault, LoadedPlugin, Limits};

use crate::{
    config::{FailurePolicy, PluginEntry, PolicyConfig},
    message::Channel,
    store::{StateWrite, Store},
};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK_MS: u64 = 2;
/// Component instances the pooling allocator keeps room for, across all plugins.
const POOLED_INSTANCES: u32 = 256;
/// Largest plugin component accepted.
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("policy engine: {0}")]
    Engine(String),
    #[error("plugin {name}: reading {path}: {source}")]
    Read {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugins dir {path}: {source}")]
    Directory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("plugin {name}: loading state: {source}")]
    State {
        name: String,
        #[source]
        source: crate::store::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a chain decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow,
    /// Not before this time (ms since the epoch).
    Defer { until_ms: i64, by: String },
    Reject { reason: String },
}

#[derive(Debug, Clone)]
pub struct ChainOutcome {
    pub decision: Decision,
    /// The message as the last plugin left it.
    pub envelope: Envelope,
    /// Plugins that changed the message, in order.
    pub rewritten_by: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Submit,
    Dispatch,
}

/// The plugins in chain order: an immutable snapshot, so each message is judged wholly by one chain.
#[derive(Default)]
pub struct Chain {
    pub plugins: Vec<Arc<LoadedPlugin>>,
}

impl Chain {
    pub fn run(&self, hook: Hook, envelope: &Envelope, context: &wit::Context) -> ChainOutcome {
        let mut current = envelope.clone();
        let mut rewritten_by = Vec::new();
        let mut defer: Option<(i64, String)> = None;
        for plugin in &self.plugins {
            let message = current.to_wit();
            let verdict = plugin.call(|bindings, store| match hook {
                Hook::Submit => bindings.call_on_submit(store, &message, context),
                Hook::Dispatch => bindings.call_on_dispatch(store, &message, context),
            });
            let verdict = match verdict {
                Ok(verdict) => verdict,
                Err(fault) => match fault_verdict(plugin, &fault) {
                    Some(decision) => return ChainOutcome { decision, envelope: current, rewritten_by },
                    None => continue,
                },
            };
            match verdict {
                wit::Verdict::Allow => {}
                wit::Verdict::Rewrite(rewritten) => match current.apply_rewrite(rewritten) {
                    Ok(next) => {
                        if next != current {
                            current = next;
                            rewritten_by.push(plugin.name.to_string());
                        }
                    }
                    Err(reason) => {
                        let fault = Fault::Malformed(reason);
                        plugin.record_fault(&fault);
                        if let Some(decision) = fault_verdict(plugin, &fault) {
                            return ChainOutcome { decision, envelope: current, rewritten_by };
                        }
                    }
                },
                wit::Verdict::Defer(until_ms) => {
                    if defer.as_ref().is_none_or(|(latest, _)| until_ms > *latest) {
                        defer = Some((until_ms, plugin.name.to_string()));
                    }
                }
                wit::Verdict::Reroute(channel) => {
                    let channel = Channel::from(channel);
                    if channel != current.channel {
                        current.channel = channel;
                        rewritten_by.push(plugin.name.to_string());
                    }
                }
                wit::Verdict::Reject(reason) => {
                    return ChainOutcome {
                        decision: Decision::Reject {
                            reason: format!("{}: {reason}", plugin.name),
                        },
                        envelope: current,
                        rewritten_by,
                    };
                }
            }
        }
        let decision = match defer {
            Some((until_ms, by)) if until_ms > context.now_ms => Decision::Defer { until_ms, by },
            _ => Decision::Allow,
        };
        ChainOutcome {
            decision,
            envelope: current,
            rewritten_by,
        }
    }
}

/// Fail closed: reject naming the plugin, its version and the fault. Fail open: skip it.
fn fault_verdict(plugin: &LoadedPlugin, fault: &Fault) -> Option<Decision> {
    match plugin.failure {
        FailurePolicy::Closed => Some(Decision::Reject {
            reason: format!(
                "plugin {}@{} faulted: {fault}",
                plugin.name,
                &plugin.version[..plugin.version.len().min(12)]
            ),
        }),
        FailurePolicy::Open => None,
    }
}

/// The engine, the linker, and the live chain.
pub struct PolicyRuntime {
    engine: Engine,
    linker: Linker<InstanceState>,
    limits: Limits,
    instances_per_plugin: usize,
    chain: RwLock<Arc<Chain>>,
    state_writes: mpsc::UnboundedSender<StateWrite>,
    store: Store,
}

use plugin::InstanceState;

impl PolicyRuntime {
    /// Builds the engine (pooling allocator, fuel, epochs, on-disk compiled-code cache in
    /// `cache_dir`) and starts the epoch ticker and the plugin-state writer.
    pub fn new(config: &PolicyConfig, store: Store, cache_dir: Option<&Path>) -> Result<Self> {
        let mut engine_config = wasmtime::Config::new();
        engine_config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 * 1024)
            .wasm_simd(true)
            .parallel_compilation(true);
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 2)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 2)
            .max_memory_size(config.memory_limit_bytes);
        engine_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        if let Some(directory) = cache_dir {
            let mut cache_config = wasmtime::CacheConfig::new();
            cache_config.with_directory(directory);
            let cache = wasmtime::Cache::new(cache_config).map_err(|error| Error::Engine(format!("compiled-code cache: {error:#}")))?;
            engine_config.cache(Some(cache));
        }
        let engine = Engine::new(&engine_config).map_err(|error| Error::Engine(format!("{error:#}")))?;
        let mut linker = Linker::new(&engine);
        plugin::add_host_to_linker(&mut linker).map_err(|error| Error::Engine(format!("linking host imports: {error:#}")))?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasp-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
                }
            })
            .map_err(|error| Error::Engine(format!("starting the epoch ticker: {error}")))?;

        let (state_writes, mut pending) = mpsc::unbounded_channel::<StateWrite>();
        let state_store = store.clone();
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = pending.try_recv() {
                    batch.push(next);
                }
                if let Err(error) = state_store.write_state(batch).await {
                    tracing::error!(%error, "persisting plugin state failed");
                }
            }
        });

        Ok(Self {
            engine,
            linker,
            limits: Limits {
                fuel_per_call: config.fuel_per_call,
                memory_limit_bytes: config.memory_limit_bytes,
                deadline_ticks: config.call_deadline_ms.div_ceil(EPOCH_TICK_MS).max(1),
            },
            instances_per_plugin: config.instances_per_plugin,
            chain: RwLock::new(Arc::new(Chain::default())),
            state_writes,
            store,
        })
    }

    /// Loads the chain the config names (or every `*.wasm` in the plugins dir) and makes it live.
    pub async fn load_configured(&self, config: &PolicyConfig) -> Result<()> {
        let directory = PathBuf::from(&config.plugins_dir);
        let entries = if config.plugins.is_empty() {
            discover(&directory)?
        } else {
            config.plugins.clone()
        };
        let mut plugins = Vec::with_capacity(entries.len());
        for entry in &entries {
            let path = plugin_path(&directory, entry);
            let bytes = std::fs::read(&path).map_err(|source| Error::Read {
                name: entry.name.clone(),
                path: path.display().to_string(),
                source,
            })?;
            let config_json = match &entry.config {
                Some(value) => serde_json::to_string(value).map_err(|error| Error::Invalid {
                    name: entry.name.clone(),
                    reason: format!("config is not representable as JSON: {error}"),
                })?,
                None => "{}".to_owned(),
            };
            let plugin = self.load(&entry.name, &bytes, entry.failure, config_json).await?;
            tracing::info!(plugin = %entry.name, version = %&plugin.version[..12], path = %path.display(), "plugin loaded");
            plugins.push(Arc::new(plugin));
        }
        self.swap(Chain { plugins });
        Ok(())
    }

    /// Compiles (or takes from the cache), validates against the world, and initialises one plugin.
    pub async fn load(&self, name: &str, bytes: &[u8], failure: FailurePolicy, config_json: String) -> Result<LoadedPlugin> {
        let invalid = |reason: String| Error::Invalid {
            name: name.to_owned(),
            reason,
        };
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(invalid(format!(
                "component is {} bytes, over the limit of {MAX_COMPONENT_BYTES}",
                bytes.len()
            )));
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(invalid("not a WebAssembly file".into()));
        }
        if bytes.get(4..8) != Some(&[0x0d, 0x00, 0x01, 0x00]) {
            return Err(invalid(
                "a core WebAssembly module, not a component: build it for wasm32-wasip2".into(),
            ));
        }
        let version = hex::encode(Sha256::digest(bytes));
        let component =
            Component::new(&self.engine, bytes).map_err(|error| invalid(format!("does not compile: {error:#}")))?;
        let entries = self
            .store
            .load_state(name, crate::store::now_ms())
            .await
            .map_err(|source| Error::State {
                name: name.to_owned(),
                source,
            })?;
        let kv = Arc::new(plugin::PluginKv::new(name.to_owned(), entries, self.state_writes.clone()));
        let linker = self.linker.clone();
        let limits = self.limits;
        let instances = self.instances_per_plugin;
        let name_owned = name.to_owned();
        // Instantiation and `init` run guest code: keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            LoadedPlugin::new(&name_owned, version, &component, &linker, failure, config_json, limits, kv, instances)
        })
        .await
        .map_err(|error| invalid(format!("loading task failed: {error}")))?
        .map_err(invalid)
    }

    /// The live chain; hold the `Arc` for a whole message so a swap never splits one.
    pub fn chain(&self) -> Arc<Chain> {
        self.chain.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn swap(&self, chain: Chain) {
        *self.chain.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(chain);
    }
}

fn plugin_path(directory: &Path, entry: &PluginEntry) -> PathBuf {
    if let Some(file) = &entry.file {
        return directory.join(file);
    }
    let dashed = directory.join(format!("{}.wasm", entry.name));
    if dashed.exists() {
        return dashed;
    }
    directory.join(format!("{}.wasm", entry.name.replace('-', "_")))
}

fn discover(directory: &Path) -> Result<Vec<PluginEntry>> {
    let read = std::fs::read_dir(directory).map_err(|source| Error::Directory {
        path: directory.display().to_string(),
        source,
    })?;
    let mut files: Vec<String> = read
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".wasm"))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|file| PluginEntry {
            name: file.trim_end_matches(".wasm").replace('_', "-"),
            file: Some(file),
            failure: FailurePolicy::Closed,
            config: None,
        })
        .collect())
}
