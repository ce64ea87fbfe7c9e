//! `avatar-worker sync`: look up the pictures of a whole contact list and keep them.
//!
//! WhatsApp's picture URLs expire after about 48 h, so a sync keeps the bytes (`--download-dir`), and it
//! sends the ids of the last run as `known_id` (`--previous`) so unchanged pictures are neither
//! downloaded nor written again. Every answer is appended to the results file as it arrives, which is
//! what makes `--resume` exact after a crash.
//!
//! Files: [`input`] reads the contact list, [`plan`] decides what to ask, the client's batch asks it,
//! `keep` and [`store`] turn results into records and files, [`output`] writes them, [`summary`]
//! counts them and [`progress`] shows the way.

#![warn(missing_docs)]

mod error;
pub mod input;
mod keep;
pub mod output;
pub mod plan;
pub mod progress;
pub mod record;
pub mod store;
pub mod summary;

use std::collections::HashMap;
use std::path::PathBuf;

use futures_util::StreamExt;

pub use error::SyncError;
pub use input::{InputFormat, Malformed, Row};
pub use plan::{Plan, prepare};
pub use progress::Progress;
pub use record::Record;
pub use summary::Summary;

use crate::client::Batch;
use crate::protocol::DeviceId;

/// What to sync and where the answers go.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The contact list.
    pub input: PathBuf,
    /// Its format; `None` guesses from the extension.
    pub format: Option<InputFormat>,
    /// The device for rows that name none.
    pub device: Option<DeviceId>,
    /// The results file (JSON Lines).
    pub output: PathBuf,
    /// Download the pictures into this directory.
    pub download_dir: Option<PathBuf>,
    /// The results file of an earlier run, whose picture ids become `known_id`.
    pub previous: Option<PathBuf>,
    /// Keep the rows already in `output` and ask only the others.
    pub resume: bool,
}

/// Asks every planned row through `batch`, recording each answer as it arrives.
pub async fn execute(plan: Plan, batch: Batch, progress: Progress) -> Result<Summary, SyncError> {
    execute_until(plan, batch, progress, std::future::pending()).await
}

/// As [`execute`], stopping early when `stop` completes (Ctrl-C): the answers so far are in the results
/// file, and [`SyncError::Interrupted`] carries their summary; `--resume` continues.
pub async fn execute_until(
    plan: Plan,
    batch: Batch,
    mut progress: Progress,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary, SyncError> {
    let Plan {
        input_rows,
        malformed,
        already_done,
        work,
        mut output,
        store,
    } = plan;
    let mut summary = Summary {
        input_rows,
        malformed: malformed.len(),
        already_done,
        ..Summary::default()
    };
    let mut owed = HashMap::with_capacity(work.len());
    let mut jobs = Vec::with_capacity(work.len());
    for planned in work {
        if let Some(id) = planned.job.job_id.clone() {
            owed.insert(id, (planned.key, planned.previous_file));
        }
        jobs.push(planned.job);
    }
    let mut results = batch.run(jobs);
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => {
                progress.finish();
                return Err(SyncError::Interrupted {
                    unanswered: owed.len(),
                    summary: Box::new(summary),
                });
            }
            next = results.next() => next,
        };
        let Some(result) = next else {
            break;
        };
        let result = match result {
            Ok(result) => result,
            Err(error) => {
                progress.finish();
                return Err(error.into());
            }
        };
        let Some((key, previous_file)) = owed.remove(&result.job_id) else {
            continue;
        };
        let kept = keep::keep(key, previous_file, &result, store.as_ref())?;
        output.append(&kept.record)?;
        summary.add(&kept.record, kept.stored.as_ref(), kept.store_failed);
        progress.inc();
    }
    progress.finish();
    if !owed.is_empty() {
        return Err(SyncError::Unanswered(owed.len()));
    }
    Ok(summary)
}
