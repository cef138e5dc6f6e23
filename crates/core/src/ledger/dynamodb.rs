//! The ledger on DynamoDB: one item per event id (partition key `id`), every transition one
//! conditional write. A refused `begin` or `claim` returns the stored item with
//! `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a duplicate costs one round trip.

use super::{
    claim_step, cursor_after, parse_cursor, Begin, Claim, ClaimStep, Ledger, LedgerError, Noted,
    Page, Record, ReplayStart, Selection, Status,
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

/// The global secondary index that serves time-bounded and status selections. Its partition key
/// is [`SHARD_KEY`], a day and a shard (`2026-12-01#0` … `#7`), so that a day's writes spread
/// over [`TIME_SHARDS`] index partitions; its sort key is [`TIME_KEY`], `received_at#id`, so that
/// the index orders a shard exactly as listings do. It projects the keys only (`id` and those
/// two): no attribute a claim, a mark or an outcome changes is in it,
/// so only the write that creates a record writes the index. A listing reads the rest of each
/// record from the table (`BatchGetItem`). template.yaml defines it.
pub const TIME_INDEX: &str = "by_time";

/// The time index's partition key attribute.
pub const SHARD_KEY: &str = "time_shard";

/// The time index's sort key attribute: `received_at`, `#`, the id. `received_at` has a fixed
/// width (RFC 3339, milliseconds, `Z`) and `#` sorts below every character of a time, so the
/// text order is the order of (`received_at`, `id`).
pub const TIME_KEY: &str = "time_key";

/// A record's [`TIME_KEY`].
pub fn time_key(id: &str, received_at: &str) -> String {
    format!("{received_at}#{id}")
}

/// Index partitions per day. A partition takes about 1,000 writes a second and a record writes
/// the index once, so one day's index takes about 8,000 new events a second; a listing makes
/// this many queries per day it walks, in parallel. Changing it would hide the records of the
/// days written under the old count from listings: it is a constant, not a setting.
pub const TIME_SHARDS: u32 = 8;

/// The index of the layout before `by_time` (partition key [`LEGACY_DAY_KEY`], the day alone).
/// Only `zofhook --aws migrate` and the upgrade's first deployment know of it.
pub const LEGACY_TIME_INDEX: &str = "by_day";

/// The old layout's partition key: the day alone.
pub const LEGACY_DAY_KEY: &str = "received_day";

/// The time index key of a record: its day and the shard its id hashes to (the first four
/// bytes of the id's SHA-256, modulo [`TIME_SHARDS`]).
pub fn time_shard(id: &str, received_at: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    format!("{}#{}", day_of(received_at), head % TIME_SHARDS)
}

/// The partition key prefix of a replay's note: `#` is never in an event id, so a note is never
/// mistaken for a record, and the template's policies can name notes alone.
pub const NOTE_PREFIX: &str = "#replay#";

/// The time index partition of a day's replay notes: outside the day's [`TIME_SHARDS`], so
/// listings never read a note.
fn notes_shard(day: &str) -> String {
    format!("{day}#replays")
}

/// The attributes a listing reads from the table: all but the archived body.
const LISTED: &[&str] = &[
    "id",
    "status",
    "type",
    "body_sha256",
    "organization_id",
    "run_id",
    "received_at",
    "lease_until",
    "lease_token",
    "delivery_token",
    "attempts",
    "outcome",
    "error",
    "processed_at",
    "expires_at",
    "replays",
];

/// BatchGetItem takes at most this many keys.
const BATCH_GET_MAX: usize = 100;

/// What `zofhook --aws migrate` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Records given their time index key.
    pub moved: u64,
    /// Records that had one already (written under the new layout, or moved by an earlier run).
    pub already: u64,
}

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

