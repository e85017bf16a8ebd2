//! The `provision` binary: parse arguments, run a command, map the outcome to
//! an exit code.

use std::process::ExitCode;

use clap::Parser;
use provision::cli::{Cli, Command};
use provision::ui::Style;

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
    };
    let exit = match result {
        Ok(exit) => exit,
        Err(e) => {
            if style.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                );
            }
            let prefix = if style.color_err {
                "\x1b[1;31merror\x1b[0m"
            } else {
                "error"
            };
            eprintln!("{prefix}: {e}");
            e.exit()
        }
    };
    ExitCode::from(exit as u8)
}
