//! Batched UDP I/O: `recvmmsg(2)` into a fixed set of buffers and `sendmmsg(2)` of the replies,
//! so a busy worker pays two system calls per batch instead of two per query. Linux-only, like
//! the rest of the listener; the buffers are allocated once per worker and reused.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

/// Converts an address to the C form `sendmmsg` takes; returns the length used.
fn to_c(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn from_c(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family says so).
            let sin = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family says so).
            let sin6 = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Up to `capacity` received datagrams of at most `size` bytes each.
pub struct Inbox {
    size: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs` only ever point into this struct's own buffers
// and are rebuilt before every system call; nothing is shared across threads.
unsafe impl Send for Inbox {}

impl Inbox {
    pub fn new(capacity: usize, size: usize) -> Inbox {
        let capacity = capacity.max(1);
        Inbox {
            size,
            bufs: vec![0; capacity * size],
            // SAFETY: all-zero is a valid sockaddr_storage / iovec / mmsghdr.
            addrs: vec![unsafe { zeroed() }; capacity],
            lens: vec![0; capacity],
            truncated: vec![false; capacity],
            iovs: vec![unsafe { zeroed() }; capacity],
            hdrs: vec![unsafe { zeroed() }; capacity],
            count: 0,
        }
    }

    /// One `recvmmsg` with `flags` (e.g. `MSG_WAITFORONE` on a blocking socket, `MSG_DONTWAIT`).
    /// Returns how many datagrams arrived.
    pub fn recv(&mut self, fd: &impl AsRawFd, flags: libc::c_int) -> io::Result<usize> {
        self.count = 0;
        let n = self.hdrs.len();
        let base = self.bufs.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i * size is inside `bufs` (capacity * size bytes).
            self.iovs[i] = libc::iovec { iov_base: unsafe { base.add(i * self.size) } as *mut _, iov_len: self.size };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_storage as *mut _;
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers owned by self, sized as declared.
        let r = unsafe { libc::recvmmsg(fd.as_raw_fd(), self.hdrs.as_mut_ptr(), n as _, flags, std::ptr::null_mut()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = r as usize;
        for i in 0..r {
            self.lens[i] = self.hdrs[i].msg_len as usize;
            self.truncated[i] = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.count = r;
        Ok(r)
    }

    /// Datagram `i` of the last receive: its bytes (`None` when it was larger than the buffer
    /// and got cut) and its sender.
    pub fn get(&self, i: usize) -> (Option<&[u8]>, Option<SocketAddr>) {
        let start = i * self.size;
        let bytes = (!self.truncated[i]).then(|| &self.bufs[start..start + self.lens[i].min(self.size)]);
        (bytes, from_c(&self.addrs[i]))
    }
}

/// Replies waiting for one `sendmmsg`.
pub struct Outbox {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
}

// SAFETY: as for Inbox: pointers into own buffers, rebuilt before each call.
unsafe impl Send for Outbox {}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        let capacity = capacity.max(1);
        Outbox {
            bufs: (0..capacity).map(|_| Vec::with_capacity(512)).collect(),
            // SAFETY: all-zero is a valid sockaddr_storage / iovec / mmsghdr.
            addrs: vec![unsafe { zeroed() }; capacity],
            addr_lens: vec![0; capacity],
            iovs: vec![unsafe { zeroed() }; capacity],
            hdrs: vec![unsafe { zeroed() }; capacity],
            count: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The buffer the next reply is written into (kept until [`Outbox::commit`]).
    pub fn next_buf(&mut self) -> &mut Vec<u8> {
        &mut self.bufs[self.count]
    }

    /// Queues the buffer from [`Outbox::next_buf`] for `to`.
    pub fn commit(&mut self, to: SocketAddr) {
        self.addr_lens[self.count] = to_c(to, &mut self.addrs[self.count]);
        self.count += 1;
    }

    /// Sends everything queued without blocking. A datagram the kernel refuses (full buffer,
    /// unreachable peer) is dropped, as a single `send_to` failure would drop it; the rest still go.
    pub fn flush(&mut self, fd: RawFd) {
        for i in 0..self.count {
            let b = &mut self.bufs[i];
            self.iovs[i] = libc::iovec { iov_base: b.as_mut_ptr() as *mut _, iov_len: b.len() };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_storage as *mut _;
            h.msg_namelen = self.addr_lens[i];
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let hdrs = &mut self.hdrs[..self.count];
        send_all(hdrs.len(), |from| sendmmsg(fd, &mut hdrs[from..]), |_, _| {});
        self.count = 0;
    }
}

/// Datagrams [`send_connected`] hands the kernel per system call.
const SEND_MAX: usize = 32;

/// Sends `items` (their bytes as `bytes` gives them) on a connected socket without blocking,
/// up to [`SEND_MAX`] per `sendmmsg`. A datagram the kernel refuses is handed to `failed` with
/// the error and skipped; the rest still go.
pub fn send_connected<T>(fd: RawFd, items: &[T], bytes: impl Fn(&T) -> &[u8], mut failed: impl FnMut(&T, io::Error)) {
    for chunk in items.chunks(SEND_MAX) {
        // SAFETY: all-zero is a valid iovec / mmsghdr (no address: the socket is connected).
        let mut iovs: [libc::iovec; SEND_MAX] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; SEND_MAX] = unsafe { zeroed() };
        for (i, item) in chunk.iter().enumerate() {
            let b = bytes(item);
            iovs[i] = libc::iovec { iov_base: b.as_ptr() as *mut _, iov_len: b.len() };
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let hdrs = &mut hdrs[..chunk.len()];
        send_all(hdrs.len(), |from| sendmmsg(fd, &mut hdrs[from..]), |i, e| failed(&chunk[i], e));
    }
}

/// Sends datagrams `0..count` with `send(from)` (one `sendmmsg` of those from `from` on,
/// returning how many the kernel took) until each went or failed; a failed one is reported
/// to `failed` and skipped.
fn send_all(count: usize, mut send: impl FnMut(usize) -> io::Result<usize>, mut failed: impl FnMut(usize, io::Error)) {
    let mut done = 0;
    while done < count {
        match send(done) {
            Ok(n) => done += n.max(1),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                failed(done, e);
                done += 1;
            }
        }
    }
}

/// One non-blocking `sendmmsg` of `hdrs`; how many datagrams the kernel took.
fn sendmmsg(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: every header points at buffers its caller keeps alive across the call.
    let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as _, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn batch_round_trip_and_truncation() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        client.send_to(b"one", to).unwrap();
        client.send_to(&[7u8; 100], to).unwrap();
        client.send_to(b"three", to).unwrap();
        let mut inbox = Inbox::new(8, 64);
        let mut got = 0;
        let mut seen = Vec::new();
        while got < 3 {
            let n = inbox.recv(&server, libc::MSG_WAITFORONE).unwrap();
            for i in 0..n {
                let (bytes, from) = inbox.get(i);
                assert_eq!(from, Some(client.local_addr().unwrap()));
                seen.push(bytes.map(|b| b.to_vec()));
            }
            got += n;
        }
        assert_eq!(seen, vec![Some(b"one".to_vec()), None, Some(b"three".to_vec())]);

        let mut outbox = Outbox::new(4);
        for word in [&b"a"[..], b"bb"] {
            let b = outbox.next_buf();
            b.clear();
            b.extend_from_slice(word);
            outbox.commit(client.local_addr().unwrap());
        }
        outbox.flush(server.as_raw_fd());
        let mut buf = [0u8; 16];
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a");
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"bb"[..], to));
    }

    #[test]
    fn connected_sends_skip_a_refused_datagram_and_report_it() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(peer.local_addr().unwrap()).unwrap();
        // Larger than any UDP datagram: the kernel refuses it (EMSGSIZE), the others still go.
        let too_big = vec![0u8; 70_000];
        let items: Vec<&[u8]> = vec![b"first", &too_big, b"third"];
        let mut refused = Vec::new();
        send_connected(sock.as_raw_fd(), &items, |b| b, |b, e| refused.push((b.len(), e.raw_os_error())));
        assert_eq!(refused, vec![(70_000, Some(libc::EMSGSIZE))]);
        let mut buf = [0u8; 16];
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"third");
    }
}
