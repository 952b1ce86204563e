//! The storage contract (`domain::store::Store`), written once and run on every store: the embedded
//! `EmbeddedStore` in memory and on a file, and the `DynamoStore` on DynamoDB Local (each test on a table
//! of its own). A few checks only
//! the DynamoDB store can answer (request budgets, the table's shape, the raw item layout) come at the end.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapters::store::{ensure_table, table_spec, DynamoStore};
use aws_sdk_dynamodb::types::AttributeValue;
use domain::department::{Department, DepartmentSettings};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::{PracticeConfig, SettingsLookup, SettingsStore, Store, StoreError};
use tokio::sync::Barrier;
use vetchat_tests::{
    default_department, describe_table_spec, fresh_dynamo_store, new_department_id,
    new_practice_id, next_version, sample_department, sample_practice, with_numbers,
};

type DynStore = Arc<dyn Store>;

const N1: &str = "+12025550101";
const N2: &str = "+12025550102";
const N3: &str = "+12025550103";

vetchat_tests::on_every_store!(
    new_practice_reads_back_with_its_default_department,
    creating_a_practice_twice_is_already_exists,
    texting_number_belongs_to_one_practice_until_released,
    create_practice_is_all_or_nothing,
    update_practice_checks_version_and_numbers,
    department_names_are_unique_per_practice_case_insensitively,
    create_department_needs_the_practice_and_a_new_id,
    rename_claims_the_new_name_and_releases_the_old,
    stale_version_is_version_mismatch_and_changes_nothing,
    deleted_department_is_not_found_and_its_name_free,
    delete_with_a_copy_from_before_a_rename_releases_the_current_name,
    update_department_never_touches_open_conversations,
    departments_list_default_first_then_by_name,
    another_practice_is_never_seen,
    settings_round_trip_exactly,
    concurrent_creates_with_one_name_admit_exactly_one,
    concurrent_updates_from_one_version_admit_exactly_one,
    concurrent_renames_to_one_name_admit_exactly_one,
    concurrent_practices_with_one_number_admit_exactly_one,
);

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/// A new practice (with `numbers`) and its default department, created.
async fn setup(store: &DynStore, numbers: &[&str]) -> (Practice, Department) {
    let practice = with_numbers(sample_practice(), numbers);
    let default = default_department(&practice);
    store
        .create_practice(&practice, &default)
        .await
        .expect("create practice");
    (practice, default)
}

async fn config(store: &DynStore, practice_id: &PracticeId) -> PracticeConfig {
    store
        .practice_config(practice_id)
        .await
        .expect("practice_config")
        .expect("the practice exists")
}

async fn department(
    store: &DynStore,
    practice_id: &PracticeId,
    id: &DepartmentId,
) -> Option<Department> {
    store
        .practice_and_department(practice_id, id)
        .await
        .expect("practice_and_department")
        .1
}

async fn create(store: &DynStore, practice_id: &PracticeId, name: &str) -> Department {
    let d = sample_department(practice_id, name);
    store
        .create_department(&d)
        .await
        .expect("create department");
    d
}

fn names(config: &PracticeConfig) -> Vec<&str> {
    config
        .departments
        .iter()
        .map(|d| d.settings.name.as_str())
        .collect()
}

fn renamed(department: &Department, name: &str) -> Department {
    next_version(department, |s| s.name = name.to_owned())
}

/// The next practice version with other texting numbers.
fn practice_with_numbers(previous: &Practice, numbers: &[&str]) -> Practice {
    let mut next = with_numbers(previous.clone(), numbers);
    next.version = previous.version + 1;
    next
}

// ---------------------------------------------------------------------------------------------------------
// Practices and texting numbers
// ---------------------------------------------------------------------------------------------------------

