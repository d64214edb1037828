//! Browser sign-in: Clerk's handshake, as `@clerk/backend` 3.25.0's
//! `authenticateRequest` does it (specified in
//! `shared/docs/clerk-handshake.md`; section numbers below refer to it).
//!
//! - [`instance`]: the Clerk instance from its publishable key and URLs.

pub mod instance;

pub use instance::Instance;
