//! `ollama-sim serve`: the simulator as a daemon (also works as `ollama serve`
//! when invoked through a symlink named `ollama`).

fn main() -> std::process::ExitCode {
    ollama_sim::daemon::main()
}
