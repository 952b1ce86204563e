//! Test support shared by the black-box suites: the two stores (DynamoDB Local on a fresh table, or the
//! embedded one) and sample records.

use std::sync::Arc;

use adapters::store::{DynamoStore, IndexSpec, KeyAttribute, MemoryStore, TableSpec};
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType};
use chrono::{DateTime, TimeZone, Utc};
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
