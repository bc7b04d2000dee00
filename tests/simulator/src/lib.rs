//! A WhatsApp Cloud API simulator that speaks Meta's wire format.
//!
//! wasp's host, its integration tests, `wasp demo` and the benchmarks talk to this
//! instead of `graph.facebook.com`; pointing wasp at the real API is a change of base
//! URL. The simulator answers `POST /{version}/{phone_number_id}/messages` as the Cloud
//! API does (validation, error bodies, wamids), then posts signed status webhooks
//! (`sent`, `delivered`, `read`, or `failed`) in Meta's batches, and can inject inbound
//! messages. Faults (latency and jitter, transient errors, connection resets, delayed,
//! duplicated and reordered webhooks, undeliverable prefixes) change at runtime
//! through [`RunningSimulator::set_config`] or `PUT /_sim/config`.
//!
//! It also keeps message templates as the WhatsApp Business Management API does
//! ([`templates`]): `POST`/`GET`/`DELETE /{version}/{waba_id}/message_templates` and
//! `GET /{version}/{template_id}`; a new template is `PENDING` for `template_review_ms`,
//! then `APPROVED` or `REJECTED` by deterministic rules, each change posting a signed
//! `message_template_status_update` webhook; `POST /_sim/templates/{id}/status` forces a
//! status (`PAUSED`, `DISABLED`, …); with `enforce_templates`, template sends must name
//! an approved template (132001, 132015, 132016 otherwise).
//!
//! This file owns start-up and shutdown: it wires the Graph API (`graph`), the control
//! surface (`control`), the status scheduler and poster (`webhook`) and the template
//! book (`templates`) to the shared state (`state`), and serves them on connections that
//! can be reset on purpose (`connection`).

pub mod config;
mod connection;
mod control;
pub mod error;
pub mod graph;
pub mod inbound;
pub mod sms;
mod state;
pub mod templates;
pub mod wamid;
mod webhook;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::SimulatorConfig;
pub use error::Error;
pub use inbound::{Inbound, InboundContent};
pub use state::{Counters, SENT_LOG_CAPACITY, SentMessage};
pub use webhook::payload::{FAILURE_CODES, StatusError, StatusErrorData, UNDELIVERABLE, status_error};
pub use webhook::schedule::StatusKind;
pub use webhook::{WEBHOOK_ATTEMPTS, WEBHOOK_RETRY_BASE_MS, WEBHOOK_TIMEOUT_MS};

use config::ConfigCell;
use connection::{ConnectionServices, ResettableListener};
use state::{CounterCells, SentLog, Shared};
use wamid::WamidGenerator;
use webhook::schedule::Scheduler;

/// Accepted messages waiting for the scheduler; a full queue slows the senders down.
const SCHEDULE_QUEUE: usize = 16_384;
/// Idle keep-alive connections kept to the webhook receiver.
const WEBHOOK_IDLE_CONNECTIONS: usize = 8;
/// How long shutdown waits for open connections before it stops serving anyway.
const SHUTDOWN_GRACE_MS: u64 = 2_000;

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Serves the simulator on `listener` (bind `127.0.0.1:0` for a free port) until
    /// [`RunningSimulator::shutdown`] or until the handle is dropped.
    pub async fn start(config: SimulatorConfig, listener: TcpListener) -> anyhow::Result<RunningSimulator> {
        config.validate()?;
        let address = listener.local_addr().map_err(Error::Listener)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(WEBHOOK_TIMEOUT_MS))
            .pool_max_idle_per_host(WEBHOOK_IDLE_CONNECTIONS)
            .tcp_nodelay(true)
            .build()
            .map_err(Error::HttpClient)?;

        let (shutdown, shutdown_signal) = watch::channel(false);
        let (schedule, incoming) = mpsc::channel(SCHEDULE_QUEUE);
        let (batch_sender, batches) = mpsc::channel(1);
        let config = Arc::new(ConfigCell::new(config));
        let counters = Arc::new(CounterCells::default());
        let shared = Arc::new(Shared {
            config: Arc::clone(&config),
            counters: Arc::clone(&counters),
            sent: SentLog::default(),
            sms: sms::SmsLog::default(),
            sms_salt: rand::random(),
            wamids: WamidGenerator::new(),
            templates: templates::TemplateBook::default(),
            schedule,
            http,
            shutdown: shutdown_signal.clone(),
        });

        let scheduler = Scheduler::new(config, counters, incoming, batch_sender, shutdown_signal.clone());
        let scheduler = tokio::spawn(scheduler.run());
        let poster = tokio::spawn(webhook::run_poster(
            Arc::clone(&shared),
            batches,
            shutdown_signal.clone(),
        ));

        let router = graph::routes()
            .merge(sms::routes())
            .merge(control::routes())
            .fallback(graph::fallback)
            .with_state(Arc::clone(&shared));
        let listener = ResettableListener::new(listener);
        let services = ConnectionServices::new(router);
        let mut stop = shutdown_signal;
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, services)
                .with_graceful_shutdown(async move {
                    // Either a shutdown or a dropped handle ends serving.
                    while !*stop.borrow_and_update() {
                        if stop.changed().await.is_err() {
                            break;
                        }
                    }
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "simulator server stopped");
            }
        });

        tracing::info!(%address, "wasp simulator listening");
        Ok(RunningSimulator {
            shared,
            address,
            shutdown,
            server: Some(server),
            workers: vec![scheduler, poster],
        })
    }
}

/// A simulator serving in the background. Dropping it stops it too; `shutdown` also
/// waits until it has stopped.
#[derive(Debug)]
pub struct RunningSimulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl RunningSimulator {
    /// Base URL of the Graph API side, e.g. `http://127.0.0.1:40123` (no trailing `/`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Every accepted message still in the log (the newest [`SENT_LOG_CAPACITY`]),
    /// oldest first.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared.sent.recent(SENT_LOG_CAPACITY)
    }

    /// Every message template the simulator holds, oldest first, with its status.
    pub fn templates(&self) -> Vec<templates::Template> {
        self.shared.templates.all()
    }

    /// Every SMS accepted (the newest 20,000), oldest first.
    pub fn sms_sent(&self) -> Vec<sms::SmsMessage> {
        self.shared.sms.all()
    }

    /// The configuration in force now.
    pub fn config(&self) -> SimulatorConfig {
        SimulatorConfig::clone(&self.shared.config.snapshot())
    }

    /// Changes the configuration at runtime. Out-of-range values are brought into range
    /// (ratios to `0..=1`, `webhook_batch_max` to `1..=1000`; malformed prefixes and
    /// non-http webhook URLs are dropped). Takes effect for the next request and the
    /// next status that falls due.
    pub fn set_config(&self, change: impl FnOnce(&mut SimulatorConfig)) {
        self.shared.config.update(change);
    }

    /// Posts an inbound-message webhook (text, button reply or list reply) to
    /// `webhook_url`, signed, with the usual retries.
    pub async fn inject_inbound(&self, inbound: Inbound) -> anyhow::Result<()> {
        let mut shutdown = self.shutdown.subscribe();
        webhook::post_inbound(&self.shared, &inbound, &mut shutdown).await?;
        Ok(())
    }

    /// Stops serving and the background tasks and waits for them. Statuses not yet
    /// posted are dropped.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        for worker in std::mem::take(&mut self.workers) {
            if let Err(error) = worker.await {
                tracing::warn!(%error, "simulator task ended badly");
            }
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
