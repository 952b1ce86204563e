//! No drift between what SAM deploys and what runs locally:
//!
//! - the table `template.yaml` declares and the table the local server and the tests create
//!   (`adapters::store::table_spec()`, which `ensure_table` creates) have the same key schema, attribute
//!   definitions, global secondary indexes (names, keys, projection), billing mode, stream view type and TTL
//!   attribute; and every index an IAM policy of the template names (`${Table.Arn}/index/NAME`) exists;
//! - every function the template deploys (`Metadata.BuildProperties.Binary`) is a binary of the workspace,
//!   and every Lambda binary of the workspace (those of the packages under `functions/`, but the local
//!   server's) is deployed.
//!
//! The comparisons take the template's text, so `a_drifted_template_is_caught` feeds them mutated copies.
//! `template.yaml` uses CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`): serde_yaml reads them as
//! tagged values, which the table's properties do not use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use adapters::store::{table_spec, IndexSpec, KeyAttribute, TableSpec};
use serde_yaml::Value as Yaml;
use vetchat_tests::local_server::workspace_root;

// ---------------------------------------------------------------------------------------------------------
// The comparisons
// ---------------------------------------------------------------------------------------------------------

/// What differs between the table `template` declares and [`table_spec`] (empty: no drift).
fn table_drift(template: &str) -> Vec<String> {
    let mut drift = Vec::new();
    let declared = match template_table(template) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let local = table_spec();
    let mut differs = |what: &str, template: String, local: String| {
        if template != local {
            drift.push(format!(
                "{what}: template.yaml {template}, table_spec() {local}"
            ));
        }
    };
    differs(
        "hash key",
        key_text(&declared.spec.hash_key),
        key_text(&local.hash_key),
    );
    differs(
        "range key",
        key_text(&declared.spec.range_key),
        key_text(&local.range_key),
    );
    differs(
        "indexes",
        indexes_text(&declared.spec.indexes),
        indexes_text(&local.indexes),
    );
    differs(
        "billing mode",
        declared.spec.billing_mode.clone(),
        local.billing_mode.clone(),
    );
    differs(
        "stream view type",
        declared.spec.stream_view_type.clone(),
        local.stream_view_type.clone(),
    );
    differs(
        "TTL attribute",
        declared.spec.ttl_attribute.clone(),
        local.ttl_attribute.clone(),
    );
    // CloudFormation wants exactly the key attributes of the table and its indexes defined, each once.
    let spec = &declared.spec;
    let keys: BTreeSet<(String, String)> = [&spec.hash_key, &spec.range_key]
        .into_iter()
        .chain(
            spec.indexes
                .iter()
                .flat_map(|i| [&i.hash_key, &i.range_key]),
        )
        .map(|k| (k.name.clone(), k.attribute_type.clone()))
        .collect();
    if declared.attribute_definitions != keys {
        drift.push(format!(
            "attribute definitions: template.yaml defines {:?}, its keys use {keys:?}",
            declared.attribute_definitions
        ));
    }
    drift.extend(declared.problems);
    // An index the policies name that the table does not have would fail only at run time (AccessDenied).
    let names: BTreeSet<&str> = local.indexes.iter().map(|i| i.name.as_str()).collect();
    for index in policy_index_names(template) {
        if index != "*" && !names.contains(index.as_str()) {
            drift.push(format!(
                "a policy grants ${{Table.Arn}}/index/{index}, but the table has no index {index} (it has {names:?})"
            ));
        }
    }
    drift
}

/// What differs between the functions `template` deploys and the workspace's Lambda binaries `binaries`.
fn function_drift(template: &str, binaries: &BTreeSet<String>) -> Vec<String> {
    let deployed = match deployed_binaries(template) {
        Ok(d) => d,
        Err(e) => return vec![e],
    };
    let mut drift = Vec::new();
    let mut seen = BTreeSet::new();
    for (resource, binary) in &deployed {
        if !binaries.contains(binary) {
            drift.push(format!(
                "{resource} deploys binary {binary:?}, which is not a Lambda binary of the workspace {binaries:?}"
            ));
        }
        if !seen.insert(binary) {
            drift.push(format!(
                "{resource} deploys binary {binary:?}, which another function deploys too"
            ));
        }
    }
    for binary in binaries {
        if !deployed.iter().any(|(_, b)| b == binary) {
            drift.push(format!(
                "the workspace's Lambda binary {binary:?} is deployed by no AWS::Serverless::Function of template.yaml"
            ));
        }
    }
    drift
}

