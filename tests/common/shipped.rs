//! The PromQL that ships with spikerl: every expression of the Grafana dashboards and the Prometheus
//! rules, and the metric names each one selects. Shared by tests/observability.rs (against a process
//! that has run a while) and tests/series_at_start.rs (against one just started).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files with extension `ext` in the repository folder `dir`, sorted.
pub fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Every PromQL expression of the dashboards (panel targets and variable queries) and of the alert
/// rules, as (where, expression).
pub fn shipped_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files("deploy/grafana/dashboards", "json") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        collect_dashboard_exprs(&json, &name, &mut out);
    }
    for path in files("deploy/prometheus/rules", "yml") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for expr in rule_exprs(&std::fs::read_to_string(&path).unwrap()) {
            out.push((name.clone(), expr));
        }
    }
    assert!(
        out.len() > 50,
        "expected the dashboards and rules to hold many expressions, found {}",
        out.len()
    );
    out
}

/// A dashboard's PromQL: panel targets' `expr` and query variables' `query`.
fn collect_dashboard_exprs(v: &Value, file: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(e)) = map.get("expr") {
                let title = map.get("refId").and_then(Value::as_str).unwrap_or("?");
                out.push((format!("{file} target {title}"), e.clone()));
            }
            // Template variables: {"type": "query", "query": {"query": "label_values(...)"}}.
            if map.get("type").and_then(Value::as_str) == Some("query")
                && let Some(q) = map.get("query")
            {
                let q = q.get("query").unwrap_or(q);
                if let Some(q) = q.as_str() {
                    out.push((format!("{file} variable"), q.to_string()));
                }
            }
            for (_, child) in map {
                collect_dashboard_exprs(child, file, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| collect_dashboard_exprs(c, file, out)),
        _ => {}
    }
}

/// The `expr:` values of a Prometheus rules file (plain, quoted, or `|` / `>` blocks).
pub fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("expr:") else { continue };
        let indent = line.len() - trimmed.len();
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push(block.join("\n"));
        } else {
            out.push(rest.trim_matches(|c| c == '\'' || c == '"').to_string());
        }
    }
    out
}

/// Metric names an expression selects. Strips Grafana variables, strings, label matchers, ranges,
/// grouping clauses and function calls; what is left as identifiers are metric names.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // label_values(metric, label): only the first argument is a metric.
    let mut s = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find("label_values(") {
        s.push_str(&rest[..i]);
        let after = &rest[i + "label_values(".len()..];
        let end = after.find(')').unwrap_or(after.len());
        let inner = &after[..end];
        s.push('(');
        s.push_str(inner.split(',').next().unwrap_or(""));
        s.push(')');
        rest = &after[end.min(after.len())..];
        rest = rest.strip_prefix(')').unwrap_or(rest);
    }
    s.push_str(rest);

    // Remove strings, {...}, [...] and $variables.
    let mut cleaned = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                let q = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != q {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                cleaned.push(' ');
            }
            '{' | '[' => {
                let close = if chars[i] == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                    }
                    i += 1;
                }
                i += 1;
                cleaned.push(' ');
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                cleaned.push(' ');
            }
            c => {
                cleaned.push(c);
                i += 1;
            }
        }
    }

    // Tokenise: identifiers, numbers (and durations), everything else is punctuation.
    #[derive(Debug, PartialEq)]
    enum Tok {
        Ident(String),
        Other(char),
    }
    let mut toks = Vec::new();
    let c: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_whitespace() {
            i += 1;
        } else if c[i].is_ascii_digit() || (c[i] == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                i += 1;
            }
        } else if c[i].is_ascii_alphabetic() || c[i] == '_' || c[i] == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            toks.push(Tok::Ident(c[start..i].iter().collect()));
        } else {
            toks.push(Tok::Other(c[i]));
            i += 1;
        }
    }
    const KEYWORDS: [&str; 13] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
    ];
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < toks.len() {
        if let Tok::Ident(word) = &toks[i] {
            let lower = word.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) && toks.get(i + 1) == Some(&Tok::Other('(')) {
                // Skip the label list.
                i += 2;
                while i < toks.len() && toks[i] != Tok::Other(')') {
                    i += 1;
                }
            } else if toks.get(i + 1) == Some(&Tok::Other('('))
                || KEYWORDS.contains(&lower.as_str())
                || matches!(toks.get(i + 1), Some(Tok::Ident(n)) if n == "by" || n == "without")
            {
                // A function call, an aggregation (`sum by (...) (...)`) or an operator keyword.
            } else {
                names.insert(word.clone());
            }
        }
        i += 1;
    }
    names
}
