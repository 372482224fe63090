//! `branch`: on to the first branch whose condition holds, else the default.

use super::{Kind, Then};
use crate::definition::BranchNode;
use crate::engine::{Broken, Stepper, templates};

impl Kind for BranchNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        for b in &self.branches {
            let holds = templates()
                .test_in(&b.when, &s.ctx())
                .map_err(|e| Broken(format!("condition {:?}: {e}", b.when)))?;
            if holds {
                return Ok(Then::Go(Some(b.next.clone())));
            }
        }
        Ok(Then::Go(Some(self.default.clone())))
    }
}
