//! Practice and department settings: the use cases behind `/practice`, `/departments` and public availability.
//! Every function takes the caller, the store and — where it writes — the current instant and new ids.

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use crate::conversation::{self, Channel};
use crate::department::{self, Department, DepartmentSettings, Merge};
use crate::error::{ConflictCode, DomainError, DomainResult, InvalidCode};
use crate::identity::{plausible_id, Caller, DepartmentId, PracticeId, ADMIN, DASHBOARD};
use crate::practice::{Practice, PracticeInput};
use crate::reminder;
use crate::schedule::{self, AvailabilityReason, WeeklyHours};
use crate::store::{PracticeConfig, SettingsLookup, SettingsStore, StoreError};

/// How often a write that lost a race to a concurrent writer is re-read and re-applied. Each loss means
/// another write to the same record landed meanwhile, so this many losses in one request take as many
/// concurrent writers of one practice or department; three was too few (seven admins changing one
/// department at once answered 503, `tests/tests/api/races.rs`).
const RACE_RETRIES: usize = 16;

/// `PUT /practice`: creates the practice with its default department ("<name> Team"), or updates it.
/// Returns the practice and whether it was created.
pub async fn put_practice(
    store: &dyn SettingsStore,
    caller: &Caller,
    input: PracticeInput,
    now: DateTime<Utc>,
) -> DomainResult<(Practice, bool)> {
    caller.require(ADMIN)?;
    let settings = input.validate()?;
    let new_department_id = DepartmentId::default_for(&caller.practice_id);
    for _ in 0..RACE_RETRIES {
        match store.get_practice(&caller.practice_id).await? {
            None => {
                let practice = Practice {
                    id: caller.practice_id.clone(),
                    name: settings.name.clone(),
                    timezone: settings.timezone,
                    country: settings.country.clone(),
                    sms_numbers: settings.sms_numbers.clone(),
                    whatsapp_numbers: settings.whatsapp_numbers.clone(),
                    default_department_id: new_department_id.clone(),
                    created_at: now,
                    updated_at: now,
                    version: 1,
                };
                let mut team =
                    DepartmentSettings::defaults(Practice::default_department_name(&practice.name));
                team.visible_in_app = true;
                let default_department = Department {
                    id: new_department_id.clone(),
                    practice_id: practice.id.clone(),
                    is_default: true,
                    next_reminder_at: reminder::next_reminder(&team, practice.timezone, now),
                    settings: team,
                    open_conversations: 0,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                match store.create_practice(&practice, &default_department).await {
                    Ok(()) => return Ok((practice, true)),
                    Err(StoreError::AlreadyExists) => continue, // created concurrently: update it instead
                    Err(e) => return Err(map_practice_write(e, &practice)),
                }
            }
            Some(previous) => {
                let practice = Practice {
                    name: settings.name.clone(),
                    timezone: settings.timezone,
                    country: settings.country.clone(),
                    sms_numbers: settings.sms_numbers.clone(),
                    whatsapp_numbers: settings.whatsapp_numbers.clone(),
                    updated_at: now,
                    version: previous.version + 1,
                    ..previous.clone()
                };
                match store.update_practice(&practice, &previous).await {
                    Ok(()) => return Ok((practice, false)),
                    Err(StoreError::VersionMismatch) => continue,
                    Err(e) => return Err(map_practice_write(e, &practice)),
                }
            }
        }
    }
    Err(DomainError::Unavailable(
        "the practice kept changing concurrently; try again".into(),
    ))
}

fn map_practice_write(e: StoreError, practice: &Practice) -> DomainError {
    match e {
        StoreError::SmsNumberTaken(number) => DomainError::invalid(
            InvalidCode::SmsNumberInUse,
            practice.claim_field(&number),
            format!("{number} is already a texting or WhatsApp number of another practice"),
        ),
        other => other.into(),
    }
}

/// `GET /practice`.
pub async fn get_practice(store: &dyn SettingsStore, caller: &Caller) -> DomainResult<Practice> {
    caller.require(DASHBOARD)?;
    store
        .get_practice(&caller.practice_id)
        .await?
        .ok_or(DomainError::NotFound("practice"))
}

fn not_set_up() -> DomainError {
    DomainError::conflict(
        ConflictCode::PracticeNotSetUp,
        "the practice is not set up yet: an admin must PUT /practice first",
    )
}

/// `GET /departments`: default first, then by name.
pub async fn list_departments(
    store: &dyn SettingsStore,
    caller: &Caller,
) -> DomainResult<Vec<Department>> {
    caller.require(DASHBOARD)?;
    let config = store
        .practice_config(&caller.practice_id)
        .await?
        .ok_or_else(not_set_up)?;
    Ok(config.departments)
}

/// `POST /departments`: omitted fields get the defaults.
pub async fn create_department(
    store: &dyn SettingsStore,
    caller: &Caller,
    body: Value,
    now: DateTime<Utc>,
    id: DepartmentId,
) -> DomainResult<Department> {
    caller.require(ADMIN)?;
    if !body.get("name").is_some_and(Value::is_string) {
        return Err(DomainError::malformed(
            "a new department needs a \"name\"",
            Some("name".into()),
        ));
    }
    let practice = store
        .get_practice(&caller.practice_id)
        .await?
        .ok_or_else(not_set_up)?;
    let settings = department::apply_settings(
        &DepartmentSettings::defaults(String::new()),
        body,
        Merge::Create,
        false,
        &practice,
    )?;
    let department = Department {
        id,
        practice_id: practice.id.clone(),
        is_default: false,
        next_reminder_at: reminder::next_reminder(&settings, practice.timezone, now),
        settings,
        open_conversations: 0,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    match store.create_department(&department).await {
        Ok(()) => Ok(department),
        Err(StoreError::DuplicateName) => Err(duplicate_name(&department.settings.name)),
        Err(StoreError::NotFound) => Err(not_set_up()),
        Err(e) => Err(e.into()),
    }
}

fn duplicate_name(name: &str) -> DomainError {
    DomainError::invalid(
        InvalidCode::DuplicateDepartmentName,
        "name",
        format!("a department named {name:?} already exists"),
    )
}

/// 404 for an id that cannot name a department, before any read.
fn known_department(id: &DepartmentId) -> DomainResult<()> {
    if plausible_id(id.as_str()) {
        Ok(())
    } else {
        Err(DomainError::NotFound("department"))
    }
}

/// `GET /departments/{id}`.
pub async fn get_department(
    store: &dyn SettingsLookup,
    caller: &Caller,
    id: &DepartmentId,
) -> DomainResult<Department> {
    caller.require(DASHBOARD)?;
    known_department(id)?;
    let (_, department) = store
        .practice_and_department(&caller.practice_id, id)
        .await?;
    department.ok_or(DomainError::NotFound("department"))
}

/// A change of a department's settings, computed from the current ones.
enum Change {
    /// JSON merge patch (RFC 7396).
    Patch(Value),
    ResetHours,
    Online(bool),
}

/// `PATCH /departments/{id}` (JSON merge patch). With `if_match`, refuses (412) unless it names the current etag.
pub async fn patch_department(
    store: &dyn SettingsStore,
    caller: &Caller,
    id: &DepartmentId,
    patch: Value,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> DomainResult<Department> {
    caller.require(ADMIN)?;
    change_department(store, caller, id, Change::Patch(patch), if_match, now).await
}

/// `POST /departments/{id}/hours/reset`: hours back to 09:00–18:00 Monday to Friday; overrides kept.
pub async fn reset_hours(
    store: &dyn SettingsStore,
    caller: &Caller,
    id: &DepartmentId,
    now: DateTime<Utc>,
) -> DomainResult<Department> {
    caller.require(ADMIN)?;
    change_department(store, caller, id, Change::ResetHours, None, now).await
}

/// `PUT /departments/{id}/online`: the manual Online/Offline switch (staff may flip it).
pub async fn set_online(
    store: &dyn SettingsStore,
    caller: &Caller,
    id: &DepartmentId,
    online: bool,
    now: DateTime<Utc>,
) -> DomainResult<Department> {
    caller.require(DASHBOARD)?;
    change_department(store, caller, id, Change::Online(online), None, now).await
}

async fn change_department(
    store: &dyn SettingsStore,
    caller: &Caller,
    id: &DepartmentId,
    change: Change,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> DomainResult<Department> {
    known_department(id)?;
    for _ in 0..RACE_RETRIES {
        let (practice, current) = store
            .practice_and_department(&caller.practice_id, id)
            .await?;
        let current = current.ok_or(DomainError::NotFound("department"))?;
        let practice = practice.ok_or_else(not_set_up)?;
        if let Some(tag) = if_match {
            if !current.matches_etag(tag) {
                return Err(DomainError::StaleEtag(tag.to_owned()));
            }
        }
        let settings = match &change {
            Change::Patch(patch) => department::apply_settings(
                &current.settings,
                patch.clone(),
                Merge::Patch,
                current.is_default,
                &practice,
            )?,
            Change::ResetHours => DepartmentSettings {
                hours: WeeklyHours::default(),
                ..current.settings.clone()
            },
            Change::Online(online) => DepartmentSettings {
                online: *online,
                ..current.settings.clone()
            },
        };
        if settings == current.settings {
            return Ok(current); // nothing changes: no write, same etag
        }
        // A reminder already due but not yet run stays due (the run works out which date it is for and
        // reschedules it if the new settings make it not due yet); otherwise the next one from now.
        let next_reminder_at = match current.next_reminder_at {
            Some(due) if due <= now && settings.unresolved_reminder.enabled => Some(due),
            _ => reminder::next_reminder(&settings, practice.timezone, now),
        };
        let next = Department {
            next_reminder_at,
            settings,
            version: current.version + 1,
            updated_at: now,
            ..current.clone()
        };
        match store.update_department(&next, &current).await {
            Ok(()) => return Ok(next),
            Err(StoreError::DuplicateName) => return Err(duplicate_name(&next.settings.name)),
            Err(StoreError::NotFound) => return Err(DomainError::NotFound("department")),
            // Someone else wrote first. With If-Match the caller asked for exactly that version: 412.
            // Without it, re-read and apply the change again (each change is defined on the current state).
            Err(StoreError::VersionMismatch) if if_match.is_some() => {
                return Err(DomainError::StaleEtag(
                    if_match.unwrap_or_default().to_owned(),
                ))
            }
            Err(StoreError::VersionMismatch) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Unavailable(
        "the department kept changing concurrently; try again".into(),
    ))
}

/// `DELETE /departments/{id}`.
pub async fn delete_department(
    store: &dyn SettingsStore,
    caller: &Caller,
    id: &DepartmentId,
) -> DomainResult<()> {
    caller.require(ADMIN)?;
    known_department(id)?;
    let (_, department) = store
        .practice_and_department(&caller.practice_id, id)
        .await?;
    let department = department.ok_or(DomainError::NotFound("department"))?;
    if department.is_default {
        return Err(DomainError::conflict(
            ConflictCode::DefaultDepartment,
            "the default department cannot be deleted",
        ));
    }
    match store.delete_department(&department).await {
        Ok(()) => Ok(()),
        Err(StoreError::HasOpenConversations) => Err(has_open_conversations()),
        Err(StoreError::NotFound) => Err(DomainError::NotFound("department")),
        Err(e) => Err(e.into()),
    }
}

fn has_open_conversations() -> DomainError {
    DomainError::conflict(
        ConflictCode::DepartmentHasOpenConversations,
        "the department has open conversations: end or transfer them first",
    )
}

/// What the app and the web widget show: `GET /public/practices/{id}/availability`.
#[derive(Debug, Clone, Serialize)]
pub struct PublicAvailability {
    pub practice: PublicPractice,
    pub at: DateTime<FixedOffset>,
    pub departments: Vec<DepartmentAvailability>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublicPractice {
    pub name: String,
    pub timezone: Tz,
}

/// One visible department as the public sees it: no alert addresses or numbers, ever.
#[derive(Debug, Clone, Serialize)]
pub struct DepartmentAvailability {
    pub id: DepartmentId,
    pub name: String,
    pub is_default: bool,
    pub open: bool,
    pub reason: AvailabilityReason,
    pub opens_at: Option<DateTime<FixedOffset>>,
    pub closes_at: Option<DateTime<FixedOffset>>,
    pub greeting: Option<String>,
    pub accepts_messages_now: bool,
    pub after_hours_message: String,
    /// When the schedule next changes what this says ([`schedule::next_change`]); not shown.
    #[serde(skip)]
    pub changes_at: Option<DateTime<Utc>>,
}

/// The availability of one department at an instant, as the public and the router see it.
pub fn department_availability(
    practice: &Practice,
    department: &Department,
    at: DateTime<Utc>,
) -> DepartmentAvailability {
    let s = &department.settings;
    let a = schedule::availability(&s.hours, &s.date_overrides, s.online, practice.timezone, at);
    DepartmentAvailability {
        id: department.id.clone(),
        name: s.name.clone(),
        is_default: department.is_default,
        open: a.open,
        reason: a.reason,
        opens_at: a.opens_at,
        closes_at: a.closes_at,
        greeting: s.chat.greeting.clone(),
        // Exactly what `POST /inbound` would do with a new app or web chat now (the same rule).
        accepts_messages_now: conversation::new_conversation_outcome(&a, &s.chat, Channel::Web)
            .is_ok(),
        after_hours_message: s.chat.after_hours_message.clone(),
        changes_at: schedule::next_change(&a, practice.timezone, at),
    }
}

impl PublicAvailability {
    /// How many whole seconds from `now` (the instant it was computed for) this answer may be kept: at most
    /// [`schedule::AVAILABILITY_MAX_AGE_SECS`] and never past the next opening or closing (or any other
    /// scheduled change) of a listed department, so a cached answer never shows a stale open/closed state.
    pub fn max_age(&self, now: DateTime<Utc>) -> u32 {
        let earliest = self.departments.iter().filter_map(|d| d.changes_at).min();
        schedule::fresh_seconds(earliest, now)
    }
}

/// Public availability of every department visible in the app. An unknown practice is 404.
pub async fn public_availability(
    store: &dyn SettingsStore,
    practice_id: &PracticeId,
    at: DateTime<Utc>,
) -> DomainResult<PublicAvailability> {
    let PracticeConfig {
        practice,
        departments,
    } = store
        .practice_config(practice_id)
        .await?
        .ok_or(DomainError::NotFound("practice"))?;
    let departments = departments
        .iter()
        .filter(|d| d.settings.visible_in_app)
        .map(|d| department_availability(&practice, d, at))
        .collect();
    Ok(PublicAvailability {
        at: at.with_timezone(&practice.timezone).fixed_offset(),
        practice: PublicPractice {
            name: practice.name,
            timezone: practice.timezone,
        },
        departments,
    })
}
