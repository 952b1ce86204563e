//! Every file of `events/` through the real function binaries, run as Lambda runs them: each binary is
//! started against the in-repo Runtime API emulator (`vetchat_tests::runtime_api`) and DynamoDB Local, gets
//! its events through `GET /runtime/invocation/next` and answers through `/response` (or `/error`).
//!
//! Adding a function = one entry in [`FUNCTIONS`] (binary → events directory → what the table holds first →
//! the events in the order they are sent, each with its expected status and check → what the story must
//! have left behind). An event file without an entry fails `every_event_file_has_a_check`.
//!
//! The event files are static, as `cargo lambda invoke --data-file` sends them, so the ids they name are fixed:
//! the entries that need a practice start from the demo practice ([`Seed::DemoPractice`]: `prc_demo`, its
//! default department `dep_team_prc_demo`, Grooming `dep_grooming_demo`, and Bella's open text conversation
//! `cnv_demo_bella`), written through the domain services at a fixed instant. The DynamoDB Streams batch
//! carries the alert item it reports as inserted: [`Seed::StreamInserts`] puts that `NewImage` into the
//! table, as the insert the stream reports would have. The entries that send alerts go to moto's SES v2 and
//! SNS (`AWS_ENDPOINT_URL_SESV2`/`AWS_ENDPOINT_URL_SNS`, `MOTO_ENDPOINT` to read back what it received).
//!
//! The binaries are built once per test process (`vetchat_tests::local_server::build_workspace_binaries`:
//! why a test builds them itself is said there). `VETCHAT_LAMBDA_BIN_DIR=<dir>` uses the binaries in
//! `<dir>` instead and builds nothing (e.g. release builds, for measurements).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use adapters::store::DynamoStore;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use domain::alert::{AlertKind, AlertStatus, AlertSubject, DeliveryOutcome, PendingAlert};
use domain::conversation::DeliveryStatus;
use domain::conversation::{
    self, AlertId, Author, Channel, Conversation, ConversationId, ConversationStatus, Inbound,
};
use domain::identity::{Caller, DepartmentId, Ids, PracticeId, Role};
use domain::realtime::{Connection, ConnectionId, Subscriber, Ticket};
use domain::settings;
use domain::store::{
    ConnectionStore, ConversationFilter, ConversationPage, Store, TextRef, TicketStore,
};
use serde_json::{json, Map, Value};
use vetchat_tests::local_server::workspace_root;
use vetchat_tests::runtime_api::{
    aws_env_from_current, FunctionProcess, InvocationError, RuntimeApi,
};

// ---------------------------------------------------------------------------------------------------------
// The table: function binary → events directory → seed → the events in order → what they left behind
// ---------------------------------------------------------------------------------------------------------

struct Function {
    /// The binary's name (`[[bin]]` name; for a package's main binary, the package name).
    binary: &'static str,
    /// The directory under `events/` holding this entry's events.
    events_dir: &'static str,
    /// Extra environment beyond the table name and the AWS settings of the test process.
    env: &'static [(&'static str, &'static str)],
    /// What the fresh table holds before the first event, in this order.
    seed: &'static [Seed],
    /// The alert sender (`SENDER_EMAIL`) the function runs with.
    sender: Sender,
    /// The events in the order they are sent: one story on a fresh table. A file may appear more than once.
    steps: &'static [Step],
    /// Checks of what the story left in the table and in moto, after the last step.
    after: &'static [After],
}

struct Step {
    file: &'static str,
    expect: Expect,
}

enum Expect {
    /// An API Gateway HTTP API (payload 2.0) response with this status, then the check.
    Http(u16, fn(&HttpReply)),
    /// Any other entry (EventBridge, SNS, DynamoDB Streams): the check gets the function's output.
    Output(fn(&Value)),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seed {
    /// The demo practice, written through the domain services at [`seed_instant`] (see [`seed_demo_practice`]).
    DemoPractice,
    /// Every item an `INSERT` record of the entry's events carries (`dynamodb.NewImage`), put into the table:
    /// the dispatcher reads the alert the record names back from the table.
    StreamInserts,
    /// The ticket `connect.json` carries, sold to the demo practice's staff member a moment ago.
    Ticket,
    /// The fake `@connections` endpoint (the function reaches it through
    /// `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`) and the demo practice's connections: the desk's (alive),
    /// one that is gone (410), Bella's owner's (a texting client: told nothing); one of another practice.
    Connections,
    /// The fake End User Messaging server (the function reaches it through the SDKs'
    /// `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2` and `AWS_ENDPOINT_URL_SOCIALMESSAGING`).
    FakeTexting,
    /// Every `INSERT` of the alert dispatcher's stream records put into the table: among them the queued
    /// text reply the SMS events of `text-status` are about.
    QueuedTextReply,
    /// Rex's owner wrote on WhatsApp (`cnv_demo_rex_wa`) and staff answered: the queued reply (seq 2) the
    /// statuses of `inbound-whatsapp/sns-whatsapp-statuses.json` are about.
    WhatsAppReply,
}

/// The `SENDER_EMAIL` of an entry: a new address for each story, so moto's identities from other runs
/// (moto keeps them while it runs) decide nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// None set: the function sends no alerts.
    None,
    /// Made a verified SES identity in moto (SES v2 `CreateEmailIdentity`) before the first event.
    Verified,
    /// Verified by nobody, nor is its domain: moto's SES refuses to send from it (`MessageRejected`).
    Unverified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The text of `sns-inbound-text.json`, sent twice, is one conversation with one client message; the
    /// STOP of `sns-inbound-stop.json` started none and opted its number out of the practice's texts.
    TextStoredOnce,
    /// Bella's conversation is in Grooming, with one pending transfer alert (the transactional outbox).
    TransferAlertPending,
    /// The stream's alert is done: one email (moto's SES) and one SMS (moto's SNS), sent once in all.
    StreamAlertDeliveredOnce,
    /// The stream's alert is still pending: SES refused the unverified sender, the SMS went out.
    StreamAlertLeftPending,
    /// The reminder run stored one reminder for the default department, listing Bella's conversation, for
    /// the alert dispatcher to deliver; it sent nothing itself (no email reached moto).
    ReminderStoredForTheDispatcher,
    /// The ticket opened one connection, bound to the staff member who bought it.
    ConnectionRecorded,
    /// The connection was forgotten on `$disconnect`.
    NoConnection,
    /// The desk got the reply and the transfer as staff frames, once each; the gone connection was posted
    /// to once and deleted (and only it); the texting client and the other practice got nothing.
    FramesPosted,
    /// The stream's text reply went out once, through End User Messaging SMS, from the practice number, and
    /// its delivery is `sent`.
    TextSentOnce,
    /// The text reply is `delivered`: the late `TEXT_SENT` did not move it back.
    TextDelivered,
    /// The WhatsApp message of `sns-whatsapp-message.json`, sent twice, is one `whatsapp` conversation with
    /// one client message and one new-conversation alert; replies go out from the AWS phone number id.
    WhatsAppStoredOnce,
    /// Rex's WhatsApp reply is `delivered`: the late `sent` did not move it back.
    WhatsAppReplyDelivered,
}

impl After {
    fn reads_moto(self) -> bool {
        matches!(
            self,
            After::StreamAlertDeliveredOnce
                | After::StreamAlertLeftPending
                | After::ReminderStoredForTheDispatcher
        )
    }
}

const DASHBOARD: &str = "https://dashboard.happypaws.example";

