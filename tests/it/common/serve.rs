//! `herald serve` as a child process, for tests of replicas: started in a scratch directory
//! with a config file there, its stderr kept in a log file, stopped by signal, and killed if
//! the test fails before stopping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::cli::herald;
use std::time::{Duration, Instant};

/// A running `herald serve`.
pub struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    /// `herald --config CONFIG serve EXTRA…` in `dir`; stderr goes to `dir/NAME.log`.
    pub fn start(dir: &Path, config: &str, name: &str, extra: &[&str]) -> Serve {
        let log = dir.join(format!("{name}.log"));
        let child = herald(dir, &["--config", config, "serve"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn herald serve");
        Serve { child, log }
    }

    /// Sends `sig` (`-TERM`, `-KILL`, …).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, then the exit code (within 30 s, or the test fails showing the log).
    pub fn terminate(mut self) -> i32 {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where its stderr goes (readable after [`Serve::terminate`]).
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
