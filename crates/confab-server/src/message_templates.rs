//! The catalogue of WhatsApp message templates each bot keeps, and the
//! check of a send against it. A template the provider does not have, in a
//! language it does not have, or with the wrong number of parameters is
//! refused by the provider only after the message was queued, and the
//! contact never hears; so every send and flow that names a template is
//! checked here first and refused with the template named.

use std::collections::BTreeSet;

use confab_channels::meta::{RemoteTemplate, body_component, component};
use confab_model::{Channel, Template};
use confab_store::{StoredTemplate, TemplateHeader, TemplateWrite};
use serde::Deserialize;
use serde_json::Value;

use crate::error::Invalid;

pub const CATEGORIES: [&str; 3] = ["MARKETING", "UTILITY", "AUTHENTICATION"];
/// A declared template can be sent: its owner says it is approved.
pub const APPROVED: &str = "APPROVED";
/// Meta's limit on a template body.
const MAX_BODY: usize = 1024;
/// Meta's limit on a template name.
const MAX_NAME: usize = 512;
/// Meta's limit on a TEXT header.
const MAX_HEADER: usize = 60;
/// What a header holds.
pub const HEADER_FORMATS: [&str; 5] = ["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"];

/// The placeholders a body names (`{{1}}`, `{{first_name}}`), each once, in
/// order of first use; what lies between braces is trimmed.
fn found(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim().to_string();
        if !out.contains(&inner) {
            out.push(inner);
        }
        rest = &after[end + 2..];
    }
    out
}

