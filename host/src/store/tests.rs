//! Store tests: each runs on a fresh database file and reads rows back.

use super::*;
use crate::message::content::TextBody;

async fn fresh() -> (Store, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wasp.db", directory.path().display());
    (Store::open(&url, 1_000).await.unwrap(), directory)
}

fn submission(to: &str, priority: Priority, key: Option<&str>, body: &str) -> Submission {
    Submission {
        to: PhoneNumber::parse(to).unwrap(),
        channel: crate::message::Channel::Whatsapp,
        category: Category::Utility,
        priority,
        idempotency_key: key.map(str::to_owned),
        tags: vec!["order".into()],
        content: Content::Text {
            text: TextBody {
                body: body.into(),
                preview_url: false,
            },
        },
    }
}

fn new_message(submission: Submission, at_ms: i64) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        shard: submission.to.shard(256),
        request_hash: format!("{:?}", submission.content),
        submission,
        at_ms,
        expires_at_ms: None,
    }
}

fn transition(id: MessageId, status: Status, at_ms: i64, changes: Changes) -> Transition {
    Transition {
        id,
        status,
        at_ms,
        cause: format!("test: {status}"),
        changes,
    }
}

#[tokio::test]
async fn accepted_messages_read_back_with_history() {
    let (store, _directory) = fresh().await;
    let message = new_message(submission("+6591234567", Priority::High, None, "hi"), 1_000);
    let id = message.id;
    assert_eq!(
        store.accept(vec![message]).await.unwrap(),
        vec![AcceptOutcome::Accepted { id }]
    );
    let view = store.message(id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Accepted);
    assert_eq!(view.to.as_str(), "+6591234567");
    assert_eq!(view.tags, vec!["order".to_owned()]);
    assert_eq!(view.history.len(), 1);
    assert_eq!(view.history[0].status, Status::Accepted);
    assert!(store.message(MessageId::new()).await.unwrap().is_none());
}

#[tokio::test]
async fn idempotency_key_returns_the_first_message_and_catches_changed_bodies() {
    let (store, _directory) = fresh().await;
    let first = new_message(submission("+6591234567", Priority::High, Some("k1"), "hi"), 1_000);
    let first_id = first.id;
    let again = new_message(submission("+6591234567", Priority::High, Some("k1"), "hi"), 1_001);
    let changed = new_message(submission("+6591234567", Priority::High, Some("k1"), "other"), 1_002);
    let outcomes = store.accept(vec![first, again]).await.unwrap();
    assert_eq!(outcomes[0], AcceptOutcome::Accepted { id: first_id });
    assert_eq!(outcomes[1], AcceptOutcome::Duplicate { id: first_id });
    let outcomes = store.accept(vec![changed]).await.unwrap();
    assert_eq!(outcomes[0], AcceptOutcome::KeyReused { id: first_id });
}

#[tokio::test]
async fn claims_go_by_priority_then_age_and_lease_the_rows() {
    let (store, _directory) = fresh().await;
    let bulk = new_message(submission("+6591234567", Priority::Bulk, None, "b"), 1_000);
    let critical = new_message(submission("+6591234568", Priority::Critical, None, "c"), 2_000);
    let high = new_message(submission("+6591234569", Priority::High, None, "h"), 3_000);
    let ids = [critical.id, high.id, bulk.id];
    store.accept(vec![bulk, critical, high]).await.unwrap();
    let claimed = store.claim_due(5_000, 10, 35_000).await.unwrap();
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    // Leased: a second claim before the lease ends finds nothing.
    assert!(store.claim_due(6_000, 10, 36_000).await.unwrap().is_empty());
    // After the lease ends they can be claimed again (a crashed worker's messages come back).
    assert_eq!(store.claim_due(40_000, 10, 70_000).await.unwrap().len(), 3);
    assert_eq!(store.release_leases().await.unwrap(), 3);
}

#[tokio::test]
async fn transitions_set_fields_and_keep_history() {
    let (store, _directory) = fresh().await;
    let message = new_message(submission("+6591234567", Priority::High, None, "hi"), 1_000);
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    let rewritten = Content::Text {
        text: TextBody {
            body: "rewritten".into(),
            preview_url: false,
        },
    };
    store
        .record(vec![
            transition(
                id,
                Status::Queued,
                1_001,
                Changes {
                    content_sent: Some((rewritten.clone(), vec!["button-limit".into()])),
                    ..Changes::default()
                },
            ),
            transition(id, Status::Sending, 1_002, Changes::default()),
            transition(
                id,
                Status::Sent,
                1_003,
                Changes {
                    wamid: Some(Wamid("wamid.A".into())),
                    ..Changes::default()
                },
            ),
        ])
        .await
        .unwrap();
    let view = store.message(id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Sent);
    assert_eq!(view.content_sent, Some(rewritten));
    assert_eq!(view.rewritten_by, vec!["button-limit".to_owned()]);
    assert_eq!(view.wamid, Some(Wamid("wamid.A".into())));
    let statuses: Vec<Status> = view.history.iter().map(|entry| entry.status).collect();
    assert_eq!(
        statuses,
        [Status::Accepted, Status::Queued, Status::Sending, Status::Sent]
    );
    // Sent is not pending: nothing to claim.
    assert!(store.claim_due(10_000, 10, 20_000).await.unwrap().is_empty());
}

