use clap::Parser;
use simsweep::cli::{self, BadInput, Cli};

fn main() {
    let cli = Cli::parse();
    simsweep::runtime::init();
    let code = match cli::main_with(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(bad) = e.downcast_ref::<BadInput>() {
                eprintln!("error: {bad}");
                cli::EXIT_BAD_INPUT
            } else {
                eprintln!("error: {e:#}");
                1
            }
        }
    };
    std::process::exit(code);
}
