//! End-to-end harness: runs the real `kdns` binary on loopback ports and talks to it over real
//! sockets with hickory-proto as an independent DNS implementation.
#![allow(dead_code)]

pub mod netns;
pub mod upstream;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_kdns");

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kdns-e2e-{tag}-{}-{}", std::process::id(), fastrand_u32()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fastrand_u32() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    t.subsec_nanos() ^ (t.as_secs() as u32)
}

pub struct Kdns {
    pub child: Child,
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub port: u16,
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Kdns {
    /// Writes `corefile` (with `PORT` replaced) and starts kdns on it; waits until it answers.
    pub fn start(corefile: &str) -> Kdns {
        Self::start_with(corefile, &[])
    }

    pub fn start_with(corefile: &str, extra: &[&str]) -> Kdns {
        let k = Kdns::spawn(corefile, extra);
        k.wait_for_line("kdns-", Duration::from_secs(10));
        k
    }

    /// Starts kdns without waiting for its startup banner (for configs meant to exit early).
    pub fn spawn(corefile: &str, extra: &[&str]) -> Kdns {
        let port = free_port();
        let dir = temp_dir("run");
        let conf = dir.join("Corefile");
        std::fs::write(&conf, corefile.replace("PORT", &port.to_string())).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("-conf").arg(&conf).args(extra).current_dir(&dir);
        let mut k = Kdns::from_command(cmd, dir, conf);
        k.port = port;
        k
    }

    /// Spawns `cmd` (a kdns command line, possibly wrapped in `ip netns exec`) with its output
    /// captured; `dir` is removed when the handle drops.
    pub fn from_command(mut cmd: Command, dir: PathBuf, conf: PathBuf) -> Kdns {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kdns");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
        {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    out.lock().unwrap().push(line);
                }
            });
        }
        Kdns { child, dir, conf, port: 0, output }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            assert!(Instant::now() < deadline, "no line containing {needle:?}; output:\n{}", self.lines().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    pub fn signal(&self, sig: i32) {
        let rc = unsafe_kill(self.child.id() as i32, sig);
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn rewrite(&self, corefile: &str) {
        let tmp = self.dir.join("Corefile.new");
        std::fs::write(&tmp, corefile.replace("PORT", &self.port.to_string())).unwrap();
        std::fs::rename(&tmp, &self.conf).unwrap();
    }

    /// Waits for exit; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, sig: i32) -> i32 {
    // SAFETY: kill(2) with a pid we spawned; no memory is shared.
    unsafe { libc::kill(pid, sig) }
}

impl Drop for Kdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    m
}

pub fn with_edns(mut m: Message, size: u16) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(size);
    m.set_edns(e);
    m
}

/// Sends raw bytes over UDP; returns the reply bytes or None on timeout.
pub fn udp_raw(addr: SocketAddr, packet: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.send_to(packet, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

pub fn udp(addr: SocketAddr, m: &Message) -> Message {
    let bytes = udp_raw(addr, &m.to_vec().unwrap(), Duration::from_secs(3)).expect("UDP reply");
    let reply = Message::from_vec(&bytes).expect("reply parses");
    assert_eq!(reply.metadata.id, m.metadata.id);
    reply
}

/// Retries a UDP exchange until `ok` accepts the reply (for reload tests).
pub fn udp_until(addr: SocketAddr, m: &Message, timeout: Duration, ok: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + timeout;
    loop {
        let r = udp(addr, m);
        if ok(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn tcp_send(s: &mut TcpStream, bytes: &[u8]) {
    let mut f = (bytes.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(bytes);
    s.write_all(&f).unwrap();
}

pub fn tcp_recv(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

pub fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tcp_send(&mut s, &m.to_vec().unwrap());
    Message::from_vec(&tcp_recv(&mut s).expect("TCP reply")).unwrap()
}

/// Plain HTTP GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The Prometheus text of the metrics listener on 127.0.0.1:`port`.
pub fn metrics_text(port: u16) -> String {
    http_get(&format!("127.0.0.1:{port}"), "/metrics").expect("metrics listener answers").1
}

/// Value of one sample in a Prometheus text scrape (`name{labels}` exactly as rendered).
pub fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Runs kdns to completion: (exit code, stdout, stderr). A run that does not end within 10 s is
/// killed and fails the test (a config meant to be rejected must never start serving).
pub fn run_to_exit(args: &[&str], dir: &Path) -> (i32, String, String) {
    let mut child =
        Command::new(BIN).args(args).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kdns {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code().unwrap_or(-1), out_reader.join().unwrap(), err_reader.join().unwrap())
}

/// Polls `port` on 127.0.0.1 with a query for `name` until something answers (up to 10 s), then
/// kills `child`. For tests that start kdns themselves (custom flags, stdin, argv[0]).
pub fn first_answer(child: std::process::Child, port: u16, name: &str) -> Option<Message> {
    first_answer_keep(child, port, name, |child| {
        let _ = child.kill();
        let _ = child.wait();
    })
    .0
}

/// [`first_answer`], then `then` runs with the child still alive (to scrape it, signal it, …);
/// `then` must stop it.
pub fn first_answer_keep<T>(
    mut child: std::process::Child,
    port: u16,
    name: &str,
    then: impl FnOnce(&mut std::process::Child) -> T,
) -> (Option<Message>, T) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let packet = query(name, hickory_proto::rr::RecordType::A).to_vec().unwrap();
    let mut reply = None;
    for _ in 0..100 {
        if let Some(bytes) = udp_raw(addr, &packet, Duration::from_millis(100)) {
            reply = Message::from_vec(&bytes).ok();
            break;
        }
    }
    let t = then(&mut child);
    (reply, t)
}
