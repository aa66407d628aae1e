//! Everything that talks to the source PostgreSQL server.

pub mod conninfo;
pub mod error;
pub mod tls;
pub mod walsender;

pub use error::{CaptureError, ServerError};
