//! The same ledger scenario on all three stores, and the embedded queue's SQS-like semantics.

use e2e::conformance::exercise;
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::ledger::memory::MemoryLedger;
use zofhook_core::ledger::sqlite::SqliteLedger;

#[tokio::test]
async fn memory_ledger_follows_the_rules() {
    exercise(&MemoryLedger::new(), "mem").await;
}

#[tokio::test]
async fn sqlite_ledger_follows_the_rules_and_keeps_them_across_reopen() {
    let dir = e2e::data_dir();
    let ledger = SqliteLedger::new(zofhook_core::sqlite::Db::open(&dir).unwrap());
    exercise(&ledger, "sql").await;
    drop(ledger);
    // Durable: a new process sees the same records.
    let reopened = SqliteLedger::new(zofhook_core::sqlite::Db::open(&dir).unwrap());
    let record = zofhook_core::ledger::Ledger::get(&reopened, "sql_life")
        .await
        .unwrap()
        .unwrap();
    // The scenario ends with the event replayed and claimed again.
    assert_eq!(record.status, zofhook_core::ledger::Status::Processing);
    assert_eq!(record.replays, 1);
    let everything = zofhook_core::ledger::Selection {
        limit: 100,
        ..Default::default()
    };
    let listed = zofhook_core::ledger::Ledger::list(&reopened, &everything, None)
        .await
        .unwrap();
    assert_eq!(listed.records.len(), 8);
}

#[tokio::test]
async fn dynamodb_ledger_follows_the_rules() {
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    exercise(&DynamoLedger::new(client, table), "ddb").await;
}

#[tokio::test]
async fn the_embedded_queue_has_visibility_receive_counts_and_a_dead_letter_state() {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use zofhook_core::queue::sqlite::SqliteQueue;
    use zofhook_core::queue::{Inbox, Queue};

    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock_now = now.clone();
    let dir = e2e::data_dir();
    let db = zofhook_core::sqlite::Db::open(&dir).unwrap();
    let backoff = zofhook_core::queue::Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(2),
    };
    let q = SqliteQueue::new(
        db,
        Duration::from_secs(30),
        2,
        backoff,
        Arc::new(move || clock_now.load(Ordering::SeqCst)),
    );
    q.send("a", b"first").await.unwrap();
    q.send("b", b"second").await.unwrap();

    let got = q.receive(10).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.body.as_slice()).collect::<Vec<_>>(),
        vec![&b"first"[..], b"second"]
    );
    assert!(got.iter().all(|m| m.receive_count == 1));
    // Invisible while held.
    assert!(q.receive(10).await.unwrap().is_empty());
    q.ack(&got[1]).await.unwrap();
    // A stale receipt acknowledges nothing.
    let stale = zofhook_core::queue::Received {
        handle: got[0].handle.replace('-', "0"),
        ..got[0].clone()
    };
    q.ack(&stale).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), (1, 0));

    // Visible again after the visibility timeout; a retry backs off, then dead-letters.
    now.fetch_add(30_000, Ordering::SeqCst);
    let again = q.receive(10).await.unwrap();
    assert_eq!((again.len(), again[0].receive_count), (1, 2));
    q.retry(&again[0]).await.unwrap();
    assert!(q.receive(10).await.unwrap().is_empty(), "backing off");
    // A restart's release leaves a message in backoff waiting.
    assert_eq!(q.release_in_flight().await.unwrap(), 0);
    assert!(q.receive(10).await.unwrap().is_empty(), "still backing off");
    now.fetch_add(2_000, Ordering::SeqCst);
    assert!(
        q.receive(10).await.unwrap().is_empty(),
        "MaxReceiveCount 2 reached: dead-lettered"
    );
    assert_eq!(q.depth().await.unwrap(), (0, 1));
    assert_eq!(q.redrive().await.unwrap(), 1);
    let back = q.receive(10).await.unwrap();
    assert_eq!(
        (back[0].body.as_slice(), back[0].receive_count),
        (&b"first"[..], 1)
    );
    // Taken by a consumer that died: released at once, not after the visibility timeout.
    assert!(q.receive(10).await.unwrap().is_empty());
    assert_eq!(q.release_in_flight().await.unwrap(), 1);
    let released = q.receive(10).await.unwrap();
    assert_eq!((released.len(), released[0].receive_count), (1, 2));
    // The dead consumer's receipt acknowledges nothing now.
    q.ack(&back[0]).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), (1, 0));
    let back = released;
    assert!(q
        .ack(&zofhook_core::queue::Received {
            handle: "nonsense".into(),
            ..back[0].clone()
        })
        .await
        .is_err());
}
