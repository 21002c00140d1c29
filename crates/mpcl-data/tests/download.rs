//! The downloader against a small HTTP server on loopback that this test starts: complete and
//! interrupted transfers, resumption with a range request, redirects, bad checksums, errors.

mod common;

use std::net::TcpListener;
use std::sync::atomic::Ordering;

use mpcl_data::{DataError, fetch, fsutil};

/// The served file: 100 000 bytes of a fixed pattern.
fn payload() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

/// Serves the payload; `/cut` breaks off after 30 000 bytes the first time.
fn serve() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let server = common::serve(payload(), 30_000);
    (server.base, server.ranges)
}

fn md5() -> String {
    fsutil::md5_hex(&payload())
}

#[test]
fn a_complete_download_is_verified_and_renamed() {
    let (base, _) = serve();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data.bin");
    let mut last = (0, None);
    fetch::download(&format!("{base}/file"), &target, &md5(), |n, t| {
        last = (n, t)
    })
    .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), payload());
    assert_eq!(last, (100_000, Some(100_000)));
    assert!(!fetch::part_path(&target).exists());
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let (base, ranges) = serve();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data.bin");
    let url = format!("{base}/cut");
    let err = fetch::download(&url, &target, &md5(), |_, _| {}).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("downloading {url}: ")),
        "{err}"
    );
    assert!(!target.exists(), "nothing unverified at the target");
    let kept = std::fs::metadata(fetch::part_path(&target)).unwrap().len();
    assert!(
        (1..=30_000).contains(&kept),
        "the partial file keeps what arrived: {kept}"
    );
    fetch::download(&url, &target, &md5(), |_, _| {}).unwrap();
    assert_eq!(
        ranges.load(Ordering::SeqCst),
        1,
        "the second request asked for the rest"
    );
    assert_eq!(std::fs::read(&target).unwrap(), payload());
}

#[test]
fn redirects_are_followed() {
    let (base, _) = serve();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data.bin");
    fetch::download(&format!("{base}/moved"), &target, &md5(), |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), payload());
}

#[test]
fn a_wrong_checksum_leaves_nothing_behind() {
    let (base, _) = serve();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data.bin");
    let wrong = "0123456789abcdef0123456789abcdef";
    let err = fetch::download(&format!("{base}/file"), &target, wrong, |_, _| {}).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains(wrong), "{err}");
    assert!(!target.exists() && !fetch::part_path(&target).exists());
}

#[test]
fn http_errors_and_unreachable_hosts_fail_fast_with_the_url() {
    let (base, _) = serve();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data.bin");
    let err = fetch::download(&format!("{base}/nope"), &target, &md5(), |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("/nope: HTTP status 404"), "{err}");
    // A port nobody listens on: bind one, then close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/file");
    let err = fetch::download(&url, &target, &md5(), |_, _| {}).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("downloading {url}")),
        "{err}"
    );
}
