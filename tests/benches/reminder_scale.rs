//! The reminder run at scale (docs/architecture.md, "Access patterns and their budgets"): many departments in DynamoDB Local, a few
//! hundred of them due; ONE `run_reminders` measured beside a `Scan` of the table (what a run without the
//! sparse `DUE` index would have to read just to find the due departments).
//!
//! ```text
//! # full size (release build, as `cargo bench` builds):
//! BENCH_DEPARTMENTS=20000 cargo bench -p vetchat-tests --bench reminder_scale
//! # a fleet's minute at 200,000 departments, 3,000 due:
//! BENCH_DEPARTMENTS=200000 BENCH_DUE=3000 cargo bench -p vetchat-tests --bench reminder_scale
//! # short (a dev build, seconds; what CI can afford):
//! BENCH_DEPARTMENTS=500 cargo test -p vetchat-tests --bench reminder_scale
//! ```
//!
//! Needs DynamoDB Local (`AWS_ENDPOINT_URL_DYNAMODB`, e.g. from `scripts/test --services-only`). Knobs:
//! `BENCH_DEPARTMENTS` (default 20000), `BENCH_DUE` (default 1.5% of them: 300 of 20000),
//! `BENCH_OPEN` (due departments with open conversations, default due/15), `BENCH_SEED_CONCURRENCY`
//! (default 32), `BENCH_LEGACY_EVERY` (every n-th due department seeded with the due entry as written
//! before the index was sharded, `DUE_PK = DUE`; default 10, 0 for none), `BENCH_KEEP_TABLE=1` (keep the
//! table afterwards).
//!
//! The due index is sharded (`DUE#00`…`DUE#31` by a hash of the department, plus the legacy `DUE`): the
//! find step asserts one Query a partition and nothing read but the due entries; after the run, the legacy
//! partition is empty (each advance moved its entry to its shard).
//!
//! Seeding: one template practice is written through the store itself (`Store::create_practice`, then
//! `Store::create_department` once per reminder variant) on a scratch table and read back; every seeded
//! practice is a copy of those items with the ids and names replaced, written 25 items to a `BatchWriteItem`
//! (a transaction per department through the store takes minutes for 20,000 on DynamoDB Local). So every
//! item has exactly the store's layout and due entry; the first practice is read back through the store as a
//! check, and the run itself decodes every due one. Open conversations go through
//! `domain::conversation::staff_start`. Practices have 10 departments each (the default one, reminder off, and 9
//! more), all in New York; the run is for Monday 2031-06-09 17:30 EDT. A due department's reminder is at
//! 16:00–17:30 that day; of the others, three in four have it on later that evening (18:00–23:30), one in
//! four has it off (no due entry).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::store::{due_partition, ensure_table, DynamoStore, DUE_SHARDS};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, TimeZone, Utc};
use domain::conversation::{self, StartInput};
use domain::department::{name_key, Department, DepartmentSettings, UnresolvedReminder};
use domain::identity::{Caller, DepartmentId, Ids, PracticeId, Role};
use domain::practice::Practice;
use domain::reminder::{next_reminder, run_reminders, DueShards};
use domain::schedule::TimeOfDay;
use domain::store::{ReminderStore, SettingsStore};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use vetchat_tests::{dynamo_client, logged_store_on, unique_table_name, LoggedRequest, RequestLog};

const PER_PRACTICE: usize = 10;
const DUE_TIMES: [&str; 4] = ["16:00", "16:30", "17:00", "17:30"];
const LATER_TIMES: [&str; 12] = [
    "18:00", "18:30", "19:00", "19:30", "20:00", "20:30", "21:00", "21:30", "22:00", "22:30",
    "23:00", "23:30",
];
/// The template practice's id and name: fixed-width tokens, so replacing them never touches anything else.
const TPL_PRACTICE: &str = "prc_tpl";
const TPL_PRACTICE_NAME: &str = "Bench Vets Tpl";

type Item = HashMap<String, AttributeValue>;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?}: {e}"))
    })
}

struct UlidIds;

impl Ids for UlidIds {
    fn next(&self, prefix: &str) -> String {
        adapters::new_id(prefix)
    }
}

