//! Verified, resumable downloads.
//!
//! [`download`] streams into `<target>.part`, resumes an existing partial file with an HTTP
//! range request, follows redirects, checks the md5 and only then renames the file into place.
//! Interrupted at any point, a re-run either resumes or starts over; a file at the target path
//! has always been verified.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{DataError, fsutil};

/// The partial file next to `target` that a download writes into.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

/// Downloads `url` to `target`, resuming `<target>.part` if present, and verifies the md5
/// before renaming. `progress` is called with the bytes received so far and the total when
/// the server says it.
///
/// # Errors
/// [`DataError::Download`] for network and HTTP failures (the partial file stays, to resume),
/// [`DataError::Checksum`] when the complete file has the wrong md5 (the partial file is
/// removed, so the next attempt starts over), [`DataError::Io`] for local files.
pub fn download(
    url: &str,
    target: &Path,
    md5: &str,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<(), DataError> {
    let part = part_path(target);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let fail = |reason: String| DataError::Download {
        url: url.into(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|e| fail(e.to_string()))?;
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (mut file, mut received, total) = match status {
        206 => {
            let file = std::fs::OpenOptions::new().append(true).open(&part);
            (
                file.map_err(|e| DataError::io(&part, e))?,
                have,
                length.map(|l| l + have),
            )
        }
        200 => {
            let file = std::fs::File::create(&part).map_err(|e| DataError::io(&part, e))?;
            (file, 0, length)
        }
        // The partial file already holds everything: verify it below.
        416 if have > 0 => return finish(&part, target, md5),
        _ => return Err(fail(format!("HTTP status {status}"))),
    };
    let mut body = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = body.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(|e| DataError::io(&part, e))?;
        received += n as u64;
        progress(received, total);
    }
    file.sync_all().map_err(|e| DataError::io(&part, e))?;
    drop(file);
    if let Some(total) = total.filter(|&t| t != received) {
        return Err(fail(format!(
            "connection closed after {received} of {total} bytes"
        )));
    }
    finish(&part, target, md5)
}

fn finish(part: &Path, target: &Path, md5: &str) -> Result<(), DataError> {
    let actual = fsutil::md5_file(part)?;
    if actual != md5 {
        std::fs::remove_file(part).map_err(|e| DataError::io(part, e))?;
        return Err(DataError::Checksum {
            path: target.to_owned(),
            expected: md5.into(),
            actual,
        });
    }
    std::fs::rename(part, target).map_err(|e| DataError::io(target, e))
}
