//! The composition root: opens the store, loads the plugins, starts the dispatcher and serves
//! the API, in that order, from one resolved [`Config`]. Shared by `wasp serve` and `wasp demo`.

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::{
    api::{self, ApiState},
    channel::{CloudApi, SmsChannel},
    config::Config,
    dispatch::{Dispatcher, Outbound},
    policy::PolicyRuntime,
    store::Store,
};

/// A host that is up: its address, and the task serving it.
pub struct RunningHost {
    pub addr: SocketAddr,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The Cloud API client, for its failover counters.
    pub channel: Arc<CloudApi>,
}

/// Starts every part and serves until `shutdown` completes.
pub async fn start(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<RunningHost> {
    // The recorder first: every part counts from its first step. One per process; a second
    // host in the same process shares it.
    crate::telemetry::metrics::handle();
    crate::telemetry::metrics::spawn_upkeep();
    let live = crate::telemetry::live::Live::new();
    let sealing = crate::store::Sealing {
        keyring: crate::store::Keyring::new(&config.store.encryption_keys, config.store.active_key_id.as_deref())
            .context("reading store.encryption_keys")?,
        sensitive_ttl_ms: config.store.sensitive_ttl_ms,
    };
    let store = Store::open_with(&config.store.database_url, config.store.write_batch_rows, sealing)
        .await
        .with_context(|| format!("opening the store at {}", config.store.database_url))?;

    let cluster = crate::cluster::Cluster::join(
        &config.cluster,
        &config.server.listen,
        config.dispatch.shards,
        store.clone(),
    )
    .await
    .context("joining the cluster (heartbeat and shard leases)")?;
    cluster.spawn();

    // The engine's cache wants an absolute path; a relative one in config is taken from the
    // working directory.
    let cache_dir = std::path::absolute(Path::new(&config.policy.compiled_cache_dir))
        .with_context(|| format!("resolving the compiled-code cache {}", config.policy.compiled_cache_dir))?;
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("creating the compiled-code cache {}", cache_dir.display()))?;
    let policies = Arc::new(PolicyRuntime::new(&config.policy, store.clone(), Some(&cache_dir))?);
    policies.bootstrap(&config.policy).await?;

    let channel = Arc::new(CloudApi::new(&config.channel.cloud_api)?);
    channel.spawn_prober();
    let sms = SmsChannel::new(&config.channel.sms)?.map(Arc::new);
    let regions = Arc::new(crate::regions::RegionHealth::new(config.regions.clone()));
    let senders = Arc::new(crate::senders::Senders::new(
        store.clone(),
        config.channel.cloud_api.daily_tier_limit,
    ));
    let upstream = Arc::new(crate::health::upstream::UpstreamOutcomes::new());
    let outbound = Outbound {
        cloud_api: channel.clone(),
        sms,
        regions: regions.clone(),
        senders: senders.clone(),
        upstream: upstream.clone(),
    };
    let dispatch = Dispatcher::start(
        config.dispatch.clone(),
        &config.channel.cloud_api,
        store.clone(),
        policies.clone(),
        outbound,
        cluster.clone(),
    )
    .await
    .context("starting the dispatcher")?;
    store.listen_for_work(dispatch.waker());
    spawn_sensitive_purge(store.clone(), dispatch.clone());
    spawn_stats_pruning(store.clone(), config.stats.retention_days);
    let draining = dispatch.clone();
    let drain_timeout = std::time::Duration::from_millis(config.dispatch.drain_timeout_ms);

    let events = crate::events::Events::start(
        store.clone(),
        policies.clone(),
        dispatch.clone(),
        (regions.clone(), senders.clone()),
        config.channel.cloud_api.phone_number_id.clone(),
        std::time::Duration::from_millis(config.dispatch.poll_interval_ms),
        cluster.clone(),
    );
    let stored_tokens = store.tokens().await.context("loading the API tokens")?;
    let tokens = Arc::new(api::auth::Tokens::new(
        config.server.admin_token.as_deref(),
        &stored_tokens,
    ));
    tokens.set_callback(
        api::auth::BOOTSTRAP_TOKEN_ID,
        api::auth::TokenCallbacks {
            url: config.callbacks.default_url.as_deref().map(Into::into),
            signed: config.callbacks.secret.is_some(),
        },
    );
    for callback in store
        .token_callbacks()
        .await
        .context("loading the tokens' callback defaults")?
    {
        tokens.set_callback(
            &callback.token_id,
            api::auth::TokenCallbacks {
                url: callback.url.as_deref().map(Into::into),
                signed: true,
            },
        );
    }
    crate::callbacks::Deliverer::new(store.clone(), config.callbacks.clone())
        .context("building the callback client")?
        .spawn(cluster.clone());
    let business_account = config.channel.cloud_api.business_account_id.clone();
    let templates = Arc::new(
        crate::templates::Registry::load(business_account.is_some() && config.templates.check_at_submit, &store)
            .await
            .context("loading the templates")?,
    );
    match &business_account {
        Some(business_account_id) => {
            let endpoint = crate::templates::sync::TemplateEndpoint {
                base: format!(
                    "{}/{}",
                    config.channel.cloud_api.endpoints()[0].trim_end_matches('/'),
                    config.channel.cloud_api.api_version
                ),
                business_account_id: business_account_id.clone(),
                access_token: config.channel.cloud_api.access_token.clone(),
                request_timeout: std::time::Duration::from_millis(config.channel.cloud_api.request_timeout_ms),
            };
            let submitter = crate::templates::sync::Submitter::new(
                store.clone(),
                templates.clone(),
                endpoint,
                std::time::Duration::from_millis(config.templates.sync_interval_ms),
                std::time::Duration::from_millis(config.templates.full_sync_interval_ms),
            )?;
            tokio::spawn(submitter.run(cluster.clone()));
        }
        None => tracing::info!(
            "no channel.cloud_api.business_account_id: templates are not managed and messages naming one are not checked"
        ),
    }
    if store.is_shared() {
        crate::cluster::spawn_change_feed(
            store.clone(),
            std::time::Duration::from_millis(config.cluster.change_poll_ms),
            crate::cluster::Reloaders {
                policies: policies.clone(),
                templates: templates.clone(),
                tokens: tokens.clone(),
            },
        );
    }
    crate::telemetry::live::feed::spawn(
        live.clone(),
        crate::telemetry::live::feed::Sources {
            store: store.clone(),
            dispatch: dispatch.clone(),
            regions: regions.clone(),
            node_id: cluster.node_id().to_owned(),
        },
    );
    let streams = live.clone();
    let health = Arc::new(crate::health::Health::new(
        config
            .health
            .rules()
            .map_err(|error| anyhow::anyhow!("config: {error}"))?,
    ));
    let health_webhook = config
        .health
        .webhook_url
        .clone()
        .map(|url| {
            crate::health::webhook::Webhook::start(
                url,
                std::time::Duration::from_millis(config.health.webhook_timeout_ms),
                config.health.webhook_attempts,
            )
        })
        .transpose()?;
    crate::health::Evaluator::new(
        crate::health::HostNode {
            dispatch: dispatch.clone(),
            upstream,
            store: store.clone(),
            cluster: cluster.clone(),
            regions: regions.clone(),
        },
        health.clone(),
        live.clone(),
        health_webhook,
    )
    .spawn(std::time::Duration::from_millis(config.health.evaluate_every_ms));
    let leaving = cluster.clone();
    let state = ApiState {
        cluster,
        templates,
        template_review: business_account.is_some().then_some(config.templates.review),
        regions,
        senders,
        store,
        dispatch,
        policies,
        events,
        shards: config.dispatch.shards,
        tokens,
        app_secret: config.webhook.app_secret.clone(),
        verify_token: config.webhook.verify_token.clone(),
        metrics_token: config.server.metrics_token.clone(),
        opt_keywords: Arc::new(api::webhook::OptKeywords::new(&config.contacts)),
        live,
        stats_retention_days: config.stats.retention_days,
        health,
    };
    let router = api::router_with_limits(state, config.server.max_body_bytes, config.server.max_batch_body_bytes);
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            // Open event streams end with the server, so the shutdown does not wait on them.
            .with_graceful_shutdown(async move {
                shutdown.await;
                streams.close();
            })
            .await
            .context("serving HTTP");
        // No new work comes in: let the sends under way finish and be recorded.
        if draining.drain(drain_timeout).await {
            tracing::info!("in-flight sends drained");
        } else {
            tracing::warn!(
                ?drain_timeout,
                "in-flight sends did not drain in time; they go again after restart"
            );
        }
        // The other nodes take this node's shards at once instead of after the TTL.
        leaving.leave().await;
        served
    });
    Ok(RunningHost { addr, server, channel })
}

