//! A fault-injecting TCP relay: clients connect to it on loopback, it connects
//! to a target and copies both ways, with faults on what the target sends
//! back: a delay per chunk, a throughput limit, a stall, a reset (RST) after
//! a number of bytes, or refusing (resetting) every connection. It counts the
//! connections open and the requests in flight (a connection whose client
//! sent bytes that no answer has followed yet), and the most of either at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::loopback;

/// The faults applied to the target's bytes; the default relays faithfully.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Waits this long before forwarding each chunk.
    pub delay_per_chunk: Duration,
    /// Forwards at most this many bytes per second per connection.
    pub bytes_per_s: Option<u64>,
    /// Forwards nothing (holds the bytes) while set.
    pub stall: bool,
    /// Forwards this many bytes of a connection's answer, then resets it.
    pub reset_after: Option<u64>,
    /// Resets every connection, new and open ones: the target is down.
    pub down: bool,
}

/// Largest chunk forwarded at once, so that throttling is smooth.
const CHUNK: usize = 16 << 10;

/// Counters shared by the relay's connections.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    max_open: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Counters {
    fn rise(now: &AtomicU64, max: &AtomicU64) {
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(n, Ordering::SeqCst);
    }
}

/// A running relay; it stops accepting when dropped.
pub struct FaultRelay {
    pub addr: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultRelay {
    /// Starts relaying to `target`, faithfully until faults are set.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = loopback().await;
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let counters = Arc::new(Counters::default());
        let accept = {
            let (faults, counters) = (faults.clone(), counters.clone());
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    counters.accepted.fetch_add(1, Ordering::SeqCst);
                    let (faults, counters) = (faults.clone(), counters.clone());
                    tokio::spawn(async move {
                        Counters::rise(&counters.open, &counters.max_open);
                        connection(inbound, target, &faults, &counters).await;
                        counters.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Self {
            addr,
            faults,
            counters,
            accept,
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the faults; open connections follow them from their next chunk.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// Most connections open at once since the last [`Self::reset_peaks`].
    pub fn max_open(&self) -> u64 {
        self.counters.max_open.load(Ordering::SeqCst)
    }

    /// Most requests in flight at once since the last [`Self::reset_peaks`].
    pub fn max_in_flight(&self) -> u64 {
        self.counters.max_in_flight.load(Ordering::SeqCst)
    }

    /// Starts the peaks again from the current counts.
    pub fn reset_peaks(&self) {
        let c = &self.counters;
        c.max_open
            .store(c.open.load(Ordering::SeqCst), Ordering::SeqCst);
        c.max_in_flight
            .store(c.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Resets `stream`: SO_LINGER 0, then close, sends RST instead of FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Relays one connection until either side closes or a fault ends it.
async fn connection(inbound: TcpStream, target: SocketAddr, faults: &Mutex<Faults>, c: &Counters) {
    if faults.lock().unwrap().down {
        return reset(inbound);
    }
    let Ok(outbound) = TcpStream::connect(target).await else {
        return reset(inbound);
    };
    let _ = outbound.set_nodelay(true);
    let _ = inbound.set_nodelay(true);
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let awaiting = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !awaiting.swap(true, Ordering::SeqCst) {
                        Counters::rise(&c.in_flight, &c.max_in_flight);
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            let f = wait_for(faults).await;
            if f.down {
                return true;
            }
            if let Some(bps) = f.bytes_per_s {
                let ms = (n as u64 * 1000).div_ceil(bps.max(1));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let allowed = f
                .reset_after
                .map_or(n as u64, |limit| (n as u64).min(limit.saturating_sub(sent)));
            if client_write
                .write_all(&buf[..allowed as usize])
                .await
                .is_err()
            {
                return false;
            }
            sent += allowed;
            if awaiting.swap(false, Ordering::SeqCst) {
                c.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            if allowed < n as u64 {
                return true;
            }
        }
    };
    let watch_down = async {
        while !faults.lock().unwrap().down {
            tokio::time::sleep(Duration::from_millis(10)).await; // polling interval
        }
    };
    let must_reset = tokio::select! {
        () = up => false,
        must_reset = down => must_reset,
        () = watch_down => true,
    };
    if awaiting.swap(false, Ordering::SeqCst) {
        c.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    if must_reset {
        if let Ok(stream) = client_read.reunite(client_write) {
            reset(stream);
        }
    }
}

/// The faults to apply to the next chunk, after its delay and once no stall holds it.
async fn wait_for(faults: &Mutex<Faults>) -> Faults {
    let first = *faults.lock().unwrap();
    tokio::time::sleep(first.delay_per_chunk).await;
    loop {
        let f = *faults.lock().unwrap();
        if !f.stall || f.down {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // polling interval
    }
}
