//! Shared fixtures for the integration tests (and, through `benches/common`, the benchmarks):
//! a fresh, empty database per test, on SQLite or PostgreSQL. A test module uses
//!
//! * [`sqlite_db`] / [`postgres_db`] for one backend, or
//! * [`for_both_backends!`](crate::for_both_backends) to run the same `async fn NAME(db: TestDb)`
//!   against both (test output reads `MODULE::sqlite::NAME … ok` and
//!   `MODULE::postgres::NAME … ok`).
//!
//! PostgreSQL comes from `HERALD_TEST_DATABASE_URL` when it is set (any role allowed to
//! `CREATE DATABASE`); otherwise the test process starts one throwaway cluster on a free
//! loopback port, which a detached watchdog stops and deletes when the process exits. All
//! integration tests are one binary, so a run starts one cluster (plus one per
//! [`PrivateCluster`]). No server at all is a test failure, never a skip.
//!
//! The harness is synchronous and shells out to `psql`, so it needs no runtime and is safe to
//! call from parallel test threads.
#![allow(dead_code)]

pub mod api;
pub mod channel_fixtures;
pub mod cli;
pub mod console;
pub mod deployment;
pub mod dispatcher;
pub mod http_sink;
pub mod pty;
pub mod seed;
pub mod serve;
pub mod silent_server;
pub mod smtp_server;
pub mod ssh;
pub mod store;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set to `postgres://USER:PASSWORD@HOST:PORT/DB` to use an existing server instead of a
/// throwaway cluster.
pub const EXTERNAL_URL_VAR: &str = "HERALD_TEST_DATABASE_URL";

const INSTALL_HINT: &str = "install PostgreSQL (`apt-get install -y postgresql`; the service \
    need not run) or set HERALD_TEST_DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/postgres \
    for a role that may CREATE DATABASE";

/// How long a throwaway cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh, empty database for one test. Dropping it removes it: the SQLite temp dir is
/// deleted, the PostgreSQL database dropped (best effort).
pub struct TestDb {
    /// What the store connects to: `sqlite:///tmp/…/herald.db` or
    /// `postgres://postgres@127.0.0.1:PORT/herald_test_…`.
    pub url: String,
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    /// The PostgreSQL database name, or the SQLite database file's path.
    pub name: String,
    resource: Resource,
}

enum Resource {
    Sqlite(tempfile::TempDir),
    Postgres(&'static Server),
}

impl TestDb {
    pub fn is_postgres(&self) -> bool {
        self.backend == "postgres"
    }

    pub fn is_sqlite(&self) -> bool {
        self.backend == "sqlite"
    }
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("url", &redact(&self.url))
            .field("backend", &self.backend)
            .finish()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // The SQLite temp dir removes itself. `WITH (FORCE)` (PostgreSQL 13+) also ends the
        // connections a pool may still hold; older servers get the plain form.
        if let Resource::Postgres(server) = &self.resource {
            let name = &self.name;
            if server
                .psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .is_err()
            {
                let _ = server.psql(&format!("DROP DATABASE IF EXISTS {name}"));
            }
        }
    }
}

/// A fresh SQLite database: `herald.db` (not yet created) in a new temp dir.
pub fn sqlite_db() -> TestDb {
    let dir = tempfile::Builder::new()
        .prefix("herald-sqlite-")
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temp dir for a SQLite test database: {e}"));
    let path = dir.path().join("herald.db");
    TestDb {
        url: format!("sqlite://{}", path.display()),
        backend: "sqlite",
        name: path.display().to_string(),
        resource: Resource::Sqlite(dir),
    }
}

/// A fresh PostgreSQL database with a unique name (`herald_test_…`), on the
/// `HERALD_TEST_DATABASE_URL` server or this process's throwaway cluster.
///
/// Panics, with instructions, when no server can be had.
pub fn postgres_db() -> TestDb {
    database_on(server())
}

fn database_on(server: &'static Server) -> TestDb {
    let name = format!("herald_test_{}", uuid::Uuid::now_v7().simple());
    if let Err(e) = server.psql(&format!("CREATE DATABASE {name}")) {
        panic!(
            "creating test database {name} on {}: {e}{}",
            redact(&server.admin_url),
            server.log_tail()
        );
    }
    TestDb {
        url: with_database(&server.admin_url, &name),
        backend: "postgres",
        name,
        resource: Resource::Postgres(server),
    }
}

/// A PostgreSQL cluster of one test's own, for faults that would disturb every other test on
/// the shared one (a restart). Always a throwaway cluster, even when `HERALD_TEST_DATABASE_URL`
/// is set.
pub struct PrivateCluster {
    server: &'static Server,
}