const FUNCTIONS: &[Function] = &[
    Function {
        binary: "config-api",
        events_dir: "config-api",
        env: &[],
        seed: &[],
        sender: Sender::None,
        steps: &[
            Step {
                file: "put-practice.json",
                expect: Expect::Http(201, practice_created),
            },
            Step {
                file: "get-departments.json",
                expect: Expect::Http(200, only_the_default_department),
            },
            Step {
                file: "post-department.json",
                expect: Expect::Http(201, grooming_created),
            },
            Step {
                file: "get-departments.json",
                expect: Expect::Http(200, default_then_grooming),
            },
            Step {
                file: "public-availability.json",
                expect: Expect::Http(200, both_open_on_monday_morning),
            },
            Step {
                file: "forbidden-staff-put-practice.json",
                expect: Expect::Http(403, forbidden),
            },
            Step {
                file: "put-practice.json",
                expect: Expect::Http(200, practice_updated),
            },
        ],
        after: &[],
    },
    Function {
        binary: "inbound-router",
        events_dir: "inbound-router",
        env: &[],
        seed: &[Seed::DemoPractice],
        sender: Sender::None,
        steps: &[
            Step {
                file: "inbound-sms-text.json",
                expect: Expect::Http(201, text_started_in_the_default_department),
            },
            Step {
                file: "inbound-sms-text.json",
                expect: Expect::Http(200, text_joined_its_conversation),
            },
            Step {
                file: "inbound-app-chat-grooming.json",
                expect: Expect::Http(201, app_chat_started_in_grooming),
            },
            Step {
                file: "inbound-app-chat-grooming.json",
                expect: Expect::Http(200, app_chat_joined_its_conversation),
            },
            Step {
                file: "list-open-conversations.json",
                expect: Expect::Http(200, three_open_conversations),
            },
            Step {
                file: "end-conversation.json",
                expect: Expect::Http(200, bella_ended),
            },
            Step {
                file: "end-conversation.json",
                expect: Expect::Http(200, bella_ended),
            },
            Step {
                file: "forbidden-client-list-conversations.json",
                expect: Expect::Http(403, forbidden),
            },
            Step {
                file: "list-open-conversations.json",
                expect: Expect::Http(200, two_open_conversations),
            },
        ],
        after: &[],
    },
    Function {
        binary: "inbound-sms",
        events_dir: "inbound-sms",
        env: &[],
        seed: &[Seed::DemoPractice],
        sender: Sender::None,
        steps: &[
            Step {
                file: "sns-inbound-text.json",
                expect: Expect::Output(text_routed),
            },
            // SNS delivers at least once: the redelivery is recognised by its inboundMessageId.
            Step {
                file: "sns-inbound-text.json",
                expect: Expect::Output(text_routed),
            },
            Step {
                file: "sns-inbound-text-unknown-number.json",
                expect: Expect::Output(text_skipped),
            },
            // STOP from a number with no conversation: taken (routed), stored only as its opt-out.
            Step {
                file: "sns-inbound-stop.json",
                expect: Expect::Output(text_routed),
            },
        ],
        after: &[After::TextStoredOnce],
    },
    Function {
        binary: "inbound-whatsapp",
        events_dir: "inbound-whatsapp",
        env: &[],
        seed: &[Seed::DemoPractice, Seed::WhatsAppReply],
        sender: Sender::None,
        steps: &[
            // A text message and a reaction (skipped).
            Step {
                file: "sns-whatsapp-message.json",
                expect: Expect::Output(whatsapp_message_routed),
            },
            // SNS delivers at least once: the redelivery is recognised by Meta's message id.
            Step {
                file: "sns-whatsapp-message.json",
                expect: Expect::Output(whatsapp_message_routed),
            },
            // Rex's reply delivered, its late `sent`, and a status of no reply of ours.
            Step {
                file: "sns-whatsapp-statuses.json",
                expect: Expect::Output(whatsapp_status_applied),
            },
            Step {
                file: "sns-whatsapp-statuses.json",
                expect: Expect::Output(whatsapp_statuses_unchanged),
            },
            Step {
                file: "sns-whatsapp-unknown-number.json",
                expect: Expect::Output(whatsapp_skipped),
            },
        ],
        after: &[After::WhatsAppStoredOnce, After::WhatsAppReplyDelivered],
    },
    Function {
        binary: "transfer-alerts",
        events_dir: "transfer-alerts",
        env: &[],
        seed: &[Seed::DemoPractice],
        sender: Sender::None,
        steps: &[
            Step {
                file: "transfer-to-grooming.json",
                expect: Expect::Http(200, bella_moved_to_grooming),
            },
            Step {
                file: "transfer-to-grooming.json",
                expect: Expect::Http(422, already_in_grooming),
            },
            Step {
                file: "forbidden-client-transfer.json",
                expect: Expect::Http(403, forbidden),
            },
        ],
        after: &[After::TransferAlertPending],
    },
    Function {
        binary: "alert-dispatcher",
        events_dir: "alert-dispatcher",
        env: &[("DASHBOARD_URL", DASHBOARD)],
        seed: &[Seed::DemoPractice, Seed::StreamInserts],
        sender: Sender::Verified,
        steps: &[
            Step {
                file: "dynamodb-stream-alert-insert.json",
                expect: Expect::Output(no_batch_item_failures),
            },
            // A retried batch (or a duplicate record) sends nothing twice.
            Step {
                file: "dynamodb-stream-alert-insert.json",
                expect: Expect::Output(no_batch_item_failures),
            },
        ],
        after: &[After::StreamAlertDeliveredOnce],
    },
    // The same batch when SES refuses the sender (not verified): a transient failure, so the record is
    // reported as a batch item failure and the stream retries it (then hands it to the on-failure queue).
    Function {
        binary: "alert-dispatcher",
        events_dir: "alert-dispatcher",
        env: &[("DASHBOARD_URL", DASHBOARD)],
        seed: &[Seed::DemoPractice, Seed::StreamInserts],
        sender: Sender::Unverified,
        steps: &[Step {
            file: "dynamodb-stream-alert-insert.json",
            expect: Expect::Output(the_alert_record_failed),
        }],
        after: &[After::StreamAlertLeftPending],
    },
    Function {
        binary: "realtime-connections",
        events_dir: "realtime-connections",
        env: &[],
        seed: &[Seed::DemoPractice, Seed::Ticket],
        sender: Sender::None,
        steps: &[
            Step {
                file: "connect.json",
                expect: Expect::Output(connection_accepted),
            },
            // A ticket works once.
            Step {
                file: "connect.json",
                expect: Expect::Output(connection_refused),
            },
            Step {
                file: "default.json",
                expect: Expect::Output(connection_accepted),
            },
        ],
        after: &[After::ConnectionRecorded],
    },
    Function {
        binary: "realtime-connections",
        events_dir: "realtime-connections",
        env: &[],
        seed: &[Seed::DemoPractice, Seed::Ticket],
        sender: Sender::None,
        steps: &[
            Step {
                file: "connect.json",
                expect: Expect::Output(connection_accepted),
            },
            Step {
                file: "disconnect.json",
                expect: Expect::Output(connection_accepted),
            },
            // API Gateway may report a disconnect twice: nothing to forget the second time.
            Step {
                file: "disconnect.json",
                expect: Expect::Output(connection_accepted),
            },
        ],
        after: &[After::NoConnection],
    },
    Function {
        binary: "realtime-fanout",
        events_dir: "realtime-fanout",
        env: &[],
        seed: &[Seed::DemoPractice, Seed::Connections],
        sender: Sender::None,
        steps: &[Step {
            file: "dynamodb-stream-message-and-transfer.json",
            expect: Expect::Output(no_batch_item_failures),
        }],
        after: &[After::FramesPosted],
    },
    Function {
        binary: "alert-dispatcher",
        events_dir: "alert-dispatcher",
        env: &[],
        seed: &[Seed::DemoPractice, Seed::StreamInserts, Seed::FakeTexting],
        sender: Sender::Verified,
        steps: &[
            Step {
                file: "dynamodb-stream-text-reply-insert.json",
                expect: Expect::Output(no_batch_item_failures),
            },
            // The stream hands the record again (a retried batch): claimed already, nothing sent.
            Step {
                file: "dynamodb-stream-text-reply-insert.json",
                expect: Expect::Output(no_batch_item_failures),
            },
        ],
        after: &[After::TextSentOnce],
    },
    Function {
        binary: "text-status",
        events_dir: "text-status",
        env: &[],
        seed: &[Seed::DemoPractice, Seed::QueuedTextReply],
        sender: Sender::None,
        steps: &[
            Step {
                file: "sns-sms-delivered.json",
                expect: Expect::Output(one_status_applied),
            },
            // SNS delivers at least once, and the provider's events come in any order.
            Step {
                file: "sns-sms-delivered.json",
                expect: Expect::Output(no_status_applied),
            },
            Step {
                file: "sns-sms-sent-late.json",
                expect: Expect::Output(no_status_applied),
            },
        ],
        after: &[After::TextDelivered],
    },
    Function {
        binary: "text-sweep",
        events_dir: "text-sweep",
        env: &[],
        // A queued reply whose stream record never reached the dispatcher (lost, or on the dead-letter
        // queue): stored minutes before the tick, so the sweep takes it over.
        seed: &[Seed::DemoPractice, Seed::QueuedTextReply, Seed::FakeTexting],
        sender: Sender::None,
        steps: &[
            Step {
                file: "scheduled-event.json",
                expect: Expect::Output(one_stuck_text_sent),
            },
            // The next tick: nothing in flight any more.
            Step {
                file: "scheduled-event.json",
                expect: Expect::Output(nothing_stuck),
            },
        ],
        after: &[After::TextSentOnce],
    },
    Function {
        binary: "eod-reminder",
        events_dir: "eod-reminder",
        env: &[],
        seed: &[Seed::DemoPractice],
        // No sender: the run stores reminders and sends nothing (its role has no SES or SNS either).
        sender: Sender::None,
        steps: &[
            // As the schedule's rule delivers a tick, one target's range at a time (template.yaml): the
            // demo department's due entry is in shard 18, so the range 0-7 (with the legacy partition) finds
            // nothing and the range 16-23 reminds it.
            Step {
                file: "scheduled-event-shards-00-07.json",
                expect: Expect::Output(nothing_due),
            },
            Step {
                file: "scheduled-event-shards-16-23.json",
                expect: Expect::Output(one_department_reminded),
            },
            // The same event again (EventBridge delivers at least once): nothing is due any more.
            Step {
                file: "scheduled-event-shards-16-23.json",
                expect: Expect::Output(nothing_due),
            },
            // A plain scheduled event (no range: every shard) finds it handled too.
            Step {
                file: "scheduled-event.json",
                expect: Expect::Output(nothing_due),
            },
        ],
        after: &[After::ReminderStoredForTheDispatcher],
    },
];

