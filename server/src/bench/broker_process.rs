//! `pipebook bench --broker-cmd`: a broker that is not embedded (a bake-off candidate, see
//! `docs/benchmarks.md`) run as a process of its own. Each measurement that starts a fresh embedded
//! broker starts a fresh one of these instead, on a free port and a new data dir, and kills it
//! afterwards, so the figures compare with the embedded broker's measurement for measurement.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kafka::broker::BrokerError;

/// How long a started broker has to accept connections (a cold SQLite file is created first).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker's command line; `{addr}` stands for a free `127.0.0.1` port and `{data}` for a fresh
/// data dir. Run by `sh -c`, so a wrapper script or environment assignments work too.
#[derive(Debug, Clone)]
pub struct BrokerCommand(pub String);

/// A running broker this process started; killed (SIGKILL) when dropped.
pub struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
}

impl BrokerCommand {
    /// Starts the broker on a free port with `data_dir` (created) as its data, and waits until it
    /// accepts connections. Its output goes to `<data_dir>.log`, next to the data.
    pub fn start(&self, data_dir: &Path) -> Result<BrokerProcess, BrokerError> {
        let data_error = |source| BrokerError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(data_error)?;
        let addr = free_port()?;
        let line = self
            .0
            .replace("{addr}", &addr.to_string())
            .replace("{data}", &data_dir.display().to_string());
        let log = std::fs::File::create(data_dir.with_extension("log")).map_err(data_error)?;
        let log_err = log.try_clone().map_err(data_error)?;
        // `exec`, so the PID is the broker's own and its memory is what /proc shows for it.
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {line}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| BrokerError::Start(format!("{line}: {e}")))?;
        let mut process = BrokerProcess { child, addr };
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(BrokerError::Start(format!("{line} exited: {status}")));
            }
            if Instant::now() > deadline {
                return Err(BrokerError::NotReady(addr));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!(%addr, pid = process.child.id(), "external broker started");
        Ok(process)
    }
}

impl BrokerProcess {
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's resident memory and its peak so far (`VmRSS`, `VmHWM`), in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        super::memory_in(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<SocketAddr, BrokerError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    TcpListener::bind(any)
        .and_then(|listener| listener.local_addr())
        .map_err(|source| BrokerError::Bind { addr: any, source })
}
