//! A message arrives: from the app or the web widget (`POST /inbound`, role client), or a text from the
//! SMS/WhatsApp gateway (`POST /inbound` with role integration, or the inbound-sms Lambda entry).
//!
//! A message joins the client's open conversation if there is one (whatever the hours or the department it
//! names); otherwise it starts a conversation in the department asked for (texts: always the default one),
//! if that department takes it now ([`admit`]), and the department is alerted in the same write.
//!
//! Texts: one that arrives while its department is closed gets the after-hours message as a text, once per
//! conversation per closed period ([`after_hours_text_due`]; Chatwoot #3042: out-of-office replies that
//! spam). An SMS that is exactly an opt-out keyword (STOP, …, START) opts the number out of (or back into)
//! this practice's texts ([`OptKeywordWrite`]): it joins the open conversation as a message, and never
//! starts one nor raises an alert. An opted-out number gets no text from the service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::common::{messages_for, not_set_up, retry_races, text_sender, Attempt};
use super::delivery::{opt_keyword, OptKeyword};
use super::rate_limit::{self, ClientRateLimits, RateUpdate};
use super::{
    Author, AutoReply, AutoReplyKind, Channel, Conversation, ConversationId, Message, Outcome,
};
use crate::alert::PendingAlert;
use crate::department::{ChatSettings, Department};
use crate::error::{ConflictCode, DomainError, DomainResult, InvalidCode};
use crate::identity::{plausible_id, Caller, DepartmentId, Ids, PracticeId, Role};
use crate::practice::Practice;
use crate::schedule::{self, Availability, AvailabilityReason};
use crate::store::{
    ConversationIntake, NewConversation, OpenConversation, OptKeywordWrite, StoreError,
};
use crate::validate;

/// `POST /inbound` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundInput {
    pub channel: Channel,
    #[serde(default)]
    pub department_id: Option<DepartmentId>,
    #[serde(default)]
    pub from: Option<String>,
    /// Texts: the practice number (SMS) or WhatsApp phone number id the client wrote to.
    #[serde(default)]
    pub to: Option<String>,
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
    /// Texts: the practice number (SMS, E.164) or WhatsApp phone number id the client wrote to, which
    /// replies go out from; `None`: the practice's first one.
    pub to: Option<String>,
    pub body: String,
    /// The gateway's message id (SNS `inboundMessageId`): a redelivery is not stored twice.
    pub dedup_key: Option<String>,
    /// The limits a client's app or web message is counted against; `None` for texts (never refused).
    pub rate_limits: Option<ClientRateLimits>,
}

impl Inbound {
    /// The client's message, then `auto_replies`, written into `to` (the channel the message came in on).
    fn messages(
        &self,
        to: &OpenConversation,
        auto_replies: &[AutoReply],
        now: DateTime<Utc>,
        ids: &dyn Ids,
    ) -> Vec<Message> {
        let author = Author::Client {
            id: self.client_id.clone(),
        };
        // The message says where it came from (a web message may join the client's app chat).
        let arrived = OpenConversation {
            channel: self.channel,
            ..to.clone()
        };
        messages_for(&arrived, author, self.body.clone(), auto_replies, now, ids)
    }
}

/// What `POST /inbound` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routed {
    /// `None` only for an opt-out keyword from a client without an open conversation: stored nowhere but
    /// in the opt-out record.
    pub conversation_id: Option<ConversationId>,
    pub department_id: Option<DepartmentId>,
    pub new_conversation: bool,
    pub outcome: Outcome,
    pub auto_replies: Vec<AutoReply>,
    /// An opt-out keyword's answer (outcome `opted_out`): since when the number is opted out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opted_out_at: Option<DateTime<Utc>>,
}

