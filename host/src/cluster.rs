//! The cluster: this node's membership and its shard leases, and the change feed that brings
//! admin changes made on other nodes here.
//!
//! Every `renew_interval_ms` the node heartbeats, works out its share of the shards (shard `s`
//! goes to the `(s mod n)`-th live node by id, so the spread is even and every node computes
//! the same answer), gives up the shards that are no longer its share (it stops using them
//! first), and renews or acquires the rest. A lease it holds is usable here until a local
//! deadline: the moment the renewal was asked for plus the TTL, less a margin; a paused or cut
//! off node stops at that deadline by its own clock, and its `sending` writes are refused by
//! the database (the fence) once another node took the shard. A SQLite node is a cluster of
//! one and holds every shard.
//! May call the store only.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use crate::{
    config::ClusterConfig,
    store::{self, ClusterNode, Fence, LeaseRequest, Store},
};

/// A lease held here stops being used this long before the TTL would end it, by this node's
/// clock: room for the clock drift between nodes and the time a send takes to leave.
const SAFETY_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: i64,
    deadline: Instant,
}

#[derive(Default)]
struct Holding {
    leases: HashMap<u16, Held>,
}

pub struct Cluster {
    node: ClusterNode,
    store: Store,
    shard_count: u16,
    ttl: Duration,
    renew_every: Duration,
    holding: RwLock<Holding>,
}

impl Cluster {
    /// Registers this node and takes its first share of the shards, so it dispatches from the
    /// start. `listen` is the API address, advertised unless the config names another.
    pub async fn join(
        config: &ClusterConfig,
        listen: &str,
        shard_count: u16,
        store: Store,
    ) -> store::Result<Arc<Self>> {
        let name = if config.node_id.is_empty() {
            host_name()
        } else {
            config.node_id.clone()
        };
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let node = ClusterNode {
            id: format!("{name}-{}", &suffix[..6]),
            address: if config.advertise_address.is_empty() {
                listen.to_owned()
            } else {
                config.advertise_address.clone()
            },
            started_at_ms: store::now_ms(),
            heartbeat_at_ms: 0,
        };
        let cluster = Arc::new(Self {
            node,
            store,
            shard_count,
            ttl: Duration::from_millis(config.lease_ttl_ms),
            renew_every: Duration::from_millis(config.renew_interval_ms),
            holding: RwLock::new(Holding::default()),
        });
        if !cluster.store.is_shared() {
            // A SQLite file is one node's: whoever held it before is gone (a restart), so its
            // leases end now rather than after the TTL.
            for node in cluster.store.cluster_snapshot().await?.nodes {
                cluster.store.leave_cluster(&node.id).await?;
            }
        }
        cluster.round().await?;
        tracing::info!(
            node = %cluster.node.id,
            address = %cluster.node.address,
            shards = cluster.held_count(),
            "joined the cluster"
        );
        Ok(cluster)
    }

