//! Logging through the host's `log` import. The host labels each line with the plugin's
//! name and version and applies its own level filter; never log message bodies or phone
//! numbers. Off wasm (native unit tests) the lines go to standard error instead.

use crate::LogLevel;

/// Writes one log line at `level`.
pub fn write(level: LogLevel, message: &str) {
    crate::host::log(level, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    write(LogLevel::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    write(LogLevel::Error, message);
}

/// The lower-case name of a level, as the contract spells it.
pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}
