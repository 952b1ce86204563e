//! Departments or providers: hours, alerts, reminder, chat preferences and the online switch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ConflictCode, DomainError, DomainResult, InvalidCode};
use crate::identity::{DepartmentId, PracticeId};
use crate::practice::Practice;
use crate::schedule::{self, DateOverride, TimeOfDay, WeeklyHours};
use crate::validate::{self, EmailsInput};

pub const DEFAULT_AFTER_HOURS_MESSAGE: &str =
    "We are closed right now. Leave a message and we will answer when we open.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Alerts {
    pub enabled: bool,
    pub emails: Vec<String>,
    pub sms_numbers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UnresolvedReminder {
    pub enabled: bool,
    /// Practice-local time; when absent, 30 minutes before that day's closing time (17:30 on a closed day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<TimeOfDay>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSettings {
    /// Sent to a pet owner who starts an app chat; `null` for none.
    pub greeting: Option<String>,
    pub allow_messages_after_hours: bool,
    pub after_hours_message: String,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            greeting: None,
            allow_messages_after_hours: true,
            after_hours_message: DEFAULT_AFTER_HOURS_MESSAGE.to_owned(),
        }
    }
}

/// Everything an admin edits on a department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentSettings {
    pub name: String,
    pub visible_in_app: bool,
    /// The manual Offline switch: `false` takes no new web or app chats, whatever the hours say.
    pub online: bool,
    pub alerts: Alerts,
    pub unresolved_reminder: UnresolvedReminder,
    pub hours: WeeklyHours,
    pub date_overrides: Vec<DateOverride>,
    pub chat: ChatSettings,
}

