//! Keeping one result: the row's record, and its picture stored on the way.

use super::SyncError;
use super::record::{Record, RowKey};
use super::store::{PictureStore, Stored};
use crate::protocol::{JobResult, Status};

/// The record of a row, and what storing its picture did.
pub(super) struct Kept {
    pub record: Record,
    pub stored: Option<Stored>,
    pub store_failed: bool,
}

pub(super) fn keep(
    key: RowKey,
    previous_file: Option<String>,
    result: &JobResult,
    store: Option<&PictureStore>,
) -> Result<Kept, SyncError> {
    let mut record = Record {
        line: key.line,
        phone: key.phone,
        device: key.device,
        status: result.status,
        picture_id: result.avatar.as_ref().map(|a| a.id.clone()),
        error_code: result.error.as_ref().map(|e| e.code),
        file: None,
        message: result.error.as_ref().map(|e| e.message.clone()),
    };
    let mut stored = None;
    let mut store_failed = false;
    match (result.status, store) {
        (Status::Ok, Some(store)) => {
            let outcome = match &result.image {
                Some(image) => store.store(image)?,
                None => Err(super::store::StoreError::NoBytes),
            };
            match outcome {
                Ok(file) => {
                    record.file = Some(file.name.clone());
                    stored = Some(file);
                }
                Err(error) => {
                    record.message = Some(error.to_string());
                    store_failed = true;
                }
            }
        }
        (Status::Unchanged, _) => record.file = previous_file,
        _ => {}
    }
    Ok(Kept {
        record,
        stored,
        store_failed,
    })
}
