//! One scenario every `Ledger` must pass the same way: the in-memory, SQLite and DynamoDB
//! ledgers are three statements of one set of rules.

use serde_json::json;
use zofhook_core::event::body_sha256;
use zofhook_core::ledger::{Begin, Claim, Ledger, Noted, Record, ReplayStart, Selection, Status};
use zofhook_core::rfc3339;

const T: i64 = 1_780_000_000_000;

fn record(id: &str, status: Status, lease_until: i64, token: &str) -> Record {
    Record {
        id: id.into(),
        status,
        kind: "run.completed".into(),
        body_sha256: body_sha256(id.as_bytes()),
        organization_id: Some("org_a".into()),
        run_id: Some("run_1".into()),
        received_at: zofhook_core::rfc3339(T),
        lease_until,
        lease_token: Some(token.into()),
        delivery_token: Some(token.into()),
        attempts: 0,
        outcome: None,
        error: None,
        processed_at: None,
        expires_at: T / 1000 + 3600,
        body: Some(id.to_string()),
        replays: 0,
    }
}

/// Runs the scenario; `prefix` keeps ids apart when stores are shared.
pub async fn exercise(ledger: &dyn Ledger, prefix: &str) {
    let id = format!("{prefix}_life");
    let id = id.as_str();
    let first = record(id, Status::Received, T + 30_000, "r1");
    assert_eq!(ledger.begin(&first, T).await.unwrap(), Begin::Started);
    assert_eq!(
        ledger
            .begin(&record(id, Status::Received, T + 30_000, "r2"), T)
            .await
            .unwrap(),
        Begin::Exists(Box::new(first.clone()))
    );
    assert!(!ledger.mark_enqueued(id, "r2").await.unwrap());
    assert!(ledger.mark_enqueued(id, "r1").await.unwrap());
    assert!(
        !ledger.mark_enqueued(id, "r1").await.unwrap(),
        "only from received"
    );
    // Enqueued is never taken over by a delivery, however old its lease.
    assert!(matches!(
        ledger
            .begin(&record(id, Status::Received, T, "r3"), T + 60_000)
            .await
            .unwrap(),
        Begin::Exists(_)
    ));

    let claim = record(id, Status::Processing, T + 180_000, "w1");
    let Claim::Claimed(claimed) = ledger.claim(&claim, true, T).await.unwrap() else {
        panic!("claim")
    };
    assert_eq!(
        (claimed.status, claimed.lease_token.as_deref()),
        (Status::Processing, Some("w1"))
    );
    assert!(matches!(
        ledger
            .claim(
                &record(id, Status::Processing, T + 180_000, "w2"),
                true,
                T + 1
            )
            .await
            .unwrap(),
        Claim::Busy(_)
    ));
    assert!(!ledger.fail(id, "w2", "x", None).await.unwrap());
    let partial = json!({"sinks": {"notify": "ok"}});
    assert!(ledger
        .fail(id, "w1", "sink down", Some(&partial))
        .await
        .unwrap());
    let failed = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(
        failed.outcome,
        Some(partial),
        "the partial outcome is kept for the retry"
    );
    assert_eq!(
        (failed.status, failed.attempts, failed.error.as_deref()),
        (Status::Failed, 1, Some("sink down"))
    );

    let Claim::Claimed(_) = ledger
        .claim(
            &record(id, Status::Processing, T + 180_000, "w3"),
            true,
            T + 2,
        )
        .await
        .unwrap()
    else {
        panic!("reclaim")
    };
    assert!(!ledger.finish(id, "w1", &json!({}), "t").await.unwrap());
    assert!(ledger
        .finish(
            id,
            "w3",
            &json!({"status": "passed"}),
            "2026-05-20T12:00:02Z"
        )
        .await
        .unwrap());
    let done = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Processed);
    assert_eq!(done.outcome, Some(json!({"status": "passed"})));
    assert_eq!(done.error, None);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.processed_at.as_deref(), Some("2026-05-20T12:00:02Z"));
    assert!(matches!(
        ledger
            .claim(
                &record(id, Status::Processing, T + 180_000, "w4"),
                true,
                T + 3
            )
            .await
            .unwrap(),
        Claim::Processed(_)
    ));

    // An expired processing lease is taken over.
    let stale = format!("{prefix}_stale");
    ledger
        .claim(&record(&stale, Status::Processing, T + 10, "w1"), true, T)
        .await
        .unwrap();
    assert!(matches!(
        ledger
            .claim(
                &record(&stale, Status::Processing, T + 1000, "w2"),
                true,
                T + 11
            )
            .await
            .unwrap(),
        Claim::Claimed(_)
    ));

    // Rollback needs the token.
    let gone = format!("{prefix}_gone");
    ledger
        .begin(&record(&gone, Status::Received, T + 30_000, "g1"), T)
        .await
        .unwrap();
    assert!(!ledger.abandon(&gone, "g2").await.unwrap());
    assert!(ledger.abandon(&gone, "g1").await.unwrap());
    assert_eq!(ledger.get(&gone).await.unwrap(), None);

    // A stuck `received` is taken over once its lease has run out.
    let stuck = format!("{prefix}_stuck");
    ledger
        .begin(&record(&stuck, Status::Received, T + 5, "s1"), T)
        .await
        .unwrap();
    assert!(matches!(
        ledger
            .begin(&record(&stuck, Status::Received, T + 30_000, "s2"), T + 5)
            .await
            .unwrap(),
        Begin::Exists(_)
    ));
    assert_eq!(
        ledger
            .begin(&record(&stuck, Status::Received, T + 30_000, "s2"), T + 6)
            .await
            .unwrap(),
        Begin::Started
    );

    // Retention over: the id starts afresh.
    let old = format!("{prefix}_old");
    let mut expired = record(&old, Status::Processed, 0, "o1");
    expired.expires_at = T / 1000 - 1;
    ledger.begin(&expired, T - 10_000_000).await.unwrap();
    assert_eq!(
        ledger
            .begin(&record(&old, Status::Received, T + 30_000, "o2"), T)
            .await
            .unwrap(),
        Begin::Started
    );

    // A claim that may not create (its message is younger than a receive lease) finds no
    // record and leaves none.
    let early = format!("{prefix}_early");
    assert_eq!(
        ledger
            .claim(&record(&early, Status::Processing, T + 1000, "w"), false, T)
            .await
            .unwrap(),
        Claim::Absent
    );
    assert_eq!(ledger.get(&early).await.unwrap(), None);
    // Another body under a recorded id: a conflicting delivery's message. Refused, whatever the
    // status, and the record is left as it was.
    let recorded = format!("{prefix}_foreign");
    let mine = record(&recorded, Status::Received, T + 30_000, "f1");
    assert_eq!(ledger.begin(&mine, T).await.unwrap(), Begin::Started);
    assert!(ledger.mark_enqueued(&recorded, "f1").await.unwrap());
    let stored = ledger.get(&recorded).await.unwrap().unwrap();
    for create in [true, false] {
        let mut foreign = record(&recorded, Status::Processing, T + 1000, "w");
        foreign.body_sha256 = body_sha256(b"another body");
        assert_eq!(
            ledger.claim(&foreign, create, T).await.unwrap(),
            Claim::Foreign(stored.clone())
        );
    }
    assert_eq!(ledger.get(&recorded).await.unwrap(), Some(stored));
    // The same body claims it, with or without leave to create.
    assert!(matches!(
        ledger
            .claim(
                &record(&recorded, Status::Processing, T + 1000, "w"),
                false,
                T
            )
            .await
            .unwrap(),
        Claim::Claimed(_)
    ));

    // A claim with no record creates it.
    let orphan = format!("{prefix}_orphan");
    assert!(matches!(
        ledger
            .claim(&record(&orphan, Status::Processing, T + 1000, "w"), true, T)
            .await
            .unwrap(),
        Claim::Claimed(_)
    ));
    assert_eq!(
        ledger
            .get(&orphan)
            .await
            .unwrap()
            .unwrap()
            .run_id
            .as_deref(),
        Some("run_1")
    );
    // ... with its body and its place in the time index, like any other.
    let made = ledger.get(&orphan).await.unwrap().unwrap();
    assert_eq!(made.body.as_deref(), Some(orphan.as_str()));

    // The record keeps the token of the delivery that wrote it through every claim.
    let done = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(done.delivery_token.as_deref(), Some("r1"));

    // Replay: a processed event goes back to `enqueued`, its outcome cleared so every sink runs
    // again, attempts kept, one more replay; its body comes back byte for byte.
    let ReplayStart::Started(replayed) = ledger.replay(id, T + 4).await.unwrap() else {
        panic!("replay of a processed event")
    };
    assert_eq!(
        (
            replayed.status,
            replayed.replays,
            replayed.attempts,
            &replayed.outcome
        ),
        (Status::Enqueued, 1, 1, &None)
    );
    assert_eq!(replayed.body.as_deref(), Some(id));
    let stored = ledger.get(id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.replays), (Status::Enqueued, 1));
    // A live claim is never doubled.
    let Claim::Claimed(_) = ledger
        .claim(
            &record(id, Status::Processing, T + 180_000, "w5"),
            true,
            T + 5,
        )
        .await
        .unwrap()
    else {
        panic!("claim after replay")
    };
    assert_eq!(
        ledger.replay(id, T + 6).await.unwrap(),
        ReplayStart::Live(Status::Processing)
    );
    assert_eq!(
        ledger.replay(&format!("{prefix}_never"), T).await.unwrap(),
        ReplayStart::NotFound
    );
    let bodiless = format!("{prefix}_bodiless");
    let mut old_style = record(&bodiless, Status::Failed, 0, "b1");
    old_style.body = None;
    ledger.begin(&old_style, T).await.unwrap();
    assert_eq!(
        ledger.replay(&bodiless, T + 1).await.unwrap(),
        ReplayStart::NoBody
    );

    // Listing: every record exactly once across pages, newest first, and the filters.
    let around = Selection {
        since: Some(zofhook_core::rfc3339(T - 86_400_000)),
        until: Some(zofhook_core::rfc3339(T + 86_400_000)),
        limit: 3,
        ..Selection::default()
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ledger.list(&around, cursor.as_deref()).await.unwrap();
        assert!(page.records.len() <= 3);
        seen.extend(page.records.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a record listed twice: {seen:?}");
    let mine: Vec<&String> = seen.iter().filter(|i| i.starts_with(prefix)).collect();
    assert_eq!(mine.len(), 7, "{seen:?}");
    let failed_only = Selection {
        statuses: vec![Status::Failed],
        ..around.clone()
    };
    let failed = ledger.list(&failed_only, None).await.unwrap();
    assert!(failed.records.iter().all(|r| r.status == Status::Failed));
    assert!(failed.records.iter().any(|r| r.id == bodiless));
    let later = Selection {
        since: Some(zofhook_core::rfc3339(T + 1)),
        ..around
    };
    assert!(ledger.list(&later, None).await.unwrap().records.is_empty());

    // What `zofhook listen` follows: the keys of the records received since a time, oldest
    // first; and the replays noted since a time.
    let now = zofhook_core::now_ms();
    let fresh = format!("{prefix}_fresh");
    let mut recent = record(&fresh, Status::Received, now + 30_000, "f1");
    recent.received_at = rfc3339(now);
    recent.expires_at = now / 1000 + 3600;
    assert_eq!(ledger.begin(&recent, now).await.unwrap(), Begin::Started);
    let keys = ledger.accepted_since(&rfc3339(now - 1000)).await.unwrap();
    assert!(keys.contains(&(rfc3339(now), fresh.clone())), "{keys:?}");
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
    let after = ledger.accepted_since(&rfc3339(now + 1)).await.unwrap();
    assert!(!after.iter().any(|(_, i)| *i == fresh), "{after:?}");
    ledger.note_replay(&fresh, 1, now).await.unwrap();
    ledger.note_replay(&fresh, 2, now + 5).await.unwrap();
    let notes = ledger.replays_since(&rfc3339(now - 1000)).await.unwrap();
    let mine: Vec<&Noted> = notes.iter().filter(|n| n.id == fresh).collect();
    let note = |n: u32, at: i64| Noted {
        at: rfc3339(at),
        id: fresh.clone(),
        n,
    };
    assert_eq!(mine, [&note(1, now), &note(2, now + 5)]);
    let later_notes = ledger.replays_since(&rfc3339(now + 1)).await.unwrap();
    let mine: Vec<&Noted> = later_notes.iter().filter(|n| n.id == fresh).collect();
    assert_eq!(mine, [&note(2, now + 5)]);
    // A note is not a record: listings and reads never meet one.
    let everything = Selection {
        since: Some(rfc3339(now - 1000)),
        limit: 100,
        ..Selection::default()
    };
    let listed = ledger.list(&everything, None).await.unwrap();
    assert_eq!(
        listed
            .records
            .iter()
            .filter(|r| r.id.starts_with(prefix))
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [fresh.as_str()]
    );
}
