//! The item keys of the single-table layout (the table in [`crate::store`]'s docs), every kind of record in
//! one place, and the fixed-width instants that keys and lease ends are written with.

use chrono::{DateTime, Utc};
use domain::conversation::{AlertId, ConversationId, ConversationStatus};
use domain::identity::{DepartmentId, PracticeId};
use domain::realtime::ConnectionId;
use domain::reminder::{due_shard, DueShards};

use super::codec::{s, Item};

pub(super) const PK: &str = "PK";
pub(super) const SK: &str = "SK";

/// The index of conversations per status by activity, and of the alerts still pending.
pub(super) const GSI1: &str = "GSI1";
pub(super) const GSI1PK: &str = "GSI1PK";
pub(super) const GSI1SK: &str = "GSI1SK";

/// The second overloaded index: a client's app and web conversations by activity (`CLIENT#…`), and a
/// practice's WebSocket connections (`CONNS#…`). Sparse: only those items carry its keys.
pub(super) const GSI2: &str = "GSI2";
pub(super) const GSI2PK: &str = "GSI2PK";
pub(super) const GSI2SK: &str = "GSI2SK";

/// The sparse index of departments by their next reminder instant (`DUE_PK`, `DUE_AT`).
pub(super) const DUE_INDEX: &str = "DUE";
/// How many partitions the due index is spread over (`DUE#00` … `DUE#31`), a department's by a stable hash
/// of its ids. Why 32: a fleet's reminders cluster on a few local minutes (17:30 Eastern for 100,000
/// departments), and each advance moves the department's index entry (a delete and a put on the index: 2
/// WCU), so one minute is 200,000 index writes. One partition takes 1,000 WCU/s: 4 partitions suffice if the
/// writes were spread evenly over the minute, but a run writes as fast as it goes, so 32 leave room for the
/// whole minute being written in 7 s (200,000 / 32 / 7 ≈ 890 WCU/s a partition). A run reads the shards in
/// parallel ([`DUE_QUERY_CONCURRENCY`]); an empty shard's Query costs half a read unit.
/// (The count and the hash are the domain's, `domain::reminder`, so a run's shard range means the same to
/// both stores.)
pub use domain::reminder::DUE_SHARDS;
/// How many shards' Queries one `due_reminders` has in flight: enough that 33 Queries (the shards and
/// [`LEGACY_DUE_PARTITION`]) take about four round trips, few enough not to crowd the connection pool.
pub(super) const DUE_QUERY_CONCURRENCY: usize = 8;
/// The due index's one partition before it was sharded. Entries written then keep it until their next
/// advance or settings write, which moves them to their shard; until then `due_reminders` reads it too (one
/// more Query, which finds nothing once every department with the reminder on has advanced once: a day).
pub(super) const LEGACY_DUE_PARTITION: &str = "DUE";

/// The due-index partition of a department: `DUE#{n}`, n its shard (`domain::reminder::due_shard`).
pub fn due_partition(practice_id: &PracticeId, department_id: &DepartmentId) -> String {
    format!("DUE#{:02}", due_shard(practice_id, department_id))
}

/// The partitions a run over `shards` reads: those shards, then the legacy one if the range starts at 0.
pub(super) fn due_partitions(shards: DueShards) -> impl Iterator<Item = String> {
    shards.iter().map(|n| format!("DUE#{n:02}")).chain(
        shards
            .reads_legacy()
            .then(|| LEGACY_DUE_PARTITION.to_owned()),
    )
}

pub(super) const PRACTICE_SK: &str = "PRACTICE";
pub(super) const DEPT_SK_PREFIX: &str = "DEPT#";
pub(super) const MESSAGE_SK_PREFIX: &str = "MSG#";
/// The conversation item sorts right after its messages (`~` after `#`), so one Query of "the messages after
/// seq n" reads them in order and then the conversation itself, when the page reaches the end.
pub(super) const CONVERSATION_SK: &str = "MSG~";
pub(super) const CLAIM_SK: &str = "OPEN";
pub(super) const OPT_OUT_SK: &str = "OPTOUT";
pub(super) const TICKET_SK: &str = "TICKET";
pub(super) const CONNECTION_SK: &str = "CONN";

