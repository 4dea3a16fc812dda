//! `simsweep`, the front: plans sweeps, reads and draws results, and starts the engine
//! (`simsweep-engine`) for what computes. It links no libtorch.

mod bench;
mod cli;

// The libraries under the names the front's modules use.
use simsweep_core::{code_version, query, spec, store, table};
use simsweep_exec as exec;
use simsweep_exec::slurm;
use simsweep_report as plot;
use simsweep_serve as serve;

use clap::Parser;
use cli::{BadInput, Cli};

fn main() {
    let cli = Cli::parse();
    if simsweep_core::check_args_only() && !cli.command.runs_in_engine() {
        eprintln!("simsweep: the arguments parse (SIMSWEEP_CHECK_ARGS=1: nothing was done)");
        std::process::exit(0);
    }
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
