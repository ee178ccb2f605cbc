//! `options`: what is keyed, how numbers canonicalise, and the determinism policy.

use super::{canon, differ, refused, same, with_options};
use crate::cache::key::{KeyError, KeyRoute};
use KeyRoute::*;

// -- options --------------------------------------------------------------

#[test]
fn absent_options_stay_absent_because_modelfiles_override_defaults() {
    // `{}` means "the Modelfile's value, else Ollama's default"; 0.8 pins a value.
    differ(
        (Generate, &with_options("{}")),
        (Generate, &with_options(r#"{"temperature":0.8}"#)),
    );
    differ(
        (Generate, &with_options("{}")),
        (Generate, &with_options(r#"{"seed":-1}"#)),
    );
    same(
        (Generate, &with_options("{}")),
        (Generate, r#"{"model":"llama3.2","prompt":"hi"}"#),
    );
    same(
        (Generate, &with_options("{}")),
        (Generate, &with_options("null")),
    );
    same(
        (Generate, &with_options("{}")),
        (Generate, &with_options(r#"{"temperature":null}"#)),
    );
}

#[test]
fn option_numbers_canonicalise_by_value() {
    let groups: [&[&str]; 5] = [
        &["0", "0.0", "-0.0", "0e0", "-0", "0E+3", "0.000"],
        &["1", "1.0", "1e0", "10e-1", "1.000", "0.1e1"],
        &["0.1", "0.10", "1e-1", "0.1000000001"], // the last rounds to the same float32
        &["40", "40.0", "4e1", "40.9", "40.0001"], // top_k: Go truncates toward zero
        &["-1", "-1.0", "-1.5", "-1e0"],
    ];
    let keys = ["temperature", "temperature", "temperature", "top_k", "seed"];
    for (group, opt) in groups.iter().zip(keys) {
        let first = with_options(&format!(r#"{{"{opt}":{}}}"#, group[0]));
        for spelling in &group[1..] {
            same(
                (Generate, &first),
                (
                    Generate,
                    &with_options(&format!(r#"{{"{opt}":{spelling}}}"#)),
                ),
            );
        }
    }
    differ(
        (Generate, &with_options(r#"{"temperature":0.1}"#)),
        (Generate, &with_options(r#"{"temperature":0.1001}"#)),
    );
}

#[test]
fn negative_zero_repeat_penalty_stays_distinct() {
    // llama.cpp divides logits by repeat_penalty: the sign of zero matters there.
    differ(
        (Generate, &with_options(r#"{"repeat_penalty":0}"#)),
        (Generate, &with_options(r#"{"repeat_penalty":-0.0}"#)),
    );
    same(
        (Generate, &with_options(r#"{"repeat_penalty":1}"#)),
        (Generate, &with_options(r#"{"repeat_penalty":1.0}"#)),
    );
}

#[test]
fn placement_and_unknown_options_are_not_keyed_num_ctx_is() {
    let base = with_options(r#"{"temperature":0}"#);
    for extra in [
        r#""num_thread":8"#,
        r#""num_gpu":0"#,
        r#""num_batch":128"#,
        r#""main_gpu":1"#,
        r#""use_mmap":false"#,
        r#""banana":"yes""#,
        r#""Temperature":1"#, // option keys are case-sensitive in Ollama
        r#""numa":true"#,
    ] {
        same(
            (Generate, &base),
            (
                Generate,
                &with_options(&format!(r#"{{"temperature":0,{extra}}}"#)),
            ),
        );
    }
    differ(
        (Generate, &base),
        (
            Generate,
            &with_options(r#"{"temperature":0,"num_ctx":8192}"#),
        ),
    );
    differ(
        (
            Generate,
            &with_options(r#"{"temperature":0,"num_ctx":4096}"#),
        ),
        (
            Generate,
            &with_options(r#"{"temperature":0,"num_ctx":8192}"#),
        ),
    );
    differ(
        (Generate, &base),
        (
            Generate,
            &with_options(r#"{"temperature":0,"draft_num_predict":8}"#),
        ),
    );
    differ(
        (Generate, &base),
        (Generate, &with_options(r#"{"temperature":0,"mirostat":2}"#)),
    );
}

#[test]
fn known_options_of_the_wrong_type_are_refused() {
    for (opts, field) in [
        (r#"{"temperature":"hot"}"#, "options.temperature"),
        (r#"{"top_k":true}"#, "options.top_k"),
        (r#"{"num_gpu":"x"}"#, "options.num_gpu"),
        (r#"{"use_mmap":1}"#, "options.use_mmap"),
        (r#"{"stop":"x"}"#, "options.stop"),
        (r#"{"stop":["x",1]}"#, "options.stop[1]"),
        (r#"{"seed":1e300}"#, "options.seed"),
        (r#"{"temperature":1e400}"#, "options.temperature"),
    ] {
        assert_eq!(
            refused(Generate, &with_options(opts)).field(),
            Some(field),
            "{opts}"
        );
    }
    assert_eq!(
        refused(Generate, &with_options("[1]")).field(),
        Some("options")
    );
    assert_eq!(
        refused(Generate, &with_options(r#"{"top_k":1,"top_k":2}"#)),
        KeyError::DuplicateField("options.top_k".into())
    );
}

#[test]
fn stop_is_an_ordered_list_and_an_empty_list_is_not_absent() {
    differ(
        (Generate, &with_options(r#"{"stop":["a","b"]}"#)),
        (Generate, &with_options(r#"{"stop":["b","a"]}"#)),
    );
    // An explicit [] replaces the Modelfile's stop words.
    differ(
        (Generate, &with_options(r#"{"stop":[]}"#)),
        (Generate, &with_options("{}")),
    );
}

// -- determinism policy ---------------------------------------------------

#[test]
fn temperature_zero_is_deterministic_omitted_and_default_are_not() {
    let zero = canon(Generate, &with_options(r#"{"temperature":0}"#));
    let omitted = canon(Generate, &with_options("{}"));
    let default = canon(Generate, &with_options(r#"{"temperature":0.8}"#));
    assert!(zero.deterministic);
    assert!(!omitted.deterministic);
    assert!(!default.deterministic);
    assert_ne!(zero.key, omitted.key);
    assert_ne!(zero.key, default.key);
    assert_ne!(omitted.key, default.key);
}

#[test]
fn a_fixed_seed_is_deterministic_random_seeds_are_not() {
    for (seed, det) in [
        ("42", true),
        ("0", true),
        ("-1", false),
        ("4294967295", false),
        ("-2", true),
    ] {
        let c = canon(Generate, &with_options(&format!(r#"{{"seed":{seed}}}"#)));
        assert_eq!(c.deterministic, det, "seed {seed}");
    }
    let c = canon(
        Chat,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"options":{"seed":3,"temperature":1.5}}"#,
    );
    assert!(c.deterministic);
}

#[test]
fn non_sampling_families_are_always_deterministic() {
    assert!(canon(Embed, r#"{"model":"m","input":"a"}"#).deterministic);
    assert!(canon(Embeddings, r#"{"model":"m","prompt":"a"}"#).deterministic);
    assert!(canon(Show, r#"{"model":"m"}"#).deterministic);
    assert!(canon(OpenAiEmbeddings, r#"{"model":"m","input":"a"}"#).deterministic);
}
