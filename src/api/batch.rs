//! Reports that arrive together are handled together: each request hands its event to one
//! task, which takes every report waiting, routes them over one set of reads
//! ([`Service::prepare_enqueue_many`]) and writes them in one store transaction
//! ([`Service::queue_prepared`]). Under load a few statements serve many requests; a lone
//! request waits for nobody. Each answer is what the request would get on its own.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::model::User;
use crate::service::{EnqueueInput, EnqueueReport, Service, ServiceError, ServiceResult};

/// Reports handled together at most; more wait for the next batch.
const MAX_BATCH: usize = 256;
/// Reports waiting for the task before a request waits to hand its own over.
const QUEUE: usize = 1024;

/// One request's report, its caller, and where its outcome goes.
struct Job {
    caller: User,
    input: EnqueueInput,
    reply: oneshot::Sender<ServiceResult<EnqueueReport>>,
}

/// The handle requests hand their reports to; the task ends when the last handle is
/// dropped, after finishing what it holds.
#[derive(Clone)]
pub(super) struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the task for `service` on the current runtime.
    pub(super) fn start(service: Arc<Service>) -> Batcher {
        let (jobs, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(service, waiting));
        Batcher { jobs }
    }

    /// Enqueues `input` as `caller` (with whatever else is waiting) and returns its report.
    pub(super) async fn enqueue(
        &self,
        caller: User,
        input: EnqueueInput,
    ) -> ServiceResult<EnqueueReport> {
        let (reply, report) = oneshot::channel();
        let stopped = || {
            ServiceError::Invalid(
                "the server is stopping and did not write this event; report it again".into(),
            )
        };
        self.jobs
            .send(Job {
                caller,
                input,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        report.await.map_err(|_| stopped())?
    }
}

/// The task: takes every report waiting (up to [`MAX_BATCH`]), prepares them together,
/// writes the prepared ones in one transaction, answers each.
async fn write_batches(service: Arc<Service>, mut waiting: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let reports: Vec<(&User, &EnqueueInput)> =
            jobs.iter().map(|j| (&j.caller, &j.input)).collect();
        let prepared = service.prepare_enqueue_many(&reports).await;
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
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            // A request that went away meanwhile: its messages are written all the same.
            let _ = job
                .reply
                .send(outcome.expect("every report has an outcome"));
        }
    }
}