/// The reminder variants a department can have: due at the run instant (4 times), on but later that evening
/// (12 times), or off.
fn variants() -> Vec<(UnresolvedReminder, bool)> {
    let at = |s: &str| Some(s.parse::<TimeOfDay>().expect("a time"));
    let on = |t: &str| UnresolvedReminder {
        enabled: true,
        at: at(t),
    };
    DUE_TIMES
        .iter()
        .map(|t| (on(t), true))
        .chain(LATER_TIMES.iter().map(|t| (on(t), false)))
        .chain([(UnresolvedReminder::default(), false)])
        .collect()
}

/// The variant of the `k`-th non-default department: every `stride`-th is due (until `due` are), the others
/// are on later in the evening, one in four off.
fn variant_of(k: usize, stride: usize, due: usize) -> usize {
    if k.is_multiple_of(stride) && k / stride < due {
        (k / stride) % DUE_TIMES.len()
    } else if k % 4 == 3 {
        DUE_TIMES.len() + LATER_TIMES.len()
    } else {
        DUE_TIMES.len() + k % LATER_TIMES.len()
    }
}

fn settings(name: String, reminder: UnresolvedReminder) -> DepartmentSettings {
    let mut s = DepartmentSettings::defaults(name);
    s.visible_in_app = true;
    s.alerts.enabled = true;
    s.alerts.emails = vec!["desk@bench.example".to_owned()];
    s.unresolved_reminder = reminder;
    s
}

fn tpl_department(v: usize) -> (String, String) {
    (format!("dep_tpl_v{v:02}"), format!("Tpl V{v:02}"))
}

/// The items of one template practice as the store writes them (`Store::create_practice`, then
/// `Store::create_department` for each variant), read back from a scratch table.
async fn templates(client: &aws_sdk_dynamodb::Client, now: DateTime<Utc>) -> Vec<Item> {
    let scratch = unique_table_name();
    ensure_table(client, &scratch).await.expect("scratch table");
    let store = DynamoStore::new(client.clone(), scratch.clone());
    let tz = chrono_tz::America::New_York;
    let practice_id = PracticeId(TPL_PRACTICE.to_owned());
    let practice = Practice {
        id: practice_id.clone(),
        name: TPL_PRACTICE_NAME.to_owned(),
        timezone: tz,
        country: "US".to_owned(),
        sms_numbers: Vec::new(),
        whatsapp_numbers: Vec::new(),
        default_department_id: DepartmentId::default_for(&practice_id),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let department = |id: DepartmentId, name: String, reminder, is_default| {
        let s = settings(name, reminder);
        Department {
            id,
            practice_id: practice_id.clone(),
            is_default,
            next_reminder_at: next_reminder(&s, tz, now),
            settings: s,
            open_conversations: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    };
    let default = department(
        practice.default_department_id.clone(),
        Practice::default_department_name(&practice.name),
        UnresolvedReminder::default(),
        true,
    );
    store
        .create_practice(&practice, &default)
        .await
        .expect("create_practice");
    for (v, (reminder, _)) in variants().into_iter().enumerate() {
        let (id, name) = tpl_department(v);
        store
            .create_department(&department(DepartmentId(id), name, reminder, false))
            .await
            .expect("create_department");
    }
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = client
            .scan()
            .table_name(&scratch)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("Scan the templates");
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    client
        .delete_table()
        .table_name(&scratch)
        .send()
        .await
        .expect("DeleteTable");
    items
}

/// `value` with every `(from, to)` replaced in its strings (nested maps and lists included).
fn rewrite(value: &AttributeValue, subs: &[(String, String)]) -> AttributeValue {
    match value {
        AttributeValue::S(s) => AttributeValue::S(
            subs.iter()
                .fold(s.clone(), |acc, (from, to)| acc.replace(from.as_str(), to)),
        ),
        AttributeValue::M(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), rewrite(v, subs)))
                .collect(),
        ),
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(|v| rewrite(v, subs)).collect()),
        other => other.clone(),
    }
}

fn rewrite_item(item: &Item, subs: &[(String, String)]) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), rewrite(v, subs)))
        .collect()
}

