//! What the service keeps on disk beside the database: the data directory (0700), the embedded
//! database's files and the generated master key (0600), so that other users of the machine
//! read none of them.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;

use super::StartupError;
use crate::config::{DatabaseUrl, Settings};
use crate::crypto::{MasterKey, Sealer};

/// The name of the generated master key in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Creates the data directory, readable by this user only; one that exists already is made so
/// (0700) too, since the service is about to keep private keys and password hashes in it.
pub fn create_data_dir(path: &Path) -> Result<(), StartupError> {
    let failed = |error: std::io::Error| StartupError::Setting {
        variable: "PORTCULLIS_DATA_DIR",
        message: format!("{}: {error}", path.display()),
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(failed)?.permissions().mode();
        if mode & 0o077 != 0
            && let Err(error) =
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        {
            // A directory of someone else's that this user may write to: say so, and go on.
            tracing::warn!(path = %path.display(), %error, "the data directory stays readable by others");
        }
    }
    Ok(())
}

/// Creates the embedded database's file (0600) if it is missing, before SQLite opens it: SQLite
/// gives its WAL and shared-memory files the database file's mode, so none of them is ever
/// readable by others, not even for a moment.
///
/// A file that exists is left alone, never opened: closing any descriptor of a database file
/// drops every POSIX lock this process holds on it, SQLite's own included, and another
/// connection of this process (a second instance, in the tests) may hold some.
pub fn create_database_file(database: &Path) -> Result<(), StartupError> {
    if database.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(database).map_err(|error| StartupError::Setting {
        variable: "PORTCULLIS_DATA_DIR",
        message: format!("{}: {error}", database.display()),
    })?;
    Ok(())
}

/// The start's exclusive lock on an SQLite database, released when dropped: instances and
/// commands starting on one file open and migrate it one after another (sqlx's migration lock
/// does nothing on SQLite, and two migrators at once fail with "table ... already exists").
pub struct DatabaseLock {
    _file: std::fs::File,
}

/// Waits for the lock of the SQLite database at `database`: the file `DATABASE.lock` beside it
/// (0600, never deleted, so that every process locks the same file). Blocking: call it off the
/// runtime's threads. `variable` names the setting that chose the file, for the error.
pub fn lock_database(
    database: &Path,
    variable: &'static str,
) -> Result<DatabaseLock, StartupError> {
    let mut path = database.as_os_str().to_owned();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    let failed = |error: std::io::Error| StartupError::Setting {
        variable,
        message: format!("cannot lock {}: {error}", path.display()),
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(failed)?;
    file.lock().map_err(failed)?;
    Ok(DatabaseLock { _file: file })
}

/// The file an explicit `sqlite:` URL names, if it names one (not an in-memory database).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// Makes the embedded database's files (its WAL and shared-memory files, and the start's lock
/// file, also when an earlier version made them) 0600, whatever the umask.
pub fn restrict_database_files(database: &Path) {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm", ".lock"] {
        use std::os::unix::fs::PermissionsExt;
        let mut path = database.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
}

/// The sealer of secrets at rest: under the configured master key; on the embedded default
/// without one, under a key generated once into the data directory; on PostgreSQL without one,
/// none (secrets stay in clear, and `config check` says so).
pub fn sealer(settings: &Settings) -> Result<Sealer, StartupError> {
    let key = |bytes: &[u8]| {
        <[u8; 32]>::try_from(bytes).map(MasterKey::from_bytes).map_err(|_| StartupError::Config {
            variable: "PORTCULLIS_MASTER_KEY",
            message: "must be 32 bytes in base64".to_owned(),
        })
    };
    let previous = settings
        .secrets
        .master_key_previous
        .as_ref()
        .map(|k| key(k.expose_secret()))
        .transpose()?;
    let current = match (&settings.secrets.master_key, &settings.storage.database_url) {
        (Some(configured), _) => Some(key(configured.expose_secret())?),
        (None, DatabaseUrl::Embedded(_) | DatabaseUrl::Sqlite(_)) => {
            Some(generated_key(&settings.storage.data_dir)?)
        }
        (None, DatabaseUrl::Postgres(_)) => None,
    };
    Ok(Sealer::new(current, previous)?)
}

/// The key in `DATA_DIR/master.key`, created (0600, base64) on first start. Instances starting
/// together on one data directory agree: only one creates the file, the others read it.
fn generated_key(data_dir: &Path) -> Result<MasterKey, StartupError> {
    create_data_dir(data_dir)?;
    let path = data_dir.join(MASTER_KEY_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            let mut bytes = [0; 32];
            getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
            file.write_all(STANDARD.encode(bytes).as_bytes())?;
            file.sync_all()?;
            Ok(MasterKey::from_bytes(bytes))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            // Made 0600 at creation; one copied in by hand is made so too.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
            read_key(&path)
        }
        Err(error) => Err(error.into()),
    }
}

fn read_key(path: &Path) -> Result<MasterKey, StartupError> {
    let invalid = || StartupError::Config {
        variable: "PORTCULLIS_DATA_DIR",
        message: format!("{} does not hold a 32-byte base64 key", path.display()),
    };
    // Another instance may be writing it this moment: a short file is read again.
    for _ in 0..50 {
        let content = std::fs::read_to_string(path)?;
        if let Ok(bytes) = STANDARD.decode(content.trim())
            && let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(MasterKey::from_bytes(bytes));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(invalid())
}
