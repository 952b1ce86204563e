//! The domain's one error type. The HTTP edge maps each variant to the contract's status and code
//! (`adapters::http_error`), in one place.

use crate::store::StoreError;

/// A value that breaks a rule (HTTP 422). `code` is the contract's snake_case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidCode {
    InvalidEmail,
    InvalidPhone,
    SmsAlertsUnavailableInCountry,
    InvalidTimeZone,
    InvalidHours,
    InvalidDateOverride,
    ReminderNeedsEmail,
    DepartmentNotVisible,
    SameDepartment,
    DuplicateDepartmentName,
    /// Codes this service adds where the contract is silent.
    InvalidCountry,
    InvalidName,
    InvalidValue,
    SmsNumberInUse,
    TooLarge,
}

impl InvalidCode {
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidCode::InvalidEmail => "invalid_email",
            InvalidCode::InvalidPhone => "invalid_phone",
            InvalidCode::SmsAlertsUnavailableInCountry => "sms_alerts_unavailable_in_country",
            InvalidCode::InvalidTimeZone => "invalid_time_zone",
            InvalidCode::InvalidHours => "invalid_hours",
            InvalidCode::InvalidDateOverride => "invalid_date_override",
            InvalidCode::ReminderNeedsEmail => "reminder_needs_email",
            InvalidCode::DepartmentNotVisible => "department_not_visible",
            InvalidCode::SameDepartment => "same_department",
            InvalidCode::DuplicateDepartmentName => "duplicate_department_name",
            InvalidCode::InvalidCountry => "invalid_country",
            InvalidCode::InvalidName => "invalid_name",
            InvalidCode::InvalidValue => "invalid_value",
            InvalidCode::SmsNumberInUse => "sms_number_in_use",
            InvalidCode::TooLarge => "too_large",
        }
    }
}

/// Why the state forbids an operation (HTTP 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictCode {
    DefaultDepartment,
    DepartmentHasOpenConversations,
    ConversationResolved,
    AfterHours,
    Offline,
    PracticeNotSetUp,
    /// Added where the contract is silent: staff start a chat with a client who already has one open.
    ClientHasOpenConversation,
    /// The client's number opted out of this practice's texts (the body carries `opted_out_at`).
    SmsOptedOut,
    /// WhatsApp: more than 24 hours since the client's last message; nothing sent.
    WhatsappWindowClosed,
    /// Only a failed or unconfirmed text can be retried.
    NotRetryable,
}

impl ConflictCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictCode::DefaultDepartment => "default_department",
            ConflictCode::DepartmentHasOpenConversations => "department_has_open_conversations",
            ConflictCode::ConversationResolved => "conversation_resolved",
            ConflictCode::AfterHours => "after_hours",
            ConflictCode::Offline => "offline",
            ConflictCode::PracticeNotSetUp => "practice_not_set_up",
            ConflictCode::ClientHasOpenConversation => "client_has_open_conversation",
            ConflictCode::SmsOptedOut => "sms_opted_out",
            ConflictCode::WhatsappWindowClosed => "whatsapp_window_closed",
            ConflictCode::NotRetryable => "not_retryable",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The body has the wrong shape (HTTP 400 `malformed_request`).
    #[error("{message}")]
    Malformed {
        message: String,
        field: Option<String>,
    },
    /// The caller's role may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// No such record in the caller's practice (HTTP 404). Another practice's record is reported the same way.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        code: ConflictCode,
        message: String,
        /// Extra members of the error body (e.g. `after_hours_message`, `opens_at`).
        details: Option<serde_json::Value>,
    },
    /// `If-Match` named an old etag (HTTP 412).
    #[error("the department was changed since it was read (etag {0} is stale)")]
    StaleEtag(String),
    #[error("{message}")]
    Invalid {
        code: InvalidCode,
        field: String,
        message: String,
    },
    /// A backing service failed; nothing was changed by this request.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A client sends faster than a person chats (HTTP 429 `rate_limited`, `Retry-After` in seconds);
    /// nothing was stored.
    #[error("{message}")]
    RateLimited {
        retry_after_secs: u32,
        message: String,
    },
}

impl DomainError {
    pub fn invalid(
        code: InvalidCode,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DomainError::Invalid {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(code: ConflictCode, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn malformed(message: impl Into<String>, field: Option<String>) -> Self {
        DomainError::Malformed {
            message: message.into(),
            field,
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => DomainError::Unavailable(m),
            // Every other store error is a rule the service checks before writing; reaching here means a
            // concurrent change won the race, which the service maps itself where it matters.
            other => DomainError::Unavailable(other.to_string()),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
