//! The console's JSON API (docs/design.md section 9), which the page and scripts share.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use zofhook_core::ledger::{Ledger, Selection, SelectionText};
use zofhook_core::queue::{Inbox, Queue};

pub struct ConsoleApi {
    pub ledger: Arc<dyn Ledger>,
    pub queue: Arc<dyn Queue>,
    /// Where dead letters are redriven from; `None` when no DLQ was given (`--dlq-url`).
    pub inbox: Option<Arc<dyn Inbox>>,
}

/// The selection of `events list`, as query parameters.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn error(status: StatusCode, what: &str, detail: String) -> Response {
    (status, Json(json!({"error": what, "detail": detail}))).into_response()
}

pub async fn list(State(api): State<Arc<ConsoleApi>>, Query(q): Query<ListQuery>) -> Response {
    let statuses: Vec<String> = q.status.into_iter().collect();
    let text = SelectionText {
        statuses: &statuses,
        kind: q.kind.as_deref(),
        since: q.since.as_deref(),
        until: q.until.as_deref(),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let selection = match Selection::parse(text, limit, zofhook_core::now_ms()) {
        Ok(selection) => selection,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_selection", e.to_string()),
    };
    match api.ledger.list(&selection, q.cursor.as_deref()).await {
        Ok(page) => {
            let page = page.listed();
            Json(json!({"events": page.records, "next": page.next})).into_response()
        }
        Err(zofhook_core::ledger::LedgerError::BadCursor(c)) => {
            error(StatusCode::BAD_REQUEST, "bad_cursor", c)
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

pub async fn show(State(api): State<Arc<ConsoleApi>>, Path(id): Path<String>) -> Response {
    match api.ledger.get(&id).await {
        Ok(Some(record)) => Json(record).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", id),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

pub async fn replay(State(api): State<Arc<ConsoleApi>>, Path(id): Path<String>) -> Response {
    let ids = [id];
    match zofhook_core::replay::replay(
        api.ledger.as_ref(),
        api.queue.as_ref(),
        &ids,
        zofhook_core::now_ms(),
    )
    .await
    {
        Ok(summary) => {
            let status = if summary.replayed.is_empty() {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            let pairs = |v: &[(String, String)]| -> Vec<Value> {
                v.iter()
                    .map(|(id, why)| json!({"id": id, "why": why}))
                    .collect()
            };
            (
                status,
                Json(json!({
                    "replayed": summary.replayed,
                    "skipped": pairs(&summary.skipped),
                    "not_found": summary.not_found,
                    "failed": pairs(&summary.failed),
                    "unnoted": pairs(&summary.unnoted),
                })),
            )
                .into_response()
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

pub async fn redrive(State(api): State<Arc<ConsoleApi>>) -> Response {
    let Some(inbox) = &api.inbox else {
        return error(
            StatusCode::CONFLICT,
            "no_dead_letter_queue",
            "give --dlq-url to redrive".into(),
        );
    };
    match inbox.redrive().await {
        Ok(moved) => Json(json!({"moved": moved})).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}
