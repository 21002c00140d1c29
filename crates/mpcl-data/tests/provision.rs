//! Archive data sets end to end: a tiny CIFAR-10 `.tar.gz` in the real layout, written by the
//! test and served by a loopback HTTP server the test starts, provisioned through
//! interruptions, bad checksums and redirects, then listed and loaded through the registry.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use mpcl_data::archive::{Archive, Check, MANIFEST};
use mpcl_data::cifar::{CIFAR10, IMAGE_BYTES};
use mpcl_data::{DataError, Dataset, Split, Status, fetch, fsutil};

/// Records per batch file in the tiny archive.
const PER_FILE: usize = 3;

/// The tiny archive: cifar-10-batches-bin/ with the six batch files of [`PER_FILE`] records
/// each (file f, record r: label (f + r) mod 10, every pixel 10·f + r) and the text file the
/// real archive also holds.
fn tiny_cifar10() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: String, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).unwrap();
    };
    for (f, name) in CIFAR10.files.iter().enumerate() {
        let mut bytes = Vec::new();
        for r in 0..PER_FILE {
            bytes.push(((f + r) % 10) as u8);
            bytes.extend(std::iter::repeat_n((10 * f + r) as u8, IMAGE_BYTES));
        }
        add(format!("cifar-10-batches-bin/{name}"), &bytes);
    }
    add(
        "cifar-10-batches-bin/batches.meta.txt".into(),
        b"airplane\n",
    );
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// CIFAR-10's spec with the tiny archive's md5 (computed by the RFC 1321-tested md5_hex).
fn spec(archive: &[u8]) -> Archive {
    Archive {
        md5: leak(fsutil::md5_hex(archive)),
        ..CIFAR10
    }
}

/// The data set's directory in `data`, where the registry looks for CIFAR-10.
fn cifar_dir(data: &Path) -> std::path::PathBuf {
    Dataset::Cifar10.dir(data)
}

fn no_progress() -> impl FnMut(&str, u64, Option<u64>) {
    |_, _, _| {}
}

/// What the registry loads equals what was packed: labels (f + r) mod 10, pixels 10·f + r.
fn assert_loads(data: &Path) {
    let train = Dataset::Cifar10.load(data, Split::Train).unwrap();
    assert_eq!(
        (train.len(), train.channels, train.height, train.width),
        (5 * PER_FILE, 3, 32, 32)
    );
    // What configs are checked against before any data is loaded.
    assert_eq!(Dataset::Cifar10.image_shape(), Some((3, 32, 32)));
    assert_eq!(train.labels[..4], [0, 1, 2, 1]);
    assert_eq!(train.image(4)[0], 11, "batch 2, record 1");
    let test = Dataset::Cifar10.load(data, Split::Test).unwrap();
    assert_eq!(test.labels, vec![5, 6, 7]);
    assert_eq!(test.image(2)[IMAGE_BYTES - 1], 52);
}

#[test]
fn an_interrupted_download_resumes_and_ends_verified() {
    let archive = tiny_cifar10();
    let cut = archive.len() / 3;
    let server = common::serve(archive.clone(), cut);
    let data = tempfile::tempdir().unwrap();
    let dir = cifar_dir(data.path());
    let spec = spec(&archive);
    assert_eq!(
        Dataset::Cifar10.status(data.path()).unwrap(),
        Status::Missing
    );
    let url = format!("{}/cut", server.base);
    let err = spec.provision(&dir, &url, &mut no_progress()).unwrap_err();
    assert!(matches!(err, DataError::Download { .. }), "{err}");
    assert!(!spec.extracted(&dir).exists() && !dir.join(spec.file).exists());
    let part = fetch::part_path(&dir.join(spec.file));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);
    let mut last = (0, None);
    let said = spec
        .provision(&dir, &url, &mut |_: &str, n, t| last = (n, t))
        .unwrap();
    assert!(
        said.contains("downloaded, verified and extracted"),
        "{said}"
    );
    assert_eq!(
        server.ranges.load(Ordering::SeqCst),
        1,
        "the rest was asked for"
    );
    // The resumed request reports bytes counted from the start of the file.
    let len = archive.len() as u64;
    assert_eq!(last, (len, Some(len)));
    assert!(
        !part.exists() && !dir.join(spec.file).exists(),
        "archive removed"
    );
    assert_eq!(
        Dataset::Cifar10.status(data.path()).unwrap(),
        Status::Verified
    );
    assert_loads(data.path());
    // A second run has nothing to do.
    let again = spec.provision(&dir, &url, &mut no_progress()).unwrap();
    assert!(again.ends_with("verified"), "{again}");
}