// ---------------------------------------------------------------------------------------------------------
// Reading the template
// ---------------------------------------------------------------------------------------------------------

struct DeclaredTable {
    spec: TableSpec,
    attribute_definitions: BTreeSet<(String, String)>,
    /// What is wrong with the declaration itself (a key without a definition, TTL or stream off, ...).
    problems: Vec<String>,
}

fn parse(template: &str) -> Result<Yaml, String> {
    serde_yaml::from_str(template).map_err(|e| format!("template.yaml is not YAML: {e}"))
}

fn resources(doc: &Yaml) -> Result<Vec<(String, &Yaml)>, String> {
    let map = doc["Resources"]
        .as_mapping()
        .ok_or("template.yaml has no Resources")?;
    Ok(map
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v))
        .collect())
}

fn text(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn key_text(k: &KeyAttribute) -> String {
    format!("{} ({})", k.name, k.attribute_type)
}

fn indexes_text(indexes: &[IndexSpec]) -> String {
    let mut sorted: Vec<String> = indexes
        .iter()
        .map(|i| {
            format!(
                "{}: {} / {}, projection {}",
                i.name,
                key_text(&i.hash_key),
                key_text(&i.range_key),
                i.projection
            )
        })
        .collect();
    sorted.sort();
    format!("[{}]", sorted.join("; "))
}

/// The one `AWS::DynamoDB::Table` of the template, as a [`TableSpec`].
fn template_table(template: &str) -> Result<DeclaredTable, String> {
    let doc = parse(template)?;
    let tables: Vec<(String, &Yaml)> = resources(&doc)?
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .collect();
    let [(name, table)] = tables.as_slice() else {
        return Err(format!(
            "template.yaml declares {} DynamoDB tables; the service uses one",
            tables.len()
        ));
    };
    let props = &table["Properties"];
    let mut problems = Vec::new();
    let attribute_definitions: BTreeSet<(String, String)> = props["AttributeDefinitions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|d| (text(&d["AttributeName"]), text(&d["AttributeType"])))
        .collect();
    let types: BTreeMap<&str, &str> = attribute_definitions
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut key = |schema: &Yaml, kind: &str, whose: &str| -> KeyAttribute {
        let found: Vec<String> = schema
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|k| k["KeyType"].as_str() == Some(kind))
            .map(|k| text(&k["AttributeName"]))
            .collect();
        let name = match found.as_slice() {
            [one] => one.clone(),
            _ => {
                problems.push(format!("{whose}: {} {kind} keys", found.len()));
                String::new()
            }
        };
        let attribute_type = types.get(name.as_str()).copied().unwrap_or_else(|| {
            problems.push(format!(
                "{whose}: key {name:?} has no AttributeDefinitions entry"
            ));
            "?"
        });
        KeyAttribute {
            attribute_type: attribute_type.to_owned(),
            name,
        }
    };
    let hash_key = key(&props["KeySchema"], "HASH", name);
    let range_key = key(&props["KeySchema"], "RANGE", name);
    let mut indexes: Vec<IndexSpec> = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|i| {
            let index_name = text(&i["IndexName"]);
            let whose = format!("{name} index {index_name}");
            IndexSpec {
                hash_key: key(&i["KeySchema"], "HASH", &whose),
                range_key: key(&i["KeySchema"], "RANGE", &whose),
                projection: text(&i["Projection"]["ProjectionType"]),
                name: index_name,
            }
        })
        .collect();
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    if props["StreamSpecification"].is_null() {
        problems.push(format!(
            "{name} has no stream (the alert dispatcher reads it)"
        ));
    }
    let ttl = &props["TimeToLiveSpecification"];
    if ttl["Enabled"].as_bool() != Some(true) {
        problems.push(format!("{name}: TTL is not enabled"));
    }
    Ok(DeclaredTable {
        spec: TableSpec {
            hash_key,
            range_key,
            indexes,
            billing_mode: text(&props["BillingMode"]),
            stream_view_type: text(&props["StreamSpecification"]["StreamViewType"]),
            ttl_attribute: text(&ttl["AttributeName"]),
        },
        attribute_definitions,
        problems,
    })
}

/// `(resource, Metadata.BuildProperties.Binary)` of every `AWS::Serverless::Function`.
fn deployed_binaries(template: &str) -> Result<Vec<(String, String)>, String> {
    let doc = parse(template)?;
    let mut out = Vec::new();
    for (name, resource) in resources(&doc)? {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .ok_or_else(|| format!("{name} has no Metadata.BuildProperties.Binary"))?;
        out.push((name, binary.to_owned()));
    }
    Ok(out)
}

