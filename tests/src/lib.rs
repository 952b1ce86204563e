//! Test support shared by the black-box suites: the two stores (DynamoDB Local on a fresh table, or the
//! embedded one) and sample records.

pub mod runtime_api;

use std::sync::Arc;

use adapters::store::{DynamoStore, IndexSpec, KeyAttribute, MemoryStore, TableSpec};
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::{AttributeValue, KeySchemaElement, KeyType};
use chrono::{DateTime, TimeZone, Utc};
use domain::alert::PendingAlert;
use domain::department::{Department, DepartmentSettings};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::Store;

/// A client for DynamoDB Local, configured the standard way (`AWS_ENDPOINT_URL_DYNAMODB`, credentials and
/// region from the environment). Panics when no endpoint is set: these tests never skip.
pub async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none_or(|v| v.is_empty()) {
        panic!(
            "DynamoDB Local is not running: run `scripts/test` (starts it and runs every test) or \
             `scripts/test --services-only` and export what it prints"
        );
    }
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

/// A name no other test uses, so suites run in parallel on one DynamoDB Local.
pub fn unique_table_name() -> String {
    format!("t_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A DynamoDB store on a table of its own, created with `ensure_table`.
pub async fn fresh_dynamo_store() -> DynamoStore {
    let client = dynamo_client().await;
    let table = unique_table_name();
    adapters::store::ensure_table(&client, &table)
        .await
        .expect("create the test table");
    DynamoStore::new(client, table)
}

pub fn memory_store() -> MemoryStore {
    MemoryStore::new()
}

pub async fn dynamo_dyn_store() -> Arc<dyn Store> {
    Arc::new(fresh_dynamo_store().await)
}

pub fn memory_dyn_store() -> Arc<dyn Store> {
    Arc::new(memory_store())
}

/// What `DescribeTable` and `DescribeTimeToLive` report about a table, in [`TableSpec`] form.
pub async fn describe_table_spec(client: &aws_sdk_dynamodb::Client, table: &str) -> TableSpec {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable");
    let t = described.table().expect("a table description");
    let attribute_type = |name: &str| {
        t.attribute_definitions()
            .iter()
            .find(|d| d.attribute_name() == name)
            .map(|d| d.attribute_type().as_str().to_owned())
            .unwrap_or_else(|| panic!("no attribute definition for key {name}"))
    };
    let key = |schema: &[KeySchemaElement], kind: KeyType| {
        let name = schema
            .iter()
            .find(|k| k.key_type() == &kind)
            .map(|k| k.attribute_name().to_owned())
            .unwrap_or_else(|| panic!("no {kind:?} key"));
        KeyAttribute {
            attribute_type: attribute_type(&name),
            name,
        }
    };
    let mut indexes: Vec<IndexSpec> = t
        .global_secondary_indexes()
        .iter()
        .map(|i| IndexSpec {
            name: i.index_name().unwrap_or_default().to_owned(),
            hash_key: key(i.key_schema(), KeyType::Hash),
            range_key: key(i.key_schema(), KeyType::Range),
            projection: i
                .projection()
                .and_then(|p| p.projection_type())
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
        })
        .collect();
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTimeToLive");
    let ttl = ttl.time_to_live_description().expect("a TTL description");
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED"),
        "TTL is on"
    );
    TableSpec {
        hash_key: key(t.key_schema(), KeyType::Hash),
        range_key: key(t.key_schema(), KeyType::Range),
        indexes,
        billing_mode: t
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_owned())
            .unwrap_or_else(|| "PROVISIONED".to_owned()),
        stream_view_type: t
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        ttl_attribute: ttl.attribute_name().unwrap_or_default().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Sample records
// ---------------------------------------------------------------------------------------------------------

/// A fixed instant, so records compare equal after a round trip.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 30, 0)
        .single()
        .expect("a valid instant")
}

pub fn new_practice_id() -> PracticeId {
    PracticeId(adapters::new_id("prc"))
}

pub fn new_department_id() -> DepartmentId {
    DepartmentId(adapters::new_id("dep"))
}

/// A practice in New York with no texting numbers, version 1; its default department id is fresh.
pub fn sample_practice() -> Practice {
    Practice {
        id: new_practice_id(),
        name: "Riverside Vets".to_owned(),
        timezone: chrono_tz::America::New_York,
        country: "US".to_owned(),
        sms_numbers: Vec::new(),
        default_department_id: new_department_id(),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

/// The same practice with texting numbers.
pub fn with_numbers(mut practice: Practice, numbers: &[&str]) -> Practice {
    practice.sms_numbers = numbers.iter().map(|n| (*n).to_owned()).collect();
    practice
}

/// The practice's default department ("<name> Team"), as a new practice gets it.
pub fn default_department(practice: &Practice) -> Department {
    let mut settings =
        DepartmentSettings::defaults(Practice::default_department_name(&practice.name));
    settings.visible_in_app = true;
    Department {
        id: practice.default_department_id.clone(),
        practice_id: practice.id.clone(),
        is_default: true,
        settings,
        open_conversations: 0,
        version: 1,
        next_reminder_at: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A new, non-default department of the practice with default settings.
pub fn sample_department(practice_id: &PracticeId, name: &str) -> Department {
    Department {
        id: new_department_id(),
        practice_id: practice_id.clone(),
        is_default: false,
        settings: DepartmentSettings::defaults(name.to_owned()),
        open_conversations: 0,
        version: 1,
        next_reminder_at: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// The next version of a department, as a settings write makes it.
pub fn next_version(
    department: &Department,
    change: impl FnOnce(&mut DepartmentSettings),
) -> Department {
    let mut next = department.clone();
    change(&mut next.settings);
    next.version = department.version + 1;
    next.updated_at = department.updated_at + chrono::Duration::minutes(1);
    next
}

// ---------------------------------------------------------------------------------------------------------
// Both stores, with what only tests read back (pending alerts)
// ---------------------------------------------------------------------------------------------------------

/// A store under test, with its concrete type kept for the checks the port has no method for.
#[derive(Clone)]
pub enum TestStore {
    Memory(Arc<MemoryStore>),
    Dynamo(Arc<DynamoStore>),
}

impl TestStore {
    pub fn memory() -> TestStore {
        TestStore::Memory(Arc::new(memory_store()))
    }

    /// On a fresh DynamoDB Local table.
    pub async fn dynamo() -> TestStore {
        TestStore::Dynamo(Arc::new(fresh_dynamo_store().await))
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            TestStore::Memory(s) => s.clone(),
            TestStore::Dynamo(s) => s.clone(),
        }
    }

    /// Every pending alert (transactional outbox record) the store holds, in no particular order.
    pub async fn pending_alerts(&self) -> Vec<PendingAlert> {
        match self {
            TestStore::Memory(s) => s.pending_alerts(),
            TestStore::Dynamo(s) => dynamo_pending_alerts(s).await,
        }
    }

    /// Every alert (transactional outbox record) the store holds, whatever its status, in no particular
    /// order. (The embedded store's `pending_alerts` keeps completed ones too; this agrees on both stores.)
    pub async fn all_alerts(&self) -> Vec<PendingAlert> {
        match self {
            TestStore::Memory(s) => s.pending_alerts(),
            TestStore::Dynamo(s) => dynamo_all_alerts(s).await,
        }
    }
}

/// The pending alerts on a DynamoDB store's (test) table: a Scan for `ALERT#` items, fine on a table of
/// one test's own.
pub async fn dynamo_pending_alerts(store: &DynamoStore) -> Vec<PendingAlert> {
    let client = dynamo_client().await;
    let mut alerts = Vec::new();
    let mut start_key = None;
    loop {
        let out = client
            .scan()
            .table_name(store.table_name())
            .filter_expression("begins_with(PK, :alert) AND #status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":alert", AttributeValue::S("ALERT#".into()))
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .consistent_read(true)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .expect("Scan for alerts");
        for item in out.items() {
            let json = serde_json::Value::Object(
                item.iter()
                    .map(|(k, v)| (k.clone(), attribute_json(v)))
                    .collect(),
            );
            alerts.push(serde_json::from_value(json).expect("a pending alert item"));
        }
        start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start_key.is_none() {
            return alerts;
        }
    }
}

/// A DynamoDB attribute as the JSON serde would have written it (strings, numbers, booleans, null, maps,
/// lists), so a raw item can be read back into a domain type without the adapter's decoder.
pub fn attribute_json(value: &AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => {
            serde_json::from_str(n).unwrap_or_else(|_| Value::String(n.clone()))
        }
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect(),
        ),
        AttributeValue::L(l) => Value::Array(l.iter().map(attribute_json).collect()),
        AttributeValue::Ss(ss) => Value::Array(ss.iter().cloned().map(Value::String).collect()),
        other => panic!("no JSON for attribute {other:?}"),
    }
}

/// One raw item of a DynamoDB store's table (a consistent GetItem), `None` when it is not there: for the
/// checks of the item layout that the port has no method for.
pub async fn dynamo_raw_item(
    store: &DynamoStore,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    dynamo_client()
        .await
        .get_item()
        .table_name(store.table_name())
        .key("PK", AttributeValue::S(pk.to_owned()))
        .key("SK", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
}

/// Every alert on a DynamoDB store's (test) table, whatever its status: a Scan for `ALERT#` items.
pub async fn dynamo_all_alerts(store: &DynamoStore) -> Vec<PendingAlert> {
    let client = dynamo_client().await;
    let mut alerts = Vec::new();
    let mut start_key = None;
    loop {
        let out = client
            .scan()
            .table_name(store.table_name())
            .filter_expression("begins_with(PK, :alert)")
            .expression_attribute_values(":alert", AttributeValue::S("ALERT#".into()))
            .consistent_read(true)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .expect("Scan for alerts");
        for item in out.items() {
            let json = serde_json::Value::Object(
                item.iter()
                    .map(|(k, v)| (k.clone(), attribute_json(v)))
                    .collect(),
            );
            alerts.push(serde_json::from_value(json).expect("an alert item"));
        }
        start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start_key.is_none() {
            return alerts;
        }
    }
}
