//! `wasp plugin new NAME [--dir DIR]`: writes a plugin crate that builds out of the box with
//! `cargo build --target wasm32-wasip2 --release`: its own `[workspace]` (so a parent
//! workspace does not swallow it), `wasp-sdk` by path when run inside a wasp checkout (found
//! from the current directory or the `wasp` binary's location) and by version otherwise, a
//! `Policy` with one example rule, two passing fixtures, and a README.
//!
//! Owns the templates. May write files under the new directory only.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

/// Scaffold a plugin crate.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and hyphens, starting with a letter.
    pub name: String,
    /// The folder to create (default: ./NAME). It must not exist yet.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Longest plugin name (the admin API's limit).
pub const MAX_NAME_CHARS: usize = 64;

/// Names a crate cannot take: Rust keywords and the standard crates (a hyphen-free name is
/// also the library's name), and the crates a plugin depends on.
const RESERVED_NAMES: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "serde",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    "wasp-sdk",
];

/// Type names the generated `lib.rs` already uses; a policy type named the same gets a suffix.
const TAKEN_TYPE_NAMES: &[&str] = &[
    "Category",
    "Config",
    "Context",
    "Deserialize",
    "Message",
    "Policy",
    "Verdict",
];

/// Checks a plugin name; the error says what a good one looks like.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let well_formed = name.len() <= MAX_NAME_CHARS
        && name.starts_with(|first: char| first.is_ascii_lowercase())
        && name
            .chars()
            .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    anyhow::ensure!(
        well_formed,
        "plugin name {name:?}: use 1 to {MAX_NAME_CHARS} lowercase letters, digits and single hyphens, \
         starting with a letter and not ending with a hyphen (for example `quiet-hours`)"
    );
    anyhow::ensure!(
        !RESERVED_NAMES.contains(&name),
        "plugin name {name:?} is reserved (a Rust keyword or a crate plugins depend on); pick another"
    );
    Ok(())
}

/// `quiet-hours` → `QuietHours`, with `Plugin` added when that name is taken in `lib.rs`.
pub fn type_name(name: &str) -> String {
    let mut camel: String = name
        .split('-')
        .map(|part| {
            let mut characters = part.chars();
            match characters.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + characters.as_str(),
                None => String::new(),
            }
        })
        .collect();
    if TAKEN_TYPE_NAMES.contains(&camel.as_str()) {
        camel.push_str("Plugin");
    }
    camel
}

/// How the new crate depends on the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// The `sdk/` folder of a wasp checkout.
    Path(PathBuf),
    /// A published version.
    Version(String),
}

