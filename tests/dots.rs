//! No actor ever issues the same dot twice (SPEC §2; Riak's kv679): a node
//! restored from an older copy of its data directory must not hand out
//! counters the other replicas have already seen, or its new writes would be
//! silently dominated by old ones.

mod common;

use std::time::Duration;

use common::*;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn writes_through_a_node_restored_from_a_backup_survive_repair() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(root.path(), &[]);
    let client = http();
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    for k in &keys {
        let r = put(&client, &format!("{}?w=3", nodes[0].key_url(k)), "v1", None);
        assert_eq!(r.status(), 204);
    }
    // Back n1 up (stopped, so the copy is consistent).
    nodes[0].stop();
    let backup = root.path().join("n1-backup");
    copy_dir(&nodes[0].data_dir, &backup);
    nodes[0].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    // More writes through n1: the others see counters the backup never had.
    for k in &keys {
        let ctx = {
            let r = get(&nodes[0].key_url(k));
            ctx_of(&r)
        };
        let r = put(
            &client,
            &format!("{}?w=3", nodes[0].key_url(k)),
            "v2",
            Some(&ctx),
        );
        assert_eq!(r.status(), 204);
    }
    // Restore the backup.
    nodes[0].stop();
    std::fs::remove_dir_all(&nodes[0].data_dir).expect("rm");
    copy_dir(&backup, &nodes[0].data_dir);
    nodes[0].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    // Blind writes through the restored node, acknowledged by two replicas.
    for k in &keys {
        let r = put(&client, &format!("{}?w=2", nodes[0].key_url(k)), "v3", None);
        assert_eq!(r.status(), 204, "{k}");
    }
    for n in &nodes {
        n.client().repair().expect("repair");
    }
    std::thread::sleep(Duration::from_millis(200));
    // Every acknowledged write survives, on every replica.
    for (i, n) in nodes.iter().enumerate() {
        let others: Vec<&TestNode> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| o)
            .collect();
        for k in &keys {
            let vals = local_values(n, &others, k);
            assert!(
                vals.contains(&"v3".to_string()),
                "{k} on {}: the write after the restore was lost: {vals:?}",
                n.name
            );
        }
    }
}
