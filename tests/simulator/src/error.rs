//! The simulator's library errors, classified by type. Owns `Error` and `Result`.
//! Graph API answers are not errors of the simulator: they live in `graph::error`.

/// Result of simulator operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while running the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or malformed.
    #[error("invalid simulator config {field}: {reason}")]
    InvalidConfig {
        /// The key that is wrong.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The configuration could not be turned into JSON for a partial update.
    #[error("encoding the simulator config: {0}")]
    ConfigEncoding(#[source] serde_json::Error),
    /// The listener handed to `Simulator::start` has no local address.
    #[error("reading the simulator listener address: {0}")]
    Listener(#[source] std::io::Error),
    /// The HTTP client for webhooks could not be built.
    #[error("building the webhook HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// A webhook body could not be encoded.
    #[error("encoding a webhook body: {0}")]
    Encoding(#[source] serde_json::Error),
    /// The HMAC key for signing webhooks was refused.
    #[error("signing a webhook body: invalid key")]
    SigningKey,
    /// An inbound message cannot be posted because `webhook_url` is not set.
    #[error("no webhook_url is configured")]
    NoWebhookUrl,
    /// An inbound message is not well formed.
    #[error("invalid inbound message: {0}")]
    InvalidInbound(&'static str),
    /// The webhook receiver did not answer 2xx after every retry.
    #[error("webhook POST to {url} failed after {attempts} attempts: {last}")]
    WebhookFailed {
        /// Where the POST went.
        url: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last answer or connection error.
        last: String,
    },
    /// The simulator was shut down while the operation waited.
    #[error("the simulator is shutting down")]
    ShuttingDown,
}