/// The placeholders of a body, or what is wrong with them: they are
/// numbered from 1 with none missed, or all named (lowercase letters,
/// digits and underscores), as Meta takes them.
pub fn placeholders(body: &str) -> Result<Vec<String>, String> {
    let names = found(body);
    let word = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if let Some(bad) = names.iter().find(|p| !word(p)) {
        return Err(format!(
            "{{{{{bad}}}}} is not a parameter: use {{{{1}}}}, {{{{2}}}}... or names of lowercase letters, digits and underscores"
        ));
    }
    let numbered: Vec<usize> = names.iter().filter_map(|p| p.parse().ok()).collect();
    if numbered.is_empty() {
        return Ok(names);
    }
    if numbered.len() != names.len() {
        return Err("parameters are all numbered or all named, not both".into());
    }
    let mut sorted = numbered.clone();
    sorted.sort_unstable();
    if sorted.iter().enumerate().any(|(i, n)| *n != i + 1) {
        return Err(format!(
            "numbered parameters run from {{{{1}}}} with none missed; this body has {}",
            names
                .iter()
                .map(|n| format!("{{{{{n}}}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(names)
}

/// A template to declare: `POST /templates`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareTemplate {
    /// Meta's name of it: lowercase letters, digits and underscores.
    pub name: String,
    /// e.g. `en_US`, `pt_BR`, `en`.
    pub language: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// The body, with its parameters as `{{1}}`, `{{2}}`... or `{{name}}`.
    pub body: String,
    /// `twilio` or `meta`; optional when the bot has one channel that sends
    /// (or only one channel).
    pub channel: Option<String>,
    /// Twilio's Content SID (HX followed by 32 hex digits): a Twilio
    /// template needs it.
    pub content_sid: Option<String>,
    /// A Meta template's header, if it has one.
    pub header: Option<DeclareHeader>,
}

/// A header: `{"format": "TEXT", "text": "Order {{1}}"}` (one parameter at
/// most), or `{"format": "IMAGE"}` (VIDEO, DOCUMENT, LOCATION), whose media
/// each send gives.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareHeader {
    pub format: String,
    pub text: Option<String>,
}

impl DeclareHeader {
    fn check(&self) -> Result<TemplateHeader, String> {
        let format = self.format.trim().to_ascii_uppercase();
        if !HEADER_FORMATS.contains(&format.as_str()) {
            return Err(format!(
                "format must be one of {}",
                HEADER_FORMATS.join(", ")
            ));
        }
        let text = self.text.as_deref().map(str::trim);
        match (format.as_str(), text) {
            ("TEXT", Some(t)) if !t.is_empty() && t.chars().count() <= MAX_HEADER => {
                let parameters = placeholders(t)?;
                if parameters.len() > 1 {
                    return Err("a TEXT header takes one parameter at most".into());
                }
                Ok(TemplateHeader { format, parameters })
            }
            ("TEXT", _) => Err(format!(
                "a TEXT header needs text of 1 to {MAX_HEADER} characters"
            )),
            (_, Some(_)) => Err(format!(
                "an {format} header has no text: each send gives its media"
            )),
            (_, None) => Ok(TemplateHeader {
                format,
                parameters: Vec::new(),
            }),
        }
    }
}

fn language_ok(l: &str) -> bool {
    let (lang, region) = l.split_once('_').unwrap_or((l, ""));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && (region.is_empty()
            || ((2..=4).contains(&region.len())
                && region.bytes().all(|b| b.is_ascii_alphanumeric())))
}

fn content_sid_ok(s: &str) -> bool {
    s.len() == 34 && s.starts_with("HX") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl DeclareTemplate {
    /// The row to keep, or each field at fault. `channels` are the bot's.
    pub fn check(&self, channels: &[Channel]) -> Result<TemplateWrite, Vec<Invalid>> {
        let mut bad = Vec::new();
        let mut fault = |field: &str, message: String| {
            bad.push(Invalid {
                node: None,
                field: Some(field.into()),
                message: format!("{field}: {message}"),
                line: None,
            })
        };
        let name = self.name.trim();
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            fault(
                "name",
                format!("must be 1 to {MAX_NAME} lowercase letters, digits and underscores"),
            );
        }
        let language = self.language.trim();
        if !language_ok(language) {
            fault(
                "language",
                format!("{language:?} is not a language code such as en, en_US or pt_BR"),
            );
        }
        let category = self.category.trim().to_ascii_uppercase();
        if !CATEGORIES.contains(&category.as_str()) {
            fault(
                "category",
                format!("must be one of {}", CATEGORIES.join(", ")),
            );
        }
        let body = self.body.trim();
        let mut parameters = Vec::new();
        if body.is_empty() || body.chars().count() > MAX_BODY {
            fault("body", format!("must be 1 to {MAX_BODY} characters"));
        } else {
            match placeholders(body) {
                Ok(p) => parameters = p,
                Err(e) => fault("body", e),
            }
        }
        let channel = match self.channel.as_deref() {
            Some(c) => match Channel::parse(c).filter(|c| *c != Channel::Simulator) {
                Some(c) => Some(c),
                None => {
                    fault("channel", "must be twilio or meta".into());
                    None
                }
            },
            None => match channels {
                [one] => Some(*one),
                _ => {
                    fault(
                        "channel",
                        "is required (twilio or meta) unless the bot has one channel that sends"
                            .into(),
                    );
                    None
                }
            },
        };
        let content_sid = self.content_sid.as_deref().map(str::trim);
        match (channel, content_sid) {
            (Some(Channel::Twilio), None) => fault(
                "content_sid",
                "a Twilio template needs its Content SID (HX followed by 32 hex digits)".into(),
            ),
            (Some(Channel::Twilio), Some(sid)) if !content_sid_ok(sid) => fault(
                "content_sid",
                format!("{sid:?} is not a Content SID (HX followed by 32 hex digits)"),
            ),
            (Some(Channel::Meta), Some(_)) => fault(
                "content_sid",
                "goes with a Twilio template; Meta names a template by name and language".into(),
            ),
            _ => {}
        }
        let header = match (&self.header, channel) {
            (None, _) => None,
            (Some(_), Some(Channel::Twilio)) => {
                fault(
                    "header",
                    "goes with a Meta template; a Twilio template's header is in its Content"
                        .into(),
                );
                None
            }
            (Some(h), _) => match h.check() {
                Ok(h) => Some(h),
                Err(e) => {
                    fault("header", e);
                    None
                }
            },
        };
        match channel {
            Some(channel) if bad.is_empty() => Ok(TemplateWrite {
                channel: channel.as_str().into(),
                name: name.into(),
                language: language.into(),
                category,
                status: APPROVED.into(),
                body: body.into(),
                parameters,
                header,
                content_sid: content_sid.map(str::to_string),
                external_id: None,
            }),
            _ => Err(bad),
        }
    }
}

/// The row a template Meta lists is kept as.
pub fn synced(t: &RemoteTemplate) -> TemplateWrite {
    let body = t.body().unwrap_or_default().to_string();
    TemplateWrite {
        channel: Channel::Meta.as_str().into(),
        name: t.name.clone(),
        language: t.language.clone(),
        category: t.category.clone().unwrap_or_default().to_ascii_uppercase(),
        status: t.status.clone().unwrap_or_default().to_ascii_uppercase(),
        parameters: found(&body),
        header: t.header().map(|(format, text)| TemplateHeader {
            parameters: text.map(found).unwrap_or_default(),
            format,
        }),
        body,
        content_sid: None,
        external_id: t.id.clone(),
    }
}

/// A template as a send or a flow node names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Named<'a> {
    pub content_sid: Option<&'a str>,
    pub name: Option<&'a str>,
    pub language: Option<&'a str>,
    /// Twilio: the variables given, by number.
    pub variables: BTreeSet<&'a str>,
    /// Meta: the body component's parameters given.
    pub body_parameters: usize,
    /// Meta: the types of the header component's parameters given
    /// (`text`, `image`...).
    pub header: Vec<&'a str>,
}

/// How many parameters the `body` component of Meta components gives.
fn body_parameters(components: &[Value]) -> usize {
    body_component(components)
        .and_then(|c| c.get("parameters"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// The types of the parameters the `header` component of Meta components gives.
fn header_parameters(components: &[Value]) -> Vec<&str> {
    component(components, "header")
        .and_then(|c| c.get("parameters"))
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| p.get("type").and_then(Value::as_str).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

impl<'a> Named<'a> {
    /// What an API send names.
    pub fn of_send(t: &'a Template) -> Named<'a> {
        Named {
            content_sid: t.content_sid.as_deref(),
            name: t.name.as_deref(),
            language: t.language.as_deref(),
            variables: t
                .variables
                .iter()
                .flatten()
                .map(|(k, _)| k.as_str())
                .collect(),
            body_parameters: body_parameters(t.components.as_deref().unwrap_or(&[])),
            header: header_parameters(t.components.as_deref().unwrap_or(&[])),
        }
    }

    /// What a flow's node names.
    pub fn of_flow(t: &'a confab_flow::definition::TemplateSpec) -> Named<'a> {
        Named {
            content_sid: t.content_sid.as_deref(),
            name: t.name.as_deref(),
            language: t.language.as_deref(),
            variables: t.variables.keys().map(String::as_str).collect(),
            body_parameters: body_parameters(&t.components),
            header: header_parameters(&t.components),
        }
    }

    /// Whether the catalogue has it for `channel`, as given; if not, why
    /// not, naming it.
    pub fn check(&self, channel: Channel, catalogue: &[StoredTemplate]) -> Result<(), String> {
        let of = |c: Channel| catalogue.iter().filter(move |t| t.channel == c.as_str());
        match channel {
            Channel::Twilio => {
                let sid = self.content_sid.unwrap_or_default();
                let t = of(Channel::Twilio)
                    .find(|t| t.content_sid.as_deref() == Some(sid))
                    .ok_or_else(|| {
                        format!(
                            "template {sid} is not in the bot's catalogue: declare it with POST /api/v1/templates"
                        )
                    })?;
                let wanted: BTreeSet<&str> = t.parameters.iter().map(String::as_str).collect();
                if wanted != self.variables {
                    return Err(format!(
                        "template {} ({sid}) takes {} variables ({}); the send gives {} ({})",
                        t.name,
                        wanted.len(),
                        listed(&wanted),
                        self.variables.len(),
                        listed(&self.variables),
                    ));
                }
                Ok(())
            }
            Channel::Meta | Channel::Simulator => {
                let name = self.name.unwrap_or_default();
                let language = self.language.unwrap_or_default();
                let named: Vec<&StoredTemplate> =
                    of(Channel::Meta).filter(|t| t.name == name).collect();
                if named.is_empty() {
                    return Err(format!(
                        "template {name:?} is not in the bot's catalogue: sync it (POST /api/v1/templates/sync) or declare it"
                    ));
                }
                let t = named
                    .iter()
                    .find(|t| t.language == language)
                    .ok_or_else(|| {
                        format!(
                            "template {name:?} has no language {language:?}; it has {}",
                            named
                                .iter()
                                .map(|t| t.language.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                if t.status != APPROVED {
                    return Err(format!(
                        "template {name:?} ({language}) is {} at Meta; only an APPROVED template can be sent",
                        t.status
                    ));
                }
                if t.parameters.len() != self.body_parameters {
                    return Err(format!(
                        "template {name:?} ({language}) takes {} body parameters; the send gives {}",
                        t.parameters.len(),
                        self.body_parameters
                    ));
                }
                self.check_header(t)
            }
        }
    }

    /// Whether a Meta send gives what the template's header takes.
    fn check_header(&self, t: &StoredTemplate) -> Result<(), String> {
        let (name, language, given) = (&t.name, &t.language, &self.header);
        match &t.header {
            None if given.is_empty() => Ok(()),
            None => Err(format!(
                "template {name:?} ({language}) has no header; the send gives {} header parameters",
                given.len()
            )),
            Some(h) if h.format == "TEXT" => {
                if given.len() == h.parameters.len() && given.iter().all(|k| *k == "text") {
                    Ok(())
                } else {
                    Err(format!(
                        "template {name:?} ({language}) takes {} text header parameters; the send gives {} ({})",
                        h.parameters.len(),
                        given.len(),
                        if given.is_empty() {
                            "none".into()
                        } else {
                            given.join(", ")
                        }
                    ))
                }
            }
            Some(h) => {
                let kind = h.format.to_ascii_lowercase();
                if given.as_slice() == [kind.as_str()] {
                    Ok(())
                } else {
                    Err(format!(
                        "template {name:?} ({language}) has a{} {} header: the send gives the {kind} as the header component's one parameter",
                        if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                            "n"
                        } else {
                            ""
                        },
                        h.format
                    ))
                }
            }
        }
    }

    /// Checks a flow's template: each identity it gives (a Content SID for
    /// Twilio, a name for Meta) must be in the catalogue.
    pub fn check_flow(&self, catalogue: &[StoredTemplate]) -> Result<(), String> {
        if self.content_sid.is_some() {
            self.check(Channel::Twilio, catalogue)?;
        }
        if self.name.is_some() {
            self.check(Channel::Meta, catalogue)?;
        }
        Ok(())
    }
}

/// Each node of `flow` whose template the catalogue lacks (or has
/// otherwise): the node, and why.
pub fn flow_problems<'f>(
    flow: &'f confab_flow::Flow,
    catalogue: &[StoredTemplate],
) -> Vec<(&'f str, String)> {
    flow.templates()
        .filter_map(|(node, t)| Some((node, Named::of_flow(t).check_flow(catalogue).err()?)))
        .collect()
}

fn listed(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| format!("{{{{{n}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(w: TemplateWrite) -> StoredTemplate {
        StoredTemplate {
            id: 1,
            bot_id: 1,
            channel: w.channel,
            name: w.name,
            language: w.language,
            category: w.category,
            status: w.status,
            body: w.body,
            parameters: w.parameters,
            header: w.header,
            content_sid: w.content_sid,
            source: "declared".into(),
            external_id: w.external_id,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    fn declare(v: Value) -> Result<TemplateWrite, Vec<Invalid>> {
        serde_json::from_value::<DeclareTemplate>(v)
            .unwrap()
            .check(&[Channel::Meta])
    }

    #[test]
    fn placeholders_are_numbered_in_order_or_named() {
        assert_eq!(
            placeholders("Hi {{1}}, code {{2}}; bye {{1}}").unwrap(),
            ["1", "2"]
        );
        assert_eq!(placeholders("Hi {{ first_name }}").unwrap(), ["first_name"]);
        assert!(placeholders("no parameters").unwrap().is_empty());
        assert!(
            placeholders("{{1}} and {{3}}")
                .unwrap_err()
                .contains("none missed")
        );
        assert!(
            placeholders("{{1}} and {{name}}")
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            placeholders("{{First Name}}")
                .unwrap_err()
                .contains("not a parameter")
        );
        assert!(placeholders("{{}}").is_err());
    }

    #[test]
    fn a_declaration_names_each_field_at_fault() {
        let ok = declare(json!({"name": "order_update", "language": "en_US",
            "category": "utility", "body": "Your order {{1}} ships {{2}}."}))
        .unwrap();
        assert_eq!(ok.category, "UTILITY");
        assert_eq!(ok.channel, "meta");
        assert_eq!(ok.parameters, ["1", "2"]);
        let bad = declare(json!({"name": "Order Update", "language": "english",
            "category": "SPAM", "body": "{{2}}", "content_sid": "HX1"}))
        .unwrap_err();
        let fields: Vec<_> = bad.iter().filter_map(|i| i.field.as_deref()).collect();
        assert_eq!(
            fields,
            ["name", "language", "category", "body", "content_sid"]
        );
        let twilio =
            serde_json::from_value::<DeclareTemplate>(json!({"name": "x", "language": "en",
            "category": "UTILITY", "body": "Hi"}))
            .unwrap();
        let e = twilio.check(&[Channel::Twilio]).unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("content_sid"));
        let e = twilio.check(&[Channel::Twilio, Channel::Meta]).unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("channel"));
    }

    #[test]
    fn sends_are_checked_by_name_language_and_parameters() {
        let catalogue = vec![
            stored(
                declare(json!({"name": "order_update", "language": "en_US",
                "category": "UTILITY", "body": "Order {{1}} ships {{2}}."}))
                .unwrap(),
            ),
            stored(TemplateWrite {
                status: "PENDING".into(),
                ..declare(json!({"name": "promo", "language": "en",
                    "category": "MARKETING", "body": "Sale!"}))
                .unwrap()
            }),
            stored(
                serde_json::from_value::<DeclareTemplate>(
                    json!({"name": "reminder", "language": "en",
                "category": "UTILITY", "body": "See you {{1}}", "channel": "twilio",
                "content_sid": format!("HX{}", "a".repeat(32))}),
                )
                .unwrap()
                .check(&[])
                .unwrap(),
            ),
        ];
        let meta = |name: &str, lang: &str, params: usize| Template {
            name: Some(name.into()),
            language: Some(lang.into()),
            components: Some(vec![json!({"type": "body",
                "parameters": vec![json!({"type": "text", "text": "x"}); params]})]),
            ..Template::default()
        };
        let check = |t: &Template, c| Named::of_send(t).check(c, &catalogue);
        assert!(check(&meta("order_update", "en_US", 2), Channel::Meta).is_ok());
        let e = check(&meta("order_updates", "en_US", 2), Channel::Meta).unwrap_err();
        assert!(
            e.contains("\"order_updates\" is not in the bot's catalogue"),
            "{e}"
        );
        let e = check(&meta("order_update", "fr", 2), Channel::Meta).unwrap_err();
        assert!(e.contains("no language \"fr\"; it has en_US"), "{e}");
        let e = check(&meta("order_update", "en_US", 1), Channel::Meta).unwrap_err();
        assert!(
            e.contains("takes 2 body parameters; the send gives 1"),
            "{e}"
        );
        let e = check(&meta("promo", "en", 0), Channel::Meta).unwrap_err();
        assert!(e.contains("PENDING"), "{e}");

        let twilio = |sid: String, vars: &[&str]| Template {
            content_sid: Some(sid),
            variables: Some(vars.iter().map(|v| (v.to_string(), json!("x"))).collect()),
            ..Template::default()
        };
        let sid = format!("HX{}", "a".repeat(32));
        assert!(check(&twilio(sid.clone(), &["1"]), Channel::Twilio).is_ok());
        let e = check(&twilio(sid.clone(), &["1", "2"]), Channel::Twilio).unwrap_err();
        assert!(
            e.contains("takes 1 variables ({{1}}); the send gives 2"),
            "{e}"
        );
        let e = check(
            &twilio(format!("HX{}", "b".repeat(32)), &[]),
            Channel::Twilio,
        )
        .unwrap_err();
        assert!(e.contains("not in the bot's catalogue"), "{e}");
    }

    #[test]
    fn a_header_takes_its_parameters_or_its_media() {
        let with = |header: Value| {
            stored(
                declare(json!({"name": "order_update", "language": "en_US",
                    "category": "UTILITY", "body": "Order {{1}} ships.", "header": header}))
                .unwrap(),
            )
        };
        let send = |header: Option<Value>| Template {
            name: Some("order_update".into()),
            language: Some("en_US".into()),
            components: Some(
                [json!({"type": "body", "parameters": [{"type": "text", "text": "A1"}]})]
                    .into_iter()
                    .chain(header.map(|p| json!({"type": "header", "parameters": p})))
                    .collect(),
            ),
            ..Template::default()
        };
        let check = |t: &StoredTemplate, h| {
            Named::of_send(&send(h)).check(Channel::Meta, std::slice::from_ref(t))
        };
        let text = with(json!({"format": "text", "text": "Order {{1}}"}));
        assert_eq!(text.header.as_ref().unwrap().parameters, ["1"]);
        assert!(check(&text, Some(json!([{"type": "text", "text": "A1"}]))).is_ok());
        let e = check(&text, None).unwrap_err();
        assert!(
            e.contains("takes 1 text header parameters; the send gives 0 (none)"),
            "{e}"
        );
        let image = with(json!({"format": "IMAGE"}));
        assert!(
            check(
                &image,
                Some(json!([{"type": "image", "image": {"link": "https://x.test/a.png"}}]))
            )
            .is_ok()
        );
        let e = check(&image, Some(json!([{"type": "text", "text": "A1"}]))).unwrap_err();
        assert!(
            e.contains("has an IMAGE header: the send gives the image"),
            "{e}"
        );
        let plain = stored(
            declare(json!({"name": "order_update", "language": "en_US",
                "category": "UTILITY", "body": "Order {{1}} ships."}))
            .unwrap(),
        );
        assert!(check(&plain, None).is_ok());
        let e = check(&plain, Some(json!([{"type": "text", "text": "A1"}]))).unwrap_err();
        assert!(e.contains("has no header"), "{e}");

        for (header, says) in [
            (json!({"format": "GIF"}), "format must be one of"),
            (json!({"format": "TEXT"}), "needs text"),
            (
                json!({"format": "TEXT", "text": "{{1}} and {{2}}"}),
                "one parameter at most",
            ),
            (json!({"format": "IMAGE", "text": "x"}), "has no text"),
        ] {
            let e = declare(json!({"name": "x", "language": "en", "category": "UTILITY",
                "body": "Hi", "header": header}))
            .unwrap_err();
            assert_eq!(e[0].field.as_deref(), Some("header"));
            assert!(e[0].message.contains(says), "{:?}", e[0]);
        }
    }

    #[test]
    fn a_synced_template_keeps_what_meta_says() {
        let remote: RemoteTemplate = serde_json::from_value(json!({
            "id": "920070352646140", "name": "2023_april_promo", "language": "en_US",
            "category": "MARKETING", "status": "REJECTED",
            "components": [{"type": "HEADER", "format": "TEXT", "text": "Fall Sale"},
                {"type": "BODY", "text": "Hi {{1}}, use promo code {{2}}"}]}))
        .unwrap();
        let w = synced(&remote);
        assert_eq!(w.parameters, ["1", "2"]);
        assert_eq!(
            w.header,
            Some(TemplateHeader {
                format: "TEXT".into(),
                parameters: Vec::new()
            })
        );
        assert_eq!(w.status, "REJECTED");
        assert_eq!(w.external_id.as_deref(), Some("920070352646140"));
    }
}
