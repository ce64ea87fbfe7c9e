//! Content-addressed picture storage: each picture is kept once as `<sha256>.jpg`, so the same picture
//! shared by many contacts (or fetched again next night) costs one file, and a name proves the content.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SyncError;
use crate::image::{Format, decode_base64, sniff};
use crate::protocol::ImageInfo;

/// Downloads larger than this are refused (the worker's own limit is 5 MiB by default).
const MAX_PICTURE_BYTES: usize = 64 * 1024 * 1024;

/// A download directory.
pub struct PictureStore {
    dir: PathBuf,
}

/// Where a picture went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The file name inside the directory.
    pub name: String,
    /// Whether this call wrote it (false: it was already there).
    pub written: bool,
}

/// Why a downloaded picture was not stored; the row keeps its status and says why in its message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The result had no bytes (the job was not a download, or the worker did not include them).
    #[error("the result carries no picture bytes")]
    NoBytes,
    /// The bytes are not a JPEG; WhatsApp pictures always are, so something is off.
    #[error("the picture is not a JPEG: {0}")]
    NotJpeg(String),
    /// The bytes do not hash to what the worker reported.
    #[error("the picture's sha256 is {actual}, the result says {reported}")]
    Mismatch {
        /// What the bytes hash to.
        actual: String,
        /// What the result claimed.
        reported: String,
    },
}

impl PictureStore {
    /// Uses `dir`, creating it when missing.
    pub fn open(dir: &Path) -> Result<Self, SyncError> {
        std::fs::create_dir_all(dir).map_err(|source| write_error(dir, source))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Checks the bytes of a download and stores them unless a file of that content exists. Written
    /// under a temporary name and renamed, so a killed run never leaves a torn `<sha256>.jpg`.
    pub fn store(&self, image: &ImageInfo) -> Result<Result<Stored, StoreError>, SyncError> {
        let Some(text) = image.base64.as_deref() else {
            return Ok(Err(StoreError::NoBytes));
        };
        let bytes = match decode_base64(text, MAX_PICTURE_BYTES) {
            Ok(bytes) => bytes,
            Err(error) => return Ok(Err(StoreError::NotJpeg(error.to_string()))),
        };
        match sniff(&bytes) {
            Ok(Format::Jpeg) => {}
            Ok(other) => return Ok(Err(StoreError::NotJpeg(format!("it is {}", other.name())))),
            Err(error) => return Ok(Err(StoreError::NotJpeg(error.to_string()))),
        }
        let sha256: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !image.sha256.eq_ignore_ascii_case(&sha256) {
            return Ok(Err(StoreError::Mismatch {
                actual: sha256,
                reported: image.sha256.clone(),
            }));
        }
        let name = format!("{sha256}.jpg");
        let path = self.dir.join(&name);
        if path.exists() {
            return Ok(Ok(Stored {
                name,
                written: false,
            }));
        }
        let temporary = self
            .dir
            .join(format!(".{sha256}.{}.part", uuid::Uuid::new_v4().simple()));
        std::fs::write(&temporary, &bytes).map_err(|source| write_error(&temporary, source))?;
        std::fs::rename(&temporary, &path).map_err(|source| write_error(&path, source))?;
        Ok(Ok(Stored {
            name,
            written: true,
        }))
    }
}

fn write_error(path: &Path, source: std::io::Error) -> SyncError {
    SyncError::Write {
        path: path.to_path_buf(),
        source,
    }
}
