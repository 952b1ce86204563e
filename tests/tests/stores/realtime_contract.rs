//! The storage contract for live updates (`domain::store::TicketStore`, `ConnectionStore`), on every store:
//! a ticket is taken once, even by 16 takers at once; an expired or unknown one never; the table holds no
//! usable secret; connections are found by practice and deleted one by one. On DynamoDB Local, the items
//! sit where the layout says with their TTL, and the requests stay within budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::identity::{DepartmentId, PracticeId, Role};
use domain::realtime::{self, Connection, ConnectionId, Subscriber, Ticket};
use domain::store::Store;
use vetchat_tests::{fresh_dynamo_store, t0, TestStore};

vetchat_tests::on_every_store!(
    a_ticket_is_taken_once_even_by_many_takers_at_once,
    an_expired_or_unknown_ticket_is_never_taken,
    connect_takes_the_ticket_and_records_the_connection,
    connections_are_found_by_practice_and_deleted_one_by_one,
);

fn subscriber(practice: &str, role: Role, department: Option<&str>) -> Subscriber {
    Subscriber {
        practice_id: PracticeId::from(practice),
        sub: format!("{}-1", role.as_str()),
        role,
        department_id: department.map(DepartmentId::from),
    }
}

fn ticket(practice: &str, expires_at: DateTime<Utc>) -> Ticket {
    Ticket {
        subscriber: subscriber(practice, Role::Staff, Some("dep_grooming")),
        expires_at,
    }
}

fn secret() -> String {
    adapters::new_ticket_secret()
}

fn connection(id: &str, practice: &str, role: Role) -> Connection {
    Connection {
        id: ConnectionId(id.to_owned()),
        subscriber: subscriber(practice, role, None),
        connected_at: t0(),
        expires_at: t0() + Duration::hours(2),
    }
}

async fn a_ticket_is_taken_once_even_by_many_takers_at_once(t: TestStore) {
    let store = t.store();
    let s = secret();
    let sold = ticket("prc_a", t0() + Duration::seconds(60));
    store.put_ticket(&s, &sold).await.expect("put");
    let takers: Vec<_> = (0..16)
        .map(|_| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move { store.take_ticket(&s, t0()).await })
        })
        .collect();
    let mut taken = Vec::new();
    for taker in takers {
        if let Some(t) = taker.await.unwrap().expect("take") {
            taken.push(t);
        }
    }
    assert_eq!(taken, vec![sold], "exactly one taker gets it");
    assert_eq!(
        store.take_ticket(&s, t0()).await,
        Ok(None),
        "and it is gone"
    );
}

async fn an_expired_or_unknown_ticket_is_never_taken(t: TestStore) {
    let store = t.store();
    let s = secret();
    let expires = t0() + Duration::seconds(60);
    store
        .put_ticket(&s, &ticket("prc_a", expires))
        .await
        .expect("put");
    assert_eq!(store.take_ticket(&s, expires).await, Ok(None), "at its end");
    assert_eq!(
        store.take_ticket(&s, expires + Duration::seconds(1)).await,
        Ok(None)
    );
    assert_eq!(
        store.take_ticket(&secret(), t0()).await,
        Ok(None),
        "unknown"
    );
    // Another secret with one character changed opens nothing.
    let mut near = s.clone().into_bytes();
    near[0] = if near[0] == b'A' { b'B' } else { b'A' };
    let near = String::from_utf8(near).unwrap();
    assert_eq!(store.take_ticket(&near, t0()).await, Ok(None));
}

