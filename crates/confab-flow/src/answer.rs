//! Checking a contact's answer against what an `ask` node expects.

use confab_model::{MessageKind, PhoneNumber};
use serde_json::Value;

use crate::definition::AnswerSpec;

/// What the contact sent, as the engine sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub text: Option<String>,
    pub kind: Option<MessageKind>,
    /// The id of a tapped button or list row.
    pub reply_id: Option<String>,
    /// Media attached (URLs or provider ids), for media answers.
    pub media: Vec<Value>,
}

impl Reply {
    pub fn text(text: &str) -> Reply {
        Reply {
            text: Some(text.to_string()),
            kind: Some(MessageKind::Text),
            ..Default::default()
        }
    }

    /// The text, trimmed; the tapped id when there is no text.
    pub fn trimmed(&self) -> &str {
        self.text
            .as_deref()
            .or(self.reply_id.as_deref())
            .unwrap_or("")
            .trim()
    }
}

/// Why an answer was refused: a code a flow can give its own text for, and
/// a friendly default.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

const YES: [&str; 16] = [
    "yes",
    "y",
    "ye",
    "yep",
    "yeah",
    "yea",
    "yup",
    "sure",
    "ok",
    "okay",
    "si",
    "sí",
    "of course",
    "absolutely",
    "certainly",
    "👍",
];
const NO: [&str; 9] = [
    "no",
    "n",
    "nope",
    "nah",
    "not",
    "no thanks",
    "never",
    "not really",
    "👎",
];

/// Lowercase, inner whitespace collapsed, trailing punctuation dropped:
/// "  Yes! " and "yes" are the same answer.
pub fn normalise(s: &str) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    words
        .join(" ")
        .trim_end_matches(['.', '!', '?', ','])
        .to_lowercase()
}

/// Checks `reply` against `spec` and returns the value to store.
pub fn check(
    spec: Option<&AnswerSpec>,
    reply: &Reply,
    pattern: Option<&regex::Regex>,
) -> Result<Value, Refusal> {
    let text = reply.trimmed();
    let Some(spec) = spec else {
        return if text.is_empty() {
            Err(refuse("empty", "Please answer with a message."))
        } else {
            Ok(Value::String(text.to_string()))
        };
    };
    match spec {
        AnswerSpec::Text {
            min_length,
            max_length,
            ..
        } => {
            let n = text.chars().count();
            if n == 0 {
                return Err(refuse("too_short", "Please answer with some text."));
            }
            if let Some(min) = min_length
                && n < *min
            {
                return Err(refuse(
                    "too_short",
                    format!("That is a little short: please use at least {min} characters."),
                ));
            }
            if let Some(max) = max_length
                && n > *max
            {
                return Err(refuse(
                    "too_long",
                    format!("That is too long: please keep it to {max} characters (it has {n})."),
                ));
            }
            if let Some(re) = pattern
                && !re.is_match(text)
            {
                return Err(refuse(
                    "pattern",
                    "That does not look right; please try again.",
                ));
            }
            Ok(Value::String(text.to_string()))
        }
        AnswerSpec::Number { min, max, integer } => {
            let cleaned = text.replace([' ', ','], "");
            let n: f64 = cleaned
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| refuse("not_a_number", "Please answer with a number."))?;
            if *integer && n.fract() != 0.0 {
                return Err(refuse(
                    "not_an_integer",
                    "Please answer with a whole number.",
                ));
            }
            if let Some(min) = min
                && n < *min
            {
                return Err(refuse(
                    "too_small",
                    format!("Please give a number of at least {min}."),
                ));
            }
            if let Some(max) = max
                && n > *max
            {
                return Err(refuse(
                    "too_large",
                    format!("Please give a number of at most {max}."),
                ));
            }
            Ok(if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::from(n as i64)
            } else {
                Value::from(n)
            })
        }
        AnswerSpec::Email => {
            let ok = text.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !text.contains(char::is_whitespace)
                    && text.matches('@').count() == 1
            });
            if ok {
                Ok(Value::String(text.to_lowercase()))
            } else {
                Err(refuse(
                    "not_an_email",
                    "Please send an email address, like name@example.com.",
                ))
            }
        }
        AnswerSpec::Phone => PhoneNumber::parse(text)
            .map(|p| Value::String(p.to_string()))
            .map_err(|_| {
                refuse(
                    "not_a_phone",
                    "Please send a phone number with its country code, like +14155552671.",
                )
            }),
        AnswerSpec::Date => parse_date(text)
            .map(Value::String)
            .ok_or_else(|| refuse("not_a_date", "Please send a date, like 2026-01-31.")),
        AnswerSpec::YesNo { yes, no } => {
            let a = normalise(text);
            let is = |list: &[&str], extra: &[String]| {
                list.contains(&a.as_str()) || extra.iter().any(|e| normalise(e) == a)
            };
            if is(&YES, yes) {
                Ok(Value::Bool(true))
            } else if is(&NO, no) {
                Ok(Value::Bool(false))
            } else {
                Err(refuse("not_yes_no", "Please answer yes or no."))
            }
        }
        AnswerSpec::Choice { options } => {
            let a = normalise(text);
            let by_number = a
                .parse::<usize>()
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| options.get(i));
            let by_word = || {
                options.iter().find(|o| {
                    normalise(&o.value) == a || o.synonyms.iter().any(|s| normalise(s) == a)
                })
            };
            by_number
                .or_else(by_word)
                .map(|o| Value::String(o.value.clone()))
                .ok_or_else(|| {
                    let names: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
                    refuse(
                        "not_a_choice",
                        format!("Please choose one of: {}.", names.join(", ")),
                    )
                })
        }
        AnswerSpec::Media { kinds } => {
            let kind = reply
                .kind
                .filter(|k| k.is_media())
                .ok_or_else(|| refuse("not_media", "Please send a photo or file."))?;
            if !kinds.is_empty() && !kinds.iter().any(|k| k == kind.as_str()) {
                return Err(refuse(
                    "wrong_media",
                    format!("Please send one of: {}.", kinds.join(", ")),
                ));
            }
            Ok(
                serde_json::json!({"kind": kind.as_str(), "caption": reply.text, "media": reply.media}),
            )
        }
    }
}