// The config-api story (practice `prc_demo`, whose default department id is derived from it).

const PRACTICE: &str = "prc_demo";
const DEFAULT_DEPARTMENT: &str = "dep_team_prc_demo";

fn practice_created(r: &HttpReply) {
    assert_eq!(r.body["id"], PRACTICE);
    assert_eq!(r.body["name"], "Happy Paws");
    assert_eq!(r.body["timezone"], "America/New_York");
    assert_eq!(r.body["country"], "US");
    assert_eq!(r.body["sms_numbers"], json!(["+12015550100"]));
    assert_eq!(r.body["default_department_id"], DEFAULT_DEPARTMENT);
    assert!(r.body.get("version").is_none(), "internal counter leaked");
}

fn practice_updated(r: &HttpReply) {
    practice_created(r);
}

fn only_the_default_department(r: &HttpReply) {
    let list = r.body.as_array().expect("a JSON array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], DEFAULT_DEPARTMENT);
    assert_eq!(list[0]["name"], "Happy Paws Team");
    assert_eq!(list[0]["is_default"], true);
    assert_eq!(list[0]["visible_in_app"], true);
}

fn grooming_created(r: &HttpReply) {
    let d = &r.body;
    assert!(d["id"].as_str().is_some_and(|id| id.starts_with("dep_")));
    assert_eq!(d["name"], "Grooming");
    assert_eq!(d["is_default"], false);
    assert_eq!(d["alerts"]["emails"], json!(["desk@happypaws.example"]));
    assert_eq!(d["alerts"]["sms_numbers"], json!(["+12015550123"]));
    assert_eq!(
        d["unresolved_reminder"],
        json!({"enabled": true, "at": "17:30"})
    );
    assert_eq!(d["hours"]["fri"], json!({"start": "09:00", "end": "16:00"}));
    assert_eq!(d["hours"]["sun"], Value::Null);
    assert_eq!(d["open_conversations"], 0);
    let etag = d["etag"].as_str().expect("an etag");
    assert_eq!(r.header("etag"), Some(etag), "ETag header = etag");
}

fn default_then_grooming(r: &HttpReply) {
    let names: Vec<&str> = r
        .body
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Happy Paws Team", "Grooming"]);
}

/// The event asks at Monday 2026-11-23 10:00 New York time: both departments keep 09:00–18:00 on Mondays.
fn both_open_on_monday_morning(r: &HttpReply) {
    assert_eq!(
        r.body["practice"],
        json!({"name": "Happy Paws", "timezone": "America/New_York"})
    );
    let departments = r.body["departments"].as_array().expect("departments");
    let names: Vec<&str> = departments
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Happy Paws Team", "Grooming"]);
    for d in departments {
        assert_eq!(d["open"], true, "{d}");
        assert_eq!(d["reason"], "open", "{d}");
        assert_eq!(d["closes_at"], "2026-11-23T18:00:00-05:00", "{d}");
        assert_eq!(d["accepts_messages_now"], true, "{d}");
    }
    assert_eq!(departments[0]["id"], DEFAULT_DEPARTMENT);
    assert_eq!(
        departments[1]["greeting"],
        "Hi! Grooming here, how can we help?"
    );
    let text = r.body.to_string();
    assert!(
        !text.contains("desk@happypaws.example") && !text.contains("+12015550123"),
        "availability shows no alert recipients: {text}"
    );
}

fn forbidden(r: &HttpReply) {
    assert_eq!(r.code(), "forbidden", "{}", r.body);
}

// The demo practice the other stories start from (see `seed_demo_practice`): both departments are open
// around the clock, so what the HTTP entries answer does not depend on the wall clock.

const GROOMING: &str = "dep_grooming_demo";
const GROOMING_GREETING: &str = "Hi! Grooming here, how can we help?";
/// Bella's owner texted before the story starts: an open SMS conversation in the default department.
const BELLA: &str = "cnv_demo_bella";
const BELLA_OWNER: &str = "+12015550199";
const BELLA_TEXT: &str = "Can Bella's nails be trimmed on Saturday?";
/// `inbound-router/inbound-sms-text.json` and `inbound-app-chat-grooming.json`.
const REX_OWNER_PHONE: &str = "+12015550111";
const APP_CLIENT: &str = "owner-42";
/// `inbound-sms/sns-inbound-text.json`.
const LUNA_OWNER: &str = "+12015550142";
const LUNA_TEXT: &str = "Hi, can Luna come in for her vaccines tomorrow?";

fn text_started_in_the_default_department(r: &HttpReply) {
    assert!(
        r.body["conversation_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cnv_") && id != BELLA),
        "{}",
        r.body
    );
    assert_eq!(r.body["department_id"], DEFAULT_DEPARTMENT);
    assert_eq!(r.body["new_conversation"], true);
    assert_eq!(r.body["outcome"], "delivered");
    assert_eq!(r.body["auto_replies"], json!([]), "texts get no greeting");
}

fn text_joined_its_conversation(r: &HttpReply) {
    assert_eq!(r.body["department_id"], DEFAULT_DEPARTMENT, "{}", r.body);
    assert_eq!(r.body["new_conversation"], false);
    assert_eq!(r.body["outcome"], "delivered");
    assert_eq!(r.body["auto_replies"], json!([]));
}

fn app_chat_started_in_grooming(r: &HttpReply) {
    assert_eq!(r.body["department_id"], GROOMING, "{}", r.body);
    assert_eq!(r.body["new_conversation"], true);
    assert_eq!(r.body["outcome"], "delivered");
    assert_eq!(
        r.body["auto_replies"],
        json!([{"kind": "greeting", "text": GROOMING_GREETING}])
    );
}

fn app_chat_joined_its_conversation(r: &HttpReply) {
    assert_eq!(r.body["department_id"], GROOMING, "{}", r.body);
    assert_eq!(r.body["new_conversation"], false);
    assert_eq!(
        r.body["auto_replies"],
        json!([]),
        "the greeting is sent once"
    );
}

