//! The gateway's worker threads (`server.workers` above one). The main
//! thread accepts every connection and hands them out in turn to itself
//! and to the other threads, each running a single-threaded runtime: a
//! connection, its upstream connection and their tasks stay on one
//! thread, with no wake-ups across cores. (Measured with two workers: a
//! multi-threaded runtime, which moves tasks between threads, served
//! barely more than one thread; threads accepting on one shared socket
//! took connections unevenly; `SO_REUSEPORT` spread them evenly but would
//! let a second gateway started by mistake on the same port share its
//! traffic without a word.)

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::error::Error;

/// An accepted connection on its way to another thread.
type Handed = (std::net::TcpStream, SocketAddr);

/// Where one thread's connections come from.
pub(crate) enum Connections {
    /// The listening socket: the main thread accepts, keeps its share and
    /// hands the rest on, in turn.
    Accepting {
        listener: TcpListener,
        others: Vec<mpsc::UnboundedSender<Handed>>,
        turn: usize,
    },
    /// What the main thread hands this worker thread; ends when the main
    /// thread stops accepting.
    Handed(mpsc::UnboundedReceiver<Handed>),
}

impl Connections {
    /// The next connection for this thread; `None` once there are no
    /// more.
    pub(crate) async fn next(&mut self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Self::Accepting {
                listener,
                others,
                turn,
            } => loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => return Some(Err(err)),
                };
                *turn = (*turn + 1) % (others.len() + 1);
                let Some(other) = turn.checked_sub(1).and_then(|at| others.get(at)) else {
                    return Some(Ok((stream, peer)));
                };
                // A worker thread that is gone (it cannot be, short of a
                // panic) leaves its share to this one.
                let std = match stream.into_std() {
                    Ok(std) => std,
                    Err(err) => return Some(Err(err)),
                };
                if let Err(mpsc::error::SendError((std, peer))) = other.send((std, peer)) {
                    return Some(TcpStream::from_std(std).map(|stream| (stream, peer)));
                }
            },
            Self::Handed(handed) => {
                let (std, peer) = handed.recv().await?;
                Some(TcpStream::from_std(std).map(|stream| (stream, peer)))
            }
        }
    }
}

/// The worker threads; each ends once the main thread stops handing it
/// connections (its `Connections` dropped) and its own have finished.
pub(crate) struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `extra` threads, each serving with `serve` the connections
    /// the returned `Connections` (for the main thread, accepting on
    /// `listener`) hands it. Returns once every thread runs.
    pub(crate) fn spread<F, S>(
        listener: TcpListener,
        extra: usize,
        serve: S,
    ) -> Result<(Connections, Self), Error>
    where
        S: Fn(Connections) -> F + Clone + Send + 'static,
        F: Future<Output = ()>,
    {
        // Named for the port, so that the threads of two gateways in one
        // process are told apart (a name is at most 15 bytes).
        let port = listener.local_addr().map_or(0, |addr| addr.port());
        let mut others = Vec::with_capacity(extra);
        let mut threads = Vec::with_capacity(extra);
        for n in 1..=extra {
            let (hand, handed) = mpsc::unbounded_channel();
            let (started, running) = std_mpsc::channel();
            let serve = serve.clone();
            let thread = std::thread::Builder::new()
                .name(format!("authgate:{port}"))
                .spawn(
                    move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => {
                            let _ = started.send(Ok(()));
                            runtime.block_on(serve(Connections::Handed(handed)));
                        }
                        Err(err) => drop(started.send(Err(err))),
                    },
                )
                .map_err(|e| Error::io("cannot start a worker thread", e))?;
            match running.recv() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(Error::io(format_args!("worker thread {n} cannot start"), err)),
                Err(_) => {
                    let err = io::Error::other("it ended before it started");
                    return Err(Error::io(format_args!("worker thread {n} cannot start"), err));
                }
            }
            others.push(hand);
            threads.push(thread);
        }
        let connections = Connections::Accepting {
            listener,
            others,
            turn: 0,
        };
        Ok((connections, Self { threads }))
    }

    /// Waits while the threads finish their requests in flight (after
    /// the main thread's `Connections` is dropped).
    pub(crate) async fn finish(self) {
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}
