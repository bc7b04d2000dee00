//! The host imports the helpers call: on wasm, the `wasp:policy/host` functions generated
//! from the contract; elsewhere (native unit tests of a plugin), in-process stand-ins so
//! policy logic runs without a host. Called only by [`crate::log`] and [`crate::state`].

#[cfg(target_arch = "wasm32")]
pub(crate) use crate::bindings::wasp::policy::host::{counter_add, log, state_delete, state_get, state_set};
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{counter_add, log, state_delete, state_get, state_set};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    //! Native stand-ins: log lines go to standard error (the test harness captures them),
    //! state lives in a per-thread map that ignores TTLs, counters are dropped.

    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use crate::LogLevel;

    thread_local! {
        static STATE: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub(crate) fn log(level: LogLevel, message: &str) {
        eprintln!("[plugin {}] {message}", crate::log::level_name(level));
    }

    pub(crate) fn state_get(key: &str) -> Option<String> {
        STATE.with(|state| state.borrow().get(key).cloned())
    }

    pub(crate) fn state_set(key: &str, value: &str, _ttl_ms: Option<u64>) {
        STATE.with(|state| {
            state.borrow_mut().insert(key.to_string(), value.to_string());
        });
    }

    pub(crate) fn state_delete(key: &str) {
        STATE.with(|state| {
            state.borrow_mut().remove(key);
        });
    }

    pub(crate) fn counter_add(_name: &str, _delta: u64) {}
}