/// The `GSI1` partition that lists the alerts still pending. It is sparse: an alert enters it when it is
/// written and leaves it when it is completed, so it only ever holds the alerts in flight (normally a
/// handful, each for seconds). One partition key for every practice is a deliberate hot key: fine for that
/// volume (the dispatcher is driven by the table's stream, this index only serves the local worker and
/// sweeps); shard it (`ALERTS#pending#{n}`) if alerts in flight ever number in the thousands per second.
pub(super) const PENDING_ALERTS_PK: &str = "ALERTS#pending";

/// The `GSI1` partition that lists the text replies in flight (`queued` or `sending`), by when they were
/// queued: what the sweep of stuck texts reads. Sparse like [`PENDING_ALERTS_PK`]: a message item carries
/// the keys while its text waits for or is with a sender, and the write that records the provider's answer
/// removes them. A text is in it for about a second, so one partition holds a fleet's texts in flight
/// (2 million texts a day at three times the mean rate: about 210 index writes a second, a put, the
/// claim's rewrite and a delete per text, against 1,000 WCU).
pub(super) const TEXTS_IN_FLIGHT_PK: &str = "TEXTS#in_flight";

/// A text's sort key in [`TEXTS_IN_FLIGHT_PK`]: when it was queued, then where it is stored.
pub(super) fn in_flight_sk(queued_at: DateTime<Utc>, conversation_pk: &str, seq: u64) -> String {
    format!("{}#{conversation_pk}#{seq:020}", sortable(queued_at))
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

pub(super) fn practice_pk(practice_id: &str) -> String {
    format!("PRACTICE#{practice_id}")
}

pub(super) fn practice_key(practice_id: &str) -> Item {
    key(practice_pk(practice_id), PRACTICE_SK)
}

pub(super) fn department_sk(department_id: &str) -> String {
    format!("{DEPT_SK_PREFIX}{department_id}")
}

pub(super) fn department_key(practice_id: &str, department_id: &str) -> Item {
    key(practice_pk(practice_id), &department_sk(department_id))
}

pub(super) fn department_name_key(practice_id: &str, name_key: &str) -> Item {
    key(format!("DEPTNAME#{practice_id}#{name_key}"), "DEPTNAME")
}

pub(super) fn sms_number_key(e164: &str) -> Item {
    key(format!("SMSNUMBER#{e164}"), "SMSNUMBER")
}

pub(super) fn whatsapp_id_key(phone_number_id: &str) -> Item {
    key(format!("WAPHONEID#{phone_number_id}"), "WAPHONEID")
}

/// The uniqueness record of one of `Practice::number_claims`: a number (`+…`) or a WhatsApp phone number id.
pub(super) fn number_claim_key(claim: &str) -> Item {
    if claim.starts_with('+') {
        sms_number_key(claim)
    } else {
        whatsapp_id_key(claim)
    }
}

pub(super) fn conversation_pk(practice_id: &PracticeId, id: &ConversationId) -> String {
    format!("CONV#{practice_id}#{id}")
}

pub(super) fn conversation_key(practice_id: &PracticeId, id: &ConversationId) -> Item {
    key(conversation_pk(practice_id, id), CONVERSATION_SK)
}

/// A message's sort key: its `seq`, fixed width, so keys sort as seqs do.
pub(super) fn message_sk(seq: u64) -> String {
    format!("{MESSAGE_SK_PREFIX}{seq:020}")
}

/// The `GSI2` partition of a client's app and web conversations in a practice.
pub(super) fn client_list_pk(practice_id: &PracticeId, client_id: &str) -> String {
    format!("CLIENT#{practice_id}#{client_id}")
}

/// A ticket, under the hash of its secret ([`crate::store::ticket_hash`]).
pub(super) fn ticket_key(secret_hash: &str) -> Item {
    key(format!("TICKET#{secret_hash}"), TICKET_SK)
}

pub(super) fn connection_key(id: &ConnectionId) -> Item {
    key(format!("CONN#{id}"), CONNECTION_SK)
}

/// The `GSI2` partition of a practice's connections.
pub(super) fn connections_pk(practice_id: &PracticeId) -> String {
    format!("CONNS#{practice_id}")
}

/// The client's open-conversation claim.
pub(super) fn claim_key(practice_id: &PracticeId, client_id: &str) -> Item {
    key(format!("OPEN#{practice_id}#{client_id}"), CLAIM_SK)
}

/// A number's opt-out of a practice's texts (one per practice and number: STOP to one practice never
/// silences another).
pub(super) fn opt_out_key(practice_id: &PracticeId, number: &str) -> Item {
    key(format!("OPTOUT#{practice_id}#{number}"), OPT_OUT_SK)
}

/// An inbound message seen (its gateway id, or the caller's idempotency key).
pub(super) fn inbound_key(practice_id: &PracticeId, dedup_key: &str) -> Item {
    key(format!("INBOUND#{practice_id}#{dedup_key}"), "INBOUND")
}

pub(super) fn status_str(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "open",
        ConversationStatus::Resolved => "resolved",
    }
}

