//! `find_record`: the first record (or all, `many`) matching a filter.

use serde_json::Value;

use super::{Kind, Then, store};
use crate::definition::FindRecordNode;
use crate::engine::{Broken, Stepper};
use crate::run::{EffectResult, Request};

impl Kind for FindRecordNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let filter = s.eval_map(&self.filter)?;
        let limit = if self.many { self.limit.max(1) } else { 1 };
        s.request(Request::FindRecords {
            collection: self.collection.clone(),
            filter,
            limit,
        });
        Ok(Then::Wait)
    }

    fn result(&self, s: &mut Stepper, result: EffectResult) -> Option<Result<(), Broken>> {
        let EffectResult::Records { records } = result else {
            return None;
        };
        let missing = records.is_empty();
        let value = if self.many {
            Value::Array(records)
        } else {
            records.into_iter().next().unwrap_or(Value::Null)
        };
        store(s, &Some(self.save_as.clone()), value);
        let next = if missing && self.on_missing.is_some() {
            self.on_missing.clone()
        } else {
            self.next.clone()
        };
        Some(s.go(next))
    }
}
