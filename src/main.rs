/// mimalloc: a job's many small allocations cost a third of glibc's instructions (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match avatar_worker::cli::main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("avatar-worker: {}", avatar_worker::cli::error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}
