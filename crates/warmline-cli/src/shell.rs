//! `warmline completions SHELL` and the man pages, both generated from the clap
//! definitions, so they never disagree with `--help`.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

/// Prints the completion script for `shell` to stdout.
pub fn completions<C: CommandFactory>(shell: clap_complete::Shell) -> ExitCode {
    let mut command = C::command();
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Writes `warmline.1` and `warmline-COMMAND.1` for every visible command (and
/// `warmline-daemon-status.1` and the like for nested ones) into `dir`.
pub fn manpages<C: CommandFactory>(dir: &Path) -> ExitCode {
    if let Err(err) = std::fs::create_dir_all(dir) {
        eprintln!("warmline: cannot create {}: {err}", dir.display());
        return ExitCode::FAILURE;
    }
    let mut command = C::command();
    command.build();
    match write_pages(&command, dir, command.get_name()) {
        Ok(written) => {
            println!("{written} man pages written to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!(
                "warmline: cannot write man pages into {}: {err}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// One page for `command` (named `name`) and, recursively, its visible
/// subcommands; how many were written.
fn write_pages(command: &clap::Command, dir: &Path, name: &str) -> std::io::Result<usize> {
    let page = command.clone().name(name.to_owned());
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        written += write_pages(sub, dir, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(written)
}