/// The days from `since`'s to today, newest first.
fn days_since(since: &str) -> Result<Vec<String>, LedgerError> {
    let first = day_of(since);
    let mut day = day_of(&crate::clock::rfc3339(crate::clock::now_ms()));
    let mut days = Vec::new();
    while day >= first {
        days.push(day.clone());
        day = days_before(&day, 1)?;
    }
    Ok(days)
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
    // The time index (`by_time`): the day's shard, newest first by received_at.
    if r.received_at.len() >= 10 {
        item.insert(SHARD_KEY.into(), s(&time_shard(&r.id, &r.received_at)));
        item.insert(TIME_KEY.into(), s(&time_key(&r.id, &r.received_at)));
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
        set.push("time_shard = if_not_exists(time_shard, :shard)");
        set.push("time_key = if_not_exists(time_key, :time_key)");
        request = request
            .expression_attribute_values(":shard", s(&time_shard(&claim.id, &claim.received_at)))
            .expression_attribute_values(":time_key", s(&time_key(&claim.id, &claim.received_at)));
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

    /// Walks the time index from the newest day of the selection back to its oldest (or the
    /// retention horizon). Each day's shards are queried in parallel and merged newest first
    /// (`received_at`, then `id`, both descending, as the embedded store orders them); the
    /// records are then read from the table a batch at a time and filtered. Never a Scan.
    async fn list(&self, selection: &Selection, cursor: Option<&str>) -> Result<Page, LedgerError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let today = crate::clock::rfc3339(crate::clock::now_ms());
        let newest_day = match (&after, &selection.until) {
            (Some((at, _)), _) => day_of(at),
            (None, Some(until)) => day_of(until),
            (None, None) => day_of(&today),
        };
        let oldest_day = match &selection.since {
            Some(since) => day_of(since),
            None => days_before(&day_of(&today), self.horizon_days)?,
        };
        let bounds = Bounds::new(selection, after.as_ref());
        let mut records: Vec<Record> = Vec::new();
        let mut day = newest_day;
        while day >= oldest_day && records.len() <= selection.limit {
            self.list_day(&day, selection, &bounds, &mut records)
                .await?;
            day = days_before(&day, 1)?;
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

    /// One item per replay, `#replay#{id}#{n}`, in its day's notes partition of the time index
    /// (an `UpdateItem` that creates it, the write the operator policy already grants), gone
    /// with the TTL a day later.
    async fn note_replay(&self, id: &str, number: u32, now_ms: i64) -> Result<(), LedgerError> {
        let at = crate::clock::rfc3339(now_ms);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(&format!("{NOTE_PREFIX}{id}#{number}")))
            .update_expression(
                "SET time_shard = :shard, time_key = :key, event_id = :id, n = :n, \
                 expires_at = :expires",
            )
            .expression_attribute_values(":shard", s(&notes_shard(&day_of(&at))))
            .expression_attribute_values(":key", s(&format!("{at}#{id}#{number}")))
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":n", n(i64::from(number)))
            .expression_attribute_values(":expires", n(now_ms / 1000 + super::NOTE_SECONDS))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn replays_since(&self, since: &str) -> Result<Vec<Noted>, LedgerError> {
        let mut notes = Vec::new();
        for day in days_since(since)? {
            for (at, key) in self.shard_since(notes_shard(&day), since).await? {
                let parsed = key
                    .strip_prefix(NOTE_PREFIX)
                    .and_then(|rest| rest.rsplit_once('#'))
                    .and_then(|(id, n)| Some((id.to_string(), n.parse::<u32>().ok()?)));
                let Some((id, n)) = parsed else {
                    return Err(LedgerError::Corrupt(format!(
                        "{key:?} is not a replay's note"
                    )));
                };
                notes.push(Noted { at, id, n });
            }
        }
        notes.sort();
        Ok(notes)
    }

    /// The time index alone: each day from `since`'s to today, its shards queried in parallel
    /// from `since` on (keys only, so a poll that finds nothing costs a query per shard).
    async fn accepted_since(&self, since: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let mut keys = Vec::new();
        for day in days_since(since)? {
            let shards = futures_util::future::join_all(
                (0..TIME_SHARDS).map(|k| self.shard_since(format!("{day}#{k}"), since)),
            )
            .await;
            for shard in shards {
                keys.extend(shard?);
            }
        }
        keys.sort();
        Ok(keys)
    }
}

impl DynamoLedger {
    /// Every entry of one index shard at or after `since`, oldest first, as
    /// (`received_at`, `id`).
    async fn shard_since(
        &self,
        shard: String,
        since: &str,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(TIME_INDEX)
                .key_condition_expression("time_shard = :shard AND time_key >= :since")
                .expression_attribute_values(":shard", s(&shard))
                .expression_attribute_values(":since", s(since))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                match (text(TIME_KEY), text("id")) {
                    (Some(key), Some(id)) => {
                        let at = key.split('#').next().unwrap_or_default().to_string();
                        keys.push((at, id));
                    }
                    _ => return Err(LedgerError::Corrupt("index entry without its keys".into())),
                }
            }
            match page.last_evaluated_key() {
                Some(last) => start = Some(last.clone()),
                None => return Ok(keys),
            }
        }
    }
}

