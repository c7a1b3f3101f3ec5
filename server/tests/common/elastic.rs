//! An Elasticsearch-API server for the tests that need one: a real Elasticsearch
//! (`PIPEBOOK_TEST_ELASTICSEARCH_URL`) or, by default, osmem-server, an Elasticsearch-API server
//! installed from PyPI by scripts/tools.sh (`PIPEBOOK_TEST_OSMEM` = its binary). Without either,
//! the tests that need one say so and pass.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use pipebook::index::elastic::{ElasticAuth, ElasticSettings};

/// An Elasticsearch-API server for one test: started here (and killed on drop), or external.
pub struct TestElasticsearch {
    pub url: String,
    child: Option<Child>,
}

impl Drop for TestElasticsearch {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl TestElasticsearch {
    /// `None` (with a note on stderr) when no test server is configured.
    pub fn start() -> Option<Self> {
        if let Ok(url) = std::env::var("PIPEBOOK_TEST_ELASTICSEARCH_URL") {
            return Some(Self { url, child: None });
        }
        let Ok(binary) = std::env::var("PIPEBOOK_TEST_OSMEM") else {
            eprintln!(
                "SKIPPED: set PIPEBOOK_TEST_ELASTICSEARCH_URL or PIPEBOOK_TEST_OSMEM \
                 (scripts/test does) to test the Elasticsearch backend"
            );
            return None;
        };
        // Port 0: the server picks a free port and prints {"url": …} when it is listening. Its
        // stdin stays open while this test runs; the server exits when it closes.
        let mut child = Command::new(binary)
            .args(["-addr", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("osmem-server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("osmem-server prints its address");
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        let url = ready["url"].as_str().expect("url in ready line").to_owned();
        Some(Self {
            url,
            child: Some(child),
        })
    }

    /// Settings for a fresh index of its own, so tests sharing a server do not interfere.
    pub fn settings(&self, index: &str) -> ElasticSettings {
        ElasticSettings {
            url: url::Url::parse(&self.url).expect("url"),
            index: format!("{index}-{}", uuid::Uuid::new_v4().simple()),
            auth: ElasticAuth::None,
            ca_cert: None,
        }
    }
}
