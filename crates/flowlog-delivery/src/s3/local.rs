//! The embedded S3 stand-in: `<data-dir>/s3/<bucket>/<key>`, one folder per bucket, created on
//! first use. Files are written to a temporary name, fsynced and renamed, so a reader never sees
//! a partial object and a re-sent batch replaces its own file.

use crate::DeliveryError;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LocalS3 {
    root: PathBuf,
}

impl LocalS3 {
    /// `root` is `<data-dir>/s3`.
    pub fn new(root: impl Into<PathBuf>) -> LocalS3 {
        LocalS3 { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of an object; refuses names that would leave the bucket folder.
    pub fn path_of(&self, bucket: &str, key: &str) -> Result<PathBuf, DeliveryError> {
        let rel = Path::new(bucket).join(key);
        let ok = !bucket.is_empty()
            && !bucket.contains('/')
            && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !ok {
            return Err(DeliveryError::Rejected(format!(
                "invalid bucket or key: {bucket}/{key}"
            )));
        }
        Ok(self.root.join(rel))
    }

    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), DeliveryError> {
        let path = self.path_of(bucket, key)?;
        let dir = path.parent().expect("object path has a parent");
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object")
        ));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_under_bucket_folder_and_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalS3::new(d.path().join("s3"));
        s.put("b1", "AWSLogs/1/x.log.gz", b"abc").unwrap();
        assert_eq!(
            fs::read(d.path().join("s3/b1/AWSLogs/1/x.log.gz")).unwrap(),
            b"abc"
        );
        s.put("b1", "AWSLogs/1/x.log.gz", b"xyz").unwrap();
        assert_eq!(
            fs::read(d.path().join("s3/b1/AWSLogs/1/x.log.gz")).unwrap(),
            b"xyz"
        );
        assert!(s.put("b1", "../etc/x", b"").is_err());
        assert!(s.put("..", "x", b"").is_err());
    }
}
