//! The email layouts: a rendered message becomes the text and HTML parts of an email
//! (`assets/email.txt`, `assets/email.html`; DESIGN §7).
//!
//! Pure. The layouts are embedded in the binary and rendered with minijinja; the HTML one is
//! auto-escaped, so only the body goes in unescaped: [`Rendered::body_html`], which
//! [`crate::render::markdown_to_html`] has already made safe (raw HTML shown as text, links
//! with a disallowed scheme pointing nowhere). Actions get the same URL rule here: a scheme
//! other than `http`, `https` or `mailto` (`javascript:` …) becomes `#`.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::render::Rendered;

/// The plain-text layout.
const TEXT_LAYOUT: &str = include_str!("../../assets/email.txt");

/// The HTML layout.
const HTML_LAYOUT: &str = include_str!("../../assets/email.html");

/// What the footer says when no settings page URL is known: the command that shows a user's
/// opt-outs, which works whatever the deployment.
pub const SETTINGS_HINT: &str = "herald optout list";

/// A layout that failed to render (a broken asset): the message cannot be sent as email.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render the email layout {layout}: {detail}")]
pub struct LayoutError {
    /// `email.txt` or `email.html`.
    pub layout: &'static str,
    /// minijinja's message.
    pub detail: String,
}

/// Renders `rendered` into the email's `(text, html)` parts: the title, the body
/// ([`Rendered::body_html`] in the HTML part, [`Rendered::body_text`] in the text part), the actions
/// (buttons in HTML, `label: url` lines in text) and a footer pointing at the user's
/// notification settings — `settings_url` when one is known, else [`SETTINGS_HINT`].
pub fn render_email(
    rendered: &Rendered,
    settings_url: Option<&str>,
) -> Result<(String, String), LayoutError> {
    let env = environment().map_err(|detail| LayoutError {
        layout: "email.txt/email.html",
        detail: detail.clone(),
    })?;
    let actions: Vec<Value> = rendered
        .actions
        .iter()
        .map(|action| context! { label => action.label, url => safe_url(&action.url) })
        .collect();
    let settings_url = settings_url.map(safe_url);
    let render = |layout: &'static str, body: Value| {
        let ctx = context! {
            title => rendered.title,
            body_text => rendered.body_text,
            body_html => body,
            actions => actions,
            settings_url => settings_url,
            settings_hint => SETTINGS_HINT,
        };
        env.get_template(layout)
            .and_then(|template| template.render(ctx))
            .map_err(|e| LayoutError {
                layout,
                detail: e.to_string(),
            })
    };
    let text = render("email.txt", Value::UNDEFINED)?;
    let html = render("email.html", Value::from_safe_string(rendered.body_html()))?;
    Ok((text, html))
}

/// The layouts, parsed once. Strict: a typo in a layout is an error, not a blank.
fn environment() -> Result<&'static Environment<'static>, &'static String> {
    static ENVIRONMENT: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let mut env = Environment::new();
            env.set_undefined_behavior(UndefinedBehavior::Strict);
            env.add_template("email.txt", TEXT_LAYOUT)
                .and_then(|()| env.add_template("email.html", HTML_LAYOUT))
                .map_err(|e| e.to_string())?;
            Ok(env)
        })
        .as_ref()
}

