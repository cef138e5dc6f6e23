//! The receiver Lambda: every HTTP front door Lambda has, through `lambda_http` (API Gateway
//! HTTP API and function URLs with payload 2.0, REST API with payload 1.0 and multi-value
//! headers, an Application Load Balancer), into `zofhook_core::receive`, and the status and JSON
//! body back in the shape that front door expects.
//!
//! `lambda_http` decodes an `isBase64Encoded` body with an `expect`; a body that is not valid
//! base64 is taken out of the event first and handed to the pipeline, which answers 400.

use base64::Engine;
use lambda_http::request::LambdaRequest;
use lambda_http::{service_fn, Adapter, Body as HttpBody, Error, LambdaEvent, Request, Service};
use std::sync::Arc;
use zofhook_core::aws::{dynamodb, secretsmanager, sqs};
use zofhook_core::config::{self, Config};
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::metrics::Metrics;
use zofhook_core::queue::sqs::SqsQueue;
use zofhook_core::receive::{Body, Delivery, Receiver};
use zofhook_core::secrets::secretsmanager::SecretsManagerSecrets;
use zofhook_core::secrets::{CachedSecrets, SecretSource, REFRESH_INTERVAL};

#[tokio::main]
async fn main() -> Result<(), Error> {
    zofhook_core::logging::init(true);
    let (receiver, metrics) = cold_start().await.inspect_err(|e| {
        tracing::error!(error = %e, "receiver cannot start");
    })?;
    let front = Arc::new(Front { receiver, metrics });
    lambda_runtime::run(service_fn(move |mut event: LambdaEvent<LambdaRequest>| {
        let malformed = take_malformed_base64(&mut event.payload);
        keep_every_header_value(&mut event.payload);
        let front = front.clone();
        // lambda_http's adapter turns the event into an `http::Request`, and our answer into
        // the response shape of the front door it came from (ALB's `statusDescription`, the
        // REST API's `multiValueHeaders`, …).
        let mut adapter = Adapter::from(service_fn(move |request: Request| {
            let (front, malformed) = (front.clone(), malformed.clone());
            async move { Ok::<_, Error>(front.respond(&request, malformed.as_deref()).await) }
        }));
        adapter.call(event)
    }))
    .await
}

/// What a warm receiver keeps between invocations.
struct Front {
    receiver: Receiver,
    metrics: Metrics,
}

impl Front {
    /// One delivery through the pipeline; `malformed` is the event's body when it claimed to
    /// be base64 and was not (the pipeline answers that 400).
    async fn respond(
        &self,
        request: &Request,
        malformed: Option<&str>,
    ) -> http::Response<HttpBody> {
        let started = std::time::Instant::now();
        let delivery = Delivery {
            method: request.method(),
            headers: request.headers(),
            body: match malformed {
                Some(text) => Body::Base64(text),
                None => Body::Raw(request.body().as_ref()),
            },
        };
        let reply = self.receiver.answer(delivery).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "{}",
            self.metrics
                .delivery(&reply, elapsed_ms, zofhook_core::now_ms())
        );
        reply.into()
    }
}

/// A REST API and a multi-value ALB send each header twice: every value in
/// `multiValueHeaders`, the last one again in `headers`, and lambda_http lets the single value
/// replace the list. A signature header sent twice (two signatures during a rotation) keeps
/// every value this way.
fn keep_every_header_value(payload: &mut LambdaRequest) {
    let (single, multi) = match payload {
        LambdaRequest::ApiGatewayV1(r) => (&mut r.headers, &r.multi_value_headers),
        LambdaRequest::Alb(r) => (&mut r.headers, &r.multi_value_headers),
        _ => return,
    };
    let doubled: Vec<http::HeaderName> = single
        .keys()
        .filter(|name| *name != http::header::HOST && multi.contains_key(*name))
        .cloned()
        .collect();
    for name in doubled {
        single.remove(name);
    }
}

/// Takes a body that is flagged `isBase64Encoded` but is not base64 (as lambda_http decodes it:
/// standard alphabet, nothing trimmed) out of the event, so that converting the event cannot
/// panic; returns it for the pipeline to answer 400. Only a hand-built event carries one.
fn take_malformed_base64(payload: &mut LambdaRequest) -> Option<String> {
    let (body, base64) = match payload {
        LambdaRequest::ApiGatewayV1(r) => (&mut r.body, &mut r.is_base64_encoded),
        LambdaRequest::ApiGatewayV2(r) => (&mut r.body, &mut r.is_base64_encoded),
        LambdaRequest::Alb(r) => (&mut r.body, &mut r.is_base64_encoded),
        _ => return None,
    };
    let text = body.as_deref().filter(|_| *base64)?;
    if base64::engine::general_purpose::STANDARD
        .decode(text)
        .is_ok()
    {
        return None;
    }
    *base64 = false;
    body.take()
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
    // Fail closed: a secret the configured SecretEncoding cannot read stops the start.
    secrets
        .current()
        .check(config.key_reading())
        .map_err(|e| format!("the webhook secret: {e}"))?;
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
