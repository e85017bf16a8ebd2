//! The `provision` binary: parse arguments, run a command, map the outcome to
//! an exit code.

use std::io::{self, Write as _};
use std::process::ExitCode;

use provision::cli::{self, Action, Cli, Invocation};
use provision::command;
use provision::error::{Error, Exit};

/// The subcommand's name, as the JSON documents give it (none for the
/// commands that print no document).
fn command_name(a: &Action) -> Option<&'static str> {
    Some(match a {
        Action::Check => "check",
        Action::Render { .. } => "render",
        Action::Plan { .. } => "plan",
        Action::Apply { .. } => "apply",
        Action::Verify { .. } => "verify",
        Action::Status { .. } => "status",
        Action::Generations { .. } => "generations",
        Action::Rollback { .. } => "rollback",
        Action::Onboard(_) => "onboard",
        Action::Secrets(_) => "secrets",
        Action::Init { .. } => "init",
        Action::Completions { .. } | Action::Man { .. } => return None,
    })
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = match Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(e) => return cli::usage_exit(&e).into(),
    };
    let Invocation {
        dir,
        identity,
        style,
        action,
    } = cli.resolve();
    command::secrets::set_identity(identity);
    let name = command_name(&action);
    if let Some(name) = name {
        provision::ui::json::start(style, name);
    }
    let result = match action {
        Action::Check => command::check::run(&dir, style),
        Action::Render {
            host,
            out,
            with_secrets,
        } => command::render::run(&dir, &host, out.as_deref(), with_secrets, style),
        Action::Plan {
            selectors,
            shard,
            out,
            detailed_exitcode,
            markdown,
            alert,
            options,
        } => command::plan::run(
            &dir,
            &selectors,
            shard,
            out.as_deref(),
            (detailed_exitcode, markdown, alert.as_deref()),
            &options,
            style,
        ),
        Action::Apply {
            selectors,
            shard,
            yes,
            options,
            rollout,
            retry_failed,
        } => command::apply::run(
            &dir,
            &selectors,
            shard,
            (yes, retry_failed),
            (&options, &rollout),
            style,
        ),
        Action::Verify {
            selectors,
            shard,
            test_alert,
            options,
        } => command::verify::run(&dir, &selectors, shard, &options, test_alert, style),
        Action::Status {
            selectors,
            shard,
            alert,
            options,
        } => command::status::run(&dir, &selectors, shard, alert.as_deref(), &options, style),
        Action::Generations { host, options } => {
            command::generations::list(&dir, &host, &options, style)
        }
        Action::Rollback {
            host,
            to,
            yes,
            options,
        } => command::generations::rollback(&dir, &host, to, yes, &options, style),
        Action::Init { dir } => command::init::run(&dir, style),
        Action::Onboard(request) => command::onboard::run(&dir, &request, style),
        Action::Secrets(cli::SecretsCommand::Check) => command::secret_files::check(&dir, style),
        Action::Secrets(cli::SecretsCommand::Edit { file }) => {
            command::secret_files::edit(&dir, &file, style)
        }
        Action::Secrets(cli::SecretsCommand::Rekey) => command::secret_files::rekey(&dir, style),
        Action::Completions { shell } => to_stdout(|out| cli::completions(shell, out)),
        Action::Man { out: None } => to_stdout(cli::man),
        Action::Man { out: Some(out) } => {
            cli::man_pages(&out)
                .map(|()| Exit::Ok)
                .map_err(|e| Error::Write {
                    path: out,
                    message: e.to_string(),
                })
        }
    };
    let exit = match result {
        Ok(exit) => exit,
        Err(e) => {
            if let (true, Some(name)) = (style.json, name) {
                provision::ui::json::print(style, &provision::report::error(name, &e));
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
    exit.into()
}

/// Runs `write` on stdout; a reader that went away is a quiet
/// [`Exit::ClosedPipe`], like a print that fails (see
/// [`quiet_on_closed_pipe`]).
fn to_stdout(write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>) -> Result<Exit, Error> {
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(Exit::Ok),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Exit::ClosedPipe),
        Err(e) => Err(Error::Write {
            path: "standard output".into(),
            message: e.to_string(),
        }),
    }
}

/// Ends the process quietly with [`Exit::ClosedPipe`] when printing fails
/// because the reader of stdout or stderr went away
/// (`provision status | head -1`).
///
/// Rust ignores SIGPIPE, so such a write fails with EPIPE and `println!`
/// panics, which printed a panic message and exited 101. Restoring
/// SIGPIPE's default would instead kill the process on any closed pipe,
/// also the stdin of a host's script or of ssh, where a script that exits
/// without reading all its input must stay an ordinary result
/// (`transport::exchange`). So only the panic of a print to a closed
/// stdout or stderr becomes an exit; every other panic is reported as
/// before.
fn quiet_on_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload_as_str().is_some_and(is_closed_pipe) {
            std::process::exit(Exit::ClosedPipe.code().into());
        }
        report(info);
    }));
}

/// Whether `message` is the panic of `print!`/`eprint!` on a closed pipe:
/// std's own text, "failed printing to stdout: " and the I/O error.
fn is_closed_pipe(message: &str) -> bool {
    let closed = io::Error::from_raw_os_error(libc::EPIPE);
    ["stdout", "stderr"]
        .iter()
        .any(|stream| message == format!("failed printing to {stream}: {closed}"))
}
