//! The client's own view (role `client`): a pet owner lists their app and web conversations and reads their
//! messages after a `seq`. What a client sees of a message is [`ClientMessage`]: the author's kind and the
//! department's name, never a staff id, a transfer note or an alert recipient. API.md "The client's own view".

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::conversation::{
    Author, Channel, Conversation, ConversationId, ConversationStatus, Message,
};
use crate::error::{DomainError, DomainResult, InvalidCode};
use crate::identity::{plausible_id, Caller, DepartmentId, Role};
use crate::store::{ClientConversations, MessageRange};

/// The most messages one page holds, and the page when `limit` is not given.
pub const MAX_PAGE: usize = 200;
pub const DEFAULT_PAGE: usize = 100;
/// How many conversations `GET /client/conversations` lists (newest activity first).
pub const MAX_CLIENT_CONVERSATIONS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Client,
    Staff,
    Auto,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientAuthor {
    pub kind: AuthorKind,
    pub department_name: String,
}

/// A message as its client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientMessage {
    pub id: crate::conversation::MessageId,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub author: ClientAuthor,
    pub body: String,
}

impl ClientMessage {
    pub fn of(m: &Message) -> ClientMessage {
        let kind = match m.author {
            Author::Client { .. } => AuthorKind::Client,
            Author::Staff { .. } => AuthorKind::Staff,
            Author::Auto { .. } => AuthorKind::Auto,
            Author::System => AuthorKind::System,
        };
        ClientMessage {
            id: m.id.clone(),
            seq: m.seq,
            at: m.at,
            author: ClientAuthor {
                kind,
                department_name: m.department_name.clone(),
            },
            body: m.body.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepartmentRef {
    pub id: DepartmentId,
    pub name: String,
}

/// A conversation in the client's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientConversation {
    pub id: ConversationId,
    pub department: DepartmentRef,
    pub status: ConversationStatus,
    pub started_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub last_seq: u64,
}

impl ClientConversation {
    pub fn of(c: &Conversation) -> ClientConversation {
        ClientConversation {
            id: c.id.clone(),
            department: DepartmentRef {
                id: c.department_id.clone(),
                name: c.department_name.clone(),
            },
            status: c.status,
            started_at: c.started_at,
            last_message_at: c.last_message_at,
            last_seq: c.last_seq,
        }
    }
}

/// The conversations a client sees: app and web, never texts (a texting number is not an app user).
pub fn in_client_view(channel: Channel) -> bool {
    !channel.is_text()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientConversationList {
    pub conversations: Vec<ClientConversation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientMessagePage {
    pub messages: Vec<ClientMessage>,
    pub next_after: Option<u64>,
}

/// `after` and `limit` of a message page, as the query string has them (absent or empty: the defaults).
pub fn message_range(after: Option<&str>, limit: Option<&str>) -> DomainResult<MessageRange> {
    let after = match after.filter(|a| !a.is_empty()) {
        None => 0,
        Some(raw) => raw.parse::<u64>().map_err(|_| {
            DomainError::invalid(
                InvalidCode::InvalidValue,
                "after",
                "after is the seq of a message: 0 or more",
            )
        })?,
    };
    let limit = match limit.filter(|l| !l.is_empty()) {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                DomainError::invalid(
                    InvalidCode::InvalidValue,
                    "limit",
                    format!("limit is 1 to {MAX_PAGE}"),
                )
            })?,
    };
    Ok(MessageRange { after, limit })
}

/// `GET /client/conversations`: the caller's app and web conversations, newest activity first.
pub async fn list_client_conversations(
    store: &dyn ClientConversations,
    caller: &Caller,
) -> DomainResult<ClientConversationList> {
    caller.require(&[Role::Client])?;
    let conversations = store
        .client_conversations(&caller.practice_id, &caller.sub, MAX_CLIENT_CONVERSATIONS)
        .await?;
    Ok(ClientConversationList {
        conversations: conversations.iter().map(ClientConversation::of).collect(),
    })
}

/// `GET /client/conversations/{id}/messages`: a page of the caller's own conversation; anyone else's is 404.
pub async fn client_messages(
    store: &dyn ClientConversations,
    caller: &Caller,
    id: &ConversationId,
    range: MessageRange,
) -> DomainResult<ClientMessagePage> {
    caller.require(&[Role::Client])?;
    if !plausible_id(id.as_str()) {
        return Err(DomainError::NotFound("conversation"));
    }
    let page = store
        .client_messages(&caller.practice_id, &caller.sub, id, range)
        .await?
        .ok_or(DomainError::NotFound("conversation"))?;
    Ok(ClientMessagePage {
        messages: page.messages.iter().map(ClientMessage::of).collect(),
        next_after: page.next_after,
    })
}
