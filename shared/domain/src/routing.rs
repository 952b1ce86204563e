//! Inbound messages and the conversation lifecycle: where every message goes, and what staff do with
//! conversations. The behaviour is API.md's "Inbound messages" and "Conversations".

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::alert::{AlertKind, PendingAlert};
use crate::conversation::{
    admit, transfer_notice, Author, AutoReply, Channel, Conversation, ConversationId,
    ConversationStatus, Message, MessageId, Outcome, Transfer,
};
use crate::error::{ConflictCode, DomainError, DomainResult, InvalidCode};
use crate::identity::{
    plausible_id, Caller, DepartmentId, Ids, PracticeId, Role, DASHBOARD, MAX_ID_BYTES,
};
use crate::store::{
    ConversationFilter, ConversationHistory, ConversationIntake, ConversationPage,
    ConversationStore, MessageRange, NewConversation, OpenConversation, StoreError, TransferStore,
};
use crate::validate;

/// How often a write that lost a race (the client's conversation started or ended meanwhile, another message
/// took the next `seq`) is re-planned. Every lost race is another writer's commit, so 32 writers to one
/// conversation at once each lose at most 31 times.
const RACE_RETRIES: usize = 64;
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// `POST /inbound` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundInput {
    pub channel: Channel,
    #[serde(default)]
    pub department_id: Option<DepartmentId>,
    #[serde(default)]
    pub from: Option<String>,
    pub body: String,
}

/// An inbound message once its sender is known.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub practice_id: PracticeId,
    pub channel: Channel,
    /// The client: the token's `sub` for app/web, the E.164 number for texts.
    pub client_id: String,
    pub department_id: Option<DepartmentId>,
    pub body: String,
    /// The gateway's message id (SNS `inboundMessageId`): a redelivery is not stored twice.
    pub dedup_key: Option<String>,
}

/// What `POST /inbound` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routed {
    pub conversation_id: ConversationId,
    pub department_id: DepartmentId,
    pub new_conversation: bool,
    pub outcome: Outcome,
    pub auto_replies: Vec<AutoReply>,
}

