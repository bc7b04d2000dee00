//! The plugin's own key/value state and counters, through the host's `state-*` and
//! `counter-add` imports. The host keeps state per plugin, so it outlives an instance:
//! keep there what must survive a restart or be shared between instances.
//!
//! Off wasm (native unit tests) state lives in a per-thread map that ignores TTLs and
//! counters are dropped, so policy logic that reads back its own state runs without a host.

/// The value stored under `key`, if any and not expired.
pub fn get(key: &str) -> Option<String> {
    crate::host::state_get(key)
}

/// Stores `value` under `key`. With `ttl_ms` the host forgets it after that many
/// milliseconds; with `None` it stays until [`delete`]d.
pub fn set(key: &str, value: &str, ttl_ms: Option<u64>) {
    crate::host::state_set(key, value, ttl_ms);
}

/// Forgets the value under `key`; forgetting a missing key is not an error.
pub fn delete(key: &str) {
    crate::host::state_delete(key);
}

/// Adds `delta` to the counter `name`, shown in the host's metrics labelled with the
/// plugin. Keep names few and fixed (`rewritten`, `rejected`), never one per message.
pub fn counter_add(name: &str, delta: u64) {
    crate::host::counter_add(name, delta);
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_round_trips_natively() {
        assert_eq!(super::get("seen"), None);
        super::set("seen", "1", Some(60_000));
        assert_eq!(super::get("seen").as_deref(), Some("1"));
        super::delete("seen");
        super::delete("seen");
        assert_eq!(super::get("seen"), None);
    }
}
