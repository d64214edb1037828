//! Per-location rules: what a signed-in user must have, said by the proxy
//! in the auth request's query string, decided with the semantics of
//! Clerk's `has()`.
//!
//! ```text
//! /auth?role=org:admin
//! /auth?permission=org:billing:manage&reverify=strict
//! /auth?feature=o:dashboard&plan=pro&org=required
//! /auth?optional=1
//! ```
//!
//! - [`RuleSet::parse`] reads the query (grammar in [`parse`]); a rule it
//!   cannot enforce is a [`RuleError`], an operator error that must never
//!   turn into a 200. Parsing borrows from the query and never allocates,
//!   so no cache is needed.
//! - [`FactTable::from_claims`] works out, once per verified token, what
//!   `has()` reads from the claims (v1 and v2, see [`facts`]), as spans
//!   into a text the caller keeps (the cached grant's). It allocates; keep
//!   the table with the cached verification, and check rules against a
//!   borrowed [`Facts`] view.
//! - [`RuleSet::evaluate`] gives [`Verdict::Allow`] or
//!   [`Verdict::Forbidden`] with a [`Reason`]; [`evaluate`] does both
//!   steps in one pass for the hot path. Neither allocates, and
//!   [`Forbidden::write_headers`] writes the 403's headers (including
//!   Clerk's reverification hint) into the response buffer.
//!
//! A missing or invalid token is not for this module: it stays a 401, and
//! with `optional=1` a 200 without identity headers.

pub mod eval;
pub mod facts;
pub mod parse;
pub mod value;

pub use eval::{evaluate, Forbidden, Reason, Verdict, REASON_HEADER, REVERIFICATION_HEADER};
pub use facts::{FactTable, Facts, OwnedFacts, FACT_CLAIMS};
pub use parse::{
    Level, Preset, Problem, Requirement, Reverification, RuleError, RuleSet, Scope,
    MAX_QUERY_BYTES, MAX_REQUIREMENTS,
};
pub use value::Value;
