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
            cli::print_err(&format!("jwtgate: {e}\n\n{USAGE}"));
            return ExitCode::from(2);
        }
    };
    let path = args.config.as_deref();
    let result = match args.command {
        Command::Help => print(USAGE),
        Command::Version => print(&format!("{}\n", cli::version())),
        Command::Demo => demo::prepare().and_then(|(config, token)| {
            print(&format!("{}\n", demo::instructions(&config, &token)))?;
            daemon::run(config, None, daemon::signals()?)
        }),
        Command::Run => {
            Config::load(path).and_then(|c| daemon::run(c, args.config.clone(), daemon::signals()?))
        }
        Command::Check => Config::load(path)
            .and_then(|c| cli::check(&c))
            .and_then(|line| print(&format!("{line}\n"))),
        Command::Verify(token) => match Config::load(path).and_then(|c| cli::verify(&c, &token)) {
            Ok(Ok(claims)) => print(&format!("{claims}\n")),
            Ok(Err(reason)) => {
                cli::print_err(&format!("{reason}\n"));
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::print_err(&format!("jwtgate: {e}\n"));
            ExitCode::from(2)
        }
    }
}

/// Standard output; a closed pipe is fine, any other failure is an error.
fn print(text: &str) -> Result<(), String> {
    cli::print_out(text).map_err(|e| format!("writing to stdout: {e}"))
}
