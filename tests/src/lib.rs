//! Test support shared by the black-box suites: every store (DynamoDB Local on a fresh table, or the
//! embedded one) and [`on_every_store!`], which runs a test on each; sample records; request logs.

pub mod api;
pub mod fake_connections;
pub mod fake_texting;
pub mod fault_proxy;
pub mod live;
pub mod local_server;
pub mod openapi_check;
pub mod runtime_api;

use std::sync::Arc;

use adapters::store::{DynamoStore, EmbeddedStore, IndexSpec, KeyAttribute, TableSpec};
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::{AttributeValue, KeySchemaElement, KeyType};
use chrono::{DateTime, TimeZone, Utc};
use domain::alert::{AlertRecord, AlertStatus, PendingAlert};
use domain::department::{Department, DepartmentSettings};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::{ReminderClaim, ReminderStore, SettingsLookup, Store, StoreError, StoreResult};

/// DynamoDB Local's URL (`AWS_ENDPOINT_URL_DYNAMODB`). Panics, saying how to start it, when it is not set:
/// these tests never skip.
/// Serves `app` on a loopback port of its own for the rest of the test: the fakes of AWS endpoints
/// (`fake_connections`, `fake_texting`). Returns its base URL.
pub async fn serve_on_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

pub fn dynamo_endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "DynamoDB Local is not running: run `scripts/test` (starts it and runs every test) or \
             `scripts/test --services-only` and export what it prints"
        ),
    }
}

/// A client for DynamoDB Local, configured the standard way (`AWS_ENDPOINT_URL_DYNAMODB`, credentials and
/// region from the environment). Panics when no endpoint is set: these tests never skip.
pub async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    dynamo_endpoint();
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

/// A DynamoDB store on a table of its own, reached at `endpoint` (e.g. a [`fault_proxy::FaultProxy`]) with
/// the service's own SDK settings (`adapters::aws::sdk_config`: its retries and timeouts). The table is
/// created directly on DynamoDB Local, past any proxy.
pub async fn dynamo_store_at(endpoint: &str) -> DynamoStore {
    let table = unique_table_name();
    adapters::store::ensure_table(&dynamo_client().await, &table)
        .await
        .expect("create the test table");
    let config = adapters::config::Config::from_env().expect("configuration");
    let sdk = adapters::aws::sdk_config(&config)
        .await
        .expect("SDK configuration");
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), table)
}

/// The embedded store in memory.
pub fn memory_store() -> EmbeddedStore {
    EmbeddedStore::in_memory()
}

/// The embedded store on a file in a temporary directory of its own, removed when the last clone of the
/// returned handle goes.
pub fn file_store() -> (EmbeddedStore, Arc<tempfile::TempDir>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("open the embedded store on a file");
    (store, Arc::new(dir))
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
        whatsapp_numbers: Vec::new(),
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
// Every store, with what only tests read back (pending alerts)
// ---------------------------------------------------------------------------------------------------------

/// The stores every store-backed test runs on ([`on_every_store!`] lists them, once). A new store: its
/// variant here and in [`TestStore`], its arms in [`TestStore`]'s methods, its line in the macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded store in memory (redb's in-memory backend).
    Memory,
    /// The embedded store on a file (what `cargo run` keeps its data in), a temporary directory per test.
    File,
    /// DynamoDB Local, a fresh table per test.
    Dynamo,
}

/// Runs each listed `async fn(store)` once on every store, as `memory::<name>`, `file::<name>` and
/// `dynamo::<name>`, on a multi-threaded runtime so concurrent calls overlap. `store` is anything made from a [`TestStore`]
/// (`From<TestStore>`): the `TestStore` itself, an `Arc<dyn Store>`, or the in-process API client
/// ([`api::Api`]).
#[macro_export]
macro_rules! on_every_store {
    (@on $module:ident $kind:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = $crate::TestStore::open($crate::StoreKind::$kind).await;
                    super::$name(::std::convert::From::from(store)).await
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_every_store!(@on memory Memory; $($name),*);
        $crate::on_every_store!(@on file File; $($name),*);
        $crate::on_every_store!(@on dynamo Dynamo; $($name),*);
    };
}