/// The index partition of a practice's conversations in one status.
pub(super) fn list_pk(practice_id: &PracticeId, status: ConversationStatus) -> String {
    format!("CONVS#{practice_id}#{}", status_str(status))
}

/// The index sort key: newest activity first when read backwards; the id breaks ties (as in the embedded
/// store) and makes every conversation's position unique, which is what a list cursor holds.
pub(super) fn activity_sk(last_message_at: DateTime<Utc>, id: &ConversationId) -> String {
    format!("{}#{id}", sortable(last_message_at))
}

pub(super) fn alert_key(id: &AlertId) -> Item {
    key(format!("ALERT#{id}"), "ALERT")
}

/// The pending-alerts sort key: oldest first, the id breaking ties.
pub(super) fn pending_sk(created_at: DateTime<Utc>, id: &AlertId) -> String {
    format!("{}#{id}", sortable(created_at))
}

pub(super) use crate::store::{parse_sortable, sortable};

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(raw: &str) -> DateTime<Utc> {
        parse_sortable(raw).expect("an instant")
    }

    #[test]
    fn sortable_instants_are_fixed_width_and_sort_as_instants() {
        let a = instant("2026-11-21T17:30:00Z");
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::nanoseconds(1);
        assert_eq!(sortable(a), "2026-11-21T17:30:00.000000000Z");
        assert_eq!(sortable(b), "2026-11-21T17:30:00.000001000Z");
        assert!(sortable(a) < sortable(c) && sortable(c) < sortable(b));
        assert_eq!(parse_sortable(&sortable(c)), Some(c));
        let id = ConversationId("cnv_1".into());
        assert_eq!(activity_sk(a, &id), "2026-11-21T17:30:00.000000000Z#cnv_1");
    }

    #[test]
    fn due_partitions_are_stable_and_spread_evenly() {
        let of = |p: &str, d: &str| due_partition(&PracticeId(p.into()), &DepartmentId(d.into()));
        // Pinned: stored keys must be found again by every later build.
        assert_eq!(of("prc_1", "dep_1"), "DUE#12");
        assert_eq!(of("prc_01HZ", "dep_01HZ"), "DUE#12");
        let mut counts = [0u32; DUE_SHARDS as usize];
        for p in 0..2_000 {
            for d in 1..10 {
                let shard = due_shard(
                    &PracticeId(format!("prc_bench_{p:06}")),
                    &DepartmentId(format!("dep_b{p:06}_{d}")),
                );
                counts[shard as usize] += 1;
            }
        }
        // 18,000 sequential ids over 32 shards: 562 each on average, none far off.
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 480 && *max < 650, "{counts:?}");
        let all: Vec<String> = due_partitions(DueShards::ALL).collect();
        assert_eq!(all.len(), DUE_SHARDS as usize + 1);
        assert_eq!(
            (all[0].as_str(), all[31].as_str(), all[32].as_str()),
            ("DUE#00", "DUE#31", "DUE")
        );
    }

    #[test]
    fn a_range_reads_its_shards_and_only_the_first_reads_the_legacy_partition() {
        let range =
            |a, b| due_partitions(DueShards::new(a, b).expect("a range")).collect::<Vec<_>>();
        assert_eq!(range(0, 1), ["DUE#00", "DUE#01", "DUE"]);
        assert_eq!(range(8, 10), ["DUE#08", "DUE#09", "DUE#10"]);
        assert_eq!(range(31, 31), ["DUE#31"]);
        assert_eq!(DueShards::new(3, 2), None);
        assert_eq!(DueShards::new(0, DUE_SHARDS), None);
    }

    #[test]
    fn pending_and_transfer_keys_sort_as_instants() {
        let at = instant("2026-11-21T17:30:00Z");
        let id = AlertId("alr_1".into());
        assert_eq!(pending_sk(at, &id), "2026-11-21T17:30:00.000000000Z#alr_1");
        let later = pending_sk(
            at + chrono::Duration::nanoseconds(1),
            &AlertId("alr_0".into()),
        );
        assert!(pending_sk(at, &id) < later);
    }
}
