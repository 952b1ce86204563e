//! The end-of-day reminder: near the end of each day, one email per department with the reminder on and
//! open conversations, listing them, so staff end what is finished.
//!
//! Every department with the reminder on carries its next reminder instant in the store (a sparse "due"
//! index on DynamoDB). A run for instant T reads only the departments due at or before T, and for each one
//! advances the due instant with a condition (so overlapping or repeated runs claim it once) in the same
//! atomic write as the reminder's outbox record, whose id is derived from the department and the local date
//! (so a date never gets two reminders). A run that was missed is caught up by the next one.
//!
//! A run stores the reminder and goes on: the alert dispatcher delivers it, as it delivers every alert (on
//! AWS from the table's stream, locally from the alert worker), so a run needs no email or SMS sender and
//! its time goes into reading and claiming what is due.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::alert::{PendingAlert, ReminderDigest};
use crate::conversation::AlertId;
use crate::department::DepartmentSettings;
use crate::error::DomainResult;
use crate::identity::{DepartmentId, PracticeId};
use crate::schedule;
use crate::store::{ReminderClaim, ReminderRunStore};

/// How many departments a run handles at once (three requests each: a page of 5,000 does not burst the
/// table).
pub const CONCURRENCY: usize = 8;
/// How many due departments a run reads at a time (a page); it reads the next page while it has time
/// ([`Paging`]), and what it leaves is caught up by the next run.
pub const MAX_DUE_PER_RUN: usize = 5000;

/// How a run pages through its due departments.
#[derive(Clone, Copy)]
pub struct Paging<'a> {
    /// Due departments read and handled at a time.
    pub page: usize,
    /// Asked after a full page: whether the run has time for another (the entry knows its deadline; the
    /// domain reads no clock).
    pub time_for_another: &'a (dyn Fn() -> bool + Send + Sync),
}

impl Paging<'_> {
    /// One page of [`MAX_DUE_PER_RUN`], no more: a run of known, bounded length (the local server's timer,
    /// the tests).
    pub const ONE_PAGE: Paging<'static> = Paging {
        page: MAX_DUE_PER_RUN,
        time_for_another: &|| false,
    };
}

/// How many shards the due index is spread over (on DynamoDB, partitions `DUE#00` … `DUE#31`; why 32 in
/// `adapters::store::dynamo::keys`). A department's shard is [`due_shard`]; a run reads a range of them
/// ([`DueShards`]), so a fleet's reminder minute is split across invocations.
pub const DUE_SHARDS: u32 = 32;

