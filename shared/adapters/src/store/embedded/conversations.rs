//! Conversations on redb: each with its messages (by `seq`) and transfers, the activity index the dashboard
//! lists from (DynamoDB's GSI1), each client's conversations (the client's view, GSI2), the clients'
//! open-conversation claims and the inbound messages seen. Each change is one write transaction, its checks
//! in the DynamoDB transaction's order before any write; once committed, its changes go to the change feed
//! (the local stand-in for the table's stream).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::client_view::in_client_view;
use domain::conversation::rate_limit::RateUpdate;
use domain::conversation::{
    after_hours_reply_at, last_whatsapp_message_at, Channel, Conversation, ConversationId,
    ConversationStatus, Message, Transfer,
};
use domain::identity::{DepartmentId, PracticeId};
use domain::realtime::Change;
use domain::store::{
    ClientConversations, ConversationDetail, ConversationFilter, ConversationHistory,
    ConversationIntake, ConversationPage, ConversationStore, MessagePage, MessageRange,
    NewConversation, OpenConversation, OptKeywordWrite, RoutingContext, StoreError, StoreResult,
    TransferContext, TransferStore,
};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::alerts::insert_alert;
use super::opt_outs::{check_opt_out, read_opt_out, write_opt_out};
use super::rate_limits::{check_and_write_rate, read_rate};
use super::settings::{count_open, stored_department, DEPARTMENTS, PRACTICES};
use super::{decode, engine, get, past, put, EmbeddedStore, Json};
use crate::store::cursor::{decode_list_cursor, encode_list_cursor};
use crate::store::sortable;

pub(super) const CONVERSATIONS: TableDefinition<(&str, &str), Json> =
    TableDefinition::new("conversations");
/// (practice, conversation, `seq`): a page is a key range, as on DynamoDB.
pub(super) const MESSAGES: TableDefinition<(&str, &str, u64), Json> =
    TableDefinition::new("messages");
/// (practice, conversation, `at`, the transfer's alert): one alert per transfer makes the key unique.
const TRANSFERS: TableDefinition<(&str, &str, &str, &str), Json> =
    TableDefinition::new("transfers");
/// (practice, status, `last_message_at`, conversation) → department: newest activity last, so a list
/// reads it backwards.
const ACTIVITY: TableDefinition<(&str, &str, &str, &str), &str> =
    TableDefinition::new("conversation_activity");
const OPEN_CLAIMS: TableDefinition<(&str, &str), Json> = TableDefinition::new("open_claims");
/// (practice, client, conversation): the client's app and web conversations (the client's view).
const CLIENT_CONVERSATIONS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("client_conversations");
/// (practice, dedup key) → the conversation the inbound message was stored in. Kept, where DynamoDB lets
/// its TTL remove them after a week: a few bytes per text, and a redelivery is refused however late.
const INBOUND: TableDefinition<(&str, &str), &str> = TableDefinition::new("inbound_seen");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(CONVERSATIONS)?;
    tx.open_table(MESSAGES)?;
    tx.open_table(TRANSFERS)?;
    tx.open_table(ACTIVITY)?;
    tx.open_table(OPEN_CLAIMS)?;
    tx.open_table(CLIENT_CONVERSATIONS)?;
    tx.open_table(INBOUND)?;
    Ok(())
}

fn status_str(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "open",
        ConversationStatus::Resolved => "resolved",
    }
}

/// Writes a conversation over what is stored (`before`), moves its row in the activity index and, for a new
/// app or web conversation, lists it among its client's: the one place these are written.
fn store_conversation(
    tx: &WriteTransaction,
    before: Option<&Conversation>,
    after: &Conversation,
) -> StoreResult<()> {
    let (p, id) = (after.practice_id.0.as_str(), after.id.0.as_str());
    put(
        &mut tx.open_table(CONVERSATIONS).map_err(engine)?,
        (p, id),
        after,
    )?;
    let mut activity = tx.open_table(ACTIVITY).map_err(engine)?;
    if let Some(b) = before {
        activity
            .remove((
                p,
                status_str(b.status),
                sortable(b.last_message_at).as_str(),
                id,
            ))
            .map_err(engine)?;
    }
    activity
        .insert(
            (
                p,
                status_str(after.status),
                sortable(after.last_message_at).as_str(),
                id,
            ),
            after.department_id.0.as_str(),
        )
        .map_err(engine)?;
    if before.is_none() && in_client_view(after.channel) {
        tx.open_table(CLIENT_CONVERSATIONS)
            .map_err(engine)?
            .insert((p, after.client_id.as_str(), id), ())
            .map_err(engine)?;
    }
    Ok(())
}

