//! Sensitive bodies in the store: sealed at rest under the active key, opened with any
//! configured key, a clear error when the key is gone, purged once read or after the TTL.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};

use super::super::super::TestDatabase;
use super::super::Db;
use super::{new_message, submission, transition};
use crate::store::*;

const TTL_MS: u64 = 60_000;

fn key(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

fn sealing(keys: &[(&str, u8)], active: Option<&str>) -> Sealing {
    let keys: BTreeMap<String, String> = keys.iter().map(|(id, byte)| ((*id).to_owned(), key(*byte))).collect();
    Sealing {
        keyring: Keyring::new(&keys, active).unwrap(),
        sensitive_ttl_ms: TTL_MS,
    }
}

async fn open(database: &TestDatabase, sealing: Sealing) -> Store {
    let store = Store::open_with(&database.url, 1_000, sealing).await.unwrap();
    super::super::hold_every_shard(&store).await;
    store
}

fn sensitive(body: &str, at_ms: i64) -> NewMessage {
    let mut message = new_message(submission("+6591234567", Priority::High, None, body), at_ms);
    // As the API computes it: a sha256 of the request (the helper's own would show the body).
    message.request_hash = crate::api::messages::request_hash(&message.submission);
    message.sensitive = true;
    message
}

fn text(body: &str) -> Content {
    Content::Text {
        text: crate::message::content::TextBody {
            body: body.into(),
            preview_url: false,
        },
    }
}

/// The stored `content` column as it is in the database.
async fn raw_content(database: &TestDatabase, id: MessageId) -> String {
    let pool = sqlx::Pool::<Db>::connect(&database.url).await.unwrap();
    let content: String = sqlx::query_scalar("SELECT content FROM messages WHERE id = $1")
        .bind(id.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    content
}

#[tokio::test]
async fn a_sensitive_body_is_sealed_at_rest_and_read_back_in_the_clear() {
    let directory = TestDatabase::new().await;
    let store = open(&directory, sealing(&[("k1", 1)], Some("k1"))).await;
    assert!(store.can_seal());
    let message = sensitive("your code is 424242", 1_000);
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    assert!(!directory.holds_bytes("424242"), "the body is on disk in the clear");
    assert!(raw_content(&directory, id).await.starts_with("wasp-aes256gcm-v1:k1:"));

    let view = store.message(id).await.unwrap().unwrap();
    assert!(view.sensitive && !view.purged && view.unreadable.is_none());
    assert_eq!(view.content, Some(text("your code is 424242")));

    let claimed = store
        .claim_due(2_000, 10, 40_000, crate::store::TEST_NODE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].content, text("your code is 424242"));
    // The deadline is capped at the TTL.
    assert_eq!(claimed[0].expires_at_ms, Some(1_000 + 60_000));

    // The body as sent, rewritten by a policy, is sealed too.
    store
        .record(vec![transition(
            id,
            Status::Sending,
            2_001,
            Changes {
                content_sent: Some((text("rewritten 777111"), vec!["p".into()])),
                sensitive: true,
                ..Changes::default()
            },
        )])
        .await
        .unwrap();
    assert!(
        !directory.holds_bytes("777111"),
        "the body sent is on disk in the clear"
    );
    let view = store.message(id).await.unwrap().unwrap();
    assert_eq!(view.content_sent, Some(text("rewritten 777111")));
    assert_eq!(view.rewritten_by, vec!["p".to_owned()]);

    // Plain messages are stored as they always were.
    let plain = new_message(submission("+6591234568", Priority::High, None, "plain 5555"), 1_000);
    store.accept(vec![plain]).await.unwrap();
    assert!(directory.holds_bytes("plain 5555"));
}

#[tokio::test]
async fn without_an_active_key_a_sensitive_message_is_refused() {
    let directory = TestDatabase::new().await;
    let store = open(&directory, Sealing::default()).await;
    assert!(!store.can_seal());
    let error = store.accept(vec![sensitive("nope", 1_000)]).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Sealing {
                source: SealError::NoActiveKey,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn keys_rotate_and_a_body_whose_key_is_gone_is_an_error_for_that_message() {
    let directory = TestDatabase::new().await;
    let first = open(&directory, sealing(&[("k1", 1)], Some("k1"))).await;
    let old = sensitive("old body", 1_000);
    let old_id = old.id;
    first.accept(vec![old]).await.unwrap();
    drop(first);

    let rotated = open(&directory, sealing(&[("k1", 1), ("k2", 2)], Some("k2"))).await;
    let new = sensitive("new body", 1_001);
    let new_id = new.id;
    rotated.accept(vec![new]).await.unwrap();
    assert!(
        raw_content(&directory, new_id)
            .await
            .starts_with("wasp-aes256gcm-v1:k2:")
    );
    assert_eq!(
        rotated.message(old_id).await.unwrap().unwrap().content,
        Some(text("old body"))
    );
    assert_eq!(
        rotated.message(new_id).await.unwrap().unwrap().content,
        Some(text("new body"))
    );
    drop(rotated);

    // k1 dropped from the config: the old message cannot be read, the new one still can.
    let without_k1 = open(&directory, sealing(&[("k2", 2)], Some("k2"))).await;
    let view = without_k1.message(old_id).await.unwrap().unwrap();
    assert_eq!(view.content, None);
    let error = view.unreadable.unwrap();
    assert!(error.contains("\"k1\""), "{error}");
    let claimed = without_k1
        .claim_due(2_000, 10, 40_000, crate::store::TEST_NODE)
        .await
        .unwrap();
    let old = claimed.iter().find(|message| message.id == old_id).unwrap();
    assert!(old.unreadable.as_deref().is_some_and(|error| error.contains("k1")));
    let new = claimed.iter().find(|message| message.id == new_id).unwrap();
    assert_eq!(new.unreadable, None);
    assert_eq!(new.content, text("new body"));
    drop(without_k1);

    // The right id with the wrong bytes: an error too, not a crash.
    let wrong = open(&directory, sealing(&[("k2", 9)], Some("k2"))).await;
    let view = wrong.message(new_id).await.unwrap().unwrap();
    assert!(view.unreadable.is_some_and(|error| error.contains("does not decrypt")));
}

#[tokio::test]
async fn a_read_sensitive_message_is_purged_with_a_history_row() {
    let directory = TestDatabase::new().await;
    let store = open(&directory, sealing(&[("k1", 1)], Some("k1"))).await;
    let message = sensitive("read me 313131", 1_000);
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    store
        .record(vec![transition(
            id,
            Status::Sent,
            1_001,
            Changes {
                wamid: Some(Wamid("wamid.S".into())),
                ..Changes::default()
            },
        )])
        .await
        .unwrap();
    let status = |status, at_ms| StatusUpdate {
        wamid: Wamid("wamid.S".into()),
        status,
        at_ms,
        error_code: None,
        error_title: None,
        callback_data: Some(crate::message::callback_reference(id, true)),
    };
    store
        .apply_statuses(vec![status(Status::Delivered, 1_002)])
        .await
        .unwrap();
    assert!(
        !store.message(id).await.unwrap().unwrap().purged,
        "delivered keeps the body"
    );
    store.apply_statuses(vec![status(Status::Read, 1_003)]).await.unwrap();
    let view = store.message(id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Read);
    assert!(view.purged && view.sensitive);
    assert_eq!(view.content, None);
    assert_eq!(view.content_sent, None);
    let last = view.history.last().unwrap();
    assert_eq!((last.status, last.cause.as_str()), (Status::Read, PURGED_CAUSE));
    assert_eq!(raw_content(&directory, id).await, "");
    // A repeated read changes nothing and adds no row.
    store.apply_statuses(vec![status(Status::Read, 1_004)]).await.unwrap();
    assert_eq!(
        store.message(id).await.unwrap().unwrap().history.len(),
        view.history.len()
    );
}

#[tokio::test]
async fn the_ttl_purges_every_sensitive_body_and_ends_unsent_ones_expired() {
    let directory = TestDatabase::new().await;
    let store = open(&directory, sealing(&[("k1", 1)], Some("k1"))).await;
    let waiting = sensitive("waiting", 1_000);
    let sent = sensitive("sent", 1_000);
    let young = sensitive("young", 50_000);
    let plain = new_message(submission("+6591234568", Priority::High, None, "plain"), 1_000);
    let (waiting_id, sent_id, young_id, plain_id) = (waiting.id, sent.id, young.id, plain.id);
    store.accept(vec![waiting, sent, young, plain]).await.unwrap();
    store
        .record(vec![transition(
            sent_id,
            Status::Sent,
            1_001,
            Changes {
                wamid: Some(Wamid("wamid.T".into())),
                ..Changes::default()
            },
        )])
        .await
        .unwrap();

    assert_eq!(store.purge_sensitive(60_999).await.unwrap(), SensitivePurge::default());
    let purge = store.purge_sensitive(61_000).await.unwrap();
    assert_eq!(purge, SensitivePurge { purged: 2, expired: 1 });

    let view = store.message(waiting_id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Expired);
    assert!(view.purged);
    let statuses: Vec<(Status, &str)> = view
        .history
        .iter()
        .map(|entry| (entry.status, entry.cause.as_str()))
        .collect();
    assert_eq!(statuses.last(), Some(&(Status::Expired, PURGED_CAUSE)));
    assert_eq!(statuses[statuses.len() - 2].0, Status::Expired);
    // Never sent afterwards: not pending any more.
    assert!(
        store
            .claim_due(70_000, 10, 100_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .iter()
            .all(|m| m.id != waiting_id)
    );

    let view = store.message(sent_id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Sent);
    assert!(view.purged);
    assert_eq!(view.history.last().unwrap().cause, PURGED_CAUSE);
    assert!(!store.message(young_id).await.unwrap().unwrap().purged);
    assert!(!store.message(plain_id).await.unwrap().unwrap().purged);
    assert_eq!(store.purge_sensitive(61_000).await.unwrap(), SensitivePurge::default());
}

#[tokio::test]
async fn a_leased_message_is_left_to_its_worker_by_the_ttl_sweep() {
    let directory = TestDatabase::new().await;
    let store = open(&directory, sealing(&[("k1", 1)], Some("k1"))).await;
    let message = sensitive("leased", 1_000);
    let id = message.id;
    store.accept(vec![message]).await.unwrap();
    assert_eq!(
        store
            .claim_due(1_000, 10, 1_000_000, crate::store::TEST_NODE)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.purge_sensitive(100_000).await.unwrap(), SensitivePurge::default());
    store.release_leases().await.unwrap();
    assert_eq!(
        store.purge_sensitive(100_000).await.unwrap(),
        SensitivePurge { purged: 1, expired: 1 }
    );
    assert!(store.message(id).await.unwrap().unwrap().purged);
}

#[tokio::test]
async fn each_sensitive_send_is_audited_without_its_body() {
    let directory = TestDatabase::new().await;
    let store = open(&directory, sealing(&[("k1", 1)], Some("k1"))).await;
    let message = sensitive("audited 999000", 1_000);
    let id = message.id;
    let plain = new_message(submission("+6591234568", Priority::High, None, "plain"), 1_000);
    store.accept_audited(vec![message, plain], "tok_a").await.unwrap();
    let rows = store
        .audit_log(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let entry = &rows[0].entry;
    assert_eq!(entry.action, SENSITIVE_SEND_ACTION);
    assert_eq!(entry.target, Some(id.to_string()));
    assert_eq!(entry.token_id, "tok_a");
    assert!(!directory.holds_bytes("999000"));
}

#[tokio::test]
async fn the_fallback_of_a_sensitive_message_is_sensitive_too() {
    let directory = TestDatabase::new().await;
    let store = open(&directory, sealing(&[("k1", 1)], Some("k1"))).await;
    let original = sensitive("first try 246810", 1_000);
    let original_id = original.id;
    store.accept(vec![original]).await.unwrap();
    store
        .record(vec![transition(
            original_id,
            Status::Sent,
            1_001,
            Changes {
                wamid: Some(Wamid("wamid.F".into())),
                ..Changes::default()
            },
        )])
        .await
        .unwrap();
    // A plugin's follow-up, built from the body it saw in the clear.
    let mut follow_up = new_message(submission("+6591234567", Priority::High, None, "again 135790"), 2_000);
    follow_up.request_hash = crate::api::messages::request_hash(&follow_up.submission);
    follow_up.submission.channel = crate::message::Channel::Sms;
    let FallBackOutcome::FellBack { follow_up: id } = store.fall_back(original_id, follow_up).await.unwrap() else {
        panic!("the fallback did not happen");
    };
    let view = store.message(id).await.unwrap().unwrap();
    assert!(view.sensitive);
    assert_eq!(view.content, Some(text("again 135790")));
    assert!(!directory.holds_bytes("135790") && !directory.holds_bytes("246810"));
}