async fn new_practice_reads_back_with_its_default_department(store: DynStore) {
    assert_eq!(
        store.practice_config(&new_practice_id()).await,
        Ok(None),
        "unknown practice"
    );
    assert_eq!(store.get_practice(&new_practice_id()).await, Ok(None));

    let (practice, default) = setup(&store, &[N1]).await;

    let config = config(&store, &practice.id).await;
    assert_eq!(config.practice, practice);
    assert_eq!(config.departments, vec![default.clone()]);
    assert_eq!(
        store.get_practice(&practice.id).await,
        Ok(Some(practice.clone()))
    );
    assert_eq!(
        store
            .practice_and_department(&practice.id, &default.id)
            .await,
        Ok((Some(practice.clone()), Some(default.clone())))
    );
    assert_eq!(
        store
            .practice_and_department(&practice.id, &new_department_id())
            .await,
        Ok((Some(practice.clone()), None)),
        "unknown department"
    );
    assert_eq!(
        store
            .practice_and_department(&new_practice_id(), &default.id)
            .await,
        Ok((None, None))
    );
    assert_eq!(
        store.practice_by_sms_number(N1).await,
        Ok(Some(practice.id.clone()))
    );
    assert_eq!(store.practice_by_sms_number(N2).await, Ok(None));
}

async fn creating_a_practice_twice_is_already_exists(store: DynStore) {
    let (practice, default) = setup(&store, &[]).await;

    assert_eq!(
        store.create_practice(&practice, &default).await,
        Err(StoreError::AlreadyExists)
    );

    // Even with another default department and a number: nothing of it is written.
    let mut again = with_numbers(practice.clone(), &[N1]);
    again.name = "Someone Else".into();
    again.default_department_id = new_department_id();
    let other_default = default_department(&again);
    assert_eq!(
        store.create_practice(&again, &other_default).await,
        Err(StoreError::AlreadyExists)
    );
    let config = config(&store, &practice.id).await;
    assert_eq!(config.practice, practice);
    assert_eq!(config.departments, vec![default]);
    assert_eq!(store.practice_by_sms_number(N1).await, Ok(None));
}

async fn texting_number_belongs_to_one_practice_until_released(store: DynStore) {
    let (a, _) = setup(&store, &[N1, N2]).await;

    let b = with_numbers(sample_practice(), &[N2]);
    assert_eq!(
        store.create_practice(&b, &default_department(&b)).await,
        Err(StoreError::SmsNumberTaken(N2.into()))
    );
    assert_eq!(
        store.get_practice(&b.id).await,
        Ok(None),
        "the refused practice is not created"
    );

    // A releases N2 (and keeps N1): B may now take it.
    let a2 = practice_with_numbers(&a, &[N1]);
    store.update_practice(&a2, &a).await.expect("release N2");
    assert_eq!(store.practice_by_sms_number(N2).await, Ok(None));
    assert_eq!(
        store.practice_by_sms_number(N1).await,
        Ok(Some(a.id.clone())),
        "kept numbers stay"
    );
    store
        .create_practice(&b, &default_department(&b))
        .await
        .expect("B takes N2");
    assert_eq!(
        store.practice_by_sms_number(N2).await,
        Ok(Some(b.id.clone()))
    );

    // A cannot take it back while B holds it.
    let a3 = practice_with_numbers(&a2, &[N1, N2]);
    assert_eq!(
        store.update_practice(&a3, &a2).await,
        Err(StoreError::SmsNumberTaken(N2.into()))
    );
    assert_eq!(
        store.get_practice(&a.id).await,
        Ok(Some(a2.clone())),
        "the refused update changes nothing"
    );
}

async fn create_practice_is_all_or_nothing(store: DynStore) {
    let (a, _) = setup(&store, &[N2]).await;

    // N1 is free, N2 is A's: nothing of B may be written, N1 included.
    let b = with_numbers(sample_practice(), &[N1, N2, N3]);
    let b_default = default_department(&b);
    assert_eq!(
        store.create_practice(&b, &b_default).await,
        Err(StoreError::SmsNumberTaken(N2.into()))
    );
    assert_eq!(store.practice_by_sms_number(N1).await, Ok(None));
    assert_eq!(store.practice_by_sms_number(N3).await, Ok(None));
    assert_eq!(
        store.practice_by_sms_number(N2).await,
        Ok(Some(a.id.clone()))
    );
    assert_eq!(store.practice_config(&b.id).await, Ok(None));

    // Without N2 it goes through, and its default department name was never held.
    let b = with_numbers(b, &[N1, N3]);
    store
        .create_practice(&b, &b_default)
        .await
        .expect("create B");
    assert_eq!(config(&store, &b.id).await.departments, vec![b_default]);
}

