//! The downloader against a small HTTP server on loopback that this test starts: complete and
//! interrupted transfers, resumption with a range request, redirects, bad checksums, errors.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mpcl_data::{DataError, fetch, fsutil};

/// The served file: 100 000 bytes of a fixed pattern.
fn payload() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

/// Serves `/file` (with range support), `/cut` (the first request breaks off after 30 000
/// bytes), `/moved` (302 to `/file`) and 404 otherwise. Returns the base URL and a counter
/// of the range requests seen.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(AtomicUsize::new(0));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        let cut_served = AtomicUsize::new(0);
        for stream in listener.incoming().take(32) {
            handle(stream.unwrap(), &seen, &cut_served);
        }
    });
    (base, ranges)
}

fn handle(mut stream: TcpStream, ranges: &AtomicUsize, cut_served: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut start = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            start = v.trim().trim_end_matches('-').parse().unwrap();
            ranges.fetch_add(1, Ordering::SeqCst);
        }
    }
    let body = payload();
    let head = |status: &str, extra: &str, len: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
    };
    match path.as_str() {
        "/file" | "/cut" => {
            let rest = &body[start..];
            let status = if start > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let range = if start > 0 {
                format!(
                    "Content-Range: bytes {start}-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                )
            } else {
                String::new()
            };
            stream
                .write_all(head(status, &range, rest.len()).as_bytes())
                .unwrap();
            let cut = path == "/cut" && cut_served.fetch_add(1, Ordering::SeqCst) == 0;
            let sent = if cut { &rest[..30_000] } else { rest };
            let _ = stream.write_all(sent);
        }
        "/moved" => {
            let extra = "Location: /file\r\n";
            stream
                .write_all(head("302 Found", extra, 0).as_bytes())
                .unwrap();
        }
        _ => stream
            .write_all(head("404 Not Found", "", 0).as_bytes())
            .unwrap(),
    }
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
