//! A selection as people write it: statuses, a type, and times as RFC 3339 or "how long ago".
//! One parser for `events list` and `replay` flags and for the console's query parameters.

use super::{Page, Selection, Status};

/// What a selection's fields accept, for the error that names one.
const STATUSES: &str = "received, enqueued, processing, processed, failed";
const TIMES: &str = "an RFC 3339 time (2026-05-20T12:00:00Z) or how long ago (30s, 15m, 2h, 7d)";

/// A field of a selection that does not parse: `field` is the flag's or parameter's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?}: accepts {accepts}")]
pub struct BadSelection {
    pub field: &'static str,
    pub value: String,
    pub accepts: &'static str,
}

/// The fields of a selection as given; empty strings count as not given.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectionText<'a> {
    /// Each may hold several, comma-separated.
    pub statuses: &'a [String],
    pub kind: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

impl SelectionText<'_> {
    /// Whether any field is given.
    pub fn given(&self) -> bool {
        self.statuses.iter().any(|s| !s.trim().is_empty())
            || [self.kind, self.since, self.until]
                .iter()
                .any(|f| f.is_some_and(|t| !t.trim().is_empty()))
    }
}

impl Selection {
    /// Parses `text` into a selection of `limit` records a page; relative times count back
    /// from `now_ms`.
    pub fn parse(
        text: SelectionText<'_>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Selection, BadSelection> {
        let statuses = text
            .statuses
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Status>().map_err(|_| BadSelection {
                    field: "status",
                    value: s.to_string(),
                    accepts: STATUSES,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = |field, t: Option<&str>| {
            given(t)
                .map(|t| {
                    point_in_time(t, now_ms).ok_or_else(|| BadSelection {
                        field,
                        value: t.to_string(),
                        accepts: TIMES,
                    })
                })
                .transpose()
        };
        Ok(Selection {
            statuses,
            kind: given(text.kind).map(str::to_string),
            since: time("since", text.since)?,
            until: time("until", text.until)?,
            limit,
        })
    }
}

/// A field as given: trimmed, and `None` when empty.
fn given(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// RFC 3339, or a relative time (`90s`, `15m`, `2h`, `7d` ago), written as stored times are.
fn point_in_time(text: &str, now_ms: i64) -> Option<String> {
    let relative = text
        .strip_suffix(['s', 'm', 'h', 'd'])
        .filter(|n| !n.starts_with('+'))
        .and_then(|n| n.parse::<i64>().ok())
        .zip(text.chars().last());
    let ms = match relative {
        Some((n, unit)) => {
            let seconds = match unit {
                's' => n,
                'm' => n.saturating_mul(60),
                'h' => n.saturating_mul(3600),
                _ => n.saturating_mul(86_400),
            };
            now_ms.saturating_sub(seconds.saturating_mul(1000))
        }
        None => crate::clock::parse_rfc3339(text)?,
    };
    Some(crate::clock::rfc3339(ms))
}

impl Page {
    /// The page as lists show it: bodies stay out (`events show --json` and the console's
    /// detail have them).
    pub fn listed(mut self) -> Page {
        for record in &mut self.records {
            record.body = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn parse(statuses: &[&str], since: Option<&str>) -> Result<Selection, BadSelection> {
        let statuses: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
        Selection::parse(
            SelectionText {
                statuses: &statuses,
                since,
                ..Default::default()
            },
            50,
            NOW,
        )
    }

    #[test]
    fn statuses_are_comma_separated_or_repeated() {
        let s = parse(&["failed,processed", " received "], None).unwrap();
        assert_eq!(
            s.statuses,
            [Status::Failed, Status::Processed, Status::Received]
        );
    }

    #[test]
    fn relative_times_count_back_from_now() {
        for (text, back_ms) in [
            ("90s", 90_000),
            ("15m", 900_000),
            ("2h", 7_200_000),
            ("7d", 604_800_000),
        ] {
            let s = parse(&[], Some(text)).unwrap();
            assert_eq!(
                s.since,
                Some(crate::clock::rfc3339(NOW - back_ms)),
                "{text}"
            );
        }
        let s = parse(&[], Some("2026-05-20T12:00:00Z")).unwrap();
        assert_eq!(s.since.as_deref(), Some("2026-05-20T12:00:00.000Z"));
    }

    #[test]
    fn a_bad_field_is_named_with_what_it_accepts() {
        let e = parse(&["done"], None).unwrap_err();
        assert_eq!(e.field, "status");
        assert!(
            e.to_string()
                .starts_with("status \"done\": accepts received"),
            "{e}"
        );
        for bad in ["yesterday", "2h ago", "+2h", "h", "2026-13-01T00:00:00Z"] {
            let e = parse(&[], Some(bad)).unwrap_err();
            assert_eq!((e.field, e.value.as_str()), ("since", bad));
        }
    }

    #[test]
    fn empty_fields_are_not_given() {
        let empty = [String::new()];
        let text = SelectionText {
            statuses: &empty,
            kind: Some(""),
            since: Some(" "),
            until: None,
        };
        assert!(!text.given());
        assert_eq!(
            Selection::parse(text, 5, NOW).unwrap(),
            Selection {
                limit: 5,
                ..Default::default()
            }
        );
    }
}
