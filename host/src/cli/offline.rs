//! A host without a server, for the CLI: the real [`PolicyRuntime`] (the engine, linker,
//! sandbox limits and validation `wasp serve` uses) on a throwaway SQLite store in a temporary
//! directory that is removed when the host is dropped. Nothing here listens on the network.
//!
//! May call the policy runtime and open a store; nothing else in wasp.

use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;
use tempfile::TempDir;

use crate::{
    config::{DEFAULT_WRITE_BATCH_ROWS, PolicyConfig},
    policy::{LoadedPlugin, PolicyRuntime, Uploaded},
    store::Store,
};

/// The runtime and the directory its store and compiled-code cache live in.
pub struct OfflineHost {
    // Declared before the directory, so it is dropped before the directory is removed.
    pub runtime: Arc<PolicyRuntime>,
    directory: TempDir,
}

/// A plugin made live in an offline host.
pub struct Installed {
    pub uploaded: Uploaded,
    pub plugin: Arc<LoadedPlugin>,
}

impl OfflineHost {
    /// Opens the throwaway store and builds the runtime with `config`'s limits.
    pub async fn start(config: &PolicyConfig) -> anyhow::Result<Self> {
        let directory = tempfile::Builder::new()
            .prefix("wasp-offline-")
            .tempdir()
            .context("creating a temporary directory for the offline host")?;
        let url = format!("sqlite://{}", directory.path().join("wasp.db").display());
        let store = Store::open(&url, DEFAULT_WRITE_BATCH_ROWS)
            .await
            .with_context(|| format!("opening the offline store at {url}"))?;
        let cache = directory.path().join("compiled");
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        let runtime = PolicyRuntime::new(config, store, Some(&cache)).context("starting the policy runtime")?;
        Ok(Self {
            runtime: Arc::new(runtime),
            directory,
        })
    }

    /// Where the throwaway store lives.
    pub fn directory(&self) -> &std::path::Path {
        self.directory.path()
    }

    /// Validates `bytes` as an upload to the server does (a component, under the size limit,
    /// compiling, fitting the world), then makes it live as activation does, with `config`
    /// given to `init`. The errors are the server's own.
    pub async fn install(&self, name: &str, bytes: Vec<u8>, config: Value) -> anyhow::Result<Installed> {
        let uploaded = self.runtime.upload(name, bytes).await?;
        self.runtime.activate(name, &uploaded.version, Some(config)).await?;
        let plugin = self
            .runtime
            .chain()
            .plugins()
            .find(|plugin| &*plugin.name == name)
            .cloned()
            .with_context(|| format!("plugin {name} was activated but is not in the chain"))?;
        Ok(Installed { uploaded, plugin })
    }
}
