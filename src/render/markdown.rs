//! Markdown bodies as plain text (for text channels) and as safe HTML (for email and others).

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// Makes Markdown readable as plain text without a Markdown parser: fenced code blocks keep
/// their content (the fences go), ATX heading markers go, `**` / `__` emphasis markers go,
/// inline code keeps its content verbatim (backticks go), `[text](url)` and `![alt](url)`
/// become `text (url)` (just `url` when the text is the URL), `<url>` autolinks lose their
/// brackets, and backslash escapes are resolved. Everything else (lists, quotes, single `*`
/// or `_`) is left as written: it already reads as text.
pub fn markdown_to_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut fence: Option<(char, usize)> = None;
    for line in markdown.lines() {
        if let Some((fence_char, fence_len)) = fence {
            if closes_fence(line, fence_char, fence_len) {
                fence = None;
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(opened) = opens_fence(line) {
            fence = Some(opened);
            continue;
        }
        inline_to_text(strip_heading_marker(line), &mut out);
        out.push('\n');
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    out
}

/// Up to three spaces of indentation, as CommonMark allows for fences and headings.
fn strip_indent(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(' ');
    (line.len() - rest.len() <= 3).then_some(rest)
}

/// ```` ``` ```` or `~~~` (three or more) opening a fenced code block: the char and length.
fn opens_fence(line: &str) -> Option<(char, usize)> {
    let rest = strip_indent(line)?;
    let fence_char = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.len() - rest.trim_start_matches(fence_char).len();
    // A backtick fence's info string may not contain backticks (else it is inline code).
    let info = &rest[len..];
    (len >= 3 && !(fence_char == '`' && info.contains('`'))).then_some((fence_char, len))
}

fn closes_fence(line: &str, fence_char: char, fence_len: usize) -> bool {
    strip_indent(line).is_some_and(|rest| {
        let after = rest.trim_start_matches(fence_char);
        rest.len() - after.len() >= fence_len && after.trim().is_empty()
    })
}

/// `# Title ##` → `Title`; other lines unchanged.
fn strip_heading_marker(line: &str) -> &str {
    let Some(rest) = strip_indent(line) else {
        return line;
    };
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    let after = &rest[hashes..];
    if !(1..=6).contains(&hashes) || !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return line;
    }
    let content = after.trim();
    // An optional closing sequence of `#`s, when a space separates it from the text.
    let without_closing = content.trim_end_matches('#');
    if without_closing.is_empty() {
        ""
    } else if without_closing.ends_with([' ', '\t']) {
        without_closing.trim_end()
    } else {
        content
    }
}

/// Appends one line of inline Markdown to `out` as plain text.
fn inline_to_text(line: &str, out: &mut String) {
    let mut rest = line;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let consumed = match c {
            '\\' => match rest[1..].chars().next() {
                Some(escaped) if escaped.is_ascii_punctuation() => {
                    out.push(escaped);
                    1 + escaped.len_utf8()
                }
                _ => {
                    out.push('\\');
                    1
                }
            },
            '`' => code_span(rest, out),
            '*' | '_' if rest[1..].starts_with(c) => {
                let run = rest.len() - rest.trim_start_matches(c).len();
                let next = rest[run..].chars().next();
                if is_emphasis_run(c, previous, next) {
                    // Any run of two or more delimiters: `**`, `__`, `***` all go.
                } else {
                    out.push_str(&rest[..run]);
                }
                run
            }
            '!' if rest[1..].starts_with('[') => match link(&rest[1..]) {
                Some((text, url, len)) => {
                    push_link(text, url, out);
                    1 + len
                }
                None => {
                    out.push('!');
                    1
                }
            },
            '[' => match link(rest) {
                Some((text, url, len)) => {
                    push_link(text, url, out);
                    len
                }
                None => {
                    out.push('[');
                    1
                }
            },
            '<' => match autolink(rest) {
                Some((url, len)) => {
                    out.push_str(url);
                    len
                }
                None => {
                    out.push('<');
                    1
                }
            },
            _ => {
                out.push(c);
                c.len_utf8()
            }
        };
        previous = rest[..consumed].chars().next_back();
        rest = &rest[consumed..];
    }
}