    /// Renews the leases every `renew_interval_ms` until the process ends.
    pub fn spawn(self: &Arc<Self>) {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(cluster.renew_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(error) = cluster.round().await {
                    // The leases run to their deadline and are then no longer used here.
                    tracing::warn!(%error, node = %cluster.node.id, "renewing the shard leases failed");
                }
            }
        });
    }

    /// One heartbeat and lease round.
    async fn round(&self) -> store::Result<()> {
        let asked_at = Instant::now();
        let (now_ms, nodes) = self.store.heartbeat(self.node.clone()).await?;
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let live: Vec<&str> = nodes
            .iter()
            .filter(|node| node.id == self.node.id || now_ms - node.heartbeat_at_ms < ttl_ms)
            .map(|node| node.id.as_str())
            .collect();
        let want = share_of(&live, &self.node.id, self.shard_count);
        let release: Vec<u16> = {
            let mut holding = self.write();
            let release: Vec<u16> = holding
                .leases
                .keys()
                .copied()
                .filter(|shard| want.binary_search(shard).is_err())
                .collect();
            // Stop using them before the database lets another node have them.
            for shard in &release {
                holding.leases.remove(shard);
            }
            release
        };
        let held = self
            .store
            .renew_leases(LeaseRequest {
                node_id: self.node.id.clone(),
                want,
                release: release.clone(),
                ttl_ms,
            })
            .await?;
        let deadline = asked_at + self.ttl.saturating_sub(SAFETY_MARGIN);
        let taken_over = held.iter().filter(|lease| lease.taken_over).count();
        let leases: HashMap<u16, Held> = held
            .iter()
            .map(|lease| {
                (
                    lease.shard,
                    Held {
                        epoch: lease.epoch,
                        deadline,
                    },
                )
            })
            .collect();
        let count = leases.len();
        self.write().leases = leases;
        crate::telemetry::metrics::cluster_round(count, live.len());
        if taken_over > 0 || !release.is_empty() {
            tracing::info!(
                node = %self.node.id,
                live_nodes = live.len(),
                held = count,
                taken_over,
                released = release.len(),
                "shard leases changed"
            );
        }
        Ok(())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Holding> {
        self.holding.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Holding> {
        self.holding.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn node_id(&self) -> &str {
        &self.node.id
    }

    pub fn address(&self) -> &str {
        &self.node.address
    }

    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    pub fn lease_ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether this node may still act for `shard`: it holds the lease and its deadline has
    /// not passed by this node's clock.
    pub fn holds(&self, shard: u16) -> bool {
        self.read()
            .leases
            .get(&shard)
            .is_some_and(|held| held.deadline > Instant::now())
    }

    /// The shards usable here now, with their epochs: what this node's fenced writes claim.
    pub fn fence(&self) -> Fence {
        let now = Instant::now();
        let epochs: Vec<(u16, i64)> = self
            .read()
            .leases
            .iter()
            .filter(|(_, held)| held.deadline > now)
            .map(|(shard, held)| (*shard, held.epoch))
            .collect();
        Fence {
            node_id: Arc::from(self.node.id.as_str()),
            epochs: Arc::new(epochs),
        }
    }

    /// Shards usable here now.
    pub fn held_count(&self) -> usize {
        let now = Instant::now();
        self.read().leases.values().filter(|held| held.deadline > now).count()
    }

    /// The node holding shard 0 runs the cluster's singletons (plugin timers, callback
    /// delivery, template sync): one node at a time, moving with the lease.
    pub fn is_leader(&self) -> bool {
        self.holds(0)
    }

    /// Gives every shard up and leaves, so the other nodes take over without waiting for the
    /// TTL (on a clean shutdown, after the in-flight sends drained).
    pub async fn leave(&self) {
        self.write().leases.clear();
        if let Err(error) = self.store.leave_cluster(&self.node.id).await {
            tracing::warn!(%error, node = %self.node.id, "leaving the cluster failed; the leases run out instead");
        }
    }
}

/// The shards `me` should hold among `live` nodes (sorted by id): shard `s` goes to the
/// `(s mod n)`-th node. Sorted.
pub fn share_of(live: &[&str], me: &str, shard_count: u16) -> Vec<u16> {
    let mut nodes: Vec<&str> = live.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    let Some(position) = nodes.iter().position(|node| *node == me) else {
        return Vec::new();
    };
    (0..shard_count)
        .filter(|shard| usize::from(*shard) % nodes.len() == position)
        .collect()
}

fn host_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(48)
        .collect();
    if cleaned.is_empty() { "wasp".to_owned() } else { cleaned }
}

/// What reloads when another node changed it.
pub struct Reloaders {
    pub policies: Arc<crate::policy::PolicyRuntime>,
    pub templates: Arc<crate::templates::Registry>,
    pub tokens: Arc<crate::api::auth::Tokens>,
}

/// Polls the store's change feed every `every` and reloads what changed: plugins (the chain is
/// swapped at once), templates, tokens. Changes this node made come back too; reloading them
/// finds nothing different.
pub fn spawn_change_feed(store: Store, every: Duration, reloaders: Reloaders) {
    tokio::spawn(async move {
        let mut seen = match store.newest_config_change().await {
            Ok(seq) => seq,
            Err(error) => {
                tracing::warn!(%error, "reading the change feed failed; admin changes made on other nodes load from the start of the feed");
                0
            }
        };
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let (newest, kinds) = match store.config_changes_since(seen).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "reading the change feed failed");
                    continue;
                }
            };
            for kind in &kinds {
                let reloaded = match kind.as_str() {
                    "plugins" => reloaders
                        .policies
                        .reload()
                        .await
                        .map(|_| ())
                        .map_err(|error| error.to_string()),
                    "templates" => reloaders
                        .templates
                        .reload(&store)
                        .await
                        .map_err(|error| error.to_string()),
                    "tokens" => reload_tokens(&store, &reloaders.tokens)
                        .await
                        .map_err(|error| error.to_string()),
                    other => {
                        tracing::debug!(kind = other, "change of a kind this node does not keep");
                        Ok(())
                    }
                };
                if let Err(error) = reloaded {
                    // Seen stays put: the next poll tries again.
                    tracing::warn!(kind = %kind, %error, "loading an admin change failed");
                    continue;
                }
            }
            seen = newest;
        }
    });
}

async fn reload_tokens(store: &Store, tokens: &crate::api::auth::Tokens) -> store::Result<()> {
    let stored = store.tokens().await?;
    let callbacks = store.token_callbacks().await?;
    tokens.reload(&stored, &callbacks);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::share_of;

    #[test]
    fn shards_spread_evenly_and_every_shard_has_one_owner() {
        let live = ["b-node", "a-node", "c-node"];
        let shares: Vec<Vec<u16>> = live.iter().map(|me| share_of(&live, me, 256)).collect();
        let sizes: Vec<usize> = shares.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![85, 86, 85], "a-node is first by id and takes 0, 3, 6, …");
        let mut all: Vec<u16> = shares.concat();
        all.sort_unstable();
        assert_eq!(all, (0..256).collect::<Vec<u16>>());
        assert_eq!(share_of(&live, "a-node", 256)[..3], [0, 3, 6]);
    }

    #[test]
    fn a_node_not_among_the_live_ones_holds_nothing_and_one_node_holds_all() {
        assert!(share_of(&["a"], "b", 256).is_empty());
        assert_eq!(share_of(&["a"], "a", 8), (0..8).collect::<Vec<u16>>());
    }
}
