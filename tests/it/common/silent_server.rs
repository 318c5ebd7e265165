//! A loopback TCP server that accepts connections and never says a word: an SMTP server that
//! never greets, an HTTP API that never answers. For timeout tests.
//!
//! ```ignore
//! let server = SilentServer::start().await;
//! // point a channel at server.address() …
//! server.wait_for_connections(10).await;
//! server.close_connections(); // the peers see end-of-file
//! ```
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long [`SilentServer::wait_for_connections`] waits before failing the test.
const WAIT: Duration = Duration::from_secs(30);

/// A running silent server; dropping it stops accepting and closes every connection.
pub struct SilentServer {
    pub addr: SocketAddr,
    held: Arc<Mutex<Held>>,
    acceptor: JoinHandle<()>,
}

#[derive(Default)]
struct Held {
    open: Vec<TcpStream>,
    accepted: usize,
}

impl SilentServer {
    /// Listens on `127.0.0.1:0` on the current tokio runtime.
    pub async fn start() -> SilentServer {
        let (listener, addr) = super::http_sink::listen_locally("a silent server").await;
        let held = Arc::new(Mutex::new(Held::default()));
        let acceptor = tokio::spawn({
            let held = Arc::clone(&held);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let mut held = lock(&held);
                    held.open.push(stream);
                    held.accepted += 1;
                }
            }
        });
        SilentServer {
            addr,
            held,
            acceptor,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far, closed or not.
    pub fn accepted(&self) -> usize {
        lock(&self.held).accepted
    }

    /// Waits until `n` connections have been accepted; panics after [`WAIT`].
    pub async fn wait_for_connections(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.accepted() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the silent server accepted {} connections in {WAIT:?}, expected {n}",
                self.accepted()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes the connections accepted so far; new ones are still accepted (and held).
    pub fn close_connections(&self) {
        lock(&self.held).open.clear();
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.close_connections();
    }
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}
