//! Attribute values and items: building them, reading them back, and the errors when either fails; the
//! items of a transaction, each with its condition.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use domain::store::{StoreError, StoreResult};

use super::keys::SK;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The condition of a put that creates its item.
pub(super) const ABSENT: &str = "attribute_not_exists(PK)";

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn encoding_failed(e: serde_dynamo::Error) -> StoreError {
    tracing::error!(error = %e, "could not encode a DynamoDB item");
    StoreError::Unavailable("could not encode a record".into())
}

pub(super) fn decoding_failed(e: serde_dynamo::Error) -> StoreError {
    tracing::error!(error = %e, "could not decode a DynamoDB item");
    StoreError::Unavailable("a stored record could not be read".into())
}

pub(super) fn build_failed(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    tracing::error!(error = %e, "could not build a DynamoDB request");
    StoreError::Unavailable("could not build a DynamoDB request".into())
}

pub(super) fn sort_key(item: &Item) -> Option<&str> {
    string_attribute(item, SK)
}

pub(super) fn string_attribute<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(super) fn number_attribute<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// A put of a transaction, with its condition; a failed condition returns the old item.
pub(super) fn put(
    table: &str,
    item: Item,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> StoreResult<TransactWriteItem> {
    let mut builder = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .put(builder.build().map_err(build_failed)?)
        .build())
}

/// A put of a transaction without a condition (a record that is new by construction).
pub(super) fn put_item(table: &str, item: Item) -> StoreResult<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(build_failed)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A delete of a transaction, with its condition; a failed condition returns the old item.
pub(super) fn delete(
    table: &str,
    key: Item,
    condition: &str,
    names: Vec<(&str, &str)>,
    values: Vec<(&str, AttributeValue)>,
) -> StoreResult<TransactWriteItem> {
    let mut builder = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (name, attribute) in names {
        builder = builder.expression_attribute_names(name, attribute);
    }
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .delete(builder.build().map_err(build_failed)?)
        .build())
}