impl PrivateCluster {
    /// Starts it (a few seconds); panics with instructions when PostgreSQL is missing.
    pub fn start() -> PrivateCluster {
        let server =
            start_cluster().unwrap_or_else(|e| panic!("no private PostgreSQL cluster: {e}"));
        // Leaked on purpose: the cluster lives until the test process ends (its watchdog then
        // removes it), like the shared one.
        PrivateCluster {
            server: Box::leak(Box::new(server)),
        }
    }

    /// A fresh database on it.
    pub fn db(&self) -> TestDb {
        database_on(self.server)
    }

    /// `pg_ctl restart -m fast`: every connection is cut, and the server is back when this
    /// returns.
    pub fn restart(&self) {
        let control = self.server.control.as_ref().expect("a throwaway cluster");
        let status = pg_command(&control.pg_ctl, &control.root, control.as_postgres)
            .arg("-D")
            .arg(&control.data)
            .arg("-l")
            .arg(self.server.log.as_deref().expect("a log"))
            .args(["-m", "fast", "-w", "-t", "60", "restart"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running pg_ctl restart");
        assert!(
            status.success(),
            "pg_ctl restart failed{}",
            self.server.log_tail()
        );
        wait_until_ready(
            &self.server.admin_url,
            self.server.log.as_deref().expect("a log"),
            Instant::now() + START_TIMEOUT,
        )
        .expect("the restarted cluster accepts connections");
    }
}

/// Runs one SQL command with `psql` against `url` and returns its unaligned, tuples-only
/// output (`select 1` gives `"1"`), or the error psql printed.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let psql = psql_binary()?;
    let output = Command::new(psql)
        .args([
            "-X",
            "-w",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", psql.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned())
    } else {
        Err(format!(
            "psql {:?} against {} failed ({}): {}",
            sql,
            redact(url),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs each named `async fn NAME(db: TestDb)` as two tests, `sqlite::NAME` and
/// `postgres::NAME`, each on a fresh database and a multi-threaded tokio runtime. A body may
/// return `()` or `Result<(), E: Debug>` (an `Err` fails the test).
///
/// Invoke it once per test module, at the module's top level (next to the functions), and keep
/// the names `sqlite` and `postgres` free there:
///
/// ```ignore
/// use crate::common::TestDb;
/// use crate::for_both_backends;
///
/// async fn enqueue_dedupes(db: TestDb) -> anyhow::Result<()> { … }
///
/// for_both_backends!(enqueue_dedupes);
/// ```
#[macro_export]
macro_rules! for_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::common::TestOutcome::check(
                        super::$name($crate::common::sqlite_db()).await,
                    )
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::common::TestOutcome::check(
                        super::$name($crate::common::postgres_db()).await,
                    )
                }
            )*
        }
    };
}

/// What a test body run by [`for_both_backends!`](crate::for_both_backends) may return.
pub trait TestOutcome {
    fn check(self);
}

impl TestOutcome for () {
    fn check(self) {}
}

impl<E: std::fmt::Debug> TestOutcome for Result<(), E> {
    fn check(self) {
        if let Err(e) = self {
            panic!("test failed: {e:?}");
        }
    }
}

/// Where test databases are created: an existing server or this process's throwaway cluster.
struct Server {
    /// A maintenance connection (`…/postgres`) that may CREATE and DROP databases.
    admin_url: String,
    /// The throwaway cluster's log, for error messages; `None` for an external server.
    log: Option<PathBuf>,
    /// Write end of the watchdog's stdin. Never written or dropped: the kernel closes it when
    /// this process exits, however it exits, and that end-of-file is the watchdog's signal.
    _watchdog: Option<ChildStdin>,
    /// How to restart a throwaway cluster; `None` for an external server.
    control: Option<ClusterControl>,
}

/// What `pg_ctl restart` needs for a throwaway cluster.
struct ClusterControl {
    pg_ctl: PathBuf,
    root: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

impl Server {
    fn psql(&self, sql: &str) -> Result<String, String> {
        psql(&self.admin_url, sql)
    }

    fn log_tail(&self) -> String {
        self.log.as_deref().map(log_tail).unwrap_or_default()
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| match std::env::var(EXTERNAL_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => external_server(url.trim()),
        _ => start_cluster(),
    });
    match server {
        Ok(server) => server,
        Err(e) => panic!("no PostgreSQL server for tests: {e}"),
    }
}

fn external_server(url: &str) -> Result<Server, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{EXTERNAL_URL_VAR}={} is not a postgres:// URL",
            redact(url)
        ));
    }
    psql(url, "select 1").map_err(|e| format!("{EXTERNAL_URL_VAR} is set but unusable: {e}"))?;
    Ok(Server {
        admin_url: url.to_owned(),
        log: None,
        _watchdog: None,
        control: None,
    })
}

