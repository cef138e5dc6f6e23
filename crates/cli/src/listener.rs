//! The HTTP server under `serve` and `console`, its flags and its stop signal: hyper's HTTP/1 with a deadline for reading a
//! request's headers (which also closes idle keep-alive connections) and a cap on open
//! connections, so slow clients cannot hold a public server open. The webhook handler bounds
//! the body's reading with the same deadline.

use crate::console::{Access, Guard, Hosts};
use axum::Router;
use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What a client gets before it is cut off.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To send a request's headers (and, for the webhook, its body); also how long an idle
    /// keep-alive connection is kept.
    pub read_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
}

/// Serves `app` until `shutdown` completes, then lets the requests in hand finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What the HTTP server lets a client do (serve and console).
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// The console's token: required on any address but loopback (without it the console is off).
    #[arg(long, env = "ZOFHOOK_CONSOLE_TOKEN", hide_env_values = true)]
    pub console_token: Option<String>,
    /// Host names the console also answers to, besides loopback and the --listen address (a
    /// reverse proxy's name); repeat the flag, or separate names with commas. Any other Host
    /// gets 403 (DNS rebinding).
    #[arg(
        long = "allowed-host",
        env = "ZOFHOOK_ALLOWED_HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Milliseconds a client has to send a request's headers and body; also how long an idle
    /// keep-alive connection is kept.
    #[arg(long, env = "ZOFHOOK_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub read_timeout_ms: u64,
    /// Connections open at once; more wait until one closes.
    #[arg(long, env = "ZOFHOOK_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_connections: u64,
}

impl HttpArgs {
    /// The console's guard for a server listening on `addr`.
    pub fn guard(&self, addr: std::net::SocketAddr) -> Guard {
        Guard {
            access: Access::for_listener(addr, self.console_token.as_deref()),
            hosts: Hosts::new(addr, &self.allowed_hosts),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            read_timeout: Duration::from_millis(self.read_timeout_ms),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }
}

/// Resolves on SIGINT or SIGTERM: stop accepting, finish what is in hand.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
