//! The `jwtgate` binary: parse arguments, then hand over to the library.

use std::process::ExitCode;

use jwtgate::cli::{self, Command, USAGE};
use jwtgate::config::Config;
use jwtgate::{daemon, demo};

fn main() -> ExitCode {
    let mut logger = env_logger::Builder::new();
    logger.parse_filters(&cli::log_filters(std::env::var("RUST_LOG").ok().as_deref()));
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        logger.parse_write_style(&style);
    }
    logger.init();
    let args = match cli::parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("jwtgate: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let path = args.config.as_deref();
    let result = match args.command {
        Command::Help => {
            print_out(USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            print_out(&format!("jwtgate {}\n", env!("CARGO_PKG_VERSION")));
            return ExitCode::SUCCESS;
        }
        Command::Demo => demo::prepare().and_then(|(config, token)| {
            print_out(&format!("{}\n", demo::instructions(&config, &token)));
            daemon::run(config, None, daemon::signals()?)
        }),
        Command::Run => {
            Config::load(path).and_then(|c| daemon::run(c, args.config.clone(), daemon::signals()?))
        }
        Command::Check => Config::load(path)
            .and_then(|c| cli::check(&c))
            .map(|line| print_out(&format!("{line}\n"))),
        Command::Verify(token) => match Config::load(path).and_then(|c| cli::verify(&c, &token)) {
            Ok(Ok(claims)) => {
                print_out(&format!("{claims}\n"));
                return ExitCode::SUCCESS;
            }
            Ok(Err(reason)) => {
                eprintln!("{reason}");
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jwtgate: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes to stdout; a reader that went away (`jwtgate verify ... | head -1`)
/// is not an error worth a panic, which `println!` would make of it.
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
