//! `end`: a last message, and the flow ends (a subflow returns to its caller).

use super::{Kind, Then};
use crate::definition::EndNode;
use crate::engine::{Broken, Stepper};

impl Kind for EndNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        if let Some(t) = &self.text {
            s.send_text(t)?;
        }
        Ok(Then::Go(None))
    }
}