/// Starts a throwaway cluster: `initdb` into a temp dir, then `pg_ctl start` on a free
/// loopback port, retrying with another port if that one was taken meanwhile.
fn start_cluster() -> Result<Server, String> {
    let started = Instant::now();
    psql_binary()?;
    let initdb = find_pg_binary("initdb").ok_or_else(|| {
        format!(
            "no `initdb` found in PATH, in `pg_config --bindir` or in \
             /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
        )
    })?;
    // Take pg_ctl and postgres from initdb's own directory so the versions match.
    let sibling = |name: &str| {
        beside(&initdb, name)
            .or_else(|| find_pg_binary(name))
            .ok_or_else(|| {
                format!(
                    "`initdb` is at {} but no `{name}` found; {INSTALL_HINT}",
                    initdb.display()
                )
            })
    };
    let pg_ctl = sibling("pg_ctl")?;
    let postgres = sibling("postgres")?;

    let as_postgres = running_as_root();
    let root = cluster_dir(as_postgres)?;
    // Started before anything can fail, so even a half-made cluster is removed.
    let watchdog = spawn_watchdog(&root, &pg_ctl, as_postgres)?;
    let data = root.join("data");
    let log = root.join("postgres.log");

    let output = pg_command(&initdb, &root, as_postgres)
        .arg("-D")
        .arg(&data)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--no-locale",
        ])
        .output()
        .map_err(|e| format!("running {}: {e}", initdb.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}{}",
            initdb.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }

    let settings = format!(
        "\n# herald test harness\nlisten_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\n\
         full_page_writes = off\nmax_connections = 200\n",
        data.display().to_string().replace('\'', "''")
    );
    OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut conf| conf.write_all(settings.as_bytes()))
        .map_err(|e| format!("configuring the test cluster in {}: {e}", data.display()))?;

    let mut attempts = Vec::new();
    for _ in 0..5 {
        let port = free_port()?;
        let log_len = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let pg_ctl_out = root.join("pg_ctl.out");
        let out = File::create(&pg_ctl_out)
            .map_err(|e| format!("creating {}: {e}", pg_ctl_out.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        // pg_ctl's output goes to a file, not a pipe: the server it leaves running must not
        // hold a pipe of ours open.
        let status = pg_command(&pg_ctl, &root, as_postgres)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .arg("-p")
            .arg(&postgres)
            .args(["-w", "-t", &START_TIMEOUT.as_secs().to_string()])
            .args(["-o", &format!("-p {port}"), "start"])
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| format!("running {}: {e}", pg_ctl.display()))?;
        let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        if status.success() {
            wait_until_ready(&admin_url, &log, started + START_TIMEOUT)?;
            eprintln!(
                "herald test harness: PostgreSQL cluster at 127.0.0.1:{port} in {} ready after {:.2?}",
                root.display(),
                started.elapsed()
            );
            return Ok(Server {
                admin_url,
                log: Some(log),
                _watchdog: Some(watchdog),
                control: Some(ClusterControl {
                    pg_ctl: pg_ctl.clone(),
                    root: root.clone(),
                    data: data.clone(),
                    as_postgres,
                }),
            });
        }
        let new_log = fs::read(&log)
            .map(|bytes| {
                String::from_utf8_lossy(&bytes[(log_len as usize).min(bytes.len())..]).into_owned()
            })
            .unwrap_or_default();
        let port_taken = new_log.contains("could not bind") || new_log.contains("already in use");
        attempts.push(format!(
            "port {port}: {}\n--- server log ---\n{}",
            fs::read_to_string(&pg_ctl_out).unwrap_or_default().trim(),
            new_log.trim()
        ));
        if !port_taken {
            break;
        }
    }
    Err(format!(
        "the throwaway cluster in {} did not start:\n{}",
        root.display(),
        attempts.join("\n")
    ))
}