/// A date in a common form, as YYYY-MM-DD.
fn parse_date(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let num = |p: &str| p.trim().parse::<u32>().ok();
    let (y, m, d) = if a.len() == 4 {
        (num(a)?, num(b)?, num(c)?)
    } else {
        (num(c)?, num(b)?, num(a)?)
    };
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month() as u8,
        date.day()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::ChoiceOption;

    fn text_spec(min: usize, max: usize) -> AnswerSpec {
        AnswerSpec::Text {
            min_length: Some(min),
            max_length: Some(max),
            pattern: None,
        }
    }

    #[test]
    fn text_length_counts_characters_after_trimming() {
        let spec = text_spec(2, 5);
        assert_eq!(
            check(Some(&spec), &Reply::text("  ab  "), None).unwrap(),
            "ab"
        );
        assert_eq!(
            check(Some(&spec), &Reply::text("ñandú"), None).unwrap(),
            "ñandú",
            "5 characters, 7 bytes"
        );
        assert_eq!(
            check(Some(&spec), &Reply::text(" a "), None)
                .unwrap_err()
                .code,
            "too_short"
        );
        assert_eq!(
            check(Some(&spec), &Reply::text("abcdef"), None)
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            check(Some(&spec), &Reply::text("   "), None)
                .unwrap_err()
                .code,
            "too_short"
        );
    }

    #[test]
    fn patterns_apply_to_the_whole_answer() {
        let re = regex::Regex::new(r"^[\p{L} '\-]+$").unwrap();
        let spec = text_spec(2, 128);
        assert!(check(Some(&spec), &Reply::text("José O'Neil-Smith"), Some(&re)).is_ok());
        assert_eq!(
            check(Some(&spec), &Reply::text("R2D2"), Some(&re))
                .unwrap_err()
                .code,
            "pattern"
        );
    }

    #[test]
    fn yes_and_no_have_synonyms_in_any_case_and_spacing() {
        let spec = AnswerSpec::YesNo {
            yes: vec![],
            no: vec![],
        };
        for y in [
            "yes", "Y", " ye ", "Yep", "YEAH", "sure", "ok", "Okay!", "si", "Sí", "  yes.  ",
        ] {
            assert_eq!(
                check(Some(&spec), &Reply::text(y), None).unwrap(),
                true,
                "{y}"
            );
        }
        for n in ["no", "N", "nope", "Nah", "not", " NO "] {
            assert_eq!(
                check(Some(&spec), &Reply::text(n), None).unwrap(),
                false,
                "{n}"
            );
        }
        assert_eq!(
            check(Some(&spec), &Reply::text("maybe"), None)
                .unwrap_err()
                .code,
            "not_yes_no"
        );
        let extra = AnswerSpec::YesNo {
            yes: vec!["ja".into()],
            no: vec!["nee".into()],
        };
        assert_eq!(check(Some(&extra), &Reply::text("Ja"), None).unwrap(), true);
        assert_eq!(
            check(Some(&extra), &Reply::text("nee"), None).unwrap(),
            false
        );
    }

    #[test]
    fn numbers_emails_phones_and_dates() {
        let n = AnswerSpec::Number {
            min: Some(1.0),
            max: Some(5.0),
            integer: true,
        };
        assert_eq!(check(Some(&n), &Reply::text(" 4 "), None).unwrap(), 4);
        assert_eq!(
            check(Some(&n), &Reply::text("4.5"), None).unwrap_err().code,
            "not_an_integer"
        );
        assert_eq!(
            check(Some(&n), &Reply::text("9"), None).unwrap_err().code,
            "too_large"
        );
        assert_eq!(
            check(Some(&n), &Reply::text("four"), None)
                .unwrap_err()
                .code,
            "not_a_number"
        );
        assert_eq!(
            check(Some(&n), &Reply::text("NaN"), None).unwrap_err().code,
            "not_a_number"
        );
        assert_eq!(
            check(
                Some(&AnswerSpec::Email),
                &Reply::text("Ana@Example.com"),
                None
            )
            .unwrap(),
            "ana@example.com"
        );
        assert!(check(Some(&AnswerSpec::Email), &Reply::text("ana@example"), None).is_err());
        assert_eq!(
            check(
                Some(&AnswerSpec::Phone),
                &Reply::text("+1 (415) 555-2671"),
                None
            )
            .unwrap(),
            "+14155552671"
        );
        assert_eq!(
            check(Some(&AnswerSpec::Date), &Reply::text("31/01/2026"), None).unwrap(),
            "2026-01-31"
        );
        assert_eq!(
            check(Some(&AnswerSpec::Date), &Reply::text("2026-02-30"), None)
                .unwrap_err()
                .code,
            "not_a_date"
        );
    }

    #[test]
    fn choices_match_by_number_value_or_synonym() {
        let spec = AnswerSpec::Choice {
            options: vec![
                ChoiceOption {
                    value: "Low".into(),
                    synonyms: vec!["l".into()],
                },
                ChoiceOption {
                    value: "High".into(),
                    synonyms: vec!["urgent".into()],
                },
            ],
        };
        assert_eq!(check(Some(&spec), &Reply::text("2"), None).unwrap(), "High");
        assert_eq!(
            check(Some(&spec), &Reply::text("low"), None).unwrap(),
            "Low"
        );
        assert_eq!(
            check(Some(&spec), &Reply::text("URGENT"), None).unwrap(),
            "High"
        );
        assert!(
            check(Some(&spec), &Reply::text("3"), None)
                .unwrap_err()
                .message
                .contains("Low, High")
        );
    }

    #[test]
    fn media_answers_need_media_of_the_right_kind() {
        let spec = AnswerSpec::Media {
            kinds: vec!["image".into()],
        };
        let photo = Reply {
            kind: Some(MessageKind::Image),
            text: Some("receipt".into()),
            ..Default::default()
        };
        assert_eq!(check(Some(&spec), &photo, None).unwrap()["kind"], "image");
        let doc = Reply {
            kind: Some(MessageKind::Document),
            ..Default::default()
        };
        assert_eq!(
            check(Some(&spec), &doc, None).unwrap_err().code,
            "wrong_media"
        );
        assert_eq!(
            check(Some(&spec), &Reply::text("here"), None)
                .unwrap_err()
                .code,
            "not_media"
        );
    }
}