/// A store under test, with its concrete type kept for the checks the port has no method for.
#[derive(Clone)]
pub enum TestStore {
    /// The embedded store, in memory or on a file (with the temporary directory it lives in).
    Embedded(Arc<EmbeddedStore>, Option<Arc<tempfile::TempDir>>),
    Dynamo(Arc<DynamoStore>),
}

impl TestStore {
    /// A fresh store of `kind` (on a file, a directory of its own; on DynamoDB Local, a table of its own).
    pub async fn open(kind: StoreKind) -> TestStore {
        match kind {
            StoreKind::Memory => TestStore::memory(),
            StoreKind::File => TestStore::file(),
            StoreKind::Dynamo => TestStore::dynamo().await,
        }
    }

    pub fn memory() -> TestStore {
        TestStore::Embedded(Arc::new(memory_store()), None)
    }

    /// On a file in a fresh temporary directory.
    pub fn file() -> TestStore {
        let (store, dir) = file_store();
        TestStore::Embedded(Arc::new(store), Some(dir))
    }

    /// On a fresh DynamoDB Local table.
    pub async fn dynamo() -> TestStore {
        TestStore::Dynamo(Arc::new(fresh_dynamo_store().await))
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            TestStore::Embedded(s, _) => s.clone(),
            TestStore::Dynamo(s) => s.clone(),
        }
    }

    /// Every pending alert (transactional outbox record) the store holds, in no particular order.
    pub async fn pending_alerts(&self) -> Vec<PendingAlert> {
        match self {
            TestStore::Embedded(s, _) => embedded_alerts(s)
                .into_iter()
                .filter(|r| r.status == AlertStatus::Pending)
                .map(|r| r.alert)
                .collect(),
            TestStore::Dynamo(s) => dynamo_pending_alerts(s).await,
        }
    }

    /// Every alert (transactional outbox record) the store holds, whatever its status, in no particular
    /// order.
    pub async fn all_alerts(&self) -> Vec<PendingAlert> {
        match self {
            TestStore::Embedded(s, _) => embedded_alerts(s).into_iter().map(|r| r.alert).collect(),
            TestStore::Dynamo(s) => dynamo_all_alerts(s).await,
        }
    }
}

fn embedded_alerts(store: &EmbeddedStore) -> Vec<AlertRecord> {
    store
        .all_alerts()
        .expect("read the embedded store's alerts")
}

impl From<TestStore> for Arc<dyn Store> {
    fn from(store: TestStore) -> Self {
        store.store()
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

// ---------------------------------------------------------------------------------------------------------
// A request log: what each DynamoDB request asked for (operation, index) and read
// ---------------------------------------------------------------------------------------------------------

/// One DynamoDB request (one attempt) as a [`RequestLog`] saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    /// `Query`, `Scan`, `BatchGetItem`, ...
    pub operation: String,
    /// The index a `Query` or `Scan` read, `None` for the table itself (and for other operations).
    pub index: Option<String>,
    /// Items the response returned: `Count` of a `Query`/`Scan`, the items of a `BatchGetItem`, 0 or 1 for a
    /// `GetItem`; 0 for writes.
    pub items: u64,
    /// Items DynamoDB read to answer: `ScannedCount` of a `Query`/`Scan` (before any filter), else `items`.
    pub scanned: u64,
    /// Capacity units the request consumed, when the log asks for them ([`RequestLog::with_consumed_capacity`])
    /// and the endpoint reports them.
    pub capacity: Option<f64>,
}

/// What `modify_before_serialization` learnt about a request, for `read_after_attempt`.
#[derive(Debug, Clone)]
struct RequestIndex(Option<String>);

impl aws_smithy_types::config_bag::Storable for RequestIndex {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// An SDK interceptor that logs every DynamoDB request attempt with the index it read and the items it
/// returned and scanned; optionally it asks every request for `ReturnConsumedCapacity = TOTAL`. Clones share
/// one log. Add it to a client before [`DynamoStore::new`] (see [`logged_dynamo_store`]).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    entries: Arc<std::sync::Mutex<Vec<LoggedRequest>>>,
    consumed_capacity: bool,
}

impl RequestLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also asks each request for its consumed capacity (`ReturnConsumedCapacity = TOTAL`).
    pub fn with_consumed_capacity() -> Self {
        RequestLog {
            consumed_capacity: true,
            ..Self::default()
        }
    }