/// `url` trimmed when it is relative or uses an allowed scheme, else `#`.
fn safe_url(url: &str) -> &str {
    if crate::render::is_allowed_url(url) {
        url.trim()
    } else {
        "#"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(body_markdown: &str, actions: &[(&str, &str)]) -> Rendered {
        let title = "Workspace \"dev\" <deleted> & gone";
        crate::channels::test_support::rendered(title, body_markdown, actions)
    }

    #[test]
    fn text_part_has_title_body_action_lines_and_the_settings_footer() {
        let message = rendered(
            "Your workspace **dev** was deleted.",
            &[
                ("View workspaces", "https://coder.example.com/workspaces"),
                ("Undo", "/undo?id=1"),
            ],
        );
        let (text, _) = render_email(&message, None).unwrap();
        assert_eq!(
            text,
            "Workspace \"dev\" <deleted> & gone\n\n\
             Your workspace dev was deleted.\n\n\
             View workspaces: https://coder.example.com/workspaces\n\
             Undo: /undo?id=1\n\n\
             --\n\
             Manage your notification settings: herald optout list"
        );
        let (text, _) = render_email(&message, Some("https://h.example.com/settings")).unwrap();
        assert!(
            text.ends_with("Manage your notification settings: https://h.example.com/settings"),
            "{text}"
        );
    }

    #[test]
    fn text_part_without_actions_has_no_action_lines() {
        let (text, _) = render_email(&rendered("Body.", &[]), None).unwrap();
        assert_eq!(
            text,
            "Workspace \"dev\" <deleted> & gone\n\nBody.\n\n--\n\
             Manage your notification settings: herald optout list"
        );
    }

    #[test]
    fn html_part_renders_markdown_escapes_text_and_makes_buttons() {
        let message = rendered(
            "Your workspace **dev** was deleted by <script>alert(1)</script>.\n\n\
             - one\n- [docs](https://docs.example.com/a?b=1&c=2)",
            &[("View <all> & more", "https://x.example.com/w?a=1&b=\"2\"")],
        );
        let (_, html) = render_email(&message, None).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(
            html.contains("<title>Workspace &quot;dev&quot; &lt;deleted&gt; &amp; gone</title>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<p>Your workspace <strong>dev</strong> was deleted by \
                 &lt;script&gt;alert(1)&lt;/script&gt;.</p>"
            ),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("<li><a href=\"https://docs.example.com/a?b=1&amp;c=2\">docs</a></li>"),
            "{html}"
        );
        let button = html
            .lines()
            .find(|line| line.contains("View &lt;all&gt; &amp; more"))
            .expect("an action button");
        assert!(
            button.starts_with(
                "<a href=\"https:&#x2f;&#x2f;x.example.com&#x2f;w?a=1&amp;b=&quot;2&quot;\" \
                 style=\"display:inline-block;"
            ),
            "{button}"
        );
        assert!(
            html.contains("Manage your notification settings: <code>herald optout list</code>"),
            "{html}"
        );
    }

    #[test]
    fn html_footer_links_to_a_known_settings_page() {
        let (_, html) =
            render_email(&rendered("b", &[]), Some("https://h.example.com/settings")).unwrap();
        assert!(
            html.contains("<a href=\"https:&#x2f;&#x2f;h.example.com&#x2f;settings\""),
            "{html}"
        );
        assert!(
            html.contains(">Manage your notification settings</a>"),
            "{html}"
        );
        assert!(!html.contains("herald optout list"), "{html}");
    }

    #[test]
    fn dangerous_urls_point_nowhere() {
        let message = rendered(
            "[x](javascript:alert(1)) ![y](data:image/png;base64,AAAA) [z](mailto:ops@example.com)",
            &[
                ("Click", " JaVa\tScRiPt:alert(1)"),
                ("Ok", "/relative:path"),
            ],
        );
        let (text, html) = render_email(&message, None).unwrap();
        assert!(!html.to_ascii_lowercase().contains("javascript"), "{html}");
        assert!(!html.contains("data:image"), "{html}");
        let links = [
            "<a href=\"#\">x</a>",
            "<img src=\"#\" alt=\"y\" />",
            "<a href=\"mailto:ops@example.com\">z</a>",
            "<a href=\"#\" style=",
            "<a href=\"&#x2f;relative:path\"",
        ];
        for link in links {
            assert!(html.contains(link), "{link}: {html}");
        }
        assert!(text.contains("Click: #\n"), "{text}");
        assert!(text.contains("Ok: /relative:path\n"), "{text}");
    }
}
