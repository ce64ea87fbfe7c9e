//! Loopback ports for tests that need "nothing listens here".
//!
//! Binding port 0, reading the number and dropping the listener leaves the port free for anyone: under a
//! parallel run another test's listener took such a port once, and a connection that should have been refused
//! hung until its timeout instead. A [`RefusingPort`] keeps the port bound without listening, so the kernel
//! answers every connection with a reset (`Connection refused`) and gives the port to no one else.

use std::net::{Ipv4Addr, SocketAddr};

/// A loopback port that refuses connections for as long as it is held.
pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
    port: u16,
}

impl RefusingPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("a loopback port");
        let port = socket.local_addr().expect("its address").port();
        Self { socket, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Frees the port for a server that is about to bind it (a gateway coming back after an outage).
    pub fn release(self) -> u16 {
        drop(self.socket);
        self.port
    }
}

impl Default for RefusingPort {
    fn default() -> Self {
        Self::new()
    }
}
