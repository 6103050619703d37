//! systemd's service notification protocol (sd_notify): one datagram of
//! `KEY=VALUE` lines to the Unix socket that `$NOTIFY_SOCKET` names, a path
//! or (starting with `@`) an abstract socket name. Without `$NOTIFY_SOCKET`
//! (not run by systemd with `Type=notify`) nothing is sent.
//!
//! s3gate sends [`READY`] once its listeners are bound, [`RELOADING`] then
//! [`READY`] around a reload, and [`STOPPING`] when a shutdown signal
//! starts the drain.

use std::ffi::OsStr;
use std::io;

/// The service is up: its listeners are bound.
pub const READY: &str = "READY=1";
/// The service is reloading its configuration; `READY=1` follows.
pub const RELOADING: &str = "RELOADING=1";
/// The service is shutting down.
pub const STOPPING: &str = "STOPPING=1";

/// Sends `state` to the service manager, if one listens; a failure is logged,
/// never fatal.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Sends `state` in one datagram to the socket `socket` names.
#[cfg(unix)]
pub fn send(socket: &OsStr, state: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let sender = UnixDatagram::unbound()?;
    let name = socket.as_bytes();
    let sent = match name.first() {
        Some(b'/') => sender.send_to(state.as_bytes(), socket)?,
        #[cfg(target_os = "linux")]
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(&name[1..])?;
            sender.send_to_addr(state.as_bytes(), &address)?
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an abstract name (@…)",
            ))
        }
    };
    if sent == state.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "datagram cut short",
        ))
    }
}

/// No service manager speaks this protocol off Unix.
#[cfg(not(unix))]
pub fn send(_socket: &OsStr, _state: &str) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::net::UnixDatagram;

    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_one_datagram_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), READY).unwrap();
        assert_eq!(received(&socket), "READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("s3gate-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&address).unwrap();
        send(OsStr::new(&format!("@{name}")), STOPPING).unwrap();
        assert_eq!(received(&socket), "STOPPING=1");
    }

    #[test]
    fn refuses_a_relative_name() {
        let error = send(OsStr::new("notify"), READY).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}