fn wait_until_ready(admin_url: &str, log: &Path, deadline: Instant) -> Result<(), String> {
    loop {
        match psql(admin_url, "select 1") {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "the throwaway cluster did not accept connections within {START_TIMEOUT:?}: {e}{}",
                    log_tail(log)
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A new directory for the cluster. As root, initdb and postgres refuse to run, so they run as
/// `postgres`, which must own the directory and be able to reach it.
fn cluster_dir(as_postgres: bool) -> Result<PathBuf, String> {
    let mut bases = vec![std::env::temp_dir()];
    if as_postgres && bases[0] != Path::new("/tmp") {
        bases.push(PathBuf::from("/tmp"));
    }
    let mut problems = Vec::new();
    for base in bases {
        let dir = match tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir_in(&base)
        {
            Ok(dir) => dir,
            Err(e) => {
                problems.push(format!("{}: {e}", base.display()));
                continue;
            }
        };
        // Unix socket paths are limited to 107 bytes: DIR/data/.s.PGSQL.NNNNN.
        if dir.path().as_os_str().len() > 80 {
            problems.push(format!(
                "{}: path too long for a unix socket",
                dir.path().display()
            ));
            continue;
        }
        if as_postgres && let Err(e) = hand_to_postgres_user(dir.path()) {
            problems.push(format!(
                "{}: not usable by the `postgres` user, as which the server must run when \
                 tests run as root: {e}",
                dir.path().display()
            ));
            continue;
        }
        return Ok(dir.keep());
    }
    Err(format!(
        "no directory for the throwaway cluster: {}; {INSTALL_HINT}",
        problems.join("; ")
    ))
}

/// Gives `dir` to the `postgres` user and checks that user can write there (every parent must
/// be reachable too).
fn hand_to_postgres_user(dir: &Path) -> Result<(), String> {
    let run = |command: &mut Command| {
        let output = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{command:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{command:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    };
    run(Command::new("chown").arg("postgres").arg(dir))?;
    run(Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-w"])
        .arg(dir))
}

/// A detached shell that waits for end-of-file on its stdin (this process has exited, however
/// it exited), then stops the cluster and deletes its directory. It runs in its own process
/// group so a Ctrl-C aimed at the test run does not kill it before it has cleaned up.
fn spawn_watchdog(root: &Path, pg_ctl: &Path, as_postgres: bool) -> Result<ChildStdin, String> {
    const SCRIPT: &str = r#"
trap '' HUP INT
cat >/dev/null
root=$1
shift
data="$root/data"
if [ -f "$data/postmaster.pid" ]; then
    "$@" -D "$data" -m immediate -w -t 20 stop >/dev/null 2>&1
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
fi
rm -rf "$root"
"#;
    let mut command = Command::new("sh");
    command.args(["-c", SCRIPT, "herald-pg-watchdog"]).arg(root);
    if as_postgres {
        command.args(["runuser", "-u", "postgres", "--"]);
    }
    let mut child = command
        .arg(pg_ctl)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the cluster watchdog (sh): {e}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| "the cluster watchdog has no stdin".to_owned())
}

/// A command for a server binary, run as `postgres` via `runuser` when we are root.
fn pg_command(program: &Path, dir: &Path, as_postgres: bool) -> Command {
    let mut command = if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command.current_dir(dir).stdin(Stdio::null());
    command
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A loopback port nobody listens on right now (it may be taken again before we bind it;
/// the caller retries).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("finding a free loopback port: {e}"))
}

fn psql_binary() -> Result<&'static Path, String> {
    static PSQL: OnceLock<Option<PathBuf>> = OnceLock::new();
    // The psql beside initdb matches the local server's version and skips Debian's Perl
    // wrapper (/usr/bin/psql), which costs ~25 ms a call.
    PSQL.get_or_init(|| {
        find_pg_binary("initdb")
            .and_then(|initdb| beside(&initdb, "psql"))
            .or_else(|| find_pg_binary("psql"))
    })
    .as_deref()
    .ok_or_else(|| {
        format!(
            "no `psql` found in PATH, in `pg_config --bindir` or in \
                 /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
        )
    })
}

/// A PostgreSQL program from PATH, else `pg_config --bindir`, else the highest version under
/// /usr/lib/postgresql (Debian installs the server binaries there, off PATH).
fn find_pg_binary(name: &str) -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p));
    in_path
        .or_else(|| {
            let out = Command::new("pg_config").arg("--bindir").output().ok()?;
            let bindir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let candidate = Path::new(&bindir).join(name);
            (out.status.success() && is_executable(&candidate)).then_some(candidate)
        })
        .or_else(|| {
            let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry
                        .file_name()
                        .to_str()?
                        .split('.')
                        .map(|part| part.parse().ok())
                        .collect::<Option<Vec<u32>>>()?;
                    let candidate = entry.path().join("bin").join(name);
                    is_executable(&candidate).then_some((version, candidate))
                })
                .collect();
            versions.sort();
            versions.pop().map(|(_, path)| path)
        })
}

/// The program `name` in the same directory as `binary` (after resolving symlinks).
fn beside(binary: &Path, name: &str) -> Option<PathBuf> {
    let candidate = fs::canonicalize(binary).ok()?.parent()?.join(name);
    is_executable(&candidate).then_some(candidate)
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- {} (last lines) ---\n{tail}", log.display())
    }
}

/// `url` with its database (path) replaced by `database`, keeping credentials and query.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = before_query.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{database}{query}")
}

/// `url` with any password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}
