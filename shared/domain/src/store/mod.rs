//! The storage port, one small trait per aggregate (and per slice of one that a function may touch), so
//! each function holds only what its IAM policy in `template.yaml` lets it do. Two adapters implement every
//! trait (DynamoDB and the embedded redb store, on a file or in memory, in `adapters::store`), and one
//! contract suite per aggregate holds them to the same answers (`tests/tests/stores/`).
//!
//! | trait | aggregate | held by |
//! |---|---|---|
//! | [`SettingsLookup`] | settings (reads) | through the composed traits below |
//! | [`SettingsStore`]: `SettingsLookup` | settings | config-api |
//! | [`ConversationIntake`] | conversations (a message arrives) | through `ConversationStore`, `TextIntakeStore` |
//! | [`ConversationHistory`] | conversations (one read whole) | through `ConversationStore`, `TransferStore` |
//! | [`ConversationStore`]: `ConversationIntake + ConversationHistory` | conversations | through `InboundRouterStore` |
//! | [`TransferStore`] | conversations (transfer) | transfer-alerts (its HTTP route) |
//! | [`ClientConversations`] | conversations (the client's view) | through `InboundRouterStore` |
//! | [`TicketStore`] | realtime (tickets) | through `InboundRouterStore`, `RealtimeStore` |
//! | [`ConnectionStore`] | realtime (connections) | through `RealtimeStore`; realtime-fanout |
//! | [`InboundRouterStore`]: `ConversationStore + ClientConversations + TicketStore + SettingsLookup + TextOutbox` | | inbound-router |
//! | [`RealtimeStore`]: `TicketStore + ConnectionStore` | | realtime-connections (`$connect`, `$disconnect`) |
//! | [`AlertOutbox`] | alerts (delivery) | through `DispatchStore` |
//! | [`PendingAlerts`] | alerts (sweep) | the local server's alert worker |
//! | [`ReminderStore`] | reminders | through `ReminderRunStore` |
//! | [`DispatchStore`]: `AlertOutbox + SettingsLookup` | | alert-dispatcher |
//! | [`ReminderRunStore`]: `ReminderStore + SettingsLookup` | | eod-reminder |
//! | [`TextIntakeStore`]: `SettingsLookup + ConversationIntake` | | inbound-sms |
//! | [`WhatsAppEventStore`]: `TextIntakeStore + TextOutbox` | | inbound-whatsapp |
//! | [`TextOutbox`] | texts (delivery of replies by SMS and WhatsApp) | the text sender, the status entry, the retry route |
//! | [`TextSenderStore`]: `TextOutbox + SettingsLookup` | | text-sender |
//! | [`Store`]: all of them | | the local server (every function in one process), the tests |
//!
//! A number's opt-out of a practice's texts has no trait of its own: it is written with the conversation
//! change that records it (`ConversationIntake::record_opt_keyword`, read with `routing_context`) or by the
//! sender that met the provider's refusal (`TextOutbox::record_refused_opt_out`).
//!
//! The composed traits have blanket implementations: a store implements the aggregate traits and gets them.
//! One error type for all ([`StoreError`]); `adapters::http` maps it (through `DomainError`) to the
//! contract's codes in one place.

mod alerts;
mod conversations;
mod realtime;
mod reminders;
mod settings;
mod texts;

pub use alerts::{AlertOutbox, PendingAlerts};
pub use conversations::{
    ClientConversations, ConversationDetail, ConversationFilter, ConversationHistory,
    ConversationIntake, ConversationPage, ConversationStore, MessagePage, MessageRange,
    NewConversation, OpenConversation, OptKeywordWrite, RoutingContext, TransferContext,
    TransferStore,
};
pub use realtime::{ConnectionStore, TicketStore};
pub use reminders::{ReminderClaim, ReminderStore};
pub use settings::{sort_departments, PracticeConfig, SettingsLookup, SettingsStore};
pub use texts::{is_text_in_flight, StoredText, TextOutbox, TextRef};

