//! A small HTTP server on loopback, started by the tests that use it.
//!
//! It serves one payload at `/file` and at every path ending in `.gz` (with range support), at
//! `/cut` (the first request breaks off after `cut` bytes) and at `/moved` (a 302 to `/file`),
//! and 404 elsewhere.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server: its base URL and the number of range requests it has seen.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Range requests seen so far.
    pub ranges: Arc<AtomicUsize>,
}

/// Starts a server for `payload` on a free loopback port; it answers at most 32 requests.
pub fn serve(payload: Vec<u8>, cut: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(AtomicUsize::new(0));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        let cut_served = AtomicUsize::new(0);
        for stream in listener.incoming().take(32) {
            handle(stream.unwrap(), &payload, cut, &seen, &cut_served);
        }
    });
    Server { base, ranges }
}

fn handle(
    mut stream: TcpStream,
    body: &[u8],
    cut: usize,
    ranges: &AtomicUsize,
    cut_served: &AtomicUsize,
) {
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
    let head = |status: &str, extra: &str, len: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
    };
    let file = path == "/file" || path == "/cut" || path.ends_with(".gz");
    match path.as_str() {
        _ if file => {
            let rest = &body[start..];
            let (status, range) = if start > 0 {
                let last = body.len() - 1;
                let range = format!("Content-Range: bytes {start}-{last}/{}\r\n", body.len());
                ("206 Partial Content", range)
            } else {
                ("200 OK", String::new())
            };
            stream
                .write_all(head(status, &range, rest.len()).as_bytes())
                .unwrap();
            let cut_now = path == "/cut" && cut_served.fetch_add(1, Ordering::SeqCst) == 0;
            let sent = if cut_now { &rest[..cut] } else { rest };
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
