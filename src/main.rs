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