/// The due-index shard of a department: FNV-1a (64 bit) of `{practice_id}#{department_id}`, mixed by
/// MurmurHash3's 64-bit finaliser (FNV's low bits alone spread sequential ids unevenly), modulo
/// [`DUE_SHARDS`]. Written out here (not `std`'s hasher, whose output may change between Rust releases)
/// because the stored keys must be found again by every later build.
pub fn due_shard(practice_id: &PracticeId, department_id: &DepartmentId) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = [practice_id.as_str(), "#", department_id.as_str()]
        .iter()
        .flat_map(|part| part.bytes())
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    let hash = (hash ^ (hash >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let hash = (hash ^ (hash >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    let hash = hash ^ (hash >> 33);
    u32::try_from(hash % u64::from(DUE_SHARDS)).expect("below DUE_SHARDS")
}

/// The shards of the due index one run reads, `first..=last`. The range that starts at shard 0 also reads
/// the legacy partition (the due index's one partition before it was sharded, on DynamoDB), so any set of
/// runs whose ranges cover every shard once reads it once. [`DueShards::ALL`] is the whole index: what a
/// plain scheduled event runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DueShards {
    first: u32,
    last: u32,
}

impl DueShards {
    pub const ALL: DueShards = DueShards {
        first: 0,
        last: DUE_SHARDS - 1,
    };

    /// `first..=last`, if it is a range of existing shards.
    pub fn new(first: u32, last: u32) -> Option<DueShards> {
        (first <= last && last < DUE_SHARDS).then_some(DueShards { first, last })
    }

    pub fn first(&self) -> u32 {
        self.first
    }

    pub fn last(&self) -> u32 {
        self.last
    }

    /// The shards, in order.
    pub fn iter(&self) -> std::ops::RangeInclusive<u32> {
        self.first..=self.last
    }

    /// Whether this range holds a department's due entry.
    pub fn holds(&self, practice_id: &PracticeId, department_id: &DepartmentId) -> bool {
        self.iter().contains(&due_shard(practice_id, department_id))
    }

    /// Whether this range's run also reads the legacy partition.
    pub fn reads_legacy(&self) -> bool {
        self.first == 0
    }
}

/// The next reminder instant strictly after `after`. `None` when the reminder is off.
pub fn next_reminder(
    settings: &DepartmentSettings,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !settings.unresolved_reminder.enabled {
        return None;
    }
    // A date's reminder lies within that local date, so start at the local date of `after`.
    let first = after.with_timezone(&tz).date_naive() - Duration::days(1);
    (0..=9)
        .map(|d| first + Duration::days(d))
        .map(|date| reminder_on(settings, tz, date))
        .find(|t| *t > after)
}

/// When the reminder of local `date` is due.
pub fn reminder_on(settings: &DepartmentSettings, tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    schedule::reminder_instant(
        &settings.hours,
        &settings.date_overrides,
        settings.unresolved_reminder.at,
        tz,
        date,
    )
}

/// The latest local date, `from` or after, whose reminder is due at or before `run_at` (`from` if none is).
///
/// A date's reminder lies within that date, so looking back from `run_at`'s local date ends within two steps.
fn last_due_date(
    settings: &DepartmentSettings,
    tz: Tz,
    from: NaiveDate,
    run_at: DateTime<Utc>,
) -> NaiveDate {
    let mut date = run_at.with_timezone(&tz).date_naive();
    while date > from {
        if reminder_on(settings, tz, date) <= run_at {
            return date;
        }
        match date.pred_opt() {
            Some(previous) => date = previous,
            None => break,
        }
    }
    from
}

/// The id of a department's reminder for a local date: one per department and date, ever.
pub fn reminder_alert_id(department_id: &DepartmentId, date: NaiveDate) -> AlertId {
    AlertId(format!("alr_rem_{department_id}_{}", date.format("%Y%m%d")))
}

/// A department whose reminder is due, as the due index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReminder {
    pub practice_id: PracticeId,
    pub department_id: DepartmentId,
    pub due_at: DateTime<Utc>,
}

/// What a run did; logged and returned as the function's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub run_at: DateTime<Utc>,
    /// Departments whose reminder was due at or before `run_at`.
    pub due: usize,
    /// Departments reminded: a reminder listing at least one open conversation stored for the alert
    /// dispatcher, which sends it to each alert email and number.
    pub departments_reminded: usize,
    /// Due departments with nothing open: nothing to send.
    pub nothing_open: usize,
    /// Due departments another run had already claimed, or whose reminder for the date was already stored.
    pub already_handled: usize,
    /// Departments whose reminder could not be handled now (the store failed: left for the next run).
    pub failures: usize,
}

enum DueOutcome {
    Reminded,
    NothingOpen,
    AlreadyHandled,
    Rescheduled,
}

/// One reminder run for the instant `run_at` (the scheduled event's `time`, not the wall clock), over the
/// departments of the due-index shards `shards` ([`DueShards::ALL`]: every department), one page of
/// [`MAX_DUE_PER_RUN`].
pub async fn run_reminders(
    store: &dyn ReminderRunStore,
    run_at: DateTime<Utc>,
    shards: DueShards,
) -> DomainResult<RunSummary> {
    run_reminders_paged(store, run_at, shards, Paging::ONE_PAGE).await
}

