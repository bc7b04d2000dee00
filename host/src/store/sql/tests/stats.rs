//! Receipts and rates in the store: the change feed a committed batch sends, and the
//! per-minute rollups `Store::stats` reads (every `by`), with skipped and repeated statuses
//! and pruning.

use super::super::fresh;
use super::{new_message, submission, transition};
use crate::message::content::{Template, TemplateLanguage};
use crate::store::*;

/// A minute boundary, so the minutes below are whole ones.
const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;
/// When the messages are sent: the start of the second minute.
const SENT_AT: i64 = T0 + MINUTE;

fn template(name: &str) -> Content {
    Content::Template {
        template: Template {
            name: name.into(),
            language: TemplateLanguage {
                code: "en".into(),
                policy: None,
            },
            components: Vec::new(),
        },
    }
}

fn message(to: &str, category: Category, content: Option<Content>, at_ms: i64) -> NewMessage {
    let mut message = new_message(submission(to, Priority::Normal, None, "hi"), at_ms);
    message.submission.category = category;
    if let Some(content) = content {
        message.submission.content = content;
    }
    message
}

fn sent(id: MessageId, wamid: &str, sender: &str) -> Vec<Transition> {
    vec![
        transition(id, Status::Sending, SENT_AT - 10, Changes::default()),
        transition(
            id,
            Status::Sent,
            SENT_AT,
            Changes {
                wamid: Some(Wamid(wamid.into())),
                sender: Some(sender.into()),
                ..Changes::default()
            },
        ),
    ]
}

fn status(wamid: &str, status: Status, at_ms: i64, error_code: Option<i64>) -> StatusUpdate {
    StatusUpdate {
        wamid: Wamid(wamid.into()),
        status,
        at_ms,
        error_code,
        error_title: None,
        callback_data: None,
    }
}

#[tokio::test]
async fn the_change_feed_tells_each_committed_status_change() {
    let (store, _database) = fresh().await;
    let mut feed = store.subscribe_changes();
    let accepted = message("+6591234567", Category::Marketing, Some(template("promo")), T0);
    let id = accepted.id;
    store.accept(vec![accepted]).await.unwrap();
    store.record(sent(id, "wamid.F1", "1001")).await.unwrap();
    store
        .apply_statuses(vec![
            status("wamid.F1", Status::Delivered, SENT_AT + 500, None),
            // Repeated: ignored by the store, so not in the feed either.
            status("wamid.F1", Status::Delivered, SENT_AT + 600, None),
        ])
        .await
        .unwrap();
    store
        .apply_statuses(vec![status("wamid.F1", Status::Failed, SENT_AT + 900, Some(131026))])
        .await
        .unwrap();

    let mut changes = Vec::new();
    while let Ok(batch) = feed.try_recv() {
        changes.extend(batch.iter().cloned());
    }
    let change = |status, at_ms, error_code| Change {
        id,
        status,
        at_ms,
        category: Category::Marketing,
        template: Some("promo".into()),
        region: Some(65),
        error_code,
    };
    assert_eq!(
        changes,
        vec![
            change(Status::Accepted, T0, None),
            change(Status::Sending, SENT_AT - 10, None),
            change(Status::Sent, SENT_AT, None),
            change(Status::Delivered, SENT_AT + 500, None),
            change(Status::Failed, SENT_AT + 900, Some(131026)),
        ]
    );
}

