//! The embedded Kafka-protocol broker: tansu with SQLite storage, started and stopped by the server
//! so a learner can pull the broker out from under the pipeline and watch it recover.
//!
//! See `docs/architecture.md` for what tansu 0.6 does and does not do, and the tests that pin it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::LockExt;
use app::api::StageState;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::task::JoinHandle;
use url::Url;

/// Identity the embedded cluster registers under; stable so restarts find their own data.
const CLUSTER_ID: &str = "pipebook";
const NODE_ID: i32 = 1;
/// How long `start` waits for the broker to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot prepare the broker's data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind the embedded broker to {addr} (set PIPEBOOK_BROKER_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("embedded broker failed to start: {0}")]
    Start(String),
    #[error("embedded broker did not accept connections on {0} within {READY_TIMEOUT:?}")]
    NotReady(SocketAddr),
}

struct Running {
    task: JoinHandle<()>,
}

/// A tansu broker running in a task of this process.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    storage: Url,
    running: tokio::sync::Mutex<Option<Running>>,
    status: Mutex<(StageState, Option<String>)>,
}

impl EmbeddedBroker {
    /// Resolves the listen address (port 0 becomes a free port, fixed for the broker's lifetime
    /// so clients can reconnect after a restart) and the SQLite file under `data_dir`.
    pub fn new(data_dir: &Path, addr: SocketAddr) -> Result<Self, BrokerError> {
        let dir = data_dir.join("broker");
        std::fs::create_dir_all(&dir).map_err(|source| BrokerError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let dir = dir.canonicalize().map_err(|source| BrokerError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let addr = resolve_port(addr)?;
        Ok(Self {
            addr,
            storage: sqlite_url(&dir.join("tansu.db")),
            running: tokio::sync::Mutex::new(None),
            status: Mutex::new((StageState::Stopped, None)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    pub fn status(&self) -> (StageState, Option<String>) {
        self.status.lock_or_recover().clone()
    }

    fn set_status(&self, state: StageState, error: Option<String>) {
        let mut status = self.status.lock_or_recover();
        *status = (state, error);
    }

    /// Starts the broker (no-op when it already runs) and waits until it accepts connections.
    pub async fn start(&self) -> Result<(), BrokerError> {
        let mut running = self.running.lock().await;
        if running.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return Ok(());
        }
        let listener = Url::parse(&format!("tcp://{}", self.addr))
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let mut broker = self.build_with_retry(listener).await?;
        let task = tokio::spawn(async move {
            if let Err(error) = broker.serve(tokio::time::Instant::now()).await {
                tracing::error!(?error, "embedded broker stopped with an error");
            }
        });
        *running = Some(Running { task });
        drop(running);
        wait_until_accepting(self.addr)
            .await
            .map_err(|e| self.failed(e))?;
        tracing::info!(addr = %self.addr, storage = %self.storage, "embedded broker ready");
        self.set_status(StageState::Running, None);
        Ok(())
    }

    /// Builds the broker, retrying while SQLite is still locked by the previous instance: aborting
    /// a broker task does not stop a storage call already running on a blocking thread.
    async fn build_with_retry(
        &self,
        listener: Url,
    ) -> Result<Broker<Controller<StorageContainer>, StorageContainer>, BrokerError> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let built = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
                .node_id(NODE_ID)
                .cluster_id(CLUSTER_ID)
                .incarnation_id(uuid::Uuid::new_v4())
                .advertised_listener(listener.clone())
                .storage(self.storage.clone())
                .listener(listener.clone())
                .silent(true)
                .build()
                .await;
            match built {
                Ok(broker) => return Ok(broker),
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(?error, "broker storage busy; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(self.failed(BrokerError::Start(format!("{error:?}")))),
            }
        }
    }

    fn failed(&self, error: BrokerError) -> BrokerError {
        self.set_status(StageState::Failed, Some(error.to_string()));
        error
    }

    /// Stops the broker by aborting its task: connections drop, data stays on disk.
    pub async fn stop(&self) {
        if let Some(running) = self.running.lock().await.take() {
            running.task.abort();
            let _ = running.task.await;
            wait_until_closed(self.addr).await;
        }
        self.set_status(StageState::Stopped, None);
        tracing::info!(addr = %self.addr, "embedded broker stopped");
    }
}

/// tansu joins the URL's path onto the working directory after stripping one leading `/`; a path
/// that starts with `//` therefore stays absolute, whatever directory the server was started in.
fn sqlite_url(db: &Path) -> Url {
    let mut url = Url::parse("sqlite://").expect("static URL parses");
    url.set_path(&format!("/{}", db.display()));
    url
}

fn resolve_port(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = TcpListener::bind(addr).map_err(|source| BrokerError::Bind { addr, source })?;
    probe
        .local_addr()
        .map_err(|source| BrokerError::Bind { addr, source })
}

async fn wait_until_accepting(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BrokerError::NotReady(addr))
}

async fn wait_until_closed(addr: SocketAddr) {
    for _ in 0..100 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_keeps_absolute_paths_absolute_under_tansus_path_rule() {
        let url = sqlite_url(Path::new("/var/lib/pipebook/broker/tansu.db"));
        // Reproduce tansu's rule: strip one leading '/', push onto the working directory.
        let mut path = PathBuf::from("/somewhere/else");
        if let Some(domain) = url.domain() {
            path.push(domain);
        }
        path.push(url.path().strip_prefix('/').unwrap_or(url.path()));
        assert_eq!(path, PathBuf::from("/var/lib/pipebook/broker/tansu.db"));
    }

    #[test]
    fn port_zero_resolves_to_a_free_port() {
        let addr = resolve_port("127.0.0.1:0".parse().expect("addr")).expect("free port");
        assert_ne!(addr.port(), 0);
    }
}
