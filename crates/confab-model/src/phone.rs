use std::fmt;

use serde::{Deserialize, Serialize};

/// A phone number in E.164 form (`+14155552671`).
///
/// Parsing accepts what providers and people write: a `whatsapp:` prefix
/// (Twilio), digits without `+` (Meta's `wa_id`), spaces, dashes, dots and
/// brackets. The country calling code must exist and the number must have
/// 8 to 15 digits, as E.164 allows; numbers in fictional ranges such as
/// 555 are accepted because test and sandbox numbers live there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("'{0}' is not a phone number in international form (e.g. +14155552671)")]
    Invalid(String),
}

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let raw = input.trim();
        let raw = raw.strip_prefix("whatsapp:").unwrap_or(raw).trim();
        if raw.is_empty() {
            return Err(PhoneError::Empty);
        }
        let invalid = || PhoneError::Invalid(truncate(input, 40));
        let mut digits = String::with_capacity(16);
        for (i, c) in raw.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(invalid()),
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(invalid());
        }
        let candidate = format!("+{digits}");
        if known::holds(&candidate) {
            return Ok(PhoneNumber(candidate));
        }
        let parsed = phonenumber::parse(None, &candidate).map_err(|_| invalid())?;
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        if e164 != candidate {
            return Err(invalid());
        }
        known::add(&e164);
        Ok(PhoneNumber(e164))
    }

    /// Loads the numbering plans that the first parse needs (86 ms in a
    /// release build), so that the first message after a start does not
    /// wait for them while it holds a webhook handler's thread.
    pub fn warm() {
        let _ = phonenumber::parse(None, "+14155552671");
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as Meta's Graph API writes a recipient.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The address Twilio's WhatsApp API uses: `whatsapp:+14155552671`.
    pub fn whatsapp_address(&self) -> String {
        format!("whatsapp:{}", self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PhoneNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Numbers accepted before. The phonenumber crate matches a number against
/// its country's metadata with regular expressions: 14% of the webhook
/// handlers' time in the flow benchmark, where every contact writes again
/// and again. The answer depends on the number alone, so it is kept; the
/// set is emptied when full, which bounds it whatever numbers arrive.
mod known {
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex};

    const MAX: usize = 16_384;

    static NUMBERS: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

    pub(super) fn holds(e164: &str) -> bool {
        NUMBERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(e164)
    }

    pub(super) fn add(e164: &str) {
        let mut numbers = NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        if numbers.len() >= MAX {
            numbers.clear();
        }
        numbers.insert(e164.to_string());
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_providers_send() {
        for input in [
            "+14155552671",
            "whatsapp:+14155552671",
            "14155552671",
            "+1 (415) 555-2671",
            " +1.415.555.2671 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().as_str(),
                "+14155552671",
                "{input}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("+27123456789").unwrap().digits(),
            "27123456789"
        );
        assert_eq!(
            PhoneNumber::parse("+15550001111").unwrap().as_str(),
            "+15550001111"
        );
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for input in [
            "",
            "  ",
            "hello",
            "+1",
            "+12345",
            "+1234567890123456",
            "+0123456789",
            "415-555-2671x",
            "++14155552671",
        ] {
            assert!(PhoneNumber::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn a_number_accepted_before_is_accepted_again_in_any_form() {
        let first = PhoneNumber::parse("+1 (628) 555-0199").unwrap();
        assert!(known::holds("+16285550199"));
        for again in ["+16285550199", "whatsapp:+16285550199", "16285550199"] {
            assert_eq!(PhoneNumber::parse(again).unwrap(), first, "{again}");
        }
        // Refused numbers are not kept: they are refused again.
        assert!(PhoneNumber::parse("+999123456789").is_err());
        assert!(!known::holds("+999123456789"));
        assert!(PhoneNumber::parse("+999123456789").is_err());
    }

    #[test]
    fn whatsapp_address_round_trips() {
        let n = PhoneNumber::parse("+14155552671").unwrap();
        assert_eq!(n.whatsapp_address(), "whatsapp:+14155552671");
        assert_eq!(PhoneNumber::parse(&n.whatsapp_address()).unwrap(), n);
    }
}
