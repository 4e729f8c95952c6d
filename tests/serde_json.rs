//! With the `serde` feature the public data types serialize to JSON (for an API
//! endpoint, say) and read back.
#![cfg(all(target_os = "linux", feature = "serde"))]

use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessInfo};

#[test]
fn a_live_process_round_trips_through_json() {
    let me = proctrack::process(Pid::current()).unwrap();
    let json = serde_json::to_value(&me).unwrap();
    assert_eq!(
        json["identity"]["pid"],
        serde_json::json!(Pid::current().as_raw())
    );
    // The boot id is its usual text form; arguments are a list of strings.
    let boot = json["identity"]["boot_id"].as_str().unwrap();
    assert_eq!(boot.len(), 36);
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(json["cmdline"], serde_json::json!(args));
    let back: ProcessInfo = serde_json::from_value(json).unwrap();
    assert_eq!(back, me);
}

#[test]
fn a_tree_serializes_nested() {
    let table = ProcessTable::new().unwrap();
    let tree = table.tree(Pid::current()).unwrap();
    let json = serde_json::to_value(&tree).unwrap();
    assert_eq!(
        json["process"]["identity"]["pid"],
        serde_json::json!(Pid::current().as_raw())
    );
    assert!(json["children"].is_array());
}

#[test]
fn invalid_pids_are_rejected_when_reading_json() {
    for bad in ["0", "-1", "2147483648"] {
        assert!(serde_json::from_str::<Pid>(bad).is_err(), "{bad}");
    }
    assert_eq!(serde_json::from_str::<Pid>("42").unwrap().as_raw(), 42);
}
