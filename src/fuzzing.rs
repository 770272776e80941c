//! Entry points for the fuzz targets in `fuzz/`, built only under `cargo
//! fuzz` (`--cfg fuzzing`): each runs a parser of what a client or an
//! upstream sends on arbitrary bytes, and panics if what must hold of its
//! answer does not.

pub use crate::auth::credential::fuzzing::credentials;
pub use crate::proxy::http1::fuzzing::{chunked_body, response_head};
pub use crate::web::paths::fuzzing::paths;
