//! What one delivery costs in AWS calls, counted by a proxy between the real SDK clients and the
//! emulator: the receiver's pipeline (the code the receiver Lambda runs) on DynamoDB and SQS,
//! then the worker's. The proxy holds the put's answer until the send has arrived, so "the put
//! and the send went out together" is proven, not hoped for on a busy machine.

use aws_config::SdkConfig;
use e2e::fault::{sequential_round_trips, Call, Fault, FaultProxy, Rule};
use e2e::{create_queue, create_table, event, sdk, sign};
use std::sync::Arc;
use std::time::Duration;
use zofhook_core::config::Config;
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::ledger::Ledger;
use zofhook_core::process::{Handled, Processor};
use zofhook_core::queue::sqs::SqsQueue;
use zofhook_core::receive::{Body, Delivery, Receiver, Verdict};
use zofhook_core::secrets::StaticSecrets;
use zofhook_core::signature::Secrets;

const SECRET: &str = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ=";

struct Rig {
    proxy: FaultProxy,
    receiver: Receiver,
    /// Another process on the same table and queue (another Lambda environment).
    elsewhere: Receiver,
    processor: Processor,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// The SDK configuration of the functions, pointed at the proxy.
async fn through(proxy: &FaultProxy, config: &Config) -> SdkConfig {
    let url = proxy.start().await;
    sdk()
        .await
        .into_builder()
        .endpoint_url(url)
        .timeout_config(zofhook_core::aws::timeouts(config))
        .retry_config(
            aws_config::retry::RetryConfig::standard().with_max_attempts(config.store_max_attempts),
        )
        .build()
}

/// Default settings, except a store timeout long enough that the held put never times out:
/// a pipeline that waited for the put before sending would show three round trips, not fail
/// on a timeout.
async fn rig() -> Rig {
    let emulator = sdk().await;
    let (_, table) = create_table(&emulator).await;
    let (sqs, queue_url) = create_queue(&emulator).await;
    let config = Config::from_lookup(|k| match k {
        "ZOFHOOK_STORE_TIMEOUT_MS" => Some("7000".into()),
        "ZOFHOOK_STORE_MAX_ATTEMPTS" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    let proxy = FaultProxy::new(&e2e::endpoint());
    let aws = through(&proxy, &config).await;
    let ledger: Arc<dyn Ledger> = Arc::new(DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&aws),
        table,
    ));
    let queue = Arc::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(&aws),
        queue_url.clone(),
    ));
    let receiver = || {
        Receiver::new(
            Arc::new(config.clone()),
            Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
            ledger.clone(),
            queue.clone(),
            zofhook_core::system_clock(),
        )
    };
    let (receiver, elsewhere) = (receiver(), receiver());
    let processor = Processor::new(
        &config,
        ledger,
        Arc::new(zofhook_core::downstream::LogDownstream),
        zofhook_core::system_clock(),
    );
    Rig {
        proxy,
        receiver,
        elsewhere,
        processor,
        sqs,
        queue_url,
    }
}

impl Rig {
    /// One delivery to `receiver`, the put's answer held until a send arrives (for at most 3 s):
    /// its verdict and calls.
    async fn deliver_to(&self, receiver: &Receiver, body: &[u8]) -> (Verdict, Vec<Call>) {
        self.proxy.rule(Rule {
            operation: "PutItem",
            body_contains: None,
            fault: Fault::AnswerAfter("SendMessage", Duration::from_secs(3)),
            times: 1,
        });
        let (name, value) = sign(SECRET, body);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        let reply = receiver
            .receive(Delivery {
                method: &http::Method::POST,
                headers: &headers,
                body: Body::Raw(body),
            })
            .await;
        self.proxy.clear();
        (reply.verdict, self.proxy.take_calls())
    }
}

fn operations(calls: &[Call]) -> Vec<&str> {
    let mut ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    ops.sort();
    ops
}

fn dynamodb_writes(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| ["PutItem", "UpdateItem", "DeleteItem"].contains(&c.operation.as_str()))
        .count()
}

#[tokio::test]
async fn an_accepted_delivery_is_two_round_trips_and_a_duplicate_one() {
    let rig = rig().await;
    let body = event("evt_trips", "org_a", "run_1");

    let (verdict, accepted) = rig.deliver_to(&rig.receiver, &body).await;
    let calls = &accepted;
    assert_eq!(verdict, Verdict::Accepted);
    // The conditional put and the send, together; then the `enqueued` mark.
    assert_eq!(
        operations(calls),
        ["PutItem", "SendMessage", "UpdateItem"],
        "{calls:#?}"
    );
    assert_eq!(sequential_round_trips(calls), 2, "{calls:#?}");
    assert!(calls[2..].iter().all(|c| c.operation == "UpdateItem"));

    // A duplicate to the process that began the id: the refused put alone (its old item
    // returned), 1 round trip. (The proxy holds the put for a send that never comes: 3 s.)
    let (verdict, calls) = rig.deliver_to(&rig.receiver, &body).await;
    assert_eq!(verdict, Verdict::Duplicate);
    assert_eq!(operations(&calls), ["PutItem"], "{calls:#?}");
    assert_eq!(sequential_round_trips(&calls), 1, "{calls:#?}");
    // To another process: the refused put and the send beside it, still 1 round trip.
    let (verdict, calls) = rig.deliver_to(&rig.elsewhere, &body).await;
    assert_eq!(verdict, Verdict::Duplicate);
    assert_eq!(operations(&calls), ["PutItem", "SendMessage"], "{calls:#?}");
    assert_eq!(sequential_round_trips(&calls), 1, "{calls:#?}");

    // The worker: both messages. The first claims and records the outcome; the other
    // process's copy finds the event processed.
    let messages = e2e::drain(&rig.sqs, &rig.queue_url).await;
    assert_eq!(messages.len(), 2);
    let mut handled = Vec::new();
    for m in &messages {
        let sent = m
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp))
            .and_then(|t| t.parse().ok());
        handled.push(
            rig.processor
                .process_sent(m.body().unwrap().as_bytes(), sent)
                .await,
        );
    }
    assert_eq!(handled, [Handled::Processed, Handled::AlreadyProcessed]);
    let worker = rig.proxy.take_calls();
    // The claim and the outcome for the event; a refused claim for the copy (a conditional
    // write that fails still costs a write unit).
    assert_eq!(
        operations(&worker),
        ["UpdateItem", "UpdateItem", "UpdateItem"]
    );
    // Over the event's life: the put and the mark, the claim and the outcome.
    assert_eq!(
        dynamodb_writes(&accepted) + dynamodb_writes(&worker[..2]),
        4
    );
}

/// A pipeline that sent only after its put was answered would be caught: here the put is held
/// until a send arrives, for at most 3 s, and the count shows three round trips.
#[test]
fn sequential_calls_count_one_round_trip_each() {
    let t0 = std::time::Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let call = |op: &str, arrived: u64, answered: u64| Call {
        operation: op.to_string(),
        body: String::new(),
        arrived: at(arrived),
        answered: Some(at(answered)),
    };
    let sequential = [
        call("PutItem", 0, 10),
        call("SendMessage", 11, 20),
        call("UpdateItem", 21, 30),
    ];
    assert_eq!(sequential_round_trips(&sequential), 3);
    let together = [
        call("PutItem", 0, 10),
        call("SendMessage", 1, 9),
        call("UpdateItem", 11, 30),
    ];
    assert_eq!(sequential_round_trips(&together), 2);
}
