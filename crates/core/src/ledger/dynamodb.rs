//! The ledger on DynamoDB: one item per event id (partition key `id`), every transition one
//! conditional write. A refused `begin` or `claim` returns the stored item with
//! `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a duplicate costs one round trip.

use super::{
    claim_step, cursor_after, parse_cursor, Begin, Claim, ClaimStep, Ledger, LedgerError, Page,
    Record, ReplayStart, Selection, Status,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use serde_json::Value;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The key `warm_up` reads: `#` is not allowed in event ids, so no record can have it.
const WARM_UP_KEY: &str = "#warm-up";

/// The global secondary index that serves time-bounded and status selections: partition key
/// `received_day` (`YYYY-MM-DD`), sort key `received_at`, the listing's fields projected (not
/// the body). template.yaml defines it.
pub const TIME_INDEX: &str = "by_day";

/// The attributes the time index projects besides its keys and `id`: what a listing shows.
pub const TIME_INDEX_ATTRIBUTES: &[&str] = &[
    "status",
    "type",
    "body_sha256",
    "organization_id",
    "run_id",
    "lease_until",
    "attempts",
    "outcome",
    "error",
    "processed_at",
    "expires_at",
    "replays",
];

#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    /// How many days back a selection without `since` looks (the retention).
    horizon_days: i64,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoLedger {
        DynamoLedger {
            client,
            table: table.into(),
            horizon_days: 30,
        }
    }

    /// Selections without `since` look back this many days (`DedupeRetentionDays`: nothing
    /// older is remembered).
    pub fn with_retention_days(mut self, days: u64) -> DynamoLedger {
        self.horizon_days = i64::try_from(days).unwrap_or(3650);
        self
    }

    /// Opens the connection to DynamoDB (TLS handshake, credentials, endpoint) with a read of a
    /// key no event can have, so the first delivery does not pay for it. Failures are only
    /// logged: the delivery that follows will retry and report them.
    pub async fn warm_up(&self) {
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(WARM_UP_KEY.into()))
            .send()
            .await;
        if let Err(e) = read {
            tracing::warn!(error = %DisplayErrorContext(&e), "ledger warm-up failed");
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn update_held(
        &self,
        id: &str,
        token: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id))
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":t", s(token))
    }
}

/// The `YYYY-MM-DD` of an RFC 3339 time.
fn day_of(at: &str) -> String {
    at.get(..10).unwrap_or(at).to_string()
}

/// The day `days` before `day`.
fn days_before(day: &str, days: i64) -> Result<String, LedgerError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format)
        .map_err(|_| LedgerError::Corrupt(format!("{day:?} is not a day")))?;
    let earlier = date
        .checked_sub(time::Duration::days(days))
        .unwrap_or(time::Date::MIN);
    earlier
        .format(&format)
        .map_err(|e| LedgerError::Corrupt(e.to_string()))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A failed call: `Rejected` when DynamoDB refused the request itself (a `ValidationException`:
/// an item over 400 KB, say), which no retry can mend; `Unavailable` otherwise.
fn unavailable<E, R>(e: SdkError<E, R>) -> LedgerError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(&e).to_string();
    match e.as_service_error().and_then(ProvideErrorMetadata::code) {
        Some("ValidationException") => LedgerError::Rejected(text),
        _ => LedgerError::Unavailable(text),
    }
}

pub fn to_item(r: &Record) -> Item {
    let mut item = Item::new();
    item.insert("id".into(), s(&r.id));
    item.insert("status".into(), s(r.status.as_str()));
    item.insert("type".into(), s(&r.kind));
    item.insert("body_sha256".into(), s(&r.body_sha256));
    item.insert("received_at".into(), s(&r.received_at));
    item.insert("lease_until".into(), n(r.lease_until));
    item.insert("attempts".into(), n(i64::from(r.attempts)));
    item.insert("expires_at".into(), n(r.expires_at));
    item.insert("replays".into(), n(i64::from(r.replays)));
    // The time index (`by_day`): the day's partition, newest first by received_at.
    if r.received_at.len() >= 10 {
        item.insert("received_day".into(), s(&r.received_at[..10]));
    }
    let optional = [
        ("organization_id", r.organization_id.clone()),
        ("run_id", r.run_id.clone()),
        ("lease_token", r.lease_token.clone()),
        ("delivery_token", r.delivery_token.clone()),
        ("outcome", r.outcome.as_ref().map(Value::to_string)),
        ("error", r.error.clone()),
        ("processed_at", r.processed_at.clone()),
        ("body", r.body.clone()),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            item.insert(key.into(), s(&v));
        }
    }
    item
}

