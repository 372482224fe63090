//! Confab's flow core. A flow is data (YAML or JSON); `step` moves one
//! contact's run by one input and returns the effects for the runtime to
//! carry out. Nothing here does I/O, awaits, or reads a clock.

pub mod answer;
pub mod check;
pub mod collection;
pub mod definition;
pub mod engine;
pub mod extract;
pub mod load;
mod nodes;
pub mod pattern;
pub mod routing;
pub mod run;
pub mod template;
pub mod transcript;

pub use answer::Reply;
pub use check::{Problem, check};
pub use definition::{Flow, Node, json_schema};
pub use engine::{Flows, Outcome, STEP_BUDGET, step};
pub use load::{LoadError, parse_flow};
pub use run::{Effect, EffectResult, Event, Input, Request, Run, RunStatus};