/// The open conversations' clients (the order is by last activity, which the wall clock decides here).
fn open_clients(r: &HttpReply) -> BTreeSet<String> {
    let list = r.body["conversations"].as_array().expect("conversations");
    for c in list {
        assert_eq!(c["status"], "open", "{c}");
        assert_eq!(c["practice_id"], PRACTICE, "{c}");
    }
    assert_eq!(r.body["next_cursor"], Value::Null, "one page");
    list.iter()
        .map(|c| c["client_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn three_open_conversations(r: &HttpReply) {
    assert_eq!(
        open_clients(r),
        BTreeSet::from([
            BELLA_OWNER.to_owned(),
            REX_OWNER_PHONE.to_owned(),
            APP_CLIENT.to_owned()
        ])
    );
}

fn two_open_conversations(r: &HttpReply) {
    assert_eq!(
        open_clients(r),
        BTreeSet::from([REX_OWNER_PHONE.to_owned(), APP_CLIENT.to_owned()]),
        "Bella's conversation was ended"
    );
}

/// Ending twice is not an error: both answer the ended conversation.
fn bella_ended(r: &HttpReply) {
    assert_eq!(r.body["id"], BELLA, "{}", r.body);
    assert_eq!(r.body["status"], "resolved");
    assert!(r.body["resolved_at"].is_string(), "{}", r.body);
    assert_eq!(r.body["client_id"], BELLA_OWNER);
}

fn bella_moved_to_grooming(r: &HttpReply) {
    assert_eq!(r.body["id"], BELLA, "{}", r.body);
    assert_eq!(r.body["department_id"], GROOMING);
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["client_id"], BELLA_OWNER);
}

fn already_in_grooming(r: &HttpReply) {
    assert_eq!(r.code(), "same_department", "{}", r.body);
    assert_eq!(r.body["error"]["field"], "department_id");
}

fn text_routed(output: &Value) {
    assert_eq!(output, &json!({"records": 1, "routed": 1, "skipped": 0}));
}

fn text_skipped(output: &Value) {
    assert_eq!(output, &json!({"records": 1, "routed": 0, "skipped": 1}));
}

fn whatsapp_batch(routed: u64, applied: u64, unchanged: u64, skipped: u64) -> Value {
    json!({"records": 1, "routed": routed, "statuses_applied": applied,
           "statuses_unchanged": unchanged, "skipped": skipped})
}

fn whatsapp_message_routed(output: &Value) {
    assert_eq!(output, &whatsapp_batch(1, 0, 0, 1));
}

fn whatsapp_status_applied(output: &Value) {
    assert_eq!(output, &whatsapp_batch(0, 1, 1, 1));
}

fn whatsapp_statuses_unchanged(output: &Value) {
    assert_eq!(output, &whatsapp_batch(0, 0, 2, 1));
}

fn whatsapp_skipped(output: &Value) {
    assert_eq!(output, &whatsapp_batch(0, 0, 0, 1));
}

/// The alert `alert-dispatcher/dynamodb-stream-alert-insert.json` reports as inserted, and its record's
/// sequence number (the `itemIdentifier` of a partial batch response).
const STREAM_ALERT: &str = "alr_01kaqd9x7m3v5t8r2n6b4c1wyz";
const STREAM_SEQUENCE: &str = "4421584500000000017450439091";

fn connection_accepted(output: &Value) {
    assert_eq!(output, &json!({"statusCode": 200}));
}

fn connection_refused(output: &Value) {
    assert_eq!(output, &json!({"statusCode": 401}));
}

/// Where the text reply of the texting events stands.
async fn text_reply_status(store: &dyn Store) -> DeliveryStatus {
    let text = TextRef {
        practice_id: demo_practice_id(),
        conversation_id: ConversationId("cnv_text_demo".into()),
        seq: 2,
    };
    store
        .get_text(&text)
        .await
        .expect("read the text")
        .and_then(|t| t.message.delivery)
        .expect("the text reply")
        .status
}

fn one_status_applied(output: &Value) {
    assert_eq!(output, &json!({"applied": 1}));
}

fn no_status_applied(output: &Value) {
    assert_eq!(output, &json!({"applied": 0}));
}

fn no_batch_item_failures(output: &Value) {
    assert_eq!(output, &json!({"batchItemFailures": []}));
}

fn the_alert_record_failed(output: &Value) {
    assert_eq!(
        output,
        &json!({"batchItemFailures": [{"itemIdentifier": STREAM_SEQUENCE}]})
    );
}

/// `eod-reminder/scheduled-event.json` runs at 17:45 New York time on Monday 2026-11-23: the default
/// department's 17:30 reminder is due, and Bella's conversation is open in it.
fn one_stuck_text_sent(output: &Value) {
    assert_eq!(
        output,
        &json!({"stuck": 1, "sent": 1, "unconfirmed": 0}),
        "{output}"
    );
}

fn nothing_stuck(output: &Value) {
    assert_eq!(
        output,
        &json!({"stuck": 0, "sent": 0, "unconfirmed": 0}),
        "{output}"
    );
}

fn one_department_reminded(output: &Value) {
    assert_eq!(
        output,
        &json!({
            "run_at": "2026-11-23T22:45:00Z", "due": 1, "departments_reminded": 1,
            "nothing_open": 0, "already_handled": 0, "failures": 0
        })
    );
}

fn nothing_due(output: &Value) {
    assert_eq!(
        output,
        &json!({
            "run_at": "2026-11-23T22:45:00Z", "due": 0, "departments_reminded": 0,
            "nothing_open": 0, "already_handled": 0, "failures": 0
        })
    );
}

// ---------------------------------------------------------------------------------------------------------
// Seeds and after-checks
// ---------------------------------------------------------------------------------------------------------

/// One entry's story: its table, and the demo practice's alert recipients — new for each story, so what moto
/// received for this story can be told apart from everything else moto received.
struct Story {
    store: DynamoStore,
    desk_email: String,
    groomer_email: String,
    groomer_sms: String,
    /// The entry's `SENDER_EMAIL`, if it has one.
    sender: Option<String>,
    /// Texts moto had received for `groomer_sms` before the first event.
    groomer_sms_before: usize,
    /// The fake `@connections` endpoint, for the fanout.
    connections: Option<vetchat_tests::fake_connections::FakeConnections>,
    /// The fake End User Messaging server, for the text sender.
    texting: Option<vetchat_tests::fake_texting::FakeTexting>,
}

impl Story {
    /// A fresh table with the entry's seeds.
    async fn start(f: &Function) -> Story {
        let needs_moto = f.sender != Sender::None || f.after.iter().any(|a| a.reads_moto());
        if needs_moto {
            moto_endpoint(); // panics with how to start it
        }
        let unique = ulid::Ulid::new().to_string().to_lowercase();
        let mut story = Story {
            store: DynamoStore::new(vetchat_tests::dynamo_client().await, fresh_table().await),
            desk_email: format!("desk-{unique}@happypaws.example"),
            groomer_email: format!("groomer-{unique}@happypaws.example"),
            // 555-01xx: numbers reserved for fiction.
            groomer_sms: format!("+120155501{:02}", ulid::Ulid::new().random() % 100),
            sender: match f.sender {
                Sender::None => None,
                Sender::Verified => Some(format!("alerts-{unique}@vetchat-events.example")),
                Sender::Unverified => Some(format!(
                    "alerts-{unique}@unverified-{unique}.vetchat-events.example"
                )),
            },
            groomer_sms_before: 0,
            connections: None,
            texting: None,
        };
        for seed in f.seed {
            match seed {
                Seed::DemoPractice => seed_demo_practice(&story).await,
                Seed::StreamInserts => put_stream_inserts(f, &story.store).await,
                Seed::Ticket => seed_ticket(f, &story.store).await,
                Seed::Connections => story.connections = Some(seed_connections(&story.store).await),
                Seed::FakeTexting => {
                    story.texting = Some(vetchat_tests::fake_texting::FakeTexting::start().await)
                }
                Seed::QueuedTextReply => {
                    put_stream_inserts_of("alert-dispatcher", &story.store).await
                }
                Seed::WhatsAppReply => seed_whatsapp_reply(&story).await,
            }
        }
        if let (Sender::Verified, Some(sender)) = (f.sender, &story.sender) {
            verify_sender(sender).await;
        }
        if needs_moto {
            story.groomer_sms_before = texts_to(&moto_data().await, &story.groomer_sms).len();
        }
        story
    }

    fn table(&self) -> &str {
        self.store.table_name()
    }

    /// The entry's binary on the story's table, with the story's `SENDER_EMAIL`.
    async fn spawn(&self, f: &Function) -> FunctionProcess {
        let sender = self
            .sender
            .iter()
            .map(|s| ("SENDER_EMAIL".to_owned(), s.clone()));
        let connections = self.connections.iter().map(|c| {
            (
                "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI".to_owned(),
                c.url.clone(),
            )
        });
        let texting = self
            .texting
            .iter()
            .flat_map(|t| t.env().map(|(k, v)| (k.to_owned(), v)));
        spawn_with(
            f,
            Some(self.table()),
            sender.chain(connections).chain(texting).collect(),
        )
        .await
    }
}

/// The instant the demo practice is written at: Monday 2026-11-23, 09:00 in New York.
fn seed_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0)
        .single()
        .expect("a valid instant")
}

/// Conversation ids for the seed: Bella's conversation gets its fixed id, the rest new ones.
struct DemoIds;

impl Ids for DemoIds {
    fn next(&self, prefix: &str) -> String {
        match prefix {
            "cnv" => BELLA.to_owned(),
            other => adapters::new_id(other),
        }
    }
}

fn demo_practice_id() -> PracticeId {
    PracticeId(PRACTICE.to_owned())
}

/// The demo practice, through the same domain services the functions use (at [`seed_instant`]):
/// `prc_demo` "Happy Paws" in New York texting from +12015550100; its default department open around the
/// clock with a greeting, alerts to the story's desk address and the end-of-day reminder at 17:30; Grooming
/// (`dep_grooming_demo`, in the app, open around the clock, greeting, alerts by email and SMS); and Bella's
/// owner's text, an open conversation `cnv_demo_bella` in the default department.
async fn seed_demo_practice(story: &Story) {
    let store: &dyn Store = &story.store;
    let admin = Caller {
        sub: "usr_admin_demo".to_owned(),
        practice_id: demo_practice_id(),
        role: Role::Admin,
    };
    let practice = serde_json::from_value(json!({
        "name": "Happy Paws", "timezone": "America/New_York", "country": "US",
        "sms_numbers": ["+12015550100"],
        "whatsapp_numbers": [{"phone_number_id": DEMO_WHATSAPP_ID, "number": "+12015550100"}]
    }))
    .expect("a practice input");
    settings::put_practice(store, &admin, practice, seed_instant())
        .await
        .expect("seed the practice");
    let always = json!({"start": "00:00", "end": "24:00"});
    let week = json!({
        "mon": always, "tue": always, "wed": always, "thu": always, "fri": always, "sat": always, "sun": always
    });
    settings::patch_department(
        store,
        &admin,
        &DepartmentId(DEFAULT_DEPARTMENT.to_owned()),
        json!({
            "hours": week,
            "chat": {"greeting": "Hi! How can we help?"},
            "alerts": {"enabled": true, "emails": [story.desk_email]},
            "unresolved_reminder": {"enabled": true, "at": "17:30"}
        }),
        None,
        seed_instant(),
    )
    .await
    .expect("seed the default department");
    settings::create_department(
        store,
        &admin,
        json!({
            "name": "Grooming", "visible_in_app": true, "hours": week,
            "chat": {"greeting": GROOMING_GREETING},
            "alerts": {"enabled": true, "emails": [story.groomer_email], "sms_numbers": [story.groomer_sms]}
        }),
        seed_instant(),
        DepartmentId(GROOMING.to_owned()),
    )
    .await
    .expect("seed Grooming");
    let text = Inbound {
        to: None,
        practice_id: demo_practice_id(),
        channel: Channel::Sms,
        client_id: BELLA_OWNER.to_owned(),
        department_id: None,
        body: BELLA_TEXT.to_owned(),
        dedup_key: None,
        rate_limits: None,
    };
    let routed = conversation::route_inbound(store, text, seed_instant(), &DemoIds)
        .await
        .expect("seed Bella's conversation");
    assert_eq!(routed.conversation_id.unwrap().as_str(), BELLA);
}

