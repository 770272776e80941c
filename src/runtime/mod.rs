//! The gateway's own threads: a coarse timer for deadlines seconds away,
//! and a low-priority pool for work off the request path.

pub(crate) mod background;
pub(crate) mod timer;