/// Does a template item belong to this template department (its item or its name record)?
fn mentions(item: &Item, token: &str) -> bool {
    item.values().any(|v| match v {
        AttributeValue::S(s) => s.contains(token),
        _ => false,
    })
}

struct Seeded {
    practices: usize,
    items: usize,
    due: Vec<(PracticeId, DepartmentId)>,
    /// Due departments seeded with the legacy entry.
    legacy: usize,
    open_departments: usize,
    open_conversations: usize,
    requests: usize,
    took: Duration,
}

/// What to seed.
#[derive(Clone, Copy)]
struct Plan {
    departments: usize,
    due: usize,
    open: usize,
    /// Every n-th due department keeps a legacy due entry (`DUE_PK = DUE`); 0: none.
    legacy_every: usize,
    concurrency: usize,
    now: DateTime<Utc>,
}

/// `departments` departments in practices of 10, as the store writes them: the template practice's items
/// with ids and names replaced, written 25 to a `BatchWriteItem`.
async fn seed(
    client: &aws_sdk_dynamodb::Client,
    store: &Arc<DynamoStore>,
    table: &str,
    plan: &Plan,
) -> Seeded {
    let Plan {
        departments,
        due,
        open,
        legacy_every,
        concurrency,
        now,
    } = *plan;
    let started = Instant::now();
    let templates = templates(client, now).await;
    let tpl_default = DepartmentId::default_for(&PracticeId(TPL_PRACTICE.to_owned())).0;
    let practice_template: Vec<&Item> = templates
        .iter()
        .filter(|i| i.contains_key("default_department_id"))
        .collect();
    let default_template: Vec<&Item> = templates
        .iter()
        .filter(|i| mentions(i, &tpl_default) && !i.contains_key("default_department_id"))
        .collect();
    assert_eq!(
        (practice_template.len(), default_template.len()),
        (1, 2),
        "a practice item; a department item and its name record"
    );
    let variant_templates: Vec<Vec<&Item>> = (0..variants().len())
        .map(|v| {
            let found: Vec<&Item> = templates
                .iter()
                .filter(|i| mentions(i, &tpl_department(v).0))
                .collect();
            assert_eq!(
                found.len(),
                2,
                "variant {v}: a department item and its name record"
            );
            found
        })
        .collect();
    let is_due: Vec<bool> = variants().iter().map(|(_, due)| *due).collect();

    let practices = departments.div_ceil(PER_PRACTICE);
    let others = departments - practices; // non-default departments
    let stride = (others / due.max(1)).max(1);
    let mut items: Vec<Item> = Vec::new();
    let mut due_ids = Vec::new();
    let mut legacy_count = 0;
    let mut k = 0;
    for p in 0..practices {
        let practice_id = format!("prc_bench_{p:06}");
        let practice_name = format!("Bench Vets {p:06}");
        let practice_subs = [
            (TPL_PRACTICE_NAME.to_owned(), practice_name.clone()),
            (
                TPL_PRACTICE_NAME.to_lowercase(),
                practice_name.to_lowercase(),
            ),
            (TPL_PRACTICE.to_owned(), practice_id.clone()),
        ];
        items.push(rewrite_item(practice_template[0], &practice_subs));
        items.extend(
            default_template
                .iter()
                .map(|i| rewrite_item(i, &practice_subs)),
        );
        for d in 1..PER_PRACTICE {
            if p * PER_PRACTICE + d >= departments {
                break;
            }
            let v = variant_of(k, stride, due);
            k += 1;
            let (tpl_id, tpl_name) = tpl_department(v);
            let id = format!("dep_b{p:06}_{d}");
            let name = format!("Department {d}");
            let mut subs = vec![
                (tpl_id, id.clone()),
                (tpl_name.clone(), name.clone()),
                (name_key(&tpl_name), name_key(&name)),
            ];
            subs.extend(practice_subs.iter().cloned());
            let (practice, department) = (PracticeId(practice_id.clone()), DepartmentId(id));
            // Every `legacy_every`-th due department keeps the unsharded entry (`DUE_PK = DUE`), as
            // written before the index was sharded; the others get their shard, as the store writes it.
            let legacy = is_due[v] && legacy_every > 0 && due_ids.len() % legacy_every == 0;
            items.extend(variant_templates[v].iter().map(|i| {
                let mut item = rewrite_item(i, &subs);
                if let Some(due_pk) = item.get_mut("DUE_PK") {
                    *due_pk = AttributeValue::S(if legacy {
                        "DUE".to_owned()
                    } else {
                        due_partition(&practice, &department)
                    });
                }
                item
            }));
            if is_due[v] {
                legacy_count += usize::from(legacy);
                due_ids.push((practice, department));
            }
        }
    }
    let total_items = items.len();

    // 25 items a request, `concurrency` requests at a time, unprocessed items sent again.
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut requests = 0;
    for chunk in items.chunks(25) {
        let requests_in_chunk: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .expect("a put request"),
                    )
                    .build()
            })
            .collect();
        let (client, table, limit) = (client.clone(), table.to_owned(), limit.clone());
        requests += 1;
        tasks.spawn(async move {
            let _slot = limit.acquire().await.expect("semaphore");
            let mut pending = HashMap::from([(table, requests_in_chunk)]);
            let mut sent = 0;
            loop {
                sent += 1;
                let out = client
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .expect("BatchWriteItem");
                match out.unprocessed_items {
                    Some(left) if left.values().any(|v| !v.is_empty()) => {
                        pending = left;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => break,
                }
            }
            sent
        });
    }
    let mut retries = 0;
    while let Some(done) = tasks.join_next().await {
        retries += done.expect("seeding task") - 1;
    }

    // The clones read back through the store as what they are.
    let first = store
        .practice_config(&PracticeId("prc_bench_000000".into()))
        .await
        .expect("practice_config")
        .expect("the first practice");
    assert_eq!(first.departments.len(), PER_PRACTICE.min(departments));

    // Open conversations in the first `open` due departments (1 to 3 each).
    let mut open_conversations = 0;
    for (n, (practice_id, department_id)) in due_ids.iter().take(open).enumerate() {
        let staff = Caller {
            sub: "staff-1".into(),
            practice_id: practice_id.clone(),
            role: Role::Staff,
        };
        for c in 0..=(n % 3) {
            conversation::staff_start(
                store.as_ref(),
                &staff,
                StartInput {
                    department_id: department_id.clone(),
                    client_id: format!("client-{n}-{c}"),
                    body: "Is Rex ready to be picked up?".into(),
                    channel: None,
                },
                now,
                &UlidIds,
            )
            .await
            .expect("staff_start");
            open_conversations += 1;
        }
    }
    Seeded {
        practices,
        items: total_items,
        open_departments: open.min(due_ids.len()),
        due: due_ids,
        legacy: legacy_count,
        open_conversations,
        requests: requests + retries,
        took: started.elapsed(),
    }
}

