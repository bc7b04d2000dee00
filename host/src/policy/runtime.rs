//! The policy runtime: the wasmtime engine (pooling allocator, fuel, epochs, compiled-code
//! cache), the plugins' lifecycle (upload, activate, roll back, shadow, settings, delete),
//! and the live chain built from their bindings. Every change builds the new plugin fully
//! (compiled, `init` accepted) before one atomic swap of the chain; the store keeps versions
//! and bindings, so a restart comes back to the same chain, and a node takes in another
//! node's changes by reading the bindings again ([`PolicyRuntime::reload`]).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    component::{Component, Linker},
};

use super::{
    Chain, ChainEntry, EPOCH_TICK_MS, Error, HOOKS, Limits, LoadedPlugin, MAX_COMPONENT_BYTES, Result, StatsSnapshot,
    plugin::{self, InstanceState},
};
use crate::{
    config::{FailurePolicy, PluginEntry, PolicyConfig},
    store::{self, PluginBinding, PluginVersionRow, PluginWrite, PreviousVersion, ShadowRecord, StateWrite, Store},
};

/// Component instances the pooling allocator keeps room for, across all plugins.
const POOLED_INSTANCES: u32 = 512;

/// What an upload produced.
#[derive(Debug, Clone, Serialize)]
pub struct Uploaded {
    pub name: String,
    pub version: String,
    pub size_bytes: usize,
    pub hooks: Vec<String>,
}

/// A change of a plugin's settings; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// `false` takes the plugin out of the chain (its versions, config and state are kept);
    /// `true` puts it back.
    pub enabled: Option<bool>,
    pub position: Option<i64>,
    pub hooks: Option<Vec<String>>,
    pub failure: Option<FailurePolicy>,
    pub limits: Option<LimitsPatch>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    pub fuel_per_call: Option<u64>,
    pub memory_limit_bytes: Option<usize>,
    pub call_deadline_ms: Option<u64>,
}

/// A plugin as the admin API shows it.
#[derive(Debug, Clone)]
pub struct PluginStatus {
    pub binding: PluginBinding,
    pub versions: Vec<PluginVersionRow>,
    pub live_stats: Option<StatsSnapshot>,
    pub shadow_stats: Option<StatsSnapshot>,
    pub quarantined: bool,
    pub pending_timers: u64,
    /// The live version's counters (`counter-add`), by name.
    pub counters: BTreeMap<String, u64>,
}

struct Managed {
    binding: PluginBinding,
    live: Option<Arc<LoadedPlugin>>,
    shadow: Option<Arc<LoadedPlugin>>,
}

pub struct PolicyRuntime {
    engine: Engine,
    linker: Linker<InstanceState>,
    defaults: Limits,
    instances_per_plugin: usize,
    quarantine_after: u64,
    chain: RwLock<Arc<Chain>>,
    /// Serialises lifecycle changes; never held across a message's judgement.
    managed: Mutex<BTreeMap<String, Managed>>,
    state_writes: mpsc::UnboundedSender<StateWrite>,
    shadow_writes: mpsc::UnboundedSender<ShadowRecord>,
    store: Store,
}

