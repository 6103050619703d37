//! A second host for network-fault tests: a network namespace of the test's
//! own, joined to this one by a veth pair with addresses in a private /30
//! (`10.213.0.0/16`, one block per namespace). Servers bind inside it from a
//! thread that entered it; a listening socket keeps its namespace. The
//! namespace (and with it the veth pair) is deleted on drop, also when the
//! test panics. Creating it needs root: a test that cannot fails, it never skips.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A network namespace and the veth pair that links it to this one.
pub struct Netns {
    /// `ip netns` name.
    pub name: String,
    /// This side of the veth pair.
    pub host_veth: String,
    /// The namespace's side of the veth pair.
    pub ns_veth: String,
    /// This side's address.
    pub host_addr: Ipv4Addr,
    /// The namespace's address.
    pub ns_addr: Ipv4Addr,
}

/// Runs `ip ARGS`, panicking with its error output when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (Debian's iproute2): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed (network-fault tests need root and iproute2): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Netns {
    /// Creates a namespace named after this process and a counter, with its
    /// veth pair up and addressed; panics (failing the test) when it cannot.
    pub async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // One /30 per (process, namespace): 16 namespaces per process.
        let block = (pid % 1024) * 16 + n % 16;
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + block * 4;
        let netns = Self {
            name: format!("s3gate-f{pid}-{n}"),
            host_veth: format!("f{pid}x{n}h"),
            ns_veth: format!("f{pid}x{n}n"),
            host_addr: Ipv4Addr::from(base + 1),
            ns_addr: Ipv4Addr::from(base + 2),
        };
        ip(&["netns", "add", &netns.name]);
        // From here on, drop deletes the namespace even if a step fails.
        ip(&[
            "link",
            "add",
            &netns.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            &netns.ns_veth,
            "netns",
            &netns.name,
        ]);
        let host_cidr = format!("{}/30", netns.host_addr);
        let ns_cidr = format!("{}/30", netns.ns_addr);
        ip(&["addr", "add", &host_cidr, "dev", &netns.host_veth]);
        ip(&["link", "set", &netns.host_veth, "up"]);
        netns.ns_ip(&["addr", "add", &ns_cidr, "dev", &netns.ns_veth]);
        netns.ns_ip(&["link", "set", "lo", "up"]);
        netns.set_link(true).await;
        netns
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn ns_ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Sets the namespace's side of the link up or down; up, waits (bounded)
    /// until both sides report the link up.
    pub async fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        self.ns_ip(&["link", "set", &self.ns_veth, state]);
        if up {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !(self.link_up(None) && self.link_up(Some(&self.name))) {
                assert!(
                    Instant::now() < deadline,
                    "veth {} never came up",
                    self.name
                );
                tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
            }
        }
    }

    /// The link's operational state is UP, seen from this side (`None`) or
    /// from inside the namespace.
    fn link_up(&self, netns: Option<&str>) -> bool {
        let (dev, mut cmd) = match netns {
            None => (&self.host_veth, Command::new("ip")),
            Some(name) => {
                let mut cmd = Command::new("ip");
                cmd.args(["-n", name]);
                (&self.ns_veth, cmd)
            }
        };
        let out = cmd.args(["-o", "link", "show", dev]).output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("state UP"))
    }

    /// A TCP listener on the namespace's address (ephemeral port), bound by a
    /// thread that entered the namespace.
    pub fn listen(&self) -> tokio::net::TcpListener {
        let path = format!("/run/netns/{}", self.name);
        let addr = SocketAddr::from((self.ns_addr, 0));
        let listener = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
        })
        .join()
        .unwrap();
        listener.set_nonblocking(true).unwrap();
        tokio::net::TcpListener::from_std(listener).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth end and so the pair.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.host_veth])
            .output();
    }
}

/// This namespace's TCP connections to `peer` in state ESTABLISHED or
/// CLOSE_WAIT (held by a process, as opposed to closing in the kernel), read
/// from `/proc/net/tcp`.
pub fn connections_to(peer: SocketAddr) -> usize {
    let SocketAddr::V4(peer) = peer else {
        panic!("IPv4 only: {peer}")
    };
    let wanted = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(peer.ip().octets()),
        peer.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // ESTABLISHED is 01, CLOSE_WAIT 08.
            fields.get(2) == Some(&wanted.as_str()) && matches!(fields.get(3), Some(&"01" | &"08"))
        })
        .count()
}
