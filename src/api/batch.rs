//! Requests that arrive together are served together. A [`Coalescer`] hands every request's
//! input to one task, which takes all that are waiting and answers them with one call: the
//! tokens of many requests are checked with one store read ([`Service::authenticate_tokens`]),
//! and reported events are routed over one set of reads ([`Service::prepare_enqueue_many`])
//! and written in one store transaction ([`Service::queue_prepared`]). Under load a few
//! statements serve many requests; a lone request waits for nobody. Each answer is what the
//! request would get on its own.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::model::User;
use crate::service::{EnqueueInput, EnqueueReport, Service, ServiceResult};

/// Inputs answered together at most; more wait for the next round.
const MAX_BATCH: usize = 256;
/// Inputs waiting for the task before a request waits to hand its own over.
const QUEUE: usize = 1024;

/// One request's input and where its answer goes.
struct Job<In, Out> {
    input: In,
    reply: oneshot::Sender<Out>,
}

/// The handle requests hand their inputs to; the task ends when the last handle is dropped,
/// after answering what it holds.
pub(super) struct Coalescer<In, Out> {
    jobs: mpsc::Sender<Job<In, Out>>,
}

impl<In, Out> Clone for Coalescer<In, Out> {
    fn clone(&self) -> Self {
        Coalescer {
            jobs: self.jobs.clone(),
        }
    }
}

impl<In: Send + 'static, Out: Send + 'static> Coalescer<In, Out> {
    /// Starts the task on the current runtime: `answer` gets every input waiting (up to
    /// [`MAX_BATCH`]) and returns one output per input, in order.
    pub(super) fn start<F, Fut>(mut answer: F) -> Self
    where
        F: FnMut(Vec<In>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Out>> + Send,
    {
        let (jobs, mut waiting) = mpsc::channel::<Job<In, Out>>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (inputs, replies): (Vec<In>, Vec<_>) =
                    batch.drain(..).map(|job| (job.input, job.reply)).unzip();
                let outputs = answer(inputs).await;
                debug_assert_eq!(outputs.len(), replies.len(), "one output per input");
                for (reply, output) in replies.into_iter().zip(outputs) {
                    // A request that went away meanwhile: what its input did stands.
                    let _ = reply.send(output);
                }
            }
        });
        Coalescer { jobs }
    }

    /// `input`'s answer, made with whatever else is waiting; `None` when the task has
    /// stopped (the server is stopping).
    pub(super) async fn call(&self, input: In) -> Option<Out> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { input, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// Checks bearer tokens, many requests' with one store read.
pub(super) type Authenticator = Coalescer<String, ServiceResult<User>>;

/// Writes reported events, many requests' in one transaction.
pub(super) type Batcher = Coalescer<(User, EnqueueInput), ServiceResult<EnqueueReport>>;

/// The token checker for `service`.
pub(super) fn authenticator(service: Arc<Service>) -> Authenticator {
    Coalescer::start(move |secrets: Vec<String>| {
        let service = service.clone();
        async move {
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            service.authenticate_tokens(&secrets).await
        }
    })
}

/// The events' writer for `service`.
pub(super) fn batcher(service: Arc<Service>) -> Batcher {
    Coalescer::start(move |reports: Vec<(User, EnqueueInput)>| {
        let service = service.clone();
        async move { enqueue_together(&service, reports).await }
    })
}

/// Prepares `reports` together, writes the prepared ones in one transaction, and returns each
/// report's outcome in order.
async fn enqueue_together(
    service: &Service,
    reports: Vec<(User, EnqueueInput)>,
) -> Vec<ServiceResult<EnqueueReport>> {
    let asked: Vec<(&User, &EnqueueInput)> = reports.iter().map(|(u, i)| (u, i)).collect();
    let prepared = service.prepare_enqueue_many(&asked).await;
    let mut outcomes: Vec<Option<ServiceResult<EnqueueReport>>> = Vec::new();
    let mut ready = Vec::new();
    for result in prepared {
        match result {
            Ok(p) => {
                ready.push((outcomes.len(), p));
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(Err(e))),
        }
    }
    let (at, ready): (Vec<usize>, Vec<_>) = ready.into_iter().unzip();
    for (i, report) in at.into_iter().zip(service.queue_prepared(ready).await) {
        outcomes[i] = Some(report);
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every report has an outcome"))
        .collect()
}
