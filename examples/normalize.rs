//! Runs the image pipeline on a file, for the benchmark in `bench/image/run.sh`.
//!
//! Usage: `normalize IN OUT [MAX_BYTES]`. The byte limit defaults to 64 MiB rather than the
//! worker's 10 MiB because benchmark PNGs of 12 MP photos are larger than that.

use std::path::PathBuf;
use std::process::ExitCode;

use avatar_worker::image::{ImageSettings, normalize_file};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: normalize IN OUT [MAX_BYTES]");
        return ExitCode::from(2);
    };
    let max_bytes = match args.get(2).map(|s| s.parse::<usize>()) {
        None => 64 * 1024 * 1024,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("MAX_BYTES: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = ImageSettings {
        max_bytes,
        ..ImageSettings::default()
    };
    match normalize_file(&PathBuf::from(input), &PathBuf::from(output), &settings) {
        Ok(prepared) => {
            println!(
                "{}x{} {} bytes sha256 {}",
                prepared.width,
                prepared.height,
                prepared.bytes.len(),
                prepared.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
