//! `server.workers` above one: the gateway's own threads, each with a
//! single-threaded runtime, take connections in turn, share the sessions,
//! and finish their requests in flight when the gateway stops.
//!
//! The threads are looked at in `/proc/self/task` (Linux): their names,
//! and the CPU time each has run (`schedstat`).

use std::time::Duration;

use crate::common::*;
use tokio::sync::{oneshot, Mutex};

/// The tests here look at the process's threads by name: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A gateway with `workers` threads in front of an upstream, and a token
/// for `alice` from it.
struct Running {
    _upstream: Upstream,
    base: String,
    port: u16,
    token: String,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), authgate::Error>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Ends `serve`'s wait for its shutdown signal.
    fn stop(&mut self) {
        self.stop.take().expect("stopped once").send(()).unwrap();
    }

    /// Checks that `serve` returned without error once stopped, and that
    /// its worker threads ended with it.
    async fn assert_served(self) {
        let served = tokio::time::timeout(Duration::from_secs(10), self.served)
            .await
            .expect("serve returns once stopped and its requests are done")
            .unwrap();
        assert!(served.is_ok(), "{served:?}");
        assert!(
            worker_threads(self.port).is_empty(),
            "the worker threads ended with serve"
        );
    }
}

async fn start(workers: usize) -> Running {
    let upstream = start_upstream().await;
    let toml = config_toml(upstream.addr, "").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:0\"\nworkers = {workers}"),
    );
    let config = authgate::Config::from_toml_str(&toml).unwrap();
    let gateway = authgate::gateway::Gateway::bind(config).await.unwrap();
    let addr = gateway.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(gateway.serve(async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    // Issued on one thread, good on every thread.
    let token = password_grant(&format!("{base}/management/token"), "alice").await;
    Running {
        _upstream: upstream,
        base,
        port: addr.port(),
        token,
        stop: Some(stop),
        served,
    }
}

/// A client that opens a new connection for each request.
fn one_connection_a_request() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The worker threads of the gateway on `port`, by id, and the
/// nanoseconds each has run.
fn worker_threads(port: u16) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if name.trim_end() != format!("authgate:{port}") {
            continue;
        }
        let ran = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        found.push((task.file_name().to_string_lossy().into_owned(), ran));
    }
    found.sort();
    found
}

#[tokio::test]
async fn connections_are_spread_over_the_threads_which_share_the_sessions() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut gateway = start(3).await;
    let before = worker_threads(gateway.port);
    assert_eq!(
        before.len(),
        2,
        "three workers: this thread and two more, {before:?}"
    );
    let client = one_connection_a_request();
    for n in 0..12 {
        let response = client
            .get(gateway.url(&format!("/item/{n}")))
            .bearer_auth(&gateway.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {n}");
        let seen: serde_json::Value = response.json().await.unwrap();
        assert_eq!(seen["path"], format!("/item/{n}"));
        assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
    }
    let refused = client.get(gateway.url("/item")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "no credential, on whichever thread");

    // Each worker thread ran: it served connections (an idle one sleeps
    // in epoll and runs no time at all).
    let after = worker_threads(gateway.port);
    for ((thread, ran_before), (same, ran_after)) in before.iter().zip(&after) {
        assert_eq!(thread, same);
        assert!(ran_after > ran_before, "worker thread {thread} served nothing");
    }

    gateway.stop();
    gateway.assert_served().await;
}

#[tokio::test]
async fn requests_in_flight_on_every_thread_finish_when_the_gateway_stops() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut gateway = start(2).await;

    // Two connections at once: one on each thread.
    let client = one_connection_a_request();
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let request = client
                .get(gateway.url("/pause"))
                .bearer_auth(&gateway.token)
                .send();
            tokio::spawn(request)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(worker_threads(gateway.port).len(), 1);
    gateway.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        client.get(gateway.url("/pause")).send().await.is_err(),
        "no new connection once stopping"
    );

    for request in in_flight {
        let response = request.await.unwrap().expect("the request in flight is answered");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "paused");
    }
    gateway.assert_served().await;
}
