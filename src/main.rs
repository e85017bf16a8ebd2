//! The `provision` binary: parse arguments, run a command, map the outcome to
//! an exit code.

use std::process::ExitCode;

use clap::Parser;
use provision::cli::{Cli, Command};
use provision::deploy::{Options, VerifyOptions};
use provision::ui::Style;
use std::time::Duration;

fn options(cli: &Cli, lock_wait: u64, keep: u32) -> Options {
    Options {
        parallel: cli.parallel,
        lock_wait,
        keep,
        timeout: Duration::from_secs(cli.connect_timeout.max(1)),
        verify: None,
    }
}

fn verifying(options: Options, heartbeat_timeout: u64, rollback: bool, confirm: u64) -> Options {
    Options {
        verify: Some(VerifyOptions {
            heartbeat_timeout,
            rollback,
            confirm_timeout: confirm,
        }),
        ..options
    }
}

/// The subcommand's name, as the JSON documents give it.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Check => "check",
        Command::Render { .. } => "render",
        Command::Plan { .. } => "plan",
        Command::Apply { .. } => "apply",
        Command::Verify { .. } => "verify",
        Command::Status { .. } => "status",
        Command::Generations { .. } => "generations",
        Command::Rollback { .. } => "rollback",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let style = Style::detect(cli.color, cli.json);
    let result = match &cli.command {
        Command::Check => provision::command::check::run(&cli.dir, style),
        Command::Render {
            host,
            out,
            with_secrets,
        } => provision::command::render::run(&cli.dir, host, out, *with_secrets, style),
        Command::Plan {
            selectors,
            out,
            detailed_exitcode,
            shard,
        } => provision::command::plan::run(
            &cli.dir,
            selectors,
            *shard,
            out.as_deref(),
            *detailed_exitcode,
            &options(&cli, 0, 10),
            style,
        ),
        Command::Apply {
            selectors,
            shard,
            lock_wait,
            keep,
            no_verify,
            no_rollback,
            heartbeat_timeout,
            confirm_timeout,
        } => {
            let mut opts = options(&cli, *lock_wait, *keep);
            if !no_verify {
                opts = verifying(opts, *heartbeat_timeout, !no_rollback, *confirm_timeout);
            }
            provision::command::apply::run(&cli.dir, selectors, *shard, cli.yes, &opts, style)
        }
        Command::Verify {
            selectors,
            shard,
            heartbeat_timeout,
            test_alert,
        } => provision::command::verify::run(
            &cli.dir,
            selectors,
            *shard,
            &verifying(options(&cli, 0, 10), *heartbeat_timeout, false, 0),
            *test_alert,
            style,
        ),
        Command::Status { selectors, shard } => provision::command::status::run(
            &cli.dir,
            selectors,
            *shard,
            &options(&cli, 0, 10),
            style,
        ),
        Command::Generations { host } => {
            provision::command::generations::list(&cli.dir, host, &options(&cli, 0, 10), style)
        }
        Command::Rollback {
            host,
            to,
            lock_wait,
        } => provision::command::generations::rollback(
            &cli.dir,
            host,
            *to,
            cli.yes,
            &options(&cli, *lock_wait, 10),
            style,
        ),
    };
    let exit = match result {
        Ok(exit) => exit,
        Err(e) => {
            if style.json {
                provision::ui::json::print(&provision::report::error(
                    command_name(&cli.command),
                    &e,
                ));
            }
            let prefix = if style.color_err {
                "\x1b[1;31merror\x1b[0m"
            } else {
                "error"
            };
            // Errors quote hosts (ssh's and the scripts' stderr).
            eprintln!("{prefix}: {}", provision::ui::clean(&e.to_string()));
            e.exit()
        }
    };
    ExitCode::from(exit as u8)
}
