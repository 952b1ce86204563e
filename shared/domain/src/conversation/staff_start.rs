//! Staff start a conversation (`POST /conversations`): from any department, visible in the app or not, at
//! any time, to a client who has no open conversation.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::common::{
    known_department, message_body, messages_for, not_set_up, refused_by_opt_out, retry_races,
    Attempt,
};
use super::delivery::fits_the_channel;
use super::{Author, Channel, Conversation, ConversationId};
use crate::error::{ConflictCode, DomainError, DomainResult, InvalidCode};
use crate::identity::{plausible_id, Caller, DepartmentId, Ids, DASHBOARD, MAX_ID_BYTES};
use crate::store::{ConversationIntake, NewConversation, OpenConversation, StoreError};
use crate::validate;

/// `POST /conversations` body.
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
    known_department(&input.department_id)?;
    let channel = input.channel.unwrap_or(if client_id.starts_with('+') {
        Channel::Sms
    } else {
        Channel::App
    });
    if channel == Channel::Whatsapp {
        // A business may write first on WhatsApp only with a template Meta approved, which this service
        // does not send: staff start chats in the app or by SMS.
        return Err(DomainError::invalid(
            InvalidCode::InvalidValue,
            "channel",
            "staff start a conversation in the app or by SMS; WhatsApp conversations start with the client",
        ));
    }
    fits_the_channel(channel, &body)?;
    let client_id = if channel.is_text() {
        // A number staff typed: the phone-number library's full check (E.164, no default region).
        validate::e164(&validate::phone(&client_id, "", "client_id")?)
    } else {
        client_id
    };
    let start = Start {
        caller,
        department_id: &input.department_id,
        client_id: &client_id,
        channel,
        body: &body,
    };
    retry_races(|| start_once(store, &start, now, ids)).await
}

/// What one attempt starts.
struct Start<'a> {
    caller: &'a Caller,
    department_id: &'a DepartmentId,
    client_id: &'a str,
    channel: Channel,
    body: &'a str,
}

async fn start_once(
    store: &dyn ConversationIntake,
    start: &Start<'_>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Conversation>> {
    let practice_id = &start.caller.practice_id;
    let ctx = store
        .routing_context(practice_id, start.client_id, start.department_id)
        .await?;
    let practice = ctx.practice.ok_or_else(not_set_up)?;
    let department = ctx.department.ok_or(DomainError::NotFound("department"))?;
    // Its first message would be a text to a number that said STOP: refused before anything is stored
    // (the start's write checks the opt-out record is still as read).
    refused_by_opt_out(start.channel, ctx.sms_opted_out_at)?;
    if let Some(open) = ctx.open_conversation {
        return Err(DomainError::Conflict {
            code: ConflictCode::ClientHasOpenConversation,
            message: "the client already has an open conversation".into(),
            details: Some(json!({"conversation_id": open.conversation_id})),
        });
    }
    let mut conversation = Conversation::start(
        ConversationId(ids.next("cnv")),
        practice_id.clone(),
        &department,
        start.client_id.to_owned(),
        start.channel,
        now,
    );
    // The first message goes out from the practice's first texting number.
    conversation.reply_from = practice
        .default_reply_number(start.channel)
        .map(str::to_owned);
    let author = Author::Staff {
        id: start.caller.sub.clone(),
    };
    let to = OpenConversation::of(&conversation);
    let messages = messages_for(&to, author, start.body.to_owned(), &[], now, ids);
    conversation.opened_with(&messages);
    // Staff started it themselves: their own department needs no alert.
    let new = NewConversation {
        // Staff are never limited.
        rate: None,
        conversation,
        messages,
        alert: None,
        dedup_key: None,
    };
    match store.start_conversation(&new).await {
        Ok(()) => Ok(Attempt::Done(new.conversation)),
        // Or the number opted out meanwhile: read again.
        Err(StoreError::ClientHasOpenConversation) | Err(StoreError::VersionMismatch) => {
            Ok(Attempt::LostRace)
        }
        Err(StoreError::NotFound) => Err(DomainError::NotFound("department")),
        Err(e) => Err(e.into()),
    }
}
