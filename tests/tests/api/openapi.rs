//! `openapi.yaml` (the machine-readable copy of docs/api.md) against the routers and the page: it parses as
//! OpenAPI 3.1, every `$ref` resolves, every route of every function is documented and every documented
//! operation is a route, and docs/api.md names the same operations (the local-only `/_local/...` routes
//! aside). `scripts/schemathesis` checks the responses themselves.

use std::collections::{BTreeMap, BTreeSet};

use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::Value;
use vetchat_tests::api::Api;

const METHODS: &[&str] = &["get", "put", "post", "patch", "delete"];

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn document() -> Value {
    let text =
        std::fs::read_to_string(root().join("openapi.yaml")).expect("openapi.yaml at the root");
    serde_yaml::from_str(&text).expect("openapi.yaml is YAML")
}

/// Documented operations: path template -> methods.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_string())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// The route paths the functions' routers declare (`.route("/...", ...)` in each `functions/*/src/lib.rs`).
fn routed_paths() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let lib = entry.unwrap().path().join("src/lib.rs");
        let Ok(source) = std::fs::read_to_string(&lib) else {
            continue;
        };
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let quoted = rest.trim_start();
            let Some(path) = quoted.strip_prefix('"').and_then(|q| q.split('"').next()) else {
                continue;
            };
            out.insert(path.to_owned());
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn check_refs(doc: &Value, node: &Value, at: &str, broken: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    let target = v.as_str().unwrap_or("");
                    if resolve(doc, target).is_none() {
                        broken.push(format!("{at}: {target}"));
                    }
                } else {
                    check_refs(doc, v, &format!("{at}/{k}"), broken);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_refs(doc, v, &format!("{at}/{i}"), broken);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let doc = document();
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1."),
        "OpenAPI 3.1"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut broken = Vec::new();
    check_refs(&doc, &doc, "", &mut broken);
    assert!(broken.is_empty(), "unresolved $ref: {broken:?}");
    // Bearer auth everywhere but the public route.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    for (path, methods) in documented(&doc) {
        for method in methods {
            let op = &doc["paths"][&path][&method];
            assert!(
                op["operationId"].is_string(),
                "{method} {path}: operationId"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: a success response"
            );
            let public = path.starts_with("/public/");
            assert_eq!(
                op.get("security") == Some(&serde_json::json!([])),
                public,
                "{method} {path}: only /public/ routes go without a token"
            );
            if !public {
                for status in ["401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: documents {status}"
                    );
                }
            }
            let reads_body = op.get("requestBody").is_some();
            assert_eq!(
                responses.contains_key("413"),
                reads_body,
                "{method} {path}: 413 body_too_large exactly where a body is read"
            );
        }
    }
}

#[test]
fn every_route_is_documented_and_every_documented_path_is_a_route() {
    let doc = document();
    let documented: BTreeSet<String> = documented(&doc).into_keys().collect();
    let routed: BTreeSet<String> = routed_paths()
        .into_iter()
        // The local-only routes, and the local WebSocket (on AWS a WebSocket API of its own, not this one).
        .filter(|p| !p.starts_with("/_local/") && *p != "/ws")
        .collect();
    assert!(routed.len() >= 12, "found the routers' routes: {routed:?}");
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes missing from openapi.yaml"
    );
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented paths no router serves"
    );
}

/// The operations docs/api.md names, written `` `METHOD /path` `` (a query string cut off), but the
/// local-only `/_local/...` ones.
fn operations_on_the_page(page: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for method in METHODS {
        let opening = format!("`{} /", method.to_uppercase());
        for (at, _) in page.match_indices(&opening) {
            let operation = page[at + 1..]
                .split(['`', '?', ' '])
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            if !operation.contains(" /_local/") {
                out.insert(operation);
            }
        }
    }
    out
}

/// docs/api.md, the page people read, and openapi.yaml describe the same API: every documented operation
/// is named on the page, and the page names no other.
#[test]
fn docs_api_md_names_every_documented_operation_and_no_other() {
    let documented: BTreeSet<String> = documented(&document())
        .into_iter()
        .flat_map(|(path, methods)| {
            methods
                .into_iter()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let page = std::fs::read_to_string(root().join("docs/api.md")).expect("docs/api.md");
    let named = operations_on_the_page(&page);
    assert!(
        documented.len() >= 17,
        "found the operations: {documented:?}"
    );
    assert_eq!(
        documented.difference(&named).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "operations of openapi.yaml that docs/api.md does not name"
    );
    assert_eq!(
        named.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "operations docs/api.md names that openapi.yaml lacks"
    );
    // The check can fail: a page without one operation, or with one more, is told apart.
    let without = page.replace("`DELETE /departments/{id}`", "deleting a department");
    assert!(!operations_on_the_page(&without).contains("DELETE /departments/{id}"));
    let more = format!("{page}\n`GET /client/conversations`\n");
    assert!(operations_on_the_page(&more).contains("GET /client/conversations"));
}

/// Every method of every documented path, sent to the local server's router: documented methods reach a
/// handler, the others are 405.
#[tokio::test]
async fn documented_methods_are_served_and_no_others() {
    let api = Api::memory().await;
    let doc = document();
    let auth = format!("Bearer {}", Api::token("prc_probe", Role::Admin));
    for (template, methods) in documented(&doc) {
        let path = template
            .replace("{id}", "probe")
            .replace("{practice_id}", "prc_probe");
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = api
                .raw(m.clone(), &path, &[("authorization", &auth)], None)
                .await;
            let no_route = r.status == StatusCode::NOT_FOUND
                && r.body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("no such endpoint");
            if methods.contains(*method) {
                assert!(
                    r.status != StatusCode::METHOD_NOT_ALLOWED && !no_route,
                    "{m} {template} is documented but not served: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {template} is served but not documented: {}",
                    r.body
                );
            }
        }
    }
}
