//! The egress gateway: the only way this program makes outbound HTTP.
