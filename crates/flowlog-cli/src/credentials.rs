//! The admin credential created on first start when no credentials are configured: kept in
//! `<data-dir>/credentials.toml`, readable by its owner only, and never printed to logs.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct StoredCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredential")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials.toml")
}

/// Loads the stored admin credential, creating it (mode 0600) if it does not exist.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(StoredCredential, bool)> {
    let p = path(data_dir);
    if p.exists() {
        return Ok((load(data_dir)?, false));
    }
    let cred = StoredCredential {
        access_key_id: format!(
            "AKIA{}",
            random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        ),
        secret_access_key: random_string(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        ),
    };
    let text = format!(
        "# Admin credential created by flowlog on first start. Keep it secret.\n{}",
        toml::to_string(&cred)?
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("cannot create {}", p.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok((cred, true))
}

pub fn load(data_dir: &Path) -> anyhow::Result<StoredCredential> {
    let p = path(data_dir);
    let meta = std::fs::metadata(&p).with_context(|| {
        format!(
            "cannot read {}: start `flowlog serve` first, or pass the server's --data-dir / --config",
            p.display()
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %p.display(), "credentials file is readable by others; run chmod 600 on it");
    }
    let text = std::fs::read_to_string(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            anyhow::anyhow!(
                "permission denied reading {} (mode 0600, owned by the user that ran `flowlog serve`, e.g. root after `sudo flowlog serve`): run this command as that user (`sudo flowlog credentials ...`), or `sudo chown $USER {}`",
                p.display(),
                p.display()
            )
        } else {
            anyhow::anyhow!("cannot read {}: {e}", p.display())
        }
    })?;
    toml::from_str(&text).with_context(|| format!("invalid credentials file {}", p.display()))
}

/// Reads a credential file given to `flowlog agent` (`[control_plane] credentials_file`):
/// either the TOML `credentials.toml` that `flowlog serve` writes, or what `flowlog
/// credentials` prints (`export AWS_ACCESS_KEY_ID=...` / `AWS_SECRET_ACCESS_KEY='...'`
/// lines; the `FLOWLOG_` names are accepted too).
pub fn load_file(p: &Path) -> anyhow::Result<StoredCredential> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read credentials file {}", p.display()))?;
    parse_file(&text).with_context(|| format!("invalid credentials file {}", p.display()))
}

fn parse_file(text: &str) -> anyhow::Result<StoredCredential> {
    if let Ok(c) = toml::from_str::<StoredCredential>(text) {
        return Ok(c);
    }
    let (mut key, mut secret) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
            .unwrap_or(value)
            .to_string();
        match name.trim() {
            "AWS_ACCESS_KEY_ID" | "FLOWLOG_ACCESS_KEY_ID" => key = Some(value),
            "AWS_SECRET_ACCESS_KEY" | "FLOWLOG_SECRET_ACCESS_KEY" => secret = Some(value),
            _ => {}
        }
    }
    match (key, secret) {
        (Some(access_key_id), Some(secret_access_key))
            if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
        {
            Ok(StoredCredential {
                access_key_id,
                secret_access_key,
            })
        }
        _ => anyhow::bail!(
            "expected access_key_id and secret_access_key (TOML, as in credentials.toml) or the `export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...` lines `flowlog credentials` prints"
        ),
    }
}

fn random_string(n: usize, alphabet: &[u8]) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_files_of_both_shapes_parse() {
        let toml = "# Admin credential\naccess_key_id = \"AKIAAAAAAAAAAAAAAAAA\"\nsecret_access_key = \"s/e+cret\"\n";
        let c = parse_file(toml).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AKIAAAAAAAAAAAAAAAAA", "s/e+cret")
        );
        let exports = "export AWS_ACCESS_KEY_ID=AKIABBBBBBBBBBBBBBBB\nexport AWS_SECRET_ACCESS_KEY='a=b/c'\nexport AWS_DEFAULT_REGION=eu-west-1\n";
        let c = parse_file(exports).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AKIABBBBBBBBBBBBBBBB", "a=b/c")
        );
        let e = parse_file("export AWS_ACCESS_KEY_ID=AKIAONLY\n").unwrap_err();
        assert!(e.to_string().contains("flowlog credentials"), "{e}");
        assert!(parse_file("").is_err());
    }
}
