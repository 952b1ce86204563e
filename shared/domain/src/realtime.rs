//! Live updates over WebSocket (API.md "Live updates"): single-use tickets, the connections they open, and
//! the fanout that tells each connection of a change in the frame of that caller's view.
//!
//! Frames are nudges: a frame may be lost when a connection drops, and the REST cursor (`after=<seq>`) is the
//! truth. So a post that fails is logged and never retried, and a connection that is gone (API Gateway's
//! `GoneException`, a closed local socket) is deleted: exactly that one.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client_view::{in_client_view, ClientMessage};
use crate::conversation::{Conversation, Message};
use crate::error::{DomainError, DomainResult, InvalidCode};
use crate::identity::{plausible_id, Caller, DepartmentId, PracticeId, Role};
use crate::store::{
    ConnectionStore, NewConversation, OpenConversation, SettingsLookup, StoreError, TicketStore,
};

/// How long a ticket may wait for its `$connect`.
pub const TICKET_SECONDS: i64 = 60;
/// API Gateway closes a WebSocket connection after 2 hours: the connection record lives as long.
pub const CONNECTION_HOURS: i64 = 2;
/// A ticket's secret: at least this many bytes of randomness (256 bits), base64url.
pub const TICKET_SECRET_BYTES: usize = 32;

/// A WebSocket connection (API Gateway's `connectionId`, or the local server's own id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub String);

impl ConnectionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a ticket (and then its connection) is bound to: the caller who bought it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    pub practice_id: PracticeId,
    pub sub: String,
    pub role: Role,
    /// Staff only: one department's events instead of the whole practice's.
    pub department_id: Option<DepartmentId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    #[serde(flatten)]
    pub subscriber: Subscriber,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    #[serde(flatten)]
    pub subscriber: Subscriber,
    pub connected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// `POST /realtime/tickets` body (optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketInput {
    #[serde(default)]
    pub department_id: Option<DepartmentId>,
}

/// What `POST /realtime/tickets` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedTicket {
    pub ticket: String,
    /// Where to connect, the ticket in its query string.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /realtime/tickets`: a single-use ticket bound to the caller, valid [`TICKET_SECONDS`]. `secret`
/// is fresh randomness from the caller's edge (at least [`TICKET_SECRET_BYTES`]); `websocket_url` is where
/// its connection goes.
pub async fn buy_ticket(
    settings: &dyn SettingsLookup,
    tickets: &dyn TicketStore,
    caller: &Caller,
    input: TicketInput,
    secret: String,
    websocket_url: &str,
    now: DateTime<Utc>,
) -> DomainResult<IssuedTicket> {
    caller.require(&[Role::Admin, Role::Staff, Role::Client])?;
    if let Some(department_id) = &input.department_id {
        if caller.role == Role::Client {
            return Err(DomainError::invalid(
                InvalidCode::InvalidValue,
                "department_id",
                "a client's connection follows the client's own conversations: name no department",
            ));
        }
        let known = plausible_id(department_id.as_str())
            && settings
                .practice_and_department(&caller.practice_id, department_id)
                .await?
                .1
                .is_some();
        if !known {
            return Err(DomainError::NotFound("department"));
        }
    }
    let ticket = Ticket {
        subscriber: Subscriber {
            practice_id: caller.practice_id.clone(),
            sub: caller.sub.clone(),
            role: caller.role,
            department_id: input.department_id,
        },
        expires_at: now + Duration::seconds(TICKET_SECONDS),
    };
    tickets.put_ticket(&secret, &ticket).await?;
    Ok(IssuedTicket {
        url: format!("{websocket_url}?ticket={secret}"),
        ticket: secret,
        expires_at: ticket.expires_at,
    })
}