pub fn from_item(item: &Item) -> Result<Record, LedgerError> {
    let text = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
    let need =
        |key: &str| text(key).ok_or_else(|| LedgerError::Corrupt(format!("item without {key}")));
    let num = |key: &str| -> Result<i64, LedgerError> {
        match item.get(key) {
            None => Ok(0),
            Some(v) => v
                .as_n()
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| LedgerError::Corrupt(format!("{key} is not a whole number"))),
        }
    };
    let outcome = match text("outcome") {
        None => None,
        Some(o) => Some(
            serde_json::from_str(&o)
                .map_err(|e| LedgerError::Corrupt(format!("outcome is not JSON: {e}")))?,
        ),
    };
    Ok(Record {
        id: need("id")?,
        status: need("status")?.parse()?,
        kind: need("type")?,
        body_sha256: need("body_sha256")?,
        organization_id: text("organization_id"),
        run_id: text("run_id"),
        received_at: text("received_at").unwrap_or_default(),
        lease_until: num("lease_until")?,
        lease_token: text("lease_token"),
        delivery_token: text("delivery_token"),
        attempts: u32::try_from(num("attempts")?).unwrap_or(u32::MAX),
        outcome,
        error: text("error"),
        processed_at: text("processed_at"),
        expires_at: num("expires_at")?,
        body: text("body"),
        replays: u32::try_from(num("replays")?).unwrap_or(u32::MAX),
    })
}