use crate::conversation::ConversationId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A create found the record already there.
    #[error("the record already exists")]
    AlreadyExists,
    /// The record to change is not there (or was deleted meanwhile).
    #[error("the record does not exist")]
    NotFound,
    /// The record changed since it was read (optimistic concurrency).
    #[error("the record was changed concurrently")]
    VersionMismatch,
    /// Another department of the practice has this name (case-insensitive).
    #[error("a department with this name exists")]
    DuplicateName,
    /// A texting number already belongs to another practice.
    #[error("texting number {0} belongs to another practice")]
    SmsNumberTaken(String),
    /// The department still has open conversations.
    #[error("the department has open conversations")]
    HasOpenConversations,
    /// The client already has an open conversation in the practice.
    #[error("the client already has an open conversation")]
    ClientHasOpenConversation,
    /// This inbound message (gateway message id) was stored before, in the conversation named.
    #[error("inbound message already stored in conversation {0}")]
    DuplicateInbound(ConversationId),
    /// A list cursor that this store did not hand out.
    #[error("bad cursor")]
    BadCursor,
    /// The backing service failed or throttled after its retries.
    #[error("{0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What delivering an alert touches: the outbox and the alert's practice and department (alert-dispatcher).
pub trait DispatchStore: AlertOutbox + SettingsLookup {}
impl<T: AlertOutbox + SettingsLookup + ?Sized> DispatchStore for T {}

/// What a reminder run touches: the due departments, their practice and settings, the reminder's claim with
/// its alert (eod-reminder; the alert dispatcher delivers the alert).
pub trait ReminderRunStore: ReminderStore + SettingsLookup {}
impl<T: ReminderStore + SettingsLookup + ?Sized> ReminderRunStore for T {}

/// What an inbound text touches: the owner of the number texted, then the intake (inbound-sms).
pub trait TextIntakeStore: SettingsLookup + ConversationIntake {}
impl<T: SettingsLookup + ConversationIntake + ?Sized> TextIntakeStore for T {}

/// What the WhatsApp event destination's notifications touch: inbound messages (the owner of the phone
/// number id, then the intake) and the statuses of replies (inbound-whatsapp).
pub trait WhatsAppEventStore: TextIntakeStore + TextOutbox {}
impl<T: TextIntakeStore + TextOutbox + ?Sized> WhatsAppEventStore for T {}

/// What the conversation routes touch: conversations, the client's view of them, tickets for live updates
/// and the department a staff ticket names (inbound-router).
pub trait InboundRouterStore:
    ConversationStore + ClientConversations + TicketStore + SettingsLookup + TextOutbox
{
}
impl<
        T: ConversationStore
            + ClientConversations
            + TicketStore
            + SettingsLookup
            + TextOutbox
            + ?Sized,
    > InboundRouterStore for T
{
}

/// What the text sender touches: the text it claims and records, the practice's numbers (text-sender).
pub trait TextSenderStore: TextOutbox + SettingsLookup {}
impl<T: TextOutbox + SettingsLookup + ?Sized> TextSenderStore for T {}

/// What the WebSocket routes touch: a ticket taken on `$connect`, the connection recorded and deleted
/// (realtime-connections).
pub trait RealtimeStore: TicketStore + ConnectionStore {}
impl<T: TicketStore + ConnectionStore + ?Sized> RealtimeStore for T {}

/// Every store trait: what the local server holds (it runs every function in one process) and the tests.
/// A new aggregate's trait joins this list.
pub trait Store:
    SettingsStore
    + InboundRouterStore
    + TransferStore
    + PendingAlerts
    + DispatchStore
    + ReminderRunStore
    + TextIntakeStore
    + WhatsAppEventStore
    + TextSenderStore
    + RealtimeStore
    + 'static
{
}
impl<T> Store for T where
    T: SettingsStore
        + InboundRouterStore
        + TransferStore
        + PendingAlerts
        + DispatchStore
        + ReminderRunStore
        + TextIntakeStore
        + WhatsAppEventStore
        + TextSenderStore
        + RealtimeStore
        + 'static
        + ?Sized
{
}
