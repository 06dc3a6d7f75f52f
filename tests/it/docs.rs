//! The docs stand alone: README.md and BENCHMARKS.md tell users to run only
//! what this repository carries, and the pages in `www/` agree with
//! `config/conveyor.toml`. Reads files only.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn config() -> toml::Table {
    read("config/conveyor.toml")
        .parse()
        .expect("config/conveyor.toml parses")
}

/// Words in `text` that name a script: `scripts/...`, or anything ending in
/// `.sh`, `.lua` or `.py`.
fn script_paths(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || "`()[]\"'<>,;|".contains(c))
        .map(|word| word.trim_end_matches(['.', ':']))
        .filter(|word| {
            word.starts_with("scripts/")
                || word.ends_with(".sh")
                || word.ends_with(".lua")
                || word.ends_with(".py")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_and_benchmarks_point_only_at_scripts_in_this_repository() {
    let mut seen = Vec::new();
    for doc in ["README.md", "BENCHMARKS.md"] {
        let text = read(doc);
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("../shared") && !line.contains("shared/bench"),
                "{doc}:{}: points outside the repository: {line}",
                n + 1
            );
        }
        for path in script_paths(&text) {
            assert!(
                (path.starts_with("scripts/") || path.starts_with("deploy/"))
                    && repo().join(&path).is_file(),
                "{doc} names {path:?}, which is not a file under scripts/ or deploy/ in this repository"
            );
            seen.push(path);
        }
    }
    for script in [
        "scripts/compare.sh",
        "scripts/idle.sh",
        "scripts/reliability.sh",
        "deploy/try-cluster.sh",
    ] {
        assert!(
            seen.iter().any(|p| p == script),
            "the docs should tell users about {script}"
        );
    }
}

#[test]
fn the_benchmark_scripts_are_executable_and_stay_on_loopback() {
    use std::os::unix::fs::PermissionsExt;
    for script in [
        "scripts/compare.sh",
        "scripts/idle.sh",
        "scripts/reliability.sh",
        "deploy/try-cluster.sh",
    ] {
        let mode = std::fs::metadata(repo().join(script))
            .expect(script)
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
    let lua = Path::new("scripts/wrk-pipeline.lua");
    assert!(read("scripts/compare.sh").contains(lua.to_str().unwrap()));
    // Every address the scripts listen on or load is 127.0.0.1.
    for script in [
        "scripts/lib.sh",
        "scripts/compare.sh",
        "scripts/idle.sh",
        "scripts/reliability.sh",
        "scripts/reliability.py",
        "deploy/try-cluster.sh",
    ] {
        let text = read(script);
        for (n, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("://") {
                let host = &line[at + 3..];
                assert!(
                    host.starts_with("127.0.0.1"),
                    "{script}:{}: a URL not on 127.0.0.1: {line}",
                    n + 1
                );
            }
        }
    }
}

/// The TOML inside every `<pre><code>[table]...</code></pre>` block of a page.
fn toml_blocks(html: &str) -> Vec<toml::Table> {
    html.split("<pre><code>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</code></pre>").map(|(code, _)| code))
        .filter(|code| code.starts_with('['))
        .map(|code| code.parse().unwrap_or_else(|e| panic!("{code}: {e}")))
        .collect()
}

#[test]
fn docs_page_config_examples_show_the_defaults_of_config_conveyor_toml() {
    let config = config();
    let blocks = toml_blocks(&read("www/docs/index.html"));
    assert!(blocks.len() >= 3, "found {} TOML examples", blocks.len());
    let mut checked = 0;
    for block in &blocks {
        for (table, keys) in block {
            let keys = keys.as_table().expect("a table");
            for (key, value) in keys {
                let default = config
                    .get(table)
                    .and_then(|t| t.get(key))
                    .unwrap_or_else(|| panic!("[{table}] {key} is not in config/conveyor.toml"));
                assert_eq!(
                    value, default,
                    "www/docs/index.html shows [{table}] {key} = {value:?}, config/conveyor.toml has {default:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "checked {checked} keys");
    assert_eq!(
        config["stages"]["dispatcher"].as_str(),
        Some("spawn"),
        "the docs page's wording assumes spawn is the default dispatcher"
    );
}

#[test]
fn home_page_try_it_commands_use_the_address_the_page_came_from() {
    let html = read("www/index.html");
    let listen = config()["listen"]
        .as_str()
        .expect("listen is a string")
        .to_owned();
    let fallback = format!("<span class=\"origin\">http://{listen}</span>");
    let commands = html
        .split_once("<h2>Try it</h2>")
        .expect("a Try it section")
        .1;
    assert_eq!(commands.matches(&fallback).count(), 3, "{commands}");
    // No address outside the spans that app.js fills in.
    assert_eq!(
        html.matches(&listen).count(),
        3,
        "www/index.html hard-codes {listen} outside the Try it spans"
    );
    let js = read("www/app.js");
    assert!(js.contains("querySelectorAll(\".origin\")"), "{js}");
    assert!(js.contains("location.origin"), "{js}");
    assert!(html.contains("<script src=\"/app.js\""));
}
