//! `subflow`: another flow from its start; when it ends, on from here.

use super::{Kind, Then};
use crate::definition::SubflowNode;
use crate::engine::{Broken, Stepper};
use crate::run::Frame;

impl Kind for SubflowNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let sub = s
            .flows
            .flow(&self.flow)
            .ok_or_else(|| Broken(format!("subflow {} is not loaded", self.flow)))?;
        let start = sub.start_node().map(str::to_string);
        let caller = std::mem::replace(&mut s.run.flow, self.flow.clone());
        s.changed();
        s.run.stack.push(Frame {
            flow: caller,
            next: self.next.clone(),
        });
        Ok(Then::Go(start))
    }

    fn problems(&self, flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        if flow_exists(&self.flow) {
            Vec::new()
        } else {
            vec![format!("subflow names unknown flow {:?}", self.flow)]
        }
    }
}
