//! Who is calling: the JWT claims the API contract names (`sub`, `practice_id`, `role`).

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};

/// A record id type: a string newtype, serialised as the bare string.
macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }
    };
}
pub(crate) use id_type;

id_type!(
    /// A practice (tenant). Always taken from the caller's token, never from a path or a body.
    PracticeId
);
id_type!(
    /// A department or provider of a practice.
    DepartmentId
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Practice settings.
    Admin,
    /// Dashboard users.
    Staff,
    /// A pet owner in the app or the web chat.
    Client,
    /// The SMS/WhatsApp gateway.
    Integration,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "staff" => Some(Role::Staff),
            "client" => Some(Role::Client),
            "integration" => Some(Role::Integration),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Client => "client",
            Role::Integration => "integration",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub practice_id: PracticeId,
    pub role: Role,
}

impl PracticeId {
    /// Practice ids come from tokens and paths and become parts of storage keys: letters, digits, `_` and
    /// `-`, 1 to 64 of them.
    pub fn parse(raw: &str) -> Option<PracticeId> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| PracticeId(raw.to_owned()))
    }
}

impl DepartmentId {
    /// The default department's id is derived from the practice's, so that routing can read it in the same
    /// request as the practice (the one-read budget of docs/architecture.md) without knowing it first.
    pub fn default_for(practice_id: &PracticeId) -> DepartmentId {
        DepartmentId(format!("dep_team_{practice_id}"))
    }
}

/// The longest id (department, conversation, client) a path, a body or a token may carry. Ids become parts
/// of storage keys, which have limits of their own: an id over this one cannot exist and is answered as one
/// that does not, before any read.
pub const MAX_ID_BYTES: usize = 128;

/// Whether `raw` could be the id of a record: 1 to [`MAX_ID_BYTES`] bytes.
pub fn plausible_id(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= MAX_ID_BYTES
}

/// The source of new record ids (the adapters use ULIDs; tests may count).
pub trait Ids: Send + Sync {
    /// A new unique id starting with `prefix` (`"cnv"`, `"msg"`, …).
    fn next(&self, prefix: &str) -> String;
}

/// Who may call what.
pub const ADMIN: &[Role] = &[Role::Admin];
pub const DASHBOARD: &[Role] = &[Role::Admin, Role::Staff];

impl Caller {
    /// 403 unless the caller's role is one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> DomainResult<()> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            Err(DomainError::Forbidden(format!(
                "role {} may not do this (needs {})",
                self.role.as_str(),
                names.join(" or ")
            )))
        }
    }
}
