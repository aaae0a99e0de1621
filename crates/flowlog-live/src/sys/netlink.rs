//! A NETLINK_NETFILTER socket: send one request datagram, receive datagrams into an owned
//! buffer. What the datagrams mean (NFLOG configuration, logged packets) is decided in
//! [`crate::nflog`]; this file only moves bytes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{check, duration_to_ms, poll_readable, setsockopt_int};
use crate::error::{LiveError, Result};
use crate::source::Source;

const NETLINK_NETFILTER: libc::c_int = 12;
/// Receive buffer for one recv: large enough for the biggest batch NFLOG sends.
const RECV_BUF: usize = 256 * 1024;

/// A bound netfilter netlink socket.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// Times the kernel reported ENOBUFS (messages lost because we read too slowly).
    overruns: u64,
}

impl NetlinkSocket {
    /// Opens and binds a NETLINK_NETFILTER socket in the calling thread's namespace.
    pub fn open() -> Result<NetlinkSocket> {
        let os = |(op, e): (&'static str, io::Error)| LiveError::from_os(op, e);
        // SAFETY: plain socket(2) call.
        let raw = check("opening a netlink socket", unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        })
        .map_err(os)?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A bigger buffer rides out bursts of logged packets; FORCE needs CAP_NET_ADMIN, so
        // fall back to the unprivileged option.
        let size = 8 << 20;
        if setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
            let _ = setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `addr` is a valid sockaddr_nl and its size is passed.
        check("binding the netlink socket", unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })
        .map_err(os)?;
        Ok(NetlinkSocket {
            fd,
            buf: vec![0; RECV_BUF],
            overruns: 0,
        })
    }

    /// Sends one netlink request (already framed) to the kernel.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        // SAFETY: sockaddr_nl is plain data; all-zero (pid 0 = kernel) is the kernel address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `msg` and `addr` are valid for the lengths passed.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(LiveError::from_os(
                "sending a netlink request",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

impl Source for NetlinkSocket {
    fn next_chunk(&mut self, timeout: Duration) -> Result<Option<&[u8]>> {
        let fd = self.fd.as_raw_fd();
        if !poll_readable(fd, duration_to_ms(timeout))
            .map_err(|e| LiveError::from_os("polling the netlink socket", e))?
        {
            return Ok(None);
        }
        // SAFETY: `buf` is valid for writes of its full length.
        let n = unsafe {
            libc::recv(
                fd,
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENOBUFS) => {
                    self.overruns += 1;
                    Ok(None)
                }
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                _ => Err(LiveError::from_os("receiving from netlink", err)),
            };
        }
        Ok(Some(&self.buf[..n as usize]))
    }

    fn take_drops(&mut self) -> Result<u64> {
        Ok(std::mem::take(&mut self.overruns))
    }
}