async fn update_practice_checks_version_and_numbers(store: DynStore) {
    let (practice, _) = setup(&store, &[N1]).await;

    // Not there.
    let ghost = sample_practice();
    let mut ghost_next = ghost.clone();
    ghost_next.version += 1;
    assert_eq!(
        store.update_practice(&ghost_next, &ghost).await,
        Err(StoreError::NotFound)
    );

    let mut v2 = practice_with_numbers(&practice, &[N1, N2]);
    v2.name = "Riverside Veterinary".into();
    v2.timezone = chrono_tz::America::Chicago;
    store
        .update_practice(&v2, &practice)
        .await
        .expect("update to v2");
    assert_eq!(store.get_practice(&practice.id).await, Ok(Some(v2.clone())));
    assert_eq!(
        store.practice_by_sms_number(N2).await,
        Ok(Some(practice.id.clone()))
    );

    // From a stale version: refused, nothing changed, no number claimed or released.
    let mut stale = practice_with_numbers(&practice, &[N3]);
    stale.name = "Stale".into();
    assert_eq!(
        store.update_practice(&stale, &practice).await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(store.get_practice(&practice.id).await, Ok(Some(v2.clone())));
    assert_eq!(store.practice_by_sms_number(N3).await, Ok(None));
    assert_eq!(
        store.practice_by_sms_number(N1).await,
        Ok(Some(practice.id.clone()))
    );

    // Without number changes.
    let mut v3 = v2.clone();
    v3.version += 1;
    v3.country = "CA".into();
    store.update_practice(&v3, &v2).await.expect("update to v3");
    assert_eq!(config(&store, &practice.id).await.practice, v3);
    assert_eq!(
        store.update_practice(&v3, &v2).await,
        Err(StoreError::VersionMismatch),
        "v2 is gone"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Departments
// ---------------------------------------------------------------------------------------------------------

async fn department_names_are_unique_per_practice_case_insensitively(store: DynStore) {
    let (a, a_default) = setup(&store, &[]).await;
    let (b, _) = setup(&store, &[]).await;

    create(&store, &a.id, "Surgery").await;
    for taken in ["Surgery", "SURGERY", "surgery", "  sUrGeRy "] {
        let d = sample_department(&a.id, taken);
        assert_eq!(
            store.create_department(&d).await,
            Err(StoreError::DuplicateName),
            "{taken:?}"
        );
        assert_eq!(
            department(&store, &a.id, &d.id).await,
            None,
            "nothing written for {taken:?}"
        );
    }
    // The default department's name is held like any other.
    let clash = sample_department(&a.id, &a_default.settings.name.to_uppercase());
    assert_eq!(
        store.create_department(&clash).await,
        Err(StoreError::DuplicateName)
    );

    // Another practice may use the name.
    create(&store, &b.id, "surgery").await;
    assert_eq!(
        names(&config(&store, &a.id).await),
        vec![a_default.settings.name.as_str(), "Surgery"]
    );
    assert_eq!(names(&config(&store, &b.id).await)[1..], ["surgery"]);
}

async fn create_department_needs_the_practice_and_a_new_id(store: DynStore) {
    let orphan = sample_department(&new_practice_id(), "Surgery");
    assert_eq!(
        store.create_department(&orphan).await,
        Err(StoreError::NotFound)
    );

    let (practice, _) = setup(&store, &[]).await;
    let d = create(&store, &practice.id, "Surgery").await;
    let mut same_id = sample_department(&practice.id, "Dentistry");
    same_id.id = d.id.clone();
    assert_eq!(
        store.create_department(&same_id).await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(department(&store, &practice.id, &d.id).await, Some(d));
    // The refused create did not take its name.
    create(&store, &practice.id, "Dentistry").await;
}

async fn rename_claims_the_new_name_and_releases_the_old(store: DynStore) {
    let (practice, _) = setup(&store, &[]).await;
    let surgery = create(&store, &practice.id, "Surgery").await;
    let dentistry = create(&store, &practice.id, "Dentistry").await;

    // Onto a taken name (any case): refused, nothing changed.
    let clash = renamed(&surgery, "DENTISTRY");
    assert_eq!(
        store.update_department(&clash, &surgery).await,
        Err(StoreError::DuplicateName)
    );
    assert_eq!(
        department(&store, &practice.id, &surgery.id).await,
        Some(surgery.clone())
    );

    let v2 = renamed(&surgery, "Exotics");
    store
        .update_department(&v2, &surgery)
        .await
        .expect("rename");
    assert_eq!(
        department(&store, &practice.id, &surgery.id).await,
        Some(v2.clone())
    );
    // The new name is held, the old one free.
    assert_eq!(
        store
            .create_department(&sample_department(&practice.id, "exotics"))
            .await,
        Err(StoreError::DuplicateName)
    );
    let new_surgery = create(&store, &practice.id, "surgery").await;

    // A change of case only keeps the name (it is the same name).
    let v3 = renamed(&v2, "EXOTICS");
    store
        .update_department(&v3, &v2)
        .await
        .expect("change case");
    assert_eq!(
        store
            .create_department(&sample_department(&practice.id, "Exotics"))
            .await,
        Err(StoreError::DuplicateName)
    );

    let mut expected = [v3, dentistry, new_surgery];
    expected.sort_by_key(|d| d.settings.name.to_lowercase());
    assert_eq!(
        config(&store, &practice.id).await.departments[1..],
        expected[..]
    );
}

async fn stale_version_is_version_mismatch_and_changes_nothing(store: DynStore) {
    let (practice, _) = setup(&store, &[]).await;
    let v1 = create(&store, &practice.id, "Surgery").await;
    let v2 = next_version(&v1, |s| s.online = false);
    store.update_department(&v2, &v1).await.expect("v1 -> v2");

    // Both a settings change and a rename from v1 are stale now.
    let stale = next_version(&v1, |s| s.visible_in_app = true);
    assert_eq!(
        store.update_department(&stale, &v1).await,
        Err(StoreError::VersionMismatch)
    );
    let stale_rename = renamed(&v1, "Dentistry");
    assert_eq!(
        store.update_department(&stale_rename, &v1).await,
        Err(StoreError::VersionMismatch)
    );

    assert_eq!(
        department(&store, &practice.id, &v1.id).await,
        Some(v2.clone())
    );
    // The refused rename did not take its name.
    create(&store, &practice.id, "Dentistry").await;

    let v3 = next_version(&v2, |s| s.online = true);
    store.update_department(&v3, &v2).await.expect("v2 -> v3");
    assert_eq!(department(&store, &practice.id, &v1.id).await, Some(v3));
}

async fn deleted_department_is_not_found_and_its_name_free(store: DynStore) {
    let (practice, default) = setup(&store, &[]).await;
    let d = create(&store, &practice.id, "Surgery").await;

    store.delete_department(&d).await.expect("delete");
    assert_eq!(department(&store, &practice.id, &d.id).await, None);
    assert_eq!(
        config(&store, &practice.id).await.departments,
        vec![default]
    );

    assert_eq!(store.delete_department(&d).await, Err(StoreError::NotFound));
    assert_eq!(
        store
            .update_department(&next_version(&d, |s| s.online = false), &d)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.update_department(&renamed(&d, "Dentistry"), &d).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .delete_department(&sample_department(&practice.id, "Never"))
            .await,
        Err(StoreError::NotFound)
    );

    // Its name is free again, and the refused rename did not take "Dentistry".
    create(&store, &practice.id, "SURGERY").await;
    create(&store, &practice.id, "Dentistry").await;
}

async fn delete_with_a_copy_from_before_a_rename_releases_the_current_name(store: DynStore) {
    let (practice, _) = setup(&store, &[]).await;
    let v1 = create(&store, &practice.id, "Surgery").await;
    let v2 = renamed(&v1, "Exotics");
    store.update_department(&v2, &v1).await.expect("rename");

    // The caller still holds v1 ("Surgery"); the stored name is "Exotics".
    store.delete_department(&v1).await.expect("delete");
    assert_eq!(department(&store, &practice.id, &v1.id).await, None);
    create(&store, &practice.id, "Exotics").await;
    create(&store, &practice.id, "Surgery").await;
}

async fn update_department_never_touches_open_conversations(store: DynStore) {
    let (practice, _) = setup(&store, &[]).await;
    let v1 = create(&store, &practice.id, "Surgery").await;

    // Whatever counter the caller's copy carries, the stored one stays (conversations own it).
    let mut v2 = next_version(&v1, |s| s.online = false);
    v2.open_conversations = 99;
    store.update_department(&v2, &v1).await.expect("update");
    let mut v3 = renamed(&v2, "Dentistry");
    v3.open_conversations = 42;
    store.update_department(&v3, &v2).await.expect("rename");

    let stored = department(&store, &practice.id, &v1.id)
        .await
        .expect("stored");
    assert_eq!(stored.open_conversations, 0);
    assert_eq!(stored.settings, v3.settings);
    assert_eq!(stored.version, 3);
}

async fn departments_list_default_first_then_by_name(store: DynStore) {
    let (practice, default) = setup(&store, &[]).await;
    for name in ["zeta", "Alpha", "beta", "Gamma", "Aardvark clinic"] {
        create(&store, &practice.id, name).await;
    }
    // The default's name ("Riverside Vets Team") would sort after "Gamma"; it still comes first.
    assert_eq!(
        names(&config(&store, &practice.id).await),
        vec![
            default.settings.name.as_str(),
            "Aardvark clinic",
            "Alpha",
            "beta",
            "Gamma",
            "zeta"
        ]
    );
}

async fn another_practice_is_never_seen(store: DynStore) {
    let (a, a_default) = setup(&store, &[]).await;
    let (b, b_default) = setup(&store, &[]).await;
    let a_dept = create(&store, &a.id, "Surgery").await;
    let b_dept = create(&store, &b.id, "Dentistry").await;

    assert_eq!(
        config(&store, &a.id).await.departments,
        vec![a_default.clone(), a_dept.clone()]
    );
    assert_eq!(
        config(&store, &b.id).await.departments,
        vec![b_default, b_dept.clone()]
    );
    assert_eq!(
        store.practice_and_department(&a.id, &b_dept.id).await,
        Ok((Some(a.clone()), None))
    );

    // B's department addressed as A's is not there.
    let mut as_a = b_dept.clone();
    as_a.practice_id = a.id.clone();
    assert_eq!(
        store
            .update_department(&next_version(&as_a, |s| s.online = false), &as_a)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.delete_department(&as_a).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(department(&store, &b.id, &b_dept.id).await, Some(b_dept));
    assert_eq!(
        config(&store, &a.id).await.departments,
        vec![a_default, a_dept]
    );
}

async fn settings_round_trip_exactly(store: DynStore) {
    let (practice, _) = setup(&store, &[N1]).await;
    let settings: DepartmentSettings = serde_json::from_value(serde_json::json!({
        "name": "Night Clinic — Ünïcode",
        "visible_in_app": true,
        "online": false,
        "alerts": { "enabled": true, "emails": ["a@example.com", "b@example.com"], "sms_numbers": ["+12025550199"] },
        "unresolved_reminder": { "enabled": true, "at": "16:45" },
        "hours": {
            "mon": { "start": "08:00", "end": "24:00" },
            "tue": null,
            "wed": { "start": "00:00", "end": "12:30" },
            "sat": { "start": "10:00", "end": "14:00" }
        },
        "date_overrides": [
            { "start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working" },
            { "start_date": "2026-12-31", "end_date": "2026-12-31", "kind": "working", "start": "10:00", "end": "14:00" }
        ],
        "chat": { "greeting": "Hello! 🐾", "allow_messages_after_hours": false, "after_hours_message": "Closed." }
    }))
    .expect("settings");
    let mut d = sample_department(&practice.id, "x");
    d.settings = settings.clone();
    store.create_department(&d).await.expect("create");
    assert_eq!(
        department(&store, &practice.id, &d.id).await,
        Some(d.clone())
    );

    // And back to empty/none values.
    let v2 = next_version(&d, |s| {
        *s = DepartmentSettings::defaults(settings.name.clone())
    });
    store.update_department(&v2, &d).await.expect("update");
    assert_eq!(
        department(&store, &practice.id, &d.id).await,
        Some(v2.clone())
    );
    assert_eq!(config(&store, &practice.id).await.departments[1], v2);
}

// ---------------------------------------------------------------------------------------------------------
// Real concurrency: every racer starts at a barrier; exactly one may win.
// ---------------------------------------------------------------------------------------------------------

async fn race<T, F, Fut>(racers: Vec<T>, run: F) -> Vec<Result<(), StoreError>>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send,
{
    let barrier = Arc::new(Barrier::new(racers.len()));
    let run = Arc::new(run);
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|racer| {
            let (barrier, run) = (barrier.clone(), run.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                run(racer).await
            })
        })
        .collect();
    // Results in racer order, so a result's index names its racer.
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("racer task"));
    }
    results
}

fn tally(results: &[Result<(), StoreError>]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for r in results {
        *tally.entry(format!("{r:?}")).or_default() += 1;
    }
    tally
}

async fn concurrent_creates_with_one_name_admit_exactly_one(store: DynStore) {
    let (practice, _) = setup(&store, &[]).await;
    let cases = ["Surgery", "SURGERY", "surgery", "SuRgErY"];
    let racers: Vec<Department> = (0..16)
        .map(|i| sample_department(&practice.id, cases[i % cases.len()]))
        .collect();
    let s = store.clone();
    let results = race(racers, move |d| {
        let s = s.clone();
        async move { s.create_department(&d).await }
    })
    .await;
    let expected = BTreeMap::from([
        ("Ok(())".to_owned(), 1),
        ("Err(DuplicateName)".to_owned(), 15),
    ]);
    assert_eq!(tally(&results), expected);
    assert_eq!(
        config(&store, &practice.id).await.departments.len(),
        2,
        "default + the one winner"
    );
}

async fn concurrent_updates_from_one_version_admit_exactly_one(store: DynStore) {
    let (practice, _) = setup(&store, &[]).await;
    let v1 = create(&store, &practice.id, "Surgery").await;
    // Half change settings only, half also rename (a transaction instead of a single update).
    let racers: Vec<Department> = (0..8)
        .map(|i| {
            next_version(&v1, |s| {
                s.chat.greeting = Some(format!("writer {i}"));
                if i % 2 == 1 {
                    s.name = format!("Surgery {i}");
                }
            })
        })
        .collect();
    let s = store.clone();
    let previous = v1.clone();
    let results = race(racers.clone(), move |d| {
        let (s, previous) = (s.clone(), previous.clone());
        async move { s.update_department(&d, &previous).await }
    })
    .await;
    let expected = BTreeMap::from([
        ("Ok(())".to_owned(), 1),
        ("Err(VersionMismatch)".to_owned(), 7),
    ]);
    assert_eq!(tally(&results), expected);

    let winner = results.iter().position(Result::is_ok).expect("a winner");
    assert_eq!(
        department(&store, &practice.id, &v1.id).await.as_ref(),
        Some(&racers[winner])
    );
    // Only the winner's name is held: every losing rename's name is free.
    for (_, racer) in racers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != winner && i % 2 == 1)
    {
        create(&store, &practice.id, &racer.settings.name).await;
    }
    if winner % 2 == 1 {
        // The winner renamed: "Surgery" is free again.
        create(&store, &practice.id, "Surgery").await;
    }
}

