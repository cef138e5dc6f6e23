//! The data dir's one owner: `serve` on the embedded store locks it, so that a second `serve`
//! is refused and whatever the first left in flight is known to be a dead process's.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// The file in the data dir that `serve` locks: it names the process that owns the dir.
pub const LOCK_FILE: &str = "serve.lock";

/// The data dir's ownership by one `serve`, released when dropped (or when the process dies,
/// however it dies: the lock is the operating system's).
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Makes this process the data dir's one `serve`; if another holds it, says which.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    // A data dir that became read-only still gets its owner checked; opening the store then
    // says what is wrong with it.
    let (mut file, writable) = match opened {
        Ok(file) => (file, true),
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem && path.exists() => {
            (std::fs::File::open(&path)?, false)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            let owner = if owner.is_empty() {
                "another process".to_string()
            } else {
                owner.to_string()
            };
            bail!(
                "the data dir {} is in use by {owner}; stop it first, or give this one another --data-dir",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    if writable {
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "zofhook serve (pid {})", std::process::id())?;
        file.flush()?;
    }
    Ok(DataDirLock { _file: file })
}
