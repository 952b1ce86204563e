//! The HTTP contract of practice settings, departments and public availability (docs/api.md), on both stores.

use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{self, Api};

vetchat_tests::on_every_store!(
    first_put_creates_practice_and_default_department,
    default_department_rules,
    new_department_gets_defaults_and_list_order,
    merge_patch_and_etag,
    alert_emails_and_sms_numbers,
    invalid_values_change_nothing,
    duplicate_names_are_refused,
    delete_and_reset_hours,
    roles_and_online_switch,
    tokens_are_verified,
    another_practice_is_invisible,
    public_availability_is_computed_and_hides_recipients,
    public_availability_is_cached_until_the_next_change_and_revalidated_with_304,
    malformed_bodies,
    practice_must_be_set_up_first,
    texting_numbers_belong_to_one_practice,
    whatsapp_numbers_are_stored_and_read_back_validated,
    whatsapp_numbers_and_ids_belong_to_one_practice_until_removed,
    concurrent_patches_with_same_etag,
    split_shifts_and_overnight_hours,
    bad_windows_are_refused_and_nothing_is_stored,
);

/// The local server serves the staff pages of `web/` (compiled in) beside the API, on one port: the API's
/// routes come first, any other GET names a page file or is the contract's JSON 404.
#[tokio::test]
async fn the_local_server_serves_the_pages_beside_the_api() {
    let api = Api::memory().await;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    for (path, file, kind) in [
        ("/", "index.html", "text/html"),
        (
            "/settings/departments.html",
            "settings/departments.html",
            "text/html",
        ),
        ("/js/api.js", "js/api.js", "javascript"),
        ("/css/app.css", "css/app.css", "text/css"),
        ("/config.json", "config.json", "application/json"),
    ] {
        let (status, headers, body) = api.fetch(Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            body,
            std::fs::read(repo.join(file)).unwrap(),
            "{path} is web/{file}"
        );
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(content_type.contains(kind), "{path}: {content_type}");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        // Revalidation by hash.
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let (status, _, body) = api
            .fetch(Method::GET, path, &[("if-none-match", &etag)])
            .await;
        assert_eq!(
            (status, body.len()),
            (StatusCode::NOT_MODIFIED, 0),
            "{path}"
        );
    }
    // The local config signs in locally, on this origin.
    let (_, _, body) = api.fetch(Method::GET, "/config.json", &[]).await;
    let config: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (config["api_base"].as_str(), config["auth"]["mode"].as_str()),
        (Some(""), Some("local"))
    );

    // Unknown paths, and other methods on page paths, are the contract's JSON 404; API routes keep theirs.
    for (method, path) in [
        (Method::GET, "/nope.html"),
        (Method::GET, "/departments/x/y"),
        (Method::GET, "/js/"),
        (Method::GET, "/../Cargo.toml"),
        (Method::POST, "/index.html"),
        (Method::DELETE, "/"),
    ] {
        let r = api.raw(method.clone(), path, &[], None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}"
        );
    }
    let r = api.raw(Method::GET, "/departments", &[], None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
}

/// `POST /_local/token`: the pages' development sign-in gets a token the API takes, for the practice, role
/// and user asked; a bad value is refused with its field.
#[tokio::test]
async fn the_local_sign_in_mints_a_token_the_api_takes() {
    let api = Api::memory().await;
    let p = Api::practice_id();
    let r = api
        .raw(
            Method::POST,
            "/_local/token",
            &[],
            Some(json!({"practice_id": p, "role": "admin", "sub": "dr-ng"}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(r.body["expires_at"].as_str().unwrap()).unwrap();
    let hours = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!(
        (7 * 60..=8 * 60).contains(&hours),
        "valid a working day, got {hours} min"
    );
    let auth = format!("Bearer {token}");
    let r = api
        .raw(
            Method::PUT,
            "/practice",
            &[("authorization", &auth)],
            Some(
                json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["id"], p.as_str());

    for (body, field) in [
        (
            json!({"practice_id": "not a practice!", "role": "admin", "sub": "a"}),
            "practice_id",
        ),
        (
            json!({"practice_id": p, "role": "owner", "sub": "a"}),
            "role",
        ),
        (
            json!({"practice_id": p, "role": "staff", "sub": " "}),
            "sub",
        ),
    ] {
        let r = api
            .raw(Method::POST, "/_local/token", &[], Some(body.to_string()))
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", field)
        );
    }
    let r = api
        .raw(
            Method::POST,
            "/_local/token",
            &[],
            Some(json!({"practice_id": p, "role": "admin"}).to_string()),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
}

async fn first_put_creates_practice_and_default_department(api: Api) {
    let p = Api::practice_id();
    let body = json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "us", "sms_numbers": ["(201) 555-0100"]});
    let r = api
        .admin(&p, Method::PUT, "/practice", Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["name"], "Happy Paws");
    assert_eq!(r.body["country"], "US");
    assert_eq!(r.body["sms_numbers"], json!(["+12015550100"]));
    let default_id = r.body["default_department_id"].as_str().unwrap().to_owned();

    let again = api.admin(&p, Method::PUT, "/practice", Some(json!({"name": "Happy Paws Clinic", "timezone": "America/Chicago", "country": "US"}))).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.body["default_department_id"],
        default_id.as_str(),
        "the default department stays"
    );
    assert_eq!(again.body["timezone"], "America/Chicago");

    let got = api
        .call(&p, Role::Staff, Method::GET, "/practice", None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["name"], "Happy Paws Clinic");

    let list = api
        .call(&p, Role::Staff, Method::GET, "/departments", None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], default_id.as_str());
    assert_eq!(list[0]["name"], "Happy Paws Team");
    assert_eq!(list[0]["is_default"], true);
    assert_eq!(list[0]["visible_in_app"], true);
    assert_eq!(list[0]["open_conversations"], 0);
}

