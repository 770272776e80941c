//! HTTP pieces every part shares: reading what a client sent, writing
//! the gateway's own responses, paths, and who the peer is.

pub(crate) mod paths;
pub(crate) mod peer;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod syntax;
