//! The Zof event envelope and its validation (docs/design.md sections 1 and 3).
//!
//! Parsed only after the signature is verified. `parse` either returns an envelope whose every
//! required field is valid, or says which field is wrong, in words fit for the 400 body.

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Longest event id and event type accepted.
pub const MAX_ID_LEN: usize = 128;

/// A verified, well-formed Zof event.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub kind: String,
    pub created: String,
    pub organization_id: Option<String>,
    pub run_id: Option<String>,
    /// `data.object`, as sent.
    pub object: Value,
}

/// Why a signed body is not a valid envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field id must be 1-128 characters of A-Z a-z 0-9 _ . : -")]
    BadId,
    #[error("field type must be a non-empty string of at most 128 printable characters")]
    BadType,
    #[error("field created must be an RFC 3339 timestamp")]
    BadCreated,
    #[error("field data.object must be an object")]
    BadObject,
    #[error("field {0} must be a string")]
    NotAString(&'static str),
}

/// Whether `id` is a valid event id: 1–128 characters of `[A-Za-z0-9_.:-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Lowercase hex SHA-256 of the body: what tells a duplicate from a conflict.
pub fn body_sha256(body: &[u8]) -> String {
    const_hex::encode(Sha256::digest(body))
}

/// Parses JSON refusing duplicate object keys anywhere: `{"id":"a","id":"b"}` means one thing to
/// us and maybe another to the next parser, so a signed body must not be ambiguous.
pub fn strict_json(body: &[u8]) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Strict;

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(Strict)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

pub fn parse(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    let value = strict_json(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    let Value::Object(top) = value else {
        return Err(EnvelopeError::NotAnObject);
    };
    let id = match top.get("id") {
        None | Some(Value::Null) => return Err(EnvelopeError::Missing("id")),
        Some(Value::String(id)) if valid_id(id) => id.clone(),
        Some(_) => return Err(EnvelopeError::BadId),
    };
    let kind = match top.get("type") {
        None | Some(Value::Null) => return Err(EnvelopeError::Missing("type")),
        Some(Value::String(t))
            if !t.is_empty()
                && t.chars().count() <= MAX_ID_LEN
                && t.chars().all(|c| !c.is_control() && !c.is_whitespace()) =>
        {
            t.clone()
        }
        Some(_) => return Err(EnvelopeError::BadType),
    };
    let created = match top.get("created") {
        None | Some(Value::Null) => return Err(EnvelopeError::Missing("created")),
        Some(Value::String(c)) if OffsetDateTime::parse(c, &Rfc3339).is_ok() => c.clone(),
        Some(_) => return Err(EnvelopeError::BadCreated),
    };
    let object = match top.get("data").and_then(|d| d.get("object")) {
        None | Some(Value::Null) => return Err(EnvelopeError::Missing("data.object")),
        Some(o @ Value::Object(_)) => o.clone(),
        Some(_) => return Err(EnvelopeError::BadObject),
    };
    let organization_id =
        optional_string(&object, "organization_id", "data.object.organization_id")?;
    let run_id = optional_string(&object, "run_id", "data.object.run_id")?;
    Ok(Envelope {
        id,
        kind,
        created,
        organization_id,
        run_id,
        object,
    })
}

fn optional_string(
    object: &Value,
    key: &str,
    name: &'static str,
) -> Result<Option<String>, EnvelopeError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(EnvelopeError::NotAString(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"evt_abc123","type":"run.completed","created":"2026-05-20T12:00:00Z",
        "data":{"object":{"id":"resource_id","organization_id":"org_abc","run_id":"run_xyz"}}}"#;

    #[test]
    fn documented_envelope_parses() {
        let e = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(e.id, "evt_abc123");
        assert_eq!(e.kind, "run.completed");
        assert_eq!(e.organization_id.as_deref(), Some("org_abc"));
        assert_eq!(e.run_id.as_deref(), Some("run_xyz"));
    }

    #[test]
    fn invalid_envelopes_say_why() {
        let with = |field: &str, value: &str| {
            let mut v: Value = serde_json::from_str(GOOD).unwrap();
            if value == "<absent>" {
                v.as_object_mut().unwrap().remove(field);
            } else {
                v[field] = serde_json::from_str(value).unwrap();
            }
            parse(v.to_string().as_bytes())
        };
        assert!(matches!(parse(b"{"), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(parse(b""), Err(EnvelopeError::NotJson(_))));
        assert_eq!(parse(b"[1]"), Err(EnvelopeError::NotAnObject));
        assert_eq!(with("id", "<absent>"), Err(EnvelopeError::Missing("id")));
        assert_eq!(with("id", "\"\""), Err(EnvelopeError::BadId));
        assert_eq!(with("id", "\"evt 1\""), Err(EnvelopeError::BadId));
        assert_eq!(with("id", "\"évt\""), Err(EnvelopeError::BadId));
        assert_eq!(with("id", "42"), Err(EnvelopeError::BadId));
        assert_eq!(
            with("id", &format!("\"{}\"", "a".repeat(129))),
            Err(EnvelopeError::BadId)
        );
        assert!(with("id", &format!("\"{}\"", "a".repeat(128))).is_ok());
        assert!(with("id", "\"A-z_0.9:x\"").is_ok());
        assert_eq!(
            with("type", "<absent>"),
            Err(EnvelopeError::Missing("type"))
        );
        assert_eq!(with("type", "\"\""), Err(EnvelopeError::BadType));
        assert_eq!(
            with("type", "\"run completed\""),
            Err(EnvelopeError::BadType)
        );
        assert_eq!(with("type", "[]"), Err(EnvelopeError::BadType));
        assert_eq!(
            with("created", "<absent>"),
            Err(EnvelopeError::Missing("created"))
        );
        assert_eq!(
            with("created", "\"yesterday\""),
            Err(EnvelopeError::BadCreated)
        );
        assert_eq!(
            with("created", "1716206400"),
            Err(EnvelopeError::BadCreated)
        );
        assert_eq!(
            with("data", "<absent>"),
            Err(EnvelopeError::Missing("data.object"))
        );
        assert_eq!(
            with("data", "{}"),
            Err(EnvelopeError::Missing("data.object"))
        );
        assert_eq!(
            with("data", "{\"object\":[]}"),
            Err(EnvelopeError::BadObject)
        );
        assert_eq!(
            with("data", "{\"object\":{\"run_id\":7}}"),
            Err(EnvelopeError::NotAString("data.object.run_id"))
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for body in [
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":"e","type":"t","created":"2026-05-20T12:00:00Z","data":{"object":{"run_id":"1","run_id":"2"}}}"#,
            r#"{"x":[{"k":1,"k":1}]}"#,
        ] {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, EnvelopeError::NotJson(m) if m.contains("duplicate key")),
                "{body}: {err}"
            );
        }
        // Same key in different objects is fine, and values keep their JSON types.
        let v = strict_json(br#"{"a":{"k":1},"b":{"k":[1.5,-2,true,null,"s"]}}"#).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a":{"k":1},"b":{"k":[1.5,-2,true,null,"s"]}})
        );
        assert!(strict_json(b"{} x").is_err(), "trailing bytes");
    }

    #[test]
    fn body_hash_is_hex_sha256() {
        assert_eq!(
            body_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
