//! The worker Lambda: an SQS batch in, `zofhook_core::process` per message, and the messages
//! that must be retried out as `batchItemFailures`. One bad message never fails the batch.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use zofhook_core::aws::dynamodb;
use zofhook_core::aws::{eventbridge, secretsmanager};
use zofhook_core::config::{self, Config};
use zofhook_core::downstream::Sinks;
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::metrics::Metrics;
use zofhook_core::process::Processor;
use zofhook_core::secrets::secretsmanager::secret_string;

#[tokio::main]
async fn main() -> Result<(), Error> {
    zofhook_core::logging::init(true);
    let (processor, metrics) = cold_start().await.inspect_err(|e| {
        tracing::error!(error = %e, "worker cannot start");
    })?;
    let (processor, metrics) = (Arc::new(processor), Arc::new(metrics));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (processor, metrics) = (processor.clone(), metrics.clone());
        async move { Ok::<_, Error>(handle(&processor, &metrics, event.payload).await) }
    }))
    .await
}

async fn cold_start() -> Result<(Processor, Metrics), Error> {
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::from_env()?;
    let table = config::required(env, config::TABLE_NAME_ENV, "the ledger table name")?;
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
    Ok((processor, Metrics::new(config.metrics_namespace, "worker")))
}

/// Handles the batch's messages concurrently (each holds its own lease); reports the ones to retry.
async fn handle(
    processor: &Arc<Processor>,
    metrics: &Metrics,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut tasks = tokio::task::JoinSet::new();
    let mut unsettled: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for message in event.records {
        unsettled.insert(message.message_id.clone().unwrap_or_default());
        let processor = processor.clone();
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let body = message.body.unwrap_or_default();
            let handled = processor.process(body.as_bytes()).await;
            (
                message.message_id.unwrap_or_default(),
                handled,
                started.elapsed(),
            )
        });
    }
    let mut response = SqsBatchResponse::default();
    while let Some(joined) = tasks.join_next().await {
        // A task that panicked stays in `unsettled` and is reported below.
        let Ok((id, handled, elapsed)) = joined else {
            continue;
        };
        unsettled.remove(&id);
        println!(
            "{}",
            metrics.message(
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
