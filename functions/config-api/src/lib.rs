//! The config-api function: practice settings, departments and public availability.
//! `router` is mounted both by this function's Lambda entry and by the local server.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use adapters::auth::Authenticated;
use adapters::http::{
    cacheable_json_response, json_response, method_not_allowed, parse_json, ApiResult, Body,
};
use adapters::{new_id, now};
use domain::department::Department;
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::{Practice, PracticeInput};
use domain::store::SettingsStore;
use domain::{settings, DomainError, InvalidCode};

/// The config-api function's state: the settings store, as its IAM policy allows.
type AppState = adapters::http::AppState<dyn SettingsStore>;

pub fn router(store: Arc<dyn SettingsStore>) -> Router {
    Router::new()
        .route("/practice", put(put_practice).get(get_practice))
        .route(
            "/departments",
            get(list_departments).post(create_department),
        )
        .route(
            "/departments/{id}",
            get(get_department)
                .patch(patch_department)
                .delete(delete_department),
        )
        .route("/departments/{id}/hours/reset", post(reset_hours))
        .route("/departments/{id}/online", put(set_online))
        .route(
            "/public/practices/{practice_id}/availability",
            get(public_availability),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState::new(store))
}

/// The practice as the API returns it (the concurrency counter is internal).
fn practice_view(practice: &Practice) -> Value {
    let mut v = serde_json::to_value(practice).expect("practice serializes");
    if let Some(obj) = v.as_object_mut() {
        obj.remove("version");
    }
    v
}

/// One department with its `ETag` header.
fn department_response(status: StatusCode, department: &Department) -> Response {
    let mut response = json_response(status, department.to_view());
    if let Ok(tag) = department.etag().parse() {
        response.headers_mut().insert(http::header::ETAG, tag);
    }
    response
}

async fn put_practice(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Body(body): Body,
) -> ApiResult<Response> {
    let input: PracticeInput = parse_json(&body)?;
    let (practice, created) = settings::put_practice(&*s.store, &caller, input, now()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, practice_view(&practice)))
}

async fn get_practice(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    let practice = settings::get_practice(&*s.store, &caller).await?;
    Ok(json_response(StatusCode::OK, practice_view(&practice)))
}

async fn list_departments(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    let departments = settings::list_departments(&*s.store, &caller).await?;
    let views: Vec<Value> = departments.iter().map(Department::to_view).collect();
    Ok(json_response(StatusCode::OK, views))
}

async fn create_department(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Body(body): Body,
) -> ApiResult<Response> {
    let body: Value = parse_json(&body)?;
    let department =
        settings::create_department(&*s.store, &caller, body, now(), DepartmentId(new_id("dep")))
            .await?;
    Ok(department_response(StatusCode::CREATED, &department))
}

async fn get_department(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let department = settings::get_department(&*s.store, &caller, &DepartmentId(id)).await?;
    Ok(department_response(StatusCode::OK, &department))
}

async fn patch_department(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let patch: Value = parse_json(&body)?;
    let if_match = match headers.get(http::header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| DomainError::malformed("If-Match is not text", None))?,
        ),
    };
    let department = settings::patch_department(
        &*s.store,
        &caller,
        &DepartmentId(id),
        patch,
        if_match,
        now(),
    )
    .await?;
    Ok(department_response(StatusCode::OK, &department))
}

async fn delete_department(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    settings::delete_department(&*s.store, &caller, &DepartmentId(id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reset_hours(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let department = settings::reset_hours(&*s.store, &caller, &DepartmentId(id), now()).await?;
    Ok(department_response(StatusCode::OK, &department))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnlineBody {
    online: bool,
}

async fn set_online(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let OnlineBody { online } = parse_json(&body)?;
    let department =
        settings::set_online(&*s.store, &caller, &DepartmentId(id), online, now()).await?;
    Ok(department_response(StatusCode::OK, &department))
}

#[derive(Deserialize)]
struct AvailabilityQuery {
    at: Option<String>,
}

/// `at` is an RFC 3339 instant. A `+` offset sent unescaped in a query arrives as a space: take it back.
fn parse_instant(raw: &str) -> Result<DateTime<Utc>, DomainError> {
    DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            DomainError::invalid(
                InvalidCode::InvalidValue,
                "at",
                format!("{raw:?} is not an RFC 3339 instant with offset (e.g. 2026-11-21T17:30:00-05:00)"),
            )
        })
}

/// Cacheable for as long as it stays true (the domain's `max_age`), with a weak ETag of what it says: the
/// body without `at`, the instant it was computed for, which differs between otherwise equal answers.
async fn public_availability(
    State(s): State<AppState>,
    Path(practice_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<AvailabilityQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let at = match query.at.as_deref() {
        Some(raw) => parse_instant(raw)?,
        None => now(),
    };
    // An id that cannot exist is answered like one that does not.
    let practice_id = PracticeId::parse(&practice_id).ok_or(DomainError::NotFound("practice"))?;
    let availability = settings::public_availability(&*s.store, &practice_id, at).await?;
    let max_age = availability.max_age(at);
    let validator = serde_json::to_vec(&(&availability.practice, &availability.departments))
        .expect("availability serializes");
    Ok(cacheable_json_response(
        &headers,
        StatusCode::OK,
        availability,
        &validator,
        max_age,
    ))
}