async fn concurrent_renames_to_one_name_admit_exactly_one(store: DynStore) {
    let (practice, _) = setup(&store, &[]).await;
    let mut originals = Vec::new();
    for i in 0..8 {
        originals.push(create(&store, &practice.id, &format!("Room {i}")).await);
    }
    let racers: Vec<(Department, Department)> = originals
        .iter()
        .map(|d| (renamed(d, "Isolation"), d.clone()))
        .collect();
    let s = store.clone();
    let results = race(racers, move |(next, previous)| {
        let s = s.clone();
        async move { s.update_department(&next, &previous).await }
    })
    .await;
    let expected = BTreeMap::from([
        ("Ok(())".to_owned(), 1),
        ("Err(DuplicateName)".to_owned(), 7),
    ]);
    assert_eq!(tally(&results), expected);
    let listed = config(&store, &practice.id).await;
    assert_eq!(
        listed
            .departments
            .iter()
            .filter(|d| d.settings.name == "Isolation")
            .count(),
        1
    );
    assert_eq!(listed.departments.len(), 9);
}

async fn concurrent_practices_with_one_number_admit_exactly_one(store: DynStore) {
    let racers: Vec<Practice> = (0..8)
        .map(|_| with_numbers(sample_practice(), &[N1]))
        .collect();
    let s = store.clone();
    let results = race(racers.clone(), move |p| {
        let s = s.clone();
        async move { s.create_practice(&p, &default_department(&p)).await }
    })
    .await;
    let expected = BTreeMap::from([
        ("Ok(())".to_owned(), 1),
        (format!("Err(SmsNumberTaken({N1:?}))"), 7),
    ]);
    assert_eq!(tally(&results), expected);

    let winner = &racers[results.iter().position(Result::is_ok).expect("a winner")];
    assert_eq!(
        store.practice_by_sms_number(N1).await,
        Ok(Some(winner.id.clone()))
    );
    for loser in racers.iter().filter(|p| p.id != winner.id) {
        assert_eq!(store.get_practice(&loser.id).await, Ok(None));
    }
}

