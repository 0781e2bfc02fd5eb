//! The documentation's links resolve: every relative link in README.md and docs/*.md names a file
//! or directory of the repository, and every `#anchor` one of the target page's headings (as
//! GitHub makes a heading's anchor) or an explicit `<a id>`, and every repository path the pages
//! name in inline code (`scripts/test.sh`) exists. Links to http(s) are not checked.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every .md file under docs/.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines outside fenced code blocks, with their numbers (from 1).
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(marker)) => fence = Some(marker),
            (Some(open), Some(marker)) if open == marker && trimmed.trim_end() == marker => {
                fence = None
            }
            (None, None) => lines.push((number + 1, line)),
            _ => {}
        }
    }
    lines
}

/// A line without its inline code spans (`` `...` ``), which hold no links.
fn without_code(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading: the rendered text lower-cased, every character but letters,
/// digits, `_`, `-` and spaces dropped, spaces made hyphens.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    // [text](url) renders as text.
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors a page defines: its headings' slugs (a repeated one gets `-1`, `-2`, ... as on
/// GitHub) and `<a id="...">` / `<a name="...">`.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = HashSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(line[hashes..].trim().trim_end_matches('#'));
            let count = seen.entry(base.clone()).or_insert(0);
            anchors.insert(match *count {
                0 => base.clone(),
                n => format!("{base}-{n}"),
            });
            *count += 1;
        }
        for attribute in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(start) = rest.find(attribute) {
                let value = &rest[start + attribute.len()..];
                let end = value.find('"').unwrap_or(value.len());
                anchors.insert(value[..end].to_string());
                rest = &value[end..];
            }
        }
    }
    anchors
}

/// Every link target on a page, with its line: `[text](target)`, `![alt](target)`,
/// `[label]: target` and `href="target"` / `src="target"`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    for (number, line) in prose(text) {
        let line = without_code(line);
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            // The target ends at the parenthesis that closes the link (it may hold pairs).
            let mut depth = 0;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' if depth == 0 => return true,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    false
                })
                .map_or(after.len(), |(i, _)| i);
            let target = after[..end].split_whitespace().next().unwrap_or("");
            links.push((number, target.trim_matches(['<', '>']).to_string()));
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if let Some(colon) = trimmed.find("]: ") {
                let target = trimmed[colon + 3..].split_whitespace().next().unwrap_or("");
                links.push((number, target.to_string()));
            }
        }
        for attribute in ["href=\"", "src=\""] {
            let mut rest = line.as_str();
            while let Some(start) = rest.find(attribute) {
                let value = &rest[start + attribute.len()..];
                let end = value.find('"').unwrap_or(value.len());
                links.push((number, value[..end].to_string()));
                rest = &value[end..];
            }
        }
    }
    links
}

