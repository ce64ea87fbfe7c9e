//! The JSON Schemas in `schemas/` are part of the contract: every result a test sees is checked against them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

static VALIDATORS: OnceLock<Mutex<HashMap<&'static str, jsonschema::Validator>>> = OnceLock::new();

pub fn assert_valid(schema: &'static str, instance: &Value) {
    let validators = VALIDATORS.get_or_init(Default::default);
    let mut validators = validators.lock().unwrap_or_else(|p| p.into_inner());
    let validator = validators.entry(schema).or_insert_with(|| {
        let path = format!("{}/schemas/{schema}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("schema file");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    });
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema}: {instance} is invalid: {errors:?}"
    );
}