impl PolicyRuntime {
    /// Builds the engine and starts the epoch ticker and the writers of plugin state and
    /// shadow verdicts.
    pub fn new(config: &PolicyConfig, store: Store, cache_dir: Option<&Path>) -> Result<Self> {
        let mut engine_config = wasmtime::Config::new();
        engine_config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 * 1024)
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
            let cache = wasmtime::Cache::new(cache_config)
                .map_err(|error| Error::Engine(format!("compiled-code cache: {error:#}")))?;
            engine_config.cache(Some(cache));
        }
        let engine = Engine::new(&engine_config).map_err(|error| Error::Engine(format!("{error:#}")))?;
        let mut linker = Linker::new(&engine);
        plugin::add_host_to_linker(&mut linker)
            .map_err(|error| Error::Engine(format!("linking host imports: {error:#}")))?;

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

        let (state_writes, mut pending_state) = mpsc::unbounded_channel::<StateWrite>();
        let state_store = store.clone();
        tokio::spawn(async move {
            while let Some(first) = pending_state.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = pending_state.try_recv() {
                    batch.push(next);
                }
                if let Err(error) = state_store.write_state(batch).await {
                    tracing::error!(%error, "persisting plugin state failed");
                }
            }
        });
        let (shadow_writes, mut pending_shadow) = mpsc::unbounded_channel::<ShadowRecord>();
        let shadow_store = store.clone();
        tokio::spawn(async move {
            while let Some(first) = pending_shadow.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = pending_shadow.try_recv() {
                    batch.push(next);
                }
                if let Err(error) = shadow_store
                    .plugin_writes(vec![PluginWrite::ShadowVerdicts(batch)])
                    .await
                {
                    tracing::error!(%error, "recording shadow verdicts failed");
                }
            }
        });

        Ok(Self {
            engine,
            linker,
            defaults: Limits {
                fuel_per_call: config.fuel_per_call,
                memory_limit_bytes: config.memory_limit_bytes,
                call_deadline_ms: config.call_deadline_ms,
            },
            instances_per_plugin: config.instances_per_plugin,
            quarantine_after: config.quarantine_after_faults,
            chain: RwLock::new(Arc::new(Chain::default())),
            managed: Mutex::new(BTreeMap::new()),
            state_writes,
            shadow_writes,
            store,
        })
    }

    /// Runs every template check of the live chain on `definition`: `on-template` of each
    /// plugin whose contract has it (0.2.0 and later), in chain order, each finding naming
    /// its plugin. Guest code runs on the calling thread (call it from a blocking task); a
    /// plugin's fault is a finding, never an error of this call (see [`Chain::lint_template`]).
    pub fn lint_template(
        &self,
        definition: &crate::templates::TemplateDefinition,
    ) -> Result<Vec<crate::templates::LintFinding>> {
        Ok(self.chain().lint_template(definition))
    }

    /// The live chain; hold the `Arc` for a whole message so a swap never splits one.
    pub fn chain(&self) -> Arc<Chain> {
        self.chain
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn store_error(name: &str) -> impl FnOnce(store::Error) -> Error + '_ {
        move |source| Error::Store {
            name: name.to_owned(),
            source,
        }
    }

    /// Brings back the chain the store holds, after seeding plugins the config names (or finds
    /// in the plugins dir) that the store does not know yet. The config seeds a plugin once;
    /// after that the admin API owns it.
    pub async fn bootstrap(&self, config: &PolicyConfig) -> Result<()> {
        let mut managed = self.managed.lock().await;
        let stored = self.store.plugin_bindings().await.map_err(Self::store_error("(all)"))?;
        for binding in stored {
            let name = binding.name.clone();
            managed.insert(name, self.load_binding(binding).await);
        }

        let directory = PathBuf::from(&config.plugins_dir);
        let entries = if config.plugins.is_empty() {
            if directory.is_dir() {
                discover(&directory)?
            } else {
                Vec::new()
            }
        } else {
            config.plugins.clone()
        };
        for (index, entry) in entries.iter().enumerate() {
            if managed.contains_key(&entry.name) {
                continue;
            }
            let path = plugin_path(&directory, entry);
            let bytes = std::fs::read(&path).map_err(|source| Error::Read {
                name: entry.name.clone(),
                path: path.display().to_string(),
                source,
            })?;
            let uploaded = self.store_component(&entry.name, bytes).await?;
            let config_json = match &entry.config {
                Some(value) => serde_json::to_value(value).map_err(|error| Error::Invalid {
                    name: entry.name.clone(),
                    reason: format!("config is not representable as JSON: {error}"),
                })?,
                None => serde_json::json!({}),
            };
            let binding = PluginBinding {
                name: entry.name.clone(),
                live_version: Some(uploaded.version.clone()),
                previous_versions: Vec::new(),
                shadow_version: None,
                shadow_config: None,
                position: i64::try_from(index).unwrap_or(i64::MAX),
                hooks: HOOKS.iter().map(|hook| (*hook).to_owned()).collect(),
                failure: failure_name(entry.failure).to_owned(),
                limits: serde_json::to_value(self.defaults).unwrap_or_default(),
                config: config_json,
                quarantined: false,
                enabled: true,
                updated_at_ms: store::now_ms(),
            };
            let live = self.load_stored(&binding, &uploaded.version, &binding.config).await?;
            self.persist(&binding).await?;
            tracing::info!(plugin = %entry.name, version = %&uploaded.version[..12], path = %path.display(), "plugin seeded from config");
            managed.insert(
                entry.name.clone(),
                Managed {
                    binding,
                    live: Some(live),
                    shadow: None,
                },
            );
        }
        self.rebuild(&managed);
        Ok(())
    }

    /// Brings the chain in line with the bindings the store holds now, after another node
    /// changed them: a binding that differs from the one running is loaded again (as at
    /// start), a plugin the store no longer has leaves, and an unchanged one keeps its loaded
    /// instances, stats and quarantine. The chain is swapped once, and only when something
    /// changed; returns whether it did. This node's own changes come back through the change
    /// feed too and find nothing different.
    pub async fn reload(&self) -> Result<bool> {
        // The store is read under the lock, so a change this node makes meanwhile is either
        // in the read or made after the reload; a stale read never undoes it.
        let mut managed = self.managed.lock().await;
        let stored = self.store.plugin_bindings().await.map_err(Self::store_error("(all)"))?;
        let mut changed = false;
        let before = managed.len();
        managed.retain(|name, _| {
            let kept = stored.iter().any(|binding| &binding.name == name);
            if !kept {
                tracing::info!(plugin = %name, "plugin deleted on another node; taken out of the chain");
            }
            kept
        });
        changed |= managed.len() != before;
        for binding in stored {
            if managed.get(&binding.name).is_some_and(|entry| entry.binding == binding) {
                continue;
            }
            let name = binding.name.clone();
            let entry = self.load_binding(binding).await;
            tracing::info!(
                plugin = %name,
                live = %short(entry.binding.live_version.as_deref().unwrap_or("-")),
                "plugin changed on another node; reloaded"
            );
            managed.insert(name, entry);
            changed = true;
        }
        if changed {
            self.rebuild(&managed);
        }
        Ok(changed)
    }

    /// Loads what a stored binding runs: its live version and its shadow, each with the
    /// binding's settings. A version that does not load is logged and left out (the plugin
    /// then stays out of the chain, or runs without its shadow), so one broken plugin does not
    /// keep the others from starting.
    async fn load_binding(&self, binding: PluginBinding) -> Managed {
        let name = binding.name.as_str();
        let live = match &binding.live_version {
            Some(version) => match self.load_stored(&binding, version, &binding.config).await {
                Ok(plugin) => Some(plugin),
                Err(error) => {
                    tracing::error!(plugin = %name, version = %short(version), %error, "stored live version does not load; plugin left out of the chain");
                    None
                }
            },
            None => None,
        };
        let shadow = match &binding.shadow_version {
            Some(version) => match self
                .load_stored(
                    &binding,
                    version,
                    binding.shadow_config.as_ref().unwrap_or(&binding.config),
                )
                .await
            {
                Ok(plugin) => Some(plugin),
                Err(error) => {
                    tracing::error!(plugin = %name, version = %short(version), %error, "stored shadow version does not load; plugin runs without its shadow");
                    None
                }
            },
            None => None,
        };
        if let Some(live) = &live
            && binding.quarantined
        {
            live.quarantined.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Managed { binding, live, shadow }
    }

    /// Validates a component and stores it as a version of `name` (creating the plugin, not
    /// yet live, if it is new).
    pub async fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<Uploaded> {
        validate_name(name)?;
        let mut managed = self.managed.lock().await;
        let uploaded = self.store_component(name, bytes).await?;
        if !managed.contains_key(name) {
            let position = managed
                .values()
                .map(|m| m.binding.position)
                .max()
                .map_or(0, |max| max + 1);
            let binding = PluginBinding {
                name: name.to_owned(),
                live_version: None,
                previous_versions: Vec::new(),
                shadow_version: None,
                shadow_config: None,
                position,
                hooks: HOOKS.iter().map(|hook| (*hook).to_owned()).collect(),
                failure: failure_name(FailurePolicy::Closed).to_owned(),
                limits: serde_json::to_value(self.defaults).unwrap_or_default(),
                config: serde_json::json!({}),
                quarantined: false,
                enabled: true,
                updated_at_ms: store::now_ms(),
            };
            self.persist(&binding).await?;
            managed.insert(
                name.to_owned(),
                Managed {
                    binding,
                    live: None,
                    shadow: None,
                },
            );
        }
        Ok(uploaded)
    }

    /// Makes `version` live (with `config`, or the current config when none is given): built
    /// and initialised first, then swapped in at once.
    pub async fn activate(&self, name: &str, version: &str, config: Option<serde_json::Value>) -> Result<PluginStatus> {
        let mut managed = self.managed.lock().await;
        let entry = managed
            .get_mut(name)
            .ok_or_else(|| Error::UnknownPlugin(name.to_owned()))?;
        let mut binding = entry.binding.clone();
        let config = config.unwrap_or_else(|| binding.config.clone());
        let plugin = self.load_stored(&binding, version, &config).await?;
        if let Some(previous) = binding.live_version.take()
            && previous != version
        {
            binding.previous_versions.push(PreviousVersion {
                version: previous,
                config: binding.config.clone(),
            });
        }
        binding.live_version = Some(version.to_owned());
        binding.config = config;
        if binding.shadow_version.as_deref() == Some(version) {
            binding.shadow_version = None;
            binding.shadow_config = None;
            entry.shadow = None;
        }
        binding.quarantined = false;
        binding.updated_at_ms = store::now_ms();
        self.persist(&binding).await?;
        entry.binding = binding;
        entry.live = Some(plugin);
        tracing::info!(plugin = %name, version = %short(version), "plugin activated");
        self.rebuild(&managed);
        drop(managed);
        self.status(name).await
    }

    /// Returns to the version that was live before the current one.
    pub async fn rollback(&self, name: &str) -> Result<PluginStatus> {
        let mut managed = self.managed.lock().await;
        let entry = managed
            .get_mut(name)
            .ok_or_else(|| Error::UnknownPlugin(name.to_owned()))?;
        let mut binding = entry.binding.clone();
        let previous = binding
            .previous_versions
            .pop()
            .ok_or_else(|| Error::NothingToRollBack(name.to_owned()))?;
        let plugin = self.load_stored(&binding, &previous.version, &previous.config).await?;
        binding.live_version = Some(previous.version.clone());
        binding.config = previous.config;
        binding.quarantined = false;
        binding.updated_at_ms = store::now_ms();
        self.persist(&binding).await?;
        entry.binding = binding;
        entry.live = Some(plugin);
        tracing::info!(plugin = %name, version = %short(entry.binding.live_version.as_deref().unwrap_or_default()), "plugin rolled back");
        self.rebuild(&managed);
        drop(managed);
        self.status(name).await
    }

    /// Runs `version` in shadow beside the live one, with its own `config` or the live one's
    /// (`None` stops the shadow).
    pub async fn shadow(
        &self,
        name: &str,
        version: Option<&str>,
        config: Option<serde_json::Value>,
    ) -> Result<PluginStatus> {
        let mut managed = self.managed.lock().await;
        let entry = managed
            .get_mut(name)
            .ok_or_else(|| Error::UnknownPlugin(name.to_owned()))?;
        let mut binding = entry.binding.clone();
        let shadow = match version {
            Some(version) => Some(
                self.load_stored(&binding, version, config.as_ref().unwrap_or(&binding.config))
                    .await?,
            ),
            None => None,
        };
        binding.shadow_version = version.map(str::to_owned);
        binding.shadow_config = if version.is_some() { config } else { None };
        binding.updated_at_ms = store::now_ms();
        self.persist(&binding).await?;
        entry.binding = binding;
        entry.shadow = shadow;
        self.rebuild(&managed);
        drop(managed);
        self.status(name).await
    }

    /// Changes order, hooks, failure policy, limits or config. A new config or new limits are
    /// proven by the plugin's own `init` before they replace the running ones.
    pub async fn update(&self, name: &str, patch: SettingsPatch) -> Result<PluginStatus> {
        let mut managed = self.managed.lock().await;
        let entry = managed
            .get_mut(name)
            .ok_or_else(|| Error::UnknownPlugin(name.to_owned()))?;
        let mut binding = entry.binding.clone();
        if let Some(enabled) = patch.enabled {
            binding.enabled = enabled;
        }
        if let Some(position) = patch.position {
            binding.position = position;
        }
        if let Some(hooks) = patch.hooks {
            if let Some(unknown) = hooks.iter().find(|hook| !HOOKS.contains(&hook.as_str())) {
                return Err(Error::Invalid {
                    name: name.to_owned(),
                    reason: format!("unknown hook {unknown:?}, expected some of: {}", HOOKS.join(", ")),
                });
            }
            binding.hooks = hooks;
        }
        if let Some(failure) = patch.failure {
            binding.failure = failure_name(failure).to_owned();
        }
        if let Some(limits) = patch.limits {
            let mut current = self.limits_of(&binding);
            current.fuel_per_call = limits.fuel_per_call.unwrap_or(current.fuel_per_call);
            current.memory_limit_bytes = limits.memory_limit_bytes.unwrap_or(current.memory_limit_bytes);
            current.call_deadline_ms = limits.call_deadline_ms.unwrap_or(current.call_deadline_ms);
            if current.memory_limit_bytes > self.defaults.memory_limit_bytes {
                return Err(Error::Invalid {
                    name: name.to_owned(),
                    reason: format!(
                        "limits.memory_limit_bytes {} is over the host's cap of {} (policy.memory_limit_bytes)",
                        current.memory_limit_bytes, self.defaults.memory_limit_bytes
                    ),
                });
            }
            if current.fuel_per_call == 0 || current.call_deadline_ms == 0 {
                return Err(Error::Invalid {
                    name: name.to_owned(),
                    reason: "limits.fuel_per_call and limits.call_deadline_ms must be above 0".into(),
                });
            }
            binding.limits = serde_json::to_value(current).unwrap_or_default();
        }
        if let Some(config) = patch.config {
            binding.config = config;
        }
        // Rebuild what runs with the new settings before anything is persisted or swapped.
        let live = match &binding.live_version {
            Some(version) => Some(self.load_stored(&binding, version, &binding.config).await?),
            None => None,
        };
        let shadow = match &binding.shadow_version {
            Some(version) => Some(
                self.load_stored(
                    &binding,
                    version,
                    binding.shadow_config.as_ref().unwrap_or(&binding.config),
                )
                .await?,
            ),
            None => None,
        };
        binding.quarantined = false;
        binding.updated_at_ms = store::now_ms();
        self.persist(&binding).await?;
        entry.binding = binding;
        entry.live = live;
        entry.shadow = shadow;
        self.rebuild(&managed);
        drop(managed);
        self.status(name).await
    }

    /// Takes the plugin out of the chain and removes its versions, state and timers.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let mut managed = self.managed.lock().await;
        if managed.remove(name).is_none() {
            return Err(Error::UnknownPlugin(name.to_owned()));
        }
        self.rebuild(&managed);
        self.store
            .plugin_writes(vec![PluginWrite::Delete { name: name.to_owned() }])
            .await
            .map_err(Self::store_error(name))?;
        tracing::info!(plugin = %name, "plugin deleted");
        Ok(())
    }

    pub async fn status(&self, name: &str) -> Result<PluginStatus> {
        let (binding, live_stats, shadow_stats, quarantined, counters) = {
            let managed = self.managed.lock().await;
            let entry = managed.get(name).ok_or_else(|| Error::UnknownPlugin(name.to_owned()))?;
            (
                entry.binding.clone(),
                entry.live.as_ref().map(|plugin| plugin.stats.snapshot()),
                entry.shadow.as_ref().map(|plugin| plugin.stats.snapshot()),
                entry.live.as_ref().is_some_and(|plugin| plugin.is_quarantined()),
                entry
                    .live
                    .as_ref()
                    .map(|plugin| plugin.counters_snapshot())
                    .unwrap_or_default(),
            )
        };
        let versions = self
            .store
            .plugin_versions(name)
            .await
            .map_err(Self::store_error(name))?;
        let pending_timers = self.store.pending_timers(name).await.map_err(Self::store_error(name))?;
        let mut binding = binding;
        binding.quarantined = quarantined;
        Ok(PluginStatus {
            binding,
            versions,
            live_stats,
            shadow_stats,
            quarantined,
            pending_timers,
            counters,
        })
    }

    pub async fn statuses(&self) -> Result<Vec<PluginStatus>> {
        let names: Vec<String> = {
            let managed = self.managed.lock().await;
            let mut ordered: Vec<&Managed> = managed.values().collect();
            ordered.sort_by(|left, right| {
                (left.binding.position, &left.binding.name).cmp(&(right.binding.position, &right.binding.name))
            });
            ordered.iter().map(|entry| entry.binding.name.clone()).collect()
        };
        let mut statuses = Vec::with_capacity(names.len());
        for name in names {
            statuses.push(self.status(&name).await?);
        }
        Ok(statuses)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn limits_of(&self, binding: &PluginBinding) -> Limits {
        serde_json::from_value(binding.limits.clone()).unwrap_or(self.defaults)
    }

    async fn persist(&self, binding: &PluginBinding) -> Result<()> {
        self.store
            .plugin_writes(vec![PluginWrite::PutBinding(binding.clone())])
            .await
            .map_err(Self::store_error(&binding.name))
    }

    /// Swaps in a chain built from the bindings: enabled live plugins, by position then name.
    fn rebuild(&self, managed: &BTreeMap<String, Managed>) {
        let mut entries: Vec<(&Managed, ChainEntry)> = managed
            .values()
            .filter(|entry| entry.binding.enabled)
            .filter_map(|entry| {
                let live = entry.live.clone()?;
                Some((
                    entry,
                    ChainEntry {
                        live,
                        shadow: entry.shadow.clone(),
                        hooks: entry.binding.hooks.clone(),
                    },
                ))
            })
            .collect();
        entries.sort_by(|(left, _), (right, _)| {
            (left.binding.position, &left.binding.name).cmp(&(right.binding.position, &right.binding.name))
        });
        let chain = Chain {
            entries: entries.into_iter().map(|(_, entry)| entry).collect(),
            shadow_sink: Some(self.shadow_writes.clone()),
        };
        *self.chain.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(chain);
    }

    /// Checks a component against the world and stores it (immutable, by sha256).
    async fn store_component(&self, name: &str, bytes: Vec<u8>) -> Result<Uploaded> {
        let component = self.compile(name, &bytes).await?;
        let hooks = check_world(name, &self.engine, &component)?;
        if let Err(error) = self.linker.instantiate_pre(&component) {
            return Err(Error::WorldMismatch {
                name: name.to_owned(),
                reason: format!("imports something this host does not offer: {error:#}"),
            });
        }
        let version = hex::encode(Sha256::digest(&bytes));
        let size_bytes = bytes.len();
        self.store
            .plugin_writes(vec![PluginWrite::PutVersion {
                name: name.to_owned(),
                version: version.clone(),
                component: bytes,
                at_ms: store::now_ms(),
            }])
            .await
            .map_err(Self::store_error(name))?;
        Ok(Uploaded {
            name: name.to_owned(),
            version,
            size_bytes,
            hooks,
        })
    }

    async fn compile(&self, name: &str, bytes: &[u8]) -> Result<Component> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(Error::TooLarge {
                name: name.to_owned(),
                size: bytes.len(),
                limit: MAX_COMPONENT_BYTES,
            });
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(Error::NotComponent {
                name: name.to_owned(),
                reason: "the body is not WebAssembly (no \\0asm header)".into(),
            });
        }
        if bytes.get(4..8) != Some(&[0x0d, 0x00, 0x01, 0x00]) {
            return Err(Error::NotComponent {
                name: name.to_owned(),
                reason: "a core WebAssembly module, not a component: build it for wasm32-wasip2".into(),
            });
        }
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        // Compiling is seconds of CPU for a large component: off the async workers.
        tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
            .await
            .map_err(|error| Error::Engine(format!("compile task failed: {error}")))?
            .map_err(|error| Error::DoesNotCompile {
                name: name.to_owned(),
                reason: format!("{error:#}"),
            })
    }

    /// Loads a stored version with the binding's config, limits and failure policy.
    async fn load_stored(
        &self,
        binding: &PluginBinding,
        version: &str,
        config: &serde_json::Value,
    ) -> Result<Arc<LoadedPlugin>> {
        let name = binding.name.as_str();
        let bytes = self
            .store
            .plugin_component(name, version)
            .await
            .map_err(Self::store_error(name))?
            .ok_or_else(|| Error::UnknownVersion {
                name: name.to_owned(),
                version: version.to_owned(),
            })?;
        let component = self.compile(name, &bytes).await?;
        let entries = self
            .store
            .load_state(name, store::now_ms())
            .await
            .map_err(Self::store_error(name))?;
        let kv = Arc::new(plugin::PluginKv::new(
            name.to_owned(),
            entries,
            self.state_writes.clone(),
        ));
        let linker = self.linker.clone();
        let limits = self.limits_of(binding);
        let instances = self.instances_per_plugin;
        let quarantine_after = self.quarantine_after;
        let failure = if binding.failure == "open" {
            FailurePolicy::Open
        } else {
            FailurePolicy::Closed
        };
        let config_json = config.to_string();
        let name_owned = name.to_owned();
        let version_owned = version.to_owned();
        // Instantiation and `init` run guest code: keep them off the async workers.
        let loaded = tokio::task::spawn_blocking(move || {
            LoadedPlugin::new(
                &name_owned,
                version_owned,
                &component,
                &linker,
                failure,
                config_json,
                limits,
                kv,
                instances,
                quarantine_after,
            )
        })
        .await
        .map_err(|error| Error::Engine(format!("loading task failed: {error}")))?;
        match loaded {
            Ok(plugin) => Ok(Arc::new(plugin)),
            Err(plugin::LoadError::ConfigRefused(reason)) => Err(Error::ConfigRefused {
                name: name.to_owned(),
                reason,
            }),
            Err(plugin::LoadError::World(reason)) => Err(Error::WorldMismatch {
                name: name.to_owned(),
                reason,
            }),
            Err(plugin::LoadError::Fault(fault)) => Err(Error::Invalid {
                name: name.to_owned(),
                reason: format!("failed to start: {fault}"),
            }),
        }
    }
}

fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}

fn failure_name(failure: FailurePolicy) -> &'static str {
    match failure {
        FailurePolicy::Closed => "closed",
        FailurePolicy::Open => "open",
    }
}

fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && name.as_bytes()[0].is_ascii_lowercase();
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid {
            name: name.to_owned(),
            reason: "a plugin name is 1 to 64 characters of a-z, 0-9 and -, starting with a letter".into(),
        })
    }
}

/// Names what a component lacks against the world of the contract version it was built
/// for (see [`Contract::of`](super::Contract::of)). Returns the message hooks it exports.
fn check_world(name: &str, engine: &Engine, component: &Component) -> Result<Vec<String>> {
    super::Contract::of(engine, component).map_err(|reason| Error::WorldMismatch {
        name: name.to_owned(),
        reason,
    })?;
    Ok(HOOKS.iter().map(|hook| (*hook).to_owned()).collect())
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

/// For tools that call a plugin outside the chain (`wasp plugin test`, `wasp bench policy`):
/// the chain's engine, linker and sandbox.
impl PolicyRuntime {
    /// The engine every plugin is compiled with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker with the host's imports: WASI with nothing granted, and `wasp:policy/host`.
    pub fn linker(&self) -> &Linker<InstanceState> {
        &self.linker
    }

    /// A fresh store set up as a chain plugin's (the default limits armed), its plugin state
    /// starting empty and written through to this runtime's store under `name`.
    pub fn detached_store(&self, name: &str) -> std::result::Result<wasmtime::Store<InstanceState>, super::Fault> {
        let kv = Arc::new(plugin::PluginKv::new(
            name.to_owned(),
            Vec::new(),
            self.state_writes.clone(),
        ));
        plugin::detached_store(&self.engine, name, self.defaults, kv)
    }

    /// Gives a detached store the default fuel budget and deadline for its next call.
    pub fn arm(&self, store: &mut wasmtime::Store<InstanceState>) -> std::result::Result<(), super::Fault> {
        plugin::arm(store, self.defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component `scripts/build-plugins` built, by crate name.
    fn component(name: &str) -> Vec<u8> {
        let path = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
            .join("wasm32-wasip2/plugin")
            .join(format!("{}.wasm", name.replace('-', "_")));
        std::fs::read(&path).unwrap_or_else(|error| {
            panic!(
                "{name} is not built at {} ({error}): run scripts/build-plugins",
                path.display()
            )
        })
    }

    /// The chain as (plugin, hooks), in order.
    fn chain_of(runtime: &PolicyRuntime) -> Vec<(String, Vec<String>)> {
        runtime
            .chain()
            .entries
            .iter()
            .map(|entry| (entry.live.name.to_string(), entry.hooks.clone()))
            .collect()
    }

    fn live_of(runtime: &PolicyRuntime, name: &str) -> Arc<LoadedPlugin> {
        runtime
            .chain()
            .entries
            .iter()
            .find(|entry| &*entry.live.name == name)
            .map(|entry| entry.live.clone())
            .unwrap_or_else(|| panic!("{name} is not in the chain"))
    }

    #[tokio::test]
    async fn reload_takes_in_what_another_node_wrote_and_keeps_what_did_not_change() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("wasp.db").display());
        let store = Store::open(&url, 1_000).await.unwrap();
        let runtime = PolicyRuntime::new(&PolicyConfig::default(), store.clone(), None).unwrap();
        for name in ["priority", "fallback"] {
            let uploaded = runtime.upload(name, component(name)).await.unwrap();
            runtime.activate(name, &uploaded.version, None).await.unwrap();
        }
        let every_hook: Vec<String> = HOOKS.iter().map(|hook| (*hook).to_owned()).collect();
        assert_eq!(
            chain_of(&runtime),
            [
                ("priority".to_owned(), every_hook.clone()),
                ("fallback".to_owned(), every_hook.clone())
            ]
        );
        // This node's own changes come back through the feed: nothing to do.
        assert!(!runtime.reload().await.unwrap());
        let priority_before = live_of(&runtime, "priority");
        let fallback_before = live_of(&runtime, "fallback");

        // Another node moves `fallback` first and narrows its hooks.
        let mut fallback = store
            .plugin_bindings()
            .await
            .unwrap()
            .into_iter()
            .find(|binding| binding.name == "fallback")
            .unwrap();
        fallback.position = -1;
        fallback.hooks = vec!["on-dispatch".to_owned()];
        fallback.updated_at_ms += 1;
        store
            .plugin_writes(vec![PluginWrite::PutBinding(fallback)])
            .await
            .unwrap();
        let held = runtime.chain();
        assert!(runtime.reload().await.unwrap());
        assert_eq!(
            chain_of(&runtime),
            [
                ("fallback".to_owned(), vec!["on-dispatch".to_owned()]),
                ("priority".to_owned(), every_hook.clone())
            ]
        );
        assert!(
            Arc::ptr_eq(&live_of(&runtime, "priority"), &priority_before),
            "an unchanged plugin keeps its loaded instances"
        );
        assert!(!Arc::ptr_eq(&live_of(&runtime, "fallback"), &fallback_before));
        assert_eq!(
            held.entries.len(),
            2,
            "a chain already held is not changed under its holder"
        );
        assert_eq!(&*held.entries[0].live.name, "priority");
        assert!(!runtime.reload().await.unwrap(), "a second reload finds nothing new");

        // Another node deletes `priority`.
        store
            .plugin_writes(vec![PluginWrite::Delete {
                name: "priority".to_owned(),
            }])
            .await
            .unwrap();
        assert!(runtime.reload().await.unwrap());
        assert_eq!(
            chain_of(&runtime),
            [("fallback".to_owned(), vec!["on-dispatch".to_owned()])]
        );
        assert!(matches!(runtime.status("priority").await, Err(Error::UnknownPlugin(_))));
        assert!(!runtime.reload().await.unwrap());
    }

    #[test]
    fn plugin_names_are_checked() {
        assert!(validate_name("button-limit").is_ok());
        assert!(validate_name("a1").is_ok());
        for bad in ["", "Button", "1abc", "has space", "under_score", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
