//! The worker Lambda: an SQS batch in, `zofhook_core::process` per message, and the messages
//! that must be retried out as `batchItemFailures`. One bad message never fails the batch.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zofhook_core::aws::{dynamodb, sqs};
use zofhook_core::aws::{eventbridge, secretsmanager};
use zofhook_core::config::{self, Config};
use zofhook_core::downstream::Sinks;
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::metrics::Metrics;
use zofhook_core::process::Processor;
use zofhook_core::queue::sqs::SqsInbox;
use zofhook_core::queue::{Inbox, Received};
use zofhook_core::secrets::secretsmanager::secret_string;

#[tokio::main]
async fn main() -> Result<(), Error> {
    zofhook_core::logging::init(true);
    let (processor, metrics, retry) = cold_start().await.inspect_err(|e| {
        tracing::error!(error = %e, "worker cannot start");
    })?;
    let worker = Arc::new(Worker {
        processor: Arc::new(processor),
        metrics,
        retry,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let time_left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            Ok::<_, Error>(handle(&worker, event.payload, time_left).await)
        }
    }))
    .await
}

/// What a warm worker keeps between invocations.
struct Worker {
    processor: Arc<Processor>,
    metrics: Metrics,
    retry: Retry,
}

/// How a failed message is sent back: `SqsInbox::retry`, as in `serve --aws`, sets its
/// visibility to the retry backoff, so it returns after `RetryBaseSeconds`, doubling, rather
/// than after the queue's whole visibility timeout.
struct Retry {
    inbox: SqsInbox,
}

async fn cold_start() -> Result<(Processor, Metrics, Retry), Error> {
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::from_env()?;
    let table = config::required(env, config::TABLE_NAME_ENV, "the ledger table name")?;
    let queue_url = config::required(env, config::QUEUE_URL_ENV, "the event queue's URL")?;
    let sdk = zofhook_core::aws::sdk_config(&config).await;
    // The Zof API token lives in its own secret, which only the worker may read.
    let token = match env(config::ZOF_API_TOKEN_ARN_ENV).filter(|arn| !arn.trim().is_empty()) {
        Some(arn) => Some(secret_string(&secretsmanager::Client::new(&sdk), arn.trim()).await?),
        None => None,
    };
    let bus = config
        .event_bus_name
        .as_ref()
        .map(|_| eventbridge::Client::new(&sdk));
    let sinks = Sinks::from_config(&config, token, bus)?;
    let processor = Processor::new(
        &config,
        Arc::new(DynamoLedger::new(dynamodb::Client::new(&sdk), table)),
        Arc::new(sinks),
        zofhook_core::system_clock(),
    );
    let retry = Retry {
        inbox: SqsInbox::new(sqs::Client::new(&sdk), queue_url, None, &config),
    };
    Ok((
        processor,
        Metrics::new(config.metrics_namespace, "worker"),
        retry,
    ))
}

/// Handles the batch's messages concurrently (each holds its own lease); reports the ones to retry.
async fn handle(worker: &Arc<Worker>, event: SqsEvent, time_left: Duration) -> SqsBatchResponse {
    let mut tasks = tokio::task::JoinSet::new();
    let mut unsettled: BTreeSet<String> = BTreeSet::new();
    for message in event.records {
        unsettled.insert(message.message_id.clone().unwrap_or_default());
        let worker = worker.clone();
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let body = message.body.as_deref().unwrap_or_default();
            let sent_at_ms = message
                .attributes
                .get("SentTimestamp")
                .and_then(|t| t.parse().ok());
            let (event_id, handled) = worker
                .processor
                .handle_within(body.as_bytes(), sent_at_ms, time_left)
                .await;
            if !handled.acknowledged() {
                worker.retry.back_off(&message).await;
            }
            (
                message.message_id.unwrap_or_default(),
                event_id,
                handled,
                started.elapsed(),
            )
        });
    }
    let mut response = SqsBatchResponse::default();
    while let Some(joined) = tasks.join_next().await {
        // A task that panicked stays in `unsettled` and is reported below.
        let Ok((id, event_id, handled, elapsed)) = joined else {
            continue;
        };
        unsettled.remove(&id);
        println!(
            "{}",
            worker.metrics.message(
                &event_id,
                &handled,
                elapsed.as_secs_f64() * 1000.0,
                zofhook_core::now_ms()
            )
        );
        if !handled.acknowledged() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    // Never acknowledge a message whose result is unknown.
    for id in unsettled {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
        .batch_item_failures
        .sort_by(|a, b| a.item_identifier.cmp(&b.item_identifier));
    response
}

impl Retry {
    /// Best effort: if SQS refuses, the message still returns after its visibility timeout.
    async fn back_off(&self, message: &SqsMessage) {
        let Some(handle) = message.receipt_handle.clone() else {
            return;
        };
        let received = Received {
            handle,
            // The retry needs only the receipt and the count.
            body: Vec::new(),
            receive_count: message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            sent_at_ms: None,
        };
        if let Err(e) = self.inbox.retry(&received).await {
            tracing::warn!(error = %e, "cannot set the retry backoff; the visibility timeout applies");
        }
    }
}