impl SdkSource {
    fn dependency(&self) -> String {
        match self {
            SdkSource::Path(path) => format!("wasp-sdk = {{ path = {} }}", toml_string(&path.display().to_string())),
            SdkSource::Version(version) => format!("wasp-sdk = \"{version}\""),
        }
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// The wasp checkout `start` is in, if any: the nearest ancestor with the SDK crate.
pub fn find_checkout(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|candidate| is_checkout(candidate))
        .map(Path::to_path_buf)
}

fn is_checkout(directory: &Path) -> bool {
    directory.join("sdk/wit/v0.1.0/policy.wit").is_file()
        && std::fs::read_to_string(directory.join("sdk/Cargo.toml"))
            .is_ok_and(|manifest| manifest.contains("name = \"wasp-sdk\""))
}

/// The SDK for a crate made from `current_dir`: the checkout around it, else the one the
/// running `wasp` was built in, else the published version this host speaks.
pub fn sdk_source(current_dir: &Path) -> SdkSource {
    let from_binary = || {
        std::env::current_exe()
            .ok()
            .and_then(|binary| binary.parent().and_then(find_checkout))
    };
    match find_checkout(current_dir).or_else(from_binary) {
        Some(checkout) => {
            let sdk = checkout.join("sdk");
            SdkSource::Path(std::fs::canonicalize(&sdk).unwrap_or(sdk))
        }
        None => SdkSource::Version(wasp_sdk::SDK_VERSION.to_owned()),
    }
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let current_dir = std::env::current_dir().context("reading the current directory")?;
    let directory = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = sdk_source(&current_dir);
    let checkout_lock = match &sdk {
        SdkSource::Path(sdk) => sdk.parent().map(|checkout| checkout.join("Cargo.lock")),
        SdkSource::Version(_) => None,
    };
    scaffold(&args.name, &directory, &sdk, checkout_lock.as_deref())?;
    let struct_name = type_name(&args.name);
    let wasm = args.name.replace('-', "_");
    println!(
        "created plugin {name} in {dir} ({struct_name}, wasp-sdk {sdk})\n\
         \n\
         next:\n\
         \x20 cd {dir}\n\
         \x20 cargo test                                   # the rule and the fixtures, natively\n\
         \x20 wasp plugin build                            # the component, checked against the host\n\
         \x20 wasp plugin test target/wasm32-wasip2/release/{wasm}.wasm --fixtures fixtures\n",
        name = args.name,
        dir = directory.display(),
        sdk = match &sdk {
            SdkSource::Path(path) => format!("from {}", path.display()),
            SdkSource::Version(version) => version.clone(),
        },
    );
    if let SdkSource::Version(version) = &sdk {
        println!(
            "note: no wasp checkout found around here, so the crate depends on the published wasp-sdk {version}; \
             see its README to use a checkout instead"
        );
    }
    Ok(())
}

/// Writes the crate for `name` into `directory`, which must not exist. `lockfile`, when it
/// exists, is copied so the crate builds with the versions the checkout was tested with.
pub fn scaffold(name: &str, directory: &Path, sdk: &SdkSource, lockfile: Option<&Path>) -> anyhow::Result<()> {
    validate_name(name)?;
    anyhow::ensure!(
        !directory.exists(),
        "{} already exists; give a new folder with --dir, or remove it first",
        directory.display()
    );
    let struct_name = type_name(name);
    let replace = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{type}}", &struct_name)
            .replace("{{wasm}}", &name.replace('-', "_"))
            .replace("{{sdk_dependency}}", &sdk.dependency())
            .replace("{{sdk_version}}", wasp_sdk::SDK_VERSION)
    };
    let files = [
        ("Cargo.toml", replace(CARGO_TOML)),
        ("src/lib.rs", replace(LIB_RS)),
        (
            "fixtures/marketing-to-an-opted-out-recipient-is-rejected.json",
            replace(FIXTURE_REJECTED),
        ),
        (
            "fixtures/utility-to-an-opted-out-recipient-is-allowed.json",
            replace(FIXTURE_ALLOWED),
        ),
        ("README.md", replace(README)),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (relative, contents) in files {
        let path = directory.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(lockfile) = lockfile.filter(|lockfile| lockfile.is_file()) {
        let target = directory.join("Cargo.lock");
        std::fs::copy(lockfile, &target)
            .with_context(|| format!("copying {} to {}", lockfile.display(), target.display()))?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
description = "A wasp policy plugin"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib is the component wasp loads; rlib lets `cargo test` run the logic natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
{{sdk_dependency}}
serde = { version = "1", features = ["derive"] }

[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1

# A workspace of its own, so the crate builds alone even inside another workspace's folder.
[workspace]
"#;

const LIB_RS: &str = r##"//! {{name}}: a wasp policy plugin. The example rule: a marketing message to a recipient who
//! opted out is rejected; everything else goes through. Replace it with your own.
//!
//! The decision is the pure [`decide`] function, so it is easy to test; the [`{{type}}`]
//! policy wires it to the host. Calls only `wasp-sdk`.

use serde::Deserialize;
use wasp_sdk::{Category, Context, Message, Policy, Verdict};

/// The reason a refused message carries unless the config gives another.
pub const DEFAULT_REASON: &str = "the recipient opted out of marketing";

/// The plugin's config: the JSON an operator attaches to it. Every key is optional; unknown
/// keys are refused, so a typo is caught when the config is set.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The reason a refused message carries.
    pub reason: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reason: DEFAULT_REASON.to_string(),
        }
    }
}

/// The rule: marketing to a recipient who opted out is rejected.
pub fn decide(config: &Config, message: &Message, context: &Context) -> Verdict {
    if message.category == Category::Marketing && context.recipient.opted_out {
        return Verdict::Reject(config.reason.clone());
    }
    Verdict::Allow
}

pub struct {{type}} {
    config: Config,
}

impl Policy for {{type}} {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = wasp_sdk::parse_config(config)?;
        if config.reason.trim().is_empty() {
            return Err("config field `reason` must not be empty".to_string());
        }
        Ok({{type}} { config })
    }

    // The other hooks (`on_dispatch`, `on_event`) keep the SDK's defaults: allow, no actions.
    fn on_submit(&self, message: Message, context: &Context) -> Verdict {
        let verdict = decide(&self.config, &message, context);
        if matches!(verdict, Verdict::Reject(_)) {
            wasp_sdk::counter_add("rejected", 1);
        }
        verdict
    }
}

