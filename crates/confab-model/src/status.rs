use serde::{Deserialize, Serialize};

/// Where a message is in its life. Inbound messages are `received`;
/// outbound ones start `queued` in the outbox and move forward only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Received,
    Queued,
    /// The provider took the message (Twilio `queued`/`sending`, Meta `accepted`).
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 8] = [
        Self::Received,
        Self::Queued,
        Self::Accepted,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Undelivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::Accepted => "accepted",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Undelivered => "undelivered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Order of progress. A status may replace another only with a higher
    /// rank; the failures are final and outrank everything.
    pub fn rank(self) -> i64 {
        match self {
            Self::Received | Self::Queued => 0,
            Self::Accepted => 1,
            Self::Sent => 2,
            Self::Delivered => 3,
            Self::Read => 4,
            Self::Failed | Self::Undelivered => 100,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 100
    }

    /// The status after `update` arrives when the message is at `self`.
    pub fn advance(self, update: DeliveryStatus) -> DeliveryStatus {
        if update.rank() > self.rank() {
            update
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    #[test]
    fn status_only_moves_forward() {
        assert_eq!(Queued.advance(Sent), Sent);
        assert_eq!(Read.advance(Delivered), Read);
        assert_eq!(Delivered.advance(Sent), Delivered);
        assert_eq!(Sent.advance(Failed), Failed);
        assert_eq!(Failed.advance(Read), Failed);
        assert_eq!(Undelivered.advance(Failed), Undelivered);
    }

    #[test]
    fn every_order_of_callbacks_ends_at_the_highest() {
        let updates = [Sent, Delivered, Read];
        for perm in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let end = perm.iter().fold(Queued, |s, &i| s.advance(updates[i]));
            assert_eq!(end, Read);
        }
    }

    #[test]
    fn names_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("bogus"), None);
    }
}
