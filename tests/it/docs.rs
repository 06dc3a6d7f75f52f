//! The docs stand alone: every page tells users to run only what this
//! repository carries, every link and every repository path a page names
//! leads to a file that exists, the README stays a front door (at most
//! 250 lines), and the pages in `www/` agree with `config/conveyor.toml`.
//! Reads files only.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

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
fn the_docs_point_only_at_scripts_in_this_repository() {
    let mut seen = Vec::new();
    for doc in docs() {
        let text = read(&doc);
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

/// The pages whose links and paths are kept valid: the top-level docs and
/// every page under `docs/`.
fn docs() -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| format!("docs/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    pages.sort();
    let mut all: Vec<String> = [
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
        "RELIABILITY.md",
    ]
    .map(String::from)
    .into();
    all.extend(pages);
    all
}

/// Pages another tool writes, which a link may name before they exist.
/// The configuration reference is generated from the key table; once it is
/// committed this list should be emptied.
const GENERATED: &[&str] = &[];

/// A code span whose first word starts with one of these names a file or
/// folder of this repository.
const REPO_DIRS: &[&str] = &[
    "src/",
    "tests/",
    "docs/",
    "config/",
    "deploy/",
    "scripts/",
    "examples/",
    "benches/",
    "fuzz/",
    ".ci/",
];

/// Where a page's prose (outside fenced code blocks) links to, and the code
/// spans it holds, each with its line number.
struct Scanned {
    links: Vec<(usize, String)>,
    spans: Vec<(usize, String)>,
    headings: Vec<String>,
}

/// Reads a Markdown page the way a renderer would for what matters here:
/// fenced blocks are code (no links, no spans), a code span runs from a run
/// of backticks to the next run of the same length within its paragraph,
/// and a link is `](target)` outside code spans.
fn scan(text: &str) -> Scanned {
    let mut headings = Vec::new();
    let mut fenced = false;
    let mut prose = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            prose.push('\n');
            continue;
        }
        if !fenced {
            let hashes = line.bytes().take_while(|b| *b == b'#').count();
            if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
                headings.push(line[hashes..].trim().to_string());
            }
            prose.push_str(line);
        }
        prose.push('\n');
    }
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(prose.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |at: usize| line_starts.partition_point(|start| *start <= at);
    let (mut links, mut spans) = (Vec::new(), Vec::new());
    let bytes = prose.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
            match closing_run(&prose, i + run, run) {
                Some(end) => {
                    let span = prose[i + run..end].replace('\n', " ");
                    spans.push((line_of(i), span.trim().to_string()));
                    i = end + run;
                }
                None => i += run,
            }
        } else if bytes[i..].starts_with(b"](") {
            let rest = &prose[i + 2..];
            if let Some(close) = rest
                .find([')', '\n'])
                .filter(|c| rest.as_bytes()[*c] == b')')
            {
                links.push((line_of(i), rest[..close].trim().to_string()));
                i += 2 + close;
            } else {
                i += 2;
            }
        } else {
            i += 1;
        }
    }
    Scanned {
        links,
        spans,
        headings,
    }
}

/// Where a run of exactly `run` backticks starts at or after `from`,
/// before the paragraph ends.
fn closing_run(text: &str, from: usize, run: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let paragraph_end = text[from..].find("\n\n").map_or(text.len(), |e| from + e);
    let mut j = from;
    while j < paragraph_end {
        if bytes[j] == b'`' {
            let len = bytes[j..].iter().take_while(|b| **b == b'`').count();
            if len == run {
                return Some(j);
            }
            j += len;
        } else {
            j += 1;
        }
    }
    None
}

/// GitHub's anchors for a page's headings: lower case, punctuation dropped,
/// spaces as `-`, and `-1`, `-2`… after repeats.
fn anchors(headings: &[String]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    headings
        .iter()
        .map(|heading| {
            let slug: String = heading
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect();
            let n = seen.entry(slug.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                slug
            } else {
                format!("{slug}-{}", *n - 1)
            }
        })
        .collect()
}

