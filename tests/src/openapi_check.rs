//! Answers checked against `openapi.yaml`: the operation of a request, the response documented for its status,
//! and its body against that response's schema. A small JSON Schema checker of exactly what the document
//! uses (`$ref`, `type`, `properties`, `required`, `additionalProperties: false`, `items`, `enum`, `const`,
//! `oneOf`, `allOf`, `unevaluatedProperties: false` over `allOf`, lengths, bounds); `pattern` and `format`
//! are left to schemathesis (`scripts/schemathesis`).

use std::sync::OnceLock;

use serde_json::Value;

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml at the root");
        serde_yaml::from_str(&text).expect("openapi.yaml is YAML")
    })
}

fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            doc,
            doc.pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved {r}")),
        ),
        None => node,
    }
}

/// The documented path template a concrete path (query left out) matches.
fn template_of(doc: &Value, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.keys().find_map(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
        matches.then(|| template.clone())
    })
}

/// What is wrong with an answer of `method path` by the document: an undocumented operation or status, or a
/// body that breaks the documented schema. `None` when it conforms.
pub fn violation(method: &str, path: &str, status: u16, body: &Value) -> Option<String> {
    let doc = document();
    let Some(template) = template_of(doc, path) else {
        return Some(format!("{path} is not a documented path"));
    };
    let operation = &doc["paths"][&template][method.to_lowercase()];
    if operation.is_null() {
        return Some(format!("{method} {template} is not documented"));
    }
    let Some(response) = operation["responses"].get(status.to_string()) else {
        return Some(format!(
            "{method} {template}: status {status} is not documented"
        ));
    };
    let response = resolve(doc, response);
    let schema = &response["content"]["application/json"]["schema"];
    if schema.is_null() {
        return (!body.is_null())
            .then(|| format!("{method} {template} {status}: a body where none is documented"));
    }
    let mut errors = Vec::new();
    check(doc, schema, body, "$", &mut errors);
    (!errors.is_empty()).then(|| format!("{method} {template} {status}: {}", errors.join("; ")))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(expected: &str, value: &Value) -> bool {
    let actual = type_name(value);
    expected == actual || (expected == "number" && actual == "integer")
}

/// Names of the properties `schema` declares, through `$ref` and `allOf` (for `unevaluatedProperties`).
fn declared(doc: &Value, schema: &Value, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        declared(doc, sub, out);
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    match &schema["type"] {
        Value::String(t) if !type_ok(t, value) => {
            errors.push(format!("{at}: {} is not {t}", type_name(value)));
            return;
        }
        Value::Array(types)
            if !types
                .iter()
                .any(|t| type_ok(t.as_str().unwrap_or(""), value)) =>
        {
            errors.push(format!(
                "{at}: {} is not one of {types:?}",
                type_name(value)
            ));
            return;
        }
        _ => {}
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            errors.push(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            errors.push(format!("{at}: {value} is not {c}"));
        }
    }
    if let Value::String(s) = value {
        let chars = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| chars < m) {
            errors.push(format!("{at}: shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|m| chars > m) {
            errors.push(format!("{at}: longer than {}", schema["maxLength"]));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            errors.push(format!("{at}: below {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            errors.push(format!("{at}: above {}", schema["maximum"]));
        }
    }
    if let Value::Array(items) = value {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|m| items.len() as u64 > m)
        {
            errors.push(format!("{at}: more than {} items", schema["maxItems"]));
        }
        if !schema["items"].is_null() {
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Value::Object(members) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or("");
            if !members.contains_key(name) {
                errors.push(format!("{at}: {name:?} is missing"));
            }
        }
        let props = schema["properties"].as_object();
        for (name, member) in members {
            match props.and_then(|p| p.get(name)) {
                Some(sub) => check(doc, sub, member, &format!("{at}.{name}"), errors),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    errors.push(format!("{at}: {name:?} is not documented"))
                }
                None => {}
            }
        }
        if schema["unevaluatedProperties"] == Value::Bool(false) {
            let mut known = Vec::new();
            declared(doc, schema, &mut known);
            for name in members.keys() {
                if !known.contains(name) {
                    errors.push(format!("{at}: {name:?} is not documented"));
                }
            }
        }
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(doc, sub, value, at, errors);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let passing = options
            .iter()
            .filter(|o| {
                let mut e = Vec::new();
                check(doc, o, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if passing != 1 {
            errors.push(format!(
                "{at}: {value} matches {passing} of the oneOf options, not exactly one"
            ));
        }
    }
}