#[tokio::test]
async fn a_batch_with_no_status_change_sends_nothing() {
    let (store, _database) = fresh().await;
    let mut feed = store.subscribe_changes();
    store
        .write_state(vec![StateWrite {
            plugin: "p".into(),
            key: "k".into(),
            value: Some("v".into()),
            expires_at_ms: None,
        }])
        .await
        .unwrap();
    assert!(matches!(
        feed.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}

/// Six messages over five minutes:
/// - m1 utility `order_update` to 65, sent from 1001, delivered after 1 s, read after 4 s;
/// - m2 utility `order_update` to 65, sent from 1001, read after 150 s without a delivered
///   (minute 3), then a late delivered (ignored);
/// - m3 marketing `promo` to 44, sent from 1002, failed with 131026 after 2 s;
/// - m4 service text to 65, sent from 1001, delivered after 2 s, delivered again (ignored);
/// - m5 utility text to 65, rejected in minute 0;
/// - m6 service text to 65, expired in minute 2.
async fn known_traffic(store: &Store) {
    let m1 = message("+6591234567", Category::Utility, Some(template("order_update")), T0);
    let m2 = message(
        "+6591234568",
        Category::Utility,
        Some(template("order_update")),
        T0 + 1_000,
    );
    let m3 = message(
        "+447700900123",
        Category::Marketing,
        Some(template("promo")),
        T0 + 2_000,
    );
    let m4 = message("+6591234569", Category::Service, None, T0 + 3_000);
    let m5 = message("+6591234570", Category::Utility, None, T0 + 4_000);
    let m6 = message("+6591234571", Category::Service, None, T0 + 5_000);
    let ids: Vec<MessageId> = [&m1, &m2, &m3, &m4, &m5, &m6].iter().map(|m| m.id).collect();
    store.accept(vec![m1, m2, m3, m4, m5, m6]).await.unwrap();
    store
        .record(vec![transition(
            ids[4],
            Status::Rejected,
            T0 + 4_500,
            Changes::default(),
        )])
        .await
        .unwrap();
    let mut sends = sent(ids[0], "wamid.1", "1001");
    sends.extend(sent(ids[1], "wamid.2", "1001"));
    sends.extend(sent(ids[2], "wamid.3", "1002"));
    sends.extend(sent(ids[3], "wamid.4", "1001"));
    store.record(sends).await.unwrap();
    store
        .apply_statuses(vec![
            status("wamid.1", Status::Delivered, SENT_AT + 1_000, None),
            status("wamid.3", Status::Failed, SENT_AT + 2_000, Some(131026)),
            status("wamid.4", Status::Delivered, SENT_AT + 2_000, None),
            status("wamid.4", Status::Delivered, SENT_AT + 2_500, None),
        ])
        .await
        .unwrap();
    store
        .apply_statuses(vec![status("wamid.1", Status::Read, SENT_AT + 4_000, None)])
        .await
        .unwrap();
    store
        .record(vec![transition(
            ids[5],
            Status::Expired,
            T0 + 2 * MINUTE + 5,
            Changes::default(),
        )])
        .await
        .unwrap();
    store
        .apply_statuses(vec![
            status("wamid.2", Status::Read, SENT_AT + 150_000, None),
            status("wamid.2", Status::Delivered, SENT_AT + 160_000, None),
        ])
        .await
        .unwrap();
}

fn counts([accepted, sent, delivered, read, failed, fell_back, rejected, expired]: [i64; 8]) -> Counts {
    Counts {
        accepted,
        sent,
        delivered,
        read,
        failed,
        fell_back,
        rejected,
        expired,
    }
}

async fn stats(store: &Store, by: StatsDimension) -> StatsReport {
    store
        .stats(&StatsQuery {
            from_ms: T0,
            to_ms: T0 + 5 * MINUTE,
            by,
        })
        .await
        .unwrap()
}

fn group(report: &StatsReport, key: &StatsKey) -> StatsFigures {
    report
        .groups
        .iter()
        .find(|group| &group.key == key)
        .unwrap_or_else(|| panic!("no group {key:?} in {report:#?}"))
        .figures
        .clone()
}

#[tokio::test]
async fn stats_by_category_count_every_step_with_rates_medians_and_codes() {
    let (store, _database) = fresh().await;
    known_traffic(&store).await;
    let report = stats(&store, StatsDimension::Category).await;
    assert_eq!((report.from_ms, report.to_ms), (T0, T0 + 5 * MINUTE));
    let keys: Vec<&StatsKey> = report.groups.iter().map(|group| &group.key).collect();
    assert_eq!(
        keys,
        [
            &StatsKey::Category(Category::Marketing),
            &StatsKey::Category(Category::Service),
            &StatsKey::Category(Category::Utility),
        ]
    );

    let total = &report.total;
    assert_eq!(total.counts, counts([6, 4, 3, 2, 1, 0, 1, 1]));
    assert_eq!(total.delivered_rate(), Some(0.75));
    assert_eq!(total.read_rate(), Some(0.6667));
    // Delivered after 1 s and 2 s: half the samples are in by the end of the (500 ms, 1 s]
    // bucket. Read after 4 s and 150 s: by the end of (2 s, 5 s].
    assert_eq!(total.median_ms_to_delivered, Some(1_000));
    assert_eq!(total.median_ms_to_read, Some(5_000));
    assert_eq!(total.failure_codes, vec![(131026, 1)]);

    let utility = group(&report, &StatsKey::Category(Category::Utility));
    assert_eq!(utility.counts, counts([3, 2, 2, 2, 0, 0, 1, 0]));
    assert_eq!((utility.delivered_rate(), utility.read_rate()), (Some(1.0), Some(1.0)));
    // One sample in (500 ms, 1 s]: taken as the middle of it.
    assert_eq!(utility.median_ms_to_delivered, Some(750));
    assert_eq!(utility.median_ms_to_read, Some(5_000));
    assert!(utility.failure_codes.is_empty());

    let marketing = group(&report, &StatsKey::Category(Category::Marketing));
    assert_eq!(marketing.counts, counts([1, 1, 0, 0, 1, 0, 0, 0]));
    assert_eq!((marketing.delivered_rate(), marketing.read_rate()), (Some(0.0), None));
    assert_eq!(
        (marketing.median_ms_to_delivered, marketing.median_ms_to_read),
        (None, None)
    );
    assert_eq!(marketing.failure_codes, vec![(131026, 1)]);

    let service = group(&report, &StatsKey::Category(Category::Service));
    assert_eq!(service.counts, counts([2, 1, 1, 0, 0, 0, 0, 1]));
    assert_eq!((service.delivered_rate(), service.read_rate()), (Some(1.0), Some(0.0)));
    assert_eq!(service.median_ms_to_delivered, Some(1_500));
    assert_eq!(service.median_ms_to_read, None);
}

#[tokio::test]
async fn stats_by_template_region_and_sender() {
    let (store, _database) = fresh().await;
    known_traffic(&store).await;

    let report = stats(&store, StatsDimension::Template).await;
    assert_eq!(report.groups.len(), 3);
    let order_update = group(&report, &StatsKey::Template(Some("order_update".into())));
    assert_eq!(order_update.counts, counts([2, 2, 2, 2, 0, 0, 0, 0]));
    assert_eq!(order_update.read_rate(), Some(1.0));
    assert_eq!(order_update.median_ms_to_delivered, Some(750));
    assert_eq!(order_update.median_ms_to_read, Some(5_000));
    let promo = group(&report, &StatsKey::Template(Some("promo".into())));
    assert_eq!(promo.counts, counts([1, 1, 0, 0, 1, 0, 0, 0]));
    assert_eq!(promo.failure_codes, vec![(131026, 1)]);
    let none = group(&report, &StatsKey::Template(None));
    assert_eq!(none.counts, counts([3, 1, 1, 0, 0, 0, 1, 1]));
    assert_eq!(none.median_ms_to_delivered, Some(1_500));

    let report = stats(&store, StatsDimension::Region).await;
    assert_eq!(report.groups.len(), 2);
    let singapore = group(&report, &StatsKey::Region(Some(65)));
    assert_eq!(singapore.counts, counts([5, 3, 3, 2, 0, 0, 1, 1]));
    assert_eq!(singapore.delivered_rate(), Some(1.0));
    assert_eq!(singapore.read_rate(), Some(0.6667));
    assert_eq!(singapore.median_ms_to_delivered, Some(1_000));
    let britain = group(&report, &StatsKey::Region(Some(44)));
    assert_eq!(britain.counts, counts([1, 1, 0, 0, 1, 0, 0, 0]));
    assert_eq!(britain.failure_codes, vec![(131026, 1)]);

    // Acceptance comes before a sender is known: counted under none.
    let report = stats(&store, StatsDimension::Sender).await;
    assert_eq!(report.groups.len(), 3);
    let unknown = group(&report, &StatsKey::Sender(None));
    assert_eq!(unknown.counts, counts([6, 0, 0, 0, 0, 0, 1, 1]));
    assert_eq!(unknown.delivered_rate(), None);
    let first = group(&report, &StatsKey::Sender(Some("1001".into())));
    assert_eq!(first.counts, counts([0, 3, 3, 2, 0, 0, 0, 0]));
    assert_eq!(first.median_ms_to_delivered, Some(1_000));
    let second = group(&report, &StatsKey::Sender(Some("1002".into())));
    assert_eq!(second.counts, counts([0, 1, 0, 0, 1, 0, 0, 0]));
    assert_eq!(second.failure_codes, vec![(131026, 1)]);
    assert_eq!(report.total.counts, counts([6, 4, 3, 2, 1, 0, 1, 1]));
}

#[tokio::test]
async fn stats_by_minute_have_every_minute_of_the_window_in_order() {
    let (store, _database) = fresh().await;
    known_traffic(&store).await;
    let report = stats(&store, StatsDimension::Minute).await;
    let minutes: Vec<(StatsKey, Counts)> = report
        .groups
        .iter()
        .map(|group| (group.key.clone(), group.figures.counts))
        .collect();
    assert_eq!(
        minutes,
        vec![
            (StatsKey::Minute(T0), counts([6, 0, 0, 0, 0, 0, 1, 0])),
            (StatsKey::Minute(T0 + MINUTE), counts([0, 4, 2, 1, 1, 0, 0, 0])),
            (StatsKey::Minute(T0 + 2 * MINUTE), counts([0, 0, 0, 0, 0, 0, 0, 1])),
            // The read that skipped delivered counts both.
            (StatsKey::Minute(T0 + 3 * MINUTE), counts([0, 0, 1, 1, 0, 0, 0, 0])),
            (StatsKey::Minute(T0 + 4 * MINUTE), Counts::default()),
        ]
    );
    let third = group(&report, &StatsKey::Minute(T0 + 3 * MINUTE));
    // Read after 150 s: the one sample, in (120 s, 300 s]. No delivered time: it was skipped.
    assert_eq!(third.median_ms_to_read, Some(210_000));
    assert_eq!(third.median_ms_to_delivered, None);
    assert_eq!(report.groups[4].figures.delivered_rate(), None);

    // A window that starts and ends inside minutes reads whole minutes.
    let inner = store
        .stats(&StatsQuery {
            from_ms: T0 + MINUTE + 30_000,
            to_ms: T0 + 2 * MINUTE + 1,
            by: StatsDimension::Minute,
        })
        .await
        .unwrap();
    assert_eq!((inner.from_ms, inner.to_ms), (T0 + MINUTE, T0 + 3 * MINUTE));
    assert_eq!(inner.total.counts, counts([0, 4, 2, 1, 1, 0, 0, 1]));
}

#[tokio::test]
async fn a_status_held_for_an_unrecorded_send_counts_when_the_send_is() {
    let (store, _database) = fresh().await;
    let accepted = message("+6591234567", Category::Utility, None, T0);
    let id = accepted.id;
    store.accept(vec![accepted]).await.unwrap();
    let report = store
        .apply_statuses(vec![status("wamid.H", Status::Delivered, SENT_AT + 300, None)])
        .await
        .unwrap();
    assert_eq!(report.held, 1);
    store.record(sent(id, "wamid.H", "1001")).await.unwrap();
    let report = stats(&store, StatsDimension::Category).await;
    assert_eq!(report.total.counts, counts([1, 1, 1, 0, 0, 0, 0, 0]));
    // One sample (300 ms) in (250 ms, 500 ms]: taken as the middle of it.
    assert_eq!(report.total.median_ms_to_delivered, Some(375));
}

#[tokio::test]
async fn cancels_and_fallbacks_are_told_and_fallbacks_counted() {
    let (store, _database) = fresh().await;
    let mut feed = store.subscribe_changes();
    let cancelled = message("+6591234567", Category::Utility, None, T0);
    let original = message("+6591234568", Category::Utility, None, T0);
    let (cancelled_id, original_id) = (cancelled.id, original.id);
    store.accept(vec![cancelled, original]).await.unwrap();
    assert_eq!(
        store.cancel(cancelled_id, T0 + 100).await.unwrap(),
        CancelOutcome::Cancelled
    );
    store.record(sent(original_id, "wamid.O", "1001")).await.unwrap();
    let mut follow_up = message("+6591234568", Category::Utility, None, SENT_AT + 5_000);
    follow_up.submission.channel = crate::message::Channel::Sms;
    let follow_up_id = follow_up.id;
    assert_eq!(
        store.fall_back(original_id, follow_up).await.unwrap(),
        FallBackOutcome::FellBack {
            follow_up: follow_up_id
        }
    );
    let mut told = Vec::new();
    while let Ok(batch) = feed.try_recv() {
        told.extend(batch.iter().map(|change| (change.id, change.status)));
    }
    assert_eq!(
        told,
        vec![
            (cancelled_id, Status::Accepted),
            (original_id, Status::Accepted),
            (cancelled_id, Status::Cancelled),
            (original_id, Status::Sending),
            (original_id, Status::Sent),
            (follow_up_id, Status::Accepted),
            (original_id, Status::FellBack),
        ]
    );
    let report = stats(&store, StatsDimension::Category).await;
    assert_eq!(report.total.counts, counts([3, 1, 0, 0, 0, 1, 0, 0]));
}

#[tokio::test]
async fn pruning_deletes_whole_old_minutes_only() {
    let (store, _database) = fresh().await;
    known_traffic(&store).await;
    let mut rounds = 0;
    while store.prune_stats(T0 + 2 * MINUTE).await.unwrap() > 0 {
        rounds += 1;
        assert!(rounds < 10, "pruning does not finish");
    }
    assert!(rounds >= 1);
    let report = stats(&store, StatsDimension::Minute).await;
    let minutes: Vec<Counts> = report.groups.iter().map(|group| group.figures.counts).collect();
    assert_eq!(
        minutes,
        vec![
            Counts::default(),
            Counts::default(),
            counts([0, 0, 0, 0, 0, 0, 0, 1]),
            counts([0, 0, 1, 1, 0, 0, 0, 0]),
            Counts::default(),
        ]
    );
    // The latency and failure rows of the pruned minutes went too.
    assert_eq!(report.total.median_ms_to_delivered, None);
    assert_eq!(report.total.median_ms_to_read, Some(210_000));
    assert!(report.total.failure_codes.is_empty());
}