async fn connect_takes_the_ticket_and_records_the_connection(t: TestStore) {
    let store = t.store();
    let s = secret();
    let sold = ticket("prc_a", t0() + Duration::seconds(60));
    store.put_ticket(&s, &sold).await.expect("put");
    let id = ConnectionId("conn-1".into());
    let c = realtime::connect(&*store, Some(&s), id.clone(), t0())
        .await
        .expect("connect")
        .expect("accepted");
    assert_eq!(c.subscriber, sold.subscriber, "bound to the buyer");
    assert_eq!(c.expires_at, t0() + Duration::hours(2));
    assert_eq!(
        store.practice_connections(&PracticeId::from("prc_a")).await,
        Ok(vec![c])
    );
    let again = realtime::connect(&*store, Some(&s), ConnectionId("conn-2".into()), t0()).await;
    assert!(
        matches!(again, Ok(None)),
        "a used ticket opens nothing: {again:?}"
    );
    for bad in [
        None,
        Some(""),
        Some("short"),
        Some("../../etc/passwd-and-more-characters-than-43!!"),
    ] {
        let r = realtime::connect(&*store, bad, ConnectionId("conn-3".into()), t0()).await;
        assert!(matches!(r, Ok(None)), "{bad:?}: {r:?}");
    }
    assert_eq!(
        store
            .practice_connections(&PracticeId::from("prc_a"))
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn connections_are_found_by_practice_and_deleted_one_by_one(t: TestStore) {
    let store = t.store();
    for (id, practice, role) in [
        ("c1", "prc_a", Role::Client),
        ("c2", "prc_a", Role::Staff),
        ("c3", "prc_b", Role::Admin),
    ] {
        store
            .put_connection(&connection(id, practice, role))
            .await
            .expect("put");
    }
    let ids = |v: Vec<Connection>| v.into_iter().map(|c| c.id.0).collect::<Vec<_>>();
    let a = PracticeId::from("prc_a");
    assert_eq!(
        ids(store.practice_connections(&a).await.unwrap()),
        ["c1", "c2"]
    );
    store
        .delete_connection(&ConnectionId("c1".into()))
        .await
        .expect("delete");
    store
        .delete_connection(&ConnectionId("c1".into()))
        .await
        .expect("deleting twice is fine");
    assert_eq!(ids(store.practice_connections(&a).await.unwrap()), ["c2"]);
    assert_eq!(
        ids(store
            .practice_connections(&PracticeId::from("prc_b"))
            .await
            .unwrap()),
        ["c3"]
    );
    assert_eq!(
        store.practice_connections(&PracticeId::from("prc_c")).await,
        Ok(vec![])
    );
}

#[tokio::test]
async fn dynamo_tickets_and_connections_are_where_the_layout_says_within_budget() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let store: Arc<dyn Store> = dynamo.clone();
    let s = secret();
    let expires = t0() + Duration::seconds(60);
    let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };

    dynamo.request_counter().reset();
    store
        .put_ticket(&s, &ticket("prc_a", expires))
        .await
        .expect("put");
    assert_eq!(
        dynamo.request_counts(),
        counts(&[("PutItem", 1)]),
        "put_ticket"
    );
    // Kept under the hash of the secret, never the secret; the TTL in epoch seconds.
    let scan = vetchat_tests::dynamo_client()
        .await
        .scan()
        .table_name(dynamo.table_name())
        .send()
        .await
        .expect("scan");
    let items = scan.items.unwrap_or_default();
    assert_eq!(items.len(), 1);
    let text = format!("{:?}", items[0]);
    assert!(!text.contains(&s), "the secret is not stored: {text}");
    let pk = items[0]["PK"].as_s().unwrap();
    assert!(
        pk.starts_with("TICKET#") && pk.len() == "TICKET#".len() + 64,
        "{pk}"
    );
    assert_eq!(
        items[0]["expires_at"].as_n().unwrap(),
        &expires.timestamp().to_string()
    );

    dynamo.request_counter().reset();
    assert!(store.take_ticket(&s, t0()).await.unwrap().is_some());
    assert_eq!(
        dynamo.request_counts(),
        counts(&[("DeleteItem", 1)]),
        "take_ticket"
    );

    let c = connection("conn-9", "prc_a", Role::Client);
    dynamo.request_counter().reset();
    store.put_connection(&c).await.expect("put");
    assert_eq!(
        dynamo.request_counts(),
        counts(&[("PutItem", 1)]),
        "put_connection"
    );
    let item = vetchat_tests::dynamo_raw_item(&dynamo, "CONN#conn-9", "CONN")
        .await
        .expect("connection item");
    assert_eq!(item["GSI2PK"].as_s().unwrap(), "CONNS#prc_a");
    assert_eq!(
        item["expires_at"].as_n().unwrap(),
        &c.expires_at.timestamp().to_string()
    );
    dynamo.request_counter().reset();
    assert_eq!(
        store.practice_connections(&PracticeId::from("prc_a")).await,
        Ok(vec![c])
    );
    assert_eq!(
        dynamo.request_counts(),
        counts(&[("Query", 1)]),
        "practice_connections"
    );
}