/// The demo practice's WhatsApp number: AWS's id of it (Meta's is `321010217760100`; the events' header
/// maps one to the other).
const DEMO_WHATSAPP_ID: &str = "phone-number-id-976c72a700aac43eaf573ae050example";
const REX_WA: &str = "cnv_demo_rex_wa";
const REX_WA_OWNER: &str = "+14255550150";
/// Who writes in `sns-whatsapp-message.json`.
const MILO_WA_OWNER: &str = "+14255550177";

/// Rex's owner's WhatsApp message and staff's answer to it (seq 2, queued), written through the domain a
/// few minutes before the statuses.
async fn seed_whatsapp_reply(story: &Story) {
    struct RexIds;
    impl Ids for RexIds {
        fn next(&self, prefix: &str) -> String {
            match prefix {
                "cnv" => REX_WA.to_owned(),
                other => adapters::new_id(other),
            }
        }
    }
    let store: &dyn Store = &story.store;
    let at = Utc::now() - chrono::Duration::minutes(5);
    let message = Inbound {
        practice_id: demo_practice_id(),
        channel: Channel::Whatsapp,
        client_id: REX_WA_OWNER.to_owned(),
        department_id: None,
        to: Some(DEMO_WHATSAPP_ID.to_owned()),
        body: "Is Rex's prescription ready?".to_owned(),
        dedup_key: None,
        rate_limits: None,
    };
    let routed = conversation::route_inbound(store, message, at, &RexIds)
        .await
        .expect("seed Rex's WhatsApp conversation");
    assert_eq!(
        routed.conversation_id.expect("a conversation").as_str(),
        REX_WA
    );
    let staff = Caller {
        sub: "usr_staff_demo".to_owned(),
        practice_id: demo_practice_id(),
        role: Role::Staff,
    };
    let reply = conversation::staff_reply(
        store,
        &staff,
        &ConversationId(REX_WA.to_owned()),
        "Yes, it's ready at the front desk.",
        at + chrono::Duration::minutes(1),
        &RexIds,
    )
    .await
    .expect("seed the reply");
    assert_eq!(reply.seq, 2);
}

const DESK_CONNECTION: &str = "conn-desk-demo";
const GONE_CONNECTION: &str = "conn-gone-demo";

/// The ticket of the entry's `connect.json`, sold to `usr_staff_demo` of the demo practice: valid for a
/// minute from now (the function reads the real clock).
async fn seed_ticket(f: &Function, store: &DynamoStore) {
    let event = read_event(f.events_dir, "connect.json");
    let secret = event["queryStringParameters"]["ticket"]
        .as_str()
        .expect("connect.json carries a ticket");
    let ticket = Ticket {
        subscriber: demo_staff(),
        expires_at: Utc::now() + chrono::Duration::seconds(60),
    };
    store
        .put_ticket(secret, &ticket)
        .await
        .expect("seed the ticket");
}

fn demo_staff() -> Subscriber {
    Subscriber {
        practice_id: demo_practice_id(),
        sub: "usr_staff_demo".to_owned(),
        role: Role::Staff,
        department_id: None,
    }
}

async fn seed_connections(store: &DynamoStore) -> vetchat_tests::fake_connections::FakeConnections {
    let fake = vetchat_tests::fake_connections::FakeConnections::start().await;
    fake.set(
        DESK_CONNECTION,
        vetchat_tests::fake_connections::Behaviour::Alive,
    );
    let bella = Subscriber {
        sub: BELLA_OWNER.to_owned(),
        role: Role::Client,
        ..demo_staff()
    };
    let other = Subscriber {
        practice_id: PracticeId("prc_other".to_owned()),
        ..demo_staff()
    };
    // Alive, so that a post to them would be recorded as delivered: none may come.
    fake.set(
        "conn-bella-demo",
        vetchat_tests::fake_connections::Behaviour::Alive,
    );
    fake.set(
        "conn-other-practice",
        vetchat_tests::fake_connections::Behaviour::Alive,
    );
    for (id, subscriber) in [
        (DESK_CONNECTION, demo_staff()),
        (GONE_CONNECTION, demo_staff()),
        ("conn-bella-demo", bella),
        ("conn-other-practice", other),
    ] {
        store
            .put_connection(&Connection {
                id: ConnectionId(id.to_owned()),
                subscriber,
                connected_at: Utc::now(),
                expires_at: Utc::now() + chrono::Duration::hours(2),
            })
            .await
            .expect("seed a connection");
    }
    fake
}

/// Puts the `NewImage` of every `INSERT` record of the entry's events into the table.
async fn put_stream_inserts(f: &Function, store: &DynamoStore) {
    let files: BTreeSet<&str> = f.steps.iter().map(|s| s.file).collect();
    put_inserts(f.events_dir, files, store).await;
}

/// Puts the `NewImage` of every `INSERT` record of every event of `events/{dir}` into the table.
async fn put_stream_inserts_of(dir: &str, store: &DynamoStore) {
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(events_root().join(dir)).expect("the events directory") {
        let name = entry.expect("an entry").file_name();
        files.insert(name.to_string_lossy().into_owned());
    }
    put_inserts(dir, files.iter().map(String::as_str).collect(), store).await;
}

async fn put_inserts(dir: &str, files: BTreeSet<&str>, store: &DynamoStore) {
    let client = vetchat_tests::dynamo_client().await;
    for file in files {
        let event = read_event(dir, file);
        let records = event["Records"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no Records"));
        for record in records.iter().filter(|r| r["eventName"] == "INSERT") {
            let image = record["dynamodb"]["NewImage"]
                .as_object()
                .unwrap_or_else(|| panic!("{file}: an INSERT record without a NewImage"));
            let item: HashMap<String, AttributeValue> = image
                .iter()
                .map(|(k, v)| (k.clone(), attribute_value(v)))
                .collect();
            let keys = record["dynamodb"]["Keys"]
                .as_object()
                .unwrap_or_else(|| panic!("{file}: a record without Keys"));
            for (k, v) in keys {
                assert_eq!(
                    item.get(k),
                    Some(&attribute_value(v)),
                    "{file}: Keys.{k} is the NewImage's"
                );
            }
            client
                .put_item()
                .table_name(store.table_name())
                .set_item(Some(item))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{file}: put the NewImage: {e:?}"));
        }
    }
}

/// A DynamoDB JSON attribute value (`{"S": "…"}`, `{"M": {…}}`, … as streams and the low-level API carry
/// them) as the SDK's type.
fn attribute_value(v: &Value) -> AttributeValue {
    let (kind, inner) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
        .unwrap_or_else(|| panic!("not a DynamoDB attribute value: {v}"));
    let string = |x: &Value| {
        x.as_str()
            .unwrap_or_else(|| panic!("{kind}: not a string: {x}"))
            .to_owned()
    };
    let strings = |x: &Value| {
        x.as_array()
            .unwrap_or_else(|| panic!("{kind}: not a list: {x}"))
            .iter()
            .map(string)
            .collect::<Vec<_>>()
    };
    match kind.as_str() {
        "S" => AttributeValue::S(string(inner)),
        "N" => AttributeValue::N(string(inner)),
        "BOOL" => AttributeValue::Bool(inner.as_bool().expect("BOOL is a boolean")),
        "NULL" => AttributeValue::Null(inner.as_bool().expect("NULL is a boolean")),
        "SS" => AttributeValue::Ss(strings(inner)),
        "NS" => AttributeValue::Ns(strings(inner)),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .expect("L is a list")
                .iter()
                .map(attribute_value)
                .collect(),
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .expect("M is a map")
                .iter()
                .map(|(k, v)| (k.clone(), attribute_value(v)))
                .collect(),
        ),
        other => panic!("attribute type {other} is not used by this table"),
    }
}

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(v) if !v.is_empty() => v.trim_end_matches('/').to_owned(),
        _ => panic!(
            "moto is not running: run `scripts/test` (starts it and runs every test) or \
             `scripts/test --services-only` and export what it prints"
        ),
    }
}

/// Everything moto received so far (`GET /moto-api/data.json`).
async fn moto_data() -> Value {
    reqwest::get(format!("{}/moto-api/data.json", moto_endpoint()))
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("moto's data is JSON")
}

/// The pending alerts of one kind in the story's table.
async fn pending_alerts(store: &dyn Store, kind: AlertKind) -> Vec<PendingAlert> {
    let mut alerts = Vec::new();
    for id in store.pending_alert_ids(100).await.expect("pending alerts") {
        let record = store
            .get_alert(&id)
            .await
            .expect("get alert")
            .expect("alert");
        if record.alert.kind() == kind {
            alerts.push(record.alert);
        }
    }
    alerts
}

