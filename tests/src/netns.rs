//! Network namespaces for tests: created with unique names, removed on drop, and entered per thread so
//! a test can open sockets inside them. Traffic stays inside namespaces the test made.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "ipqbdb-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("ip netns exec")
    }

    /// Like [`Netns::exec`], failing the test when the command fails.
    pub fn must(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends UDP packets to `port` that arrive in this namespace to NFQUEUE `queue`, with `tool`
    /// (`iptables` or `ip6tables`).
    pub fn queue_udp(&self, tool: &str, port: u16, queue: u16) {
        self.queue_port(
            tool,
            "filter",
            "udp",
            port,
            &["--queue-num", &queue.to_string()],
        );
    }

    /// Appends to the INPUT chain of `table` a rule, with `tool` (`iptables` or `ip6tables`), that
    /// sends `proto` packets to `port` to NFQUEUE with the target options `target` (`--queue-num
    /// N`, `--queue-balance A:B`, `--queue-bypass`).
    pub fn queue_port(&self, tool: &str, table: &str, proto: &str, port: u16, target: &[&str]) {
        let port = port.to_string();
        let mut argv = vec![
            tool, "-t", table, "-A", "INPUT", "-p", proto, "--dport", &port, "-j", "NFQUEUE",
        ];
        argv.extend_from_slice(target);
        self.must(&argv);
    }

    /// Queue `queue`, in the mangle table, judges UDP packets to `port` (a destination spec such as
    /// `Q1DM4` marks them); the filter table then rejects the packets marked `mark`.
    pub fn queue_and_reject_marked(&self, port: u16, queue: u16, mark: u32) {
        let queue = queue.to_string();
        self.queue_port("iptables", "mangle", "udp", port, &["--queue-num", &queue]);
        let (port, mark) = (port.to_string(), mark.to_string());
        self.must(&[
            "iptables", "-A", "INPUT", "-p", "udp", "--dport", &port, "-m", "mark", "--mark",
            &mark, "-j", "REJECT",
        ]);
    }

    /// Packets the REJECT rule of this namespace's INPUT chain met.
    pub fn reject_count(&self) -> u64 {
        let out = self.must(&["iptables", "-L", "INPUT", "-v", "-x", "-n"]);
        out.lines()
            .find(|l| l.contains("REJECT"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("REJECT rule counter")
    }

    /// A command builder that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens belong to the namespace).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("namespace file");
                // SAFETY: setns on this thread only, with a namespace descriptor we hold open.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace")
        })
    }

    /// A UDP socket bound to `addr` inside the namespace, with a large receive buffer.
    pub fn udp(&self, addr: &str) -> UdpSocket {
        let addr: SocketAddr = addr.parse().expect("socket address");
        self.enter(|| {
            let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            let size: libc::c_int = 8 << 20;
            // SAFETY: SO_RCVBUFFORCE with a valid int; failure only means a smaller buffer.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            s
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair: `a` gets `a_addrs`, `b` gets `b_addrs` (CIDR notation;
/// IPv6 addresses are added without duplicate address detection so they work at once).
pub fn pair(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) {
    let (va, vb) = ("veth-a", "veth-b");
    ip(&[
        "link", "add", va, "netns", &a.name, "type", "veth", "peer", "name", vb, "netns", &b.name,
    ]);
    for (ns, dev, addrs) in [(a, va, a_addrs), (b, vb, b_addrs)] {
        for addr in addrs {
            if addr.contains(':') {
                ns.ip(&["addr", "add", addr, "dev", dev, "nodad"]);
            } else {
                ns.ip(&["addr", "add", addr, "dev", dev]);
            }
        }
        ns.ip(&["link", "set", dev, "up"]);
    }
}
