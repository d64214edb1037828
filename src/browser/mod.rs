//! Browser sign-in: Clerk's handshake, as `@clerk/backend` 3.25.0's
//! `authenticateRequest` does it (specified in
//! `shared/docs/clerk-handshake.md`; section numbers below refer to it).
//!
//! - [`instance`]: the Clerk instance from its publishable key and URLs.
//! - [`cookies`]: Clerk's cookies, read bytewise with `cookie@1`'s rules,
//!   and the choice between suffixed and plain cookies.
//! - [`url`]: the request's URL and the redirects, byte-exact.

pub mod cookies;
pub mod instance;
pub mod peek;
pub mod url;

pub use instance::Instance;
