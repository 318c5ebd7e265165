//! The tracing layer: admits events by level and filter, formats them as text or JSON (peer
//! text escaped), writes stderr and feeds the ring.

use super::*;

/// What [`init_logging`] returns: access to the ring and to the stderr output.
#[derive(Debug, Clone)]
pub struct LogHandle {
    pub(super) ring: LogRing,
    pub(super) write_enabled: Arc<AtomicBool>,
}

impl LogHandle {
    /// The ring every shown event (and every INFO one) goes to.
    pub fn ring(&self) -> LogRing {
        self.ring.clone()
    }

    /// Turns the stderr output off or back on; the ring keeps recording. The console mutes
    /// stderr while it owns the terminal.
    pub fn set_stderr(&self, enabled: bool) {
        self.write_enabled.store(enabled, Ordering::Relaxed);
    }
}

/// Installs the logging layer as the process's global subscriber, writing to stderr.
///
/// Callable once per process: a second call (or one after another global subscriber was set)
/// returns [`TelemetryError::LoggingAlreadyInitialized`].
pub fn init_logging(opts: &LogOptions) -> Result<LogHandle, TelemetryError> {
    let layer = LogLayer::new(opts, std::io::stderr as fn() -> std::io::Stderr)?;
    let handle = layer.handle();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::LoggingAlreadyInitialized)?;
    Ok(handle)
}

/// A [`LogLayer`] that writes nowhere but its ring.
pub type CaptureLayer = LogLayer<fn() -> std::io::Sink>;

/// A logging layer that writes nowhere but the returned ring: for tests and embedders that
/// install it on their own subscriber (e.g. with `tracing::subscriber::with_default`).
pub fn capture_layer(opts: &LogOptions) -> Result<(CaptureLayer, LogRing), TelemetryError> {
    let layer = LogLayer::new(opts, std::io::sink as fn() -> std::io::Sink)?;
    let ring = layer.ring();
    Ok((layer, ring))
}

/// The `tracing` layer behind [`init_logging`]: decides which events are shown, formats them
/// once, writes them to `W` and pushes them into the ring.
pub struct LogLayer<W> {
    /// Shown on the writer and in the ring.
    pub(super) base: Level,
    /// Kept in the ring even when not shown on the writer: the more verbose of base and INFO.
    pub(super) ring_level: Level,
    pub(super) filter: Option<Regex>,
    pub(super) json: bool,
    pub(super) ansi: bool,
    pub(super) ring: LogRing,
    pub(super) writer: W,
    pub(super) write_enabled: Arc<AtomicBool>,
}

/// Which outputs an event at a given level may reach, decided from its level alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    WriterAndRing,
    RingOnly,
    IfFilterMatches,
    Never,
}

impl<W> LogLayer<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    /// A layer configured by `opts`, writing lines to `writer` (e.g. `std::io::stderr`).
    pub fn new(opts: &LogOptions, writer: W) -> Result<Self, TelemetryError> {
        let filter = match opts.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(pattern) => {
                Some(
                    Regex::new(pattern).map_err(|err| TelemetryError::InvalidLogFilter {
                        filter: pattern.to_owned(),
                        reason: one_line_regex_error(&err),
                    })?,
                )
            }
        };
        Ok(Self {
            base: opts.level,
            ring_level: opts.level.max(Level::INFO),
            filter,
            json: opts.json,
            ansi: opts.ansi,
            ring: LogRing::new(opts.ring_capacity),
            writer,
            write_enabled: Arc::new(AtomicBool::new(true)),
        })
    }
}

impl<W> LogLayer<W> {
    /// The ring this layer pushes into.
    pub fn ring(&self) -> LogRing {
        self.ring.clone()
    }

    /// A handle to the ring and the writer switch.
    pub fn handle(&self) -> LogHandle {
        LogHandle {
            ring: self.ring.clone(),
            write_enabled: self.write_enabled.clone(),
        }
    }

    pub(super) fn admission(&self, level: Level) -> Admission {
        if level <= self.base {
            Admission::WriterAndRing
        } else if level <= self.ring_level {
            Admission::RingOnly
        } else if level == Level::DEBUG && self.filter.is_some() {
            Admission::IfFilterMatches
        } else {
            Admission::Never
        }
    }

    pub(super) fn most_verbose(&self) -> Level {
        if self.filter.is_some() {
            self.ring_level.max(Level::DEBUG)
        } else {
            self.ring_level
        }
    }

    pub(super) fn format(
        &self,
        line: &LogLine,
        message: Option<&str>,
        fields: &[NamedValue],
    ) -> String {
        if self.json {
            return json_line(line, message, fields);
        }
        if !self.ansi {
            return format!("{line}\n");
        }
        let colour = match line.level {
            Level::ERROR => "31",
            Level::WARN => "33",
            Level::INFO => "32",
            Level::DEBUG => "34",
            _ => "35",
        };
        format!(
            "\x1b[2m{}\x1b[0m \x1b[{colour}m{:>5}\x1b[0m \x1b[2m{}:\x1b[0m {}\n",
            rfc3339(line.time),
            line.level.as_str(),
            line.target,
            line.text
        )
    }
}