// ---------------------------------------------------------------------------------------------------------
// DynamoDB only: request budgets, the table's shape, the item layout
// ---------------------------------------------------------------------------------------------------------

/// The requests `f` sends, by operation.
async fn requests<F: std::future::Future>(
    store: &DynamoStore,
    f: F,
) -> (F::Output, BTreeMap<String, u64>) {
    store.request_counter().reset();
    let out = f.await;
    (out, store.request_counts())
}

fn one(operation: &str) -> BTreeMap<String, u64> {
    BTreeMap::from([(operation.to_owned(), 1)])
}

#[tokio::test]
async fn dynamo_requests_stay_within_budget() {
    let store = fresh_dynamo_store().await;
    let practice = with_numbers(sample_practice(), &[N1]);
    let default = default_department(&practice);

    let (r, n) = requests(&store, store.create_practice(&practice, &default)).await;
    assert_eq!(
        (r, n),
        (Ok(()), one("TransactWriteItems")),
        "create_practice"
    );
    let d = sample_department(&practice.id, "Surgery");
    let (r, n) = requests(&store, store.create_department(&d)).await;
    assert_eq!(
        (r, n),
        (Ok(()), one("TransactWriteItems")),
        "create_department"
    );

    let (r, n) = requests(&store, store.practice_config(&practice.id)).await;
    assert_eq!(r.expect("config").expect("practice").departments.len(), 2);
    assert_eq!(n, one("Query"), "practice_config");
    let (r, n) = requests(&store, store.practice_and_department(&practice.id, &d.id)).await;
    assert!(matches!(r, Ok((Some(_), Some(_)))));
    assert_eq!(n, one("BatchGetItem"), "practice_and_department");
    let (r, n) = requests(&store, store.get_practice(&practice.id)).await;
    assert!(matches!(r, Ok(Some(_))));
    assert_eq!(n, one("GetItem"), "get_practice");
    let (r, n) = requests(&store, store.practice_by_sms_number(N1)).await;
    assert_eq!(
        (r, n),
        (Ok(Some(practice.id.clone())), one("GetItem")),
        "practice_by_sms_number"
    );

    let v2 = next_version(&d, |s| s.online = false);
    let (r, n) = requests(&store, store.update_department(&v2, &d)).await;
    assert_eq!(
        (r, n),
        (Ok(()), one("UpdateItem")),
        "update_department without rename"
    );
    let v3 = renamed(&v2, "Dentistry");
    let (r, n) = requests(&store, store.update_department(&v3, &v2)).await;
    assert_eq!(
        (r, n),
        (Ok(()), one("TransactWriteItems")),
        "update_department with rename"
    );
    let stale = next_version(&d, |s| s.online = true);
    let (r, n) = requests(&store, store.update_department(&stale, &d)).await;
    assert_eq!(
        (r, n),
        (Err(StoreError::VersionMismatch), one("UpdateItem")),
        "a refused update"
    );

    let mut p2 = practice.clone();
    p2.version += 1;
    p2.name = "Renamed".into();
    let (r, n) = requests(&store, store.update_practice(&p2, &practice)).await;
    assert_eq!(
        (r, n),
        (Ok(()), one("PutItem")),
        "update_practice without number changes"
    );
    let p3 = practice_with_numbers(&p2, &[N2]);
    let (r, n) = requests(&store, store.update_practice(&p3, &p2)).await;
    assert_eq!(
        (r, n),
        (Ok(()), one("TransactWriteItems")),
        "update_practice with number changes"
    );

    let (r, n) = requests(&store, store.delete_department(&v3)).await;
    assert_eq!(
        (r, n),
        (Ok(()), one("TransactWriteItems")),
        "delete_department"
    );
}

