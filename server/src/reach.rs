//! Network reach of the stages: which addresses the streamer may listen on and the producer may
//! connect to. By default both stay on the machine: the streamer listens on loopback only and the
//! producer reads only from the streamer Pipebook runs, so a request cannot serve the stream (or a
//! dataset's contents) to the network, nor make the server connect to a host of its choosing. The
//! operator lifts both limits with `PIPEBOOK_ALLOW_NETWORK_SOCKETS=true`.

use std::net::SocketAddr;

/// The setting that lifts the limits, as the refusals name it.
pub const ALLOW_SETTING: &str = "PIPEBOOK_ALLOW_NETWORK_SOCKETS=true";

/// What the operator allows the stages' sockets to reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkReach {
    /// Any address for the streamer's `listen` and the producer's `socket`.
    pub allow_network: bool,
}

impl NetworkReach {
    /// The streamer's `listen`: a loopback address (127.0.0.0/8, ::1) unless allowed.
    pub fn check_listen(self, listen: SocketAddr) -> Result<(), String> {
        if self.allow_network || listen.ip().to_canonical().is_loopback() {
            return Ok(());
        }
        Err(format!(
            "listen: {listen} is not a loopback address; the streamer listens only on \
             127.0.0.0/8 or [::1] unless the operator sets {ALLOW_SETTING}"
        ))
    }

    /// The producer's `socket`: the running streamer's address unless allowed. `streamer` is
    /// where the streamer listens now (`None` when it is not running).
    pub fn check_producer_socket(
        self,
        socket: SocketAddr,
        streamer: Option<SocketAddr>,
    ) -> Result<(), String> {
        if self.allow_network || streamer == Some(socket) {
            return Ok(());
        }
        let streamer = match streamer {
            Some(addr) => format!("the streamer listens on {addr}"),
            None => "the streamer is not running".to_owned(),
        };
        Err(format!(
            "socket: {socket} is not the streamer's address ({streamer}); leave socket empty to \
             follow the streamer, or the operator sets {ALLOW_SETTING} to read from elsewhere"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn listen_is_loopback_only_unless_allowed() {
        let loopback_only = NetworkReach::default();
        for ok in [
            "127.0.0.1:0",
            "127.8.9.10:4000",
            "[::1]:0",
            "[::ffff:127.0.0.1]:0",
        ] {
            assert_eq!(loopback_only.check_listen(addr(ok)), Ok(()), "{ok}");
        }
        for refused in ["0.0.0.0:9999", "[::]:0", "192.168.1.20:0", "10.0.0.1:80"] {
            let err = loopback_only
                .check_listen(addr(refused))
                .expect_err(refused);
            assert!(err.starts_with("listen: "), "{err}");
            assert!(err.contains(ALLOW_SETTING), "{err}");
        }
        let allowed = NetworkReach {
            allow_network: true,
        };
        assert_eq!(allowed.check_listen(addr("0.0.0.0:9999")), Ok(()));
    }

    #[test]
    fn the_producer_reads_only_from_the_running_streamer_unless_allowed() {
        let loopback_only = NetworkReach::default();
        let streamer = Some(addr("127.0.0.1:41234"));
        assert_eq!(
            loopback_only.check_producer_socket(addr("127.0.0.1:41234"), streamer),
            Ok(())
        );
        // Another local port is refused too: it could be any service on the machine.
        for (socket, running) in [
            ("127.0.0.1:6379", streamer),
            ("10.1.2.3:9000", streamer),
            ("127.0.0.1:41234", None),
        ] {
            let err = loopback_only
                .check_producer_socket(addr(socket), running)
                .expect_err(socket);
            assert!(err.starts_with("socket: "), "{err}");
            assert!(err.contains(ALLOW_SETTING), "{err}");
        }
        let allowed = NetworkReach {
            allow_network: true,
        };
        assert_eq!(
            allowed.check_producer_socket(addr("10.1.2.3:9000"), None),
            Ok(())
        );
    }
}