fn stored_conversation(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    id: &ConversationId,
) -> StoreResult<Option<Conversation>> {
    let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
    get(&conversations, (practice_id.0.as_str(), id.0.as_str()))
}

fn put_messages(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    messages: &[Message],
) -> StoreResult<()> {
    let mut table = tx.open_table(MESSAGES).map_err(engine)?;
    for m in messages {
        let key = (practice_id.0.as_str(), m.conversation_id.0.as_str(), m.seq);
        put(&mut table, key, m)?;
        super::texts::index_in_flight(tx, practice_id.as_str(), m)?;
    }
    Ok(())
}

/// The messages of `range` (in `seq` order) and the `next_after` to answer: one range read, one row past
/// the page to tell whether there is more.
fn messages_in(
    tx: &ReadTransaction,
    practice_id: &PracticeId,
    id: &ConversationId,
    range: MessageRange,
) -> StoreResult<(Vec<Message>, Option<u64>)> {
    let table = tx.open_table(MESSAGES).map_err(engine)?;
    let (p, c) = (practice_id.0.as_str(), id.0.as_str());
    let rows = table
        .range((p, c, range.after.saturating_add(1))..=(p, c, u64::MAX))
        .map_err(engine)?;
    let mut found = Vec::new();
    for row in rows.take(range.limit.saturating_add(1)) {
        found.push(decode::<Message>(row.map_err(engine)?.1.value())?);
    }
    Ok(range.page(&found))
}

/// The body of the conversation's last message written by a person (what a transfer's alert quotes),
/// reading back from the newest.
fn last_by_a_person(
    tx: &ReadTransaction,
    practice_id: &PracticeId,
    id: &ConversationId,
) -> StoreResult<Option<String>> {
    let table = tx.open_table(MESSAGES).map_err(engine)?;
    let (p, c) = (practice_id.0.as_str(), id.0.as_str());
    for row in table
        .range((p, c, 0)..=(p, c, u64::MAX))
        .map_err(engine)?
        .rev()
    {
        let m: Message = decode(row.map_err(engine)?.1.value())?;
        if m.by_a_person() {
            return Ok(Some(m.body));
        }
    }
    Ok(None)
}

/// The inbound message `dedup_key` was stored before: `DuplicateInbound` naming its conversation.
fn check_not_seen(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    dedup_key: Option<&str>,
) -> StoreResult<()> {
    let Some(k) = dedup_key else { return Ok(()) };
    let seen = tx.open_table(INBOUND).map_err(engine)?;
    let existing = seen
        .get((practice_id.0.as_str(), k))
        .map_err(engine)?
        .map(|c| ConversationId(c.value().to_owned()));
    match existing {
        Some(c) => Err(StoreError::DuplicateInbound(c)),
        None => Ok(()),
    }
}

fn mark_seen(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    dedup_key: Option<&str>,
    conversation_id: &ConversationId,
) -> StoreResult<()> {
    if let Some(k) = dedup_key {
        tx.open_table(INBOUND)
            .map_err(engine)?
            .insert((practice_id.0.as_str(), k), conversation_id.0.as_str())
            .map_err(engine)?;
    }
    Ok(())
}

/// Every transfer of a conversation, oldest first.
fn transfers_of(
    tx: &ReadTransaction,
    practice_id: &PracticeId,
    id: &ConversationId,
) -> StoreResult<Vec<Transfer>> {
    let table = tx.open_table(TRANSFERS).map_err(engine)?;
    let (p, c) = (practice_id.0.as_str(), id.0.as_str());
    let past_c = past(c);
    let mut out = Vec::new();
    for row in table
        .range((p, c, "", "")..(p, past_c.as_str(), "", ""))
        .map_err(engine)?
    {
        out.push(decode(row.map_err(engine)?.1.value())?);
    }
    Ok(out)
}