/// Whether `raw` could be a ticket this service sold (base64url of [`TICKET_SECRET_BYTES`]), before any read.
fn plausible_secret(raw: &str) -> bool {
    (40..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `$connect` with `?ticket=`: takes the ticket (once) and records the connection. `None`: refused (no
/// ticket, a used, expired or unknown one).
pub async fn connect<S: TicketStore + ConnectionStore + ?Sized>(
    store: &S,
    secret: Option<&str>,
    id: ConnectionId,
    now: DateTime<Utc>,
) -> DomainResult<Option<Connection>> {
    let Some(secret) = secret.filter(|s| plausible_secret(s)) else {
        return Ok(None);
    };
    let Some(ticket) = store.take_ticket(secret, now).await? else {
        return Ok(None);
    };
    let connection = Connection {
        id,
        subscriber: ticket.subscriber,
        connected_at: now,
        expires_at: now + Duration::hours(CONNECTION_HOURS),
    };
    store.put_connection(&connection).await?;
    Ok(Some(connection))
}

/// `$disconnect`: the connection's record goes.
pub async fn disconnect(store: &dyn ConnectionStore, id: &ConnectionId) -> DomainResult<()> {
    Ok(store.delete_connection(id).await?)
}

// ---------------------------------------------------------------------------------------------------------
// Changes and frames
// ---------------------------------------------------------------------------------------------------------

/// A change connections hear of: what the table's stream carries on AWS, and the local change feed locally.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A message was stored (a client's, a reply, an auto-reply, a transfer's system message).
    MessageCreated {
        practice_id: PracticeId,
        /// The conversation's client: a client connection hears only of its own conversations.
        client_id: String,
        message: Message,
    },
    /// A conversation started, moved to another department, or ended.
    ConversationUpdated {
        conversation: Conversation,
        /// The department it left, for a transfer (its department's staff hear it go).
        previous_department_id: Option<DepartmentId>,
    },
    /// A text reply's `delivery` changed (claimed, sent, delivered, failed, retried): `message` carries the
    /// new delivery. On AWS: a `MODIFY` stream record of a message item whose `delivery` differs.
    DeliveryChanged {
        practice_id: PracticeId,
        client_id: String,
        message: Message,
    },
}

impl Change {
    pub fn practice_id(&self) -> &PracticeId {
        match self {
            Change::MessageCreated { practice_id, .. } => practice_id,
            Change::ConversationUpdated { conversation, .. } => &conversation.practice_id,
            Change::DeliveryChanged { practice_id, .. } => practice_id,
        }
    }

    /// What starting a conversation tells: the conversation, then its messages.
    pub fn started(new: &NewConversation) -> Vec<Change> {
        let c = &new.conversation;
        let mut out = vec![Change::ConversationUpdated {
            conversation: c.clone(),
            previous_department_id: None,
        }];
        out.extend(Change::appended(
            &c.practice_id,
            &OpenConversation::of(c),
            &new.messages,
        ));
        out
    }

    pub fn appended(
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
    ) -> Vec<Change> {
        messages
            .iter()
            .map(|m| Change::MessageCreated {
                practice_id: practice_id.clone(),
                client_id: open.client_id.clone(),
                message: m.clone(),
            })
            .collect()
    }

    /// A transfer: the moved conversation, and the system message it wrote.
    pub fn transferred(moved: &Conversation, from: &DepartmentId, notice: &Message) -> Vec<Change> {
        vec![
            Change::ConversationUpdated {
                conversation: moved.clone(),
                previous_department_id: Some(from.clone()),
            },
            Change::MessageCreated {
                practice_id: moved.practice_id.clone(),
                client_id: moved.client_id.clone(),
                message: notice.clone(),
            },
        ]
    }

    pub fn ended(ended: &Conversation) -> Vec<Change> {
        vec![Change::ConversationUpdated {
            conversation: ended.clone(),
            previous_department_id: None,
        }]
    }
}

/// The frame `connection` gets of `change` (JSON text), or `None` when the change is none of its business:
/// another practice's; for a client, anything but a message of its own app or web conversation; for a staff
/// connection of one department, another department's. A client's frame is the client's view
/// ([`ClientMessage`]); staff get the staff view, and `message.delivery` when a text reply's delivery moves.
/// An expired connection gets nothing.
pub fn frame_for(change: &Change, connection: &Connection, now: DateTime<Utc>) -> Option<String> {
    let who = &connection.subscriber;
    if change.practice_id() != &who.practice_id || connection.expires_at <= now {
        return None;
    }
    let frame = match (who.role, change) {
        (
            Role::Client,
            Change::MessageCreated {
                client_id, message, ..
            },
        ) => {
            if client_id != &who.sub || !in_client_view(message.channel) {
                return None;
            }
            json!({"type": "message.created", "conversation_id": message.conversation_id,
                   "seq": message.seq, "message": ClientMessage::of(message)})
        }
        (Role::Client, _) | (Role::Integration, _) => return None,
        (Role::Admin | Role::Staff, Change::MessageCreated { message, .. }) => {
            if who
                .department_id
                .as_ref()
                .is_some_and(|d| d != &message.department_id)
            {
                return None;
            }
            json!({"type": "message.created", "conversation_id": message.conversation_id,
                   "seq": message.seq, "message": message})
        }
        (
            Role::Admin | Role::Staff,
            Change::ConversationUpdated {
                conversation,
                previous_department_id,
            },
        ) => {
            let concerns = |d: &DepartmentId| {
                &conversation.department_id == d || previous_department_id.as_ref() == Some(d)
            };
            if who.department_id.as_ref().is_some_and(|d| !concerns(d)) {
                return None;
            }
            json!({"type": "conversation.updated", "conversation": conversation})
        }
        // Staff see what became of a text reply (the owner sees only the message: no delivery frame).
        (Role::Admin | Role::Staff, Change::DeliveryChanged { message, .. }) => {
            if who
                .department_id
                .as_ref()
                .is_some_and(|d| d != &message.department_id)
            {
                return None;
            }
            json!({"type": "message.delivery", "conversation_id": message.conversation_id,
                   "message_id": message.id, "delivery": message.delivery})
        }
    };
    Some(frame.to_string())
}

// ---------------------------------------------------------------------------------------------------------
// Fanout
// ---------------------------------------------------------------------------------------------------------

/// How a post to one connection went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// The connection is gone (API Gateway's 410 `GoneException`, a closed local socket).
    Gone,
    /// Anything else (throttled, timed out, 5xx): logged by the adapter, never retried.
    Failed(String),
}

/// Where frames go: API Gateway's `@connections` on AWS, the local server's sockets locally.
#[async_trait]
pub trait ConnectionPoster: Send + Sync {
    async fn post(&self, connection: &ConnectionId, frame: &str) -> PostOutcome;
}

/// What a fanout did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanoutReport {
    pub posted: usize,
    /// Connections found gone and deleted.
    pub gone: usize,
    /// Posts that failed otherwise (and deletes of gone connections that failed).
    pub failed: usize,
    /// Practices whose connections could not be read.
    pub lookups_failed: usize,
}

