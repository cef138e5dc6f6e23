//! The time index on DynamoDB (docs/design.md section 4, "The time index"), in the
//! emulator with the real `zofhook`:
//! - 120 events of one day, accepted by a default `serve --aws`, land on all 8 index partition
//!   keys of their day, none holding more than a quarter of them; the index holds keys only; and
//!   `events list --since 1h` pages through all of them exactly once, newest first;
//! - records with the same `received_at` page through once at any page size;
//! - a table of the old layout (`by_day`): `zofhook --aws migrate` gives its records their key,
//!   listings find them, and a second run moves nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{data_dir, event, post_signed, zofhook, Serve};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use zofhook_core::ledger::dynamodb::{
    time_shard, DynamoLedger, LEGACY_DAY_KEY, SHARD_KEY, TIME_INDEX, TIME_KEY, TIME_SHARDS,
};
use zofhook_core::ledger::{Ledger, Status};

/// Every page of `events list` with `extra` flags, following the cursor: the ids in order.
fn page_through(global: &[&str], extra: &[&str], limit: usize) -> Vec<String> {
    let env = e2e::aws_env();
    let limit_text = limit.to_string();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut args = global.to_vec();
        args.extend(["events", "list", "--json", "--limit", limit_text.as_str()]);
        args.extend(extra);
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let (code, out, err) = zofhook(&args, &env);
        assert_eq!(code, 0, "{err}");
        let page: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert!(
            page.len() <= limit,
            "{} records on a page of {limit}",
            page.len()
        );
        ids.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match err
            .lines()
            .find_map(|l| l.strip_prefix("next page: --cursor "))
        {
            Some(next) => cursor = Some(next.trim().to_string()),
            None => return ids,
        }
    }
    panic!("the cursor does not end");
}

fn assert_each_once(listed: &[String], expected: &HashSet<String>) {
    let unique: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a record on two pages: {listed:?}"
    );
    assert_eq!(&unique, expected, "records missing or extra");
}

