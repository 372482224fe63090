//! `send`: a message, then on.

use super::{Kind, Then};
use crate::definition::SendNode;
use crate::engine::{Broken, Stepper};

impl Kind for SendNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let content = s.message_content(&self.message())?;
        s.send(content);
        Ok(Then::Go(self.next.clone()))
    }

    fn problems(&self, _flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        crate::check::message_problems(&self.message())
    }
}
