//! A tiny document model rendered twice: Markdown (report.md) and self-contained HTML (report.html,
//! images referenced relatively), so both always say the same.

pub enum Block {
    Heading(u8, String),
    Para(String),
    /// Small print under a table (notes, definitions).
    Note(String),
    List(Vec<String>),
    /// First column left aligned, the others right aligned.
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// `src` relative to the report; `link` (e.g. the SVG) opened by clicking it.
    Image {
        src: String,
        alt: String,
        link: Option<String>,
    },
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                out.push_str(&format!("{} {text}\n\n", "#".repeat(*level as usize)))
            }
            Block::Para(text) => out.push_str(&format!("{text}\n\n")),
            Block::Note(text) => out.push_str(&format!("<sub>{text}</sub>\n\n")),
            Block::List(items) => {
                for i in items {
                    out.push_str(&format!("- {i}\n"));
                }
                out.push('\n');
            }
            Block::Table { header, rows } => {
                let cell = |s: &String| s.replace('|', "\\|");
                out.push_str(&format!("| {} |\n", header.iter().map(cell).collect::<Vec<_>>().join(" | ")));
                let rule: Vec<&str> =
                    (0..header.len()).map(|i| if i == 0 { "---" } else { "---:" }).collect();
                out.push_str(&format!("|{}|\n", rule.join("|")));
                for r in rows {
                    out.push_str(&format!("| {} |\n", r.iter().map(cell).collect::<Vec<_>>().join(" | ")));
                }
                out.push('\n');
            }
            Block::Image { src, alt, link } => match link {
                Some(l) => out.push_str(&format!("[![{alt}]({src})]({l})\n\n")),
                None => out.push_str(&format!("![{alt}]({src})\n\n")),
            },
        }
    }
    out
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Inline Markdown the report uses (`code` and **bold**) as HTML.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let (mut code, mut bold) = (false, false);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '`' => {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            '*' if !code && chars.get(i + 1) == Some(&'*') => {
                out.push_str(if bold { "</strong>" } else { "<strong>" });
                bold = !bold;
                i += 1;
            }
            c => out.push_str(&escape(&c.to_string())),
        }
        i += 1;
    }
    out
}

pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut body = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => body.push_str(&format!("<h{level}>{}</h{level}>\n", inline(text))),
            Block::Para(text) => body.push_str(&format!("<p>{}</p>\n", inline(text))),
            Block::Note(text) => body.push_str(&format!("<p class=\"note\">{}</p>\n", inline(text))),
            Block::List(items) => {
                body.push_str("<ul>\n");
                for i in items {
                    body.push_str(&format!("<li>{}</li>\n", inline(i)));
                }
                body.push_str("</ul>\n");
            }
            Block::Table { header, rows } => {
                body.push_str("<table>\n<thead><tr>");
                for h in header {
                    body.push_str(&format!("<th>{}</th>", inline(h)));
                }
                body.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    body.push_str("<tr>");
                    for c in r {
                        body.push_str(&format!("<td>{}</td>", inline(c)));
                    }
                    body.push_str("</tr>\n");
                }
                body.push_str("</tbody>\n</table>\n");
            }
            Block::Image { src, alt, link } => {
                let img = format!("<img src=\"{}\" alt=\"{}\">", escape(src), escape(alt));
                match link {
                    Some(l) => body.push_str(&format!("<p><a href=\"{}\">{img}</a></p>\n", escape(l))),
                    None => body.push_str(&format!("<p>{img}</p>\n")),
                }
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
         body {{ font-family: -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }}\n\
         th:first-child, td:first-child {{ text-align: left; }}\n\
         thead {{ background: #f3f3f3; }}\n\
         img {{ max-width: 100%; border: 1px solid #eee; }}\n\
         code {{ background: #f5f5f5; padding: 0 0.2em; }}\n\
         .note {{ font-size: 0.85em; color: #555; }}\n\
         </style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_renderings() {
        let blocks = vec![
            Block::Heading(2, "Table 1".into()),
            Block::Para("see `x` **now** <b>".into()),
            Block::Table {
                header: vec!["Method".into(), "A|B".into()],
                rows: vec![vec!["PT-LIF".into(), "1 ± 2".into()]],
            },
            Block::Image { src: "plots/a.png".into(), alt: "a".into(), link: Some("plots/a.svg".into()) },
        ];
        let md = markdown(&blocks);
        assert!(md.contains("## Table 1\n"));
        assert!(md.contains("| Method | A\\|B |\n|---|---:|\n| PT-LIF | 1 ± 2 |"));
        assert!(md.contains("[![a](plots/a.png)](plots/a.svg)"));
        let h = html("r", &blocks);
        assert!(h.contains("<p>see <code>x</code> <strong>now</strong> &lt;b&gt;</p>"));
        assert!(h.contains("<td>PT-LIF</td><td>1 ± 2</td>"));
        assert!(h.contains("<a href=\"plots/a.svg\"><img src=\"plots/a.png\""));
    }
}
