//! Collections: named sets of records with typed fields, declared in YAML
//! next to the flows. Checking a record against its collection is pure and
//! lives here; storing records is the store's business.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A collections file: `collections: [...]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionsFile {
    pub collections: Vec<Collection>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Collection {
    /// Lowercase letters, digits and underscores.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub fields: BTreeMap<String, Field>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    /// For `string`: the most characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// For `enum`: the allowed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Text,
    Integer,
    Number,
    Boolean,
    /// RFC 3339, stored in UTC.
    Datetime,
    Enum,
}

/// A record that does not fit its collection, naming the field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Fields every record has, kept by the store.
pub const SYSTEM_FIELDS: [&str; 4] = ["id", "contact_id", "created_at", "updated_at"];

impl Collection {
    /// Checks `fields` and returns them normalised (datetimes in UTC,
    /// integers from whole numbers, nulls dropped). With `partial`, absent
    /// required fields are allowed (a PATCH).
    pub fn check(
        &self,
        fields: &Map<String, Value>,
        partial: bool,
    ) -> Result<Map<String, Value>, FieldError> {
        let mut out = Map::new();
        for (name, value) in fields {
            if SYSTEM_FIELDS.contains(&name.as_str()) {
                continue;
            }
            let field = self.fields.get(name).ok_or_else(|| {
                err(
                    name,
                    format!("collection {} has no field {name}", self.name),
                )
            })?;
            if value.is_null() {
                if field.required {
                    return Err(err(name, "is required"));
                }
                out.insert(name.clone(), Value::Null);
                continue;
            }
            out.insert(name.clone(), field.check(name, value)?);
        }
        if !partial {
            for (name, field) in &self.fields {
                if field.required && fields.get(name).is_none_or(Value::is_null) {
                    return Err(err(name, "is required"));
                }
            }
        }
        Ok(out)
    }
}

impl Field {
    fn check(&self, name: &str, v: &Value) -> Result<Value, FieldError> {
        match self.kind {
            FieldType::String | FieldType::Text => {
                let s = v.as_str().ok_or_else(|| err(name, "must be text"))?;
                if s.contains('\0') {
                    return Err(err(name, "must not contain NUL characters"));
                }
                if let Some(max) = self.max_length
                    && s.chars().count() > max
                {
                    return Err(err(name, format!("is longer than {max} characters")));
                }
                Ok(Value::String(s.to_string()))
            }
            FieldType::Integer => {
                let n = v
                    .as_i64()
                    .or_else(|| {
                        v.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| err(name, "must be a whole number"))?;
                Ok(Value::from(n))
            }
            FieldType::Number => {
                let n = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|f: &f64| f.is_finite())
                    .ok_or_else(|| err(name, "must be a number"))?;
                Ok(Value::from(n))
            }
            FieldType::Boolean => match v {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
                _ => Err(err(name, "must be true or false")),
            },
            FieldType::Datetime => {
                let s = v
                    .as_str()
                    .ok_or_else(|| err(name, "must be an RFC 3339 time"))?;
                let t =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| err(name, format!("{s:?} is not an RFC 3339 time")))?;
                Ok(Value::String(crate::template::format_time(
                    t.to_offset(time::UtcOffset::UTC),
                )))
            }
            FieldType::Enum => {
                let s = v.as_str().ok_or_else(|| err(name, "must be text"))?;
                self.values
                    .iter()
                    .find(|x| x.eq_ignore_ascii_case(s.trim()))
                    .map(|x| Value::String(x.clone()))
                    .ok_or_else(|| err(name, format!("must be one of {}", self.values.join(", "))))
            }
        }
    }
}

/// Problems with a collections file itself.
pub fn check_collections(file: &CollectionsFile) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in &file.collections {
        if c.name.is_empty()
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            out.push(format!(
                "collection {:?}: the name must be lowercase letters, digits and underscores",
                c.name
            ));
        }
        if !seen.insert(&c.name) {
            out.push(format!("collection {}: defined twice", c.name));
        }
        for (name, f) in &c.fields {
            if SYSTEM_FIELDS.contains(&name.as_str()) {
                out.push(format!(
                    "collection {}: field {name} is kept by Confab and cannot be declared",
                    c.name
                ));
            }
            if f.kind == FieldType::Enum && f.values.is_empty() {
                out.push(format!(
                    "collection {}: enum field {name} lists no values",
                    c.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reviews() -> Collection {
        serde_norway::from_str(
            r#"
name: reviews
fields:
  user_name: { type: string, max_length: 5, required: true }
  stars: { type: integer }
  score: { type: number }
  again: { type: boolean }
  at: { type: datetime }
  level: { type: enum, values: [Low, High] }
  notes: { type: text }
"#,
        )
        .unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn records_are_checked_and_normalised() {
        let c = reviews();
        let ok = c
            .check(&obj(json!({"user_name": "Ana", "stars": 4.0, "score": "4.5", "again": true, "at": "2026-01-18T16:30:22+02:00", "level": "high"})), false)
            .unwrap();
        assert_eq!(ok["stars"], 4);
        assert_eq!(ok["score"], 4.5);
        assert_eq!(ok["at"], "2026-01-18T14:30:22Z");
        assert_eq!(ok["level"], "High");
    }

    #[test]
    fn a_bad_record_names_its_field() {
        let c = reviews();
        let bad = |v: Value| c.check(&obj(v), false).unwrap_err();
        assert_eq!(bad(json!({"stars": 1})).field, "user_name");
        assert_eq!(
            bad(json!({"user_name": "Anastasia"})).message,
            "is longer than 5 characters"
        );
        assert_eq!(bad(json!({"user_name": "A", "stars": 1.5})).field, "stars");
        assert_eq!(
            bad(json!({"user_name": "A", "again": "yes"})).field,
            "again"
        );
        assert_eq!(bad(json!({"user_name": "A", "at": "tomorrow"})).field, "at");
        assert!(
            bad(json!({"user_name": "A", "level": "Mid"}))
                .message
                .contains("Low, High")
        );
        assert!(
            bad(json!({"user_name": "A", "colour": "red"}))
                .message
                .contains("no field colour")
        );
        assert!(
            c.check(&obj(json!({"stars": 2})), true).is_ok(),
            "a patch may leave required fields out"
        );
    }
}
