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
use crate::domain::{MasterKey, Sealer};

/// The name of the generated master key in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Creates the data directory, readable by this user only.
pub fn create_data_dir(path: &Path) -> Result<(), StartupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)?;
    Ok(())
}

/// Makes the embedded database's files (and its WAL and shared-memory files) 0600.
pub fn restrict_database_files(database: &Path) {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
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
    let previous =
        settings.master_key_previous.as_ref().map(|k| key(k.expose_secret())).transpose()?;
    let current = match (&settings.master_key, &settings.database_url) {
        (Some(configured), _) => Some(key(configured.expose_secret())?),
        (None, DatabaseUrl::Embedded(_) | DatabaseUrl::Sqlite(_)) => {
            Some(generated_key(&settings.data_dir)?)
        }
        (None, DatabaseUrl::Postgres(_)) => None,
    };
    Ok(Sealer::new(current, previous))
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
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path),
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
