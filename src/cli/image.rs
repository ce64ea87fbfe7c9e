use std::path::PathBuf;

use clap::Subcommand;

use crate::image;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Run the update pipeline on a file: see exactly what an update job would upload.
    Normalize {
        /// A JPEG, PNG or WebP file.
        input: PathBuf,
        /// Where to write the square JPEG.
        output: PathBuf,
    },
}

pub fn image(settings: &Settings, command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Normalize { input, output } => {
            let prepared = image::normalize_file(&input, &output, &settings.image)?;
            let report = serde_json::json!({
                "output": output.display().to_string(),
                "width": prepared.width,
                "height": prepared.height,
                "size": prepared.bytes.len(),
                "sha256": prepared.sha256,
                "content_type": prepared.content_type,
            });
            println!("{report}");
            Ok(())
        }
    }
}
