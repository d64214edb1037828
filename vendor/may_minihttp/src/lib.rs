//! may_minihttp 0.1.11, patched for jwtgate: see `PATCHES.md`.

#[cfg(not(unix))]
compile_error!("this patched may_minihttp supports unix only (see PATCHES.md)");

#[macro_use]
extern crate log;

mod config;
mod connection;
mod date;
mod http_server;
mod request;
mod response;
mod shared;

pub use config::HttpConfig;
pub use http_server::{bind, HttpServer, HttpService, HttpServiceFactory, ServerHandle};
pub use request::{BodyReader, Request};
pub use response::{IntoResponseHeader, Response, ResponseHeader, MAX_RESPONSE_HEADERS};