/// The longest `Idempotency-Key` a caller may send.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// The dedup key of an `Idempotency-Key` the caller sent: scoped to the caller, so two callers' keys never
/// meet. 1 to 128 visible ASCII characters (a UUID, a ULID, the gateway's own message id).
pub(super) fn caller_dedup_key(caller: &Caller, idempotency_key: &str) -> DomainResult<String> {
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
/// A client's message is counted against `limits`; the gateway's texts are not.
pub fn inbound_from_caller(
    caller: &Caller,
    input: InboundInput,
    idempotency_key: Option<&str>,
    limits: &ClientRateLimits,
) -> DomainResult<Inbound> {
    let (client_id, department_id) = if input.channel.is_text() {
        caller.require(&[Role::Integration])?;
        // Texts cannot choose a department: they start in the default one.
        (text_sender(input.from.as_deref())?, None)
    } else {
        caller.require(&[Role::Client])?;
        (caller.sub.clone(), input.department_id)
    };
    let to = match input.to.as_deref() {
        Some(to) if input.channel == Channel::Sms => Some(validate::gateway_number(to, "to")?),
        Some(to) if input.channel == Channel::Whatsapp => Some(to.trim().to_owned()),
        // The app and the widget write to the practice, not to a number.
        _ => None,
    };
    Ok(Inbound {
        practice_id: caller.practice_id.clone(),
        channel: input.channel,
        client_id,
        department_id,
        to,
        body: super::common::message_body(&input.body)?,
        dedup_key: idempotency_key
            .map(|key| caller_dedup_key(caller, key))
            .transpose()?,
        rate_limits: (!input.channel.is_text()).then_some(*limits),
    })
}

fn not_visible(id: &DepartmentId) -> DomainError {
    DomainError::invalid(
        InvalidCode::DepartmentNotVisible,
        "department_id",
        format!("department {id} does not take chats from the app"),
    )
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
    let wanted = inbound
        .department_id
        .clone()
        .unwrap_or_else(|| DepartmentId::default_for(&inbound.practice_id));
    if !plausible_id(wanted.as_str()) {
        return Err(not_visible(&wanted));
    }
    let (inbound, wanted) = (&inbound, &wanted);
    retry_races(|| route_once(store, inbound, wanted, now, ids)).await
}

/// One read (the practice, the department, the client's open conversation and rate counters), then one
/// write, which carries the client's counters when it is limited.
async fn route_once(
    store: &dyn ConversationIntake,
    inbound: &Inbound,
    wanted: &DepartmentId,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Routed>> {
    let ctx = store
        .routing_context(&inbound.practice_id, &inbound.client_id, wanted)
        .await?;
    let practice = ctx.practice.ok_or_else(not_set_up)?;
    let reply_from = reply_number(&practice, inbound)?;
    if inbound.channel == Channel::Sms {
        if let Some(keyword) = opt_keyword(&inbound.body) {
            let open = ctx.open_conversation;
            return opt_keyword_text(
                store,
                inbound,
                keyword,
                open,
                ctx.sms_opted_out_at,
                now,
                ids,
            )
            .await;
        }
    }
    // Only SMS is opted out: app, web and WhatsApp conversations of the same person are not.
    let opted_out = ctx
        .sms_opted_out_at
        .filter(|_| inbound.channel == Channel::Sms);
    let rate = match &inbound.rate_limits {
        Some(limits) => Some(rate_limit::count_message(
            limits,
            &inbound.client_id,
            ctx.client_rate.as_ref(),
            ctx.open_conversation.is_none(),
            now,
        )?),
        None => None,
    };
    if let Some(open) = ctx.open_conversation {
        // A text may get the after-hours message of the department its conversation is in now (read
        // again only when a transfer moved it out of the one read).
        let after_hours = if !inbound.channel.is_text() {
            None
        } else if ctx.department.as_ref().map(|d| &d.id) == Some(&open.department_id) {
            ctx.department
        } else {
            store
                .routing_context(
                    &inbound.practice_id,
                    &inbound.client_id,
                    &open.department_id,
                )
                .await?
                .department
        }
        .map(|department| closed_for_text(&practice, &department, &open, opted_out, now));
        return join(store, inbound, open, after_hours, rate.as_ref(), now, ids).await;
    }
    let department = match ctx.department {
        Some(d) if inbound.channel.is_text() || d.settings.visible_in_app => d,
        _ if inbound.channel.is_text() => return Err(not_set_up()),
        _ => return Err(not_visible(wanted)),
    };
    let to = Destination {
        practice: &practice,
        department,
        reply_from,
        sms_opted_out_at: opted_out,
    };
    start(store, inbound, to, rate, now, ids).await
}

/// Where replies to a text go out from: the practice number or WhatsApp phone number id the client wrote to
/// (422 on `to` when it is not the practice's), else the practice's first one on that channel.
fn reply_number(practice: &Practice, inbound: &Inbound) -> DomainResult<Option<String>> {
    if !inbound.channel.is_text() {
        return Ok(None);
    }
    match &inbound.to {
        Some(to) if practice.owns_reply_number(inbound.channel, to) => Ok(Some(to.clone())),
        Some(to) => Err(DomainError::invalid(
            InvalidCode::InvalidValue,
            "to",
            match inbound.channel {
                Channel::Whatsapp => format!("{to} is not one of the practice's whatsapp_numbers"),
                _ => format!("{to} is not one of the practice's sms_numbers"),
            },
        )),
        None => Ok(practice
            .default_reply_number(inbound.channel)
            .map(str::to_owned)),
    }
}

/// Where a new conversation starts: the practice, the department, the number replies go out from (texts),
/// and the opt-out of the client's number (SMS only) the conversation copies.
struct Destination<'a> {
    practice: &'a Practice,
    department: Department,
    reply_from: Option<String>,
    sms_opted_out_at: Option<DateTime<Utc>>,
}

/// What a text joining `open` meets in its department at `now`: whether the department is closed, and the
/// after-hours text if one is due ([`after_hours_text_due`]) and the number takes texts (not opted out).
fn closed_for_text(
    practice: &Practice,
    department: &Department,
    open: &OpenConversation,
    opted_out: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (bool, Option<AutoReply>) {
    let s = &department.settings;
    let a = schedule::availability(
        &s.hours,
        &s.date_overrides,
        s.online,
        practice.timezone,
        now,
    );
    let due = opted_out.is_none()
        && after_hours_text_due(practice, department, &a, open.after_hours_replied_at, now);
    (
        !a.open,
        due.then(|| AutoReply {
            kind: AutoReplyKind::AfterHours,
            text: s.chat.after_hours_message.clone(),
        }),
    )
}

/// Whether a text arriving at `now` gets the department's after-hours message: the department is closed
/// (`a`, its availability at `now`) and the conversation has not had the message in this closed period:
/// never, or its hours opened since it last had it ([`schedule::opened_between`]). A client texting five
/// times in one night gets one; texting again the next night, one again.
pub fn after_hours_text_due(
    practice: &Practice,
    department: &Department,
    a: &Availability,
    last_replied_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    if a.open {
        return false;
    }
    let s = &department.settings;
    match last_replied_at {
        None => true,
        Some(last) => {
            schedule::opened_between(&s.hours, &s.date_overrides, practice.timezone, last, now)
        }
    }
}

/// An SMS that is exactly an opt-out keyword: the number's opt-out record of this practice written (STOP:
/// since the first STOP; START: removed), and the keyword joins the client's open conversation as a
/// message if there is one (never a new conversation, an alert or an auto-reply).
async fn opt_keyword_text(
    store: &dyn ConversationIntake,
    inbound: &Inbound,
    keyword: OptKeyword,
    open: Option<OpenConversation>,
    read: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Routed>> {
    let (opted_out_at, outcome) = match keyword {
        OptKeyword::OptOut => (Some(read.unwrap_or(now)), Outcome::OptedOut),
        OptKeyword::OptIn => (None, Outcome::OptedIn),
    };
    let joins = open.map(|open| {
        let message = inbound.messages(&open, &[], now, ids).remove(0);
        (open, message)
    });
    let department_id = joins.as_ref().map(|(open, _)| open.department_id.clone());
    let answer = |conversation_id: Option<ConversationId>| Routed {
        conversation_id,
        department_id: department_id.clone(),
        new_conversation: false,
        outcome,
        auto_replies: Vec::new(),
        opted_out_at,
    };
    let write = OptKeywordWrite {
        practice_id: inbound.practice_id.clone(),
        number: inbound.client_id.clone(),
        opted_out_at,
        read,
        joins,
        dedup_key: inbound.dedup_key.clone(),
        received_at: now,
    };
    match store.record_opt_keyword(&write).await {
        Ok(()) => Ok(Attempt::Done(answer(
            write.joins.map(|(open, _)| open.conversation_id),
        ))),
        // A redelivery: the first one's answer (a keyword stored nowhere names no conversation).
        Err(StoreError::DuplicateInbound(c)) => {
            Ok(Attempt::Done(answer(Some(c).filter(|c| !c.0.is_empty()))))
        }
        // The record, the conversation or the claim changed since the read: read again.
        Err(StoreError::VersionMismatch)
        | Err(StoreError::NotFound)
        | Err(StoreError::ClientHasOpenConversation) => Ok(Attempt::LostRace),
        Err(e) => Err(e.into()),
    }
}

/// The message joins the client's open conversation; a text to a closed department with the after-hours
/// text when it is due (`after_hours`: whether closed, and the reply).
async fn join(
    store: &dyn ConversationIntake,
    inbound: &Inbound,
    open: OpenConversation,
    after_hours: Option<(bool, Option<AutoReply>)>,
    rate: Option<&RateUpdate>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Routed>> {
    let (closed, reply) = after_hours.unwrap_or((false, None));
    let auto_replies: Vec<AutoReply> = reply.into_iter().collect();
    let messages = inbound.messages(&open, &auto_replies, now, ids);
    let outcome = if closed {
        Outcome::AfterHoursMessageLeft
    } else {
        Outcome::Delivered
    };
    let joined = |conversation_id: ConversationId, auto_replies: Vec<AutoReply>| Routed {
        conversation_id: Some(conversation_id),
        department_id: Some(open.department_id.clone()),
        new_conversation: false,
        outcome,
        auto_replies,
        opted_out_at: None,
    };
    match store
        .append_counted(
            &inbound.practice_id,
            &open,
            &messages,
            inbound.dedup_key.as_deref(),
            rate,
        )
        .await
    {
        Ok(()) => Ok(Attempt::Done(joined(
            open.conversation_id.clone(),
            auto_replies,
        ))),
        Err(StoreError::DuplicateInbound(conversation_id)) => {
            Ok(Attempt::Done(joined(conversation_id, Vec::new())))
        }
        // Ended between the read and the write (the message starts a new conversation), or another
        // message took the next seq (or counted first): read again.
        Err(StoreError::NotFound) | Err(StoreError::VersionMismatch) => Ok(Attempt::LostRace),
        Err(e) => Err(e.into()),
    }
}

/// The message starts a conversation in `department`, which is alerted in the same write.
#[allow(clippy::too_many_arguments)]
async fn start(
    store: &dyn ConversationIntake,
    inbound: &Inbound,
    to: Destination<'_>,
    rate: Option<RateUpdate>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Routed>> {
    let Destination {
        practice,
        department,
        reply_from,
        sms_opted_out_at,
    } = to;
    let mut admission = admit(practice, &department, inbound.channel, now)?;
    if sms_opted_out_at.is_some() {
        // Nothing is texted to an opted-out number.
        admission.auto_replies.clear();
    }
    let mut conversation = Conversation::start(
        ConversationId(ids.next("cnv")),
        practice.id.clone(),
        &department,
        inbound.client_id.clone(),
        inbound.channel,
        now,
    );
    conversation.sms_opted_out_at = sms_opted_out_at;
    conversation.reply_from = reply_from;
    if inbound.channel == Channel::Whatsapp {
        conversation.last_whatsapp_at = Some(now);
    }
    let to = OpenConversation::of(&conversation);
    let messages = inbound.messages(&to, &admission.auto_replies, now, ids);
    conversation.opened_with(&messages);
    let alert = PendingAlert::new_conversation(ids, &conversation, &inbound.body, now);
    let new = NewConversation {
        conversation,
        messages,
        alert: Some(alert),
        dedup_key: inbound.dedup_key.clone(),
        rate,
    };
    match store.start_conversation(&new).await {
        Ok(()) => Ok(Attempt::Done(Routed {
            conversation_id: Some(new.conversation.id),
            department_id: Some(department.id),
            new_conversation: true,
            outcome: admission.outcome,
            auto_replies: admission.auto_replies,
            opted_out_at: None,
        })),
        // Another message of this client started one first (or counted first): join it on the next pass.
        Err(StoreError::ClientHasOpenConversation) | Err(StoreError::VersionMismatch) => {
            Ok(Attempt::LostRace)
        }
        Err(StoreError::DuplicateInbound(conversation_id)) => Ok(Attempt::Done(Routed {
            conversation_id: Some(conversation_id),
            department_id: Some(department.id),
            new_conversation: false,
            outcome: Outcome::Delivered,
            auto_replies: Vec::new(),
            opted_out_at: None,
        })),
        // The department was deleted meanwhile.
        Err(StoreError::NotFound) if !inbound.channel.is_text() => Err(not_visible(&department.id)),
        Err(StoreError::NotFound) => Ok(Attempt::LostRace),
        Err(e) => Err(e.into()),
    }
}

/// How a new conversation is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub outcome: Outcome,
    pub auto_replies: Vec<AutoReply>,
}

/// What a NEW conversation on `channel` meets in a department whose availability is `a`: taken while open;
/// when closed, texts are always taken, and an app or web chat only when the department allows messages after
/// hours and is not switched offline; otherwise refused with `after_hours` or `offline`.
///
/// The one rule behind both [`admit`] (what `POST /inbound` does) and the public `accepts_messages_now` (what
/// the widget promises), so the two cannot disagree.
pub fn new_conversation_outcome(
    a: &Availability,
    chat: &ChatSettings,
    channel: Channel,
) -> Result<Outcome, ConflictCode> {
    if a.open {
        Ok(Outcome::Delivered)
    } else if channel.is_text() {
        Ok(Outcome::AfterHoursMessageLeft)
    } else if a.reason == AvailabilityReason::Offline {
        Err(ConflictCode::Offline)
    } else if chat.allow_messages_after_hours {
        Ok(Outcome::AfterHoursMessageLeft)
    } else {
        Err(ConflictCode::AfterHours)
    }
}

/// Whether a department takes a NEW conversation on `channel` at `at`, and with which auto-replies.
///
/// The rule is [`new_conversation_outcome`]. A refusal carries the after-hours message and `opens_at`. An
/// accepted app chat gets the department's greeting; a conversation taken while closed gets the
/// after-hours message (a texted one as a text).
pub fn admit(
    practice: &Practice,
    department: &Department,
    channel: Channel,
    at: DateTime<Utc>,
) -> DomainResult<Admission> {
    let s = &department.settings;
    let a = schedule::availability(&s.hours, &s.date_overrides, s.online, practice.timezone, at);
    let outcome = match new_conversation_outcome(&a, &s.chat, channel) {
        Ok(outcome) => outcome,
        Err(code) => {
            let what = match code {
                ConflictCode::Offline => "is offline and takes no new chats right now",
                _ => "is closed and takes no messages after hours",
            };
            return Err(DomainError::Conflict {
                code,
                message: format!("{} {what}", s.name),
                details: Some(json!({
                    "after_hours_message": s.chat.after_hours_message,
                    "opens_at": a.opens_at,
                })),
            });
        }
    };
    let mut auto_replies = Vec::new();
    if channel == Channel::App {
        if let Some(greeting) = &s.chat.greeting {
            auto_replies.push(AutoReply {
                kind: AutoReplyKind::Greeting,
                text: greeting.clone(),
            });
        }
    }
    if outcome == Outcome::AfterHoursMessageLeft {
        auto_replies.push(AutoReply {
            kind: AutoReplyKind::AfterHours,
            text: s.chat.after_hours_message.clone(),
        });
    }
    Ok(Admission {
        outcome,
        auto_replies,
    })
}