    /// Every request so far, in the order their attempts finished.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Requests of `operation` on `index` (`None`: on the table).
    pub fn count(&self, operation: &str, index: Option<&str>) -> usize {
        self.lock()
            .iter()
            .filter(|e| e.operation == operation && e.index.as_deref() == index)
            .count()
    }

    /// Requests by operation, with the index when there is one (`Query DUE`, `Query` for the table).
    pub fn by_operation(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for e in self.lock().iter() {
            let name = match &e.index {
                Some(index) => format!("{} {index}", e.operation),
                None => e.operation.clone(),
            };
            *out.entry(name).or_default() += 1;
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LoggedRequest>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut<
            '_,
        >,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemInput, delete_item::DeleteItemInput,
            get_item::GetItemInput, put_item::PutItemInput, query::QueryInput, scan::ScanInput,
            transact_write_items::TransactWriteItemsInput, update_item::UpdateItemInput,
        };
        use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
        let total = self
            .consumed_capacity
            .then_some(ReturnConsumedCapacity::Total);
        let input = context.input_mut();
        let mut index = None;
        if let Some(i) = input.downcast_mut::<QueryInput>() {
            index = i.index_name.clone();
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        } else if let Some(i) = input.downcast_mut::<ScanInput>() {
            index = i.index_name.clone();
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        } else if let Some(i) = input.downcast_mut::<BatchGetItemInput>() {
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        } else if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        } else if let Some(i) = input.downcast_mut::<PutItemInput>() {
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        } else if let Some(i) = input.downcast_mut::<DeleteItemInput>() {
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        } else if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
            i.return_consumed_capacity = total.or(i.return_consumed_capacity.take());
        }
        cfg.interceptor_state().store_put(RequestIndex(index));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemOutput, delete_item::DeleteItemOutput,
            get_item::GetItemOutput, put_item::PutItemOutput, query::QueryOutput, scan::ScanOutput,
            transact_write_items::TransactWriteItemsOutput, update_item::UpdateItemOutput,
        };
        use aws_sdk_dynamodb::types::ConsumedCapacity;
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let index = cfg.load::<RequestIndex>().and_then(|i| i.0.clone());
        let sum = |c: &[ConsumedCapacity]| {
            let units: f64 = c.iter().filter_map(|c| c.capacity_units()).sum();
            (!c.is_empty()).then_some(units)
        };
        let one = |c: Option<&ConsumedCapacity>| c.and_then(|c| c.capacity_units());
        let (mut items, mut scanned, mut capacity) = (0u64, None, None);
        if let Some(Ok(output)) = context.output_or_error() {
            if let Some(o) = output.downcast_ref::<QueryOutput>() {
                items = o.count().max(0) as u64;
                scanned = Some(o.scanned_count().max(0) as u64);
                capacity = one(o.consumed_capacity());
            } else if let Some(o) = output.downcast_ref::<ScanOutput>() {
                items = o.count().max(0) as u64;
                scanned = Some(o.scanned_count().max(0) as u64);
                capacity = one(o.consumed_capacity());
            } else if let Some(o) = output.downcast_ref::<GetItemOutput>() {
                items = u64::from(o.item().is_some());
                capacity = one(o.consumed_capacity());
            } else if let Some(o) = output.downcast_ref::<BatchGetItemOutput>() {
                items = o
                    .responses()
                    .map_or(0, |r| r.values().map(|v| v.len() as u64).sum());
                capacity = sum(o.consumed_capacity());
            } else if let Some(o) = output.downcast_ref::<UpdateItemOutput>() {
                capacity = one(o.consumed_capacity());
            } else if let Some(o) = output.downcast_ref::<PutItemOutput>() {
                capacity = one(o.consumed_capacity());
            } else if let Some(o) = output.downcast_ref::<DeleteItemOutput>() {
                capacity = one(o.consumed_capacity());
            } else if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
                capacity = sum(o.consumed_capacity());
            }
        }
        self.lock().push(LoggedRequest {
            operation,
            index,
            items,
            scanned: scanned.unwrap_or(items),
            capacity,
        });
        Ok(())
    }
}

