//! What the test binaries share besides `vetchat_tests`: the in-process API client ([`api`]) and the
//! checker of answers against `openapi.yaml` ([`openapi`]).
// Each test binary uses a part of it.
#![allow(dead_code)]

pub mod api;
pub mod openapi;

pub use api::*;
