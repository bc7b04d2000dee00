//! Store tests: each runs on a fresh database (on each backend) and reads rows back.

use super::fresh;
use crate::message::content::TextBody;
use crate::store::*;

mod cluster;
mod sensitive;
mod stats;

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
        sensitive: false,
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
    let claimed = store
        .claim_due(5_000, 10, 35_000, crate::store::TEST_NODE)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    // Leased: a second claim before the lease ends finds nothing.
    assert!(
        store
            .claim_due(6_000, 10, 36_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .is_empty()
    );
    // After the lease ends they can be claimed again (a crashed worker's messages come back).
    assert_eq!(
        store
            .claim_due(40_000, 10, 70_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .len(),
        3
    );
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
    assert!(
        store
            .claim_due(10_000, 10, 20_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .is_empty()
    );
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

/// Records `id` as sent (with a wamid) at `at_ms`, as the dispatcher does after Meta accepts.
async fn mark_sent(store: &Store, id: MessageId, at_ms: i64) {
    store
        .record(vec![transition(
            id,
            Status::Sent,
            at_ms,
            Changes {
                wamid: Some(Wamid(format!("wamid.{id}"))),
                ..Changes::default()
            },
        )])
        .await
        .unwrap();
}

#[tokio::test]
async fn sends_count_per_contact_and_category_over_24_hours_and_7_days() {
    const HOUR: i64 = 3_600_000;
    let (store, _directory) = fresh().await;
    let now = 1_000 * HOUR;
    let mut marketing = submission("+6591234567", Priority::Bulk, None, "sale");
    marketing.category = Category::Marketing;
    let mut sms = submission("+6591234567", Priority::Normal, None, "sms");
    sms.channel = crate::message::Channel::Sms;
    let mut service = submission("+6591234567", Priority::Normal, None, "reply");
    service.category = Category::Service;
    let sends = [
        (
            submission("+6591234567", Priority::Normal, None, "order"),
            now - 2 * HOUR,
        ),
        (marketing.clone(), now - 3 * 24 * HOUR),
        (marketing.clone(), now - HOUR),
        (marketing, now - 8 * 24 * HOUR),
        (sms, now),
        (service, now),
        (submission("+4915112345678", Priority::Normal, None, "other"), now),
    ];
    for (submission, at_ms) in sends {
        let message = new_message(submission, at_ms);
        let id = message.id;
        store.accept(vec![message]).await.unwrap();
        mark_sent(&store, id, at_ms).await;
    }
    // A status after the send is not a second send.
    let counts = store
        .send_counts(&["6591234567", "4915112345678", "6500000000"], now)
        .await
        .unwrap();
    let singapore = counts["6591234567"];
    assert_eq!(singapore.last_24h.utility, 1);
    assert_eq!(singapore.last_24h.marketing, 1, "the send 3 days ago is outside 24 h");
    assert_eq!(singapore.last_7d.marketing, 2, "the send 8 days ago is outside 7 days");
    assert_eq!(singapore.last_24h.service, 1);
    assert_eq!(
        singapore.last_24h.business_initiated(),
        2,
        "SMS and service are not counted"
    );
    assert_eq!(counts["4915112345678"].last_24h.utility, 1);
    assert!(!counts.contains_key("6500000000"));
    // The account: utility and marketing within 24 h, both recipients; not service, not SMS.
    assert_eq!(store.account_sends_24h(now).await.unwrap(), 3);
}

#[tokio::test]
async fn a_fallback_ends_the_original_fell_back_unless_it_was_read() {
    let (store, _directory) = fresh().await;
    let original = new_message(submission("+6591234567", Priority::High, None, "code 123"), 1_000);
    let original_id = original.id;
    let read = new_message(submission("+6591234568", Priority::High, None, "code 456"), 1_000);
    let read_id = read.id;
    store.accept(vec![original, read]).await.unwrap();
    for id in [original_id, read_id] {
        mark_sent(&store, id, 2_000).await;
    }
    store
        .record(vec![transition(read_id, Status::Read, 3_000, Changes::default())])
        .await
        .unwrap();

    let mut sms = submission("+6591234567", Priority::High, Some("fallback-1"), "code 123");
    sms.channel = crate::message::Channel::Sms;
    let follow_up = new_message(sms.clone(), 4_000);
    let follow_up_id = follow_up.id;
    assert_eq!(
        store.fall_back(original_id, follow_up).await.unwrap(),
        FallBackOutcome::FellBack {
            follow_up: follow_up_id
        }
    );
    let view = store.message(original_id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::FellBack);
    let last = view.history.last().unwrap();
    assert!(last.cause.contains(&follow_up_id.to_string()), "{}", last.cause);
    assert_eq!(
        store.message(follow_up_id).await.unwrap().unwrap().status,
        Status::Accepted
    );
    // Asked again (an event delivered twice): the original already fell back; nothing more.
    assert_eq!(
        store
            .fall_back(original_id, new_message(sms.clone(), 4_001))
            .await
            .unwrap(),
        FallBackOutcome::Skipped {
            status: Status::FellBack
        }
    );

    let mut late = sms;
    late.idempotency_key = Some("fallback-2".into());
    let late = new_message(late, 4_000);
    let late_id = late.id;
    assert_eq!(
        store.fall_back(read_id, late).await.unwrap(),
        FallBackOutcome::Skipped { status: Status::Read }
    );
    assert!(
        store.message(late_id).await.unwrap().is_none(),
        "nothing is sent for a read message"
    );
    assert_eq!(
        store
            .fall_back(
                MessageId::new(),
                new_message(submission("+6591234567", Priority::High, None, "x"), 1)
            )
            .await
            .unwrap(),
        FallBackOutcome::UnknownOriginal
    );
}
