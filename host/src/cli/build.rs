//! `wasp plugin build [DIR]`: builds a plugin crate for `wasm32-wasip2` (adding the target
//! with rustup when it is missing), then validates each component it produced the way the
//! host loads one: the upload checks (a component, under the size limit, compiling, the
//! world's exports and contract version), instantiation in the sandbox, and `init` with the
//! given config. Prints the path, size, sha256, exports and imports of each.
//!
//! May run `cargo` and `rustup`, and call the offline host.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use wasmtime::component::{Component, types::ComponentItem};

use super::{offline::OfflineHost, table::thousands};
use crate::config::PolicyConfig;

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";
/// The profile `wasp plugin build` uses unless told otherwise.
pub const DEFAULT_PROFILE: &str = "release";

/// Build a plugin crate for wasm32-wasip2 and check the component loads in the host.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate (a folder with a Cargo.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The cargo profile to build with (this repository's plugins use `plugin`).
    #[arg(long, default_value = DEFAULT_PROFILE)]
    pub profile: String,
    /// The config JSON `init` gets during the check.
    #[arg(long, default_value = "{}")]
    pub config: String,
}

pub async fn run(args: BuildArgs) -> anyhow::Result<()> {
    let config: serde_json::Value =
        serde_json::from_str(&args.config).with_context(|| format!("--config is not JSON: {}", args.config))?;
    let components = build_crate(&args.dir, &args.profile).await?;
    let host = OfflineHost::start(&PolicyConfig::default()).await?;
    for path in &components {
        let report = validate(&host, path, config.clone()).await?;
        print!("{}", report.render());
    }
    Ok(())
}

/// What the check found in one component.
#[derive(Debug, Clone)]
pub struct ComponentReport {
    pub path: PathBuf,
    pub name: String,
    pub size_bytes: usize,
    pub sha256: String,
    /// Function exports, with their parameter names.
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub config: String,
}

impl ComponentReport {
    pub fn render(&self) -> String {
        format!(
            "component  {path}\n\
             size       {size} bytes\n\
             sha256     {sha256}\n\
             exports    {exports}\n\
             imports    {imports}\n\
             check      loads as the host loads it: compiled, instantiated in the sandbox, init accepted {config}\n",
            path = self.path.display(),
            size = thousands(u64::try_from(self.size_bytes).unwrap_or(u64::MAX)),
            sha256 = self.sha256,
            exports = self.exports.join(", "),
            imports = imports_line(&self.imports),
            config = self.config,
        )
    }
}