impl DepartmentSettings {
    /// What a new department gets for every field the admin leaves out.
    pub fn defaults(name: String) -> Self {
        DepartmentSettings {
            name,
            visible_in_app: false,
            online: true,
            alerts: Alerts::default(),
            unresolved_reminder: UnresolvedReminder::default(),
            hours: WeeklyHours::default(),
            date_overrides: Vec::new(),
            chat: ChatSettings::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub id: DepartmentId,
    pub practice_id: PracticeId,
    pub is_default: bool,
    #[serde(flatten)]
    pub settings: DepartmentSettings,
    /// Conversations open in this department; changed atomically with the conversations themselves.
    #[serde(default)]
    pub open_conversations: u32,
    /// Bumped by every settings write; the `etag` is derived from it.
    pub version: u64,
    /// When the unresolved-conversation reminder is next due (`None` when it is off). Set by every settings
    /// write and advanced by each reminder run; the store indexes it so a run reads only what is due.
    #[serde(default)]
    pub next_reminder_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Department {
    /// The opaque strong validator sent as `etag` and as the `ETag` header.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id, self.version)
    }

    /// Does an `If-Match` value name this version? Accepts `*`, a list, weak or unquoted forms.
    pub fn matches_etag(&self, if_match: &str) -> bool {
        let current = self.etag();
        let bare = current.trim_matches('"');
        if_match.split(',').map(str::trim).any(|candidate| {
            let candidate = candidate.strip_prefix("W/").unwrap_or(candidate);
            candidate == "*" || candidate == current || candidate.trim_matches('"') == bare
        })
    }

    /// The department as every endpoint returns it.
    pub fn to_view(&self) -> Value {
        let mut v = serde_json::to_value(&self.settings).expect("settings serialize");
        let obj = v.as_object_mut().expect("settings is an object");
        let mut out = Map::new();
        out.insert("id".into(), Value::String(self.id.0.clone()));
        // shift_remove keeps the other members in declaration order.
        out.insert(
            "name".into(),
            obj.shift_remove("name").unwrap_or(Value::Null),
        );
        out.insert("is_default".into(), Value::Bool(self.is_default));
        out.append(obj);
        out.insert(
            "open_conversations".into(),
            Value::from(self.open_conversations),
        );
        out.insert("etag".into(), Value::String(self.etag()));
        Value::Object(out)
    }
}

/// Fields a client may send back from a GET but cannot change.
const READ_ONLY_FIELDS: &[&str] = &["id", "is_default", "open_conversations", "etag"];

/// The wire shape of department settings on input. Every field optional: what is absent keeps its value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsInput {
    name: Option<String>,
    visible_in_app: Option<bool>,
    online: Option<bool>,
    alerts: Option<AlertsInput>,
    unresolved_reminder: Option<UnresolvedReminder>,
    hours: Option<WeeklyHours>,
    date_overrides: Option<Vec<DateOverride>>,
    chat: Option<ChatInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsInput {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    emails: EmailsInput,
    #[serde(default)]
    sms_numbers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatInput {
    #[serde(default)]
    greeting: Option<String>,
    #[serde(default = "default_true")]
    allow_messages_after_hours: bool,
    #[serde(default)]
    after_hours_message: Option<String>,
}

fn default_true() -> bool {
    true
}

/// How a department body is combined with what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// `POST /departments`: each top-level field given replaces the default.
    Create,
    /// `PATCH`: RFC 7396 JSON merge patch onto the current settings.
    Patch,
}

/// Applies a body to `current` and validates the result. `is_default` guards the default department's rules.
pub fn apply_settings(
    current: &DepartmentSettings,
    body: Value,
    merge: Merge,
    is_default: bool,
    practice: &Practice,
) -> DomainResult<DepartmentSettings> {
    let Value::Object(mut body) = body else {
        return Err(DomainError::malformed(
            "the body must be a JSON object",
            None,
        ));
    };
    for field in READ_ONLY_FIELDS {
        body.remove(*field);
    }
    let mut merged = serde_json::to_value(current).expect("settings serialize");
    match merge {
        Merge::Create => {
            let obj = merged.as_object_mut().expect("object");
            for (k, v) in body {
                obj.insert(k, v);
            }
        }
        Merge::Patch => json_patch::merge(&mut merged, &Value::Object(body)),
    }
    let input: SettingsInput = serde_path_to_error::deserialize(merged).map_err(shape_error)?;
    let next = validate_settings(input, current, practice)?;
    if is_default {
        if next.name != current.name {
            return Err(DomainError::conflict(
                ConflictCode::DefaultDepartment,
                "the default department cannot be renamed",
            ));
        }
        if !next.visible_in_app {
            return Err(DomainError::conflict(
                ConflictCode::DefaultDepartment,
                "the default department is always visible in the app",
            ));
        }
    }
    Ok(next)
}

/// A value of the wrong type inside a known rule is that rule's 422; any other shape problem is a 400.
fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> DomainError {
    let path = e.path().to_string();
    let message = e.inner().to_string();
    let code = if path.starts_with("hours") || path.starts_with("unresolved_reminder.at") {
        Some(InvalidCode::InvalidHours)
    } else if path.starts_with("date_overrides") {
        Some(InvalidCode::InvalidDateOverride)
    } else if path.starts_with("alerts.emails") {
        Some(InvalidCode::InvalidEmail)
    } else {
        None
    };
    match code {
        Some(code) if !message.contains("unknown field") => {
            DomainError::invalid(code, path, message)
        }
        _ => DomainError::malformed(message, (path != ".").then_some(path)),
    }
}

fn validate_settings(
    input: SettingsInput,
    current: &DepartmentSettings,
    practice: &Practice,
) -> DomainResult<DepartmentSettings> {
    let name = validate::name(input.name.as_deref().unwrap_or(&current.name), "name")?;
    let alerts = match input.alerts {
        None => current.alerts.clone(),
        Some(a) => Alerts {
            enabled: a.enabled,
            emails: validate::emails(&a.emails, "alerts.emails")?,
            sms_numbers: validate::sms_alert_numbers(
                &a.sms_numbers,
                &practice.country,
                "alerts.sms_numbers",
            )?,
        },
    };
    let unresolved_reminder = input
        .unresolved_reminder
        .unwrap_or_else(|| current.unresolved_reminder.clone());
    if unresolved_reminder.enabled && alerts.emails.is_empty() {
        return Err(DomainError::invalid(
            InvalidCode::ReminderNeedsEmail,
            "unresolved_reminder.enabled",
            "the unresolved-conversation reminder is an email: add at least one alert email first",
        ));
    }
    if unresolved_reminder.at == Some(TimeOfDay::END_OF_DAY) {
        return Err(DomainError::invalid(
            InvalidCode::InvalidHours,
            "unresolved_reminder.at",
            "the reminder time must be between 00:00 and 23:59",
        ));
    }
    let hours = input.hours.unwrap_or_else(|| current.hours.clone());
    schedule::validate_hours(&hours)?;
    let date_overrides = input
        .date_overrides
        .unwrap_or_else(|| current.date_overrides.clone());
    schedule::validate_overrides(&date_overrides)?;
    let chat = match input.chat {
        None => current.chat.clone(),
        Some(c) => ChatSettings {
            greeting: match c.greeting {
                Some(g) => Some(validate::text(&g, "chat.greeting")?).filter(|g| !g.is_empty()),
                None => None,
            },
            allow_messages_after_hours: c.allow_messages_after_hours,
            after_hours_message: match c.after_hours_message {
                Some(m) => Some(validate::text(&m, "chat.after_hours_message")?)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| DEFAULT_AFTER_HOURS_MESSAGE.to_owned()),
                None => DEFAULT_AFTER_HOURS_MESSAGE.to_owned(),
            },
        },
    };
    Ok(DepartmentSettings {
        name,
        visible_in_app: input.visible_in_app.unwrap_or(current.visible_in_app),
        online: input.online.unwrap_or(current.online),
        alerts,
        unresolved_reminder,
        hours,
        date_overrides,
        chat,
    })
}

/// Case-insensitive form of a department name, for the uniqueness rule.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}
