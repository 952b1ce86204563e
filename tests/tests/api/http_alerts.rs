//! Transfers and alerts over HTTP (docs/api.md: transfer, Alerts, `GET /_local/sent`), on both stores. The
//! dispatcher is run by hand (`deliver_alerts`), as the local server's worker does every half second.

use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{self, Api};

vetchat_tests::on_every_store!(
    a_new_conversation_alerts_its_department_once,
    a_transfer_moves_the_conversation_and_alerts_the_target,
    transfers_that_make_no_sense_are_refused,
    alerts_off_send_nothing_and_texts_only_in_north_america,
);

async fn sent(api: &Api) -> Vec<Value> {
    let r = api.raw(Method::GET, "/_local/sent", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body.as_array().unwrap().clone()
}

fn alerts_on(emails: &str, sms: &[&str]) -> Value {
    json!({"enabled": true, "emails": emails, "sms_numbers": sms})
}

async fn a_new_conversation_alerts_its_department_once(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        Some(json!({"alerts": alerts_on("desk@happypaws.example, vet@happypaws.example", &["+12015550123"])})),
    )
    .await;
    let r = api
        .call(&p, Role::Integration, Method::POST, "/inbound", Some(json!({"channel": "sms", "from": "+12015550111", "body": "Rex ate a sock, what should I do?"})))
        .await;
    let conversation_id = r.body["conversation_id"].as_str().unwrap().to_owned();
    // A second message joins: no second alert.
    api.call(
        &p,
        Role::Integration,
        Method::POST,
        "/inbound",
        Some(json!({"channel": "sms", "from": "+12015550111", "body": "Hello?"})),
    )
    .await;
    assert!(
        sent(&api).await.is_empty(),
        "nothing is sent before the dispatcher runs"
    );
    api.deliver_alerts().await;
    api.deliver_alerts().await; // a replayed run sends nothing again

    let sent = sent(&api).await;
    assert_eq!(sent.len(), 3, "{sent:#?}");
    let to: Vec<&str> = sent.iter().map(|s| s["to"].as_str().unwrap()).collect();
    assert_eq!(
        to,
        [
            "desk@happypaws.example",
            "vet@happypaws.example",
            "+12015550123"
        ]
    );
    for s in &sent {
        assert_eq!(s["kind"], "new_conversation");
        assert_eq!(s["department_id"], default_id.as_str());
        assert_eq!(s["conversation_ids"], json!([conversation_id]));
        assert!(s["at"].is_string());
    }
    let email = &sent[0];
    assert_eq!(email["channel"], "email");
    assert_eq!(email["subject"], "New conversation in Happy Paws Team");
    let body = email["body"].as_str().unwrap();
    assert!(body.contains("+12015550111"), "{body}");
    assert!(body.contains("sms"), "{body}");
    assert!(body.contains("Rex ate a sock, what should I do?"), "{body}");
    assert!(
        body.contains(&format!(
            "{}/conversations/{conversation_id}",
            api::DASHBOARD
        )),
        "{body}"
    );
    let text = &sent[2];
    assert_eq!(text["channel"], "sms");
    assert!(
        text["body"].as_str().unwrap().chars().count() <= 160,
        "one SMS segment"
    );
    assert!(text["body"].as_str().unwrap().contains(&conversation_id));
}

async fn a_transfer_moves_the_conversation_and_alerts_the_target(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    let vet = api
        .add_department(
            &p,
            json!({"name": "Telehealth Vet", "alerts": alerts_on("dr.lee@happypaws.example", &[])}),
        )
        .await;
    let vid = vet["id"].as_str().unwrap();
    let r = api
        .call(&p, Role::Integration, Method::POST, "/inbound", Some(json!({"channel": "sms", "from": "+12015550111", "body": "I'd like a video consult"})))
        .await;
    let id = r.body["conversation_id"].as_str().unwrap().to_owned();

    let t = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/transfer"),
            Some(json!({"department_id": vid, "note": "Paid for a 15-minute consult"})),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["department_id"], vid);
    assert_eq!(t.body["status"], "open");

    let d = api
        .call(
            &p,
            Role::Staff,
            Method::GET,
            &format!("/conversations/{id}"),
            None,
        )
        .await
        .body;
    assert_eq!(d["department_id"], vid);
    let transfers = d["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0]["from"], default_id.as_str());
    assert_eq!(transfers[0]["to"], vid);
    assert_eq!(transfers[0]["by"], "staff-1");
    assert_eq!(transfers[0]["note"], "Paid for a 15-minute consult");
    assert!(transfers[0]["at"].is_string());
    let count = |id: String| {
        let api = &api;
        let p = &p;
        async move {
            api.admin(p, Method::GET, &format!("/departments/{id}"), None)
                .await
                .body["open_conversations"]
                .clone()
        }
    };
    assert_eq!(count(default_id.clone()).await, 0);
    assert_eq!(count(vid.to_owned()).await, 1);

    // The client's next text joins the conversation where it now is.
    let next = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": "+12015550111", "body": "Ready"})),
        )
        .await;
    assert_eq!(next.body["conversation_id"], id.as_str());
    assert_eq!(next.body["department_id"], vid);

    api.deliver_alerts().await;
    let sent = sent(&api).await;
    let to_vet: Vec<&Value> = sent
        .iter()
        .filter(|s| s["to"] == "dr.lee@happypaws.example")
        .collect();
    assert_eq!(to_vet.len(), 1, "{sent:#?}");
    let alert = to_vet[0];
    assert_eq!(alert["kind"], "transfer");
    assert_eq!(
        alert["subject"],
        "Conversation transferred to Telehealth Vet"
    );
    let body = alert["body"].as_str().unwrap();
    for expected in [
        "staff-1",
        "Paid for a 15-minute consult",
        "I'd like a video consult",
        "+12015550111",
        &id,
    ] {
        assert!(body.contains(expected), "{expected:?} missing in {body}");
    }
}