#[tokio::test]
async fn statuses_only_move_forward_and_early_ones_are_held() {
    let (store, _directory) = fresh().await;
    let message = new_message(submission("+6591234567", Priority::High, None, "hi"), 1_000);
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    let update = |status, at_ms| StatusUpdate {
        wamid: Wamid("wamid.B".into()),
        status,
        at_ms,
        error_code: None,
        error_title: None,
        callback_data: None,
    };
    // Delivered arrives before the send is recorded: held, not lost.
    let report = store
        .apply_statuses(vec![update(Status::Delivered, 2_000)])
        .await
        .unwrap();
    assert_eq!(report.held, 1);
    store
        .record(vec![transition(
            id,
            Status::Sent,
            1_500,
            Changes {
                wamid: Some(Wamid("wamid.B".into())),
                ..Changes::default()
            },
        )])
        .await
        .unwrap();
    assert_eq!(store.message(id).await.unwrap().unwrap().status, Status::Delivered);
    // Read, then a late delivered and a repeated read: both ignored.
    let report = store
        .apply_statuses(vec![
            update(Status::Read, 3_000),
            update(Status::Delivered, 2_500),
            update(Status::Read, 3_000),
        ])
        .await
        .unwrap();
    let applied: Vec<(MessageId, Status)> = report
        .applied
        .iter()
        .map(|applied| (applied.id, applied.update.status))
        .collect();
    assert_eq!(report.applied[0].recipient, "+6591234567");
    assert_eq!(applied, vec![(id, Status::Read)]);
    assert_eq!(report.ignored, 2);
    let view = store.message(id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Read);
    let statuses: Vec<Status> = view.history.iter().map(|entry| entry.status).collect();
    assert_eq!(
        statuses,
        [Status::Accepted, Status::Sent, Status::Delivered, Status::Read]
    );
}

#[tokio::test]
async fn late_failure_after_delivery_is_kept_with_its_code() {
    let (store, _directory) = fresh().await;
    let message = new_message(submission("+6591234567", Priority::High, None, "hi"), 1_000);
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    store
        .record(vec![transition(
            id,
            Status::Sent,
            1_500,
            Changes {
                wamid: Some(Wamid("wamid.C".into())),
                ..Changes::default()
            },
        )])
        .await
        .unwrap();
    let failed = StatusUpdate {
        wamid: Wamid("wamid.C".into()),
        status: Status::Failed,
        at_ms: 3_000,
        error_code: Some(131047),
        error_title: Some("Re-engagement message".into()),
        callback_data: None,
    };
    store.apply_statuses(vec![failed]).await.unwrap();
    let view = store.message(id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Failed);
    assert_eq!(view.error_code, Some(131047));
    assert!(view.history.last().unwrap().cause.contains("131047"));
}

#[tokio::test]
async fn plugin_state_round_trips_and_expires() {
    let (store, _directory) = fresh().await;
    store
        .write_state(vec![
            StateWrite {
                plugin: "p".into(),
                key: "a".into(),
                value: Some("1".into()),
                expires_at_ms: None,
            },
            StateWrite {
                plugin: "p".into(),
                key: "b".into(),
                value: Some("2".into()),
                expires_at_ms: Some(5_000),
            },
            StateWrite {
                plugin: "q".into(),
                key: "a".into(),
                value: Some("3".into()),
                expires_at_ms: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.load_state("p", 1_000).await.unwrap().len(), 2);
    assert_eq!(store.load_state("p", 6_000).await.unwrap().len(), 1);
    store
        .write_state(vec![StateWrite {
            plugin: "p".into(),
            key: "a".into(),
            value: None,
            expires_at_ms: None,
        }])
        .await
        .unwrap();
    assert_eq!(store.load_state("p", 1_000).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_held_status_names_its_message_by_callback_data() {
    let (store, _directory) = fresh().await;
    let message = new_message(submission("+6591234567", Priority::High, None, "hi"), 1_000);
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    let early = StatusUpdate {
        wamid: Wamid("wamid.EARLY".into()),
        status: Status::Sent,
        at_ms: 2_000,
        error_code: None,
        error_title: None,
        callback_data: Some(id.to_string()),
    };
    assert_eq!(store.apply_statuses(vec![early]).await.unwrap().held, 1);
    let held = store.held_wamids(&[id, MessageId::new()]).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[&id], Wamid("wamid.EARLY".into()));
}