/// Tells every connection of the changes' practices what concerns it: one read of a practice's connections
/// per practice in `changes`, then per connection its frames in order (connections side by side, so one
/// that stalls holds up no other). A connection found gone is deleted, and gets nothing more.
pub async fn fanout(
    store: &dyn ConnectionStore,
    poster: &dyn ConnectionPoster,
    changes: &[Change],
    now: DateTime<Utc>,
) -> FanoutReport {
    let mut report = FanoutReport::default();
    let mut practices: Vec<&PracticeId> = Vec::new();
    for change in changes {
        if !practices.contains(&change.practice_id()) {
            practices.push(change.practice_id());
        }
    }
    for practice_id in practices {
        let connections = match store.practice_connections(practice_id).await {
            Ok(connections) => connections,
            Err(_) => {
                report.lookups_failed += 1;
                continue;
            }
        };
        let deliveries = connections.iter().filter_map(|connection| {
            let frames: Vec<String> = changes
                .iter()
                .filter_map(|change| frame_for(change, connection, now))
                .collect();
            (!frames.is_empty()).then(|| deliver(store, poster, connection, frames))
        });
        for outcome in futures::future::join_all(deliveries).await {
            report.posted += outcome.posted;
            report.gone += outcome.gone;
            report.failed += outcome.failed;
        }
    }
    report
}

