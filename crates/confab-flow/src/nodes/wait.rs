//! `wait`: a durable timer (some seconds, or until a time), then on.

use super::{Kind, Then};
use crate::definition::WaitNode;
use crate::engine::{Broken, Stepper};
use crate::run::RunStatus;

impl Kind for WaitNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let at = match (&self.seconds, &self.until) {
            (Some(secs), _) => s.now_ms.saturating_add((*secs as i64).saturating_mul(1000)),
            (None, Some(expr)) => {
                let v = s.eval(expr)?;
                let text = v.as_str().unwrap_or_default();
                let t = time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|_| {
                    Broken(format!(
                        "wait {}: {text:?} is not an RFC 3339 time",
                        self.id
                    ))
                })?;
                (t.unix_timestamp_nanos() / 1_000_000) as i64
            }
            (None, None) => {
                return Err(Broken(format!(
                    "wait {} says neither seconds nor until",
                    self.id
                )));
            }
        };
        s.start_timer(at);
        s.run.status = RunStatus::WaitingTimer;
        Ok(Then::Wait)
    }

    fn timer(&self, s: &mut Stepper) -> Option<Result<(), Broken>> {
        (s.run.status == RunStatus::WaitingTimer).then(|| s.go(self.next.clone()))
    }

    fn problems(&self, _flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        if self.seconds.is_some() == self.until.is_some() {
            vec!["give either seconds or until".into()]
        } else {
            Vec::new()
        }
    }
}
