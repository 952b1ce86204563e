//! Who may do what (docs/api.md "Who is calling"), on both stores: every endpoint of the contract against every
//! kind of caller (no token, bad signature, expired, `alg: none`, a claim missing or odd, an unknown role,
//! each role, a token of another practice), each cell an expected status and an answer `openapi.yaml`
//! documents; no response ever carrying the other practice's ids, names, addresses or numbers; practice ids
//! in paths, queries or bodies never overriding the token's; ids that cannot exist answered as ids that do
//! not; and the limits on what one request may carry, each refused with a clear code and nothing stored.

use std::sync::atomic::{AtomicU32, Ordering};

use domain::identity::Role;
use http::{Method, StatusCode};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use vetchat_tests::api::{self, always_open, Api, Reply};
use vetchat_tests::openapi_check;

vetchat_tests::on_every_store!(
    every_endpoint_answers_every_caller_as_the_contract_says,
    practice_ids_in_paths_queries_and_bodies_never_override_the_token,
    ids_that_cannot_exist_are_not_found,
    request_limits_are_refused_and_nothing_is_stored,
    body_size_and_depth_limits_hold_on_every_endpoint_that_reads_a_body,
);

// ---------------------------------------------------------------------------------------------------------
// Two practices with distinctive data

/// One practice of the world: its ids and every string of it that must never reach the other practice.
struct Side {
    id: String,
    word: &'static str,
    default_department: String,
    grooming: String,
    back_office: String,
    open_conversation: String,
    /// The staff reply in it, a text still queued (nothing sends it here).
    staff_text: String,
    /// The pet owner's app conversation.
    app_conversation: String,
    /// Its WhatsApp phone number id (its WhatsApp number is its texting number).
    whatsapp_id: String,
    /// Ids, names, addresses, numbers, greetings and message texts of this practice.
    strings: Vec<String>,
}