#[tokio::test]
async fn dynamo_table_matches_the_spec_and_ensure_table_is_idempotent() {
    let store = fresh_dynamo_store().await;
    let client = vetchat_tests::dynamo_client().await;
    let table = store.table_name().to_owned();

    assert_eq!(describe_table_spec(&client, &table).await, table_spec());
    // Again, on the existing table, and concurrently: no error, same shape, data kept.
    let (practice, default) = (sample_practice(), default_department(&sample_practice()));
    let practice = Practice {
        default_department_id: default.id.clone(),
        id: default.practice_id.clone(),
        ..practice
    };
    store
        .create_practice(&practice, &default)
        .await
        .expect("create practice");
    let (a, b) = tokio::join!(ensure_table(&client, &table), ensure_table(&client, &table));
    a.expect("ensure_table again");
    b.expect("ensure_table concurrently");
    assert_eq!(describe_table_spec(&client, &table).await, table_spec());
    assert_eq!(store.get_practice(&practice.id).await, Ok(Some(practice)));

    // A table that does not exist yet, created by concurrent callers.
    let fresh = vetchat_tests::unique_table_name();
    let (a, b) = tokio::join!(ensure_table(&client, &fresh), ensure_table(&client, &fresh));
    a.expect("ensure_table");
    b.expect("ensure_table concurrently");
    assert_eq!(describe_table_spec(&client, &fresh).await, table_spec());
}