async fn deliver(
    store: &dyn ConnectionStore,
    poster: &dyn ConnectionPoster,
    connection: &Connection,
    frames: Vec<String>,
) -> FanoutReport {
    let mut report = FanoutReport::default();
    for frame in frames {
        match poster.post(&connection.id, &frame).await {
            PostOutcome::Delivered => report.posted += 1,
            PostOutcome::Failed(_) => report.failed += 1,
            PostOutcome::Gone => {
                match store.delete_connection(&connection.id).await {
                    Ok(()) => report.gone += 1,
                    Err(StoreError::NotFound) => report.gone += 1,
                    Err(_) => report.failed += 1,
                }
                break;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Author, Channel, ConversationId, ConversationStatus, MessageId};
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0)
            .single()
            .unwrap()
    }

    fn who(role: Role, sub: &str, department: Option<&str>) -> Connection {
        Connection {
            id: ConnectionId(format!("conn-{sub}")),
            subscriber: Subscriber {
                practice_id: PracticeId::from("prc_a"),
                sub: sub.into(),
                role,
                department_id: department.map(DepartmentId::from),
            },
            connected_at: at(),
            expires_at: at() + Duration::hours(CONNECTION_HOURS),
        }
    }

    fn message(channel: Channel, department: &str) -> Change {
        Change::MessageCreated {
            practice_id: PracticeId::from("prc_a"),
            client_id: "owner-ada".into(),
            message: Message {
                id: MessageId("msg_1".into()),
                conversation_id: ConversationId("cnv_1".into()),
                seq: 3,
                at: at(),
                author: Author::Staff {
                    id: "staff-jane".into(),
                },
                channel,
                body: "Ready at 5".into(),
                department_id: DepartmentId::from(department),
                department_name: "Grooming".into(),
                delivery: None,
            },
        }
    }

    fn moved(from: &str, to: &str) -> Change {
        Change::ConversationUpdated {
            conversation: Conversation {
                reply_from: None,
                last_whatsapp_at: None,
                id: ConversationId("cnv_1".into()),
                practice_id: PracticeId::from("prc_a"),
                department_id: DepartmentId::from(to),
                client_id: "owner-ada".into(),
                channel: Channel::App,
                status: ConversationStatus::Open,
                started_at: at(),
                last_message_at: at(),
                resolved_at: None,
                department_name: "Grooming".into(),
                last_seq: 3,
                sms_opted_out_at: None,
                after_hours_replied_at: None,
            },
            previous_department_id: Some(DepartmentId::from(from)),
        }
    }

    fn frame(change: &Change, c: &Connection) -> Option<serde_json::Value> {
        frame_for(change, c, at()).map(|f| serde_json::from_str(&f).unwrap())
    }

    #[test]
    fn a_client_hears_only_its_own_app_and_web_messages_in_its_own_view() {
        let owner = who(Role::Client, "owner-ada", None);
        let f = frame(&message(Channel::App, "dep_g"), &owner).expect("its own");
        assert_eq!(
            f["message"],
            json!({"id": "msg_1", "seq": 3, "at": "2026-11-23T15:00:00Z",
                   "author": {"kind": "staff", "department_name": "Grooming"}, "body": "Ready at 5"})
        );
        assert!(!f.to_string().contains("staff-jane"));
        assert_eq!(
            frame(&message(Channel::Sms, "dep_g"), &owner),
            None,
            "a texted one is not in the app"
        );
        assert_eq!(
            frame(
                &message(Channel::App, "dep_g"),
                &who(Role::Client, "owner-bob", None)
            ),
            None
        );
        assert_eq!(
            frame(&moved("dep_t", "dep_g"), &owner),
            None,
            "no conversation.updated for clients"
        );
    }

    #[test]
    fn staff_hear_their_practice_or_their_department_and_nothing_of_another_practice() {
        let desk = who(Role::Staff, "desk", None);
        let f = frame(&message(Channel::Sms, "dep_g"), &desk).expect("the practice's");
        assert_eq!(
            f["message"]["author"],
            json!({"kind": "staff", "id": "staff-jane"})
        );
        let groomers = who(Role::Staff, "groomer", Some("dep_g"));
        let surgery = who(Role::Admin, "vet", Some("dep_s"));
        assert!(frame(&message(Channel::App, "dep_g"), &groomers).is_some());
        assert_eq!(frame(&message(Channel::App, "dep_g"), &surgery), None);
        // A transfer is heard by the department it left and the one it went to.
        assert!(frame(&moved("dep_s", "dep_g"), &surgery).is_some());
        assert!(frame(&moved("dep_s", "dep_g"), &groomers).is_some());
        assert_eq!(frame(&moved("dep_t", "dep_g"), &surgery), None);
        let mut elsewhere = who(Role::Staff, "desk", None);
        elsewhere.subscriber.practice_id = PracticeId::from("prc_b");
        assert_eq!(frame(&message(Channel::App, "dep_g"), &elsewhere), None);
        let mut expired = who(Role::Staff, "desk", None);
        expired.expires_at = at();
        assert_eq!(
            frame(&message(Channel::App, "dep_g"), &expired),
            None,
            "expired"
        );
        assert_eq!(
            frame(
                &message(Channel::App, "dep_g"),
                &who(Role::Integration, "gw", None)
            ),
            None
        );
    }

    fn delivery_moved(department: &str) -> Change {
        let Change::MessageCreated {
            practice_id,
            client_id,
            mut message,
        } = message(Channel::Sms, department)
        else {
            unreachable!()
        };
        message.delivery = Some(crate::conversation::delivery::Delivery {
            status: crate::conversation::delivery::DeliveryStatus::Delivered,
            reason: None,
            updated_at: at(),
            segments: Some(1),
            attempt: 1,
        });
        Change::DeliveryChanged {
            practice_id,
            client_id,
            message,
        }
    }

    #[test]
    fn staff_of_the_practice_or_department_hear_a_delivery_and_the_owner_does_not() {
        let f = frame(&delivery_moved("dep_g"), &who(Role::Staff, "desk", None))
            .expect("the practice's staff");
        assert_eq!(
            f,
            json!({"type": "message.delivery", "conversation_id": "cnv_1", "message_id": "msg_1",
                   "delivery": {"status": "delivered", "reason": null, "updated_at": "2026-11-23T15:00:00Z",
                                "segments": 1, "attempt": 1}})
        );
        assert!(frame(
            &delivery_moved("dep_g"),
            &who(Role::Staff, "groomer", Some("dep_g"))
        )
        .is_some());
        assert_eq!(
            frame(
                &delivery_moved("dep_g"),
                &who(Role::Admin, "vet", Some("dep_s"))
            ),
            None,
            "another department's"
        );
        assert_eq!(
            frame(
                &delivery_moved("dep_g"),
                &who(Role::Client, "owner-ada", None)
            ),
            None,
            "the owner gets no delivery frame"
        );
        let mut elsewhere = who(Role::Staff, "desk", None);
        elsewhere.subscriber.practice_id = PracticeId::from("prc_b");
        assert_eq!(frame(&delivery_moved("dep_g"), &elsewhere), None);
    }

    #[test]
    fn only_plausible_secrets_reach_the_store() {
        assert!(plausible_secret(&"A".repeat(43)));
        assert!(!plausible_secret(""));
        assert!(!plausible_secret(&"A".repeat(39)));
        assert!(!plausible_secret(&"A".repeat(65)));
        assert!(!plausible_secret(&format!("{}/", "A".repeat(42))));
    }
}
