//! The key file of `hash` column rules: 64 hex digits, kept outside any cache (by default in
//! rowtrail's configuration folder, readable by its owner only), so a cache copied elsewhere cannot be
//! used to test guesses of a masked value.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::MaskKey;

/// The key file could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("could not read the mask key {}: {cause} (hint: check --mask-key)", .path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("mask key {} is not 64 hex digits (hint: point --mask-key at the key the cache was made with)", .path.display())]
    NotAKey { path: PathBuf },
    #[error("could not create the mask key {}: {cause} (hint: pass --mask-key with a path you can write)", .path.display())]
    Create { path: PathBuf, cause: String },
    #[error("no place for the mask key was found (hint: pass --mask-key FILE)")]
    NoPlace,
}

/// Where the key lives unless `--mask-key` says otherwise: rowtrail's configuration folder
/// (`$XDG_CONFIG_HOME/rowtrail`, else `~/.config/rowtrail`), apart from the data folder where the
/// app keeps caches, so copying the caches does not copy the key.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|folder| !folder.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|folder| folder.join("rowtrail").join("mask.key"))
}

/// The key in `path`, or `None` when there is no such file.
pub fn load(path: &Path) -> Result<Option<MaskKey>, KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => MaskKey::from_hex(&text)
            .map(Some)
            .ok_or_else(|| KeyFileError::NotAKey {
                path: path.to_owned(),
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(KeyFileError::Read {
            path: path.to_owned(),
            cause,
        }),
    }
}

/// The key in `path`, made there (readable by its owner only) when there is none yet; `true`
/// when it was made now.
pub fn load_or_create(path: &Path) -> Result<(MaskKey, bool), KeyFileError> {
    if let Some(key) = load(path)? {
        return Ok((key, false));
    }
    let create = |cause: String| KeyFileError::Create {
        path: path.to_owned(),
        cause,
    };
    let (key, hex) = MaskKey::generate().map_err(|_| create("no random bytes".to_owned()))?;
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        crate::store::create_private_dir(folder).map_err(|error| create(error.to_string()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|error| create(error.to_string()))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| create(error.to_string()))?;
    Ok((key, true))
}

/// The key for a capture or import: from `given` (`--mask-key`) or the default place; made
/// when `make` (the rules given hash something) and there is none yet. Returns the key and the
/// path of a key file made now.
pub fn resolve(
    given: Option<&Path>,
    make: bool,
) -> Result<(Option<MaskKey>, Option<PathBuf>), KeyFileError> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => match default_path() {
            Some(path) => path,
            None if make => return Err(KeyFileError::NoPlace),
            None => return Ok((None, None)),
        },
    };
    match make {
        true => {
            let (key, made) = load_or_create(&path)?;
            Ok((Some(key), made.then_some(path)))
        }
        false => Ok((load(&path)?, None)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_private_and_read_back() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("keys").join("mask.key");
        assert!(load(&path).unwrap().is_none());
        let (made, fresh) = load_or_create(&path).unwrap();
        assert!(fresh);
        let (again, fresh) = load_or_create(&path).unwrap();
        assert!(!fresh);
        assert_eq!(made.fingerprint(), again.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load(&path), Err(KeyFileError::NotAKey { .. })));
    }
}