/// `path` with `.` and `..` folded away; `None` when it climbs out of the
/// repository.
fn inside_repo(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn exists(path: &Path) -> bool {
    GENERATED.iter().any(|g| Path::new(g) == path) || repo().join(path).exists()
}

/// Everything wrong with the links and repository paths of `text`, the page
/// at `doc` (relative to the repository): one `doc:line: problem` each.
fn check_page(doc: &str, text: &str) -> Vec<String> {
    let scanned = scan(text);
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.contains("../shared") {
            problems.push(format!(
                "{doc}:{}: points outside the repository: ../shared",
                n + 1
            ));
        }
    }
    let here = Path::new(doc).parent().unwrap_or(Path::new(""));
    for (line, target) in &scanned.links {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
        let file = if path.is_empty() {
            PathBuf::from(doc)
        } else {
            match inside_repo(&here.join(path)) {
                Some(file) => file,
                None => {
                    problems.push(format!(
                        "{doc}:{line}: link leaves the repository: {target}"
                    ));
                    continue;
                }
            }
        };
        if !path.is_empty() && !exists(&file) {
            problems.push(format!("{doc}:{line}: link to a missing file: {target}"));
            continue;
        }
        let markdown = file.extension().is_some_and(|e| e == "md");
        if anchor.is_empty() || !markdown {
            continue;
        }
        let page = if path.is_empty() {
            text.to_string()
        } else if repo().join(&file).is_file() {
            read(file.to_str().expect("a UTF-8 path"))
        } else {
            continue; // generated, not written yet
        };
        if !anchors(&scan(&page).headings).iter().any(|a| a == anchor) {
            problems.push(format!("{doc}:{line}: no heading for the anchor: {target}"));
        }
    }
    for (line, span) in &scanned.spans {
        let word = span.split_whitespace().next().unwrap_or("");
        if !REPO_DIRS.iter().any(|dir| word.starts_with(dir)) {
            continue;
        }
        let path = word.split("::").next().unwrap_or(word);
        if !exists(Path::new(path)) {
            problems.push(format!("{doc}:{line}: names a missing path: {path}"));
        }
    }
    problems
}

#[test]
fn every_link_and_repository_path_in_the_docs_exists() {
    let mut problems = Vec::new();
    for doc in docs() {
        problems.extend(check_page(&doc, &read(&doc)));
    }
    assert!(
        problems.is_empty(),
        "broken in the docs:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_reports_broken_links_by_page_line_and_path() {
    let sample = "# A sample page\n\
        \n\
        See [gone](nope.md), [here](#a-sample-page), [there](#nowhere),\n\
        [the readme](../README.md#conveyor) and `src/nope.rs`, but `src/lib.rs` is fine.\n\
        ```sh\n\
        `src/in_a_fence.rs` [fenced](in-a-fence.md)\n\
        ```\n\
        [away](../shared/guide/architecture.md) and [out](../../etc/passwd); ``a `tests/x` span``\n";
    let problems = check_page("docs/sample.md", sample);
    assert_eq!(
        problems,
        [
            "docs/sample.md:8: points outside the repository: ../shared",
            "docs/sample.md:3: link to a missing file: nope.md",
            "docs/sample.md:3: no heading for the anchor: #nowhere",
            "docs/sample.md:8: link to a missing file: ../shared/guide/architecture.md",
            "docs/sample.md:8: link leaves the repository: ../../etc/passwd",
            "docs/sample.md:4: names a missing path: src/nope.rs",
        ],
    );
}

#[test]
fn anchors_follow_github() {
    let headings = [
        "Final side-by-side, merged main (2026-11-30, quiet machine)",
        "`conveyor bench` against wrk, calibrated (15 µs spin)",
        "Stage implementations × scenarios (`cargo bench --bench keepalive`)",
        "Notes",
        "Notes",
    ]
    .map(String::from);
    assert_eq!(
        anchors(&headings),
        [
            "final-side-by-side-merged-main-2026-11-30-quiet-machine",
            "conveyor-bench-against-wrk-calibrated-15-µs-spin",
            "stage-implementations--scenarios-cargo-bench---bench-keepalive",
            "notes",
            "notes-1",
        ]
    );
}

#[test]
fn the_readme_is_a_front_door() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; the manual belongs in docs/"
    );
}

/// Every file of the line and of the runtime is explained in ARCHITECTURE.md.
#[test]
fn architecture_names_every_stage_and_runtime_file() {
    let architecture = read("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for (dir, prefix) in [
        ("src/stages", "src/stages/"),
        ("src/runtime", ""),
        ("src/runtime/sys", "sys/"),
    ] {
        for entry in std::fs::read_dir(repo().join(dir)).expect(dir) {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let name = format!("`{prefix}{}`", path.file_name().unwrap().to_string_lossy());
                if !architecture.contains(&name) {
                    missing.push(format!("{dir}: {name}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not explain:\n{}",
        missing.join("\n")
    );
}
