//! Shard leases in the store: a lease is taken only where it is free or expired, a handover
//! moves the fencing epoch on and frees the shard's unsent claims, a node's claims take only
//! its shards, and a fenced write is refused once the shard changed hands.

use super::super::super::TestDatabase;
use super::{new_message, submission, transition};
use crate::store::*;

const TTL_MS: i64 = 60_000;

async fn open() -> (Store, TestDatabase) {
    let database = TestDatabase::new().await;
    (Store::open(&database.url, 1_000).await.unwrap(), database)
}

async fn lease(store: &Store, node: &str, want: Vec<u16>, release: Vec<u16>) -> Vec<HeldLease> {
    store
        .renew_leases(LeaseRequest {
            node_id: node.to_owned(),
            want,
            release,
            ttl_ms: TTL_MS,
        })
        .await
        .unwrap()
}

fn fence(node: &str, held: &[HeldLease]) -> Fence {
    Fence {
        node_id: node.into(),
        epochs: std::sync::Arc::new(held.iter().map(|lease| (lease.shard, lease.epoch)).collect()),
    }
}

/// A message in `shard` (whatever its recipient would hash to).
async fn accept_in(store: &Store, shard: u16, to: &str, at_ms: i64) -> MessageId {
    let mut message = new_message(submission(to, Priority::Normal, None, "hi"), at_ms);
    message.shard = shard;
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    id
}

fn shards(held: &[HeldLease]) -> Vec<u16> {
    held.iter().map(|lease| lease.shard).collect()
}