async fn default_department_rules(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    let path = format!("/departments/{default_id}");

    let r = api.admin(&p, Method::DELETE, &path, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "default_department")
    );
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"name": "Front desk"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "default_department")
    );
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"visible_in_app": false})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "default_department")
    );

    // Every other setting can change.
    let r = api
        .admin(&p, Method::PATCH, &path, Some(json!({"chat": {"greeting": "Hi! How can we help?"}, "hours": {"sat": {"start": "10:00", "end": "14:00"}}, "online": false})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"], "Happy Paws Team");
    assert_eq!(r.body["chat"]["greeting"], "Hi! How can we help?");
    assert_eq!(
        r.body["hours"]["sat"],
        json!({"start": "10:00", "end": "14:00"})
    );
    assert_eq!(
        r.body["hours"]["mon"],
        json!({"start": "09:00", "end": "18:00"}),
        "merge patch keeps the other days"
    );
    assert_eq!(r.body["online"], false);
    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(
        got.body["chat"]["greeting"], "Hi! How can we help?",
        "stored"
    );
}

async fn new_department_gets_defaults_and_list_order(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let grooming = api.add_department(&p, json!({"name": "Grooming"})).await;
    assert_eq!(grooming["is_default"], false);
    assert_eq!(grooming["visible_in_app"], false);
    assert_eq!(grooming["online"], true);
    assert_eq!(grooming["open_conversations"], 0);
    assert_eq!(
        grooming["alerts"],
        json!({"enabled": false, "emails": [], "sms_numbers": []})
    );
    assert_eq!(grooming["unresolved_reminder"], json!({"enabled": false}));
    assert_eq!(grooming["date_overrides"], json!([]));
    for day in ["mon", "tue", "wed", "thu", "fri"] {
        assert_eq!(
            grooming["hours"][day],
            json!({"start": "09:00", "end": "18:00"}),
            "{day}"
        );
    }
    assert_eq!(grooming["hours"]["sat"], Value::Null);
    assert_eq!(grooming["hours"]["sun"], Value::Null);

    api.add_department(&p, json!({"name": "boarding", "visible_in_app": true}))
        .await;
    api.add_department(&p, json!({"name": "Telehealth Vet"}))
        .await;
    let list = api.admin(&p, Method::GET, "/departments", None).await;
    let names: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Happy Paws Team", "boarding", "Grooming", "Telehealth Vet"]
    );

    let id = grooming["id"].as_str().unwrap();
    let one = api
        .call(
            &p,
            Role::Staff,
            Method::GET,
            &format!("/departments/{id}"),
            None,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body, grooming);
    assert_eq!(
        one.headers.get("etag").unwrap().to_str().unwrap(),
        one.body["etag"].as_str().unwrap()
    );
}

async fn merge_patch_and_etag(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api
        .add_department(&p, json!({"name": "Grooming", "chat": {"greeting": "Hello", "allow_messages_after_hours": false}}))
        .await;
    let path = format!("/departments/{}", d["id"].as_str().unwrap());
    let etag1 = d["etag"].as_str().unwrap().to_owned();

    let r = api
        .raw(
            Method::PATCH,
            &path,
            &[("authorization", &format!("Bearer {}", Api::token(&p, Role::Admin))), ("if-match", &etag1)],
            Some(json!({"chat": {"greeting": null}, "hours": {"sat": {"start": "08:00", "end": "12:00"}, "mon": null}}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["chat"]["greeting"],
        Value::Null,
        "null removes the greeting"
    );
    assert_eq!(
        r.body["chat"]["allow_messages_after_hours"], false,
        "untouched members stay"
    );
    assert_eq!(r.body["hours"]["mon"], Value::Null);
    assert_eq!(
        r.body["hours"]["sat"],
        json!({"start": "08:00", "end": "12:00"})
    );
    let etag2 = r.body["etag"].as_str().unwrap().to_owned();
    assert_ne!(etag1, etag2);

    // The old etag is refused and nothing changes.
    let stale = api
        .raw(
            Method::PATCH,
            &path,
            &[
                (
                    "authorization",
                    &format!("Bearer {}", Api::token(&p, Role::Admin)),
                ),
                ("if-match", &etag1),
            ],
            Some(json!({"name": "Lost update"}).to_string()),
        )
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::PRECONDITION_FAILED, "stale_etag")
    );
    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(got.body["name"], "Grooming");
    assert_eq!(got.body["etag"], etag2.as_str());

    // A patch that changes nothing keeps the etag.
    let same = api
        .admin(&p, Method::PATCH, &path, Some(json!({"name": "Grooming"})))
        .await;
    assert_eq!(same.body["etag"], etag2.as_str());
}

