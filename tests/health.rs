//! `/health` tells the truth (SPEC §5, issue: health): `503` with a reason once
//! the store cannot take writes. The data directory sits on a small tmpfs that
//! the test fills; that needs root (to mount), which CI has. Without it the
//! test says so and does nothing.

mod common;

use std::process::Command;

use common::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn health_answers_503_once_the_disk_is_full() {
    let root = tempfile::tempdir().expect("tempdir");
    let disk = root.path().join("disk");
    std::fs::create_dir_all(&disk).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: mounting a tmpfs needs root; run the suite as root (CI does)");
        return;
    }
    let _mount = Mount(disk.clone());
    let mut node = TestNode::new(&disk, "full", ip(1));
    node.log = root.path().join("full.log");
    node.start();
    let client = http();
    node.client().health().expect("healthy");
    // Fill the disk: 256 KiB values until writes fail (bounded).
    let value = vec![b'x'; 256 << 10];
    let mut failed = false;
    for i in 0..400 {
        let r = put(
            &client,
            &node.key_url(&format!("fill-{i}")),
            value.clone(),
            None,
        );
        if r.status() != 204 {
            failed = true;
            break;
        }
    }
    assert!(failed, "48 MB took 100 MB of writes");
    match node.client().health() {
        Err(dynakv_client::Error::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (503, "store_unavailable"))
        }
        other => panic!("expected 503 store_unavailable, got {other:?}"),
    }
    assert!(node.alive(), "the node died instead of reporting");
    node.kill();
}
