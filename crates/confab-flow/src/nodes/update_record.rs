//! `update_record`: fields of a record by its id; `on_missing` when there
//! is none.

use super::{Kind, Then, store};
use crate::definition::UpdateRecordNode;
use crate::engine::{Broken, Stepper};
use crate::run::{EffectResult, Request};

impl Kind for UpdateRecordNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let id = s.eval(&self.record)?;
        let fields = s.eval_map(&self.fields)?;
        s.request(Request::UpdateRecord {
            collection: self.collection.clone(),
            id,
            fields,
        });
        Ok(Then::Wait)
    }

    fn result(&self, s: &mut Stepper, result: EffectResult) -> Option<Result<(), Broken>> {
        let EffectResult::Record { record } = result else {
            return None;
        };
        Some(match (record, &self.on_missing) {
            (Some(r), _) => {
                store(s, &self.save_as, r);
                s.go(self.next.clone())
            }
            (None, Some(t)) => s.go(Some(t.clone())),
            (None, None) => Err(Broken(format!("update_record {}: no such record", self.id))),
        })
    }
}
