//! `http`: a templated request; the response saved, on by its status.

use super::{Kind, Then, store};
use crate::definition::HttpNode;
use crate::engine::{Broken, Stepper};
use crate::run::{EffectResult, Request};

impl Kind for HttpNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let url = s.render(&self.url)?;
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), s.render(v)?)))
            .collect::<Result<Vec<_>, Broken>>()?;
        let body = self.body.as_ref().map(|b| s.render_json(b)).transpose()?;
        s.request(Request::Http {
            method: self.method.to_uppercase(),
            url,
            headers,
            body,
            timeout_ms: self.timeout_seconds.saturating_mul(1000),
        });
        Ok(Then::Wait)
    }

    fn takes_failures(&self) -> bool {
        true
    }

    fn result(&self, s: &mut Stepper, result: EffectResult) -> Option<Result<(), Broken>> {
        let target = match result {
            EffectResult::Http { status, body } => {
                store(
                    s,
                    &self.save_as,
                    serde_json::json!({"status": status, "body": body}),
                );
                match self.on_status.get(&status.to_string()) {
                    Some(t) => Some(t.clone()),
                    None if (200..300).contains(&status) => self.next.clone(),
                    None => self.on_failure.clone().or_else(|| self.next.clone()),
                }
            }
            EffectResult::Failed { error } => {
                store(
                    s,
                    &self.save_as,
                    serde_json::json!({"status": 0, "error": error}),
                );
                self.on_failure.clone().or_else(|| self.next.clone())
            }
            _ => return None,
        };
        Some(s.go(target))
    }

    fn problems(&self, _flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&self.method.to_uppercase().as_str())
        {
            out.push(format!(
                "method {:?} is not GET, POST, PUT, PATCH or DELETE",
                self.method
            ));
        }
        if self.timeout_seconds == 0 || self.timeout_seconds > 60 {
            out.push("timeout_seconds must be 1 to 60".into());
        }
        for code in self.on_status.keys() {
            if !code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)) {
                out.push(format!("on_status key {code:?} is not an HTTP status"));
            }
        }
        out
    }
}