/// The part of a selection the index's sort key serves, and the page's cursor, as time keys.
struct Bounds {
    /// Inclusive: `received_at >= since`.
    since: Option<String>,
    /// Exclusive: below `until`, and below the last record of the previous page.
    below: Option<String>,
}

impl Bounds {
    fn new(selection: &Selection, after: Option<&(String, String)>) -> Bounds {
        let cursor = after.map(|(at, id)| time_key(id, at));
        let below = match (cursor, selection.until.clone()) {
            (Some(c), Some(u)) => Some(c.min(u)),
            (c, u) => c.or(u),
        };
        Bounds {
            since: selection.since.clone(),
            below,
        }
    }

    fn admits(&self, key: &str) -> bool {
        self.since.as_deref().is_none_or(|since| key >= since)
            && self.below.as_deref().is_none_or(|below| key < below)
    }
}

/// One shard of a day: the index entries fetched and not yet merged, and where its next page
/// starts.
struct ShardCursor {
    key: String,
    /// (time key, `id`), newest first.
    entries: std::collections::VecDeque<(String, String)>,
    next: Option<Item>,
    done: bool,
}

impl DynamoLedger {
    /// Appends the records of one day that the selection admits, newest first, until `records`
    /// holds `selection.limit + 1` (one more than a page, to know that there is a next one).
    async fn list_day(
        &self,
        day: &str,
        selection: &Selection,
        bounds: &Bounds,
        records: &mut Vec<Record>,
    ) -> Result<(), LedgerError> {
        let mut shards: Vec<ShardCursor> = (0..TIME_SHARDS)
            .map(|k| ShardCursor {
                key: format!("{day}#{k}"),
                entries: Default::default(),
                next: None,
                done: false,
            })
            .collect();
        // Without filters a page needs `limit + 1` entries, about an eighth of them from each
        // shard; with filters, records are read a full batch at a time.
        let filtered = !selection.statuses.is_empty() || selection.kind.is_some();
        loop {
            let want = (selection.limit + 1).saturating_sub(records.len());
            if want == 0 {
                return Ok(());
            }
            let batch = if filtered {
                BATCH_GET_MAX
            } else {
                want.min(BATCH_GET_MAX)
            };
            let per_shard =
                i32::try_from(batch.div_ceil(TIME_SHARDS as usize) + 1).unwrap_or(i32::MAX);
            // The next `batch` entries of the day in order: a shard whose fetched entries ran
            // out is read again first (its next entry may be the newest).
            let mut ids: Vec<String> = Vec::new();
            while ids.len() < batch {
                let empty: Vec<usize> = (0..shards.len())
                    .filter(|&i| shards[i].entries.is_empty() && !shards[i].done)
                    .collect();
                let pages = futures_util::future::join_all(
                    empty
                        .iter()
                        .map(|&i| self.query_shard(&shards[i], bounds, per_shard)),
                )
                .await;
                for (i, page) in empty.into_iter().zip(pages) {
                    let (entries, next) = page?;
                    let shard = &mut shards[i];
                    shard
                        .entries
                        .extend(entries.into_iter().filter(|(key, _)| bounds.admits(key)));
                    shard.done = next.is_none();
                    shard.next = next;
                }
                let newest = shards
                    .iter_mut()
                    .filter(|s| !s.entries.is_empty())
                    .max_by(|a, b| a.entries.front().cmp(&b.entries.front()));
                let Some(shard) = newest else {
                    // Every shard has been read to its end (a page of entries all outside the
                    // bounds may leave a shard empty but not done: read it again).
                    if shards.iter().all(|s| s.done) {
                        break;
                    }
                    continue;
                };
                if let Some((_, id)) = shard.entries.pop_front() {
                    ids.push(id);
                }
            }
            if ids.is_empty() {
                return Ok(());
            }
            let mut read = self.read_many(&ids).await?;
            for id in &ids {
                // Gone since the index was read (expired, or rolled back): not listed.
                if let Some(record) = read.remove(id) {
                    if selection.admits(&record) && records.len() <= selection.limit {
                        records.push(record);
                    }
                }
            }
            if ids.len() < batch {
                return Ok(());
            }
        }
    }