/// The layout later features build on: settings in one map beside a numeric counter that conversation
/// transactions `ADD` to; the uniqueness records where the design says.
#[tokio::test]
async fn dynamo_item_layout_keeps_the_counter_apart_from_settings() {
    let store = fresh_dynamo_store().await;
    let client = vetchat_tests::dynamo_client().await;
    let table = store.table_name().to_owned();
    let practice = with_numbers(sample_practice(), &[N1]);
    store
        .create_practice(&practice, &default_department(&practice))
        .await
        .expect("create practice");
    let d = sample_department(&practice.id, "Surgery");
    store
        .create_department(&d)
        .await
        .expect("create department");

    let get = |pk: String, sk: String| {
        let client = client.clone();
        let table = table.clone();
        async move {
            client
                .get_item()
                .table_name(table)
                .key("PK", AttributeValue::S(pk))
                .key("SK", AttributeValue::S(sk))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem")
                .item
        }
    };
    let item = get(
        format!("PRACTICE#{}", practice.id),
        format!("DEPT#{}", d.id),
    )
    .await
    .expect("department item");
    assert!(
        item.get("settings").is_some_and(|v| v.is_m()),
        "settings is one map attribute"
    );
    assert_eq!(
        item.get("open_conversations"),
        Some(&AttributeValue::N("0".into()))
    );
    assert!(get(format!("PRACTICE#{}", practice.id), "PRACTICE".into())
        .await
        .is_some());
    let name = get(
        format!("DEPTNAME#{}#surgery", practice.id),
        "DEPTNAME".into(),
    )
    .await
    .expect("name record");
    assert_eq!(
        name.get("department_id"),
        Some(&AttributeValue::S(d.id.to_string()))
    );
    let number = get(format!("SMSNUMBER#{N1}"), "SMSNUMBER".into())
        .await
        .expect("number record");
    assert_eq!(
        number.get("practice_id"),
        Some(&AttributeValue::S(practice.id.to_string()))
    );

    // A conversation transaction's counter change (as the later conversation code will do it) survives a
    // settings write and a rename.
    client
        .update_item()
        .table_name(&table)
        .key("PK", AttributeValue::S(format!("PRACTICE#{}", practice.id)))
        .key("SK", AttributeValue::S(format!("DEPT#{}", d.id)))
        .update_expression("ADD open_conversations :one")
        .expression_attribute_values(":one", AttributeValue::N("2".into()))
        .send()
        .await
        .expect("ADD");
    let v2 = next_version(&d, |s| s.online = false);
    store.update_department(&v2, &d).await.expect("update");
    let v3 = renamed(&v2, "Dentistry");
    store.update_department(&v3, &v2).await.expect("rename");
    let stored = department_of(&store, &practice.id, &d.id).await;
    assert_eq!(
        (stored.open_conversations, stored.settings),
        (2, v3.settings)
    );
    assert!(
        get(
            format!("DEPTNAME#{}#surgery", practice.id),
            "DEPTNAME".into()
        )
        .await
        .is_none(),
        "released"
    );
}

async fn department_of(
    store: &DynamoStore,
    practice_id: &PracticeId,
    id: &DepartmentId,
) -> Department {
    store
        .practice_and_department(practice_id, id)
        .await
        .expect("read")
        .1
        .expect("department")
}