/// A DynamoDB store on `table` whose client also logs every request in `log` (the store's own
/// [`adapters::store::RequestCounter`] still counts them too).
pub fn logged_store_on(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    log: &RequestLog,
) -> DynamoStore {
    let config = client
        .config()
        .to_builder()
        .interceptor(log.clone())
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table)
}

/// A DynamoDB store on a fresh table of its own, logging every request in `log`.
pub async fn logged_dynamo_store(log: &RequestLog) -> DynamoStore {
    let client = dynamo_client().await;
    let table = unique_table_name();
    adapters::store::ensure_table(&client, &table)
        .await
        .expect("create the test table");
    logged_store_on(&client, &table, log)
}

// ---------------------------------------------------------------------------------------------------------
// A store that makes concurrent reminder runs overlap for sure
// ---------------------------------------------------------------------------------------------------------

/// Another store, unchanged, except that while a gate is set ([`GatedStore::gate`]) `due_reminders` answers
/// only once `n` calls are waiting: `n` concurrent reminder runs then all hold the same due list before any
/// of them claims a department, whatever the scheduler does (the embedded store otherwise answers so fast
/// that "concurrent" runs rarely interleave). While [`GatedStore::claims_fail`] is on, every claim of a
/// reminder fails as DynamoDB does after its retries (an outage in the middle of a run). It is what a run
/// holds ([`domain::store::ReminderRunStore`]), nothing more.
pub struct GatedStore {
    inner: Arc<dyn Store>,
    gate: std::sync::Mutex<Option<Arc<tokio::sync::Barrier>>>,
    claims_fail: std::sync::atomic::AtomicBool,
}

impl GatedStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        GatedStore {
            inner,
            gate: std::sync::Mutex::new(None),
            claims_fail: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// From now on, `advance_reminder` fails with `StoreError::Unavailable` (`false`: passes through again).
    pub fn claims_fail(&self, fail: bool) {
        self.claims_fail
            .store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    /// From now on, `due_reminders` calls are released `n` at a time (`None`: at once, as usual).
    pub fn gate(&self, n: Option<usize>) {
        *self
            .gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            n.map(|n| Arc::new(tokio::sync::Barrier::new(n)));
    }
}

#[async_trait::async_trait]
impl ReminderStore for GatedStore {
    async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        shards: domain::reminder::DueShards,
        limit: usize,
    ) -> StoreResult<Vec<domain::reminder::DueReminder>> {
        let gate = self
            .gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let due = self.inner.due_reminders(until, shards, limit).await;
        if let Some(gate) = gate {
            gate.wait().await;
        }
        due
    }

    async fn open_conversations_in(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<domain::conversation::Conversation>> {
        self.inner
            .open_conversations_in(practice_id, department_id)
            .await
    }

    async fn advance_reminder(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        alert: Option<&PendingAlert>,
    ) -> StoreResult<ReminderClaim> {
        if self.claims_fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "ProvisionedThroughputExceededException (injected)".into(),
            ));
        }
        self.inner
            .advance_reminder(practice_id, department_id, from, to, alert)
            .await
    }
}

#[async_trait::async_trait]
impl SettingsLookup for GatedStore {
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)> {
        self.inner
            .practice_and_department(practice_id, department_id)
            .await
    }

    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>> {
        self.inner.practice_by_sms_number(e164).await
    }

    async fn practice_by_whatsapp_id(
        &self,
        phone_number_id: &str,
    ) -> StoreResult<Option<PracticeId>> {
        self.inner.practice_by_whatsapp_id(phone_number_id).await
    }
}
