//! What operators read: metrics, the access log, the log.

pub(crate) mod access_log;
pub(crate) mod audit;
pub(crate) mod endpoints;
pub(crate) mod logging;
pub(crate) mod metrics;