/// What is wrong with each relative link of the given pages (empty when every one resolves).
fn broken_links(root: &Path, pages: &[PathBuf]) -> Vec<String> {
    let mut anchors_of: BTreeMap<PathBuf, HashSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(page).unwrap();
        let name = page
            .strip_prefix(root)
            .unwrap_or(page)
            .display()
            .to_string();
        for (line, target) in links(&text) {
            let lower = target.to_ascii_lowercase();
            if ["http://", "https://", "mailto:"]
                .iter()
                .any(|scheme| lower.starts_with(scheme))
            {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            if path.is_empty() && anchor.is_none() {
                problems.push(format!("{name}:{line}: an empty link"));
                continue;
            }
            let file = if path.is_empty() {
                page.clone()
            } else if path.starts_with('/') || path.contains("://") {
                problems.push(format!("{name}:{line}: `{target}` is not a relative link"));
                continue;
            } else {
                page.parent().unwrap().join(path)
            };
            if !file.exists() {
                problems.push(format!(
                    "{name}:{line}: `{target}`: no such file or directory"
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if file.extension().is_some_and(|ext| ext == "md") {
                let file = file.canonicalize().unwrap();
                let known = anchors_of
                    .entry(file.clone())
                    .or_insert_with(|| anchors(&std::fs::read_to_string(&file).unwrap()));
                if !known.contains(anchor) {
                    problems.push(format!(
                        "{name}:{line}: `{target}`: no heading with the anchor #{anchor}"
                    ));
                }
            } else {
                // Another file's lines, as GitHub links them: #L10 or #L10-L20.
                let lines = anchor.strip_prefix('L').unwrap_or("");
                let (first, last) = lines.split_once("-L").unwrap_or((lines, "1"));
                let numbers = [first, last];
                if numbers
                    .iter()
                    .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
                {
                    problems.push(format!(
                        "{name}:{line}: `{target}`: an anchor in a file that is not Markdown"
                    ));
                }
            }
        }
    }
    problems
}

/// Repository paths named in inline code (`` `scripts/test.sh` ``, `` `backends/sql/src/pool.rs` ``)
/// that do not exist. A path is a word that starts with one of the repository's top-level
/// directories; words with a placeholder or a pattern in them (`*`, `{`, `<`, `$`, `…`, `...`) are
/// not paths of the repository.
fn missing_paths(root: &Path, pages: &[PathBuf]) -> Vec<String> {
    let top: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .filter_map(|path| Some(path.file_name()?.to_str()?.to_string()))
        .filter(|name| !name.starts_with('.') && name != "target")
        .collect();
    let mut problems = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(page).unwrap();
        let name = page
            .strip_prefix(root)
            .unwrap_or(page)
            .display()
            .to_string();
        for (line, content) in prose(&text) {
            for (i, span) in content.split('`').enumerate() {
                if i % 2 == 0 {
                    continue; // outside a code span
                }
                for word in span.split_whitespace() {
                    let word = word.trim_matches(|c| "(),;:'\"".contains(c));
                    let path = word.split('#').next().unwrap_or(word);
                    let Some((first, _)) = path.split_once('/') else {
                        continue;
                    };
                    if !top.iter().any(|dir| dir == first)
                        || ["*", "{", "<", "$", "…", "..."]
                            .iter()
                            .any(|mark| path.contains(mark))
                    {
                        continue;
                    }
                    if !root.join(path).exists() {
                        problems.push(format!(
                            "{name}:{line}: `{word}`: no such file or directory"
                        ));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn github_anchors_are_made_as_github_makes_them() {
    assert_eq!(slug("Connect OwnID"), "connect-ownid");
    assert_eq!(
        slug("Support tools: account recovery"),
        "support-tools-account-recovery"
    );
    assert_eq!(
        slug("Build profiles (issue 21, point 4; 2026-12-03)"),
        "build-profiles-issue-21-point-4-2026-12-03"
    );
    assert_eq!(
        slug("`ownid.max_ownid_data_chars` and [the schema](x.md)"),
        "ownidmax_ownid_data_chars-and-the-schema"
    );
    assert_eq!(slug("Paired A/B: issue 13"), "paired-ab-issue-13");
    let page = "# A\n## Twice\n```\n# not a heading\n```\n## Twice\n<a id=\"here\"></a>\n";
    let anchors = anchors(page);
    for anchor in ["a", "twice", "twice-1", "here"] {
        assert!(anchors.contains(anchor), "{anchor} missing");
    }
    assert!(!anchors.contains("not-a-heading"));
}

#[test]
fn links_are_found_outside_code_only() {
    let page = "See [a](a.md#x), ![b](img/b.png \"title\") and `[c](c.md)`.\n\
                ```\n[d](d.md)\n```\n[e]: e.md\n<img src=\"f.png\">\n";
    let found: Vec<String> = links(page).into_iter().map(|(_, t)| t).collect();
    assert_eq!(found, ["a.md#x", "img/b.png", "e.md", "f.png"]);
}

/// A broken link, a missing anchor, a missing file and a non-Markdown anchor are each reported;
/// what resolves is not.
#[test]
fn broken_links_and_anchors_are_reported() {
    let dir = std::env::temp_dir().join(format!("ownid-docs-links-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(dir.join("docs/b.md"), "# Page B\n## Some part\n").unwrap();
    let a = dir.join("README.md");
    std::fs::write(
        &a,
        "# Top\n[ok](docs/b.md#some-part) [ok](#top) [ok](main.rs) [ok](docs) [ok](main.rs#L1-L2)\n\
         [bad](docs/b.md#no-part) [bad](#nowhere) [bad](docs/c.md) [bad](main.rs#main)\n\
         [external](https://example.com/x#y)\n",
    )
    .unwrap();
    let problems = broken_links(&dir, &[a, dir.join("docs/b.md")]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for needle in ["#no-part", "#nowhere", "docs/c.md", "main.rs#main"] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle} not reported: {problems:#?}"
        );
    }
    assert!(problems.iter().all(|p| p.starts_with("README.md:3:")));
}

#[test]
fn every_relative_link_and_anchor_in_the_documentation_resolves() {
    let root = root();
    let pages = pages(&root);
    assert!(pages.len() >= 5, "only {} pages found", pages.len());
    let problems = broken_links(&root, &pages);
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_repository_path_named_in_the_documentation_exists() {
    let root = root();
    let problems = missing_paths(&root, &pages(&root));
    assert!(
        problems.is_empty(),
        "paths that do not exist:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_missing_repository_path_is_reported() {
    let dir = std::env::temp_dir().join(format!("ownid-docs-paths-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("scripts/servers")).unwrap();
    std::fs::write(dir.join("scripts/servers/with.sh"), "").unwrap();
    let page = dir.join("README.md");
    std::fs::write(
        &page,
        "Run `scripts/servers/with.sh cargo test` (`scripts/servers/<server>.sh`, `scripts/*.sh`);\n\
         not `scripts/pg-replica.sh` nor (`scripts/galera.sh`), but `/usr/bin/x` and `foo/bar`.\n\
         ```sh\nscripts/inside-a-fence.sh\n```\n",
    )
    .unwrap();
    let problems = missing_paths(&dir, &[page]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        problems,
        [
            "README.md:2: `scripts/pg-replica.sh`: no such file or directory",
            "README.md:2: `scripts/galera.sh`: no such file or directory",
        ]
    );
}