/// Whether a run of `**` / `__` is an emphasis delimiter rather than text: not surrounded by
/// whitespace (`2 ** 3`), and for `_` not inside a word (`snake__case`), as CommonMark has it.
fn is_emphasis_run(c: char, previous: Option<char>, next: Option<char>) -> bool {
    let space_before = previous.is_none_or(char::is_whitespace);
    let space_after = next.is_none_or(char::is_whitespace);
    if space_before && space_after {
        return false;
    }
    if c == '_' {
        let word_before = previous.is_some_and(char::is_alphanumeric);
        let word_after = next.is_some_and(char::is_alphanumeric);
        return !(word_before && word_after);
    }
    true
}

/// A code span starting at `text` (which starts with a backtick run): appends its content
/// verbatim and returns the bytes consumed; an unmatched run is kept as text.
fn code_span(text: &str, out: &mut String) -> usize {
    let run = text.len() - text.trim_start_matches('`').len();
    let body = &text[run..];
    let mut search = 0;
    while let Some(found) = body[search..].find('`') {
        let start = search + found;
        let close = body[start..].len() - body[start..].trim_start_matches('`').len();
        if close == run {
            let content = &body[..start];
            // CommonMark strips one space on each side when both are there (`` ` `x` ` ``).
            let content = match content.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
                Some(inner) if !inner.trim().is_empty() => inner,
                _ => content,
            };
            out.push_str(content);
            return run + start + close;
        }
        search = start + close;
    }
    out.push_str(&text[..run]);
    run
}

/// `[text](url)` at the start of `text`: the text, the URL and the bytes consumed. The text
/// may nest brackets; the URL may nest parentheses and carry a `"title"`, which is dropped.
fn link(text: &str) -> Option<(&str, &str, usize)> {
    let close_bracket = closing(text, '[', ']', true)?;
    let after = &text[close_bracket + 1..];
    if !after.starts_with('(') {
        return None;
    }
    let close_paren = closing(after, '(', ')', false)?;
    let destination = after[1..close_paren].trim();
    let url = destination
        .split_once([' ', '\t'])
        .map_or(destination, |(url, _title)| url);
    let url = url
        .strip_prefix('<')
        .and_then(|u| u.strip_suffix('>'))
        .unwrap_or(url);
    Some((
        &text[1..close_bracket],
        url,
        close_bracket + 1 + close_paren + 1,
    ))
}

