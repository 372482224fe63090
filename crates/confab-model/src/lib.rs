//! Confab's domain types, shared by every layer: phone numbers, channels,
//! the one message model both WhatsApp providers are translated into, and
//! the roles of the people and systems that manage them.
//!
//! Everything here is pure data that parses, never I/O.

mod message;
mod phone;
mod role;
mod status;

pub use message::{
    Button, Channel, Direction, Extra, InboundMessage, ListRow, ListSection, Location, Media,
    MessageKind, OutboundContent, ProviderError, RejectedInbound, StatusUpdate, Template,
    TemplateSpec,
};
pub use phone::{PhoneError, PhoneNumber};

/// The bot every deployment has, described by the environment's settings;
/// the one a message belongs to until it is routed to another.
pub const DEFAULT_BOT: i64 = 1;
pub use role::{Role, UnknownRole};
pub use status::DeliveryStatus;
