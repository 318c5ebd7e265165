//! Markdown (the body templates' language) to Slack's mrkdwn, as section-sized segments.

use super::*;

#[derive(Default)]
pub(super) struct MrkdwnWriter {
    segments: Vec<Segment>,
    /// The prose being written.
    text: String,
    /// The code block being read, raw.
    code: Option<String>,
    /// Line breaks owed before the next content.
    pending_breaks: usize,
    /// One entry per open list: the next number of an ordered list.
    lists: Vec<Option<u64>>,
    quote_depth: usize,
    in_heading: bool,
    /// One entry per open link: where its label starts and its escaped URL (`None` when
    /// relative: only the label is shown).
    links: Vec<Option<(usize, String)>>,
}

impl MrkdwnWriter {
    pub(super) fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => match &mut self.code {
                Some(code) => code.push_str(&text),
                None => self.write(&escape(&text)),
            },
            Event::Code(code) => self.write(&format!("`{}`", escape(&code))),
            Event::Html(html) | Event::InlineHtml(html) => self.write(&escape(&html)),
            Event::InlineMath(math) | Event::DisplayMath(math) => {
                self.write(&format!("`{}`", escape(&math)));
            }
            Event::FootnoteReference(label) => self.write(&format!("[{}]", escape(&label))),
            Event::SoftBreak | Event::HardBreak => self.break_lines(1),
            Event::Rule => {
                self.break_lines(2);
                self.write("──────────");
                self.break_lines(2);
            }
            Event::TaskListMarker(done) => self.write(if done { "☑ " } else { "☐ " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { .. } => {
                self.break_lines(2);
                self.write("*");
                self.in_heading = true;
            }
            Tag::BlockQuote(_) => {
                self.break_lines(2);
                self.quote_depth += 1;
            }
            Tag::CodeBlock(_) => {
                self.flush_text();
                self.code = Some(String::new());
            }
            Tag::List(first) => {
                self.break_lines(1);
                self.lists.push(first);
            }
            Tag::Item => {
                self.break_lines(1);
                let indent = "    ".repeat(self.lists.len().saturating_sub(1));
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{indent}{}. ", *n - 1)
                    }
                    _ => format!("{indent}• "),
                };
                self.write(&bullet);
            }
            Tag::Emphasis => self.write("_"),
            Tag::Strong if !self.in_heading => self.write("*"),
            Tag::Strikethrough => self.write("~"),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                if is_absolute_url(&dest_url) {
                    let url = escape(&dest_url).replace('|', "%7C");
                    self.write(&format!("<{url}|"));
                    self.links.push(Some((self.text.len(), url)));
                } else {
                    self.links.push(None);
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.break_lines(2),
            TagEnd::Heading(_) => {
                self.write("*");
                self.in_heading = false;
                self.break_lines(2);
            }
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                self.break_lines(2);
            }
            TagEnd::CodeBlock => {
                if let Some(code) = self.code.take() {
                    push_segment(
                        &mut self.segments,
                        Segment::Code(code.trim_end_matches('\n').to_string()),
                    );
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                // A nested list ends inside its parent's item; the parent list goes on.
                self.break_lines(if self.lists.is_empty() { 2 } else { 1 });
            }
            TagEnd::Item => self.break_lines(1),
            TagEnd::Emphasis => self.write("_"),
            TagEnd::Strong if !self.in_heading => self.write("*"),
            TagEnd::Strikethrough => self.write("~"),
            TagEnd::Link | TagEnd::Image => {
                if let Some(Some((label_start, url))) = self.links.pop() {
                    let label = &self.text[label_start..];
                    if label.is_empty() || label == url {
                        // `<url|>` or `<url|url>`: the bare link reads the same.
                        self.text.truncate(label_start - 1);
                    }
                    self.text.push('>');
                }
            }
            _ => {}
        }
    }

    /// Owes `n` line breaks (at most) before the next content; none at the very start.
    fn break_lines(&mut self, n: usize) {
        let n = if self.quote_depth > 0 { n.min(1) } else { n };
        self.pending_breaks = self.pending_breaks.max(n);
    }

    fn write(&mut self, content: &str) {
        if self.text.is_empty() {
            self.pending_breaks = 0;
        }
        let line_start = self.text.is_empty() || self.pending_breaks > 0;
        for _ in 0..self.pending_breaks {
            self.text.push('\n');
        }
        self.pending_breaks = 0;
        if line_start && self.quote_depth > 0 {
            self.text.push_str("> ");
        }
        self.text.push_str(content);
    }

    /// Ends the prose before a code block.
    fn flush_text(&mut self) {
        let text = std::mem::take(&mut self.text);
        push_segment(
            &mut self.segments,
            Segment::Text(text.trim_end().to_string()),
        );
        self.pending_breaks = 0;
    }

    pub(super) fn finish(mut self) -> Vec<Segment> {
        self.flush_text();
        self.segments
    }
}
