//! Released contract folders never change: each `sdk/wit/v*` folder that has been released
//! is hashed here (every file, by relative path and content) and compared with the hash
//! recorded at release. A new contract version is a new folder and a new constant.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// SHA-256 of `sdk/wit/v0.1.0`, as released.
const WIT_V0_1_0_SHA256: &str = "cc1ae304411f4b5859d33cf2b9d34f00dba7bbe7d114994ca4c55486b12757b1";

/// Every file under `folder`, as paths relative to it, sorted.
fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut pending = vec![folder.to_path_buf()];
    let mut files = Vec::new();
    while let Some(current) = pending.pop() {
        let entries =
            std::fs::read_dir(&current).unwrap_or_else(|error| panic!("reading {}: {error}", current.display()));
        for entry in entries {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(folder).expect("under the folder");
                files.push(relative.to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// Hashes each file's relative path (with `/` separators), its length, and its bytes, in
/// path order, so adding, removing, renaming or editing any file changes the hash.
fn folder_sha256(folder: &Path) -> String {
    let mut hasher = Sha256::new();
    for relative in files_under(folder) {
        let bytes = std::fs::read(folder.join(&relative))
            .unwrap_or_else(|error| panic!("reading {}: {error}", relative.display()));
        let name = relative
            .components()
            .map(|component| component.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    hex::encode(hasher.finalize())
}

#[test]
fn released_wit_v0_1_0_is_unchanged() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("wit/v0.1.0");
    assert!(!files_under(&folder).is_empty(), "{} is empty", folder.display());
    assert_eq!(
        folder_sha256(&folder),
        WIT_V0_1_0_SHA256,
        "sdk/wit/v0.1.0 changed. Released contract folders are frozen: put a new contract \
         in a new version folder instead of editing this one."
    );
}

/// The text of `interface <name> { ... }` in `text`, up to its closing brace at the start
/// of a line.
fn interface_block<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("interface {name} {{"))
        .unwrap_or_else(|| panic!("no interface {name}"));
    let end = text[start..].find("\n}\n").expect("the interface closes") + start;
    &text[start..end]
}

/// The host shares one set of Rust types between 0.1.0 and 0.2.0 (component type checking is
/// structural): that holds only while 0.2.0's `types` and `host` are 0.1.0's, word for word.
#[test]
fn wit_v0_2_0_keeps_the_types_and_host_of_v0_1_0() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("wit");
    let read = |version: &str| {
        std::fs::read_to_string(root.join(version).join("policy.wit")).expect("the contract file reads")
    };
    let (old, new) = (read("v0.1.0"), read("v0.2.0"));
    for interface in ["types", "host"] {
        assert_eq!(
            interface_block(&old, interface),
            interface_block(&new, interface),
            "interface {interface} differs between 0.1.0 and 0.2.0"
        );
    }
    assert!(new.contains("package wasp:policy@0.2.0;"));
    assert!(new.contains("export on-template: func(template: template-definition) -> list<lint-finding>;"));
}
