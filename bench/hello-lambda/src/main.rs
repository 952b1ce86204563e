//! Hello world on `lambda_runtime`: the smallest function a Rust Lambda can be, and the baseline every
//! function's cold start is compared with (BENCHMARKS.md). The same `#[tokio::main]` runtime as the functions,
//! no SDK, no configuration, no logging.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<Value, Error>(json!({"hello": "world"}))
    }))
    .await
}
