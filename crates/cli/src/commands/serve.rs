//! `zofhook serve`: the receive pipeline on `POST /webhook` (axum) and the worker in-process,
//! on the embedded store or, with `--aws`, on DynamoDB + SQS. SIGINT or SIGTERM: stop
//! accepting, finish the requests and messages in hand, exit 0.

use crate::global::Global;
use crate::listener::{shutdown_signal, HttpArgs};
use crate::lock::lock_data_dir;
use crate::secret::{secrets, SECRET_FILE};
use crate::store::{Backend, Needs};
use anyhow::{Context, Result};
use axum::body::Body as HttpBody;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use clap::Args;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use zofhook_core::config::Config;
use zofhook_core::downstream::Sinks;
use zofhook_core::process::Processor;
use zofhook_core::queue::Inbox;
use zofhook_core::receive::{Body, Delivery, Receiver, Reply, Verdict};
use zofhook_core::secrets::StaticSecrets;

/// The file in the data dir where `serve` writes the URL it listens on, for `send`.
pub const URL_FILE: &str = "url";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "ZOFHOOK_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Worker tasks processing queued events concurrently.
    #[arg(long, env = "ZOFHOOK_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Clone)]
struct App {
    receiver: Arc<Receiver>,
    max_body_bytes: usize,
    read_timeout: Duration,
}

pub async fn serve(global: &Global, config: Config, args: ServeArgs) -> Result<i32> {
    let config = Arc::new(config);
    // The embedded store has one owner; whatever it finds in flight, a dead predecessor left.
    let _owner = match global.aws {
        false => Some(lock_data_dir(&global.data_dir)?),
        true => None,
    };
    let backend = Backend::open(global, &config, Needs::SERVE).await?;
    let resumed = backend.release_in_flight().await?;
    let (secrets, kept) = secrets(global, &config, true)?;
    let receiver = Arc::new(Receiver::new(
        config.clone(),
        Arc::new(StaticSecrets::new(secrets)),
        backend.ledger()?,
        backend.queue()?,
        zofhook_core::system_clock(),
    ));
    #[cfg(feature = "aws")]
    let bus = match &config.event_bus_name {
        Some(_) => Some(zofhook_core::aws::eventbridge::Client::new(
            &zofhook_core::aws::sdk_config(&config).await,
        )),
        None => None,
    };
    #[cfg(not(feature = "aws"))]
    let bus = None;
    let sinks = Sinks::from_config(&config, global.zof_api_token.clone(), bus)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let processor = Arc::new(Processor::new(
        &config,
        backend.ledger()?,
        Arc::new(sinks),
        zofhook_core::system_clock(),
    ));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let addr = listener.local_addr()?;

    let url = format!("http://{addr}/webhook");
    if !global.aws || global.data_dir.exists() {
        std::fs::write(global.data_dir.join(URL_FILE), &url).with_context(|| {
            format!("cannot write {}", global.data_dir.join(URL_FILE).display())
        })?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "zofhook serve: listening on {url}")?;
    writeln!(out, "zofhook serve: console on http://{addr}/")?;
    writeln!(out, "zofhook serve: {}", backend.describe(global))?;
    if resumed > 0 {
        writeln!(
            out,
            "zofhook serve: resuming {resumed} event(s) a previous run left in flight"
        )?;
    }
    if let Some(kept) = &kept {
        let new = if kept.created { "new, " } else { "" };
        writeln!(
            out,
            "zofhook serve: webhook secret ({new}kept in {}): {}",
            global.data_dir.join(SECRET_FILE).display(),
            kept.text
        )?;
    }
    out.flush()?;
    drop(out);

    let (stop, stopped) = watch::channel(false);
    let inbox = backend.inbox()?;
    let workers: Vec<_> = (0..args.workers)
        .map(|_| tokio::spawn(work(inbox.clone(), processor.clone(), stopped.clone())))
        .collect();

    let console = crate::console::router(
        backend.ledger()?,
        backend.queue()?,
        Some(inbox.clone()),
        args.http.guard(addr),
    );
    let app = Router::new()
        .route("/webhook", any(webhook))
        .route("/healthz", get(healthz))
        // The pipeline answers oversized bodies itself, with its JSON 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(App {
            receiver,
            max_body_bytes: config.max_body_bytes,
            read_timeout: Duration::from_millis(args.http.read_timeout_ms),
        })
        .merge(console);
    crate::listener::serve(listener, app, args.http.limits(), shutdown_signal()).await;
    println!("zofhook serve: stopping; finishing the work in hand");
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    println!("zofhook serve: stopped");
    Ok(0)
}

/// Takes messages one at a time until told to stop; a message taken is always finished.
async fn work(inbox: Arc<dyn Inbox>, processor: Arc<Processor>, stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        let messages = match inbox.receive(1).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in messages {
            let handled = processor
                .process_sent(&message.body, message.sent_at_ms)
                .await;
            let settled = if handled.acknowledged() {
                inbox.ack(&message).await
            } else {
                inbox.retry(&message).await
            };
            if let Err(e) = settled {
                // Not lost: the message becomes visible again after its visibility timeout.
                tracing::warn!(error = %e, "cannot settle a message");
            }
        }
    }
}

async fn webhook(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let read = axum::body::to_bytes(body, app.max_body_bytes.saturating_add(1));
    let Ok(read) = tokio::time::timeout(app.read_timeout, read).await else {
        // A client that does not send its body in time is cut off.
        let mut response = (
            StatusCode::REQUEST_TIMEOUT,
            [
                ("content-type", "application/json"),
                ("connection", "close"),
            ],
            r#"{"error":"request_timeout"}"#,
        )
            .into_response();
        response
            .headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
        return response;
    };
    let reply = match read {
        Ok(bytes) => {
            app.receiver
                .receive(Delivery {
                    method: &method,
                    headers: &headers,
                    body: Body::Raw(&bytes),
                })
                .await
        }
        Err(_) => Reply::new(Verdict::PayloadTooLarge),
    };
    reply.into()
}

async fn healthz() -> Response {
    ([("content-type", "application/json")], r#"{"status":"ok"}"#).into_response()
}
