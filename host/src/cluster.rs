//! The cluster: this node's membership and its shard leases, and the change feed that brings
//! admin changes made on other nodes here.
//!
//! Every `renew_interval_ms` the node heartbeats, works out its share of the shards ([`share_of`]:
//! even over the live nodes, and moving as few shards as it can; every node computes the same
//! answer from the same rows), gives up the shards that are no longer its share (it stops
//! using them first), and renews or acquires the rest. A lease it holds is usable here until a local
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
    /// Set once the node left: the renewals stop, so it does not take its shards back.
    left: std::sync::atomic::AtomicBool,
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
            left: std::sync::atomic::AtomicBool::new(false),
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
                if cluster.left.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
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
        let snapshot = self.store.heartbeat(self.node.clone()).await?;
        let now_ms = snapshot.now_ms;
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let live: Vec<&str> = snapshot
            .nodes
            .iter()
            .filter(|node| node.id == self.node.id || now_ms - node.heartbeat_at_ms < ttl_ms)
            .map(|node| node.id.as_str())
            .collect();
        let held: Vec<(u16, &str)> = snapshot
            .leases
            .iter()
            .filter(|lease| lease.expires_at_ms > now_ms)
            .filter_map(|lease| Some((lease.shard, lease.node_id.as_deref()?)))
            .collect();
        let want = share_of(&live, &held, &self.node.id, self.shard_count);
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
        self.left.store(true, std::sync::atomic::Ordering::SeqCst);
        self.write().leases.clear();
        if let Err(error) = self.store.leave_cluster(&self.node.id).await {
            tracing::warn!(%error, node = %self.node.id, "leaving the cluster failed; the leases run out instead");
        }
    }
}

/// The shards `me` should hold, sorted. Each live node gets an even quota (the first
/// `shard_count mod n` nodes by id one more); a node keeps the shards it holds now, lowest
/// first, up to its quota, and the rest (a dead node's, those over a quota, those no one
/// holds) go to the nodes below their quota, in order. So a node joining takes about `1/n`
/// of the shards from the others and a node leaving gives only its own away. `held` is every
/// unexpired lease: (shard, holder).
pub fn share_of(live: &[&str], held: &[(u16, &str)], me: &str, shard_count: u16) -> Vec<u16> {
    let mut nodes: Vec<&str> = live.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    let Some(position) = nodes.iter().position(|node| *node == me) else {
        return Vec::new();
    };
    let total = usize::from(shard_count);
    let quota = |index: usize| total / nodes.len() + usize::from(index < total % nodes.len());
    let mut owner: Vec<Option<usize>> = vec![None; total];
    let mut count = vec![0usize; nodes.len()];
    let mut current: Vec<(u16, &str)> = held.to_vec();
    current.sort_unstable();
    for (shard, holder) in current {
        let Some(slot) = owner.get_mut(usize::from(shard)) else {
            continue;
        };
        if let Some(index) = nodes.iter().position(|node| *node == holder)
            && slot.is_none()
            && count[index] < quota(index)
        {
            *slot = Some(index);
            count[index] += 1;
        }
    }
    let mut next = 0;
    for slot in owner.iter_mut().filter(|slot| slot.is_none()) {
        while count[next] >= quota(next) {
            next += 1;
        }
        *slot = Some(next);
        count[next] += 1;
    }
    (0..shard_count)
        .filter(|shard| owner[usize::from(*shard)] == Some(position))
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

/// How far back the change feed is read at every poll: longer than any admin write takes to
/// commit, plus the clock difference between nodes.
const CHANGE_WINDOW_MS: i64 = 60_000;

/// Polls the store's change feed every `every` and reloads what changed: plugins (the chain is
/// swapped at once), templates, tokens. Changes this node made come back too; reloading them
/// finds nothing different. Each poll reads the last [`CHANGE_WINDOW_MS`] and acts on the rows
/// not seen before, so a change committed late (with an older sequence number) is not missed.
pub fn spawn_change_feed(store: Store, every: Duration, reloaders: Reloaders) {
    tokio::spawn(async move {
        // What is in the feed at start was loaded with everything else.
        let mut seen: HashMap<i64, i64> = HashMap::new();
        let mut primed = false;
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let since = store::now_ms() - CHANGE_WINDOW_MS;
            let rows = match store.config_changes_since(since).await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "reading the change feed failed");
                    continue;
                }
            };
            let mut kinds: Vec<&str> = Vec::new();
            for (seq, kind, at) in &rows {
                if seen.insert(*seq, *at).is_none() && primed && !kinds.contains(&kind.as_str()) {
                    kinds.push(kind);
                }
            }
            primed = true;
            seen.retain(|_, at| *at >= since);
            for kind in kinds {
                let reloaded = match kind {
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
                    // Forget the kind's rows: the next poll finds them again and retries.
                    tracing::warn!(%kind, %error, "loading an admin change failed");
                    for (seq, row_kind, _) in &rows {
                        if row_kind == kind {
                            seen.remove(seq);
                        }
                    }
                }
            }
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

    fn shares(live: &[&str], held: &[(u16, &str)], count: u16) -> Vec<Vec<u16>> {
        live.iter().map(|me| share_of(live, held, me, count)).collect()
    }

    fn every_shard_once(shares: &[Vec<u16>], count: u16) {
        let mut all: Vec<u16> = shares.concat();
        all.sort_unstable();
        assert_eq!(all, (0..count).collect::<Vec<u16>>());
    }

    #[test]
    fn from_nothing_the_shards_spread_evenly_with_one_owner_each() {
        let live = ["b-node", "a-node", "c-node"];
        let shares = shares(&live, &[], 256);
        let sizes: Vec<usize> = shares.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![85, 86, 85], "a-node is first by id and takes the odd one");
        every_shard_once(&shares, 256);
    }

    #[test]
    fn a_node_joining_takes_its_share_and_nothing_else_moves() {
        let two = ["a", "b"];
        let before = shares(&two, &[], 256);
        let held: Vec<(u16, &str)> = before[0]
            .iter()
            .map(|shard| (*shard, "a"))
            .chain(before[1].iter().map(|shard| (*shard, "b")))
            .collect();
        let three = ["a", "b", "c"];
        let after = shares(&three, &held, 256);
        every_shard_once(&after, 256);
        assert_eq!(after.iter().map(Vec::len).collect::<Vec<_>>(), vec![86, 85, 85]);
        // `a` and `b` only give shards up; none moves between them.
        assert!(after[0].iter().all(|shard| before[0].contains(shard)));
        assert!(after[1].iter().all(|shard| before[1].contains(shard)));
    }

    #[test]
    fn a_node_leaving_gives_only_its_own_shards_away() {
        let three = ["a", "b", "c"];
        let before = shares(&three, &[], 255);
        let held: Vec<(u16, &str)> = three
            .iter()
            .zip(&before)
            .flat_map(|(node, shards)| shards.iter().map(move |shard| (*shard, *node)))
            .collect();
        // `b` is gone (its leases still in the table, but it is not live).
        let after = shares(&["a", "c"], &held, 255);
        every_shard_once(&after, 255);
        assert!(before[0].iter().all(|shard| after[0].contains(shard)));
        assert!(before[2].iter().all(|shard| after[1].contains(shard)));
        assert_eq!((after[0].len(), after[1].len()), (128, 127));
    }

    #[test]
    fn a_node_not_among_the_live_ones_holds_nothing_and_one_node_holds_all() {
        assert!(share_of(&["a"], &[], "b", 256).is_empty());
        assert_eq!(share_of(&["a"], &[(3, "zombie")], "a", 8), (0..8).collect::<Vec<u16>>());
    }
}