#[tokio::test]
async fn a_held_lease_is_not_taken_and_a_released_one_changes_hands_with_a_new_epoch() {
    let (store, _database) = open().await;
    let first = lease(&store, "a", vec![0, 1, 2, 3], Vec::new()).await;
    assert_eq!(shards(&first), vec![0, 1, 2, 3]);
    assert!(first.iter().all(|held| held.taken_over && held.epoch == 1));

    // Renewing keeps the epoch; another node gets nothing while the leases run.
    let renewed = lease(&store, "a", vec![0, 1, 2, 3], Vec::new()).await;
    assert!(renewed.iter().all(|held| !held.taken_over && held.epoch == 1));
    assert!(lease(&store, "b", vec![2, 3], Vec::new()).await.is_empty());

    // Given up by `a`, taken by `b` with the next epoch.
    let kept = lease(&store, "a", vec![0, 1], vec![2, 3]).await;
    assert_eq!(shards(&kept), vec![0, 1]);
    let taken = lease(&store, "b", vec![2, 3], Vec::new()).await;
    assert_eq!(shards(&taken), vec![2, 3]);
    assert!(taken.iter().all(|held| held.taken_over && held.epoch == 2));

    let snapshot = store.cluster_snapshot().await.unwrap();
    let owners: Vec<(u16, Option<&str>)> = snapshot
        .leases
        .iter()
        .map(|row| (row.shard, row.node_id.as_deref()))
        .collect();
    assert_eq!(
        owners,
        vec![(0, Some("a")), (1, Some("a")), (2, Some("b")), (3, Some("b"))]
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let (store, _database) = open().await;
    store
        .renew_leases(LeaseRequest {
            node_id: "a".into(),
            want: vec![5],
            release: Vec::new(),
            ttl_ms: 1,
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let taken = lease(&store, "b", vec![5], Vec::new()).await;
    assert_eq!(
        (shards(&taken), taken[0].epoch, taken[0].taken_over),
        (vec![5], 2, true)
    );
    // `a` coming back finds it gone.
    assert!(lease(&store, "a", vec![5], Vec::new()).await.is_empty());
}

#[tokio::test]
async fn claims_take_only_the_shards_the_node_holds() {
    let (store, _database) = open().await;
    lease(&store, "a", vec![1], Vec::new()).await;
    lease(&store, "b", vec![2], Vec::new()).await;
    let in_one = accept_in(&store, 1, "+6591000001", 1_000).await;
    let in_two = accept_in(&store, 2, "+6591000002", 1_000).await;
    let in_three = accept_in(&store, 3, "+6591000003", 1_000).await;
    let by_a: Vec<MessageId> = store
        .claim_due(2_000, 10, 60_000, "a")
        .await
        .unwrap()
        .iter()
        .map(|message| message.id)
        .collect();
    let by_b: Vec<MessageId> = store
        .claim_due(2_000, 10, 60_000, "b")
        .await
        .unwrap()
        .iter()
        .map(|message| message.id)
        .collect();
    assert_eq!((by_a, by_b), (vec![in_one], vec![in_two]));
    // Shard 3 is nobody's: its message waits.
    let view = store.message(in_three).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Accepted);
}

#[tokio::test]
async fn a_handover_fences_the_old_holder_and_frees_its_unsent_claims() {
    let (store, _database) = open().await;
    let held_by_a = lease(&store, "a", vec![7], Vec::new()).await;
    let id = accept_in(&store, 7, "+6591000007", 1_000).await;
    let claimed = store.claim_due(2_000, 10, 60_000, "a").await.unwrap();
    assert_eq!(claimed.len(), 1);

    // `a` stalls; the shard goes to `b` (released here; an expiry does the same).
    lease(&store, "a", Vec::new(), vec![7]).await;
    let held_by_b = lease(&store, "b", vec![7], Vec::new()).await;
    assert_eq!(held_by_b[0].epoch, 2);

    // `a` wakes up and tries to mark it `sending`: refused, nothing written.
    let sending = transition(id, Status::Sending, 3_000, Changes::default());
    let refused = store
        .record_fenced(vec![sending.clone()], vec![7], &fence("a", &held_by_a))
        .await
        .unwrap();
    assert_eq!(refused, vec![id]);
    assert_eq!(store.message(id).await.unwrap().unwrap().status, Status::Accepted);

    // `a`'s claim was freed by the takeover: `b` takes the message at once, and may send it.
    let claimed = store.claim_due(3_000, 10, 60_000, "b").await.unwrap();
    assert_eq!(claimed.iter().map(|message| message.id).collect::<Vec<_>>(), vec![id]);
    let refused = store
        .record_fenced(vec![sending], vec![7], &fence("b", &held_by_b))
        .await
        .unwrap();
    assert!(refused.is_empty());
    assert_eq!(store.message(id).await.unwrap().unwrap().status, Status::Sending);
}

#[tokio::test]
async fn a_node_that_leaves_hands_its_shards_over_at_once() {
    let (store, _database) = open().await;
    store
        .heartbeat(ClusterNode {
            id: "a".into(),
            address: "127.0.0.1:1".into(),
            started_at_ms: 1,
            heartbeat_at_ms: 0,
        })
        .await
        .unwrap();
    lease(&store, "a", vec![0, 1], Vec::new()).await;
    store.leave_cluster("a").await.unwrap();
    assert_eq!(shards(&lease(&store, "b", vec![0, 1], Vec::new()).await), vec![0, 1]);
    assert!(store.cluster_snapshot().await.unwrap().nodes.is_empty());
}

#[tokio::test]
async fn admin_changes_reach_the_change_feed() {
    let (store, _database) = open().await;
    store
        .audit(vec![AuditEntry {
            at_ms: 1,
            token_id: "t".into(),
            action: "noop".into(),
            target: None,
            outcome: "ok".into(),
        }])
        .await
        .unwrap();
    // An audit row alone changes nothing a node keeps.
    assert!(store.config_changes_since(0).await.unwrap().is_empty());
    store
        .token_write(
            TokenWrite::Revoke {
                id: "tok_unknown".into(),
                at_ms: 5_000,
            },
            AuditEntry {
                at_ms: 5_000,
                token_id: "bootstrap".into(),
                action: "token.revoke".into(),
                target: Some("tok_unknown".into()),
                outcome: "ok".into(),
            },
        )
        .await
        .unwrap();
    let changes = store.config_changes_since(0).await.unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|(_, kind, at)| (kind.as_str(), *at))
            .collect::<Vec<_>>(),
        vec![("tokens", 5_000)]
    );
    assert!(store.config_changes_since(5_001).await.unwrap().is_empty());
}
