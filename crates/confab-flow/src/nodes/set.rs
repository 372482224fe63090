//! `set`: variables from expressions, then on.

use super::{Kind, Then};
use crate::definition::SetNode;
use crate::engine::{Broken, Stepper};

impl Kind for SetNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        for (var, expr) in &self.values {
            let v = s.eval(expr)?;
            s.set_var(var, v);
        }
        Ok(Then::Go(self.next.clone()))
    }
}