/// How often sensitive bodies past `store.sensitive_ttl_ms` are looked for.
pub const SENSITIVE_PURGE_INTERVAL_MS: u64 = 10_000;

/// Purges sensitive bodies past their TTL, every [`SENSITIVE_PURGE_INTERVAL_MS`] (and at
/// once after a full sweep, until none is left); messages it ends `expired` leave the backlog.
fn spawn_sensitive_purge(store: Store, dispatch: crate::dispatch::DispatchHandle) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(SENSITIVE_PURGE_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            loop {
                match store.purge_sensitive(crate::store::now_ms()).await {
                    Ok(purge) => {
                        if purge.expired > 0 {
                            dispatch.left_backlog(usize::try_from(purge.expired).unwrap_or(usize::MAX));
                        }
                        if purge.purged > 0 {
                            tracing::info!(
                                purged = purge.purged,
                                expired = purge.expired,
                                "sensitive bodies purged after their TTL"
                            );
                        }
                        // A full sweep may have left more behind.
                        if purge.purged < crate::store::SENSITIVE_PURGE_BATCH {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "purging sensitive bodies failed; tried again later");
                        break;
                    }
                }
            }
        }
    });
}

/// How often stats rollups past `stats.retention_days` are pruned.
pub const STATS_PRUNE_INTERVAL_MS: u64 = 60 * 60 * 1_000;

/// Prunes the stats rollups older than `retention_days`, once at start and then every
/// [`STATS_PRUNE_INTERVAL_MS`], a batch at a time until none is left. Every node does it
/// (no leader): pruning twice deletes nothing more.
fn spawn_stats_pruning(store: Store, retention_days: u32) {
    tokio::spawn(async move {
        let retention_ms = i64::from(retention_days) * 24 * 60 * 60 * 1_000;
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(STATS_PRUNE_INTERVAL_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let before_ms = crate::store::now_ms().saturating_sub(retention_ms);
            let mut deleted = 0;
            loop {
                match store.prune_stats(before_ms).await {
                    Ok(0) => break,
                    Ok(rows) => deleted += rows,
                    Err(error) => {
                        tracing::error!(%error, "pruning the stats rollups failed; tried again later");
                        break;
                    }
                }
            }
            if deleted > 0 {
                tracing::info!(deleted, retention_days, "stats rollups pruned");
            }
        }
    });
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "listening for Ctrl-C failed");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "listening for SIGTERM failed");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