/// The index entries of every shard of `day`: partition key -> ids. Each entry is checked to
/// hold the keys only.
async fn index_partitions(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    day: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut partitions = BTreeMap::new();
    for k in 0..TIME_SHARDS {
        let key = format!("{day}#{k}");
        let mut start = None;
        loop {
            let page = client
                .query()
                .table_name(table)
                .index_name(TIME_INDEX)
                .key_condition_expression("#p = :k")
                .expression_attribute_names("#p", SHARD_KEY)
                .expression_attribute_values(":k", AttributeValue::S(key.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            for item in page.items() {
                let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
                names.sort();
                assert_eq!(names, ["id", TIME_KEY, SHARD_KEY], "not keys only");
                let id = item["id"].as_s().unwrap().clone();
                partitions
                    .entry(key.clone())
                    .or_insert_with(Vec::new)
                    .push(id);
            }
            match page.last_evaluated_key() {
                Some(last) => start = Some(last.clone()),
                None => break,
            }
        }
    }
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_events_spread_over_eight_index_partitions_and_list_once() {
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    let (_, queue_url) = e2e::create_queue(&sdk).await;
    let dir = data_dir();
    let serve = Serve::start_aws(&dir, &table, &queue_url, &[], &e2e::aws_env());
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let http = reqwest::Client::new();
    let ids: Vec<String> = (0..120).map(|i| format!("evt_shard_{i:03}")).collect();
    for chunk in ids.chunks(10) {
        let mut sends = tokio::task::JoinSet::new();
        for id in chunk {
            let body = event(id, "org_a", "run_1");
            let (http, url, secret) = (http.clone(), serve.url.clone(), secret.trim().to_string());
            sends.spawn(async move { post_signed(&http, &url, &secret, &body).await.status() });
        }
        while let Some(status) = sends.join_next().await {
            assert_eq!(status.unwrap().as_u16(), 200, "{}", serve.stderr());
        }
    }
    let ledger = DynamoLedger::new(client.clone(), table.clone());
    let mut days = HashSet::new();
    for id in &ids {
        let record = ledger.get(id).await.unwrap().expect("recorded");
        days.insert(record.received_at[..10].to_string());
    }
    let mut partitions = BTreeMap::new();
    for day in &days {
        partitions.extend(index_partitions(&client, &table, day).await);
    }
    let indexed: Vec<&String> = partitions.values().flatten().collect();
    assert_eq!(indexed.len(), 120, "{partitions:?}");
    // One day (or two, if the test ran across midnight UTC): every shard of the day is used.
    assert!(
        partitions.len() >= 8,
        "{} partition keys: {:?}",
        partitions.len(),
        partitions.keys().collect::<Vec<_>>()
    );
    let fullest = partitions.values().map(Vec::len).max().unwrap();
    assert!(fullest <= 30, "one partition holds {fullest} of 120");
    for (key, in_it) in &partitions {
        for id in in_it {
            assert!(
                key.ends_with(&time_shard(id, "0000-00-00")[10..]),
                "{id} under {key}"
            );
        }
    }
    // Listed through the index, each once, newest first, at a page size that is not a divisor.
    let global = ["--aws", "--table-name", table.as_str()];
    let listed = page_through(&global, &["--since", "1h"], 25);
    assert_each_once(&listed, &ids.iter().cloned().collect());
    let mut times = Vec::new();
    for id in &listed {
        times.push(ledger.get(id).await.unwrap().unwrap().received_at);
    }
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {times:?}"
    );
}

/// Ties in `received_at` (milliseconds) across and within shards: the cursor carries the id
/// too, so no page size loses or repeats one; a status selection filters after the index.
#[tokio::test]
async fn records_received_in_the_same_millisecond_page_through_once() {
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    let ledger = DynamoLedger::new(client, table.clone());
    let at = zofhook_core::rfc3339(zofhook_core::now_ms() - 60_000);
    let mut all = HashSet::new();
    let mut failed = HashSet::new();
    for i in 0..40 {
        let id = format!("evt_tie_{i:02}");
        let status = if i % 3 == 0 {
            Status::Failed
        } else {
            Status::Processed
        };
        ledger
            .begin(&e2e::ledger_record(&id, &at, status), 0)
            .await
            .unwrap();
        if status == Status::Failed {
            failed.insert(id.clone());
        }
        all.insert(id);
    }
    let global = ["--aws", "--table-name", table.as_str()];
    for limit in [1, 7, 40] {
        let listed = page_through(&global, &["--since", "1h"], limit);
        assert_each_once(&listed, &all);
        // Equal times: by id, descending, as the embedded store orders them.
        let mut sorted = listed.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(listed, sorted);
    }
    let listed = page_through(&global, &["--since", "1h", "--status", "failed"], 4);
    assert_each_once(&listed, &failed);
}

/// A stack deployed before `by_time`, between the upgrade's two deployments: its table has both
/// indexes, and its records only the old key. Listings miss them until `migrate` has run; then
/// they are all listed once, and a second run moves nothing.
#[tokio::test]
async fn migrate_gives_the_old_layouts_records_their_key() {
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table_with(&sdk, true).await;
    let now = zofhook_core::now_ms();
    let mut old = HashSet::new();
    for i in 0..30 {
        let id = format!("evt_old_{i:02}");
        let at = zofhook_core::rfc3339(now - 120_000 + i);
        // The old layout's item: `received_day`, and neither key of the new index.
        let mut item: HashMap<String, AttributeValue> = zofhook_core::ledger::dynamodb::to_item(
            &e2e::ledger_record(&id, &at, Status::Processed),
        );
        item.remove(SHARD_KEY);
        item.remove(TIME_KEY);
        item.insert(LEGACY_DAY_KEY.into(), AttributeValue::S(at[..10].into()));
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
        old.insert(id);
    }
    let ledger = DynamoLedger::new(client, table.clone());
    let new_id = "evt_new_layout".to_string();
    let at = zofhook_core::rfc3339(now - 1_000);
    ledger
        .begin(&e2e::ledger_record(&new_id, &at, Status::Processed), 0)
        .await
        .unwrap();
    let global = ["--aws", "--table-name", table.as_str()];
    let before = page_through(&global, &["--since", "1h"], 50);
    assert_eq!(
        before,
        std::slice::from_ref(&new_id),
        "only the new layout's record"
    );

    let env = e2e::aws_env();
    let mut args = global.to_vec();
    args.push("migrate");
    let (code, out, err) = zofhook(&args, &env);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "gave 30 record(s) their key in the time index by_time; 1 had one already"
        ),
        "{err}"
    );
    let mut all = old.clone();
    all.insert(new_id);
    assert_each_once(&page_through(&global, &["--since", "1h"], 8), &all);
    // Repeatable: nothing left to move.
    let (code, out, err) = zofhook(&args, &env);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "gave 0 record(s) their key in the time index by_time; 31 had one already"
        ),
        "{err}"
    );
    // The records themselves are untouched by the move.
    let moved = ledger.get("evt_old_07").await.unwrap().unwrap();
    assert_eq!(moved.status, Status::Processed);
    assert_eq!(moved.body.as_deref(), Some("{}"));
}

/// Without `--aws` there is no index to move: `migrate` says so and succeeds.
#[test]
fn migrate_on_the_embedded_store_has_nothing_to_do() {
    let dir = data_dir();
    let (code, out, err) = zofhook(&["--data-dir", dir.to_str().unwrap(), "migrate"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("needs no migration"), "{out}");
}
