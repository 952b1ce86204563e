//! The conversation list's cursor, one codec for both stores: the caller's practice and the position of the
//! last conversation answered (its `last_message_at` and id, unique per conversation, so the next page starts
//! right after it in every status), as URL-safe base64 of a small JSON object. Each store turns the position
//! into its own key (DynamoDB: `GSI1SK`; redb: the activity table's key), so a cursor means the same on both.

use base64::Engine;
use chrono::{DateTime, Utc};
use domain::conversation::{Conversation, ConversationId};
use domain::identity::PracticeId;
use domain::store::{StoreError, StoreResult};
use serde::{Deserialize, Serialize};

/// Where the next page starts: after this conversation, in newest-activity-first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListPosition {
    pub last_message_at: DateTime<Utc>,
    pub id: ConversationId,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "p")]
    practice_id: PracticeId,
    #[serde(rename = "t")]
    last_message_at: DateTime<Utc>,
    #[serde(rename = "c")]
    id: ConversationId,
}

/// The cursor of the page that ends with `last`.
pub(crate) fn encode_list_cursor(practice_id: &PracticeId, last: &Conversation) -> String {
    let wire = Wire {
        practice_id: practice_id.clone(),
        last_message_at: last.last_message_at,
        id: last.id.clone(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&wire).expect("a cursor serializes"))
}

/// The position a cursor names; `BadCursor` for one this API did not hand to this practice.
pub(crate) fn decode_list_cursor(raw: &str, practice_id: &PracticeId) -> StoreResult<ListPosition> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| StoreError::BadCursor)?;
    let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    // Another practice's cursor could only ever position a read of the caller's own conversations (the
    // practice comes from the caller, never from the cursor); it is refused all the same. An id is bounded
    // like a key of the table (a longer one is not a cursor this API gave).
    if &wire.practice_id != practice_id || wire.id.0.is_empty() || wire.id.0.len() > 512 {
        return Err(StoreError::BadCursor);
    }
    Ok(ListPosition {
        last_message_at: wire.last_message_at,
        id: wire.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_name_their_practice_and_position() {
        let p = PracticeId::from("p1");
        let at = DateTime::parse_from_rfc3339("2026-11-21T17:30:00.000000001Z")
            .unwrap()
            .with_timezone(&Utc);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Wire {
                practice_id: p.clone(),
                last_message_at: at,
                id: ConversationId("cnv_1".into()),
            })
            .unwrap(),
        );
        assert_eq!(
            decode_list_cursor(&raw, &p),
            Ok(ListPosition {
                last_message_at: at,
                id: ConversationId("cnv_1".into())
            })
        );
        assert_eq!(
            decode_list_cursor(&raw, &PracticeId::from("p2")),
            Err(StoreError::BadCursor)
        );
        for bad in ["%%%", "e30", ""] {
            assert_eq!(
                decode_list_cursor(bad, &p),
                Err(StoreError::BadCursor),
                "{bad:?}"
            );
        }
    }
}
