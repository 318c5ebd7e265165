//! The in-memory ring of recent log lines the console's Troubleshoot tab reads.

use super::*;

/// One log event as kept in the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the event happened.
    pub time: DateTime<Utc>,
    /// Its level.
    pub level: Level,
    /// Its target, e.g. `herald::dispatch`.
    pub target: String,
    /// The message followed by its fields and those of its spans: `delivered message_id=…`.
    pub text: String,
}

impl LogLine {
    /// Whether `re` matches this line's `LEVEL target: text` (no timestamp). The log filter
    /// and the console's filter both match this form.
    pub fn matches(&self, re: &Regex) -> bool {
        re.is_match(&self.filter_text())
    }

    pub(super) fn filter_text(&self) -> String {
        format!("{} {}: {}", self.level.as_str(), self.target, self.text)
    }
}

impl fmt::Display for LogLine {
    /// The text form written to stderr, without colour and newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:>5} {}: {}",
            rfc3339(self.time),
            self.level.as_str(),
            self.target,
            self.text
        )
    }
}

pub(super) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The last N log lines, shared between the logging layer and readers such as the console.
/// Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct LogRing {
    pub(super) inner: Arc<RingInner>,
}

pub(super) struct RingInner {
    pub(super) capacity: usize,
    /// Lines with the generation they were pushed at, oldest first.
    pub(super) lines: Mutex<VecDeque<(u64, Arc<LogLine>)>>,
    pub(super) generation: AtomicU64,
}

impl LogRing {
    /// An empty ring keeping at most `capacity` lines (0 keeps none but still counts).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(RingInner {
                capacity,
                lines: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&self, line: LogLine) {
        let line = Arc::new(line);
        let mut lines = self.lock();
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if self.inner.capacity == 0 {
            return;
        }
        if lines.len() == self.inner.capacity {
            lines.pop_front();
        }
        lines.push_back((generation, line));
    }

    /// Every line kept, oldest first.
    pub fn snapshot(&self) -> Vec<LogLine> {
        self.lines_since_generation(0, None)
    }

    /// The lines kept that `re` matches (see [`LogLine::matches`]), oldest first.
    pub fn lines_matching(&self, re: &Regex) -> Vec<LogLine> {
        self.lines_since_generation(0, Some(re))
    }

    /// The lines pushed after [`generation`](Self::generation) returned `generation` and still
    /// kept, oldest first: a reader can append these instead of copying the whole ring.
    pub fn since(&self, generation: u64) -> Vec<LogLine> {
        self.lines_since_generation(generation, None)
    }

    /// How many lines were ever pushed; changes exactly when something new arrived.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The most lines kept.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How many lines are kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn lines_since_generation(&self, after: u64, re: Option<&Regex>) -> Vec<LogLine> {
        // Copy the `Arc`s under the lock and match outside it, so loggers never wait on a regex.
        let kept: Vec<Arc<LogLine>> = {
            let lines = self.lock();
            let start = lines.partition_point(|(generation, _)| *generation <= after);
            lines.range(start..).map(|(_, line)| line.clone()).collect()
        };
        kept.iter()
            .filter(|line| re.is_none_or(|re| line.matches(re)))
            .map(|line| LogLine::clone(line))
            .collect()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Arc<LogLine>)>> {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for LogRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRing")
            .field("capacity", &self.inner.capacity)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}