/// The emails moto's SES took for `to`.
fn emails_to<'a>(data: &'a Value, to: &str) -> Vec<&'a Value> {
    data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == to))
        })
        .collect()
}

/// The texts moto's SNS took for `number`.
fn texts_to<'a>(data: &'a Value, number: &str) -> Vec<&'a Value> {
    data["sns"]["SMS"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["phone_number"] == number)
        .collect()
}

/// Makes `address` a verified SES identity in moto (an existing one is fine).
async fn verify_sender(address: &str) {
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    match aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_already_exists_exception()) => {}
        Err(e) => panic!(
            "CreateEmailIdentity {address} in moto: {}",
            aws_sdk_sesv2::error::DisplayErrorContext(&e)
        ),
    }
}

/// Checks what a story left behind.
/// The demo practice's conversations (every status; the stories keep it to a few).
async fn demo_conversations(store: &dyn Store) -> ConversationPage {
    store
        .list_conversations(
            &demo_practice_id(),
            &ConversationFilter::default(),
            None,
            100,
        )
        .await
        .expect("list conversations")
}

/// The demo practice's one conversation with `client` (panics unless there is exactly one), how many
/// others it has, and the bodies of what the client wrote in it.
async fn stored_for(store: &dyn Store, client: &str) -> (Conversation, usize, Vec<String>) {
    let page = demo_conversations(store).await;
    let (mine, others): (Vec<_>, Vec<_>) = page
        .conversations
        .into_iter()
        .partition(|c| c.client_id == client);
    let [conversation] = <[Conversation; 1]>::try_from(mine)
        .unwrap_or_else(|all| panic!("one conversation of {client}: {all:?}"));
    let detail = store
        .conversation_detail(
            &demo_practice_id(),
            &conversation.id,
            domain::store::MessageRange::ALL,
        )
        .await
        .expect("conversation detail")
        .expect("the conversation");
    let from_client = detail
        .messages
        .into_iter()
        .filter(|m| matches!(m.author, Author::Client { .. }))
        .map(|m| m.body)
        .collect();
    (conversation, others.len(), from_client)
}