/// Sets up a practice whose every name, address, number and text contains `word` (or a number unique to it):
/// practice, default department and two more departments with alerts, a texted conversation transferred
/// with a note and answered by staff, an app conversation.
async fn side(api: &Api, word: &'static str, n: u32) -> Side {
    let id = Api::practice_id();
    let lower = word.to_lowercase();
    let practice_number = format!("+1201555010{n}");
    let whatsapp_id = format!("phone-number-id-{lower}");
    let name = format!("{word} Creek Animal Hospital");
    let r = api
        .admin(
            &id,
            Method::PUT,
            "/practice",
            Some(
                json!({"name": name, "timezone": "America/New_York", "country": "US",
                        "sms_numbers": [practice_number],
                        "whatsapp_numbers": [{"phone_number_id": whatsapp_id, "number": practice_number}]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let default_department = r.body["default_department_id"].as_str().unwrap().to_owned();
    let desk = format!("{lower}.desk@{lower}-vets.example");
    let desk_number = format!("+1201555013{n}");
    let greeting = format!("{word} says hello to every pet");
    let r = api
        .admin(
            &id,
            Method::PATCH,
            &format!("/departments/{default_department}"),
            Some(json!({"hours": always_open(),
                        "alerts": {"enabled": true, "emails": [desk], "sms_numbers": [desk_number]},
                        "chat": {"greeting": greeting}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let groomer = format!("{lower}.groomer@{lower}-vets.example");
    let groomer_number = format!("+1201555014{n}");
    let grooming_name = format!("{word} Grooming Suite");
    let after_hours = format!("{word} is closed, we answer at dawn");
    let grooming = api
        .add_department(
            &id,
            json!({"name": grooming_name, "visible_in_app": true, "hours": always_open(),
                   "alerts": {"enabled": true, "emails": [groomer], "sms_numbers": [groomer_number]},
                   "chat": {"after_hours_message": after_hours}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let back_office_name = format!("{word} Back Office");
    let back_office = api
        .add_department(&id, json!({"name": back_office_name}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A texted conversation, transferred with a note and answered by staff.
    let owner_number = format!("+1201555015{n}");
    let text_body = format!("{word} note about Biscuit's allergy");
    let r = api
        .call(
            &id,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": owner_number, "body": text_body})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let open_conversation = r.body["conversation_id"].as_str().unwrap().to_owned();
    let note = format!("{word} transfer note for the groomers");
    let r = api
        .call(
            &id,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{open_conversation}/transfer"),
            Some(json!({"department_id": grooming, "note": note})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let reply = format!("{word} staff reply about the shampoo");
    let r = api
        .call(
            &id,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{open_conversation}/messages"),
            Some(json!({"body": reply})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let staff_text = r.body["id"].as_str().unwrap().to_owned();

    // An app conversation of a pet owner.
    let owner = format!("{lower}-owner-7");
    let app_body = format!("{word} app question about boarding");
    let r = client_call(
        api,
        &id,
        &owner,
        json!({"channel": "app", "department_id": grooming, "body": app_body}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let app_conversation = r.body["conversation_id"].as_str().unwrap().to_owned();
    api.deliver_alerts().await;

    let national = |e164: &str| e164.trim_start_matches("+1").to_owned();
    let strings = vec![
        id.clone(),
        name.clone(),
        format!("{name} Team"),
        practice_number.clone(),
        national(&practice_number),
        default_department.clone(),
        grooming.clone(),
        back_office.clone(),
        grooming_name,
        back_office_name,
        desk,
        national(&desk_number),
        desk_number,
        groomer,
        national(&groomer_number),
        groomer_number,
        greeting,
        after_hours,
        national(&owner_number),
        owner_number,
        text_body,
        note,
        reply,
        owner,
        app_body,
        open_conversation.clone(),
        app_conversation.clone(),
        format!("{lower}-vets.example"),
        whatsapp_id.clone(),
        word.to_owned(),
    ];
    Side {
        id,
        word,
        default_department,
        grooming,
        back_office,
        open_conversation,
        staff_text,
        app_conversation,
        whatsapp_id,
        strings,
    }
}

/// `POST /inbound` as the pet owner `sub` of `practice`.
async fn client_call(api: &Api, practice: &str, sub: &str, body: Value) -> Reply {
    let token = sign(
        api::SECRET,
        json!({"sub": sub, "practice_id": practice, "role": "client"}),
    );
    api.raw(
        Method::POST,
        "/inbound",
        &[("authorization", &format!("Bearer {token}"))],
        Some(body.to_string()),
    )
    .await
}

/// An HS256 token with exactly `claims` plus `iss`, `iat` and `exp` (unless given).
fn sign(secret: &str, mut claims: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let obj = claims.as_object_mut().unwrap();
    obj.entry("iss").or_insert(json!(local::LOCAL_ISSUER));
    obj.entry("iat").or_insert(json!(now));
    obj.entry("exp").or_insert(json!(now + 3600));
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Fails unless the answer is one `openapi.yaml` documents for the operation, body and all.
fn conforms(method: &Method, path: &str, r: &Reply) {
    if let Some(v) = openapi_check::violation(method.as_str(), path, r.status.as_u16(), &r.body) {
        panic!("not as openapi.yaml says: {v}: {}", r.body);
    }
}

/// A number never used before in this test binary (fresh clients, names, phone numbers).
fn seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------------------
// The matrix

#[derive(Debug, Clone, Copy, PartialEq)]
enum Endpoint {
    PutPractice,
    GetPractice,
    ListDepartments,
    CreateDepartment,
    GetDepartment,
    PatchDepartment,
    DeleteDepartment,
    ResetHours,
    SetOnline,
    PublicAvailability,
    Inbound(&'static str),
    ListConversations,
    GetConversation,
    StartConversation,
    Reply,
    RetryText,
    Transfer,
    EndConversation,
    ClientConversations,
    ClientMessages,
    BuyTicket,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint::PutPractice,
    Endpoint::GetPractice,
    Endpoint::ListDepartments,
    Endpoint::CreateDepartment,
    Endpoint::GetDepartment,
    Endpoint::PatchDepartment,
    Endpoint::DeleteDepartment,
    Endpoint::ResetHours,
    Endpoint::SetOnline,
    Endpoint::PublicAvailability,
    Endpoint::Inbound("app"),
    Endpoint::Inbound("web"),
    Endpoint::Inbound("sms"),
    Endpoint::Inbound("whatsapp"),
    Endpoint::ListConversations,
    Endpoint::GetConversation,
    Endpoint::StartConversation,
    Endpoint::Reply,
    Endpoint::RetryText,
    Endpoint::Transfer,
    Endpoint::EndConversation,
    Endpoint::ClientConversations,
    Endpoint::ClientMessages,
    Endpoint::BuyTicket,
];

const ADMIN: &[Role] = &[Role::Admin];
const DASHBOARD: &[Role] = &[Role::Admin, Role::Staff];
const EVERYONE: &[Role] = &[Role::Admin, Role::Staff, Role::Client, Role::Integration];

/// What the contract says of an endpoint: who may call it, what success is, and what a caller of another
/// practice gets when the request is about this practice's records.
struct Rule {
    roles: &'static [Role],
    success: StatusCode,
    other_practice: (StatusCode, &'static str),
}

fn rule(endpoint: Endpoint) -> Rule {
    use Endpoint as E;
    const OK: StatusCode = StatusCode::OK;
    const CREATED: StatusCode = StatusCode::CREATED;
    let not_found = (StatusCode::NOT_FOUND, "not_found");
    let (roles, success, other_practice) = match endpoint {
        // Calls about the caller's own practice: another practice's caller just gets its own.
        E::PutPractice => (ADMIN, OK, (OK, "")),
        E::GetPractice => (DASHBOARD, OK, (OK, "")),
        E::ListDepartments => (DASHBOARD, OK, (OK, "")),
        E::CreateDepartment => (ADMIN, CREATED, (CREATED, "")),
        E::ListConversations => (DASHBOARD, OK, (OK, "")),
        // Texts cannot name a department or practice: they land in the caller's own default department.
        E::Inbound("sms" | "whatsapp") => (&[Role::Integration][..], CREATED, (CREATED, "")),
        // An app chat naming this practice's department is refused like a hidden one.
        E::Inbound(_) => (
            &[Role::Client][..],
            CREATED,
            (StatusCode::UNPROCESSABLE_ENTITY, "department_not_visible"),
        ),
        E::PublicAvailability => (EVERYONE, OK, (OK, "")),
        // Calls naming this practice's records: another practice's are answered as records that do not exist.
        E::GetDepartment => (DASHBOARD, OK, not_found),
        E::PatchDepartment => (ADMIN, OK, not_found),
        E::DeleteDepartment => (ADMIN, StatusCode::NO_CONTENT, not_found),
        E::ResetHours => (ADMIN, OK, not_found),
        E::SetOnline => (DASHBOARD, OK, not_found),
        E::GetConversation => (DASHBOARD, OK, not_found),
        E::StartConversation => (DASHBOARD, CREATED, not_found),
        E::Reply => (DASHBOARD, CREATED, not_found),
        // The text is still queued (no sender runs here): the caller may, the text is not retryable yet.
        E::RetryText => (DASHBOARD, StatusCode::CONFLICT, not_found),
        E::Transfer => (DASHBOARD, OK, not_found),
        E::EndConversation => (DASHBOARD, OK, not_found),
        // The caller's own conversations: another practice's client just gets its own (none).
        E::ClientConversations => (&[Role::Client][..], OK, (OK, "")),
        // The matrix's client is a fresh pet owner, not this conversation's: another client's conversation
        // is answered as one that does not exist. (The owner's own read: `http_client_view`.)
        E::ClientMessages => (&[Role::Client][..], StatusCode::NOT_FOUND, not_found),
        E::BuyTicket => (
            &[Role::Admin, Role::Staff, Role::Client][..],
            CREATED,
            (CREATED, ""),
        ),
    };
    Rule {
        roles,
        success,
        other_practice,
    }
}

#[derive(Debug, Clone, Copy)]
enum Caller {
    NoToken,
    BadSignature,
    Expired,
    AlgNone,
    Missing(&'static str),
    /// A claim with a value no caller can have (a practice id that is no id).
    Odd(&'static str, &'static str),
    UnknownRole,
    Role(Role),
    /// A token of the other practice, with a role the endpoint allows.
    OtherPractice,
}

const CALLERS: &[Caller] = &[
    Caller::NoToken,
    Caller::BadSignature,
    Caller::Expired,
    Caller::AlgNone,
    Caller::Missing("sub"),
    Caller::Missing("practice_id"),
    Caller::Missing("role"),
    Caller::Odd("practice_id", "PRACTICE#x"),
    Caller::Odd("practice_id", ""),
    Caller::UnknownRole,
    Caller::Role(Role::Admin),
    Caller::Role(Role::Staff),
    Caller::Role(Role::Client),
    Caller::Role(Role::Integration),
    Caller::OtherPractice,
];

/// The `Authorization` header of a caller (`None`: no header).
fn authorization(caller: Caller, a: &Side, b: &Side, endpoint: Endpoint) -> Option<String> {
    let fresh_sub = format!("user-{}", seq());
    let claims = |practice: &str, role: &str| json!({"sub": fresh_sub, "practice_id": practice, "role": role});
    let token = match caller {
        Caller::NoToken => return None,
        Caller::BadSignature => sign("not-the-secret", claims(&a.id, "admin")),
        Caller::Expired => {
            let now = chrono::Utc::now().timestamp();
            let mut c = claims(&a.id, "admin");
            c["iat"] = json!(now - 7200);
            c["exp"] = json!(now - 60);
            sign(api::SECRET, c)
        }
        Caller::AlgNone => {
            let valid = sign(api::SECRET, claims(&a.id, "admin"));
            let payload = valid.split('.').nth(1).unwrap().to_owned();
            // {"alg":"none","typ":"JWT"}
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
        }
        Caller::Missing(claim) => {
            let mut c = claims(&a.id, "admin");
            c.as_object_mut().unwrap().remove(claim);
            sign(api::SECRET, c)
        }
        Caller::Odd(claim, value) => {
            let mut c = claims(&a.id, "admin");
            c[claim] = json!(value);
            sign(api::SECRET, c)
        }
        Caller::UnknownRole => sign(api::SECRET, claims(&a.id, "superuser")),
        Caller::Role(role) => sign(api::SECRET, claims(&a.id, role.as_str())),
        Caller::OtherPractice => {
            let role = rule(endpoint).roles[0];
            sign(api::SECRET, claims(&b.id, role.as_str()))
        }
    };
    Some(format!("Bearer {token}"))
}

/// The side a caller belongs to (whose own data a call may legitimately return).
fn callers_side<'s>(caller: Caller, a: &'s Side, b: &'s Side) -> &'s Side {
    match caller {
        Caller::OtherPractice => b,
        _ => a,
    }
}

/// A fresh open conversation of practice A in its default department, started by A's staff.
async fn fresh_conversation(api: &Api, a: &Side) -> String {
    let r = api
        .call(
            &a.id,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": a.default_department,
                        "client_id": format!("fresh-client-{}", seq()), "body": "Checking in"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The request of one cell, about practice A's records (`own`: the caller's practice, for the calls that
/// are about the caller's own practice). Targets a call may use up (deleted, ended, moved) are made fresh.
async fn request(
    api: &Api,
    endpoint: Endpoint,
    a: &Side,
    own: &Side,
) -> (Method, String, Option<Value>) {
    use Endpoint as E;
    let n = seq();
    match endpoint {
        E::PutPractice => (
            Method::PUT,
            "/practice".into(),
            Some(
                json!({"name": format!("{} Creek Animal Hospital", own.word),
                        "timezone": "America/New_York", "country": "US",
                        "sms_numbers": [own.strings[3]],
                        "whatsapp_numbers": [{"phone_number_id": own.whatsapp_id, "number": own.strings[3]}]}),
            ),
        ),
        E::GetPractice => (Method::GET, "/practice".into(), None),
        E::ListDepartments => (Method::GET, "/departments".into(), None),
        E::CreateDepartment => (
            Method::POST,
            "/departments".into(),
            Some(json!({"name": format!("{} Extra {n}", own.word)})),
        ),
        E::GetDepartment => (Method::GET, format!("/departments/{}", a.grooming), None),
        E::PatchDepartment => (
            Method::PATCH,
            format!("/departments/{}", a.back_office),
            Some(json!({"chat": {"greeting": format!("Patched {n}")}})),
        ),
        E::DeleteDepartment => {
            let temp = api
                .add_department(&a.id, json!({"name": format!("Temp {n}")}))
                .await;
            (
                Method::DELETE,
                format!("/departments/{}", temp["id"].as_str().unwrap()),
                None,
            )
        }
        E::ResetHours => (
            Method::POST,
            format!("/departments/{}/hours/reset", a.back_office),
            None,
        ),
        E::SetOnline => (
            Method::PUT,
            format!("/departments/{}/online", a.back_office),
            Some(json!({"online": n.is_multiple_of(2)})),
        ),
        E::PublicAvailability => (
            Method::GET,
            format!("/public/practices/{}/availability", a.id),
            None,
        ),
        E::Inbound(channel @ ("sms" | "whatsapp")) => {
            // Written to the caller's own number (its texting number, its WhatsApp phone number id).
            let to = match channel {
                "sms" => own.strings[3].clone(),
                _ => own.whatsapp_id.clone(),
            };
            (
                Method::POST,
                "/inbound".into(),
                Some(
                    json!({"channel": channel, "from": format!("+1202555{:04}", 1000 + n % 9000),
                            "to": to, "body": "Is Rex ready?"}),
                ),
            )
        }
        E::Inbound(channel) => (
            Method::POST,
            "/inbound".into(),
            Some(
                json!({"channel": channel, "department_id": a.grooming, "body": "Can I book a bath?"}),
            ),
        ),
        E::ListConversations => (Method::GET, "/conversations?status=open".into(), None),
        E::GetConversation => (
            Method::GET,
            format!("/conversations/{}", a.open_conversation),
            None,
        ),
        E::StartConversation => (
            Method::POST,
            "/conversations".into(),
            Some(
                json!({"department_id": a.grooming, "client_id": format!("started-{n}"),
                        "body": "Your pet is ready"}),
            ),
        ),
        E::Reply => (
            Method::POST,
            format!("/conversations/{}/messages", a.open_conversation),
            Some(json!({"body": "On our way"})),
        ),
        E::RetryText => (
            Method::POST,
            format!(
                "/conversations/{}/messages/{}/retry",
                a.open_conversation, a.staff_text
            ),
            None,
        ),
        E::Transfer => {
            let id = fresh_conversation(api, a).await;
            (
                Method::POST,
                format!("/conversations/{id}/transfer"),
                Some(json!({"department_id": a.grooming, "note": "For the groomers"})),
            )
        }
        E::EndConversation => {
            let id = fresh_conversation(api, a).await;
            (Method::POST, format!("/conversations/{id}/end"), None)
        }
        E::ClientConversations => (Method::GET, "/client/conversations".into(), None),
        E::ClientMessages => (
            Method::GET,
            format!(
                "/client/conversations/{}/messages?after=0",
                a.app_conversation
            ),
            None,
        ),
        E::BuyTicket => (Method::POST, "/realtime/tickets".into(), None),
    }
}

/// The status (and code) the contract gives one cell.
fn expected(endpoint: Endpoint, caller: Caller) -> (StatusCode, &'static str) {
    let rule = rule(endpoint);
    if endpoint == Endpoint::PublicAvailability {
        // No token needed, and whatever token is sent changes nothing.
        return (StatusCode::OK, "");
    }
    match caller {
        Caller::NoToken
        | Caller::BadSignature
        | Caller::Expired
        | Caller::AlgNone
        | Caller::Missing(_)
        | Caller::Odd(..) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Caller::UnknownRole => (StatusCode::FORBIDDEN, "forbidden"),
        Caller::Role(role) if rule.roles.contains(&role) => (rule.success, ""),
        Caller::Role(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Caller::OtherPractice => rule.other_practice,
    }
}

/// Strings of `other` that `reply` carries and that the request did not carry itself.
fn leaked<'s>(reply: &Reply, other: &'s Side, request: &str) -> Vec<&'s str> {
    let text = reply.body.to_string();
    other
        .strings
        .iter()
        .map(String::as_str)
        .filter(|s| text.contains(s) && !request.contains(s))
        .collect()
}

async fn every_endpoint_answers_every_caller_as_the_contract_says(api: Api) {
    let a = side(&api, "Alder", 1).await;
    let b = side(&api, "Zephyr", 2).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for &endpoint in ENDPOINTS {
        for &caller in CALLERS {
            cells += 1;
            let own = callers_side(caller, &a, &b);
            let other = if own.id == a.id { &b } else { &a };
            let (method, path, body) = request(&api, endpoint, &a, own).await;
            let auth = authorization(caller, &a, &b, endpoint);
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|h| ("authorization", h.as_str())).collect();
            let body_text = body.as_ref().map(Value::to_string);
            let r = api
                .raw(method.clone(), &path, &headers, body_text.clone())
                .await;
            let (status, code) = expected(endpoint, caller);
            let cell = format!("{endpoint:?} × {caller:?} ({method} {path})");
            if let Some(v) =
                openapi_check::violation(method.as_str(), &path, r.status.as_u16(), &r.body)
            {
                failures.push(format!("{cell}: not as openapi.yaml says: {v}: {}", r.body));
            }
            if r.status != status || (!code.is_empty() && r.code() != code) {
                failures.push(format!(
                    "{cell}: expected {status} {code}, got {} {}",
                    r.status, r.body
                ));
            }
            // Never the other practice's ids, names, addresses or numbers. The public page of A shown to B's
            // caller is A's own public page: it is checked against B's strings instead (below).
            let request_text = format!("{path} {}", body_text.as_deref().unwrap_or(""));
            let foreign = if endpoint == Endpoint::PublicAvailability {
                leaked(&r, &b, &request_text)
            } else {
                leaked(&r, other, &request_text)
            };
            if !foreign.is_empty() {
                failures.push(format!(
                    "{cell}: the answer carries the other practice's {foreign:?}: {}",
                    r.body
                ));
            }
            if endpoint == Endpoint::PublicAvailability {
                let text = r.body.to_string();
                let recipients: Vec<&String> = a
                    .strings
                    .iter()
                    .filter(|s| s.contains('@') || s.starts_with("+1"))
                    .filter(|s| text.contains(s.as_str()))
                    .collect();
                if !recipients.is_empty() {
                    failures.push(format!(
                        "{cell}: the public page shows alert recipients {recipients:?}"
                    ));
                }
            }
        }
    }
    assert_eq!(cells, ENDPOINTS.len() * CALLERS.len());
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ from the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // What B's callers did stayed in B: A's practice keeps its name and none of B's new departments.
    let r = api.admin(&a.id, Method::GET, "/practice", None).await;
    assert_eq!(r.body["name"], "Alder Creek Animal Hospital");
    let r = api.admin(&a.id, Method::GET, "/departments", None).await;
    assert!(leaked(&r, &b, "").is_empty(), "{}", r.body);
    assert!(!r.body.to_string().contains("Zephyr Extra"), "{}", r.body);
    // What the cells did stayed in A: B's own records are as B left them.
    let r = api
        .call(&b.id, Role::Staff, Method::GET, "/conversations", None)
        .await;
    let b_conversations = r.body["conversations"].as_array().unwrap();
    assert!(
        b_conversations
            .iter()
            .all(|c| c["client_id"] != "alder-owner-7"),
        "{}",
        r.body
    );
}

// ---------------------------------------------------------------------------------------------------------
// Practice ids from paths, queries, headers and bodies

async fn snapshot(api: &Api, side: &Side) -> (Value, Value, Value) {
    let practice = api
        .admin(&side.id, Method::GET, "/practice", None)
        .await
        .body;
    let departments = api
        .admin(&side.id, Method::GET, "/departments", None)
        .await
        .body;
    let conversations = api
        .call(&side.id, Role::Staff, Method::GET, "/conversations", None)
        .await
        .body;
    (practice, departments, conversations)
}

async fn practice_ids_in_paths_queries_and_bodies_never_override_the_token(api: Api) {
    let a = side(&api, "Alder", 1).await;
    let b = side(&api, "Zephyr", 2).await;
    let b_before = snapshot(&api, &b).await;
    let b_header = ("x-practice-id", b.id.as_str());

    // A practice_id in a body is not a field of any request: refused, whatever it names.
    let with_b = |mut body: Value| {
        body["practice_id"] = json!(b.id);
        body
    };
    for (role, method, path, body) in [
        (
            Role::Admin,
            Method::PUT,
            "/practice".to_owned(),
            with_b(json!({"name": "Taken Over", "timezone": "UTC", "country": "US"})),
        ),
        (
            Role::Admin,
            Method::POST,
            "/departments".to_owned(),
            with_b(json!({"name": "Planted"})),
        ),
        (
            Role::Admin,
            Method::PATCH,
            format!("/departments/{}", a.back_office),
            with_b(json!({"name": "Planted"})),
        ),
        (
            Role::Client,
            Method::POST,
            "/inbound".to_owned(),
            with_b(json!({"channel": "app", "body": "hi"})),
        ),
        (
            Role::Integration,
            Method::POST,
            "/inbound".to_owned(),
            with_b(json!({"channel": "sms", "from": "+12025550177", "body": "hi"})),
        ),
        (
            Role::Staff,
            Method::POST,
            "/conversations".to_owned(),
            with_b(json!({"department_id": a.grooming, "client_id": "c-1", "body": "hi"})),
        ),
        (
            Role::Staff,
            Method::POST,
            format!("/conversations/{}/transfer", a.open_conversation),
            with_b(json!({"department_id": a.back_office})),
        ),
    ] {
        let r = api
            .call(&a.id, role, method.clone(), &path, Some(body))
            .await;
        conforms(&method, &path, &r);
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "malformed_request"),
            "{method} {path}: {}",
            r.body
        );
    }

    // A practice id in a query or a header is not read: the caller's own practice answers.
    let admin = format!("Bearer {}", Api::token(&a.id, Role::Admin));
    for path in [
        format!("/practice?practice_id={}", b.id),
        format!("/departments?practice_id={}", b.id),
        format!("/conversations?practice_id={}", b.id),
    ] {
        let r = api
            .raw(
                Method::GET,
                &path,
                &[("authorization", &admin), b_header],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        let text = r.body.to_string();
        assert!(text.contains(&a.id), "{path} answers A's own: {text}");
        assert!(leaked(&r, &b, "").is_empty(), "{path}: {text}");
    }

    // B's department ids in bodies: a text ignores them (it starts in A's default department), an app chat
    // and staff calls do not find them.
    let r = api
        .call(
            &a.id,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(
                json!({"channel": "sms", "from": "+12025550178", "body": "hi", "department_id": b.grooming}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["department_id"], a.default_department.as_str());
    for department in [&b.grooming, &b.default_department] {
        let r = client_call(
            &api,
            &a.id,
            "alder-owner-99",
            json!({"channel": "app", "department_id": department, "body": "hi"}),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "department_not_visible"),
            "{}",
            r.body
        );
        let r = api
            .call(
                &a.id,
                Role::Staff,
                Method::POST,
                "/conversations",
                Some(json!({"department_id": department, "client_id": "alder-owner-98", "body": "hi"})),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{}",
            r.body
        );
        let r = api
            .call(
                &a.id,
                Role::Staff,
                Method::POST,
                &format!("/conversations/{}/transfer", a.open_conversation),
                Some(json!({"department_id": department})),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{}",
            r.body
        );
        let r = api
            .call(
                &a.id,
                Role::Staff,
                Method::GET,
                &format!("/conversations?department_id={department}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.body["conversations"],
            json!([]),
            "B's conversations stay B's"
        );
    }
    // A's conversation stayed in A's grooming department.
    let r = api
        .call(
            &a.id,
            Role::Staff,
            Method::GET,
            &format!("/conversations/{}", a.open_conversation),
            None,
        )
        .await;
    assert_eq!(r.body["department_id"], a.grooming.as_str());

    // B's public page names B's practice, never A's (the path names a practice only where it is public).
    let r = api
        .public(&format!("/public/practices/{}/availability", b.id))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(leaked(&r, &a, "").is_empty(), "{}", r.body);

    assert_eq!(
        snapshot(&api, &b).await,
        b_before,
        "nothing A's callers sent changed B's practice, departments or conversations"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Ids that cannot exist

async fn ids_that_cannot_exist_are_not_found(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    // Longer than any storage key may be, or empty: answered as ids that do not exist, on both stores.
    let long = "x".repeat(3000);
    let admin = |method: Method, path: String, body: Option<Value>| {
        let api = &api;
        let p = &p;
        async move { api.admin(p, method, &path, body).await }
    };
    for (method, path, body) in [
        (Method::GET, format!("/departments/{long}"), None),
        (
            Method::PATCH,
            format!("/departments/{long}"),
            Some(json!({"name": "n"})),
        ),
        (Method::DELETE, format!("/departments/{long}"), None),
        (
            Method::POST,
            format!("/departments/{long}/hours/reset"),
            None,
        ),
        (
            Method::PUT,
            format!("/departments/{long}/online"),
            Some(json!({"online": false})),
        ),
        (Method::GET, format!("/conversations/{long}"), None),
        (
            Method::POST,
            format!("/conversations/{long}/messages"),
            Some(json!({"body": "hi"})),
        ),
        (Method::POST, format!("/conversations/{long}/end"), None),
        (
            Method::POST,
            format!("/conversations/{long}/transfer"),
            Some(json!({"department_id": default_id})),
        ),
        (
            Method::POST,
            "/conversations".to_owned(),
            Some(json!({"department_id": long, "client_id": "c1", "body": "hi"})),
        ),
        (
            Method::POST,
            "/conversations".to_owned(),
            Some(json!({"department_id": "", "client_id": "c1", "body": "hi"})),
        ),
    ] {
        let r = admin(method.clone(), path.clone(), body).await;
        conforms(&method, &path, &r);
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {}…: {}",
            &path[..40.min(path.len())],
            r.body
        );
    }
    let r = api
        .public(&format!("/public/practices/{long}/availability"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let started = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": default_id, "client_id": "c-1", "body": "hi"})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = started.body["id"].as_str().unwrap();
    for department in [long.as_str(), ""] {
        let r = api
            .call(
                &p,
                Role::Staff,
                Method::POST,
                &format!("/conversations/{id}/transfer"),
                Some(json!({"department_id": department})),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{}",
            r.body
        );
        let r = client_call(
            &api,
            &p,
            "owner-1",
            json!({"channel": "app", "department_id": department, "body": "hi"}),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "department_not_visible"),
            "{}",
            r.body
        );
        let r = api
            .call(
                &p,
                Role::Staff,
                Method::GET,
                &format!("/conversations?department_id={department}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // A cursor this API could not have given (its position longer than a key): 422, not a failed query.
    let crafted = base64url(&serde_json::to_vec(&json!({"p": p, "k": long})).unwrap());
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::GET,
            &format!("/conversations?cursor={crafted}"),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "cursor"),
        "{}",
        r.body
    );
    // A client id longer than any id: 422, as a staff-chosen value.
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": default_id, "client_id": "c".repeat(129), "body": "hi"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            "client_id"
        ),
        "{}",
        r.body
    );
    // A token whose user id could not be a key: refused as a bad token.
    let r = client_call(
        &api,
        &p,
        &"u".repeat(3000),
        json!({"channel": "app", "body": "hi"}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "{}",
        r.body
    );
    // None of it was stored: the one conversation is the one staff started.
    let r = api
        .call(&p, Role::Staff, Method::GET, "/conversations", None)
        .await;
    assert_eq!(r.body["conversations"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------------------
// Limits

/// Base64url without padding (the cursor's encoding).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// What a practice holds, as its dashboard shows it.
async fn everything(api: &Api, p: &str) -> Value {
    let practice = api.admin(p, Method::GET, "/practice", None).await.body;
    let departments = api.admin(p, Method::GET, "/departments", None).await.body;
    let conversations = api
        .call(p, Role::Staff, Method::GET, "/conversations", None)
        .await
        .body;
    let mut details = Vec::new();
    for c in conversations["conversations"].as_array().unwrap() {
        let path = format!("/conversations/{}", c["id"].as_str().unwrap());
        details.push(
            api.call(p, Role::Staff, Method::GET, &path, None)
                .await
                .body,
        );
    }
    json!({"practice": practice, "departments": departments, "conversations": details})
}

fn numbers(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("+1201555{:04}", 200 + i))
        .collect()
}

async fn request_limits_are_refused_and_nothing_is_stored(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_open_practice(&p).await;
    let grooming = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true, "hours": always_open()}),
        )
        .await;
    let grooming_id = grooming["id"].as_str().unwrap().to_owned();
    let started = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": default_id, "client_id": "owner-1", "body": "hi"})),
        )
        .await;
    let conversation = started.body["id"].as_str().unwrap().to_owned();
    let dep = format!("/departments/{grooming_id}");
    let before = everything(&api, &p).await;

    let message = |chars: usize| "m".repeat(chars);
    let date = |i: i64| {
        (chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + chrono::Duration::days(i))
            .to_string()
    };
    let overrides = |count: i64| -> Value {
        (0..count)
            .map(|i| json!({"start_date": date(i), "end_date": date(i), "kind": "non_working"}))
            .collect()
    };
    let emails = |count: usize| -> Vec<String> {
        (0..count)
            .map(|i| format!("desk{i}@happypaws.example"))
            .collect()
    };
    let name = |chars: usize| "N".repeat(chars);
    let text = |chars: usize| "t".repeat(chars);

    // (role, method, path, body over the limit, status, code, field)
    let over: Vec<(Role, Method, String, Value, StatusCode, &str, &str)> = vec![
        (
            Role::Client,
            Method::POST,
            "/inbound".into(),
            json!({"channel": "app", "body": message(4001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "body",
        ),
        (
            Role::Integration,
            Method::POST,
            "/inbound".into(),
            json!({"channel": "sms", "from": "+12025550190", "body": message(4001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "body",
        ),
        (
            Role::Staff,
            Method::POST,
            "/conversations".into(),
            json!({"department_id": grooming_id, "client_id": "owner-2", "body": message(4001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "body",
        ),
        (
            Role::Staff,
            Method::POST,
            format!("/conversations/{conversation}/messages"),
            json!({"body": message(4001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "body",
        ),
        (
            Role::Staff,
            Method::POST,
            format!("/conversations/{conversation}/transfer"),
            json!({"department_id": grooming_id, "note": text(1001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "note",
        ),
        (
            Role::Admin,
            Method::PUT,
            "/practice".into(),
            json!({"name": name(81), "timezone": "America/New_York", "country": "US"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "name",
        ),
        (
            Role::Admin,
            Method::PUT,
            "/practice".into(),
            json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US",
                   "sms_numbers": numbers(21)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "sms_numbers",
        ),
        (
            Role::Admin,
            Method::PUT,
            "/practice".into(),
            json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US",
                   "whatsapp_numbers": (0..11).map(|i| json!({
                       "phone_number_id": format!("phone-number-id-{i}"),
                       "number": format!("+120155502{i:02}")})).collect::<Vec<_>>()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "whatsapp_numbers",
        ),
        (
            Role::Admin,
            Method::POST,
            "/departments".into(),
            json!({"name": name(81)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "name",
        ),
        (
            Role::Admin,
            Method::PATCH,
            dep.clone(),
            json!({"name": name(81)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "name",
        ),
        (
            Role::Admin,
            Method::PATCH,
            dep.clone(),
            json!({"alerts": {"enabled": true, "emails": emails(21)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "alerts.emails",
        ),
        (
            Role::Admin,
            Method::PATCH,
            dep.clone(),
            json!({"alerts": {"enabled": true, "emails": emails(21).join(", ")}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "alerts.emails",
        ),
        (
            Role::Admin,
            Method::PATCH,
            dep.clone(),
            json!({"alerts": {"enabled": true, "sms_numbers": numbers(11)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "alerts.sms_numbers",
        ),
        (
            Role::Admin,
            Method::POST,
            "/departments".into(),
            json!({"name": "Boarding", "alerts": {"enabled": true, "sms_numbers": numbers(11)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "alerts.sms_numbers",
        ),
        (
            Role::Admin,
            Method::PATCH,
            dep.clone(),
            json!({"date_overrides": overrides(401)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_date_override",
            "date_overrides",
        ),
        (
            Role::Admin,
            Method::PATCH,
            dep.clone(),
            json!({"chat": {"greeting": text(1001)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "chat.greeting",
        ),
        (
            Role::Admin,
            Method::PATCH,
            dep.clone(),
            json!({"chat": {"after_hours_message": text(1001)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_large",
            "chat.after_hours_message",
        ),
    ];
    for (role, method, path, body, status, code, field) in over {
        let r = api.call(&p, role, method.clone(), &path, Some(body)).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (status, code, field),
            "{method} {path} as {role:?}: {}",
            r.body
        );
        conforms(&method, &path, &r);
        assert!(
            !r.body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "a message for a person"
        );
    }
    api.deliver_alerts().await;
    assert_eq!(
        everything(&api, &p).await,
        before,
        "nothing of a refused request was stored"
    );
    assert!(api.recorder.sent().is_empty(), "and no alert went out");

    // At the limits themselves, everything is taken.
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
            Some(json!({"body": message(4000)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &dep,
            Some(json!({
                "name": name(80),
                "alerts": {"enabled": true, "emails": emails(20), "sms_numbers": numbers(10)},
                "date_overrides": overrides(400),
                "chat": {"greeting": text(1000), "after_hours_message": text(1000)},
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["date_overrides"].as_array().unwrap().len(), 400);
    assert_eq!(r.body["alerts"]["emails"].as_array().unwrap().len(), 20);
    assert_eq!(
        r.body["alerts"]["sms_numbers"].as_array().unwrap().len(),
        10
    );
    // The fullest department there can be: four windows every day, 400 working overrides of four windows
    // each, names and texts in four-byte characters, the longest alert addresses.
    let four = json!([{"start": "00:00", "end": "02:00"}, {"start": "03:00", "end": "04:00"},
                      {"start": "05:00", "end": "06:00"}, {"start": "07:00", "end": "24:00"}]);
    let week = json!({"mon": four, "tue": four, "wed": four, "thu": four, "fri": four, "sat": four, "sun": four});
    let working: Value = (0..400)
        .map(|i| json!({"start_date": date(i), "end_date": date(i), "kind": "working", "windows": four}))
        .collect();
    let paws = |chars: usize| "🐾".repeat(chars);
    let long_emails: Vec<String> = (0..20)
        .map(|i| format!("{}{i:02}@happypaws.example", "d".repeat(62)))
        .collect();
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &dep,
            Some(json!({
                "name": paws(80),
                "alerts": {"enabled": true, "emails": long_emails, "sms_numbers": numbers(10)},
                "hours": week,
                "date_overrides": working,
                "chat": {"greeting": paws(1000), "after_hours_message": paws(1000)},
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["hours"], week);
    assert_eq!(r.body["date_overrides"], working);
    let full = r.body.clone();
    assert_eq!(
        api.admin(&p, Method::GET, &dep, None).await.body,
        full,
        "stored whole (a DynamoDB item holds it)"
    );
    // Sent back as it was read, it still fits in a request, even pretty-printed: the body limit was raised
    // from 64 KiB for split shifts, since this no longer fits in 64 KiB even compact.
    let r = api.admin(&p, Method::PATCH, &dep, Some(full.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let pretty = serde_json::to_string_pretty(&full).unwrap();
    assert!(
        pretty.len() < adapters::http::MAX_BODY_BYTES,
        "{} bytes pretty-printed",
        pretty.len()
    );
    assert!(serde_json::to_string(&full).unwrap().len() > 64 * 1024);
    let r = api
        .raw(
            Method::PATCH,
            &dep,
            &[(
                "authorization",
                &format!("Bearer {}", Api::token(&p, Role::Admin)),
            )],
            Some(pretty),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .admin(
            &p,
            Method::PUT,
            "/practice",
            Some(
                json!({"name": name(80), "timezone": "America/New_York", "country": "US",
                        "sms_numbers": numbers(20)}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

// ---------------------------------------------------------------------------------------------------------
// Body size

async fn body_size_and_depth_limits_hold_on_every_endpoint_that_reads_a_body(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_open_practice(&p).await;
    let started = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": default_id, "client_id": "owner-1", "body": "hi"})),
        )
        .await;
    let conversation = started.body["id"].as_str().unwrap().to_owned();
    let before = everything(&api, &p).await;

    // Valid JSON, each value within its own limit but padded past the body limit with whitespace.
    let pad = |body: Value| format!("{}{}", " ".repeat(adapters::http::MAX_BODY_BYTES), body);
    let cases: Vec<(Role, Method, String, Value)> = vec![
        (
            Role::Admin,
            Method::PUT,
            "/practice".into(),
            json!({"name": "Big", "timezone": "UTC", "country": "US"}),
        ),
        (
            Role::Admin,
            Method::POST,
            "/departments".into(),
            json!({"name": "Big"}),
        ),
        (
            Role::Admin,
            Method::PATCH,
            format!("/departments/{default_id}"),
            json!({"chat": {"greeting": "Big"}}),
        ),
        (
            Role::Staff,
            Method::PUT,
            format!("/departments/{default_id}/online"),
            json!({"online": false}),
        ),
        (
            Role::Client,
            Method::POST,
            "/inbound".into(),
            json!({"channel": "app", "body": "Big"}),
        ),
        (
            Role::Staff,
            Method::POST,
            "/conversations".into(),
            json!({"department_id": default_id, "client_id": "owner-2", "body": "Big"}),
        ),
        (
            Role::Staff,
            Method::POST,
            format!("/conversations/{conversation}/messages"),
            json!({"body": "Big"}),
        ),
        (
            Role::Staff,
            Method::POST,
            format!("/conversations/{conversation}/transfer"),
            json!({"department_id": "dep_x"}),
        ),
    ];
    for (role, method, path, body) in cases {
        let token = format!("Bearer {}", Api::token(&p, role));
        let big = pad(body.clone());
        let length = big.len().to_string();
        // Without a Content-Length (read up to the limit), and with one (refused before reading).
        for headers in [
            vec![("authorization", token.as_str())],
            vec![
                ("authorization", token.as_str()),
                ("content-length", length.as_str()),
            ],
        ] {
            let r = api
                .raw(method.clone(), &path, &headers, Some(big.clone()))
                .await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
                "{method} {path}: {}",
                r.body
            );
            conforms(&method, &path, &r);
        }
    }
    // JSON nested deeper than any request needs (within the size limit): refused as malformed, no stack
    // overflow.
    let deep = format!(
        "{{\"chat\": {}1{}}}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    assert!(deep.len() < adapters::http::MAX_BODY_BYTES);
    for (role, method, path) in [
        (
            Role::Admin,
            Method::PATCH,
            format!("/departments/{default_id}"),
        ),
        (Role::Admin, Method::POST, "/departments".to_owned()),
        (Role::Client, Method::POST, "/inbound".to_owned()),
    ] {
        let token = format!("Bearer {}", Api::token(&p, role));
        let r = api
            .raw(
                method.clone(),
                &path,
                &[("authorization", &token)],
                Some(deep.clone()),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "malformed_request"),
            "{method} {path}: {}",
            r.body
        );
        conforms(&method, &path, &r);
    }
    // An unauthenticated caller is refused before its body is read at all.
    let r = api
        .raw(Method::POST, "/inbound", &[], Some(pad(json!({}))))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(everything(&api, &p).await, before, "nothing was stored");
}