/// The item a refused conditional write returned, or an error if the write failed otherwise.
fn refused_item(item: Option<&Item>) -> Result<Record, LedgerError> {
    match item {
        Some(item) => from_item(item),
        None => Err(LedgerError::Corrupt(
            "condition failed but no item was returned".into(),
        )),
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn begin(&self, record: &Record, now_ms: i64) -> Result<Begin, LedgerError> {
        // The same rule as `may_begin`.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(
                "attribute_not_exists(id) OR expires_at < :now_s \
                 OR (#s = :received AND lease_until < :now)",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":now_s", n(now_ms / 1000))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":received", s(Status::Received.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Begin::Started),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Begin::Exists(Box::new(refused_item(c.item())?)))
                }
                _ => Err(unavailable(e)),
            },
        }
    }

    async fn mark_enqueued(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        let result = self
            .update_held(id, token)
            .update_expression("SET #s = :enqueued")
            .condition_expression("lease_token = :t AND #s = :received")
            .expression_attribute_values(":enqueued", s(Status::Enqueued.as_str()))
            .expression_attribute_values(":received", s(Status::Received.as_str()))
            .send()
            .await;
        held(result)
    }

    async fn abandon(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id))
            .condition_expression("lease_token = :t")
            .expression_attribute_values(":t", s(token))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(unavailable(e)),
            },
        }
    }

    async fn claim(&self, claim: &Record, create: bool, now_ms: i64) -> Result<Claim, LedgerError> {
        let token = claim.lease_token.as_deref().unwrap_or_default();
        let mut set = vec![
            "#s = :processing",
            "lease_until = :lease",
            "lease_token = :t",
            "#type = if_not_exists(#type, :type)",
            "body_sha256 = if_not_exists(body_sha256, :sha)",
            "received_at = if_not_exists(received_at, :received_at)",
            "attempts = if_not_exists(attempts, :zero)",
            "expires_at = if_not_exists(expires_at, :expires)",
        ];
        let mut request = self
            .update_held(&claim.id, token)
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":processing", s(Status::Processing.as_str()))
            .expression_attribute_values(":received", s(Status::Received.as_str()))
            .expression_attribute_values(":enqueued", s(Status::Enqueued.as_str()))
            .expression_attribute_values(":failed", s(Status::Failed.as_str()))
            .expression_attribute_values(":lease", n(claim.lease_until))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":type", s(&claim.kind))
            .expression_attribute_values(":sha", s(&claim.body_sha256))
            .expression_attribute_values(":received_at", s(&claim.received_at))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":expires", n(claim.expires_at));
        if let Some(org) = &claim.organization_id {
            set.push("organization_id = if_not_exists(organization_id, :org)");
            request = request.expression_attribute_values(":org", s(org));
        }
        if let Some(run) = &claim.run_id {
            set.push("run_id = if_not_exists(run_id, :run)");
            request = request.expression_attribute_values(":run", s(run));
        }
        // A record the claim creates is listed (time index) and replayable like any other.
        set.push("received_day = if_not_exists(received_day, :day)");
        request = request.expression_attribute_values(":day", s(&day_of(&claim.received_at)));
        if let Some(body) = &claim.body {
            set.push("body = if_not_exists(body, :body)");
            request = request.expression_attribute_values(":body", s(body));
        }
        // The same rule as `claim_step`.
        let held = "(body_sha256 = :sha AND (#s IN (:received, :enqueued, :failed) \
                    OR (#s = :processing AND lease_until < :now)))";
        let condition = match create {
            true => format!("attribute_not_exists(id) OR {held}"),
            false => format!("attribute_exists(id) AND {held}"),
        };
        let result = request
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claim::Claimed(match out.attributes() {
                Some(item) => from_item(item)?,
                None => claim.clone(),
            })),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let old = match c.item() {
                        None => None,
                        item => Some(refused_item(item)?),
                    };
                    match claim_step(old.as_ref(), claim, create, now_ms) {
                        ClaimStep::Refuse(refused) => Ok(refused),
                        // Refused by the store, allowed by the rule read back: the record
                        // changed in between (a lease ran out); the message comes back later.
                        ClaimStep::Take => Ok(Claim::Busy(old.unwrap_or_else(|| claim.clone()))),
                    }
                }
                _ => Err(unavailable(e)),
            },
        }
    }

    async fn finish(
        &self,
        id: &str,
        token: &str,
        outcome: &Value,
        processed_at: &str,
    ) -> Result<bool, LedgerError> {
        let result = self
            .update_held(id, token)
            .update_expression(
                "SET #s = :processed, outcome = :outcome, processed_at = :at, lease_until = :zero \
                 REMOVE #error",
            )
            .condition_expression("lease_token = :t AND #s = :processing")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":processed", s(Status::Processed.as_str()))
            .expression_attribute_values(":processing", s(Status::Processing.as_str()))
            .expression_attribute_values(":outcome", s(&outcome.to_string()))
            .expression_attribute_values(":at", s(processed_at))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        held(result)
    }

    async fn fail(
        &self,
        id: &str,
        token: &str,
        error: &str,
        partial: Option<&Value>,
    ) -> Result<bool, LedgerError> {
        let mut set = String::from(
            "SET #s = :failed, #error = :error, lease_until = :zero, \
             attempts = if_not_exists(attempts, :zero) + :one",
        );
        let mut request = self.update_held(id, token);
        if let Some(partial) = partial {
            set.push_str(", outcome = :outcome");
            request = request.expression_attribute_values(":outcome", s(&partial.to_string()));
        }
        let result = request
            .update_expression(set)
            .condition_expression("lease_token = :t AND #s = :processing")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", s(Status::Failed.as_str()))
            .expression_attribute_values(":processing", s(Status::Processing.as_str()))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        held(result)
    }

    async fn replay(&self, id: &str, now_ms: i64) -> Result<ReplayStart, LedgerError> {
        // The same rule as `may_replay`, and only with an archived body.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id))
            .update_expression(
                "SET #s = :enqueued, replays = if_not_exists(replays, :zero) + :one, \
                 lease_until = :zero REMOVE outcome, #error",
            )
            .condition_expression(
                "attribute_exists(body) AND (#s IN (:processed, :failed, :enqueued) \
                 OR (#s IN (:received, :processing) AND lease_until < :now))",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":enqueued", s(Status::Enqueued.as_str()))
            .expression_attribute_values(":processed", s(Status::Processed.as_str()))
            .expression_attribute_values(":failed", s(Status::Failed.as_str()))
            .expression_attribute_values(":received", s(Status::Received.as_str()))
            .expression_attribute_values(":processing", s(Status::Processing.as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes() {
                Some(item) => Ok(ReplayStart::Started(Box::new(from_item(item)?))),
                None => Err(LedgerError::Corrupt("replay returned no record".into())),
            },
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => Ok(match c.item() {
                    None => ReplayStart::NotFound,
                    Some(item) => {
                        let old = from_item(item)?;
                        if old.body.is_none() {
                            ReplayStart::NoBody
                        } else {
                            ReplayStart::Live(old.status)
                        }
                    }
                }),
                _ => Err(unavailable(e)),
            },
        }
    }

    /// Walks the `by_day` index from the newest day of the selection back to its oldest (or the
    /// retention horizon), newest first within each day: never a Scan.
    async fn list(&self, selection: &Selection, cursor: Option<&str>) -> Result<Page, LedgerError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let today = crate::rfc3339(crate::now_ms());
        let newest_day = match (&after, &selection.until) {
            (Some((at, _)), _) => day_of(at),
            (None, Some(until)) => day_of(until),
            (None, None) => day_of(&today),
        };
        let oldest_day = match &selection.since {
            Some(since) => day_of(since),
            None => days_before(&day_of(&today), self.horizon_days)?,
        };
        let mut records: Vec<Record> = Vec::new();
        let mut day = newest_day;
        let mut start = after.map(|(at, id)| {
            HashMap::from([
                ("id".to_string(), s(&id)),
                ("received_day".to_string(), s(&day_of(&at))),
                ("received_at".to_string(), s(&at)),
            ])
        });
        while day >= oldest_day && records.len() <= selection.limit {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(TIME_INDEX)
                .scan_index_forward(false)
                .limit(i32::try_from(selection.limit + 1).unwrap_or(i32::MAX))
                .expression_attribute_values(":day", s(&day))
                .set_exclusive_start_key(start.take());
            let mut key = String::from("received_day = :day");
            if let Some(since) = &selection.since {
                key.push_str(" AND received_at >= :since");
                query = query.expression_attribute_values(":since", s(since));
            }
            let mut filters: Vec<String> = Vec::new();
            if let Some(until) = &selection.until {
                filters.push("received_at < :until".into());
                query = query.expression_attribute_values(":until", s(until));
            }
            if let Some(kind) = &selection.kind {
                filters.push("#type = :type".into());
                query = query
                    .expression_attribute_names("#type", "type")
                    .expression_attribute_values(":type", s(kind));
            }
            if !selection.statuses.is_empty() {
                let names: Vec<String> = (0..selection.statuses.len())
                    .map(|i| format!(":status{i}"))
                    .collect();
                filters.push(format!("#s IN ({})", names.join(", ")));
                query = query.expression_attribute_names("#s", "status");
                for (name, status) in names.iter().zip(&selection.statuses) {
                    query = query.expression_attribute_values(name, s(status.as_str()));
                }
            }
            if !filters.is_empty() {
                query = query.filter_expression(filters.join(" AND "));
            }
            let page = query
                .key_condition_expression(key)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                records.push(from_item(item)?);
            }
            match page.last_evaluated_key() {
                // More of this day (a page ends at `Limit` items read, before the filter).
                Some(last) if records.len() <= selection.limit => start = Some(last.clone()),
                _ => day = days_before(&day, 1)?,
            }
        }
        let more = records.len() > selection.limit;
        records.truncate(selection.limit);
        let next = more.then(|| records.last().map(cursor_after)).flatten();
        Ok(Page { records, next })
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item().map(from_item).transpose()
    }
}

fn held<O, R: std::fmt::Debug>(
    result: Result<O, SdkError<UpdateItemError, R>>,
) -> Result<bool, LedgerError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
            _ => Err(unavailable(e)),
        },
    }
}
