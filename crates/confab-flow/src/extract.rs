//! Structured extraction: the JSON Schema an `ai` node asks the model to
//! fill, and the check of what comes back.
//!
//! Only a flat subset is taken — an object of string, number, integer,
//! boolean and enum properties — because that is what a flow can use in
//! its next steps, and what every OpenAI-compatible server can enforce.

use serde_json::{Map, Value, json};

const KINDS: [&str; 4] = ["string", "number", "integer", "boolean"];
const KEYWORDS: [&str; 8] = [
    "type",
    "description",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
];

/// Why a schema is outside the subset, naming the property.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    let o = schema
        .as_object()
        .ok_or("extract must be a JSON Schema object")?;
    if o.get("type").and_then(Value::as_str) != Some("object") {
        return Err("extract: the schema's type must be object".into());
    }
    for k in o.keys() {
        if ![
            "type",
            "properties",
            "required",
            "additionalProperties",
            "description",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("extract: `{k}` is not supported at the top level"));
        }
    }
    let props = o
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
        .ok_or("extract: the schema needs properties")?;
    for (name, p) in props {
        let p = p
            .as_object()
            .ok_or_else(|| format!("extract: property {name} must be an object"))?;
        for k in p.keys() {
            if !KEYWORDS.contains(&k.as_str()) {
                return Err(format!("extract: property {name}: `{k}` is not supported"));
            }
        }
        match (p.get("type"), p.get("enum")) {
            (_, Some(Value::Array(values))) if !values.is_empty() => {}
            (_, Some(_)) => return Err(format!("extract: property {name}: enum must list values")),
            (Some(Value::String(t)), None) if KINDS.contains(&t.as_str()) => {}
            (Some(t), None) => {
                return Err(format!(
                    "extract: property {name}: type {t} is not one of {}",
                    KINDS.join(", ")
                ));
            }
            (None, None) => {
                return Err(format!("extract: property {name} needs a type or an enum"));
            }
        }
        if let Some(pat) = p.get("pattern") {
            let pat = pat
                .as_str()
                .ok_or_else(|| format!("extract: property {name}: pattern must be text"))?;
            regex::Regex::new(pat)
                .map_err(|e| format!("extract: property {name}: bad pattern: {e}"))?;
        }
    }
    if let Some(req) = o.get("required") {
        let req = req
            .as_array()
            .ok_or("extract: required must be a list of property names")?;
        for r in req {
            let r = r.as_str().unwrap_or_default();
            if !props.contains_key(r) {
                return Err(format!("extract: required names no property {r:?}"));
            }
        }
    }
    Ok(())
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The schema as OpenAI's strict structured output wants it: every
/// property listed as required, optional ones allowed to be null, no
/// other properties.
pub fn strict_form(schema: &Value) -> Value {
    let req = required(schema);
    let mut props = Map::new();
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        for (name, spec) in p {
            let mut spec = spec.clone();
            if !req.contains(&name.as_str())
                && let Some(o) = spec.as_object_mut()
            {
                match o.get("type").cloned() {
                    Some(Value::String(t)) => {
                        o.insert("type".into(), json!([t, "null"]));
                    }
                    _ if o.contains_key("enum") => {
                        if let Some(Value::Array(values)) = o.get_mut("enum") {
                            values.push(Value::Null);
                        }
                    }
                    _ => {}
                }
            }
            props.insert(name.clone(), spec);
        }
    }
    let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
    json!({
        "type": "object",
        "properties": props,
        "required": names,
        "additionalProperties": false,
    })
}

/// The model's answer checked against the schema: the object with its
/// null (not found) properties left out, or what does not fit.
pub fn validate(schema: &Value, answer: &str) -> Result<Map<String, Value>, String> {
    let text = answer.trim();
    // Some servers wrap JSON in a Markdown code fence.
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("the answer is not a JSON object".into());
    };
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = Map::new();
    for (name, v) in obj {
        let Some(spec) = props.get(&name) else {
            continue;
        };
        if v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()) {
            continue;
        }
        fits(&name, spec, &v)?;
        out.insert(name, v);
    }
    for r in required(schema) {
        if !out.contains_key(r) {
            return Err(format!("{r} is missing"));
        }
    }
    Ok(out)
}

