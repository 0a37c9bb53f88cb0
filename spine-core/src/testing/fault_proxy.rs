//! [`FaultProxy`]: a TCP proxy between an app and its broker that can cut
//! every connection, swallow traffic or slow it down, so that a service's
//! tests can check what it does when the network fails, on a real broker.
//!
//! Kafka clients connect to the broker the bootstrap address names, then to
//! the addresses the broker *advertises* in its metadata. Start the broker
//! with its advertised listener set to the proxy's address, so that every
//! connection goes through the proxy, not only the first:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use spine_kafka_core::testing::FaultProxy;
//!
//! // The broker listens on 127.0.0.1:19092 and advertises the proxy's address.
//! let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), "127.0.0.1:19092".parse().unwrap()).await?;
//! println!("start the broker with --advertised-listener-url tcp://{}", proxy.addr());
//! // ... run the app with bootstrap.servers = proxy.addr() ...
//! proxy.cut();                              // every connection closed, new ones refused
//! tokio::time::sleep(Duration::from_secs(10)).await;
//! proxy.restore();                          // back to normal
//! proxy.latency(Duration::from_millis(200)); // each chunk delayed
//! proxy.blackhole();                        // connections stay open, nothing gets through
//! # Ok(()) }
//! ```
//!
//! Written here rather than taken from a crate: toxiproxy needs its own
//! server process, and no Rust crate offers a small in-process proxy with
//! these faults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forwards everything.
    None,
    /// Closes every connection and refuses new ones.
    Cut,
    /// Keeps connections open and drops everything sent on them.
    Blackhole,
    /// Forwards everything, each chunk after this delay.
    Latency(Duration),
}

/// A TCP proxy that can fail on demand. Stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<watch::Sender<Fault>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks a free one) and forwards each
    /// connection to `upstream`, which need not be up yet.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let fault = Arc::new(watch::Sender::new(Fault::None));
        let f = fault.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *f.borrow() == Fault::Cut {
                    drop(client); // refused: closed at once
                    continue;
                }
                tokio::spawn(forward(client, upstream, f.subscribe()));
            }
        });
        Ok(FaultProxy {
            addr,
            fault,
            accept,
        })
    }

    /// The address clients (and the broker's advertised listener) use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones, until [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.fault.send_replace(Fault::Cut);
    }

    /// Keeps connections open but lets nothing through, either way, until
    /// [`FaultProxy::restore`]: what is sent meanwhile is lost, as on a
    /// network that drops packets.
    pub fn blackhole(&self) {
        self.fault.send_replace(Fault::Blackhole);
    }

    /// Delays each chunk of traffic by `delay`, either way.
    pub fn latency(&self, delay: Duration) {
        self.fault.send_replace(Fault::Latency(delay));
    }

    /// Back to forwarding everything at once.
    pub fn restore(&self) {
        self.fault.send_replace(Fault::None);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Closes the connections still open.
        self.fault.send_replace(Fault::Cut);
    }
}

/// Copies both ways until either side closes or a cut.
async fn forward(client: TcpStream, upstream: SocketAddr, fault: watch::Receiver<Fault>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return; // the upstream is down: the client sees its connection close
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = pipe(cr, sw, fault.clone()) => {}
        _ = pipe(sr, cw, fault) => {}
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = fault.changed() => {
                if changed.is_err() || *fault.borrow() == Fault::Cut {
                    return;
                }
                continue;
            }
        };
        let now = *fault.borrow();
        match now {
            Fault::Cut => return,
            Fault::Blackhole => continue,
            Fault::Latency(d) => tokio::time::sleep(d).await,
            Fault::None => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `msg` and reads the echo, giving up after `within`.
    async fn round_trip(s: &mut TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut buf = vec![0u8; msg.len()];
        match tokio::time::timeout(within, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf),
            _ => None,
        }
    }

    async fn proxy() -> FaultProxy {
        FaultProxy::start("127.0.0.1:0".parse().unwrap(), echo().await)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn forwards_both_ways() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        let got = round_trip(&mut s, b"ping", Duration::from_secs(5)).await;
        assert_eq!(got.as_deref(), Some(&b"ping"[..]));
    }

    #[tokio::test]
    async fn a_cut_closes_connections_and_refuses_new_ones_until_restored() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        assert!(round_trip(&mut s, b"a", Duration::from_secs(5))
            .await
            .is_some());
        p.cut();
        // The open connection is closed: its read ends.
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
        // A new one is closed at once.
        let mut fresh = TcpStream::connect(p.addr()).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), fresh.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "refused: {read:?}");
        p.restore();
        let mut again = TcpStream::connect(p.addr()).await.unwrap();
        let got = round_trip(&mut again, b"back", Duration::from_secs(5)).await;
        assert_eq!(got.as_deref(), Some(&b"back"[..]));
    }

    #[tokio::test]
    async fn a_blackhole_keeps_connections_and_drops_traffic() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        p.blackhole();
        assert_eq!(
            round_trip(&mut s, b"lost", Duration::from_millis(300)).await,
            None
        );
        p.restore();
        let got = round_trip(&mut s, b"through", Duration::from_secs(5)).await;
        assert_eq!(
            got.as_deref(),
            Some(&b"through"[..]),
            "the same connection works again"
        );
    }

    #[tokio::test]
    async fn latency_delays_each_way() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        p.latency(Duration::from_millis(150));
        let start = Instant::now();
        let got = round_trip(&mut s, b"slow", Duration::from_secs(5)).await;
        assert_eq!(got.as_deref(), Some(&b"slow"[..]));
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "{:?}",
            start.elapsed()
        );
    }
}