impl<W> fmt::Debug for LogLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("base", &self.base)
            .field("filter", &self.filter.as_ref().map(Regex::as_str))
            .field("json", &self.json)
            .field("ansi", &self.ansi)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.admission(*metadata.level()) == Admission::Never {
            Interest::never()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.admission(*metadata.level()) != Admission::Never
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.most_verbose()))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldSet::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<FieldSet>() {
            Some(fields) => values.record(fields),
            None => {
                let mut fields = FieldSet::default();
                values.record(&mut fields);
                extensions.insert(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let admission = self.admission(*metadata.level());
        if admission == Admission::Never {
            return;
        }
        let mut fields = FieldSet::default();
        event.record(&mut fields);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(span_fields) = span.extensions().get::<FieldSet>() {
                    fields.add_missing(span_fields);
                }
            }
        }
        let line = LogLine {
            time: Utc::now(),
            level: *metadata.level(),
            target: metadata.target().to_owned(),
            text: fields.text(),
        };
        let shown = match admission {
            Admission::WriterAndRing => true,
            Admission::RingOnly => false,
            Admission::IfFilterMatches => {
                let matched = self.filter.as_ref().is_some_and(|re| line.matches(re));
                if !matched {
                    return;
                }
                true
            }
            Admission::Never => return,
        };
        if shown && self.write_enabled.load(Ordering::Relaxed) {
            let formatted = self.format(&line, fields.message.as_deref(), &fields.fields);
            // A log line that cannot be written has nowhere to be reported.
            let _ = self
                .writer
                .make_writer_for(metadata)
                .write_all(formatted.as_bytes());
        }
        self.ring.push(line);
    }
}

/// Turns the multi-line regex error (pattern, caret, "error: …") into its one-line reason.
pub(super) fn one_line_regex_error(err: &regex::Error) -> String {
    let text = err.to_string();
    if let Some(reason) = text
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
    {
        return reason.to_owned();
    }
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A recorded field value, typed so JSON output keeps numbers and booleans.
#[derive(Debug, Clone)]
pub(super) enum FieldValue {
    Str(String),
    /// Formatted with `Debug` or `Display` (`?x`, `%x`, errors): written as is.
    Formatted(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

pub(super) type NamedValue = (&'static str, FieldValue);

/// The fields of an event or span, in recording order; `message` kept apart.
#[derive(Debug, Default)]
pub(super) struct FieldSet {
    pub(super) message: Option<String>,
    pub(super) fields: Vec<NamedValue>,
}

impl FieldSet {
    pub(super) fn set(&mut self, field: &Field, value: FieldValue) {
        let name = field.name();
        // Peer text reaches logs through messages and `%`/`?` fields: control characters
        // (terminal escapes, NUL) are shown escaped, never written raw to a terminal.
        let value = match value {
            FieldValue::Formatted(s) => FieldValue::Formatted(escape_controls(s)),
            other => other,
        };
        if name == "message" {
            self.message = Some(match value {
                FieldValue::Str(s) => escape_controls(s),
                FieldValue::Formatted(s) => s,
                other => text_value(&other),
            });
            return;
        }
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// Appends a span's fields that the event (or an inner span) did not set itself.
    pub(super) fn add_missing(&mut self, span: &FieldSet) {
        for (name, value) in &span.fields {
            if !self.fields.iter().any(|(n, _)| n == name) {
                self.fields.push((name, value.clone()));
            }
        }
    }

    /// `message k=v k=v`.
    pub(super) fn text(&self) -> String {
        let mut out = self.message.clone().unwrap_or_default();
        for (name, value) in &self.fields {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&text_value(value));
        }
        out
    }
}

impl Visit for FieldSet {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, FieldValue::Formatted(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, FieldValue::Str(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, FieldValue::Bool(value));
    }
}

/// `text` with every control character written as an escape (`\u{1b}`, `\0`, `\n`).
pub(super) fn escape_controls(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A value as written after `name=`: strings quoted only when they would not read as one word.
pub(super) fn text_value(value: &FieldValue) -> String {
    match value {
        FieldValue::Str(s) => {
            let plain = !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
            if plain { s.clone() } else { format!("{s:?}") }
        }
        FieldValue::Formatted(s) => s.clone(),
        FieldValue::I64(n) => n.to_string(),
        FieldValue::U64(n) => n.to_string(),
        FieldValue::F64(n) => n.to_string(),
        FieldValue::Bool(b) => b.to_string(),
    }
}

/// `{"timestamp":…,"level":…,"target":…,"fields":{"message":…,…}}` and a newline.
pub(super) fn json_line(line: &LogLine, message: Option<&str>, fields: &[NamedValue]) -> String {
    use serde_json::{Map, Value};
    let mut object_fields = Map::new();
    if let Some(message) = message {
        object_fields.insert("message".to_owned(), Value::from(message));
    }
    for (name, value) in fields {
        let value = match value {
            FieldValue::Str(s) | FieldValue::Formatted(s) => Value::from(s.as_str()),
            FieldValue::I64(n) => Value::from(*n),
            FieldValue::U64(n) => Value::from(*n),
            FieldValue::F64(n) => Value::from(*n),
            FieldValue::Bool(b) => Value::from(*b),
        };
        object_fields.insert((*name).to_owned(), value);
    }
    let mut object = Map::new();
    object.insert("timestamp".to_owned(), Value::from(rfc3339(line.time)));
    object.insert("level".to_owned(), Value::from(line.level.as_str()));
    object.insert("target".to_owned(), Value::from(line.target.as_str()));
    object.insert("fields".to_owned(), Value::Object(object_fields));
    let mut out = Value::Object(object).to_string();
    out.push('\n');
    out
}
