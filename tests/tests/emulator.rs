//! The emulator the tests run on keeps DynamoDB's promise that the conditional writes to one
//! item are applied one at a time (`infra/moto-server.py`). moto's own server does not: it
//! checks a condition and writes the item with no lock, so two racing writes with the same
//! condition can both pass, which DynamoDB never allows and the delivery protocol relies on
//! (RELIABILITY.md, "The emulator's race"). Each round here puts an item `enqueued`, then 8
//! clients race to move it to `processing` on the condition that it is still `enqueued`, as
//! workers' claims do: exactly one may win. The thread switch interval is 1 µs, which makes the
//! race likely instead of rare.

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::Emulator;

/// Rounds, up to `rounds`, until one has more than one winner; how many rounds had one.
async fn race(emulator: &Emulator, rounds: usize, stop_at_first: bool) -> usize {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&emulator.url)
        .region(aws_config::Region::new(e2e::REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "emulator",
        ))
        .load()
        .await;
    let (client, table) = e2e::create_table(&sdk).await;
    let mut doubled = 0;
    for round in 0..rounds {
        let id = format!("race_{round}");
        client
            .put_item()
            .table_name(&table)
            .item("id", AttributeValue::S(id.clone()))
            .item("status", AttributeValue::S("enqueued".into()))
            .send()
            .await
            .unwrap();
        let mut claims = tokio::task::JoinSet::new();
        for n in 0..8 {
            let (client, table, id) = (client.clone(), table.clone(), id.clone());
            claims.spawn(async move {
                client
                    .update_item()
                    .table_name(table)
                    .key("id", AttributeValue::S(id))
                    .update_expression("SET #s = :processing, lease_token = :t")
                    .condition_expression("#s = :enqueued")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(
                        ":processing",
                        AttributeValue::S("processing".into()),
                    )
                    .expression_attribute_values(":enqueued", AttributeValue::S("enqueued".into()))
                    .expression_attribute_values(":t", AttributeValue::S(n.to_string()))
                    .send()
                    .await
                    .is_ok()
            });
        }
        let mut winners = 0;
        while let Some(won) = claims.join_next().await {
            winners += usize::from(won.unwrap());
        }
        assert!(winners >= 1, "round {round}: nobody won");
        if winners > 1 {
            doubled += 1;
            if stop_at_first {
                return doubled;
            }
        }
    }
    doubled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_conditional_write_of_racing_ones_wins_on_the_tests_emulator() {
    let emulator = Emulator::start(&[("ZOFHOOK_EMULATOR_SWITCH_US", "1")]);
    assert_eq!(
        race(&emulator, 300, false).await,
        0,
        "two conditional writes both won"
    );
}

/// The race is real without the lock: this is why the tests do not run moto's server as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_motos_own_server_two_racing_conditional_writes_can_both_win() {
    let emulator = Emulator::start(&[
        ("ZOFHOOK_EMULATOR_SWITCH_US", "1"),
        ("ZOFHOOK_EMULATOR_UNLOCKED", "1"),
    ]);
    assert!(
        race(&emulator, 3000, true).await > 0,
        "no round of 3,000 had two winners: moto may have become atomic, and infra/moto-server.py's lock may no longer be needed"
    );
}