async fn transfers_that_make_no_sense_are_refused(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    let grooming = api.add_department(&p, json!({"name": "Grooming"})).await;
    let gid = grooming["id"].as_str().unwrap();
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": "+12015550111", "body": "Hi"})),
        )
        .await;
    let id = r.body["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/conversations/{id}/transfer");

    let same = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &path,
            Some(json!({"department_id": default_id})),
        )
        .await;
    assert_eq!(
        (same.status, same.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "same_department")
    );
    let nowhere = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &path,
            Some(json!({"department_id": "dep_nowhere"})),
        )
        .await;
    assert_eq!(
        (nowhere.status, nowhere.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let client = api
        .call(
            &p,
            Role::Client,
            Method::POST,
            &path,
            Some(json!({"department_id": gid})),
        )
        .await;
    assert_eq!(client.status, StatusCode::FORBIDDEN);
    let bad = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &path,
            Some(json!({"to": gid})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    // Another practice's staff cannot move it, even into their own department.
    let other = Api::practice_id();
    let other_default = api.setup_practice(&other).await;
    let foreign = api
        .call(
            &other,
            Role::Staff,
            Method::POST,
            &path,
            Some(json!({"department_id": other_default})),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    api.call(
        &p,
        Role::Staff,
        Method::POST,
        &format!("/conversations/{id}/end"),
        None,
    )
    .await;
    let ended = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &path,
            Some(json!({"department_id": gid})),
        )
        .await;
    assert_eq!(
        (ended.status, ended.code()),
        (StatusCode::CONFLICT, "conversation_resolved")
    );

    let d = api
        .call(
            &p,
            Role::Staff,
            Method::GET,
            &format!("/conversations/{id}"),
            None,
        )
        .await
        .body;
    assert_eq!(d["department_id"], default_id.as_str(), "nothing moved");
    assert_eq!(d["transfers"], json!([]));
}

async fn alerts_off_send_nothing_and_texts_only_in_north_america(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    // Alerts configured but switched off.
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        Some(json!({"alerts": {"enabled": false, "emails": "desk@happypaws.example", "sms_numbers": ["+12015550123"]}})),
    )
    .await;
    api.call(
        &p,
        Role::Integration,
        Method::POST,
        "/inbound",
        Some(json!({"channel": "sms", "from": "+12015550111", "body": "Hi"})),
    )
    .await;
    api.deliver_alerts().await;
    assert!(sent(&api).await.is_empty());

    // A practice in the UK gets its emails; SMS alerts do not exist there.
    let uk = Api::practice_id();
    let r = api
        .admin(
            &uk,
            Method::PUT,
            "/practice",
            Some(json!({"name": "London Paws", "timezone": "Europe/London", "country": "GB"})),
        )
        .await;
    let uk_default = r.body["default_department_id"].as_str().unwrap().to_owned();
    api.admin(
        &uk,
        Method::PATCH,
        &format!("/departments/{uk_default}"),
        Some(json!({"alerts": alerts_on("desk@londonpaws.example", &[])})),
    )
    .await;
    api.call(
        &uk,
        Role::Integration,
        Method::POST,
        "/inbound",
        Some(json!({"channel": "whatsapp", "from": "+447911123456", "body": "Hello"})),
    )
    .await;
    api.deliver_alerts().await;
    let sent = sent(&api).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["to"], "desk@londonpaws.example");
    assert_eq!(sent[0]["channel"], "email");
}