/// Totals over logged requests: (requests, items read, items returned, read units, write units).
struct Totals {
    requests: usize,
    read: u64,
    returned: u64,
    read_units: Option<f64>,
    write_units: Option<f64>,
}

fn totals(entries: &[LoggedRequest]) -> Totals {
    let is_read = |e: &&LoggedRequest| {
        matches!(
            e.operation.as_str(),
            "Query" | "Scan" | "GetItem" | "BatchGetItem"
        )
    };
    let units = |it: Vec<&LoggedRequest>| {
        let with: Vec<f64> = it.iter().filter_map(|e| e.capacity).collect();
        (!with.is_empty()).then(|| with.iter().sum())
    };
    Totals {
        requests: entries.len(),
        read: entries.iter().filter(is_read).map(|e| e.scanned).sum(),
        returned: entries.iter().filter(is_read).map(|e| e.items).sum(),
        read_units: units(entries.iter().filter(is_read).collect()),
        write_units: units(entries.iter().filter(|e| !is_read(e)).collect()),
    }
}

fn units(u: Option<f64>) -> String {
    u.map_or("n/a".to_owned(), |u| format!("{u:.1}"))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn by_operation(log: &RequestLog) -> String {
    log.by_operation()
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `DUE_AT` as the store writes it (fixed-width UTC, nanoseconds), for the scan's filter.
fn sortable(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// How many entries each shard of the due index holds after `after` (how evenly the hash spreads them).
async fn shard_sizes(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    after: DateTime<Utc>,
) -> Vec<i32> {
    let mut sizes = Vec::new();
    for n in 0..DUE_SHARDS {
        let mut start: Option<Item> = None;
        let mut count = 0;
        loop {
            let out = client
                .query()
                .table_name(table)
                .index_name("DUE")
                .key_condition_expression("DUE_PK = :p AND DUE_AT > :after")
                .expression_attribute_values(":p", AttributeValue::S(format!("DUE#{n:02}")))
                .expression_attribute_values(":after", AttributeValue::S(sortable(after)))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("Query a shard");
            count += out.count;
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        sizes.push(count);
    }
    sizes
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let departments = env_usize("BENCH_DEPARTMENTS")
        .unwrap_or(20_000)
        .max(PER_PRACTICE);
    let due = env_usize("BENCH_DUE").unwrap_or((departments * 3 / 200).max(1));
    let open = env_usize("BENCH_OPEN").unwrap_or((due / 15).max(1));
    let legacy_every = env_usize("BENCH_LEGACY_EVERY").unwrap_or(10);
    let concurrency = env_usize("BENCH_SEED_CONCURRENCY").unwrap_or(32);
    let keep = std::env::var("BENCH_KEEP_TABLE").is_ok_and(|v| v == "1");

    let tz = chrono_tz::America::New_York;
    let seed_now = tz
        .with_ymd_and_hms(2031, 6, 9, 8, 0, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc);
    let run_at = tz
        .with_ymd_and_hms(2031, 6, 9, 17, 30, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc);

    let client = dynamo_client().await;
    let table = unique_table_name();
    ensure_table(&client, &table).await.expect("create table");
    let log = RequestLog::with_consumed_capacity();
    let store = Arc::new(logged_store_on(&client, &table, &log));
    let logged_client = aws_sdk_dynamodb::Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(log.clone())
            .build(),
    );

    eprintln!("seeding {departments} departments ({due} due, {open} with open conversations) into {table} ...");
    let plan = Plan {
        departments,
        due,
        open,
        legacy_every,
        concurrency,
        now: seed_now,
    };
    let seeded = seed(&client, &store, &table, &plan).await;
    eprintln!(
        "seeded {} items in {:.1} s ({} BatchWriteItem requests)",
        seeded.items,
        seeded.took.as_secs_f64(),
        seeded.requests
    );

    // 1. Finding the due departments alone: one Query per partition of the DUE index.
    log.clear();
    let started = Instant::now();
    let listed = store
        .due_reminders(run_at, DueShards::ALL, domain::reminder::MAX_DUE_PER_RUN)
        .await
        .expect("due_reminders");
    let find_wall = started.elapsed();
    let find = totals(&log.entries());
    let find_ops = by_operation(&log);
    assert_eq!(
        listed.len(),
        seeded.due.len(),
        "the due index lists the due departments"
    );
    // One Query a shard and one for the legacy partition, and nothing read but what is due.
    assert_eq!(find.requests, DUE_SHARDS as usize + 1, "{find_ops}");
    assert_eq!(
        (find.read, find.returned),
        (listed.len() as u64, listed.len() as u64),
        "reads only what is due"
    );

    // 2. What a run without the index would read just to find them (before the run moves them on): a Scan of the whole table.
    log.clear();
    let started = Instant::now();
    let mut start_key: Option<std::collections::HashMap<String, AttributeValue>> = None;
    let mut pages = 0;
    let mut found = 0;
    loop {
        let out = logged_client
            .scan()
            .table_name(&table)
            .filter_expression("DUE_AT <= :until")
            .expression_attribute_values(":until", AttributeValue::S(sortable(run_at)))
            .set_exclusive_start_key(start_key.take())
            .send()
            .await
            .expect("Scan");
        pages += 1;
        found += out.items().len();
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start_key = Some(key),
            _ => break,
        }
    }
    let scan_wall = started.elapsed();
    let scan = totals(&log.entries());
    assert_eq!(
        found,
        seeded.due.len(),
        "the scan finds the same departments"
    );

    // 3. One whole run.
    log.clear();
    store.request_counter().reset();
    let started = Instant::now();
    let summary = run_reminders(store.as_ref(), run_at, DueShards::ALL)
        .await
        .expect("run_reminders");
    let run_wall = started.elapsed();
    let run_entries = log.entries();
    let run = totals(&run_entries);
    let run_ops = by_operation(&log);
    assert_eq!(summary.due, seeded.due.len(), "{summary:?}");
    assert_eq!(
        summary.departments_reminded, seeded.open_departments,
        "{summary:?}"
    );
    assert_eq!(summary.failures, 0, "{summary:?}");
    assert!(run_entries.iter().all(|e| e.operation != "Scan"));
    let counted: u64 = store.request_counts().values().sum();
    assert_eq!(counted as usize, run_entries.len());
    // The run moved every legacy entry it advanced to its shard: the legacy partition is empty.
    let legacy_left = client
        .query()
        .table_name(&table)
        .index_name("DUE")
        .key_condition_expression("DUE_PK = :p")
        .expression_attribute_values(":p", AttributeValue::S("DUE".into()))
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .expect("Query the legacy partition")
        .count;
    assert_eq!(legacy_left, 0, "legacy due entries left after the run");
    let per_shard = shard_sizes(&client, &table, run_at).await;

    println!(
        "\n### Reminder run over {departments} departments ({} practices), {} due, {} with open conversations \
         ({} conversations) — DynamoDB Local\n",
        seeded.practices,
        seeded.due.len(),
        seeded.open_departments,
        seeded.open_conversations
    );
    println!("| | requests | items read | items returned | read units | write units | wall time |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| find the due departments: `due_reminders` (a Query per `DUE` shard) | {} | {} | {} | {} | – | {} |",
        find.requests,
        find.read,
        find.returned,
        units(find.read_units),
        ms(find_wall)
    );
    println!(
        "| one whole `run_reminders` | {} | {} | {} | {} | {} | {} |",
        run.requests,
        run.read,
        run.returned,
        units(run.read_units),
        units(run.write_units),
        ms(run_wall)
    );
    println!(
        "| find them by `Scan` instead (filter `DUE_AT <= T`) | {} ({pages} pages) | {} | {} | {} | – | {} |",
        scan.requests,
        scan.read,
        scan.returned,
        units(scan.read_units),
        ms(scan_wall)
    );
    println!();
    println!(
        "- due index: {DUE_SHARDS} shards + the legacy `DUE` partition; {} of the due departments seeded with a \
         legacy entry (`DUE_PK = DUE`), all moved to their shard by the run; entries per shard after the run \
         (the departments' next reminders): min {}, max {}",
        seeded.legacy,
        per_shard.iter().min().unwrap_or(&0),
        per_shard.iter().max().unwrap_or(&0),
    );
    println!(
        "- run wall time {:.1} s against the 15-minute schedule period (900 s) and the function's 300 s timeout",
        run_wall.as_secs_f64()
    );
    println!("- find: {find_ops}");
    println!("- run: {run_ops}");
    println!(
        "- run summary: due {}, departments reminded {} (their reminders stored for the alert dispatcher), nothing open {}, already handled {}, failures {}",
        summary.due,
        summary.departments_reminded,
        summary.nothing_open,
        summary.already_handled,
        summary.failures
    );
    println!(
        "- items read = Query/Scan `ScannedCount` + items of GetItem/BatchGetItem; units = `ReturnConsumedCapacity: TOTAL` as DynamoDB Local reports it"
    );
    println!(
        "- table: {} items seeded in {:.1} s: a template practice written by `Store::create_practice`/`create_department` \
         (one department per reminder variant) and read back, then cloned with ids and names replaced, \
         {} `BatchWriteItem` requests, {concurrency} at a time; open conversations through `conversation::staff_start`",
        seeded.items,
        seeded.took.as_secs_f64(),
        seeded.requests
    );

    if keep {
        eprintln!("kept table {table}");
    } else {
        client
            .delete_table()
            .table_name(&table)
            .send()
            .await
            .expect("DeleteTable");
    }
}
