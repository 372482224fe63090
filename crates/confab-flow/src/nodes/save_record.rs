//! `save_record`: a record in a collection; its id and fields saved.

use super::{Kind, Then, store};
use crate::definition::SaveRecordNode;
use crate::engine::{Broken, Stepper};
use crate::run::{EffectResult, Request};

impl Kind for SaveRecordNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let fields = s.eval_map(&self.fields)?;
        s.request(Request::SaveRecord {
            collection: self.collection.clone(),
            fields,
        });
        Ok(Then::Wait)
    }

    fn result(&self, s: &mut Stepper, result: EffectResult) -> Option<Result<(), Broken>> {
        let EffectResult::Record { record } = result else {
            return None;
        };
        store(s, &self.save_as, record.unwrap_or(serde_json::Value::Null));
        Some(s.go(self.next.clone()))
    }
}