async fn check_after(after: After, story: &Story) {
    let store: &dyn Store = &story.store;
    let practice = demo_practice_id();
    match after {
        After::TextSentOnce => {
            let fake = story.texting.as_ref().expect("the fake texting server");
            let sent = fake.sms();
            assert_eq!(
                sent.len(),
                1,
                "one SMS, however often the record came: {sent:?}"
            );
            assert_eq!(sent[0].destination, "+12015550142");
            assert_eq!(sent[0].origination.as_deref(), Some("+12015550100"));
            assert_eq!(
                sent[0].body.as_deref(),
                Some("Luna can come in at 10 tomorrow.")
            );
            assert_eq!(text_reply_status(store).await, DeliveryStatus::Sent);
        }
        After::TextDelivered => {
            assert_eq!(text_reply_status(store).await, DeliveryStatus::Delivered);
        }
        After::WhatsAppReplyDelivered => {
            let text = TextRef {
                practice_id: demo_practice_id(),
                conversation_id: ConversationId(REX_WA.into()),
                seq: 2,
            };
            let delivery = store
                .get_text(&text)
                .await
                .expect("read the reply")
                .and_then(|t| t.message.delivery)
                .expect("the reply");
            assert_eq!(delivery.status, DeliveryStatus::Delivered);
            assert_eq!(delivery.reason, None);
        }
        After::WhatsAppStoredOnce => {
            let (milo, others, from_client) = stored_for(store, MILO_WA_OWNER).await;
            assert_eq!(milo.channel, Channel::Whatsapp);
            assert_eq!(milo.reply_from.as_deref(), Some(DEMO_WHATSAPP_ID));
            assert!(milo.last_whatsapp_at.is_some());
            assert_eq!(
                others, 2,
                "Bella's and Rex's; the message to an unknown number started nothing"
            );
            assert_eq!(
                from_client,
                ["Hi, is Milo's prescription ready?"],
                "the message is stored once, the reaction not at all"
            );
            let mut alerts = 0;
            for id in store.pending_alert_ids(100).await.expect("pending alerts") {
                let record = store
                    .get_alert(&id)
                    .await
                    .expect("read")
                    .expect("the alert");
                if let AlertSubject::NewConversation(about) = &record.alert.subject {
                    if about.conversation_id == milo.id {
                        alerts += 1;
                    }
                }
            }
            assert_eq!(
                alerts, 1,
                "one new-conversation alert, however often it came"
            );
        }
        After::TextStoredOnce => {
            let (luna, others, from_client) = stored_for(store, LUNA_OWNER).await;
            assert_eq!(luna.channel, Channel::Sms);
            // Replies go out from the number texted (the notification's destinationNumber).
            assert_eq!(luna.reply_from.as_deref(), Some("+12015550100"));
            assert_eq!(luna.status, ConversationStatus::Open);
            assert_eq!(luna.department_id.as_str(), DEFAULT_DEPARTMENT);
            assert_eq!(
                others, 1,
                "Bella's; the text to an unknown number and the STOP started nothing"
            );
            assert_eq!(from_client, [LUNA_TEXT], "the text is stored once");
            let stop = store
                .routing_context(
                    &practice,
                    "+12015550143",
                    &DepartmentId(DEFAULT_DEPARTMENT.to_owned()),
                )
                .await
                .expect("routing context");
            assert!(
                stop.sms_opted_out_at.is_some(),
                "the STOP is recorded: {stop:?}"
            );
        }
        After::TransferAlertPending => {
            let bella = store
                .get_conversation(&practice, &ConversationId(BELLA.to_owned()))
                .await
                .expect("get Bella's conversation")
                .expect("Bella's conversation");
            assert_eq!(bella.department_id.as_str(), GROOMING);
            let transfers = pending_alerts(store, AlertKind::Transfer).await;
            assert_eq!(transfers.len(), 1, "one transfer alert: {transfers:?}");
            let alert = &transfers[0];
            assert_eq!(alert.department_id.as_str(), GROOMING);
            let AlertSubject::Transfer(about) = &alert.subject else {
                panic!("the transfer: {alert:?}");
            };
            assert_eq!(about.conversation.conversation_id.as_str(), BELLA);
            assert_eq!(about.conversation.preview, BELLA_TEXT);
            let transfer = &about.transfer;
            assert_eq!(transfer.from.as_str(), DEFAULT_DEPARTMENT);
            assert_eq!(transfer.to.as_str(), GROOMING);
            assert_eq!(transfer.by, "usr_staff_demo");
            assert_eq!(
                transfer.note.as_deref(),
                Some("Nail trim question for Grooming")
            );
        }
        After::StreamAlertDeliveredOnce | After::StreamAlertLeftPending => {
            let record = store
                .get_alert(&AlertId(STREAM_ALERT.to_owned()))
                .await
                .expect("get the stream's alert")
                .expect("the stream's alert is in the table");
            let data = moto_data().await;
            let emails = emails_to(&data, &story.groomer_email);
            let texts = texts_to(&data, &story.groomer_sms);
            assert_eq!(
                texts.len() - story.groomer_sms_before,
                1,
                "one SMS to {}",
                story.groomer_sms
            );
            let email_key = format!("{STREAM_ALERT}:email:{}", story.groomer_email);
            let sms_sent = record
                .outcomes
                .iter()
                .any(|(k, o)| k.contains(":sms:") && matches!(o, DeliveryOutcome::Sent { .. }));
            assert!(sms_sent, "{record:?}");
            if after == After::StreamAlertDeliveredOnce {
                assert_eq!(record.status, AlertStatus::Done, "{record:?}");
                assert!(
                    matches!(
                        record.outcomes.get(&email_key),
                        Some(DeliveryOutcome::Sent { .. })
                    ),
                    "{record:?}"
                );
                assert_eq!(emails.len(), 1, "exactly one email: {emails:?}");
                let email = emails[0];
                assert_eq!(email["source"], story.sender.as_deref().unwrap_or_default());
                assert_eq!(email["subject"], "Conversation transferred to Grooming");
                let body = email["body"].as_str().unwrap_or_default();
                assert!(
                    body.contains(&format!("{DASHBOARD}/conversations/{BELLA}")),
                    "the email links to the conversation: {body}"
                );
                let text = texts[texts.len() - 1]["message"]
                    .as_str()
                    .unwrap_or_default();
                assert!(text.chars().count() <= 160, "one segment: {text}");
            } else {
                assert_eq!(record.status, AlertStatus::Pending, "{record:?}");
                assert!(
                    !record.outcomes.contains_key(&email_key),
                    "the refused email is left for a retry: {record:?}"
                );
                assert!(emails.is_empty(), "SES took nothing: {emails:?}");
            }
        }
        After::ConnectionRecorded => {
            let connections = store
                .practice_connections(&practice)
                .await
                .expect("connections");
            assert_eq!(connections.len(), 1, "{connections:?}");
            assert_eq!(connections[0].id.as_str(), "Tq0ZcdPzoAMCJiA=");
            assert_eq!(
                connections[0].subscriber,
                demo_staff(),
                "bound to the buyer"
            );
        }
        After::NoConnection => {
            assert_eq!(store.practice_connections(&practice).await, Ok(vec![]));
        }
        After::FramesPosted => {
            let fake = story.connections.as_ref().expect("the fake @connections");
            let posts = fake.posts();
            let to = |id: &str| -> Vec<Value> {
                posts
                    .iter()
                    .filter(|(c, _)| c == id)
                    .map(|(_, f)| serde_json::from_str(f).expect("a JSON frame"))
                    .collect()
            };
            let desk = to(DESK_CONNECTION);
            assert_eq!(desk.len(), 2, "{desk:?}");
            assert_eq!(desk[0]["type"], "message.created");
            assert_eq!(desk[0]["seq"], 2);
            assert_eq!(
                desk[0]["message"]["author"],
                json!({"kind": "staff", "id": "usr_staff_demo"})
            );
            assert_eq!(desk[1]["type"], "conversation.updated");
            assert_eq!(desk[1]["conversation"]["department_id"], GROOMING);
            assert_eq!(to(GONE_CONNECTION).len(), 1, "posted to once, then deleted");
            assert_eq!(
                fake.posted_to(),
                [DESK_CONNECTION, GONE_CONNECTION].map(str::to_owned).into(),
                "nobody else"
            );
            assert_eq!(fake.unsigned(), 0, "every post is signed");
            let left: Vec<String> = store
                .practice_connections(&practice)
                .await
                .expect("connections")
                .into_iter()
                .map(|c| c.id.0)
                .collect();
            assert_eq!(
                left,
                ["conn-bella-demo", DESK_CONNECTION],
                "exactly the gone one deleted"
            );
        }
        After::ReminderStoredForTheDispatcher => {
            let reminders = pending_alerts(store, AlertKind::UnresolvedReminder).await;
            assert_eq!(reminders.len(), 1, "one reminder: {reminders:?}");
            let alert = &reminders[0];
            assert_eq!(alert.department_id.as_str(), DEFAULT_DEPARTMENT);
            let AlertSubject::UnresolvedReminder { reminder } = &alert.subject else {
                panic!("the reminder: {alert:?}");
            };
            assert_eq!(reminder.date.to_string(), "2026-11-23");
            let listed: Vec<&str> = reminder
                .conversations
                .iter()
                .map(|c| c.id.as_str())
                .collect();
            assert_eq!(listed, [BELLA], "lists Bella's conversation");
            let data = moto_data().await;
            assert!(
                emails_to(&data, &story.desk_email).is_empty(),
                "the run sends nothing: the alert dispatcher delivers the reminder"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------

/// Every directory of `events/` belongs to an entry of [`FUNCTIONS`], every file in it is sent by a step,
/// and every step's file exists and is JSON.
#[test]
fn every_event_file_has_a_check() {
    let mut known: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for f in FUNCTIONS {
        let files = known.entry(f.events_dir).or_default();
        files.extend(f.steps.iter().map(|s| s.file));
    }
    let mut unknown = Vec::new();
    for dir in read_dir_names(&events_root()) {
        let Some(files) = known.get(dir.as_str()) else {
            unknown.push(format!("events/{dir} (no function in FUNCTIONS uses it)"));
            continue;
        };
        for file in read_dir_names(&events_root().join(&dir)) {
            if !files.contains(file.as_str()) {
                unknown.push(format!("events/{dir}/{file}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "event files no step of tests/tests/aws/lambda_events.rs sends and checks: {unknown:?}"
    );
    for f in FUNCTIONS {
        for step in f.steps {
            read_event(f.events_dir, step.file);
        }
    }
}

/// Each function binary, on a table of its own seeded as its entry says, answers its events in order as its
/// steps expect, and leaves behind what its after-checks expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_its_events() {
    for f in FUNCTIONS {
        let story = Story::start(f).await;
        let mut function = story.spawn(f).await;
        for (i, step) in f.steps.iter().enumerate() {
            let event = read_event(f.events_dir, step.file);
            let context = format!("{} step {} ({})", f.binary, i + 1, step.file);
            let output = match function.invoke(event).await {
                Ok(output) => output,
                Err(e) => panic!("{context}: {e}\n--- function log:\n{}", function.logs()),
            };
            // Printed before the check, so a failing check's output says which step it was.
            println!("{context}: {output}");
            match &step.expect {
                Expect::Http(status, check) => {
                    let reply = HttpReply::parse(&output);
                    assert_eq!(
                        reply.status,
                        *status,
                        "{context}: status; body {}\n--- function log:\n{}",
                        reply.body,
                        function.logs()
                    );
                    check(&reply);
                }
                Expect::Output(check) => check(&output),
            }
        }
        for after in f.after {
            println!("{}: after the events, {after:?}", f.binary);
            check_after(*after, &story).await;
        }
        println!(
            "{}: {} events; exec to first poll {:?}; peak RSS {:?} KiB",
            f.binary,
            f.steps.len(),
            function.cold_start().expect("it polled"),
            function.peak_rss_kib()
        );
    }
}

/// The checks can fail: invalid events get the contract's errors, an event of the wrong kind comes back
/// through `/invocation/{id}/error` (and the function keeps serving), and a step's check rejects a reply
/// it was not written for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_events_are_refused() {
    let config_api = function("config-api");
    let table = fresh_table().await;
    let mut function = spawn(config_api, Some(&table)).await;

    let mut mars = read_event("config-api", "put-practice.json");
    mars["body"] = json!(
        r#"{"name": "Happy Paws", "timezone": "Mars/Olympus", "country": "US", "sms_numbers": []}"#
    );
    let r = invoke_http(&mut function, mars).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.code(), "invalid_time_zone");
    assert_eq!(r.body["error"]["field"], "timezone");

    let mut not_json = read_event("config-api", "put-practice.json");
    not_json["body"] = json!(r#"{"name": "Happy Paws", "timezone": "#);
    let r = invoke_http(&mut function, not_json).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "malformed_request");

    let scheduled = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-23T22:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/vetchat-reminder"],
        "detail": {}
    });
    match function.invoke(scheduled).await {
        Err(InvocationError::Function { error_type, .. }) => {
            assert!(!error_type.is_empty());
        }
        other => panic!("an EventBridge event is not an HTTP request: {other:?}"),
    }

    // Still serving; and nothing above created the practice.
    let r = invoke_http(
        &mut function,
        read_event("config-api", "get-departments.json"),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.code(), "practice_not_set_up");

    // A step's check is not satisfied by just any reply.
    let Expect::Http(_, check_first_put) = &config_api.steps[0].expect else {
        panic!("the first config-api step is an HTTP one");
    };
    let check_first_put = *check_first_put;
    assert!(
        std::panic::catch_unwind(|| check_first_put(&r)).is_err(),
        "the put-practice check accepted a 409 error body"
    );
}

/// The other entries refuse what they cannot run, each the way its trigger needs: a scheduled event without
/// an instant is an invocation error (nothing is run; EventBridge's retry gets the same answer), a notification
/// that is not a readable text is skipped (SNS would redeliver it to no avail), a stream record whose alert
/// the store cannot read is reported as a batch item failure (retried, then sent to the on-failure queue);
/// and the steps' checks reject those outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_events_of_the_other_entries_are_refused() {
    // eod-reminder
    let eod = function("eod-reminder");
    let story = Story::start(eod).await;
    let mut reminder = story.spawn(eod).await;
    let mut no_instant = read_event("eod-reminder", "scheduled-event.json");
    no_instant["time"] = json!("tomorrow at six");
    for (what, event) in [
        ("a time that is not RFC 3339", no_instant),
        (
            "an HTTP request",
            read_event("inbound-router", "list-open-conversations.json"),
        ),
    ] {
        match reminder.invoke(event).await {
            Err(InvocationError::Function { error_message, .. }) => {
                assert!(
                    error_message.contains("RFC 3339"),
                    "{what}: {error_message}"
                )
            }
            other => panic!("{what}: expected an invocation error, got {other:?}"),
        }
    }
    // A range that is not one of the due index's shards: refused, nothing run.
    for (first, last) in [(8, 32), (9, 8)] {
        let mut event = read_event("eod-reminder", "scheduled-event-shards-16-23.json");
        event["detail"]["shards"] = json!({"first": first, "last": last});
        match reminder.invoke(event).await {
            Err(InvocationError::Function { error_message, .. }) => {
                assert!(
                    error_message.contains("detail.shards"),
                    "{first}..={last}: {error_message}"
                )
            }
            other => panic!("{first}..={last}: expected an invocation error, got {other:?}"),
        }
    }
    // Still serving, and nothing ran: the real event finds the reminder due.
    let output = reminder
        .invoke(read_event("eod-reminder", "scheduled-event.json"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- function log:\n{}", reminder.logs()));
    one_department_reminded(&output);
    assert!(std::panic::catch_unwind(|| nothing_due(&output)).is_err());

    // inbound-sms
    let sms = function("inbound-sms");
    let story = Story::start(sms).await;
    let mut texts = story.spawn(sms).await;
    let text = read_event("inbound-sms", "sns-inbound-text.json");
    let mut not_json = text.clone();
    not_json["Records"][0]["Sns"]["Message"] = json!("STOP");
    let mut blank = text.clone();
    let mut message: Value = serde_json::from_str(
        text["Records"][0]["Sns"]["Message"]
            .as_str()
            .expect("Message is a string"),
    )
    .expect("Message is JSON");
    message["messageBody"] = json!("   ");
    blank["Records"][0]["Sns"]["Message"] = json!(message.to_string());
    for (what, event) in [
        ("a Message that is not JSON", not_json),
        ("a blank text", blank),
    ] {
        let output = texts
            .invoke(event)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\n--- function log:\n{}", texts.logs()));
        text_skipped(&output);
        assert!(
            std::panic::catch_unwind(|| text_routed(&output)).is_err(),
            "{what}"
        );
    }
    let page = demo_conversations(&story.store).await;
    assert_eq!(page.conversations.len(), 1, "only Bella's: {page:?}");

    // inbound-whatsapp: a Message that is not End User Messaging Social's, a webhook entry that is not
    // Meta's, a message without its sender: each dropped (a retry would not help), nothing stored.
    let whatsapp = function("inbound-whatsapp");
    let story = Story::start(whatsapp).await;
    let mut notifications = story.spawn(whatsapp).await;
    let good = read_event("inbound-whatsapp", "sns-whatsapp-message.json");
    let header: Value = serde_json::from_str(
        good["Records"][0]["Sns"]["Message"]
            .as_str()
            .expect("Message is a string"),
    )
    .expect("Message is JSON");
    let with_message = |message: Value| {
        let mut event = good.clone();
        event["Records"][0]["Sns"]["Message"] = json!(message.to_string());
        event
    };
    let mut not_meta = header.clone();
    not_meta["whatsAppWebhookEntry"] = json!("{\"id\": ");
    let mut entry: Value = serde_json::from_str(header["whatsAppWebhookEntry"].as_str().unwrap())
        .expect("the entry is JSON");
    for m in entry["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap()
    {
        m.as_object_mut().unwrap().remove("from");
    }
    let mut no_sender = header.clone();
    no_sender["whatsAppWebhookEntry"] = json!(entry.to_string());
    let mut not_json = good.clone();
    not_json["Records"][0]["Sns"]["Message"] = json!("STOP");
    for (what, event, skipped) in [
        ("a Message that is not JSON", not_json, 1),
        (
            "a webhook entry that is not Meta's",
            with_message(not_meta),
            1,
        ),
        ("messages without their sender", with_message(no_sender), 2),
    ] {
        let output = notifications
            .invoke(event)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\n--- function log:\n{}", notifications.logs()));
        assert_eq!(output, whatsapp_batch(0, 0, 0, skipped), "{what}");
    }
    let page = demo_conversations(&story.store).await;
    assert_eq!(
        page.conversations.len(),
        2,
        "only Bella's and Rex's: {page:?}"
    );

    // alert-dispatcher: the record names an alert item the store cannot read (an unknown kind).
    let dispatcher = function("alert-dispatcher");
    let story = Story::start(dispatcher).await;
    let mut alerts = story.spawn(dispatcher).await;
    let mut batch = read_event("alert-dispatcher", "dynamodb-stream-alert-insert.json");
    let broken_id = "alr_01kaqd9x7m3v5t8r2n6b4c1brk";
    let record = &mut batch["Records"][0]["dynamodb"];
    record["Keys"]["PK"] = json!({"S": format!("ALERT#{broken_id}")});
    record["NewImage"]["PK"] = record["Keys"]["PK"].clone();
    record["NewImage"]["id"] = json!({"S": broken_id});
    record["NewImage"]["kind"] = json!({"S": "carrier_pigeon"});
    record["SequenceNumber"] = json!("4421584500000000017450439092");
    let item: HashMap<String, AttributeValue> = record["NewImage"]
        .as_object()
        .expect("NewImage")
        .iter()
        .map(|(k, v)| (k.clone(), attribute_value(v)))
        .collect();
    vetchat_tests::dynamo_client()
        .await
        .put_item()
        .table_name(story.table())
        .set_item(Some(item))
        .send()
        .await
        .expect("put the broken alert");
    let output = alerts
        .invoke(batch)
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- function log:\n{}", alerts.logs()));
    assert_eq!(
        output,
        json!({"batchItemFailures": [{"itemIdentifier": "4421584500000000017450439092"}]})
    );
    assert!(std::panic::catch_unwind(|| no_batch_item_failures(&output)).is_err());
}

/// Every Lambda binary of the workspace (the binaries of the packages under `functions/` but the local
/// server's) has an entry in [`FUNCTIONS`], so every entry has sample events.
#[test]
fn every_lambda_binary_has_events() {
    let out =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(workspace_root())
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .output()
            .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let binaries: BTreeSet<&str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| is_function_package(p))
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    let covered: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.binary).collect();
    assert_eq!(
        binaries, covered,
        "the workspace's Lambda binaries vs the entries of FUNCTIONS"
    );
}

/// A package of `cargo metadata` that holds Lambda functions: under `functions/`, and not the local server.
fn is_function_package(package: &Value) -> bool {
    let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
    let functions = workspace_root().join("functions");
    manifest.starts_with(&functions) && package["name"] != "local"
}

/// A function that cannot start (no table configured) is reported as such, not as a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_cannot_start_is_reported() {
    let mut function = spawn(function("config-api"), None).await;
    let event = read_event("config-api", "get-departments.json");
    match function
        .invoke_with_timeout(event, Duration::from_secs(20))
        .await
    {
        Err(InvocationError::Exited { status, .. }) => {
            assert!(!status.success());
            assert!(
                function.logs().contains("DYNAMODB_TABLE"),
                "the log says why: {}",
                function.logs()
            );
        }
        other => panic!("expected the process to exit: {other:?}"),
    }
    assert_eq!(function.first_poll(), None, "it never polled");
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/// An API Gateway HTTP API (payload 2.0) response, as the function returned it.
struct HttpReply {
    status: u16,
    headers: Map<String, Value>,
    /// The body parsed as JSON (`null` when empty).
    body: Value,
}

impl HttpReply {
    fn parse(output: &Value) -> HttpReply {
        let status = output["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or_else(|| panic!("no statusCode in {output}"));
        assert_ne!(
            output["isBase64Encoded"], true,
            "a JSON body is sent as text: {output}"
        );
        let text = output["body"].as_str().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
        };
        if !text.is_empty() {
            assert_eq!(
                output["headers"]["content-type"], "application/json",
                "{output}"
            );
        }
        HttpReply {
            status,
            headers: output["headers"].as_object().cloned().unwrap_or_default(),
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    /// The contract's error code, if this is an error.
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn invoke_http(function: &mut FunctionProcess, event: Value) -> HttpReply {
    match function.invoke(event).await {
        Ok(output) => HttpReply::parse(&output),
        Err(e) => panic!("{e}\n--- function log:\n{}", function.logs()),
    }
}

fn function(binary: &str) -> &'static Function {
    FUNCTIONS
        .iter()
        .find(|f| f.binary == binary)
        .unwrap_or_else(|| panic!("no {binary} in FUNCTIONS"))
}

fn events_root() -> PathBuf {
    workspace_root().join("events")
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn read_event(dir: &str, file: &str) -> Value {
    let path = events_root().join(dir).join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A new table on DynamoDB Local (panics with the usual message when it is not running).
async fn fresh_table() -> String {
    let client = vetchat_tests::dynamo_client().await;
    let table = vetchat_tests::unique_table_name();
    adapters::store::ensure_table(&client, &table)
        .await
        .expect("create the test table");
    table
}

/// Starts the function's binary on a Runtime API of its own, with `DYNAMODB_TABLE` (when given), the AWS
/// settings of this process (DynamoDB Local's endpoint, credentials, region) and the entry's `env`.
async fn spawn(f: &Function, table: Option<&str>) -> FunctionProcess {
    spawn_with(f, table, Vec::new()).await
}

/// [`spawn`], with `more` environment on top.
async fn spawn_with(
    f: &Function,
    table: Option<&str>,
    more: Vec<(String, String)>,
) -> FunctionProcess {
    let mut env = aws_env_from_current();
    env.extend(table.map(|t| ("DYNAMODB_TABLE".to_owned(), t.to_owned())));
    env.extend(
        f.env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env.extend(more);
    let binary = function_binary(f.binary);
    let api = RuntimeApi::start().await.expect("start the Runtime API");
    api.spawn_function(&binary, env)
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()))
}

/// The path of a function's binary, building every function of [`FUNCTIONS`] first (once per run).
fn function_binary(name: &str) -> PathBuf {
    static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = BIN_DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("VETCHAT_LAMBDA_BIN_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let binaries: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.binary).collect();
        vetchat_tests::local_server::build_workspace_binaries(
            &binaries.into_iter().collect::<Vec<_>>(),
        )
    });
    let path = dir.join(name);
    assert!(path.is_file(), "no function binary at {}", path.display());
    path
}
