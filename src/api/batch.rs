//! Reports that arrive together are written together: each request checks, routes and admits
//! its event on its own (reads, which run side by side), then hands the result to one writer
//! task, which takes everything waiting and writes it in one store transaction
//! ([`Service::queue_prepared`]). Under load a commit serves many requests; a lone request
//! waits for nobody. The requests' answers are the same as one at a time.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::service::{EnqueueReport, Prepared, Service, ServiceError, ServiceResult};

/// Prepared events written in one transaction at most; more wait for the next.
const MAX_BATCH: usize = 256;
/// Prepared events waiting for the writer before a request waits to hand its own over.
const QUEUE: usize = 1024;

/// One request's prepared event and where its report goes.
type Job = (Prepared, oneshot::Sender<ServiceResult<EnqueueReport>>);

/// The handle requests queue their prepared events through; the writer task ends when the
/// last handle is dropped, after writing what it holds.
#[derive(Clone)]
pub(super) struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the writer task for `service` on the current runtime.
    pub(super) fn start(service: Arc<Service>) -> Batcher {
        let (jobs, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(service, waiting));
        Batcher { jobs }
    }

    /// Writes `prepared` (with whatever else is waiting) and returns its report.
    pub(super) async fn queue(&self, prepared: Prepared) -> ServiceResult<EnqueueReport> {
        let (reply, report) = oneshot::channel();
        let stopped = || {
            ServiceError::Invalid(
                "the server is stopping and did not write this event; report it again".into(),
            )
        };
        self.jobs
            .send((prepared, reply))
            .await
            .map_err(|_| stopped())?;
        report.await.map_err(|_| stopped())?
    }
}

/// The writer: takes every job waiting (up to [`MAX_BATCH`]), writes them in one
/// transaction, answers each.
async fn write_batches(service: Arc<Service>, mut waiting: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (batch, replies): (Vec<Prepared>, Vec<_>) = jobs.drain(..).unzip();
        let reports = service.queue_prepared(batch).await;
        for (reply, report) in replies.into_iter().zip(reports) {
            // A request that went away meanwhile: its messages are written all the same.
            let _ = reply.send(report);
        }
    }
}