/// The newest `limit` entries of one status in the activity index, before `before` (a position), in
/// department `department` if given: (`last_message_at` key, conversation id), newest first.
fn newest_in(
    tx: &ReadTransaction,
    practice_id: &PracticeId,
    status: ConversationStatus,
    department: Option<&DepartmentId>,
    before: Option<&(String, String)>,
    limit: usize,
) -> StoreResult<Vec<(String, String)>> {
    let activity = tx.open_table(ACTIVITY).map_err(engine)?;
    let (p, s) = (practice_id.0.as_str(), status_str(status));
    let past_s = past(s);
    let rows = match before {
        Some((at, id)) => activity.range((p, s, "", "")..(p, s, at.as_str(), id.as_str())),
        None => activity.range((p, s, "", "")..(p, past_s.as_str(), "", "")),
    }
    .map_err(engine)?;
    let mut out = Vec::new();
    for row in rows.rev() {
        let (key, dept) = row.map_err(engine)?;
        if department.is_some_and(|d| d.0 != dept.value()) {
            continue;
        }
        let (_, _, at, id) = key.value();
        out.push((at.to_owned(), id.to_owned()));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

#[async_trait]
impl ConversationIntake for EmbeddedStore {
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext> {
        self.read(|tx| {
            let p = practice_id.0.as_str();
            let practices = tx.open_table(PRACTICES).map_err(engine)?;
            let departments = tx.open_table(DEPARTMENTS).map_err(engine)?;
            let claims = tx.open_table(OPEN_CLAIMS).map_err(engine)?;
            Ok(RoutingContext {
                practice: get(&practices, p)?,
                department: get(&departments, (p, department_id.0.as_str()))?,
                open_conversation: get(&claims, (p, client_id))?,
                client_rate: read_rate(tx, practice_id, client_id)?,
                sms_opted_out_at: read_opt_out(tx, practice_id, client_id)?,
            })
        })
    }

    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()> {
        let new = new.clone();
        self.write(move |tx| {
            let c = &new.conversation;
            let p = c.practice_id.0.as_str();
            // Same order of checks as the DynamoDB transaction's cancellation reasons.
            let mut claims = tx.open_table(OPEN_CLAIMS).map_err(engine)?;
            if claims
                .get((p, c.client_id.as_str()))
                .map_err(engine)?
                .is_some()
            {
                return Err(StoreError::ClientHasOpenConversation);
            }
            if stored_department(tx, &c.practice_id, &c.department_id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            check_not_seen(tx, &c.practice_id, new.dedup_key.as_deref())?;
            check_and_write_rate(tx, &c.practice_id, new.rate.as_ref())?;
            if c.channel == Channel::Sms {
                check_opt_out(tx, &c.practice_id, &c.client_id, c.sms_opted_out_at)?;
            }

            put(
                &mut claims,
                (p, c.client_id.as_str()),
                &OpenConversation::of(c),
            )?;
            drop(claims);
            count_open(tx, &c.practice_id, &c.department_id, 1)?;
            mark_seen(tx, &c.practice_id, new.dedup_key.as_deref(), &c.id)?;
            if let Some(alert) = &new.alert {
                insert_alert(tx, alert)?;
            }
            store_conversation(tx, None, c)?;
            put_messages(tx, &c.practice_id, &new.messages)?;
            Ok(Change::started(&new))
        })
        .await
        .map(|changes| self.feed.publish(changes))
    }

    async fn append_counted(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
        rate: Option<&RateUpdate>,
    ) -> StoreResult<()> {
        let (practice_id, open, messages) = (practice_id.clone(), open.clone(), messages.to_vec());
        let dedup_key = dedup_key.map(str::to_owned);
        let rate = rate.cloned();
        self.write(move |tx| {
            append_in(
                tx,
                &practice_id,
                &open,
                &messages,
                dedup_key.as_deref(),
                rate.as_ref(),
                None,
            )
        })
        .await
        .map(|changes| self.feed.publish(changes))
    }

    async fn record_opt_keyword(&self, write: &OptKeywordWrite) -> StoreResult<()> {
        let write = write.clone();
        self.write(move |tx| {
            let (p, number) = (&write.practice_id, write.number.as_str());
            let Some((open, message)) = &write.joins else {
                // Same order of checks as the DynamoDB transaction: the claim, dedup, the record.
                let claims = tx.open_table(OPEN_CLAIMS).map_err(engine)?;
                if claims.get((p.as_str(), number)).map_err(engine)?.is_some() {
                    return Err(StoreError::ClientHasOpenConversation);
                }
                drop(claims);
                check_not_seen(tx, p, write.dedup_key.as_deref())?;
                check_opt_out(tx, p, number, write.read)?;
                let none = ConversationId(String::new());
                mark_seen(tx, p, write.dedup_key.as_deref(), &none)?;
                write_opt_out(tx, p, number, write.opted_out_at)?;
                return Ok(Vec::new());
            };
            let copy = (open.channel == Channel::Sms).then_some(write.opted_out_at);
            let changes = append_in(
                tx,
                p,
                open,
                std::slice::from_ref(message),
                write.dedup_key.as_deref(),
                None,
                Some((write.read, copy)),
            )?;
            write_opt_out(tx, p, number, write.opted_out_at)?;
            Ok(changes)
        })
        .await
        .map(|changes| self.feed.publish(changes))
    }
}

/// The opt-out an append carries: the record as read (checked), and the conversation's copy to write
/// (`Some(value)`, for an `sms` conversation).
type OptOutCheck = (Option<DateTime<Utc>>, Option<Option<DateTime<Utc>>>);

/// An append inside a write transaction: every check (open, its seq, dedup, counters, the opt-out record
/// as read), then the writes. Returns the changes to publish once committed.
fn append_in(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    open: &OpenConversation,
    messages: &[Message],
    dedup_key: Option<&str>,
    rate: Option<&RateUpdate>,
    opt_out: Option<OptOutCheck>,
) -> StoreResult<Vec<Change>> {
    let current = match stored_conversation(tx, practice_id, &open.conversation_id)? {
        Some(c) if c.status == ConversationStatus::Open => c,
        _ => return Err(StoreError::NotFound),
    };
    // Another message took the next seq since the read.
    if current.last_seq != open.last_seq {
        return Err(StoreError::VersionMismatch);
    }
    check_not_seen(tx, practice_id, dedup_key)?;
    check_and_write_rate(tx, practice_id, rate)?;
    if let Some((read, _)) = opt_out {
        check_opt_out(tx, practice_id, &open.client_id, read)?;
    }

    mark_seen(tx, practice_id, dedup_key, &open.conversation_id)?;
    let mut next = current.clone();
    if let Some(last) = messages.iter().map(|m| m.at).max() {
        next.last_message_at = last;
    }
    if let Some(last) = messages.last() {
        next.last_seq = last.seq;
    }
    if let Some(at) = last_whatsapp_message_at(messages) {
        next.last_whatsapp_at = Some(at);
    }
    let after_hours = after_hours_reply_at(messages);
    if after_hours.is_some() {
        next.after_hours_replied_at = after_hours;
    }
    if let Some((_, Some(copy))) = opt_out {
        next.sms_opted_out_at = copy;
    }
    store_conversation(tx, Some(&current), &next)?;
    put_messages(tx, practice_id, messages)?;
    // The claim's copies of `last_seq` and the after-hours instant, read by the next message of the client.
    let claim_key = (practice_id.0.as_str(), next.client_id.as_str());
    let mut claims = tx.open_table(OPEN_CLAIMS).map_err(engine)?;
    let claim: Option<OpenConversation> = get(&claims, claim_key)?;
    if let Some(mut claim) = claim.filter(|c| c.conversation_id == next.id) {
        claim.last_seq = next.last_seq;
        claim.after_hours_replied_at = next.after_hours_replied_at;
        put(&mut claims, claim_key, &claim)?;
    }
    Ok(Change::appended(practice_id, open, messages))
}

#[async_trait]
impl ConversationHistory for EmbeddedStore {
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Option<ConversationDetail>> {
        self.read(|tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
            let Some(conversation) = get(&conversations, (practice_id.0.as_str(), id.0.as_str()))?
            else {
                return Ok(None);
            };
            let (messages, next_after) = messages_in(tx, practice_id, id, range)?;
            Ok(Some(ConversationDetail {
                conversation,
                messages,
                transfers: transfers_of(tx, practice_id, id)?,
                next_after,
            }))
        })
    }
}

#[async_trait]
impl ConversationStore for EmbeddedStore {
    async fn get_conversation(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        self.read(|tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
            get(&conversations, (practice_id.0.as_str(), id.0.as_str()))
        })
    }

    async fn end_conversation(
        &self,
        conversation: &Conversation,
        at: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        let conversation = conversation.clone();
        self.write(move |tx| {
            let current =
                match stored_conversation(tx, &conversation.practice_id, &conversation.id)? {
                    Some(c)
                        if c.status == ConversationStatus::Open
                            && c.department_id == conversation.department_id =>
                    {
                        c
                    }
                    _ => return Err(StoreError::VersionMismatch),
                };
            let p = conversation.practice_id.0.as_str();
            let claim_key = (p, conversation.client_id.as_str());
            let mut claims = tx.open_table(OPEN_CLAIMS).map_err(engine)?;
            let claim: Option<OpenConversation> = get(&claims, claim_key)?;
            if claim.map(|o| o.conversation_id).as_ref() != Some(&conversation.id) {
                return Err(StoreError::VersionMismatch);
            }
            claims.remove(claim_key).map_err(engine)?;
            drop(claims);
            // The department may be gone only if the data is corrupt (it cannot be deleted while this
            // conversation is open); the conversation ends all the same, as on DynamoDB.
            match count_open(
                tx,
                &conversation.practice_id,
                &conversation.department_id,
                -1,
            ) {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
            let mut ended = current.clone();
            ended.status = ConversationStatus::Resolved;
            ended.resolved_at = Some(at);
            store_conversation(tx, Some(&current), &ended)?;
            Ok(ended)
        })
        .await
        .inspect(|ended| self.feed.publish(Change::ended(ended)))
    }

    async fn list_conversations(
        &self,
        practice_id: &PracticeId,
        filter: &ConversationFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<ConversationPage> {
        let before = cursor
            .map(|raw| decode_list_cursor(raw, practice_id))
            .transpose()?
            .map(|at| (sortable(at.last_message_at), at.id.0));
        let limit = limit.max(1);
        let statuses = filter.statuses();
        self.read(|tx| {
            // One more than a page from each status, merged newest first: the extra one only tells
            // whether there is a next page.
            let mut found = Vec::new();
            for status in statuses {
                found.extend(newest_in(
                    tx,
                    practice_id,
                    status,
                    filter.department_id.as_ref(),
                    before.as_ref(),
                    limit + 1,
                )?);
            }
            found.sort_by(|a, b| b.cmp(a));
            let more = found.len() > limit;
            found.truncate(limit);
            let conversations_table = tx.open_table(CONVERSATIONS).map_err(engine)?;
            let mut conversations = Vec::with_capacity(found.len());
            for (_, id) in &found {
                let c: Conversation = get(
                    &conversations_table,
                    (practice_id.0.as_str(), id.as_str()),
                )?
                .ok_or_else(|| {
                    StoreError::Unavailable("embedded store: activity index is inconsistent".into())
                })?;
                conversations.push(c);
            }
            let next_cursor = match conversations.last() {
                Some(last) if more => Some(encode_list_cursor(practice_id, last)),
                _ => None,
            };
            Ok(ConversationPage {
                conversations,
                next_cursor,
            })
        })
    }
}

#[async_trait]
impl TransferStore for EmbeddedStore {
    async fn transfer_context(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        to: &DepartmentId,
    ) -> StoreResult<TransferContext> {
        self.read(|tx| {
            let p = practice_id.0.as_str();
            let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
            let departments = tx.open_table(DEPARTMENTS).map_err(engine)?;
            let conversation: Option<Conversation> = get(&conversations, (p, id.0.as_str()))?;
            let (preview, last_transfer_at) = match &conversation {
                Some(_) => (
                    last_by_a_person(tx, practice_id, id)?,
                    transfers_of(tx, practice_id, id)?
                        .iter()
                        .map(|t| t.at)
                        .max(),
                ),
                None => (None, None),
            };
            Ok(TransferContext {
                conversation,
                target: get(&departments, (p, to.0.as_str()))?,
                preview,
                last_transfer_at,
            })
        })
    }

    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        notice: &Message,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation> {
        let (conversation, transfer, notice, alert) = (
            conversation.clone(),
            transfer.clone(),
            notice.clone(),
            alert.clone(),
        );
        self.write(move |tx| {
            let practice_id = &conversation.practice_id;
            let current = match stored_conversation(tx, practice_id, &conversation.id)? {
                Some(c)
                    if c.status == ConversationStatus::Open
                        && c.department_id == transfer.from
                        && c.last_seq == conversation.last_seq =>
                {
                    c
                }
                _ => return Err(StoreError::VersionMismatch),
            };
            if stored_department(tx, practice_id, &transfer.to)?.is_none() {
                return Err(StoreError::NotFound);
            }

            match count_open(tx, practice_id, &transfer.from, -1) {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
            count_open(tx, practice_id, &transfer.to, 1)?;
            let p = practice_id.0.as_str();
            let claim_key = (p, conversation.client_id.as_str());
            let mut claims = tx.open_table(OPEN_CLAIMS).map_err(engine)?;
            let claim: Option<OpenConversation> = get(&claims, claim_key)?;
            if let Some(mut claim) = claim.filter(|c| c.conversation_id == conversation.id) {
                claim.department_id = transfer.to.clone();
                claim.department_name = notice.department_name.clone();
                claim.last_seq = notice.seq;
                put(&mut claims, claim_key, &claim)?;
            }
            drop(claims);
            insert_alert(tx, &alert)?;
            let at = sortable(transfer.at);
            put(
                &mut tx.open_table(TRANSFERS).map_err(engine)?,
                (
                    p,
                    conversation.id.0.as_str(),
                    at.as_str(),
                    alert.id.0.as_str(),
                ),
                &transfer,
            )?;
            put_messages(tx, practice_id, std::slice::from_ref(&notice))?;
            let mut moved = current.clone();
            moved.department_id = transfer.to.clone();
            moved.department_name = notice.department_name.clone();
            moved.last_seq = notice.seq;
            store_conversation(tx, Some(&current), &moved)?;
            let changes = Change::transferred(&moved, &transfer.from, &notice);
            Ok((moved, changes))
        })
        .await
        .map(|(moved, changes)| {
            self.feed.publish(changes);
            moved
        })
    }
}

#[async_trait]
impl ClientConversations for EmbeddedStore {
    async fn client_conversations(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Conversation>> {
        self.read(|tx| {
            let p = practice_id.0.as_str();
            let index = tx.open_table(CLIENT_CONVERSATIONS).map_err(engine)?;
            let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
            let past_client = past(client_id);
            let mut found = Vec::new();
            for row in index
                .range((p, client_id, "")..(p, past_client.as_str(), ""))
                .map_err(engine)?
            {
                let (key, _) = row.map_err(engine)?;
                let (_, _, id) = key.value();
                if let Some(c) = get::<_, Conversation>(&conversations, (p, id))? {
                    found.push(c);
                }
            }
            found.sort_by(|a, b| (b.last_message_at, &b.id).cmp(&(a.last_message_at, &a.id)));
            found.truncate(limit);
            Ok(found)
        })
    }

    async fn client_messages(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Option<MessagePage>> {
        self.read(|tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
            let conversation: Option<Conversation> =
                get(&conversations, (practice_id.0.as_str(), id.0.as_str()))?;
            // Another client's conversation, or a texted one, is not in this client's view.
            if !conversation.is_some_and(|c| c.client_id == client_id && in_client_view(c.channel))
            {
                return Ok(None);
            }
            let (messages, next_after) = messages_in(tx, practice_id, id, range)?;
            Ok(Some(MessagePage {
                messages,
                next_after,
            }))
        })
    }
}

/// The open conversations of one department (the reminder's read), from the activity index.
pub(super) fn open_in(
    tx: &ReadTransaction,
    practice_id: &PracticeId,
    department_id: &DepartmentId,
) -> StoreResult<Vec<Conversation>> {
    let ids = newest_in(
        tx,
        practice_id,
        ConversationStatus::Open,
        Some(department_id),
        None,
        usize::MAX,
    )?;
    let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
    let mut out = Vec::with_capacity(ids.len());
    for (_, id) in ids {
        if let Some(c) = get(&conversations, (practice_id.0.as_str(), id.as_str()))? {
            out.push(c);
        }
    }
    Ok(out)
}