#[test]
fn a_bad_checksum_is_rejected_and_nothing_lands() {
    let archive = tiny_cifar10();
    let server = common::serve(archive.clone(), 0);
    let data = tempfile::tempdir().unwrap();
    let dir = cifar_dir(data.path());
    let wrong = Archive {
        md5: "0123456789abcdef0123456789abcdef",
        ..CIFAR10
    };
    let url = format!("{}/file", server.base);
    let err = wrong.provision(&dir, &url, &mut no_progress()).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
    assert!(
        err.to_string().contains("0123456789abcdef0123456789abcdef"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "no archive, partial file or tree: {left:?}"
    );
    assert_eq!(
        Dataset::Cifar10.status(data.path()).unwrap(),
        Status::Missing
    );
    // An archive placed by hand that does not verify is named and not extracted.
    std::fs::write(dir.join(wrong.file), &archive[..archive.len() - 1]).unwrap();
    let err = spec(&archive)
        .provision(&dir, &url, &mut no_progress())
        .unwrap_err();
    assert!(
        err.to_string().contains("cifar-10-binary.tar.gz: md5"),
        "{err}"
    );
    assert!(!wrong.extracted(&dir).exists());
}

#[test]
fn redirects_are_followed() {
    let archive = tiny_cifar10();
    let server = common::serve(archive.clone(), 0);
    let data = tempfile::tempdir().unwrap();
    let dir = cifar_dir(data.path());
    let url = format!("{}/moved", server.base);
    spec(&archive)
        .provision(&dir, &url, &mut no_progress())
        .unwrap();
    assert_loads(data.path());
}

#[test]
fn a_placed_archive_is_extracted_over_leftovers_of_an_interrupted_run() {
    let archive = tiny_cifar10();
    let data = tempfile::tempdir().unwrap();
    let dir = cifar_dir(data.path());
    let spec = spec(&archive);
    // What an interruption during extraction leaves: a half-filled temporary tree. And an
    // unverified tree at the target (no manifest), as a hand-made copy would be.
    std::fs::create_dir_all(dir.join(".cifar-10-batches-bin.extract4242/x")).unwrap();
    std::fs::create_dir_all(spec.extracted(&dir)).unwrap();
    std::fs::write(spec.extracted(&dir).join("test_batch.bin"), b"junk").unwrap();
    let status = Dataset::Cifar10.status(data.path()).unwrap();
    assert!(
        matches!(&status, Status::Unverified(w) if w.contains(MANIFEST)),
        "{status:?}"
    );
    let err = Dataset::Cifar10
        .load(data.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no manifest") && err.contains("place cifar-10-binary"),
        "{err}"
    );
    std::fs::write(dir.join(spec.file), &archive).unwrap();
    // No server: the URL must not be used when the archive is there.
    let said = spec
        .provision(&dir, "http://127.0.0.1:9/unused", &mut no_progress())
        .unwrap();
    assert!(
        said.contains("extracted from the archive found there"),
        "{said}"
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["cifar-10-batches-bin"],
        "only the verified tree remains"
    );
    assert_loads(data.path());
}

#[test]
fn listing_detects_changes_after_extraction() {
    let archive = tiny_cifar10();
    let data = tempfile::tempdir().unwrap();
    let dir = cifar_dir(data.path());
    let spec = spec(&archive);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(spec.file), &archive).unwrap();
    spec.provision(&dir, "http://127.0.0.1:9/unused", &mut no_progress())
        .unwrap();
    let batch = spec.extracted(&dir).join("data_batch_3.bin");
    let mut bytes = std::fs::read(&batch).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&batch, &bytes).unwrap();
    let status = Dataset::Cifar10.status(data.path()).unwrap();
    assert!(
        matches!(&status, Status::Unverified(w) if w.contains("data_batch_3.bin: md5")),
        "{status:?}"
    );
    bytes.pop();
    std::fs::write(&batch, &bytes).unwrap();
    let status = Dataset::Cifar10.status(data.path()).unwrap();
    assert!(
        matches!(&status, Status::Unverified(w) if w.contains("bytes")),
        "{status:?}"
    );
    // The test split does not read batch 3: it still loads.
    assert_eq!(
        Dataset::Cifar10
            .load(data.path(), Split::Test)
            .unwrap()
            .len(),
        3
    );
    assert!(Dataset::Cifar10.load(data.path(), Split::Train).is_err());
}