async fn alert_emails_and_sms_numbers(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api
        .add_department(
            &p,
            json!({"name": "Grooming", "alerts": {"enabled": true, "emails": "desk@happypaws.example, Vet@HappyPaws.example ,",
                   "sms_numbers": ["(201) 555-0123", "+1 416 555 0199"]},
                   "unresolved_reminder": {"enabled": true, "at": "17:30"}}),
        )
        .await;
    assert_eq!(
        d["alerts"]["emails"],
        json!(["desk@happypaws.example", "Vet@HappyPaws.example"])
    );
    assert_eq!(
        d["alerts"]["sms_numbers"],
        json!(["+12015550123", "+14165550199"])
    );
    assert_eq!(
        d["unresolved_reminder"],
        json!({"enabled": true, "at": "17:30"})
    );
    let path = format!("/departments/{}", d["id"].as_str().unwrap());

    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"alerts": {"enabled": true, "emails": ["not an email"]}})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
            "alerts.emails[0]"
        )
    );
    let r = api.admin(&p, Method::PATCH, &path, Some(json!({"alerts": {"enabled": true, "emails": "a@x.example", "sms_numbers": ["+44 20 7946 0958"]}}))).await;
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "sms_alerts_unavailable_in_country"
        )
    );
    let r = api.admin(&p, Method::PATCH, &path, Some(json!({"alerts": {"enabled": true, "emails": "a@x.example", "sms_numbers": ["555"]}}))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone")
    );
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"alerts": {"enabled": false, "emails": []}})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "reminder_needs_email"),
        "the reminder is on"
    );

    // A practice outside the US and Canada cannot have SMS alerts at all.
    let uk = Api::practice_id();
    let r = api
        .admin(
            &uk,
            Method::PUT,
            "/practice",
            Some(json!({"name": "London Paws", "timezone": "Europe/London", "country": "GB"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .admin(&uk, Method::POST, "/departments", Some(json!({"name": "Grooming", "alerts": {"enabled": true, "sms_numbers": ["+12015550123"]}})))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "sms_alerts_unavailable_in_country"
        )
    );
    let r = api
        .admin(
            &p,
            Method::POST,
            "/departments",
            Some(json!({"name": "Boarding", "unresolved_reminder": {"enabled": true}})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "reminder_needs_email")
    );

    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(got.body, d, "refused changes changed nothing");
    let list = api.admin(&uk, Method::GET, "/departments", None).await;
    assert_eq!(
        list.body.as_array().unwrap().len(),
        1,
        "refused creates stored nothing"
    );
}

async fn invalid_values_change_nothing(api: Api) {
    let p = Api::practice_id();
    let r = api
        .admin(
            &p,
            Method::PUT,
            "/practice",
            Some(json!({"name": "X", "timezone": "America/Gotham", "country": "US"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_time_zone",
            "timezone"
        )
    );
    let r = api.admin(&p, Method::GET, "/practice", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "not_found"),
        "nothing was created"
    );
    let r = api
        .admin(
            &p,
            Method::PUT,
            "/practice",
            Some(json!({"name": "X", "timezone": "UTC", "country": "US", "sms_numbers": ["12"]})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_phone",
            "sms_numbers[0]"
        )
    );

    api.setup_practice(&p).await;
    let d = api.add_department(&p, json!({"name": "Grooming"})).await;
    let path = format!("/departments/{}", d["id"].as_str().unwrap());
    let cases = [
        (
            json!({"hours": {"mon": {"start": "18:00", "end": "09:00"}}}),
            "invalid_hours",
            "hours.mon",
        ),
        (
            json!({"hours": {"tue": {"start": "9am", "end": "18:00"}}}),
            "invalid_hours",
            "hours.tue.start",
        ),
        (
            json!({"hours": {"wed": {"start": "24:00", "end": "24:00"}}}),
            "invalid_hours",
            "hours.wed",
        ),
        (
            json!({"date_overrides": [{"start_date": "2026-12-26", "end_date": "2026-12-24", "kind": "non_working"}]}),
            "invalid_date_override",
            "date_overrides[0]",
        ),
        (
            json!({"date_overrides": [{"start_date": "2026-12-24", "end_date": "2026-12-24", "kind": "holiday"}]}),
            "invalid_date_override",
            "date_overrides[0].kind",
        ),
        (
            json!({"date_overrides": [{"start_date": "2026-12-24", "end_date": "2026-12-24", "kind": "working", "start": "15:00", "end": "10:00"}]}),
            "invalid_date_override",
            "date_overrides[0]",
        ),
        (json!({"name": "   "}), "invalid_name", "name"),
    ];
    for (patch, code, field) in cases {
        let r = api
            .admin(&p, Method::PATCH, &path, Some(patch.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{patch}: {:?}",
            r.body
        );
        assert_eq!(r.code(), code, "{patch}");
        assert!(
            r.field().starts_with(field),
            "{patch}: field {} should start with {field}",
            r.field()
        );
    }
    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(got.body, d, "nothing changed");
}

async fn duplicate_names_are_refused(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let grooming = api.add_department(&p, json!({"name": "Grooming"})).await;
    let r = api
        .admin(
            &p,
            Method::POST,
            "/departments",
            Some(json!({"name": " grooming "})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_department_name",
            "name"
        )
    );
    let r = api
        .admin(
            &p,
            Method::POST,
            "/departments",
            Some(json!({"name": "happy paws team"})),
        )
        .await;
    assert_eq!(
        r.code(),
        "duplicate_department_name",
        "the default department's name is taken too"
    );
    let boarding = api.add_department(&p, json!({"name": "Boarding"})).await;
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &format!("/departments/{}", boarding["id"].as_str().unwrap()),
            Some(json!({"name": "GROOMING"})),
        )
        .await;
    assert_eq!(r.code(), "duplicate_department_name");
    // A rename frees the old name.
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &format!("/departments/{}", grooming["id"].as_str().unwrap()),
            Some(json!({"name": "Grooming & Spa"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    api.add_department(&p, json!({"name": "Grooming"})).await;
    // Names are per practice.
    let other = Api::practice_id();
    api.setup_practice(&other).await;
    api.add_department(&other, json!({"name": "Grooming"}))
        .await;
}

async fn delete_and_reset_hours(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api
        .add_department(
            &p,
            json!({"name": "Boarding", "hours": {"sat": {"start": "10:00", "end": "12:00"}},
                   "date_overrides": [{"start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working"}]}),
        )
        .await;
    assert_eq!(
        d["hours"]["mon"],
        Value::Null,
        "a POSTed week is the whole week"
    );
    let path = format!("/departments/{}", d["id"].as_str().unwrap());
    let r = api
        .admin(&p, Method::POST, &format!("{path}/hours/reset"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["hours"]["mon"],
        json!({"start": "09:00", "end": "18:00"})
    );
    assert_eq!(r.body["hours"]["sat"], Value::Null);
    assert_eq!(
        r.body["date_overrides"], d["date_overrides"],
        "overrides kept"
    );

    let r = api.admin(&p, Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null);
    let r = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = api.admin(&p, Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .admin(&p, Method::PATCH, &path, Some(json!({"online": false})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    api.add_department(&p, json!({"name": "Boarding"})).await; // the name is free again
}

async fn roles_and_online_switch(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api.add_department(&p, json!({"name": "Grooming"})).await;
    let path = format!("/departments/{}", d["id"].as_str().unwrap());

    let r = api
        .call(
            &p,
            Role::Staff,
            Method::PUT,
            &format!("{path}/online"),
            Some(json!({"online": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["online"], false);
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::PUT,
            &format!("{path}/online"),
            Some(json!({"online": "no"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );

    for (role, method, route, body) in [
        (
            Role::Staff,
            Method::PATCH,
            path.clone(),
            Some(json!({"name": "x"})),
        ),
        (
            Role::Staff,
            Method::POST,
            "/departments".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (Role::Staff, Method::DELETE, path.clone(), None),
        (
            Role::Staff,
            Method::PUT,
            "/practice".to_owned(),
            Some(json!({"name": "x", "timezone": "UTC", "country": "US"})),
        ),
        (
            Role::Staff,
            Method::POST,
            format!("{path}/hours/reset"),
            None,
        ),
        (Role::Client, Method::GET, "/departments".to_owned(), None),
        (Role::Client, Method::GET, "/practice".to_owned(), None),
        (Role::Integration, Method::GET, path.clone(), None),
        (
            Role::Client,
            Method::PUT,
            format!("{path}/online"),
            Some(json!({"online": true})),
        ),
    ] {
        let r = api.call(&p, role, method.clone(), &route, body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{role:?} {method} {route}"
        );
    }
    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(got.body["name"], "Grooming");
    assert_eq!(got.body["online"], false);
}

async fn tokens_are_verified(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let now = chrono::Utc::now().timestamp();
    let expired = local::sign_token(api::SECRET, &p, Role::Admin, "a", now - 7200, 3600);
    let other_secret = local::sign_token("another-secret", &p, Role::Admin, "a", now, 3600);
    let valid = Api::token(&p, Role::Admin);
    let parts: Vec<&str> = valid.split('.').collect();
    // alg "none" with the same claims and no signature.
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let alg_none = format!("{none_header}.{}.", parts[1]);
    for (what, auth) in [
        ("no token", None),
        ("expired", Some(format!("Bearer {expired}"))),
        ("bad signature", Some(format!("Bearer {other_secret}"))),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        ("not bearer", Some(format!("Basic {valid}"))),
        ("garbage", Some("Bearer abc.def".to_owned())),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = api.raw(Method::GET, "/departments", &headers, None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{what}"
        );
    }
    let r = api
        .raw(
            Method::GET,
            "/departments",
            &[("authorization", &format!("Bearer {valid}"))],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn another_practice_is_invisible(api: Api) {
    let a = Api::practice_id();
    let b = Api::practice_id();
    let a_default = api.setup_practice(&a).await;
    api.setup_practice(&b).await;
    let secret = api
        .add_department(
            &a,
            json!({"name": "Secret Vet", "alerts": {"enabled": true, "emails": "vet@a.example"}}),
        )
        .await;
    for id in [secret["id"].as_str().unwrap(), a_default.as_str()] {
        let path = format!("/departments/{id}");
        for (method, route, body) in [
            (Method::GET, path.clone(), None),
            (
                Method::PATCH,
                path.clone(),
                Some(json!({"name": "Mine now"})),
            ),
            (Method::DELETE, path.clone(), None),
            (Method::POST, format!("{path}/hours/reset"), None),
            (
                Method::PUT,
                format!("{path}/online"),
                Some(json!({"online": false})),
            ),
        ] {
            let r = api.admin(&b, method.clone(), &route, body).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{method} {route}"
            );
            assert!(!r.body.to_string().contains("vet@a.example"));
        }
    }
    let list = api.admin(&b, Method::GET, "/departments", None).await;
    assert!(!list
        .body
        .to_string()
        .contains(secret["id"].as_str().unwrap()));
    let got = api
        .admin(
            &a,
            Method::GET,
            &format!("/departments/{}", secret["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got.body, secret, "B's attempts changed nothing");
}

async fn public_availability_is_computed_and_hides_recipients(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        Some(json!({"alerts": {"enabled": true, "emails": "desk@happypaws.example", "sms_numbers": ["+12015550123"]},
                    "chat": {"greeting": "Hi!", "allow_messages_after_hours": false, "after_hours_message": "Closed, sorry."},
                    "date_overrides": [{"start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working"}]})),
    )
    .await;
    let grooming = api
        .add_department(&p, json!({"name": "Grooming", "visible_in_app": true, "online": false,
                                   "alerts": {"enabled": true, "emails": "groom@happypaws.example"}}))
        .await;
    api.add_department(
        &p,
        json!({"name": "Telehealth Vet", "visible_in_app": false}),
    )
    .await;

    // Friday 2026-11-20 19:00 in New York: closed until Monday 09:00.
    let r = api
        .public(&format!(
            "/public/practices/{p}/availability?at=2026-11-20T19:00:00-05:00"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["practice"],
        json!({"name": "Happy Paws", "timezone": "America/New_York"})
    );
    assert_eq!(r.body["at"], "2026-11-20T19:00:00-05:00");
    let deps = r.body["departments"].as_array().unwrap();
    assert_eq!(deps.len(), 2, "the hidden department is not shown");
    let team = &deps[0];
    assert_eq!(team["name"], "Happy Paws Team");
    assert_eq!(team["open"], false);
    assert_eq!(team["reason"], "outside_hours");
    assert_eq!(team["opens_at"], "2026-11-23T09:00:00-05:00");
    assert_eq!(team["closes_at"], Value::Null);
    assert_eq!(team["accepts_messages_now"], false);
    assert_eq!(team["after_hours_message"], "Closed, sorry.");
    assert_eq!(team["greeting"], "Hi!");
    assert_eq!(deps[1]["id"], grooming["id"]);
    assert_eq!(deps[1]["reason"], "offline");
    assert_eq!(deps[1]["open"], false);
    assert_eq!(
        deps[1]["accepts_messages_now"], false,
        "switched offline it takes no new chat, though it allows messages after hours"
    );
    let text = r.body.to_string();
    for secret in [
        "desk@happypaws.example",
        "groom@happypaws.example",
        "+12015550123",
        "alerts",
        "sms_numbers",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the public answer"
        );
    }

    // Monday 10:00: open until 18:00. An unescaped "+" offset is understood too.
    let r = api
        .public(&format!(
            "/public/practices/{p}/availability?at=2026-11-23T15:00:00Z"
        ))
        .await;
    assert_eq!(r.body["departments"][0]["open"], true);
    assert_eq!(r.body["departments"][0]["reason"], "open");
    assert_eq!(
        r.body["departments"][0]["closes_at"],
        "2026-11-23T18:00:00-05:00"
    );
    assert_eq!(r.body["departments"][0]["accepts_messages_now"], true);
    let r = api
        .public(&format!(
            "/public/practices/{p}/availability?at=2026-11-23T16:00:00+01:00"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["at"], "2026-11-23T10:00:00-05:00");

    // Christmas Eve (a Thursday) is a non-working day; it opens again on Monday the 28th.
    let r = api
        .public(&format!(
            "/public/practices/{p}/availability?at=2026-12-24T11:00:00-05:00"
        ))
        .await;
    assert_eq!(r.body["departments"][0]["reason"], "non_working_day");
    assert_eq!(
        r.body["departments"][0]["opens_at"],
        "2026-12-28T09:00:00-05:00"
    );

    let r = api
        .public(&format!("/public/practices/{p}/availability?at=tomorrow"))
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "at")
    );
    let r = api
        .public(&format!(
            "/public/practices/{}/availability",
            Api::practice_id()
        ))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = api
        .public(&format!("/public/practices/{p}/availability"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "without `at` it answers for now");
}

async fn malformed_bodies(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let auth = format!("Bearer {}", Api::token(&p, Role::Admin));
    let h = [("authorization", auth.as_str())];
    for (method, route, body) in [
        (Method::POST, "/departments", Some("{not json".to_owned())),
        (Method::POST, "/departments", Some("[1,2]".to_owned())),
        (Method::POST, "/departments", None),
        (
            Method::POST,
            "/departments",
            Some(json!({"name": "A", "colour": "red"}).to_string()),
        ),
        (
            Method::POST,
            "/departments",
            Some(json!({"name": 7}).to_string()),
        ),
        (
            Method::POST,
            "/departments",
            Some(json!({"name": "A", "online": "yes"}).to_string()),
        ),
        (
            Method::PUT,
            "/practice",
            Some(json!({"name": "A"}).to_string()),
        ),
        (Method::PUT, "/practice", Some("{} trailing".to_owned())),
    ] {
        let r = api.raw(method.clone(), route, &h, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "malformed_request"),
            "{method} {route} {body:?}"
        );
    }
    let list = api.admin(&p, Method::GET, "/departments", None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "nothing stored");
    let r = api.admin(&p, Method::GET, "/nowhere", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
}

async fn practice_must_be_set_up_first(api: Api) {
    let p = Api::practice_id();
    let r = api
        .admin(
            &p,
            Method::POST,
            "/departments",
            Some(json!({"name": "Grooming"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "practice_not_set_up")
    );
    let r = api.admin(&p, Method::GET, "/departments", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "practice_not_set_up")
    );
}

async fn texting_numbers_belong_to_one_practice(api: Api) {
    let a = Api::practice_id();
    let b = Api::practice_id();
    let body = |n: &str| json!({"name": "P", "timezone": "America/New_York", "country": "US", "sms_numbers": [n]});
    assert_eq!(
        api.admin(&a, Method::PUT, "/practice", Some(body("+12015550100")))
            .await
            .status,
        StatusCode::CREATED
    );
    let r = api
        .admin(&b, Method::PUT, "/practice", Some(body("201-555-0100")))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "sms_number_in_use")
    );
    assert!(
        !r.body.to_string().contains(&a),
        "the owner is not revealed"
    );
    // A gives the number up; B can take it.
    assert_eq!(
        api.admin(&a, Method::PUT, "/practice", Some(body("+12015550101")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.admin(&b, Method::PUT, "/practice", Some(body("+12015550100")))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        api.store
            .practice_by_sms_number("+12015550100")
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        b
    );
    assert_eq!(
        api.store
            .practice_by_sms_number("+12015550101")
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        a
    );
}

const WA_ID: &str = "phone-number-id-0123456789abcdef0123456789abcdef";

fn practice_with_whatsapp(whatsapp: Value) -> Value {
    json!({"name": "P", "timezone": "America/New_York", "country": "US",
           "sms_numbers": ["+12015550100"], "whatsapp_numbers": whatsapp})
}

async fn whatsapp_numbers_are_stored_and_read_back_validated(api: Api) {
    let p = Api::practice_id();
    // Without the field: none (the field is optional).
    let r = api
        .admin(
            &p,
            Method::PUT,
            "/practice",
            Some(json!({"name": "P", "timezone": "America/New_York", "country": "US"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["whatsapp_numbers"], json!([]));
    let numbers = json!([{"phone_number_id": WA_ID, "number": "+1 201-555-0100"}]);
    let r = api
        .admin(
            &p,
            Method::PUT,
            "/practice",
            Some(practice_with_whatsapp(numbers)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let stored = json!([{"phone_number_id": WA_ID, "number": "+12015550100"}]);
    assert_eq!(r.body["whatsapp_numbers"], stored, "the number is E.164");
    let r = api
        .call(&p, Role::Staff, Method::GET, "/practice", None)
        .await;
    assert_eq!(r.body["whatsapp_numbers"], stored);

    // Each bad value is 422 on its field, and nothing changes.
    for (bad, code, field) in [
        (
            json!([{"phone_number_id": "", "number": "+12015550101"}]),
            "invalid_value",
            "whatsapp_numbers[0].phone_number_id",
        ),
        (
            json!([{"phone_number_id": "has space", "number": "+12015550101"}]),
            "invalid_value",
            "whatsapp_numbers[0].phone_number_id",
        ),
        (
            json!([{"phone_number_id": "+12015550101", "number": "+12015550101"}]),
            "invalid_value",
            "whatsapp_numbers[0].phone_number_id",
        ),
        (
            json!([{"phone_number_id": WA_ID, "number": "2015550101"}]),
            "invalid_phone",
            "whatsapp_numbers[0].number",
        ),
        (
            json!([{"phone_number_id": WA_ID, "number": "+12015550101"}, {"phone_number_id": WA_ID, "number": "+12015550102"}]),
            "invalid_value",
            "whatsapp_numbers[1].phone_number_id",
        ),
    ] {
        let r = api
            .admin(
                &p,
                Method::PUT,
                "/practice",
                Some(practice_with_whatsapp(bad.clone())),
            )
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, code, field),
            "{bad}: {:?}",
            r.body
        );
    }
    // The wrong shape is a malformed request.
    let r = api
        .admin(
            &p,
            Method::PUT,
            "/practice",
            Some(practice_with_whatsapp(
                json!([{"id": WA_ID, "number": "+12015550101"}]),
            )),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    let r = api
        .call(&p, Role::Staff, Method::GET, "/practice", None)
        .await;
    assert_eq!(r.body["whatsapp_numbers"], stored, "nothing changed");
}

async fn whatsapp_numbers_and_ids_belong_to_one_practice_until_removed(api: Api) {
    let a = Api::practice_id();
    let b = Api::practice_id();
    let whatsapp = |id: &str, number: &str| {
        json!({"name": "P", "timezone": "America/New_York", "country": "US",
               "whatsapp_numbers": [{"phone_number_id": id, "number": number}]})
    };
    let r = api
        .admin(
            &a,
            Method::PUT,
            "/practice",
            Some(whatsapp(WA_ID, "+12015550100")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Another practice may hold neither the id, nor the number (as WhatsApp or as a texting number).
    let taken = [
        (
            whatsapp(WA_ID, "+12015550199"),
            "whatsapp_numbers[0].phone_number_id",
        ),
        (
            whatsapp("phone-number-id-other", "+12015550100"),
            "whatsapp_numbers[0].number",
        ),
        (
            json!({"name": "P", "timezone": "America/New_York", "country": "US", "sms_numbers": ["+12015550100"]}),
            "sms_numbers",
        ),
    ];
    for (body, field) in &taken {
        let r = api
            .admin(&b, Method::PUT, "/practice", Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "sms_number_in_use",
                *field
            ),
            "{body}: {:?}",
            r.body
        );
        assert!(
            !r.body.to_string().contains(&a),
            "the owner is not revealed"
        );
    }
    assert_eq!(
        api.admin(&b, Method::GET, "/practice", None).await.status,
        StatusCode::NOT_FOUND,
        "nothing was created"
    );
    assert_eq!(
        api.store
            .practice_by_whatsapp_id(WA_ID)
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        a
    );
    // A's own number may be its texting number too.
    let r = api
        .admin(
            &a,
            Method::PUT,
            "/practice",
            Some(practice_with_whatsapp(
                json!([{"phone_number_id": WA_ID, "number": "+12015550100"}]),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A removes its WhatsApp number: the id and the number are free for B.
    let r = api
        .admin(
            &a,
            Method::PUT,
            "/practice",
            Some(json!({"name": "P", "timezone": "America/New_York", "country": "US"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        api.store.practice_by_whatsapp_id(WA_ID).await.unwrap(),
        None
    );
    let r = api
        .admin(
            &b,
            Method::PUT,
            "/practice",
            Some(whatsapp(WA_ID, "+12015550100")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        api.store
            .practice_by_whatsapp_id(WA_ID)
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        b
    );
    assert_eq!(
        api.store
            .practice_by_sms_number("+12015550100")
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        b,
        "the number's record is B's"
    );
}

async fn concurrent_patches_with_same_etag(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api.add_department(&p, json!({"name": "Grooming"})).await;
    let path = format!("/departments/{}", d["id"].as_str().unwrap());
    let etag = d["etag"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {}", Api::token(&p, Role::Admin));
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (api, path, etag, auth) = (api.clone(), path.clone(), etag.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"chat": {"greeting": format!("greeting {i}")}}).to_string();
            let r = api
                .raw(
                    Method::PATCH,
                    &path,
                    &[("authorization", &auth), ("if-match", &etag)],
                    Some(body),
                )
                .await;
            (r.status, r.body)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => winners.push(body),
            StatusCode::PRECONDITION_FAILED => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one PATCH with the same If-Match wins"
    );
    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(
        got.body["chat"]["greeting"], winners[0]["chat"]["greeting"],
        "the winner's write is what is stored"
    );
}

/// The availability of one department at `at`.
async fn availability_of(api: &Api, p: &str, id: &Value, at: &str) -> Value {
    api.availability_of(p, id.as_str().unwrap(), Some(at)).await
}

/// (open, reason, opens_at, closes_at) as the widget reads them.
fn shown(d: &Value) -> (bool, String, Value, Value) {
    (
        d["open"].as_bool().unwrap(),
        d["reason"].as_str().unwrap().to_owned(),
        d["opens_at"].clone(),
        d["closes_at"].clone(),
    )
}

fn open_until(closes_at: &str) -> (bool, String, Value, Value) {
    (true, "open".into(), Value::Null, json!(closes_at))
}

fn closed_until(reason: &str, opens_at: &str) -> (bool, String, Value, Value) {
    (false, reason.into(), json!(opens_at), Value::Null)
}

async fn split_shifts_and_overnight_hours(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let nine_to_six = json!({"start": "09:00", "end": "18:00"});
    let split = json!([{"start": "08:00", "end": "12:00"}, {"start": "14:00", "end": "19:00"}]);
    let surgery = api
        .add_department(
            &p,
            json!({"name": "Surgery", "visible_in_app": true,
                   "hours": {"mon": split, "tue": nine_to_six, "wed": nine_to_six, "thu": nine_to_six, "fri": nine_to_six}}),
        )
        .await;
    assert_eq!(
        surgery["hours"]["mon"], split,
        "two windows come back as a list"
    );
    assert_eq!(
        surgery["hours"]["tue"], nine_to_six,
        "one window is an object, as ever"
    );
    let path = format!("/departments/{}", surgery["id"].as_str().unwrap());
    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(got.body, surgery, "stored as given");

    // Monday 2026-11-23 in New York.
    let id = &surgery["id"];
    let at = |t: &str| format!("2026-11-23T{t}:00-05:00");
    assert_eq!(
        shown(&availability_of(&api, &p, id, &at("10:00")).await),
        open_until("2026-11-23T12:00:00-05:00")
    );
    let lunch = availability_of(&api, &p, id, &at("12:30")).await;
    assert_eq!(
        shown(&lunch),
        closed_until("outside_hours", "2026-11-23T14:00:00-05:00")
    );
    assert_eq!(
        lunch["accepts_messages_now"], true,
        "messages after hours are allowed by default"
    );
    assert_eq!(
        shown(&availability_of(&api, &p, id, &at("15:00")).await),
        open_until("2026-11-23T19:00:00-05:00")
    );

    // A list of one window is answered as an object.
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"hours": {"sat": [{"start": "09:00", "end": "13:00"}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["hours"]["sat"],
        json!({"start": "09:00", "end": "13:00"})
    );
    // Merge patch: an object merges into a one-window day; a list replaces the day whole.
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"hours": {"tue": {"end": "17:00"}}})),
        )
        .await;
    assert_eq!(
        r.body["hours"]["tue"],
        json!({"start": "09:00", "end": "17:00"})
    );
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"hours": {"tue": split}})),
        )
        .await;
    assert_eq!(r.body["hours"]["tue"], split);
    // Half a window patched onto a day of several is not a window: refused, nothing changed.
    let before = api.admin(&p, Method::GET, &path, None).await.body;
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"hours": {"mon": {"end": "13:00"}}})),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_hours",
            "hours.mon"
        ),
        "{:?}",
        r.body
    );
    assert_eq!(api.admin(&p, Method::GET, &path, None).await.body, before);

    // The emergency team: 22:00–24:00 every night and 00:00–06:00 every morning, one open stretch.
    let night = json!([{"start": "00:00", "end": "06:00"}, {"start": "22:00", "end": "24:00"}]);
    let every_night = json!({"mon": night, "tue": night, "wed": night, "thu": night, "fri": night, "sat": night, "sun": night});
    let emergency = api
        .add_department(
            &p,
            json!({"name": "Emergency", "visible_in_app": true, "hours": every_night}),
        )
        .await;
    assert_eq!(emergency["hours"], every_night);
    for t in [
        "2026-11-23T23:59:00-05:00",
        "2026-11-24T00:00:00-05:00",
        "2026-11-24T00:01:00-05:00",
    ] {
        assert_eq!(
            shown(&availability_of(&api, &p, &emergency["id"], t).await),
            open_until("2026-11-24T06:00:00-05:00"),
            "{t}"
        );
    }
    // Across the night the clocks go back: still one stretch, to 06:00 of the new offset.
    assert_eq!(
        shown(&availability_of(&api, &p, &emergency["id"], "2026-11-01T01:30:00-05:00").await),
        open_until("2026-11-01T06:00:00-05:00")
    );
    assert_eq!(
        shown(&availability_of(&api, &p, &emergency["id"], "2026-11-24T06:00:00-05:00").await),
        closed_until("outside_hours", "2026-11-24T22:00:00-05:00")
    );

    // A working override with its own windows; a list of one comes back as start/end.
    let overrides = json!([
        {"start_date": "2026-12-24", "end_date": "2026-12-24", "kind": "working",
         "windows": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "15:00"}]},
        {"start_date": "2026-12-31", "end_date": "2026-12-31", "kind": "working",
         "windows": [{"start": "10:00", "end": "14:00"}]}
    ]);
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &path,
            Some(json!({"date_overrides": overrides})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["date_overrides"][0], overrides[0]);
    assert_eq!(
        r.body["date_overrides"][1],
        json!({"start_date": "2026-12-31", "end_date": "2026-12-31", "kind": "working", "start": "10:00", "end": "14:00"})
    );
    assert_eq!(
        api.admin(&p, Method::GET, &path, None).await.body,
        r.body,
        "stored as answered"
    );
    assert_eq!(
        shown(&availability_of(&api, &p, id, "2026-12-24T12:30:00-05:00").await),
        closed_until("outside_hours", "2026-12-24T13:00:00-05:00")
    );
    assert_eq!(
        shown(&availability_of(&api, &p, id, "2026-12-24T13:30:00-05:00").await),
        open_until("2026-12-24T15:00:00-05:00")
    );
}

async fn bad_windows_are_refused_and_nothing_is_stored(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api
        .add_department(&p, json!({"name": "Surgery", "hours": {"mon": [{"start": "08:00", "end": "12:00"}, {"start": "14:00", "end": "19:00"}]}}))
        .await;
    let path = format!("/departments/{}", d["id"].as_str().unwrap());
    let w = |s: &str, e: &str| json!({"start": s, "end": e});
    let cases = [
        (
            "overlapping",
            json!([w("08:00", "12:00"), w("11:00", "19:00")]),
            "hours.mon[1]",
        ),
        (
            "touching",
            json!([w("08:00", "12:00"), w("12:00", "19:00")]),
            "hours.mon[1]",
        ),
        (
            "unsorted",
            json!([w("14:00", "19:00"), w("08:00", "12:00")]),
            "hours.mon[1]",
        ),
        (
            "more than 4",
            json!([
                w("01:00", "02:00"),
                w("03:00", "04:00"),
                w("05:00", "06:00"),
                w("07:00", "08:00"),
                w("09:00", "10:00")
            ]),
            "hours.mon[4]",
        ),
        (
            "start after end",
            json!([w("08:00", "12:00"), w("19:00", "14:00")]),
            "hours.mon[1]",
        ),
        (
            "start equal to end",
            json!([w("08:00", "08:00"), w("14:00", "19:00")]),
            "hours.mon[0]",
        ),
        (
            "one window, start after end",
            json!(w("19:00", "14:00")),
            "hours.mon",
        ),
        ("empty list", json!([]), "hours.mon"),
        (
            "a bad time in a list",
            json!([w("08:00", "12:00"), w("2pm", "19:00")]),
            "hours.mon[1].start",
        ),
    ];
    for (what, mon, field) in cases {
        let body = json!({"hours": {"mon": mon}});
        let r = api
            .admin(&p, Method::PATCH, &path, Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_hours", field),
            "{what}: {:?}",
            r.body
        );
        assert!(!r.body["error"]["message"].as_str().unwrap_or("").is_empty());
        // A new department with the same hours is not created either.
        let r = api
            .admin(
                &p,
                Method::POST,
                "/departments",
                Some(json!({"name": format!("Bad {what}"), "hours": {"mon": mon}})),
            )
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_hours", field),
            "{what}"
        );
    }
    // A working override's windows follow the same rules, under the override's code.
    let day = "2026-12-24";
    let override_cases = [
        (
            json!({"windows": [w("09:00", "12:00"), w("11:00", "15:00")]}),
            "date_overrides[0].windows[1]",
        ),
        (json!({"windows": []}), "date_overrides[0].windows"),
        (
            json!({"start": "09:00", "end": "12:00", "windows": [w("13:00", "15:00"), w("16:00", "17:00")]}),
            "date_overrides[0]",
        ),
    ];
    for (hours, field) in override_cases {
        let mut o = json!({"start_date": day, "end_date": day, "kind": "working"});
        o.as_object_mut()
            .unwrap()
            .extend(hours.as_object().unwrap().clone());
        let r = api
            .admin(
                &p,
                Method::PATCH,
                &path,
                Some(json!({"date_overrides": [o]})),
            )
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_date_override",
                field
            ),
            "{o}: {:?}",
            r.body
        );
    }
    let r = api
        .admin(&p, Method::PATCH, &path, Some(json!({"date_overrides": [{"start_date": day, "end_date": day, "kind": "non_working", "windows": [w("09:00", "12:00"), w("13:00", "15:00")]}]})))
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_date_override",
            "date_overrides[0]"
        )
    );

    let got = api.admin(&p, Method::GET, &path, None).await;
    assert_eq!(got.body, d, "nothing changed");
    let all = api.admin(&p, Method::GET, "/departments", None).await;
    assert_eq!(
        all.body.as_array().unwrap().len(),
        2,
        "no department was created"
    );
}

/// Caching headers of the public availability, through the HTTP router: `Cache-Control` never past the next
/// opening or closing (0 = `no-cache` within the last second), a weak `ETag` of what the answer says (not of
/// the instant it names), 304 without a body on a matching `If-None-Match` (a list, `*`, the strong form),
/// and a new ETag once staff flip the switch.
async fn public_availability_is_cached_until_the_next_change_and_revalidated_with_304(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await; // weekdays 09:00-18:00, New York
    let grooming = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true,
                                   "hours": {"mon": {"start": "09:00", "end": "12:30"}}}),
        )
        .await;
    let url = |at: &str| {
        format!(
            "/public/practices/{p}/availability?at={}",
            at.replace('+', "%2B")
        )
    };
    let get = |at: &str, inm: Option<&str>| {
        let path = url(at);
        let inm = inm.map(str::to_owned);
        let api = &api;
        async move {
            let h: Vec<(&str, &str)> = inm
                .as_deref()
                .map(|v| vec![("if-none-match", v)])
                .unwrap_or_default();
            api.raw(Method::GET, &path, &h, None).await
        }
    };
    let cache = |r: &api::Reply| r.headers["cache-control"].to_str().unwrap().to_owned();

    // Monday 2026-11-23: both open at 09:00. 12 s before: kept 12 s, then revalidated within the last second.
    let r = get("2026-11-23T08:59:48-05:00", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["departments"][0]["open"], false);
    assert_eq!(cache(&r), "public, max-age=12");
    assert_eq!(r.headers["vary"], "Origin");
    assert_eq!(
        cache(&get("2026-11-23T08:59:59.400-05:00", None).await),
        "public, no-cache"
    );
    assert_eq!(
        cache(&get("2026-11-23T08:00:00-05:00", None).await),
        "public, max-age=30"
    );
    // Open: Grooming closes at 12:30, the team at 18:00; the earliest listed change counts.
    assert_eq!(
        cache(&get("2026-11-23T12:29:35-05:00", None).await),
        "public, max-age=25"
    );
    assert_eq!(
        cache(&get("2026-11-23T17:59:51-05:00", None).await),
        "public, max-age=9"
    );
    for (at, change) in [
        ("2026-11-23T08:59:31-05:00", "2026-11-23T09:00:00-05:00"),
        ("2026-11-23T12:29:59-05:00", "2026-11-23T12:30:00-05:00"),
    ] {
        let r = get(at, None).await;
        let max_age: i64 = cache(&r).rsplit('=').next().unwrap().parse().unwrap_or(0);
        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
        let change = chrono::DateTime::parse_from_rfc3339(change).unwrap();
        assert!(
            at + chrono::Duration::seconds(max_age) <= change,
            "{at} + {max_age} s passes {change}"
        );
    }

    // Two instants with the same state: different `at`, the same (weak) ETag; a revalidation is 304, no body.
    let first = get("2026-11-23T10:00:00-05:00", None).await;
    let later = get("2026-11-23T10:05:00-05:00", None).await;
    assert_ne!(first.body["at"], later.body["at"]);
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    assert_eq!(later.headers["etag"], etag.as_str());
    for inm in [
        etag.clone(),
        etag.trim_start_matches("W/").to_owned(),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let r = get("2026-11-23T10:05:00-05:00", Some(&inm)).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert_eq!(r.body, Value::Null, "304 has no body");
        assert_eq!(r.headers["etag"], etag.as_str());
        assert_eq!(cache(&r), "public, max-age=30");
    }
    // Closed at 13:00: another answer, another ETag; the old one is answered in full.
    let closed = get("2026-11-23T13:00:00-05:00", Some(&etag)).await;
    assert_eq!(closed.status, StatusCode::OK);
    assert_ne!(closed.headers["etag"], etag.as_str());

    // Staff switch Grooming offline: the ETag changes at once, so a revalidating widget sees it.
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::PUT,
            &format!("/departments/{}/online", grooming["id"].as_str().unwrap()),
            Some(json!({"online": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = get("2026-11-23T10:05:00-05:00", Some(&etag)).await;
    assert_eq!(r.status, StatusCode::OK, "the switch changed the answer");
    assert_eq!(r.body["departments"][1]["reason"], "offline");
    assert_ne!(r.headers["etag"], etag.as_str());

    // Errors are not cacheable answers: no ETag on a 404.
    let r = get_unknown(&api).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.headers.get("etag").is_none());
}

async fn get_unknown(api: &Api) -> api::Reply {
    let path = format!("/public/practices/{}/availability", Api::practice_id());
    api.raw(Method::GET, &path, &[("if-none-match", "*")], None)
        .await
}