    /// One page of one shard's index entries, newest first, inside the bounds of its sort key.
    async fn query_shard(
        &self,
        shard: &ShardCursor,
        bounds: &Bounds,
        limit: i32,
    ) -> Result<(Vec<(String, String)>, Option<Item>), LedgerError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TIME_INDEX)
            .scan_index_forward(false)
            .limit(limit)
            .expression_attribute_values(":shard", s(&shard.key))
            .set_exclusive_start_key(shard.next.clone());
        if let (Some(lo), Some(hi)) = (&bounds.since, &bounds.below) {
            if lo >= hi {
                return Ok((Vec::new(), None));
            }
        }
        // BETWEEN is inclusive: an entry at `below` itself is dropped by `Bounds::admits`.
        let key = match (&bounds.since, &bounds.below) {
            (Some(lo), Some(hi)) => {
                query = query
                    .expression_attribute_values(":lo", s(lo))
                    .expression_attribute_values(":hi", s(hi));
                "time_shard = :shard AND time_key BETWEEN :lo AND :hi"
            }
            (Some(lo), None) => {
                query = query.expression_attribute_values(":lo", s(lo));
                "time_shard = :shard AND time_key >= :lo"
            }
            (None, Some(hi)) => {
                query = query.expression_attribute_values(":hi", s(hi));
                "time_shard = :shard AND time_key < :hi"
            }
            (None, None) => "time_shard = :shard",
        };
        let page = query
            .key_condition_expression(key)
            .send()
            .await
            .map_err(unavailable)?;
        let mut entries = Vec::new();
        for item in page.items() {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            match (text(TIME_KEY), text("id")) {
                (Some(key), Some(id)) => entries.push((key, id)),
                _ => return Err(LedgerError::Corrupt("index entry without its keys".into())),
            }
        }
        Ok((entries, page.last_evaluated_key().cloned()))
    }

    /// The records of these ids (at most [`BATCH_GET_MAX`]), without their bodies, by a
    /// strongly consistent `BatchGetItem`; keys DynamoDB leaves unprocessed are asked again.
    async fn read_many(&self, ids: &[String]) -> Result<HashMap<String, Record>, LedgerError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let names: HashMap<String, String> = LISTED
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("#a{i}"), a.to_string()))
            .collect();
        let projection = (0..LISTED.len())
            .map(|i| format!("#a{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut keys: Vec<Item> = ids
            .iter()
            .map(|id| HashMap::from([("id".to_string(), s(id))]))
            .collect();
        let mut found = HashMap::new();
        let mut rounds = 0u32;
        while !keys.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .projection_expression(&projection)
                .set_expression_attribute_names(Some(names.clone()))
                .build()
                .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let record = from_item(item)?;
                found.insert(record.id.clone(), record);
            }
            if let Some(left) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                keys = left.keys().to_vec();
            }
            if !keys.is_empty() {
                // Throttled: back off a little, as the SDK does between its own retries.
                rounds += 1;
                if rounds > 10 {
                    return Err(LedgerError::Unavailable(format!(
                        "BatchGetItem left {} keys unprocessed after {rounds} rounds",
                        keys.len()
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << rounds.min(5))).await;
            }
        }
        Ok(found)
    }

    /// Gives every record written under the old layout (`received_day`, the day alone) its
    /// time index key, so that listings find it; the upgrade's one-off step (README, "Upgrading
    /// the time index"). A Scan of the table, reading only `id` and `received_at`; each record
    /// is one conditional write, so runs can be repeated and interrupted.
    pub async fn migrate_time_index(&self) -> Result<Migrated, LedgerError> {
        let mut migrated = Migrated::default();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("id, received_at, time_shard, time_key")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let (Some(id), Some(at)) = (text("id"), text("received_at")) else {
                    continue;
                };
                if text(SHARD_KEY).is_some() && text(TIME_KEY).is_some() {
                    migrated.already += 1;
                    continue;
                }
                if at.len() < 10 {
                    continue;
                }
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("id", s(&id))
                    .update_expression("SET time_shard = :shard, time_key = :time_key")
                    .condition_expression("attribute_exists(id) AND attribute_not_exists(time_key)")
                    .expression_attribute_values(":shard", s(&time_shard(&id, &at)))
                    .expression_attribute_values(":time_key", s(&time_key(&id, &at)))
                    .send()
                    .await;
                match result {
                    Ok(_) => migrated.moved += 1,
                    Err(e) => match e.as_service_error() {
                        // Given its key meanwhile (a claim), or gone (expired).
                        Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                            migrated.already += 1
                        }
                        _ => return Err(unavailable(e)),
                    },
                }
            }
            match page.last_evaluated_key() {
                Some(last) => start = Some(last.clone()),
                None => return Ok(migrated),
            }
        }
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
