//! Broker failures that only mean the connection went away. The session logs such a loss once, as one
//! WARN line that says it reconnects, and the broker returns every unacked job; what each job or lane was
//! doing at that moment is not news for an operator, so those lines drop to DEBUG.

/// Whether a broker error means the connection (or the channel with it) is gone, rather than that the
/// broker refused something.
pub trait ConnectionLost {
    fn connection_lost(&self) -> bool;
}

impl ConnectionLost for lapin::Error {
    fn connection_lost(&self) -> bool {
        use lapin::ErrorKind;
        self.is_amqp_hard_error()
            || matches!(
                self.kind(),
                ErrorKind::IOError(_)
                    | ErrorKind::RuntimeShutdownError(_)
                    | ErrorKind::InvalidConnectionState(_)
                    | ErrorKind::InvalidChannelState(..)
                    | ErrorKind::MissingHeartbeatError
            )
    }
}

/// `tracing::warn!` with the error as `err`, or `tracing::debug!` when the error is only the connection
/// going away (see the module docs).
macro_rules! warn_unless_connection_lost {
    ($err:expr, $($rest:tt)+) => {{
        let err = &$err;
        if $crate::broker::ConnectionLost::connection_lost(err) {
            tracing::debug!(err = %err, $($rest)+);
        } else {
            tracing::warn!(err = %err, $($rest)+);
        }
    }};
}
pub(crate) use warn_unless_connection_lost;
