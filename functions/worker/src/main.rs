//! The worker Lambda: an SQS batch in, `zofhook_core::process` per message, and the messages
//! that must be retried out as `batchItemFailures`. One bad message never fails the batch.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use zofhook_core::aws::dynamodb;
use zofhook_core::config::{self, Config};
use zofhook_core::downstream::LogDownstream;
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::metrics::Metrics;
use zofhook_core::process::Processor;

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
    let processor = Processor::new(
        &config,
        Arc::new(DynamoLedger::new(dynamodb::Client::new(&sdk), table)),
        Arc::new(LogDownstream),
        zofhook_core::system_clock(),
    );
    Ok((processor, Metrics::new(config.metrics_namespace, "worker")))
}

async fn handle(processor: &Processor, metrics: &Metrics, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let started = std::time::Instant::now();
        let handled = processor
            .process(message.body.as_deref().unwrap_or("").as_bytes())
            .await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "{}",
            metrics.message(&handled, elapsed_ms, zofhook_core::now_ms())
        );
        if !handled.acknowledged() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}
