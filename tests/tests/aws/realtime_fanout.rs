//! The fanout as the stream drives it, against DynamoDB Local and the fake `@connections` endpoint
//! (`vetchat_tests::fake_connections`): stream records made from the very items a reply wrote, the
//! practice's connections read in one Query, one post per connection concerned, each in that caller's view;
//! the gone connection (410) deleted and only it; a connection that fails (500) or stalls is logged and
//! left, the batch still done, nothing reported failed.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapters::realtime::ApiGatewayPoster;
use adapters::store::DynamoStore;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use chrono::{Duration, Utc};
use domain::conversation::{self, Channel, Inbound};
use domain::identity::{Caller, DepartmentId, PracticeId, Role};
use domain::realtime::{Connection, ConnectionId, FanoutReport, Subscriber};
use domain::store::Store;
use serde_json::{json, Value};
use vetchat_tests::fake_connections::{Behaviour, FakeConnections};

const OWNER: &str = "owner-ada";

fn subscriber(
    practice: &PracticeId,
    sub: &str,
    role: Role,
    department: Option<&DepartmentId>,
) -> Subscriber {
    Subscriber {
        practice_id: practice.clone(),
        sub: sub.to_owned(),
        role,
        department_id: department.cloned(),
    }
}

/// The stream's INSERT record of the item at (`pk`, `sk`), as DynamoDB Streams would carry it.
async fn insert_record(store: &DynamoStore, pk: &str, sk: &str) -> EventRecord {
    let item = vetchat_tests::dynamo_raw_item(store, pk, sk)
        .await
        .expect("the item");
    let image = serde_dynamo::Item::from(item);
    let mut record = EventRecord::default();
    record.event_name = "INSERT".to_owned();
    record.change.keys = serde_dynamo::Item::from(
        image
            .iter()
            .filter(|(k, _)| *k == "PK" || *k == "SK")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    record.change.new_image = image;
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_posted_to_each_connection_concerned_once_and_gone_ones_are_deleted() {
    let dynamo = Arc::new(vetchat_tests::fresh_dynamo_store().await);
    let store: Arc<dyn Store> = dynamo.clone();
    let api = vetchat_tests::api::Api::with_store(store.clone());
    let p = vetchat_tests::api::Api::practice_id();
    let practice = PracticeId(p.clone());
    api.setup_open_practice(&p).await;
    let other_department = api.add_department(&p, json!({"name": "Surgery"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The owner writes, staff answer: the reply's message item is what the stream would carry.
    let routed = conversation::route_inbound(
        &*store,
        Inbound {
            to: None,
            practice_id: practice.clone(),
            channel: Channel::App,
            client_id: OWNER.to_owned(),
            department_id: None,
            body: "Is Rex ready?".to_owned(),
            dedup_key: None,
            rate_limits: None,
        },
        Utc::now(),
        &adapters::UlidIds,
    )
    .await
    .expect("routed");
    let staff = Caller {
        sub: "staff-jane".into(),
        practice_id: practice.clone(),
        role: Role::Staff,
    };
    let reply = conversation::staff_reply(
        &*store,
        &staff,
        routed.conversation_id.as_ref().unwrap(),
        "Ready at 5",
        Utc::now(),
        &adapters::UlidIds,
    )
    .await
    .expect("reply");
    let pk = format!("CONV#{p}#{}", routed.conversation_id.as_ref().unwrap());
    let batch = {
        let mut batch = Event::default();
        batch.records = vec![insert_record(&dynamo, &pk, &format!("MSG#{:020}", reply.seq)).await];
        batch
    };

    let fake = FakeConnections::start().await;
    let surgery = DepartmentId(other_department);
    let connections = [
        (
            "conn-owner",
            subscriber(&practice, OWNER, Role::Client, None),
            Some(Behaviour::Alive),
        ),
        (
            "conn-other-owner",
            subscriber(&practice, "owner-bob", Role::Client, None),
            Some(Behaviour::Alive),
        ),
        (
            "conn-desk",
            subscriber(&practice, "staff-desk", Role::Staff, None),
            Some(Behaviour::Alive),
        ),
        (
            "conn-surgery",
            subscriber(&practice, "staff-vet", Role::Staff, Some(&surgery)),
            Some(Behaviour::Alive),
        ),
        (
            "conn-failing",
            subscriber(&practice, "staff-a", Role::Admin, None),
            Some(Behaviour::Fail),
        ),
        (
            "conn-stalled",
            subscriber(&practice, "staff-b", Role::Staff, None),
            Some(Behaviour::Stall),
        ),
        (
            "conn-gone",
            subscriber(&practice, "staff-c", Role::Staff, None),
            None,
        ),
    ];
    for (id, subscriber, behaviour) in &connections {
        if let Some(b) = behaviour {
            fake.set(id, *b);
        }
        store
            .put_connection(&Connection {
                id: ConnectionId((*id).to_owned()),
                subscriber: subscriber.clone(),
                connected_at: Utc::now(),
                expires_at: Utc::now() + Duration::hours(2),
            })
            .await
            .expect("put a connection");
    }

    let config = adapters::config::Config::from_env().expect("configuration");
    let sdk = adapters::aws::sdk_config(&config)
        .await
        .expect("SDK configuration");
    let poster = ApiGatewayPoster::new(&sdk, Some(&fake.url));
    dynamo.request_counter().reset();
    let report = realtime::fanout_stream_batch(&*store, &poster, &batch, Utc::now()).await;
    assert_eq!(
        report,
        FanoutReport { posted: 2, gone: 1, failed: 2, lookups_failed: 0 },
        "the owner and the desk got it; the gone one deleted; the failing and the stalled ones logged"
    );
    let requests: BTreeMap<String, u64> = dynamo.request_counts();
    assert_eq!(
        requests,
        [("Query".to_owned(), 1), ("DeleteItem".to_owned(), 1)].into(),
        "one query of the practice's connections, one delete of the gone one"
    );

    let posts = fake.posts();
    let frames = |id: &str| -> Vec<Value> {
        posts
            .iter()
            .filter(|(c, _)| c == id)
            .map(|(_, f)| serde_json::from_str(f).unwrap())
            .collect()
    };
    let owner = frames("conn-owner");
    assert_eq!(owner.len(), 1, "one post: {owner:?}");
    assert_eq!(
        owner[0],
        json!({"type": "message.created", "conversation_id": routed.conversation_id, "seq": reply.seq,
               "message": {"id": reply.id, "seq": reply.seq, "at": reply.at,
                           "author": {"kind": "staff", "department_name": "Happy Paws Team"},
                           "body": "Ready at 5"}}),
        "the client's view, no staff id"
    );
    let desk = frames("conn-desk");
    assert_eq!(desk.len(), 1);
    assert_eq!(
        desk[0]["message"]["author"],
        json!({"kind": "staff", "id": "staff-jane"})
    );
    for nobody in ["conn-other-owner", "conn-surgery"] {
        assert!(frames(nobody).is_empty(), "{nobody} is not concerned");
    }
    assert_eq!(frames("conn-gone").len(), 1);
    assert!(fake.unsigned() == 0, "signed with SigV4");

    let left: Vec<String> = store
        .practice_connections(&practice)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.0)
        .collect();
    assert_eq!(
        left,
        [
            "conn-desk",
            "conn-failing",
            "conn-other-owner",
            "conn-owner",
            "conn-stalled",
            "conn-surgery"
        ],
        "exactly the gone connection deleted (a failure or a stall is no proof it is gone)"
    );
}
