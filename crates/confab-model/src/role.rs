use serde::{Deserialize, Serialize};

/// What a user or an API key may do. Each role may do everything the ones
/// before it may:
///
/// - `viewer` reads: contacts, messages, runs, flows, records, statistics.
/// - `agent` talks to contacts: sends messages, marks them read, edits a
///   contact, starts, resumes and cancels runs.
/// - `editor` shapes what the bots do: flows, records, bulk sends.
/// - `admin` decides who: the access policy, users and API keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Agent,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Agent, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role, UnknownRole> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::parse(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a role (admin, editor, agent, viewer)")]
pub struct UnknownRole(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(
            Role::Viewer < Role::Agent && Role::Agent < Role::Editor && Role::Editor < Role::Admin
        );
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert_eq!(
            Role::parse("operator").unwrap_err().to_string(),
            "'operator' is not a role (admin, editor, agent, viewer)"
        );
    }
}
