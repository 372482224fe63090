//! `handoff`: a person takes the conversation; the bot is silent until an
//! operator hands it back.

use super::{Kind, Then};
use crate::definition::HandoffNode;
use crate::engine::{Broken, Stepper};
use crate::run::{Effect, RunStatus};

impl Kind for HandoffNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        if let Some(t) = &self.text {
            s.send_text(t)?;
        }
        s.effects.push(Effect::Handoff);
        s.run.status = RunStatus::HandedOff;
        Ok(Then::Wait)
    }

    fn resumed(&self) -> Option<String> {
        self.next.clone()
    }
}
