//! The documentation's configuration examples: every ```toml block in README.md
//! and docs/ is a whole config file that Warmline accepts as it stands, so a user
//! who copies one gets a gateway that starts, not an error.

use std::path::{Path, PathBuf};

/// Markdown files: README.md and everything under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The ```toml blocks of a Markdown text, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```toml") => open = Some((n + 1, String::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(open.take()),
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(open.is_none(), "an unclosed ```toml block");
    blocks
}

#[test]
fn every_toml_block_in_the_docs_is_a_config_warmline_accepts() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (line, block) in toml_blocks(&text) {
            checked += 1;
            let parsed = warmline::config::RawConfig::from_toml(&block)
                .map_err(|e| format!("not a Warmline config: {e}"))
                .and_then(|raw| raw.validate().map_err(|e| e.to_string()));
            if let Err(err) = parsed {
                failures.push(format!("{}:{line}: {err}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 3,
        "only {checked} toml blocks found: were they renamed?"
    );
}

#[test]
fn blocks_are_found_where_the_fences_are() {
    let text = "a\n```toml\nlisten = \"127.0.0.1:1\"\n```\n```text\nx = 1\n```\n  ```toml\n[cache]\n  ```\n";
    assert_eq!(
        toml_blocks(text),
        [
            (2, "listen = \"127.0.0.1:1\"\n".to_owned()),
            (8, "[cache]\n".to_owned())
        ]
    );
}
