//! `examples/hello.rs` as it was before the HTTP layer was patched, built
//! on stock may_minihttp 0.1.11: answers every request 200 with
//! `Content-Length: 0` and a static `X-User-Id` header, with jwtgate's
//! worker setup (one per CPU, unpinned, 64 KiB coroutine stacks).
//!
//! Settings: the first argument (or `HELLO_LISTEN`) is the address, default
//! `127.0.0.1:7072`; `HELLO_WORKERS` the worker count (0, the default, is
//! one per CPU). Stops on SIGTERM (the default action: exit).

use std::io;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

/// Same as jwtgate's `daemon::STACK_WORDS` (64 KiB on 64-bit).
const STACK_WORDS: usize = 0x2000;

struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.header("X-User-Id: user_hello");
        Ok(())
    }
}

struct HelloFactory;

impl HttpServiceFactory for HelloFactory {
    type Service = Hello;

    fn new_service(&self, _id: usize) -> Hello {
        Hello
    }
}

fn main() {
    let listen = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HELLO_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:7072".to_string());
    let workers = match std::env::var("HELLO_WORKERS") {
        Ok(n) => n.parse().expect("HELLO_WORKERS: a number"),
        Err(_) => 0,
    };
    may::config()
        .set_workers(workers)
        .set_stack_size(STACK_WORDS);
    may::config().set_worker_pin(false);
    let server = HelloFactory
        .start(listen.as_str())
        .unwrap_or_else(|e| panic!("listen {listen}: {e}"));
    eprintln!("stock hello listening on http://{listen}");
    let _ = server.join();
}
