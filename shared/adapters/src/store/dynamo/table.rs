//! The one DynamoDB table: its key schema and indexes as plain data ([`table_spec`]), and [`ensure_table`]
//! for local runs and tests (production gets the table from the SAM template, which a test compares with
//! [`table_spec`]). The item keys are in [`super::keys`].

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use domain::store::StoreError;

/// One key attribute: its name and DynamoDB scalar type (`S`, `N` or `B`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: String,
    pub attribute_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub hash_key: KeyAttribute,
    pub range_key: KeyAttribute,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
}

/// The table's shape as plain data, so the SAM template, `DescribeTable` and [`ensure_table`] can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub hash_key: KeyAttribute,
    pub range_key: KeyAttribute,
    /// Sorted by name.
    pub indexes: Vec<IndexSpec>,
    pub billing_mode: String,
    /// The stream's view type (the alert dispatcher needs both images).
    pub stream_view_type: String,
    pub ttl_attribute: String,
}

fn key(name: &str) -> KeyAttribute {
    KeyAttribute {
        name: name.to_owned(),
        attribute_type: "S".to_owned(),
    }
}

/// The table every function uses: `PK`/`SK`; `GSI1` (a practice's conversations per status by activity,
/// and the sparse `ALERTS#pending` partition of alerts in flight), `GSI2` (a client's app and web
/// conversations by activity, and a practice's WebSocket connections) and `DUE` (the sparse reminder index),
/// all projecting everything; a stream with both images; TTL on `expires_at`.
pub fn table_spec() -> TableSpec {
    TableSpec {
        hash_key: key("PK"),
        range_key: key("SK"),
        indexes: vec![
            IndexSpec {
                name: "DUE".to_owned(),
                hash_key: key("DUE_PK"),
                range_key: key("DUE_AT"),
                projection: "ALL".to_owned(),
            },
            IndexSpec {
                name: "GSI1".to_owned(),
                hash_key: key("GSI1PK"),
                range_key: key("GSI1SK"),
                projection: "ALL".to_owned(),
            },
            IndexSpec {
                name: "GSI2".to_owned(),
                hash_key: key("GSI2PK"),
                range_key: key("GSI2SK"),
                projection: "ALL".to_owned(),
            },
        ],
        billing_mode: "PAY_PER_REQUEST".to_owned(),
        stream_view_type: "NEW_AND_OLD_IMAGES".to_owned(),
        ttl_attribute: "expires_at".to_owned(),
    }
}

fn unavailable(what: &str, e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(format!("{what}: {}", DisplayErrorContext(e)))
}

/// Creates the table from [`table_spec`] if it does not exist (on-demand billing), waits until it and its
/// indexes are active, and turns TTL on. Safe to call on every start and concurrently.
pub async fn ensure_table(client: &Client, table_name: &str) -> Result<(), StoreError> {
    let spec = table_spec();
    let exists = match client.describe_table().table_name(table_name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(unavailable("DescribeTable", e)),
    };
    if !exists {
        create_table(client, table_name, &spec).await?;
    }
    wait_until_active(client, table_name).await?;
    enable_ttl(client, table_name, &spec.ttl_attribute).await
}

async fn create_table(
    client: &Client,
    table_name: &str,
    spec: &TableSpec,
) -> Result<(), StoreError> {
    let build = |what: &str, e: aws_sdk_dynamodb::error::BuildError| unavailable(what, e);
    let key_schema =
        |hash: &KeyAttribute, range: &KeyAttribute| -> Result<Vec<KeySchemaElement>, StoreError> {
            Ok(vec![
                KeySchemaElement::builder()
                    .attribute_name(&hash.name)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| build("key schema", e))?,
                KeySchemaElement::builder()
                    .attribute_name(&range.name)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(|e| build("key schema", e))?,
            ])
        };
    // Every key attribute of the table and its indexes, each declared once.
    let mut attributes = BTreeMap::new();
    for attribute in [&spec.hash_key, &spec.range_key].into_iter().chain(
        spec.indexes
            .iter()
            .flat_map(|i| [&i.hash_key, &i.range_key]),
    ) {
        attributes.insert(attribute.name.as_str(), attribute.attribute_type.as_str());
    }
    let mut request = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::from(spec.billing_mode.as_str()))
        .set_key_schema(Some(key_schema(&spec.hash_key, &spec.range_key)?))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(spec.stream_view_type.as_str()))
                .build()
                .map_err(|e| build("stream specification", e))?,
        );
    for (name, attribute_type) in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(attribute_type))
                .build()
                .map_err(|e| build("attribute definition", e))?,
        );
    }
    for index in &spec.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.hash_key, &index.range_key)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .build(),
                )
                .build()
                .map_err(|e| build("index", e))?,
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        // Created concurrently by another process: fine, wait for it below.
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable("CreateTable", e)),
    }
}

async fn wait_until_active(client: &Client, table_name: &str) -> Result<(), StoreError> {
    const POLL: Duration = Duration::from_millis(250);
    const ATTEMPTS: u32 = 480; // two minutes: real tables with indexes take a while
    for _ in 0..ATTEMPTS {
        let out = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .map_err(|e| unavailable("DescribeTable", e))?;
        if let Some(table) = out.table() {
            let indexes_active = table
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status() == Some(&IndexStatus::Active));
            if table.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Err(StoreError::Unavailable(format!(
        "table {table_name} did not become active"
    )))
}

async fn enable_ttl(client: &Client, table_name: &str, attribute: &str) -> Result<(), StoreError> {
    let current = client
        .describe_time_to_live()
        .table_name(table_name)
        .send()
        .await
        .map_err(|e| unavailable("DescribeTimeToLive", e))?;
    let status = current
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    let specification = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(|e| unavailable("TTL specification", e))?;
    match client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(specification)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // A concurrent `ensure_table` enabled it first.
        Err(e)
            if e.meta()
                .message()
                .is_some_and(|m| m.contains("already enabled")) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable("UpdateTimeToLive", e)),
    }
}