wasp_sdk::export_policy!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_sdk::{Content, RecipientFacts};

    #[test]
    fn fixtures_hold() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        match wasp_sdk::fixture::check_folder::<{{type}}>(folder) {
            Ok(checked) => assert_eq!(checked, 2),
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn marketing_to_a_subscribed_recipient_goes_through() {
        let mut message = Message::new("m-1", "+6591234567", "100200300", Content::text("Sale!"));
        message.category = Category::Marketing;
        let context = Context {
            recipient: RecipientFacts {
                opted_out: false,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(decide(&Config::default(), &message, &context), Verdict::Allow);
    }

    #[test]
    fn an_empty_reason_is_refused() {
        assert!({{type}}::init(r#"{"reason": " "}"#).is_err());
        assert!({{type}}::init(r#"{"reasons": "typo"}"#).is_err());
    }
}
"##;

const FIXTURE_REJECTED: &str = r#"{
  "description": "A marketing message to a recipient who opted out is rejected with the configured reason.",
  "hook": "on-submit",
  "config": {"reason": "opted out of marketing"},
  "message": {
    "id": "m-1",
    "to": "+6591234567",
    "sender": "100200300",
    "category": "marketing",
    "priority": "bulk",
    "channel": "whatsapp",
    "content": {"text": {"body": "20% off this weekend", "preview_url": false}},
    "tags": ["campaign"]
  },
  "context": {
    "now_ms": 1709335800000,
    "recipient": {"country_code": 65, "time_zone": "Asia/Singapore", "utc_offset_minutes": 480, "opted_out": true}
  },
  "expect": {"verdict": "reject", "reason": "opted out of marketing"}
}
"#;

const FIXTURE_ALLOWED: &str = r#"{
  "description": "The rule is about marketing: a utility message to the same recipient goes through.",
  "message": {
    "id": "m-2",
    "to": "+6591234567",
    "sender": "100200300",
    "category": "utility",
    "priority": "high",
    "channel": "whatsapp",
    "content": {"text": {"body": "Your order has shipped.", "preview_url": false}}
  },
  "context": {"recipient": {"opted_out": true}},
  "expect": {"verdict": "allow"}
}
"#;

const README: &str = r#"# {{name}}

A [wasp](https://github.com/wasp-dispatch/wasp) policy plugin: a WebAssembly component that
implements the `wasp:policy@0.2.0` contract. The example rule rejects a marketing message to a
recipient who opted out; replace it with your own in `src/lib.rs`.

## Build and test

```sh
rustup target add wasm32-wasip2                 # once; `wasp plugin build` does it for you
cargo test                                      # the rule and the fixtures, natively
wasp plugin build                               # builds, then loads the component as the host does
wasp plugin test target/wasm32-wasip2/release/{{wasm}}.wasm --fixtures fixtures
```

`wasp plugin build` is `cargo build --target wasm32-wasip2 --release` followed by the host's
own checks (it compiles, it exports `init`, `on-submit`, `on-dispatch` and `on-event` of the
contract version the host speaks, and `init` accepts `{}`); it prints the component's path,
size, sha256 and exports. `wasp plugin test` runs the component offline, in the same sandbox
as the server, against every `fixtures/*.json` and prints a pass/fail table.

## Fixtures

One JSON file per case in `fixtures/`: the hook, the plugin's config, the message (or event),
the context (any subset; the rest is neutral), and the verdict expected. The format is in the
SDK's README (`sdk/README.md`, section Fixtures). `cargo test` checks them natively through
`wasp_sdk::fixture::check_folder`; `wasp plugin test` checks them against the built component.

## Ship it

```sh
export WASP_URL=http://127.0.0.1:8080 WASP_ADMIN_TOKEN=...
wasp plugin push                                # builds, uploads; prints the new version
wasp plugin shadow {{name}} VERSION             # runs beside the live version, never acted on
wasp plugin shadow {{name}}                     # how often they agree, with sample disagreements
wasp plugin activate {{name}} VERSION           # makes it live, no restart
wasp plugin rollback {{name}}                   # back to the version live before
wasp plugin ls                                  # the chain, versions and live stats
```

## The SDK dependency

`Cargo.toml` names where `wasp-sdk` comes from. Made inside a wasp checkout, it points at that
checkout's `sdk/` folder by path. To build against a published SDK instead, replace that line
with the version:

```toml
wasp-sdk = "{{sdk_version}}"
```

or with the repository, pinned to a release tag:

```toml
wasp-sdk = { git = "https://github.com/wasp-dispatch/wasp", tag = "v{{sdk_version}}" }
```

The crate has its own `[workspace]` table, so it builds on its own even when it sits inside
another Cargo workspace's folder.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass_and_bad_names_say_why() {
        for good in ["quiet-hours", "a", "rate-limit-2", &"x".repeat(MAX_NAME_CHARS)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Quiet",
            "2fast",
            "has space",
            "under_score",
            "trailing-",
            "double--hyphen",
            "-lead",
            &"x".repeat(MAX_NAME_CHARS + 1),
        ] {
            let error = validate_name(bad).expect_err(bad).to_string();
            assert!(error.contains("lowercase letters"), "{bad}: {error}");
        }
        let error = validate_name("self").expect_err("keyword").to_string();
        assert!(error.contains("reserved"), "{error}");
    }

    #[test]
    fn type_names_are_camel_case_and_avoid_the_names_lib_rs_uses() {
        assert_eq!(type_name("quiet-hours"), "QuietHours");
        assert_eq!(type_name("a2p-limit"), "A2pLimit");
        assert_eq!(type_name("policy"), "PolicyPlugin");
        assert_eq!(type_name("config"), "ConfigPlugin");
    }

    #[test]
    fn a_crate_is_written_with_the_sdk_by_path_and_refuses_an_existing_folder() {
        let temporary = tempfile::tempdir().unwrap();
        let directory = temporary.path().join("quiet-hours");
        let sdk = SdkSource::Path(PathBuf::from("/src/wasp/sdk"));
        scaffold("quiet-hours", &directory, &sdk, None).unwrap();
        let manifest = std::fs::read_to_string(directory.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"quiet-hours\""), "{manifest}");
        assert!(
            manifest.contains("wasp-sdk = { path = \"/src/wasp/sdk\" }"),
            "{manifest}"
        );
        assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
        let parsed: toml::Table = toml::from_str(&manifest).unwrap();
        assert!(parsed.contains_key("workspace"));
        let library = std::fs::read_to_string(directory.join("src/lib.rs")).unwrap();
        assert!(library.contains("impl Policy for QuietHours"), "{library}");
        assert!(library.contains("wasp_sdk::export_policy!(QuietHours);"), "{library}");
        assert!(!library.contains("{{"), "a placeholder is left: {library}");
        let fixtures: Vec<_> = std::fs::read_dir(directory.join("fixtures")).unwrap().collect();
        assert_eq!(fixtures.len(), 2);
        for fixture in fixtures {
            let text = std::fs::read_to_string(fixture.unwrap().path()).unwrap();
            let _: serde_json::Value = serde_json::from_str(&text).unwrap();
        }
        let readme = std::fs::read_to_string(directory.join("README.md")).unwrap();
        assert!(readme.contains("wasp-sdk = \"0.1.0\""), "{readme}");
        assert!(readme.contains("quiet_hours.wasm"), "{readme}");

        let again = scaffold("quiet-hours", &directory, &sdk, None).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");
        let bad = scaffold("Quiet", &temporary.path().join("other"), &sdk, None)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("lowercase"), "{bad}");
        assert!(!temporary.path().join("other").exists());
    }

    #[test]
    fn without_a_checkout_the_sdk_is_the_published_version() {
        let sdk = SdkSource::Version("0.1.0".into());
        assert_eq!(sdk.dependency(), "wasp-sdk = \"0.1.0\"");
        let quoted = SdkSource::Path(PathBuf::from(r#"C:\a "b""#));
        assert_eq!(quoted.dependency(), r#"wasp-sdk = { path = "C:\\a \"b\"" }"#);
    }

    #[test]
    fn the_checkout_is_found_from_inside_it() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let inside = checkout.join("plugins/button-limit/src");
        assert_eq!(find_checkout(&inside).as_deref(), Some(checkout));
        assert_eq!(find_checkout(Path::new("/")), None);
    }
}
