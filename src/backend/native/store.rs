//! Session stores on disk: one SQLite file per device under `native.sessions_dir`, and the lock that
//! makes one process its only owner. Two processes on one session make WhatsApp replace the older
//! stream, and the library then stops reconnecting; the lock turns that into a clear error at start.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::wacore::store::traits::DeviceStore;

use super::NativeError;
use crate::protocol::DeviceId;

/// Where one device's session lives.
#[derive(Debug, Clone)]
pub struct StorePath {
    database: PathBuf,
}

impl StorePath {
    pub fn new(sessions_dir: &Path, device: &DeviceId) -> Self {
        Self {
            database: sessions_dir.join(format!("{}.db", file_stem(device))),
        }
    }

    pub fn database(&self) -> &Path {
        &self.database
    }

    fn lock_file(&self) -> PathBuf {
        with_suffix(&self.database, ".lock")
    }

    /// The database and SQLite's companion files, all of which hold key material.
    fn files(&self) -> [PathBuf; 3] {
        [
            self.database.clone(),
            with_suffix(&self.database, "-wal"),
            with_suffix(&self.database, "-shm"),
        ]
    }

    pub fn exists(&self) -> bool {
        self.database.exists()
    }

    /// Deletes the stored session (a new pairing replaces it). Needs the lock, so a running owner is never
    /// pulled from under.
    pub fn remove(&self, _lock: &StoreLock) -> Result<(), NativeError> {
        for file in self.files() {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(NativeError::Io { path: file, source }),
            }
        }
        Ok(())
    }

    /// Opens (or creates) the SQLite store. Needs the lock for the same reason.
    pub async fn open(&self, _lock: &StoreLock) -> Result<SqliteStore, NativeError> {
        let url = self.database.to_string_lossy().into_owned();
        let store = SqliteStore::new(&url)
            .await
            .map_err(|err| NativeError::Store {
                path: self.database.clone(),
                message: err.to_string(),
            })?;
        self.restrict()?;
        Ok(store)
    }

    /// Owner-only permissions on the files SQLite created, whatever the umask.
    fn restrict(&self) -> Result<(), NativeError> {
        #[cfg(unix)]
        for file in self.files() {
            use std::os::unix::fs::PermissionsExt;
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(NativeError::Io { path: file, source }),
            }
        }
        Ok(())
    }
}

/// Whether the store holds a paired account (pairing records the account's phone-number JID).
pub async fn is_paired(store: &dyn DeviceStore) -> Result<bool, NativeError> {
    let device = store
        .load()
        .await
        .map_err(|err| NativeError::Load(err.to_string()))?;
    Ok(device.is_some_and(|device| device.pn.is_some()))
}

/// An exclusive, advisory lock on one session store, held for the life of this value (the OS releases it
/// when the process dies, so a crash never leaves a stale lock). The lock file records the owner's pid.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl StoreLock {
    pub fn acquire(path: &StorePath) -> Result<Self, NativeError> {
        let lock_path = path.lock_file();
        if let Some(dir) = lock_path.parent() {
            create_private_dir(dir)?;
        }
        let io = |source| NativeError::Io {
            path: lock_path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                return Err(NativeError::InUse {
                    path: path.database.clone(),
                    owner: owner.trim().to_string(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { file })
    }
}

impl Drop for StoreLock {
    /// Unlocks explicitly instead of only closing. A flock belongs to the open file description, and a
    /// child process being spawned (by this process, at any moment, from any thread) holds a duplicate
    /// of every descriptor until it execs, CLOEXEC or not. Closing ours would leave the lock held by that
    /// duplicate for those milliseconds, and a re-acquisition here (a rebuild, a test) would be refused
    /// with this process's own pid. Unlocking releases it for every duplicate at once.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Session stores are credentials: the directory is made readable by its owner only.
fn create_private_dir(dir: &Path) -> Result<(), NativeError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| NativeError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// A file name for a device id: safe characters kept, anything else (a `/`, a leading dot) escaped as
/// `%XX`, so every id maps to one file inside the sessions directory and no two ids share one.
fn file_stem(device: &DeviceId) -> String {
    let mut stem = String::new();
    for (i, byte) in device.as_str().bytes().enumerate() {
        let safe = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'@' | b':' | b'+')
            || (byte == b'.' && i > 0);
        if safe {
            stem.push(byte as char);
        } else {
            stem.push_str(&format!("%{byte:02X}"));
        }
    }
    stem
}

/// The device id a store file belongs to, for `*.db` files found in the sessions directory.
pub fn device_of(file: &Path) -> Option<DeviceId> {
    let name = file.file_name()?.to_str()?;
    let stem = name.strip_suffix(".db")?;
    let mut bytes = Vec::with_capacity(stem.len());
    let mut rest = stem.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' && tail.len() >= 2 {
            let hex = std::str::from_utf8(&tail[..2]).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    DeviceId::parse(String::from_utf8(bytes).ok()?).ok()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_id_maps_to_one_file_inside_the_directory_and_back() {
        for id in [
            "sales-1",
            "6281234567890:12@s.whatsapp.net",
            "../etc/passwd",
            ".hidden",
            "a%2Fb",
            "a/b",
        ] {
            let device = DeviceId::parse(id).unwrap();
            let path = StorePath::new(Path::new("/sessions"), &device);
            assert_eq!(
                path.database().parent(),
                Some(Path::new("/sessions")),
                "{id}"
            );
            assert!(
                !path
                    .database()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with('.')
            );
            assert_eq!(device_of(path.database()), Some(device), "{id}");
        }
    }
}