/// [`run_reminders`], page after page while pages come back full and `paging` says there is time: a fleet's
/// reminder minute (25,000 due departments in a range of shards) is handled by one tick's runs instead of
/// one page per tick. Each page reads what is still due, so what a page handled is not read again (it was
/// advanced). A page with a failure ends the run (the store is failing: the next tick retries),
/// and so does a page that moved nothing on (the index still listing entries already handled).
pub async fn run_reminders_paged(
    store: &dyn ReminderRunStore,
    run_at: DateTime<Utc>,
    shards: DueShards,
    paging: Paging<'_>,
) -> DomainResult<RunSummary> {
    let mut summary = RunSummary {
        run_at,
        ..Default::default()
    };
    loop {
        let due = store.due_reminders(run_at, shards, paging.page).await?;
        let full = due.len() >= paging.page;
        summary.due += due.len();
        let results: Vec<DomainResult<DueOutcome>> = stream::iter(due)
            .map(|d| async move { handle(store, &d, run_at).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let (mut moved_on, mut failed) = (0, false);
        for result in results {
            match result {
                Ok(DueOutcome::Reminded) => {
                    summary.departments_reminded += 1;
                    moved_on += 1;
                }
                Ok(DueOutcome::NothingOpen) => {
                    summary.nothing_open += 1;
                    moved_on += 1;
                }
                Ok(DueOutcome::AlreadyHandled) => summary.already_handled += 1,
                Ok(DueOutcome::Rescheduled) => moved_on += 1,
                Err(_) => {
                    summary.failures += 1;
                    failed = true;
                }
            }
        }
        if !full || failed || moved_on == 0 || !(paging.time_for_another)() {
            return Ok(summary);
        }
    }
}

async fn handle(
    store: &dyn ReminderRunStore,
    due: &DueReminder,
    run_at: DateTime<Utc>,
) -> DomainResult<DueOutcome> {
    let (practice, department) = store
        .practice_and_department(&due.practice_id, &due.department_id)
        .await?;
    let (Some(practice), Some(department)) = (practice, department) else {
        store
            .advance_reminder(&due.practice_id, &due.department_id, due.due_at, None, None)
            .await?;
        return Ok(DueOutcome::Rescheduled);
    };
    let tz = practice.timezone;
    let settings = &department.settings;
    // A run that catches up several missed dates sends one reminder, for the last of them (not the first).
    let date = last_due_date(
        settings,
        tz,
        due.due_at.with_timezone(&tz).date_naive(),
        run_at,
    );
    let next = next_reminder(settings, tz, run_at);
    // The settings may have changed since this instant was stored: check the date's reminder is due now.
    if !settings.unresolved_reminder.enabled || reminder_on(settings, tz, date) > run_at {
        let to = settings
            .unresolved_reminder
            .enabled
            .then(|| reminder_on(settings, tz, date).min(next.unwrap_or(run_at)));
        store
            .advance_reminder(
                &due.practice_id,
                &due.department_id,
                due.due_at,
                to.or(next),
                None,
            )
            .await?;
        return Ok(DueOutcome::Rescheduled);
    }
    let mut open = store
        .open_conversations_in(&due.practice_id, &due.department_id)
        .await?;
    if open.is_empty() {
        return Ok(
            match store
                .advance_reminder(&due.practice_id, &due.department_id, due.due_at, next, None)
                .await?
            {
                ReminderClaim::Claimed => DueOutcome::NothingOpen,
                _ => DueOutcome::AlreadyHandled,
            },
        );
    }
    open.sort_by_key(|c| c.started_at);
    let alert = PendingAlert::reminder(
        reminder_alert_id(&department.id, date),
        &practice.id,
        &department.id,
        ReminderDigest {
            date,
            conversations: open,
        },
        run_at,
    );
    match store
        .advance_reminder(
            &due.practice_id,
            &due.department_id,
            due.due_at,
            next,
            Some(&alert),
        )
        .await?
    {
        ReminderClaim::Claimed => Ok(DueOutcome::Reminded),
        ReminderClaim::Lost => Ok(DueOutcome::AlreadyHandled),
        ReminderClaim::AlreadySent => {
            // This date was reminded before (the reminder time moved later the same day): just move on.
            store
                .advance_reminder(&due.practice_id, &due.department_id, due.due_at, next, None)
                .await?;
            Ok(DueOutcome::AlreadyHandled)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_that_cover_every_shard_once_hold_each_department_once_and_one_reads_the_legacy_partition(
    ) {
        let ranges =
            [(0, 7), (8, 15), (16, 23), (24, 31)].map(|(a, b)| DueShards::new(a, b).unwrap());
        for n in 0..500 {
            let (p, d) = (
                PracticeId(format!("prc_{n}")),
                DepartmentId(format!("dep_{n}")),
            );
            assert_eq!(ranges.iter().filter(|r| r.holds(&p, &d)).count(), 1);
            assert!(DueShards::ALL.holds(&p, &d));
        }
        assert_eq!(ranges.iter().filter(|r| r.reads_legacy()).count(), 1);
        assert!(DueShards::ALL.reads_legacy());
        assert_eq!(DueShards::new(0, DUE_SHARDS - 1), Some(DueShards::ALL));
        assert_eq!(DueShards::new(5, 4), None);
        assert_eq!(DueShards::new(31, 32), None);
    }
}
