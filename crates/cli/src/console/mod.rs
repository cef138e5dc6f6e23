//! The console (DESIGN.md section 9): one page embedded in the binary (`assets/index.html`) and
//! the JSON API it shares with scripts (`api.rs`), on `zofhook serve` and on `zofhook console`.
//!
//! An admin surface: open on loopback; on any other address only with `--console-token`
//! (`Authorization: Bearer`, or once as `?token=` on the page, then an HttpOnly, SameSite=Strict
//! cookie); without a token there it is off and answers 401. Replay and redrive are POSTs only.

mod api;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use zofhook_core::ledger::Ledger;
use zofhook_core::queue::{Inbox, Queue};

pub use api::ConsoleApi;

/// The cookie that carries the console token after a `?token=` visit.
const COOKIE: &str = "zofhook_console";

/// Who may use the console.
#[derive(Clone, Debug)]
pub enum Access {
    /// Loopback and no token: anyone who can reach 127.0.0.1.
    Open,
    /// This token, as a bearer token or the cookie.
    Token(Arc<str>),
    /// Off: a non-loopback address and no token.
    Off,
}

impl Access {
    /// The rule of DESIGN.md section 9 for a server listening on `addr`.
    pub fn for_listener(addr: SocketAddr, token: Option<&str>) -> Access {
        match token.filter(|t| !t.is_empty()) {
            Some(token) => Access::Token(Arc::from(token)),
            None if addr.ip().is_loopback() => Access::Open,
            None => Access::Off,
        }
    }
}

/// The console's routes: `GET /` and `/api/…`, behind the access rule.
pub fn router(
    ledger: Arc<dyn Ledger>,
    queue: Arc<dyn Queue>,
    inbox: Option<Arc<dyn Inbox>>,
    access: Access,
) -> Router {
    let api = Arc::new(ConsoleApi {
        ledger,
        queue,
        inbox,
    });
    Router::new()
        .route("/", get(page))
        .route("/api/events", get(api::list))
        .route("/api/events/{id}", get(api::show))
        .route("/api/events/{id}/replay", post(api::replay))
        .route("/api/redrive", post(api::redrive))
        .with_state(api)
        .layer(axum::middleware::from_fn_with_state(access, guard))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn page() -> Html<&'static str> {
    Html(include_str!("assets/index.html"))
}

/// The access rule, in front of every console route.
async fn guard(
    State(access): State<Access>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let token = match &access {
        Access::Open => return next.run(request).await,
        Access::Off => {
            return unauthorized(
                "the console is off: give --console-token to use it on this address",
            )
        }
        Access::Token(token) => token.clone(),
    };
    let presented = bearer(&headers).or_else(|| cookie(&headers));
    if presented.is_some_and(|p| same(p.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    // Once on the page: `?token=` becomes the cookie, and the token leaves the address bar.
    if request.uri().path() == "/" {
        if let Some(given) = query.token.filter(|t| same(t.as_bytes(), token.as_bytes())) {
            let mut response = Redirect::to("/").into_response();
            let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
            if let Ok(value) = cookie.parse() {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            return response;
        }
    }
    unauthorized("a console token is needed (Authorization: Bearer, or ?token= on the page)")
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": "unauthorized", "detail": why}).to_string(),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Constant-time equality of two tokens (their lengths are not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_rule() {
        let loopback: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert!(matches!(Access::for_listener(loopback, None), Access::Open));
        assert!(matches!(Access::for_listener(public, None), Access::Off));
        assert!(matches!(
            Access::for_listener(public, Some("")),
            Access::Off
        ));
        assert!(matches!(
            Access::for_listener(public, Some("t")),
            Access::Token(_)
        ));
        assert!(matches!(
            Access::for_listener(loopback, Some("t")),
            Access::Token(_)
        ));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; zofhook_console=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some("tok"));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
    }
}

/// `zofhook console`: the console alone, against the embedded store or (with `--aws`) the
/// deployed table and queues, on 127.0.0.1:3001 by default.
#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// Address to listen on (loopback by default: the console is an admin surface).
    #[arg(long, env = "ZOFHOOK_CONSOLE_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: String,
    #[command(flatten)]
    pub http: crate::serve::HttpArgs,
}

pub async fn run(
    global: &crate::Global,
    config: &zofhook_core::config::Config,
    args: ConsoleArgs,
) -> anyhow::Result<i32> {
    use anyhow::Context;
    let backend =
        crate::backend::Backend::open(global, config, crate::backend::Needs::REPLAY).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let addr = listener.local_addr()?;
    let access = Access::for_listener(addr, args.http.console_token.as_deref());
    if matches!(access, Access::Off) {
        eprintln!(
            "zofhook console: {addr} is not loopback and no --console-token was given: the console answers 401"
        );
    }
    let app = router(
        backend.ledger()?,
        backend.queue()?,
        Some(backend.inbox()?),
        access,
    );
    println!(
        "zofhook console: http://{addr}/ on {}",
        backend.describe(global)
    );
    crate::listener::serve(
        listener,
        app,
        args.http.limits(),
        crate::serve::shutdown_signal(),
    )
    .await;
    Ok(0)
}
