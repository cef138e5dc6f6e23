//! The receiver Lambda: an API Gateway HTTP API or function URL event (payload format 2.0) in,
//! `zofhook_core::receive` in the middle, the status and JSON body out.
//!
//! Built on `lambda_runtime` with `aws_lambda_events` types rather than `lambda_http`, because
//! `lambda_http` panics on a body that is not valid base64 and DESIGN.md wants a 400.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body as ResponseBody;
use http::{HeaderMap, HeaderName, HeaderValue};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use zofhook_core::aws::{dynamodb, secretsmanager, sqs};
use zofhook_core::config::{self, Config};
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::metrics::Metrics;
use zofhook_core::queue::sqs::SqsQueue;
use zofhook_core::receive::{Body, Delivery, Receiver};
use zofhook_core::secrets::secretsmanager::SecretsManagerSecrets;
use zofhook_core::secrets::{CachedSecrets, REFRESH_INTERVAL};

#[tokio::main]
async fn main() -> Result<(), Error> {
    zofhook_core::logging::init(true);
    let (receiver, metrics) = cold_start().await.inspect_err(|e| {
        tracing::error!(error = %e, "receiver cannot start");
    })?;
    let (receiver, metrics) = (Arc::new(receiver), Arc::new(metrics));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
            let (receiver, metrics) = (receiver.clone(), metrics.clone());
            async move { Ok::<_, Error>(handle(&receiver, &metrics, event.payload).await) }
        },
    ))
    .await
}

/// Settings, clients, secrets and warm connections, once per execution environment. A failure
/// of anything but the warm-up stops the start.
async fn cold_start() -> Result<(Receiver, Metrics), Error> {
    let env = |name: &str| std::env::var(name).ok();
    let config = Arc::new(Config::from_env()?);
    let table = config::required(env, config::TABLE_NAME_ENV, "the ledger table name")?;
    let queue_url = config::required(env, config::QUEUE_URL_ENV, "the queue URL")?;
    let secret_arn = config::required(env, config::SECRET_ARN_ENV, "the webhook secret's ARN")?;
    let sdk = zofhook_core::aws::sdk_config(&config).await;
    let ledger = DynamoLedger::new(dynamodb::Client::new(&sdk), table);
    let queue = SqsQueue::new(sqs::Client::new(&sdk), queue_url);
    let secrets = CachedSecrets::load(
        SecretsManagerSecrets::new(secretsmanager::Client::new(&sdk), secret_arn),
        REFRESH_INTERVAL,
    );
    // The DynamoDB and SQS connections open while the secret is fetched, so the first delivery
    // does not pay for them. Against the emulator this lengthens init by about 8 ms
    // (BENCHMARKS.md, which also says why it is kept).
    let (secrets, ()) = tokio::join!(secrets, warm_up(&ledger, &queue));
    let secrets = secrets?;
    let metrics = Metrics::new(config.metrics_namespace.clone(), "receiver");
    let receiver = Receiver::new(
        config,
        Arc::new(secrets),
        Arc::new(ledger),
        Arc::new(queue),
        zofhook_core::system_clock(),
    );
    Ok((receiver, metrics))
}

async fn warm_up(ledger: &DynamoLedger, queue: &SqsQueue) {
    // make bench builds a baseline without it.
    #[cfg(not(feature = "bench-no-warm-up"))]
    tokio::join!(ledger.warm_up(), queue.warm_up());
    #[cfg(feature = "bench-no-warm-up")]
    let _ = (ledger, queue);
}

async fn handle(
    receiver: &Receiver,
    metrics: &Metrics,
    request: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let started = std::time::Instant::now();
    let body = request.body.as_deref().unwrap_or("");
    let delivery = Delivery {
        method: &request.request_context.http.method,
        headers: &request.headers,
        body: if request.is_base64_encoded {
            Body::Base64(body)
        } else {
            Body::Raw(body.as_bytes())
        },
    };
    let reply = receiver.receive(delivery).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        metrics.delivery(&reply, elapsed_ms, zofhook_core::now_ms())
    );
    let mut headers = HeaderMap::new();
    for (name, value) in reply.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(reply.status());
    response.headers = headers;
    response.body = Some(ResponseBody::Text(reply.body.to_string()));
    response.is_base64_encoded = false;
    response
}
