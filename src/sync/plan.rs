//! What a run will ask: the input rows, minus those a resumed run already answered, each with the
//! picture id an earlier run saw so unchanged pictures cost neither a download nor a write.

use std::collections::{HashMap, HashSet};

use super::input::{InputFormat, Malformed, read_input};
use super::output::OutputFile;
use super::record::{RowKey, read_records};
use super::store::PictureStore;
use super::{SyncError, SyncOptions};
use crate::protocol::{DeviceId, FetchJob, JobId, Phone};

/// A prepared run: the input is read, the results file is open, nothing is published yet.
pub struct Plan {
    /// Rows in the input, malformed ones included.
    pub input_rows: usize,
    /// Rows left out, with their line numbers.
    pub malformed: Vec<Malformed>,
    /// Rows skipped because the results file already has them.
    pub already_done: usize,
    pub(super) work: Vec<Planned>,
    pub(super) output: OutputFile,
    pub(super) store: Option<PictureStore>,
}

impl Plan {
    /// Rows this run will ask about.
    pub fn to_do(&self) -> usize {
        self.work.len()
    }
}

/// One row to ask about.
pub(super) struct Planned {
    pub key: RowKey,
    pub job: FetchJob,
    /// The earlier run's file for the picture id sent as `known_id`: the file of an `unchanged` row.
    pub previous_file: Option<String>,
}

/// What an earlier run saw for a contact on a device.
struct Seen {
    picture_id: String,
    file: Option<String>,
}

/// Reads everything and opens the output; fails only on unusable files.
pub fn prepare(options: &SyncOptions) -> Result<Plan, SyncError> {
    let format = options
        .format
        .unwrap_or_else(|| InputFormat::guess(&options.input));
    let input = read_input(&options.input, format)?;
    // Read before the output is opened: --previous may name the same file as --output.
    let previous = match &options.previous {
        Some(path) => previous_pictures(path)?,
        None => HashMap::new(),
    };
    let (output, done) = open_output(options)?;
    let store = options
        .download_dir
        .as_deref()
        .map(PictureStore::open)
        .transpose()?;

    let mut already_done = 0;
    let mut work = Vec::with_capacity(input.rows.len());
    for row in input.rows.iter() {
        let device = row.device.clone().or_else(|| options.device.clone());
        let key = RowKey {
            line: row.line,
            phone: row.phone.clone(),
            device: device.clone(),
        };
        if done.contains(&key) {
            already_done += 1;
            continue;
        }
        let seen = previous.get(&(row.phone.clone(), device.clone()));
        // The earlier run saw the picture more recently than whoever wrote the input's known_id.
        let known_id = seen
            .map(|s| s.picture_id.clone())
            .or_else(|| row.known_id.clone());
        let previous_file = seen
            .filter(|s| known_id.as_deref() == Some(s.picture_id.as_str()))
            .and_then(|s| s.file.clone());
        let job = FetchJob {
            job_id: Some(JobId::generate()),
            device_id: device,
            phone: row.phone.clone(),
            is_preview: false,
            is_community: false,
            known_id,
            download: store.is_some(),
            interactive: false,
        };
        work.push(Planned {
            key,
            job,
            previous_file,
        });
    }
    Ok(Plan {
        input_rows: input.rows.len() + input.malformed.len(),
        malformed: input.malformed,
        already_done,
        work,
        output,
        store,
    })
}

/// The picture ids (and files) of an earlier results file, by contact and device.
fn previous_pictures(
    path: &std::path::Path,
) -> Result<HashMap<(Phone, Option<DeviceId>), Seen>, SyncError> {
    let mut seen = HashMap::new();
    for record in read_records(path)?.records {
        if let Some(picture_id) = record.picture_id {
            seen.insert(
                (record.phone, record.device),
                Seen {
                    picture_id,
                    file: record.file,
                },
            );
        }
    }
    Ok(seen)
}

/// Opens the results file, and with `--resume` the rows it already holds.
fn open_output(options: &SyncOptions) -> Result<(OutputFile, HashSet<RowKey>), SyncError> {
    if options.resume && options.output.exists() {
        let existing = read_records(&options.output)?;
        let done = existing.records.iter().map(|r| r.key()).collect();
        let output = OutputFile::resume(&options.output, existing.complete_len)?;
        Ok((output, done))
    } else {
        Ok((OutputFile::create(&options.output)?, HashSet::new()))
    }
}