/// The index names of every `${Table.Arn}/index/NAME` in the template (policies' resources).
fn policy_index_names(template: &str) -> BTreeSet<String> {
    const MARK: &str = "${Table.Arn}/index/";
    let mut names = BTreeSet::new();
    let mut rest = template;
    while let Some(at) = rest.find(MARK) {
        rest = &rest[at + MARK.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*'))
            .collect();
        names.insert(name);
    }
    names
}

// ---------------------------------------------------------------------------------------------------------
// The workspace
// ---------------------------------------------------------------------------------------------------------

fn template_text() -> String {
    let path = workspace_root().join("template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The binaries of the workspace's packages under `functions/` but the local server (`cargo metadata`, so
/// `[[bin]]` entries, `src/main.rs` and `src/bin/` all count as cargo counts them). Tools elsewhere (tests,
/// benchmarks) are not Lambda functions.
fn lambda_binaries() -> BTreeSet<String> {
    let out =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(workspace_root())
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .output()
            .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let functions = workspace_root().join("functions");
    let mut binaries = BTreeSet::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&functions) || package["name"] == "local" {
            continue;
        }
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
            if is_bin {
                binaries.insert(target["name"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    binaries
}

// ---------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------

#[test]
fn the_template_declares_the_local_table() {
    let drift = table_drift(&template_text());
    assert!(
        drift.is_empty(),
        "template.yaml and adapters::store::table_spec() differ:\n  {}",
        drift.join("\n  ")
    );
}

#[test]
fn the_template_deploys_every_lambda_binary_and_only_those() {
    let binaries = lambda_binaries();
    for expected in [
        "config-api",
        "inbound-router",
        "inbound-sms",
        "transfer-alerts",
        "alert-dispatcher",
        "eod-reminder",
        "text-status",
        "text-sweep",
    ] {
        assert!(binaries.contains(expected), "{expected} in {binaries:?}");
    }
    assert!(
        !binaries.contains("local"),
        "the local server is not a Lambda"
    );
    let drift = function_drift(&template_text(), &binaries);
    assert!(
        drift.is_empty(),
        "template.yaml and the workspace's binaries differ:\n  {}",
        drift.join("\n  ")
    );
}

/// The functions that may send a text (their policy grants `sms-voice:SendTextMessage`), with their
/// `Timeout` in seconds (Lambda's default, 3 s, when unset).
fn text_senders(template: &str) -> Result<Vec<(String, u64)>, String> {
    let doc = parse(template)?;
    let global = doc["Globals"]["Function"]["Timeout"].as_u64().unwrap_or(3);
    Ok(resources(&doc)?
        .into_iter()
        .filter(|(_, r)| text(&r["Type"]) == "AWS::Serverless::Function")
        .filter(|(_, r)| {
            serde_yaml::to_string(&r["Properties"]["Policies"])
                .is_ok_and(|p| p.contains("sms-voice:SendTextMessage"))
        })
        .map(|(name, r)| {
            let timeout = r["Properties"]["Timeout"].as_u64().unwrap_or(global);
            (name, timeout)
        })
        .collect())
}

#[test]
fn no_text_sender_runs_longer_than_the_sweep_waits_before_taking_a_text_over() {
    // The sweep takes a text `sending` for `SWEEP_AFTER` as a sender's that died; a live sender's Lambda
    // must have been stopped by then, or the sweep would mark unconfirmed a text about to be sent.
    let senders = text_senders(&template_text()).expect("template");
    let names: Vec<&str> = senders.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"AlertDispatcherFunction") && names.contains(&"TextSweepFunction"),
        "{names:?}"
    );
    let limit = domain::texting::SWEEP_AFTER.num_seconds() as u64;
    for (name, timeout) in senders {
        assert!(
            timeout < limit,
            "{name}'s Timeout {timeout} s is not below the sweep's {limit} s"
        );
    }
    let longer = template_text().replacen("Timeout: 60", "Timeout: 900", 1);
    assert!(
        text_senders(&longer)
            .expect("template")
            .iter()
            .any(|(_, t)| *t >= limit),
        "a sender's longer timeout is seen"
    );
}

/// The table `ensure_table` creates on DynamoDB Local (what `DescribeTable` reports) is the template's too.
#[tokio::test]
async fn the_table_dynamodb_local_gets_is_the_templates() {
    let client = vetchat_tests::dynamo_client().await;
    let table = vetchat_tests::unique_table_name();
    adapters::store::ensure_table(&client, &table)
        .await
        .expect("create the table");
    let described = vetchat_tests::describe_table_spec(&client, &table).await;
    let declared = template_table(&template_text()).expect("the template's table");
    assert_eq!(declared.spec, described);
}

/// Each drift below, made in a copy of template.yaml, is reported (and the copy without it is clean).
#[test]
fn a_drifted_template_is_caught() {
    let template = template_text();
    let binaries = lambda_binaries();
    assert!(table_drift(&template).is_empty());
    assert!(function_drift(&template, &binaries).is_empty());

    /// `template` with `from` replaced by `to` once; the pattern must be there (else the case tests nothing).
    fn mutated(template: &str, from: &str, to: &str) -> String {
        assert!(
            template.contains(from),
            "template.yaml has no {from:?} to mutate"
        );
        template.replacen(from, to, 1)
    }

    let table_cases = [
        (
            "an index renamed",
            "IndexName: DUE\n",
            "IndexName: DUE_V2\n",
            "DUE_V2",
        ),
        (
            "an index's projection",
            "ProjectionType: ALL",
            "ProjectionType: KEYS_ONLY",
            "KEYS_ONLY",
        ),
        (
            "an index's sort key",
            "- AttributeName: DUE_AT\n              KeyType: RANGE",
            "- AttributeName: DUE_PK\n              KeyType: RANGE",
            "DUE: DUE_PK (S) / DUE_PK (S)",
        ),
        (
            "a key attribute's type",
            "- AttributeName: SK\n          AttributeType: S",
            "- AttributeName: SK\n          AttributeType: N",
            "range key",
        ),
        (
            "the stream's view type",
            "StreamViewType: NEW_AND_OLD_IMAGES",
            "StreamViewType: KEYS_ONLY",
            "stream view type",
        ),
        (
            "the TTL attribute",
            "AttributeName: expires_at",
            "AttributeName: ttl",
            "TTL attribute",
        ),
        (
            "provisioned billing",
            "BillingMode: PAY_PER_REQUEST",
            "BillingMode: PROVISIONED",
            "billing mode",
        ),
        (
            "a policy naming an index the table lacks",
            "${Table.Arn}/index/DUE\"",
            "${Table.Arn}/index/DUE_BY_DAY\"",
            "DUE_BY_DAY",
        ),
    ];
    for (what, from, to, mentioned) in table_cases {
        let drift = table_drift(&mutated(&template, from, to));
        assert!(!drift.is_empty(), "{what}: no drift reported");
        assert!(
            drift.iter().any(|d| d.contains(mentioned)),
            "{what}: the report does not mention {mentioned:?}: {drift:?}"
        );
    }
    // An index dropped from the template altogether (its attribute definitions stay: reported too).
    let without_due = {
        let start = template
            .find("        - IndexName: DUE\n")
            .expect("the DUE index");
        let end = start
            + template[start..]
                .find("ProjectionType: ALL\n")
                .expect("its projection")
            + "ProjectionType: ALL\n".len();
        format!("{}{}", &template[..start], &template[end..])
    };
    let drift = table_drift(&without_due);
    assert!(
        drift.iter().any(|d| d.starts_with("indexes")),
        "a dropped index: {drift:?}"
    );
    assert!(
        drift.iter().any(|d| d.starts_with("attribute definitions")),
        "a dropped index's attributes still defined: {drift:?}"
    );

    let function_cases = [
        (
            "a binary that does not exist",
            "Binary: eod-reminder\n",
            "Binary: eod-reminders\n",
            "eod-reminders",
        ),
        (
            "a binary deployed twice, another not at all",
            "Binary: inbound-sms\n",
            "Binary: inbound-router\n",
            "inbound-sms",
        ),
    ];
    for (what, from, to, mentioned) in function_cases {
        let drift = function_drift(&mutated(&template, from, to), &binaries);
        assert!(
            drift.iter().any(|d| d.contains(mentioned)),
            "{what}: {drift:?}"
        );
    }
    // A new Lambda binary in the workspace that the template does not deploy.
    let mut more = binaries.clone();
    more.insert("clinic-sync".to_owned());
    let drift = function_drift(&template, &more);
    assert!(drift.iter().any(|d| d.contains("clinic-sync")), "{drift:?}");
}