#[test]
fn missing_data_sets_say_where_and_how() {
    let data = tempfile::tempdir().unwrap();
    for ds in [Dataset::Cifar10, Dataset::Stl10, Dataset::Mnist] {
        assert_eq!(ds.status(data.path()).unwrap(), Status::Missing);
        let err = ds.load(data.path(), Split::Train).unwrap_err().to_string();
        let dir = ds.dir(data.path()).display().to_string();
        assert!(
            err.contains(" not found in ") && err.contains(&dir),
            "{err}"
        );
        assert!(
            err.contains("MPCL_DATA_DIR") && err.contains("--data-dir"),
            "{err}"
        );
        assert!(
            err.contains(&format!("cargo xtask download {}", ds.name())),
            "{err}"
        );
    }
    let err = Dataset::Cifar10
        .load(data.path(), Split::Unlabeled)
        .unwrap_err();
    assert!(err.to_string().contains("no unlabeled split"), "{err}");
    // A file where a directory should be is named as such, not as a missing data set.
    let file = data.path().join("mnist");
    std::fs::write(&file, b"").unwrap();
    let err = Dataset::Mnist.load(data.path(), Split::Train).unwrap_err();
    let expected = format!(
        "{}: a file where MNIST's directory should be",
        file.display()
    );
    assert_eq!(err.to_string(), expected);
    let err = Dataset::Mnist.load(&file, Split::Train).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: a file", file.display())),
        "{err}"
    );
}

#[test]
fn the_registry_provisions_from_a_mirror_and_fails_offline_with_the_ways() {
    let archive = tiny_cifar10();
    let data = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let offline = format!("http://127.0.0.1:{port}/");
    let err = Dataset::Cifar10
        .provision_from(data.path(), Some(&offline), &mut no_progress())
        .unwrap_err()
        .to_string();
    let dir = cifar_dir(data.path()).display().to_string();
    assert!(
        err.starts_with(&format!("downloading {offline}cifar-10-binary.tar.gz")),
        "{err}"
    );
    assert!(
        err.contains("place cifar-10-binary.tar.gz (from https://"),
        "{err}"
    );
    assert!(err.contains(&dir) && err.contains("MPCL_DATA_DIR"), "{err}");
    // The real archive's md5 cannot match the tiny one: the checksum error names the file
    // and nothing lands.
    let server = common::serve(archive, 0);
    let mirror = format!("{}/", server.base);
    let err = Dataset::Cifar10
        .provision_from(data.path(), Some(&mirror), &mut no_progress())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cifar-10-binary.tar.gz: md5") && err.contains(CIFAR10.md5),
        "{err}"
    );
    assert_eq!(
        Dataset::Cifar10.status(data.path()).unwrap(),
        Status::Missing
    );
}

#[test]
fn a_copy_extracted_outside_mpcl_is_read_when_its_sizes_are_official() {
    // A hand-extracted test split: 10 000 records (the official 30 730 000 bytes), record r
    // labelled r mod 10 with every pixel r mod 256, and no manifest.
    let data = tempfile::tempdir().unwrap();
    let top = CIFAR10.extracted(&cifar_dir(data.path()));
    std::fs::create_dir_all(&top).unwrap();
    let mut bytes = Vec::with_capacity(10_000 * (1 + IMAGE_BYTES));
    for r in 0..10_000usize {
        bytes.push((r % 10) as u8);
        bytes.extend(std::iter::repeat_n((r % 256) as u8, IMAGE_BYTES));
    }
    let path = top.join("test_batch.bin");
    std::fs::write(&path, &bytes).unwrap();
    let set = Dataset::Cifar10.load(data.path(), Split::Test).unwrap();
    assert_eq!(set.len(), 10_000);
    assert_eq!((set.labels[13], set.image(13)[0]), (3, 13));
    assert_eq!(
        CIFAR10
            .check_files(&cifar_dir(data.path()), &["test_batch.bin"])
            .unwrap(),
        Check::Unmanifested
    );
    // The full tree is incomplete: the training batches are absent.
    let said = CIFAR10
        .check_files(&cifar_dir(data.path()), CIFAR10.files)
        .unwrap();
    assert!(
        matches!(&said, Check::Unverified(w) if w.contains("data_batch_1.bin is missing")),
        "the training split is absent: {said:?}"
    );

    // One record short: refused, naming the file and both sizes.
    std::fs::write(&path, &bytes[..bytes.len() - (1 + IMAGE_BYTES)]).unwrap();
    let err = Dataset::Cifar10
        .load(data.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "{} has 30726927 bytes, the official file 30730000",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn provisioning_keeps_a_complete_copy_extracted_outside_mpcl() {
    // Every official file at its official size (zero bytes are valid CIFAR records: label 0,
    // black image): provisioning reports it present and contacts no server (port 9 is
    // discard, refused here, so a download attempt would fail).
    let data = tempfile::tempdir().unwrap();
    let dir = cifar_dir(data.path());
    let top = CIFAR10.extracted(&dir);
    std::fs::create_dir_all(&top).unwrap();
    for (name, &size) in CIFAR10.files.iter().zip(CIFAR10.sizes) {
        let file = std::fs::File::create(top.join(name)).unwrap();
        file.set_len(size).unwrap();
    }
    let said = CIFAR10
        .provision(&dir, "http://127.0.0.1:9/unused", &mut no_progress())
        .unwrap();
    assert!(said.contains("extracted outside mpcl"), "{said}");
    assert_eq!(
        Dataset::Cifar10.status(data.path()).unwrap(),
        Status::Present
    );
}
