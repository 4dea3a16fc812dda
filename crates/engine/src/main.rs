//! `simsweep-engine`: the process that computes. Started by the front (`simsweep`), one per run.
use clap::Parser;
use simsweep_engine::cli::{self, EngineCli};

fn main() {
    let cli = EngineCli::parse();
    if simsweep_core::check_args_only() {
        eprintln!("simsweep: the arguments parse (SIMSWEEP_CHECK_ARGS=1: nothing was done)");
        std::process::exit(0);
    }
    simsweep_engine::runtime::init();
    let code = match cli::main_with(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(bad) = e.downcast_ref::<simsweep_core::BadInput>() {
                eprintln!("error: {bad}");
                simsweep_core::EXIT_BAD_INPUT
            } else {
                eprintln!("error: {e:#}");
                1
            }
        }
    };
    std::process::exit(code);
}
