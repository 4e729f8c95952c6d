//! The JSON of a listing (`GET /api/processes`): written without
//! recursion, so a chain of any depth is served, and with every command
//! line and path cut to [`MAX_TEXT`] bytes (`"truncated": true` on a
//! process that was cut). `GET /api/processes/{pid}` gives the whole text.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::ApiError;
use crate::table::ProcessTree;
use crate::{CommandLine, Cwd, ProcessInfo};

/// The most bytes of a command line (all its arguments) and of a path that
/// a listing carries.
pub const MAX_TEXT: usize = 4096;

/// `bytes` cut to at most `room` bytes, at a UTF-8 character boundary
/// when the bytes are UTF-8 there.
fn cut(bytes: &[u8], room: usize) -> &[u8] {
    if bytes.len() <= room {
        return bytes;
    }
    let mut end = room;
    // Step back over continuation bytes (10xxxxxx) of a character.
    while end > 0 && end > room.saturating_sub(3) && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

/// `process` with its command line and paths cut to [`MAX_TEXT`], or
/// `None` when nothing needed cutting.
fn shortened(process: &ProcessInfo) -> Option<ProcessInfo> {
    let total: usize = process.cmdline.args().map(|arg| arg.len()).sum();
    let long_cwd = process
        .cwd
        .path()
        .is_some_and(|path| path.as_os_str().len() > MAX_TEXT);
    if total <= MAX_TEXT && !long_cwd {
        return None;
    }
    let mut short = process.clone();
    if total > MAX_TEXT {
        let mut room = MAX_TEXT;
        let mut args = Vec::new();
        for arg in process.cmdline.args() {
            if room == 0 {
                break;
            }
            let kept = cut(arg.as_bytes(), room);
            room -= kept.len();
            args.push(OsString::from_vec(kept.to_vec()));
        }
        short.cmdline = CommandLine::from_args(args);
    }
    if long_cwd {
        let short_path = |path: &std::path::Path| {
            PathBuf::from(OsString::from_vec(
                cut(path.as_os_str().as_bytes(), MAX_TEXT).to_vec(),
            ))
        };
        short.cwd = match &process.cwd {
            Cwd::Path(path) => Cwd::Path(short_path(path)),
            Cwd::Deleted(path) => Cwd::Deleted(short_path(path)),
            other => other.clone(),
        };
    }
    Some(short)
}

fn encode_process(process: &ProcessInfo, out: &mut Vec<u8>) -> Result<(), ApiError> {
    let failed = |e: serde_json::Error| ApiError::internal(format!("cannot encode JSON: {e}"));
    match shortened(process) {
        None => serde_json::to_writer(&mut *out, process).map_err(failed),
        Some(short) => {
            serde_json::to_writer(&mut *out, &short).map_err(failed)?;
            // The object's closing brace, and the flag before it.
            out.pop();
            out.extend_from_slice(br#","truncated":true}"#);
            Ok(())
        }
    }
}

/// `{"count": n, "trees": [...]}`, each tree as
/// `{"process": {...}, "children": [...]}`, written with a stack of its own.
pub(crate) fn encode(trees: &[ProcessTree], count: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(count * 512 + 32);
    out.extend_from_slice(format!(r#"{{"count":{count},"trees":["#).as_bytes());
    // Each entry: the children of a node still to write, and the next one.
    let mut stack: Vec<(&[ProcessTree], usize)> = vec![(trees, 0)];
    while let Some((siblings, next)) = stack.last_mut() {
        let Some(node) = siblings.get(*next) else {
            stack.pop();
            out.extend_from_slice(b"]");
            if !stack.is_empty() {
                // The node whose children these were.
                out.extend_from_slice(b"}");
            }
            continue;
        };
        if *next > 0 {
            out.push(b',');
        }
        *next += 1;
        out.extend_from_slice(br#"{"process":"#);
        encode_process(&node.process, &mut out)?;
        out.extend_from_slice(br#","children":["#);
        stack.push((&node.children, 0));
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BootId, Pid, ProcessIdentity, StartTime};

    fn process(pid: u32, args: &[&str]) -> ProcessInfo {
        let identity = ProcessIdentity::new(
            BootId::from_bytes([7; 16]),
            Pid::try_from(pid).unwrap(),
            StartTime::from_raw(u64::from(pid)),
        );
        ProcessInfo::builder(identity)
            .cmdline(CommandLine::from_args(args.iter().copied()))
            .build()
    }

    #[test]
    fn the_listing_is_the_trees_json_with_long_text_cut() {
        let tree = ProcessTree {
            process: process(10, &["sh"]),
            children: vec![
                ProcessTree {
                    process: process(11, &["a"]),
                    children: vec![ProcessTree {
                        process: process(13, &["c"]),
                        children: Vec::new(),
                    }],
                },
                ProcessTree {
                    process: process(12, &["b"]),
                    children: Vec::new(),
                },
            ],
        };
        let trees = vec![tree.clone(), tree];
        let ours: serde_json::Value = serde_json::from_slice(&encode(&trees, 8).unwrap()).unwrap();
        let derived = serde_json::json!({"count": 8, "trees": trees});
        assert_eq!(ours, derived);
        let empty: serde_json::Value = serde_json::from_slice(&encode(&[], 0).unwrap()).unwrap();
        assert_eq!(empty, serde_json::json!({"count": 0, "trees": []}));

        // Long: cut to MAX_TEXT bytes, at a character's edge, flagged.
        let long = "é".repeat(3000);
        let tree = ProcessTree {
            process: process(20, &["x", &long, "y"]),
            children: Vec::new(),
        };
        let json: serde_json::Value = serde_json::from_slice(&encode(&[tree], 1).unwrap()).unwrap();
        let process = &json["trees"][0]["process"];
        assert_eq!(process["truncated"], true);
        let args = process["cmdline"].as_array().unwrap();
        let total: usize = args.iter().map(|a| a.as_str().unwrap().len()).sum();
        assert!(total <= MAX_TEXT && total > MAX_TEXT - 4, "{total}");
        assert!(args[1].as_str().unwrap().len() < long.len());
        assert!(process.get("cmdline_bytes").is_none(), "cut at a boundary");
    }

    /// A chain 30 000 deep, from a table over a `MemorySource`: built,
    /// written and dropped on a thread with a small stack (a recursion per
    /// level would overflow it).
    #[test]
    fn a_chain_30_000_deep_is_written_and_dropped_without_recursion() {
        use crate::MemorySource;
        use crate::table::{ProcessTable, TableOptions};

        const DEPTH: i32 = 30_000;
        let boot = BootId::from_bytes([3; 16]);
        let mut source = MemorySource::new(boot);
        for pid in 1..=DEPTH {
            let identity = ProcessIdentity::new(
                boot,
                Pid::try_from(pid).unwrap(),
                StartTime::from_raw(pid.unsigned_abs().into()),
            );
            source.insert(
                ProcessInfo::builder(identity)
                    .parent(Pid::try_from(pid - 1).ok())
                    .name("sh")
                    .cmdline(CommandLine::from_args(["sh", "chain"]))
                    .build(),
            );
        }
        let table = ProcessTable::with_source(source, TableOptions::default()).unwrap();
        let written = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let tree = table.tree(Pid::try_from(1).unwrap()).unwrap();
                let count = tree.len();
                let json = encode(std::slice::from_ref(&tree), count).unwrap();
                drop(tree);
                (count, json)
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        let (count, json) = written;
        assert_eq!(count, DEPTH as usize);
        let text = String::from_utf8(json).unwrap();
        assert_eq!(text.matches(r#"{"process":"#).count(), DEPTH as usize);
        assert!(text.starts_with(r#"{"count":30000,"trees":[{"process":{"identity":{"pid":1,"#));
        // The leaf, then every level closed.
        let tail = format!("{}]}}", "]}".repeat(DEPTH as usize));
        assert!(
            text.ends_with(&format!(r#""children":[{tail}"#)),
            "{}",
            &text[text.len() - 200..]
        );
    }
}