/// Where the `close` that matches the `open` starting `text` is, nesting counted; with
/// `escapes`, a backslash hides the character after it.
fn closing(text: &str, open: char, close: char, escapes: bool) -> Option<usize> {
    let mut depth = 0usize;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if escapes && c == '\\' {
            chars.next();
        } else if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

fn push_link(text: &str, url: &str, out: &mut String) {
    let mut label = String::with_capacity(text.len());
    inline_to_text(text, &mut label);
    if label.is_empty() || label == url {
        out.push_str(url);
    } else if url.is_empty() {
        out.push_str(&label);
    } else {
        out.push_str(&label);
        out.push_str(" (");
        out.push_str(url);
        out.push(')');
    }
}

/// `<scheme:…>` or `<address@host>` at the start of `text`: the URL and the bytes consumed.
fn autolink(text: &str) -> Option<(&str, usize)> {
    let end = text.find('>')?;
    let inner = &text[1..end];
    let is_uri = inner.split_once(':').is_some_and(|(scheme, _)| {
        scheme.len() >= 2
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    let is_email = inner.contains('@') && !inner.contains(':');
    let plain = !inner.is_empty() && !inner.contains([' ', '<', '\t']);
    (plain && (is_uri || is_email)).then_some((inner, end + 1))
}

// ---------------------------------------------------------------------------------------------
// Markdown to HTML
// ---------------------------------------------------------------------------------------------

/// URL schemes a link or an image may use; anything else becomes `#`.
const ALLOWED_SCHEMES: [&str; 3] = ["http", "https", "mailto"];

/// Markdown (CommonMark with tables and strikethrough) as an HTML fragment that is safe to
/// embed: raw HTML in the Markdown is escaped and shown as text, never passed through (bodies
/// interpolate labels and data that other systems send), and link or image URLs whose scheme
/// is not `http`, `https` or `mailto` (`javascript:` …) become `#`.
pub fn markdown_to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(markdown, options).map(|mut event| {
        if let Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) = &mut event {
            *dest_url = safe_url(std::mem::replace(dest_url, CowStr::Borrowed("")));
        }
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        }
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    if is_allowed_url(&url) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

/// Whether `url` is relative or its scheme is in `ALLOWED_SCHEMES`. Whitespace and control
/// characters are ignored while looking for the scheme, as browsers do (`java\tscript:`).
pub fn is_allowed_url(url: &str) -> bool {
    let compact: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    match compact.split_once(':') {
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => ALLOWED_SCHEMES
            .iter()
            .any(|allowed| scheme.eq_ignore_ascii_case(allowed)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_plain_text() {
        let cases = [
            ("**bold** and __strong__", "bold and strong"),
            ("# Title", "Title"),
            ("### Title ###", "Title"),
            ("#hashtag", "#hashtag"),
            ("Use `my__var` and ``a ` b``", "Use my__var and a ` b"),
            (
                "[the docs](https://x.io/a_(b))",
                "the docs (https://x.io/a_(b))",
            ),
            ("[https://x.io](https://x.io)", "https://x.io"),
            ("![logo](/l.png \"Logo\")", "logo (/l.png)"),
            ("[**Build** #7](/b/7)", "Build #7 (/b/7)"),
            ("see <https://x.io>", "see https://x.io"),
            ("a < b > c", "a < b > c"),
            ("[not a link] (x)", "[not a link] (x)"),
            (
                "snake__case__word and 2 ** 3",
                "snake__case__word and 2 ** 3",
            ),
            ("\\*literal\\* \\_x\\_", "*literal* _x_"),
            ("- item one\n- item **two**", "- item one\n- item two"),
            ("> quoted", "> quoted"),
            ("unclosed `tick", "unclosed `tick"),
        ];
        for (markdown, text) in cases {
            assert_eq!(markdown_to_text(markdown), text, "from {markdown:?}");
        }
    }

    #[test]
    fn fenced_code_keeps_its_content_verbatim() {
        let markdown =
            "Failed:\n\n```text\n# not a heading\n**kept** [a](b)\n```\n\nAfter\n~~~~\nx\n~~~~";
        assert_eq!(
            markdown_to_text(markdown),
            "Failed:\n\n# not a heading\n**kept** [a](b)\n\nAfter\nx"
        );
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        assert_eq!(markdown_to_text("a\n```\n**b**"), "a\n**b**");
    }

    #[test]
    fn markdown_becomes_html() {
        let html = markdown_to_html(
            "Audit **not_null** failed.\n\n```sql\nSELECT 1 < 2\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ [docs](https://x.io/a?b=1&c=2)",
        );
        assert_eq!(
            html,
            "<p>Audit <strong>not_null</strong> failed.</p>\n\
             <pre><code class=\"language-sql\">SELECT 1 &lt; 2\n</code></pre>\n\
             <table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>\n\
             <tr><td>1</td><td>2</td></tr>\n</tbody></table>\n\
             <p><del>old</del> <a href=\"https://x.io/a?b=1&amp;c=2\">docs</a></p>\n"
        );
    }

    #[test]
    fn raw_html_in_markdown_is_escaped_not_passed_through() {
        let html = markdown_to_html(
            "<div onclick=\"x()\">block</div>\n\nInline <script>alert(1)</script> & <b>bold</b>",
        );
        assert!(!html.contains("<div"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;div onclick=\"x()\"&gt;block&lt;/div&gt;"),
            "{html}"
        );
        assert!(
            html.contains("Inline &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold"),
            "{html}"
        );
    }

    #[test]
    fn dangerous_link_and_image_urls_point_nowhere() {
        let html = markdown_to_html(
            "[x](javascript:alert(1)) [t](JaVa%09script:x) ![y](data:image/png;base64,AAAA) \
             [z](mailto:ops@example.com) [r](/relative:path) [h](HTTPS://x.io)",
        );
        assert!(!html.to_ascii_lowercase().contains("javascript"), "{html}");
        assert!(!html.contains("data:image"), "{html}");
        assert!(html.contains("<a href=\"#\">x</a>"), "{html}");
        assert!(html.contains("<a href=\"#\">t</a>"), "{html}");
        assert!(html.contains("<img src=\"#\" alt=\"y\" />"), "{html}");
        assert!(
            html.contains("<a href=\"mailto:ops@example.com\">z</a>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"/relative:path\">r</a>"), "{html}");
        assert!(html.contains("<a href=\"HTTPS://x.io\">h</a>"), "{html}");
    }
}
