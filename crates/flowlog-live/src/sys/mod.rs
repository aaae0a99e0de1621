//! The only `unsafe` code in flowlog: raw Linux sockets and the memory they share with the
//! kernel. [`ring::PacketRing`] is an AF_PACKET socket with a TPACKET_V3 receive ring,
//! [`netlink::NetlinkSocket`] a NETLINK_NETFILTER socket used for NFLOG, and
//! [`netns::in_netns`] runs the code that opens them inside another network namespace.
//! Everything here is a thin wrapper over one system call or one shared-memory access; all
//! parsing of what the kernel wrote happens in safe modules, behind [`crate::source::Source`].

#![allow(unsafe_code)]

pub mod netlink;
pub mod netns;
pub mod ring;
pub mod signal;

use std::io;

/// `Err(last OS error)` when a libc call returned -1.
fn check(op: &'static str, ret: libc::c_int) -> Result<libc::c_int, (&'static str, io::Error)> {
    if ret < 0 {
        Err((op, io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

/// Sets an integer-valued socket option.
fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed alongside.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes. `Ok(false)` on timeout or EINTR.
fn poll_readable(fd: libc::c_int, timeout_ms: libc::c_int) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLERR,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    if ret > 0 && pfd.revents & libc::POLLERR != 0 {
        // A pending socket error (ENETDOWN while the interface is down) keeps POLLERR set
        // until read; read it so the next poll blocks again instead of spinning.
        let err = take_socket_error(fd);
        tracing::debug!(fd, error = err, "socket error cleared");
        return Ok(pfd.revents & libc::POLLIN != 0);
    }
    Ok(ret > 0)
}

/// Reads and clears `SO_ERROR`.
fn take_socket_error(fd: libc::c_int) -> libc::c_int {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for the sizes passed.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        );
    }
    err
}

fn duration_to_ms(d: std::time::Duration) -> libc::c_int {
    d.as_millis().min(i32::MAX as u128) as libc::c_int
}