/// The contract's imports by name, WASI's counted: the host links WASI with nothing granted.
fn imports_line(imports: &[String]) -> String {
    let (wasi, other): (Vec<&String>, Vec<&String>) = imports.iter().partition(|import| import.starts_with("wasi:"));
    let mut parts: Vec<String> = other.into_iter().cloned().collect();
    if !wasi.is_empty() {
        parts.push(format!(
            "{} wasi:* interfaces (linked with nothing granted)",
            wasi.len()
        ));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Loads the component at `path` into `host` as an upload and an activation would, with
/// `config` given to `init`; the error names what does not fit.
pub async fn validate(host: &OfflineHost, path: &Path, config: serde_json::Value) -> anyhow::Result<ComponentReport> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = super::plugin_name(path);
    let size_bytes = bytes.len();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let config_text = config.to_string();
    host.install(&name, bytes.clone(), config)
        .await
        .with_context(|| format!("{} does not load in the host", path.display()))?;
    // Compiled already by the upload; this is a cache hit.
    let engine = host.runtime.engine();
    let component = Component::new(engine, &bytes)
        .map_err(super::wasm_error)
        .context("compiling the component")?;
    let component_type = component.component_type();
    let exports = component_type
        .exports(engine)
        .map(|(export, item)| match item.ty {
            ComponentItem::ComponentFunc(function) => {
                let parameters: Vec<&str> = function.params().map(|(parameter, _)| parameter).collect();
                format!("{export}({})", parameters.join(", "))
            }
            _ => export.to_owned(),
        })
        .collect();
    let imports = component_type
        .imports(engine)
        .map(|(import, _)| import.to_owned())
        .collect();
    Ok(ComponentReport {
        path: path.to_path_buf(),
        name,
        size_bytes,
        sha256,
        exports,
        imports,
        config: config_text,
    })
}

/// Builds the crate in `dir` for [`TARGET`] with `profile`, returning the components produced.
pub async fn build_crate(dir: &Path, profile: &str) -> anyhow::Result<Vec<PathBuf>> {
    let manifest = dir.join("Cargo.toml");
    anyhow::ensure!(
        manifest.is_file(),
        "{} has no Cargo.toml: give the plugin crate's folder (`wasp plugin new NAME` makes one)",
        dir.display()
    );
    ensure_target(dir).await?;
    eprintln!("building {} for {TARGET} ({profile})", dir.display());
    let mut child = tokio::process::Command::new("cargo")
        .current_dir(dir)
        .args(["build", "--target", TARGET, "--profile", profile])
        .args(["--message-format", "json-render-diagnostics", "--manifest-path"])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo (is it installed and on PATH?)")?;
    let stdout = child.stdout.take().context("reading cargo's output")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut messages = Vec::new();
    while let Some(line) = lines.next_line().await.context("reading cargo's output")? {
        messages.push(line);
    }
    let status = child.wait().await.context("waiting for cargo")?;
    anyhow::ensure!(status.success(), "cargo build failed ({status}); its errors are above");
    let canonical = std::fs::canonicalize(&manifest).unwrap_or(manifest);
    let components = wasm_artifacts(&messages, &canonical);
    anyhow::ensure!(
        !components.is_empty(),
        "cargo built no component: the crate needs `crate-type = [\"cdylib\"]` under [lib]"
    );
    Ok(components)
}

/// Adds [`TARGET`] with rustup when the toolchain `dir` builds with lacks it.
pub async fn ensure_target(dir: &Path) -> anyhow::Result<()> {
    let installed = tokio::process::Command::new("rustup")
        .current_dir(dir)
        .args(["target", "list", "--installed"])
        .stderr(Stdio::inherit())
        .output()
        .await;
    let installed = match installed {
        Ok(output) if output.status.success() => output.stdout,
        Ok(_) | Err(_) => {
            eprintln!("rustup is not available; assuming the {TARGET} target is installed");
            return Ok(());
        }
    };
    if String::from_utf8_lossy(&installed)
        .lines()
        .any(|line| line.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("adding the {TARGET} target: rustup target add {TARGET}");
    let status = tokio::process::Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", TARGET])
        .status()
        .await
        .context("running rustup")?;
    anyhow::ensure!(status.success(), "`rustup target add {TARGET}` failed ({status})");
    Ok(())
}

#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    target: Option<CargoTarget>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct CargoTarget {
    #[serde(default)]
    kind: Vec<String>,
}

/// The `.wasm` files of cdylib targets among cargo's JSON messages: those of the package at
/// `manifest` when it built one, else every one (a workspace's root manifest).
pub fn wasm_artifacts(messages: &[String], manifest: &Path) -> Vec<PathBuf> {
    let artifacts: Vec<(Option<PathBuf>, PathBuf)> = messages
        .iter()
        .filter_map(|line| serde_json::from_str::<CargoMessage>(line).ok())
        .filter(|message| message.reason == "compiler-artifact")
        .filter(|message| {
            message
                .target
                .as_ref()
                .is_some_and(|target| target.kind.iter().any(|kind| kind == "cdylib"))
        })
        .flat_map(|message| {
            let manifest_path = message.manifest_path;
            message
                .filenames
                .into_iter()
                .filter(|file| file.extension().is_some_and(|extension| extension == "wasm"))
                .map(move |file| (manifest_path.clone(), file))
        })
        .collect();
    let own: Vec<PathBuf> = artifacts
        .iter()
        .filter(|(path, _)| path.as_deref() == Some(manifest))
        .map(|(_, file)| file.clone())
        .collect();
    if own.is_empty() {
        artifacts.into_iter().map(|(_, file)| file).collect()
    } else {
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_imports_are_counted_and_the_contracts_named() {
        let imports = [
            "wasp:policy/host@0.1.0",
            "wasi:io/poll@0.2.6",
            "wasp:policy/types@0.1.0",
            "wasi:cli/exit@0.2.6",
        ]
        .map(String::from);
        assert_eq!(
            imports_line(&imports),
            "wasp:policy/host@0.1.0, wasp:policy/types@0.1.0, 2 wasi:* interfaces (linked with nothing granted)"
        );
        assert_eq!(imports_line(&[]), "none");
    }

    #[test]
    fn components_of_the_crate_are_picked_from_cargo_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/sdk/Cargo.toml","target":{"kind":["lib"]},"filenames":["/t/libwasp_sdk.rlib"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/p/Cargo.toml","target":{"kind":["cdylib","rlib"]},"filenames":["/t/quiet_hours.wasm","/t/libquiet_hours.rlib"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/q/Cargo.toml","target":{"kind":["cdylib"]},"filenames":["/t/other.wasm"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
            "not json",
        ]
        .map(String::from);
        assert_eq!(
            wasm_artifacts(&messages, Path::new("/p/Cargo.toml")),
            vec![PathBuf::from("/t/quiet_hours.wasm")]
        );
        // A workspace root builds no package of its own: every component counts.
        assert_eq!(
            wasm_artifacts(&messages, Path::new("/Cargo.toml")),
            vec![PathBuf::from("/t/quiet_hours.wasm"), PathBuf::from("/t/other.wasm")]
        );
    }
}
