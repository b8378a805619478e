//! Every relative link in the README and the docs points at something that exists: markdown
//! links `[text](path)` and images `![alt](path)`, resolved from the file that holds them, and
//! where a link names an `#anchor` in a markdown file, a heading with that anchor. Web links
//! (`http:`, `https:`, `mailto:`) are not followed; links inside code are not links.

use std::path::{Path, PathBuf};

/// The markdown files whose links are checked, relative to the repository root.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        root.join("README.md"),
        root.join("models/README.md"),
        root.join("assets/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds markdown files");
    files.extend(docs);
    files
}

/// The text outside fenced code blocks and inline code spans (replaced by spaces, so what is
/// left keeps its line breaks).
fn prose(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                out.push(' ');
            } else {
                out.push(if in_code { ' ' } else { c });
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of `[text](target)` and `![alt](target)` links, in order.
fn link_targets(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                // `[text](target "title")`: the target is the first word.
                let inside = after[..end].trim();
                let target = inside.split_whitespace().next().unwrap_or("");
                targets.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings (outside code blocks).
fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced && line.starts_with('#') {
            found.push(anchor_of(line.trim_start_matches('#')));
        }
    }
    found
}

/// Each broken link in `file`, as "file: target (why)".
fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut broken = Vec::new();
    for target in link_targets(&text) {
        let lower = target.to_ascii_lowercase();
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("mailto:")
        {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let shown = format!("{}: {target}", file.display());
        if path.is_empty() && anchor.is_none() {
            broken.push(format!("{shown} (empty link)"));
            continue;
        }
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !resolved.exists() {
            broken.push(format!("{shown} (no such file: {})", resolved.display()));
            continue;
        }
        if let Some(anchor) = anchor
            && resolved.extension().is_some_and(|e| e == "md")
        {
            let headings = anchors(&std::fs::read_to_string(&resolved).unwrap());
            if !headings.iter().any(|h| h == anchor) {
                broken.push(format!("{shown} (no heading with anchor #{anchor})"));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in documents(root) {
        checked += link_targets(&std::fs::read_to_string(&file).unwrap()).len();
        broken.extend(broken_links(&file));
    }
    assert!(checked > 0, "no links found at all: the parser is broken");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_links_the_docs_and_shows_the_app() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let targets = link_targets(&std::fs::read_to_string(root.join("README.md")).unwrap());
    for wanted in [
        "assets/app-screenshot.png",
        "docs/ARCHITECTURE.md",
        "docs/MODEL.md",
        "docs/experiments.md",
    ] {
        assert!(
            targets.iter().any(|t| t == wanted),
            "README.md does not link {wanted}"
        );
    }
}

#[test]
fn the_checker_finds_missing_files_and_anchors_and_skips_code_and_web_links() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("there.md"), "# A heading (`with code`)\n").unwrap();
    let doc = dir.path().join("doc.md");
    std::fs::write(
        &doc,
        "[ok](there.md) ![ok](there.md#a-heading-with-code) [web](https://example.com/x)\n\
         [top](#title) `[code](nowhere.md)`\n\
         ```\n[fenced](nowhere.md)\n```\n\
         [gone](missing.md) ![gone](img/missing.png) [bad anchor](there.md#no-such)\n\
         # Title\n",
    )
    .unwrap();
    let broken = broken_links(&doc);
    assert_eq!(broken.len(), 3, "{broken:?}");
    assert!(broken[0].contains("missing.md"), "{broken:?}");
    assert!(broken[1].contains("img/missing.png"), "{broken:?}");
    assert!(broken[2].contains("#no-such"), "{broken:?}");
}
