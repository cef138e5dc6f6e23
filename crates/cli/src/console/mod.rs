//! The console (docs/design.md section 9): one page embedded in the binary (`assets/index.html`) and
//! the JSON API it shares with scripts (`api.rs`), on `zofhook serve` and on `zofhook console`.
//!
//! An admin surface: open on loopback; on any other address only with `--console-token`
//! (`Authorization: Bearer`, or once as `?token=` on the page, then an HttpOnly, SameSite=Strict
//! cookie); without a token there it is off and answers 401. Replay and redrive are POSTs only.
//!
//! Safe from the browser it runs in, on loopback too (the Jupyter server's and Vite's lessons):
//! it answers only the Host names it is served under ([`guard::Hosts`]: DNS rebinding gets 403), a
//! state-changing request must come from its own origin ([`guard::same_origin`]: a cross-site form
//! POST, a `no-cors` fetch, another localhost port get 403), and nothing of it can be framed or
//! sniffed ([`guard::SECURITY_HEADERS`], and a Content-Security-Policy that admits only the page's own
//! script and style by their hashes).

mod api;
mod guard;

use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use zofhook_core::ledger::Ledger;
use zofhook_core::queue::{Inbox, Queue};

pub use api::ConsoleApi;
pub use guard::{Access, Guard, Hosts};

/// The console's routes: `GET /` and `/api/…`, behind the guard.
pub fn router(
    ledger: Arc<dyn Ledger>,
    queue: Arc<dyn Queue>,
    inbox: Option<Arc<dyn Inbox>>,
    guard_by: Guard,
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
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard_by),
            guard::guard,
        ))
}

async fn page() -> Html<&'static str> {
    Html(include_str!("assets/index.html"))
}