fn fits(name: &str, spec: &Value, v: &Value) -> Result<(), String> {
    if let Some(values) = spec.get("enum").and_then(Value::as_array) {
        return if values.contains(v) {
            Ok(())
        } else {
            Err(format!("{name}: {v} is not one of the allowed values"))
        };
    }
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("string");
    let ok = match kind {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        _ => false,
    };
    if !ok {
        return Err(format!("{name}: {v} is not of type {kind}"));
    }
    if let Some(s) = v.as_str() {
        let chars = s.chars().count() as u64;
        if spec
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| chars < m)
            || spec
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| chars > m)
        {
            return Err(format!("{name}: {s:?} has the wrong length"));
        }
        if let Some(p) = spec.get("pattern").and_then(Value::as_str) {
            let re =
                crate::pattern::compiled(p).map_err(|e| format!("{name}: bad pattern: {e}"))?;
            if !re.is_match(s) {
                return Err(format!("{name}: {s:?} does not match {p}"));
            }
        }
    }
    if let Some(n) = v.as_f64()
        && (spec
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
            || spec
                .get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m))
    {
        return Err(format!("{name}: {n} is out of range"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "order_number": {"type": "string", "pattern": "^[A-Z]{2}-\\d+$"},
                "severity": {"enum": ["Low", "Medium", "High"]},
                "quantity": {"type": "integer", "minimum": 1}
            },
            "required": ["order_number"]
        })
    }

    #[test]
    fn accepts_the_subset_and_names_what_is_outside_it() {
        assert_eq!(check_schema(&order_schema()), Ok(()));
        let bad = |s: Value| check_schema(&s).unwrap_err();
        assert!(bad(json!({"type": "array"})).contains("must be object"));
        assert!(bad(json!({"type": "object", "properties": {}})).contains("needs properties"));
        assert!(
            bad(json!({"type": "object", "properties": {"a": {"type": "array"}}}))
                .contains("property a")
        );
        assert!(
            bad(json!({"type": "object", "properties": {"a": {"type": "string", "items": {}}}}))
                .contains("`items`")
        );
        assert!(
            bad(json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}))
                .contains("bad pattern")
        );
        assert!(
            bad(json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}))
                .contains("\"b\"")
        );
    }

    #[test]
    fn strict_form_lists_every_property_and_lets_optional_ones_be_null() {
        let s = strict_form(&order_schema());
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["required"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            s["properties"]["quantity"]["type"],
            json!(["integer", "null"])
        );
        assert_eq!(s["properties"]["order_number"]["type"], json!("string"));
        assert!(
            s["properties"]["severity"]["enum"]
                .as_array()
                .is_some_and(|v| v.contains(&Value::Null))
        );
    }

    #[test]
    fn validates_answers() {
        let s = order_schema();
        let got = validate(
            &s,
            r#"{"order_number": "PO-12", "severity": "High", "quantity": null}"#,
        )
        .unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"order_number": "PO-12", "severity": "High"})
        );
        let fenced = "```json\n{\"order_number\": \"PO-7\"}\n```";
        assert!(validate(&s, fenced).is_ok());
        let err = |a: &str| validate(&s, a).unwrap_err();
        assert!(err("not json").contains("not JSON"));
        assert!(err("[1]").contains("not a JSON object"));
        assert!(err(r#"{"severity": "High"}"#).contains("order_number is missing"));
        assert!(err(r#"{"order_number": ""}"#).contains("missing"));
        assert!(err(r#"{"order_number": "12"}"#).contains("does not match"));
        assert!(err(r#"{"order_number": "PO-1", "severity": "Huge"}"#).contains("allowed"));
        assert!(err(r#"{"order_number": "PO-1", "quantity": 0}"#).contains("out of range"));
        assert!(
            err(r#"{"order_number": "PO-1", "quantity": 1.5}"#).contains("not of type integer")
        );
    }
}