fn message_body(raw: &str) -> DomainResult<String> {
    let body = raw.trim();
    if body.is_empty() {
        return Err(DomainError::invalid(
            InvalidCode::InvalidValue,
            "body",
            "a message needs a body",
        ));
    }
    if body.chars().count() > MAX_MESSAGE_CHARS {
        return Err(DomainError::invalid(
            InvalidCode::TooLarge,
            "body",
            format!("a message is at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    Ok(body.to_owned())
}

/// A texting client's number, E.164.
pub fn text_sender(raw: Option<&str>) -> DomainResult<String> {
    let raw = raw.ok_or_else(|| {
        DomainError::invalid(
            InvalidCode::InvalidPhone,
            "from",
            "a text needs the sender's number",
        )
    })?;
    // No default region: gateways hand over E.164 numbers.
    let number = validate::phone(raw, "", "from")?;
    Ok(validate::e164(&number))
}

/// The longest `Idempotency-Key` a caller may send.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// The dedup key of an `Idempotency-Key` the caller sent: scoped to the caller, so two callers' keys never
/// meet. 1 to 128 visible ASCII characters (a UUID, a ULID, the gateway's own message id).
fn caller_dedup_key(caller: &Caller, idempotency_key: &str) -> DomainResult<String> {
    let valid = !idempotency_key.is_empty()
        && idempotency_key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && idempotency_key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(DomainError::invalid(
            InvalidCode::InvalidValue,
            "Idempotency-Key",
            format!("Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"),
        ));
    }
    Ok(format!("key:{}:{idempotency_key}", caller.sub))
}

/// `POST /inbound` from the app, the web widget (role client) or the texting gateway (role integration).
/// With an `Idempotency-Key`, a retry of a message that was stored (its answer lost) is not stored again.
pub fn inbound_from_caller(
    caller: &Caller,
    input: InboundInput,
    idempotency_key: Option<&str>,
) -> DomainResult<Inbound> {
    let (client_id, department_id) = if input.channel.is_text() {
        caller.require(&[Role::Integration])?;
        // Texts cannot choose a department: they start in the default one.
        (text_sender(input.from.as_deref())?, None)
    } else {
        caller.require(&[Role::Client])?;
        (caller.sub.clone(), input.department_id)
    };
    Ok(Inbound {
        practice_id: caller.practice_id.clone(),
        channel: input.channel,
        client_id,
        department_id,
        body: message_body(&input.body)?,
        dedup_key: idempotency_key
            .map(|key| caller_dedup_key(caller, key))
            .transpose()?,
    })
}

fn not_set_up() -> DomainError {
    DomainError::conflict(
        ConflictCode::PracticeNotSetUp,
        "the practice is not set up yet",
    )
}

fn not_visible(id: &DepartmentId) -> DomainError {
    DomainError::invalid(
        InvalidCode::DepartmentNotVisible,
        "department_id",
        format!("department {id} does not take chats from the app"),
    )
}

/// A message of the conversation `to`, taking the `seq` after `to.last_seq + index`.
fn message_in(
    to: &OpenConversation,
    index: usize,
    author: Author,
    body: String,
    at: DateTime<Utc>,
    ids: &dyn Ids,
) -> Message {
    Message {
        id: MessageId(ids.next("msg")),
        conversation_id: to.conversation_id.clone(),
        seq: to.last_seq + 1 + index as u64,
        at,
        author,
        channel: to.channel,
        body,
        department_id: to.department_id.clone(),
        department_name: to.department_name.clone(),
    }
}

/// Messages of one write into `to`: the client's, then the auto-replies just after it (the `seq`s after
/// `to.last_seq`, in this order).
fn messages_for(
    to: &OpenConversation,
    author: Author,
    body: String,
    auto_replies: &[AutoReply],
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> Vec<Message> {
    let mut out = vec![message_in(to, 0, author, body, now, ids)];
    for (i, reply) in auto_replies.iter().enumerate() {
        let at = now + Duration::microseconds(i as i64 + 1);
        let author = Author::Auto { reply: reply.kind };
        out.push(message_in(to, i + 1, author, reply.text.clone(), at, ids));
    }
    out
}

/// A new conversation's first messages: its `last_seq` becomes theirs.
fn opening(conversation: &mut Conversation, messages: &[Message]) {
    conversation.last_seq = messages.last().map_or(0, |m| m.seq);
}

/// Routes one inbound message: into the client's open conversation if there is one (whatever the hours or
/// the department it names), else into a new conversation in the department asked for (or the default one),
/// if that department takes it now.
pub async fn route_inbound(
    store: &dyn ConversationIntake,
    inbound: Inbound,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Routed> {
    let default_id = DepartmentId::default_for(&inbound.practice_id);
    let wanted = inbound
        .department_id
        .clone()
        .unwrap_or_else(|| default_id.clone());
    if !plausible_id(wanted.as_str()) {
        return Err(not_visible(&wanted));
    }
    for _ in 0..RACE_RETRIES {
        let ctx = store
            .routing_context(&inbound.practice_id, &inbound.client_id, &wanted)
            .await?;
        let practice = ctx.practice.ok_or_else(not_set_up)?;
        if let Some(open) = ctx.open_conversation {
            // The message says where it came from (a web message may join the client's app chat).
            let arrived = OpenConversation {
                channel: inbound.channel,
                ..open.clone()
            };
            let messages = messages_for(
                &arrived,
                Author::Client {
                    id: inbound.client_id.clone(),
                },
                inbound.body.clone(),
                &[],
                now,
                ids,
            );
            match store
                .append_messages(
                    &inbound.practice_id,
                    &open,
                    &messages,
                    inbound.dedup_key.as_deref(),
                )
                .await
            {
                Ok(()) => return Ok(joined(open)),
                Err(StoreError::DuplicateInbound(conversation_id)) => {
                    return Ok(replayed(conversation_id, &open))
                }
                // Ended between the read and the write: the message starts a new conversation; or another
                // message took the next seq: read again.
                Err(StoreError::NotFound) | Err(StoreError::VersionMismatch) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let department = match ctx.department {
            Some(d) if inbound.channel.is_text() || d.settings.visible_in_app => d,
            _ if inbound.channel.is_text() => return Err(not_set_up()),
            _ => return Err(not_visible(&wanted)),
        };
        let admission = admit(&practice, &department, inbound.channel, now)?;
        let mut conversation = Conversation {
            id: ConversationId(ids.next("cnv")),
            practice_id: practice.id.clone(),
            department_id: department.id.clone(),
            client_id: inbound.client_id.clone(),
            channel: inbound.channel,
            status: ConversationStatus::Open,
            started_at: now,
            last_message_at: now,
            resolved_at: None,
            department_name: department.settings.name.clone(),
            last_seq: 0,
        };
        let messages = messages_for(
            &OpenConversation::of(&conversation),
            Author::Client {
                id: inbound.client_id.clone(),
            },
            inbound.body.clone(),
            &admission.auto_replies,
            now,
            ids,
        );
        opening(&mut conversation, &messages);
        let alert = PendingAlert::new(
            ids,
            AlertKind::NewConversation,
            &conversation,
            &department.id,
            None,
            now,
        )
        .with_preview(&inbound.body);
        let new = NewConversation {
            conversation,
            messages,
            alert: Some(alert),
            dedup_key: inbound.dedup_key.clone(),
        };
        match store.start_conversation(&new).await {
            Ok(()) => {
                return Ok(Routed {
                    conversation_id: new.conversation.id,
                    department_id: department.id,
                    new_conversation: true,
                    outcome: admission.outcome,
                    auto_replies: admission.auto_replies,
                })
            }
            // Another message of this client started one first: join it on the next pass.
            Err(StoreError::ClientHasOpenConversation) => continue,
            Err(StoreError::DuplicateInbound(conversation_id)) => {
                return Ok(Routed {
                    conversation_id,
                    department_id: department.id,
                    new_conversation: false,
                    outcome: Outcome::Delivered,
                    auto_replies: Vec::new(),
                })
            }
            // The department was deleted meanwhile.
            Err(StoreError::NotFound) if !inbound.channel.is_text() => {
                return Err(not_visible(&wanted))
            }
            Err(StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Unavailable(
        "the conversation kept changing concurrently; try again".into(),
    ))
}

fn joined(open: OpenConversation) -> Routed {
    Routed {
        conversation_id: open.conversation_id,
        department_id: open.department_id,
        new_conversation: false,
        outcome: Outcome::Delivered,
        auto_replies: Vec::new(),
    }
}

fn replayed(conversation_id: ConversationId, open: &OpenConversation) -> Routed {
    Routed {
        conversation_id,
        ..joined(open.clone())
    }
}

/// `POST /conversations` body: staff start a chat from any department, visible or not, at any time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    pub department_id: DepartmentId,
    pub client_id: String,
    pub body: String,
    /// How the client is reached; by default SMS when `client_id` is a phone number, else the app.
    #[serde(default)]
    pub channel: Option<Channel>,
}

/// `POST /conversations`. A client who already has an open conversation is answered 409
/// `client_has_open_conversation` with its id, so the dashboard can open it instead.
pub async fn staff_start(
    store: &dyn ConversationIntake,
    caller: &Caller,
    input: StartInput,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Conversation> {
    caller.require(DASHBOARD)?;
    let body = message_body(&input.body)?;
    let client_id = input.client_id.trim().to_owned();
    if !plausible_id(&client_id) {
        return Err(DomainError::invalid(
            InvalidCode::InvalidValue,
            "client_id",
            format!("client_id is 1 to {MAX_ID_BYTES} bytes"),
        ));
    }
    if !plausible_id(input.department_id.as_str()) {
        return Err(DomainError::NotFound("department"));
    }
    let channel = input.channel.unwrap_or(if client_id.starts_with('+') {
        Channel::Sms
    } else {
        Channel::App
    });
    let client_id = if channel.is_text() {
        text_sender(Some(&client_id))?
    } else {
        client_id
    };
    for _ in 0..RACE_RETRIES {
        let ctx = store
            .routing_context(&caller.practice_id, &client_id, &input.department_id)
            .await?;
        ctx.practice.ok_or_else(not_set_up)?;
        let department = ctx.department.ok_or(DomainError::NotFound("department"))?;
        if let Some(open) = ctx.open_conversation {
            return Err(DomainError::Conflict {
                code: ConflictCode::ClientHasOpenConversation,
                message: "the client already has an open conversation".into(),
                details: Some(json!({"conversation_id": open.conversation_id})),
            });
        }
        let mut conversation = Conversation {
            id: ConversationId(ids.next("cnv")),
            practice_id: caller.practice_id.clone(),
            department_id: department.id.clone(),
            client_id: client_id.clone(),
            channel,
            status: ConversationStatus::Open,
            started_at: now,
            last_message_at: now,
            resolved_at: None,
            department_name: department.settings.name.clone(),
            last_seq: 0,
        };
        let messages = messages_for(
            &OpenConversation::of(&conversation),
            Author::Staff {
                id: caller.sub.clone(),
            },
            body.clone(),
            &[],
            now,
            ids,
        );
        opening(&mut conversation, &messages);
        // Staff started it themselves: their own department needs no alert.
        let new = NewConversation {
            conversation,
            messages,
            alert: None,
            dedup_key: None,
        };
        match store.start_conversation(&new).await {
            Ok(()) => return Ok(new.conversation),
            Err(StoreError::ClientHasOpenConversation) => continue,
            Err(StoreError::NotFound) => return Err(DomainError::NotFound("department")),
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Unavailable(
        "the conversation kept changing concurrently; try again".into(),
    ))
}

/// `POST /conversations/{id}/messages`: a staff reply to an open conversation.
pub async fn staff_reply(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    body: &str,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Message> {
    caller.require(DASHBOARD)?;
    let body = message_body(body)?;
    known_conversation(id)?;
    for _ in 0..RACE_RETRIES {
        let conversation = store
            .get_conversation(&caller.practice_id, id)
            .await?
            .ok_or(DomainError::NotFound("conversation"))?;
        if conversation.status == ConversationStatus::Resolved {
            return Err(resolved());
        }
        let open = OpenConversation::of(&conversation);
        let author = Author::Staff {
            id: caller.sub.clone(),
        };
        let message = message_in(&open, 0, author, body.clone(), now, ids);
        match store
            .append_messages(
                &caller.practice_id,
                &open,
                std::slice::from_ref(&message),
                None,
            )
            .await
        {
            Ok(()) => return Ok(message),
            Err(StoreError::NotFound) => return Err(resolved()),
            // Another message took the next seq: read again.
            Err(StoreError::VersionMismatch) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Unavailable(
        "the conversation kept changing concurrently; try again".into(),
    ))
}

/// 404 for an id that cannot name a conversation, before any read.
fn known_conversation(id: &ConversationId) -> DomainResult<()> {
    if plausible_id(&id.0) {
        Ok(())
    } else {
        Err(DomainError::NotFound("conversation"))
    }
}

fn resolved() -> DomainError {
    DomainError::conflict(
        ConflictCode::ConversationResolved,
        "the conversation has ended",
    )
}

/// `POST /conversations/{id}/end`. Ending twice is not an error.
pub async fn end_conversation(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    now: DateTime<Utc>,
) -> DomainResult<Conversation> {
    caller.require(DASHBOARD)?;
    known_conversation(id)?;
    for _ in 0..RACE_RETRIES {
        let conversation = store
            .get_conversation(&caller.practice_id, id)
            .await?
            .ok_or(DomainError::NotFound("conversation"))?;
        if conversation.status == ConversationStatus::Resolved {
            return Ok(conversation);
        }
        match store.end_conversation(&conversation, now).await {
            Ok(ended) => return Ok(ended),
            // Changed meanwhile (a transfer, another end): look again.
            Err(StoreError::VersionMismatch) | Err(StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Unavailable(
        "the conversation kept changing concurrently; try again".into(),
    ))
}

/// `GET /conversations/{id}`: the conversation with the messages of `range` and its transfers.
pub async fn conversation_detail(
    store: &dyn ConversationHistory,
    caller: &Caller,
    id: &ConversationId,
    range: MessageRange,
) -> DomainResult<crate::store::ConversationDetail> {
    caller.require(DASHBOARD)?;
    known_conversation(id)?;
    store
        .conversation_detail(&caller.practice_id, id, range)
        .await?
        .ok_or(DomainError::NotFound("conversation"))
}

/// `GET /conversations`: newest activity first.
pub async fn list_conversations(
    store: &dyn ConversationStore,
    caller: &Caller,
    filter: ConversationFilter,
    cursor: Option<&str>,
    limit: usize,
) -> DomainResult<ConversationPage> {
    caller.require(DASHBOARD)?;
    if filter
        .department_id
        .as_ref()
        .is_some_and(|d| !plausible_id(d.as_str()))
    {
        // No department has such an id: none of its conversations exist.
        return Ok(ConversationPage {
            conversations: Vec::new(),
            next_cursor: None,
        });
    }
    store
        .list_conversations(&caller.practice_id, &filter, cursor, limit.clamp(1, 100))
        .await
        .map_err(|e| match e {
            StoreError::BadCursor => DomainError::invalid(
                InvalidCode::InvalidValue,
                "cursor",
                "the cursor is not one this API gave",
            ),
            other => other.into(),
        })
}

/// `POST /conversations/{id}/transfer` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    pub department_id: DepartmentId,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /conversations/{id}/transfer`: hands an open conversation to another department or provider,
/// visible or not, and alerts the target department.
pub async fn transfer_conversation(
    store: &dyn TransferStore,
    caller: &Caller,
    id: &ConversationId,
    input: TransferInput,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Conversation> {
    caller.require(DASHBOARD)?;
    let note = match input
        .note
        .as_deref()
        .map(|n| validate::text(n, "note"))
        .transpose()?
    {
        Some(n) if !n.is_empty() => Some(n),
        _ => None,
    };
    known_conversation(id)?;
    if !plausible_id(input.department_id.as_str()) {
        return Err(DomainError::NotFound("department"));
    }
    for _ in 0..RACE_RETRIES {
        // One read: the conversation, the target department, and what the alert quotes.
        let ctx = store
            .transfer_context(&caller.practice_id, id, &input.department_id)
            .await?;
        let conversation = ctx
            .conversation
            .ok_or(DomainError::NotFound("conversation"))?;
        if conversation.status == ConversationStatus::Resolved {
            return Err(resolved());
        }
        if conversation.department_id == input.department_id {
            return Err(DomainError::invalid(
                InvalidCode::SameDepartment,
                "department_id",
                "the conversation is already in this department",
            ));
        }
        let target = ctx.target.ok_or(DomainError::NotFound("department"))?;
        // The history is ordered by `at`: a transfer that commits after another (the version check makes
        // this read the latest) is never dated before it, whatever the two requests' clocks said.
        let at = match ctx.last_transfer_at {
            Some(previous) if previous >= now => previous + chrono::Duration::milliseconds(1),
            _ => now,
        };
        let transfer = Transfer {
            from: conversation.department_id.clone(),
            to: input.department_id.clone(),
            by: caller.sub.clone(),
            at,
            note: note.clone(),
        };
        let alert = PendingAlert::new(
            ids,
            AlertKind::Transfer,
            &conversation,
            &input.department_id,
            Some(transfer.clone()),
            now,
        )
        .with_preview(ctx.preview.as_deref().unwrap_or_default());
        // The client is told, in the conversation, under the new department's name.
        let into = OpenConversation {
            department_id: target.id.clone(),
            department_name: target.settings.name.clone(),
            ..OpenConversation::of(&conversation)
        };
        let notice = message_in(
            &into,
            0,
            Author::System,
            transfer_notice(&target.settings.name),
            at,
            ids,
        );
        match store
            .transfer_conversation(&conversation, &transfer, &notice, &alert)
            .await
        {
            Ok(moved) => return Ok(moved),
            // Ended or moved meanwhile: look again.
            Err(StoreError::VersionMismatch) => continue,
            Err(StoreError::NotFound) => return Err(DomainError::NotFound("department")),
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Unavailable(
        "the conversation kept changing concurrently; try again".into(),
    ))
}
