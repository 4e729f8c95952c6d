//! `proctrack tree` and `proctrack ps`.

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use proctrack::supervisor::{JobMark, StateDir, job_marks, journaled_jobs};
use proctrack::table::{ProcessTable, ProcessTree};
use proctrack::{Pid, ProcessIdentity, ProcessInfo};
use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::args::{PsArgs, TreeArgs};
use crate::jobs::MarkJson;
use crate::output::{self, Out, Style};
use crate::{Error, Outcome};

pub fn tree(args: &TreeArgs, out: &mut Out) -> Result<Outcome, Error> {
    let mut table = ProcessTable::new()?;
    // Which processes belong to a job of `proctrack run`: marked.
    let marks = state_job_marks(&mut table);
    let table = table;
    let mut outcome = Outcome::Done;
    let roots: Vec<&ProcessInfo> = match (&args.cwd, args.pid) {
        (Some(dir), _) => {
            let search = CwdSearch::new(&table, dir);
            outcome = search.outcome();
            table.outermost(search.found.iter().map(|p| p.pid()))
        }
        (None, Some(pid)) => match table.get(pid) {
            Some(process) => vec![process],
            None => {
                output::error(&format!("no process has pid {pid}"));
                return Ok(Outcome::Partial);
            }
        },
        (None, None) => table.roots(),
    };
    let trees: Vec<ProcessTree> = roots.iter().filter_map(|p| table.tree(p.pid())).collect();
    if args.json {
        let marked: Vec<MarkedTree> = trees
            .iter()
            .map(|tree| MarkedTree {
                tree,
                marks: &marks,
            })
            .collect();
        out.json(&marked)?;
        return Ok(outcome);
    }
    print_header(out)?;
    for tree in &trees {
        // Depth-first with an explicit stack: a tree can be deeper than the call stack.
        let mut stack = vec![(tree, 0_usize)];
        while let Some((node, depth)) = stack.pop() {
            let mark = marks.get(&node.process.identity());
            print_marked_row(out, &node.process, depth, mark)?;
            stack.extend(node.children.iter().rev().map(|child| (child, depth + 1)));
        }
    }
    Ok(outcome)
}

pub fn ps(args: &PsArgs, out: &mut Out) -> Result<Outcome, Error> {
    let table = ProcessTable::new()?;
    let mut outcome = Outcome::Done;
    let mut found: Vec<&ProcessInfo> = match &args.cwd {
        Some(dir) => {
            let search = CwdSearch::new(&table, dir);
            outcome = search.outcome();
            search.found
        }
        None => table.find(|_| true),
    };
    if let Some(name) = &args.name {
        found.retain(|p| p.name() == name.as_str());
    }
    if args.json {
        out.json(&found)?;
        return Ok(outcome);
    }
    print_header(out)?;
    for process in found {
        print_row(out, process, 0)?;
    }
    Ok(outcome)
}

/// The processes standing in a directory, and what the user should hear
/// about the search (warnings go to standard error as they are found).
pub struct CwdSearch<'a> {
    pub found: Vec<&'a ProcessInfo>,
    pub dir_missing: bool,
}

impl<'a> CwdSearch<'a> {
    pub fn new<S: proctrack::ProcessSource>(
        table: &'a ProcessTable<S>,
        dir: &Path,
    ) -> CwdSearch<'a> {
        let (dir, dir_missing) = resolve(dir);
        if dir_missing {
            output::warn(&format!(
                "{} does not exist; only processes whose directory was removed from there can match",
                dir.display()
            ));
        }
        let found = table.find_by_cwd_prefix(&dir);
        if found.is_empty() {
            output::warn(&format!("no process stands in {}", dir.display()));
        }
        let hidden = table.cwds_not_permitted();
        if hidden > 0 {
            let count = match hidden {
                1 => "1 process".to_owned(),
                n => format!("{n} processes"),
            };
            output::warn(&format!(
                "the working directory of {count} could not be read ({}) and was not searched",
                output::not_permitted_hint()
            ));
        }
        CwdSearch { found, dir_missing }
    }

    /// A search of a directory that does not exist, with no match, did
    /// nothing the user asked for.
    pub fn outcome(&self) -> Outcome {
        if self.dir_missing && self.found.is_empty() {
            Outcome::Partial
        } else {
            Outcome::Done
        }
    }
}

/// The path the kernel reports for `dir` (symlinks resolved, made absolute),
/// and whether it is missing. The kernel shows resolved paths, so a search
/// must use one; `kill --cwd` resolves the same way.
fn resolve(dir: &Path) -> (PathBuf, bool) {
    match std::fs::canonicalize(dir) {
        Ok(path) => (path, false),
        Err(_) => {
            let absolute = std::env::current_dir()
                .map(|cwd| cwd.join(dir))
                .unwrap_or_else(|_| dir.to_path_buf());
            (absolute, true)
        }
    }
}

pub fn print_header(out: &mut Out) -> Result<(), Error> {
    let header = format!("{:>7} {:>7} {:>9}  COMMAND", "PID", "PPID", "RSS");
    let header = out.paint(Style::Dim, &header);
    out.plain(&header)?;
    Ok(())
}

pub fn print_row(out: &mut Out, process: &ProcessInfo, depth: usize) -> Result<(), Error> {
    print_marked_row(out, process, depth, None)
}

/// The job marks of the jobs in the state directory; none when it cannot be
/// read (a tree is not about jobs: `proctrack jobs` says what is wrong).
fn state_job_marks(table: &mut ProcessTable) -> HashMap<ProcessIdentity, JobMark> {
    let Ok(state) = StateDir::from_env() else {
        return HashMap::new();
    };
    let Ok(scan) = state.scan() else {
        return HashMap::new();
    };
    job_marks(&journaled_jobs(table, scan.records))
}

/// A tree as JSON, `{"process", "job"?, "children"}`: each job member
/// carries `"job": {"job": <id>, "found_by": [...]}`.
struct MarkedTree<'a> {
    tree: &'a ProcessTree,
    marks: &'a HashMap<ProcessIdentity, JobMark>,
}

impl Serialize for MarkedTree<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mark = self.marks.get(&self.tree.process.identity());
        let mut node =
            serializer.serialize_struct("ProcessTree", 2 + usize::from(mark.is_some()))?;
        node.serialize_field("process", &self.tree.process)?;
        if let Some(mark) = mark {
            node.serialize_field("job", &MarkJson::from(mark))?;
        }
        let children: Vec<MarkedTree> = self
            .tree
            .children
            .iter()
            .map(|tree| MarkedTree {
                tree,
                marks: self.marks,
            })
            .collect();
        node.serialize_field("children", &children)?;
        node.end()
    }
}

/// A row, with the process's job mark after its command.
pub fn print_marked_row(
    out: &mut Out,
    process: &ProcessInfo,
    depth: usize,
    mark: Option<&JobMark>,
) -> Result<(), Error> {
    let ppid = process.parent().map_or(0, Pid::as_raw);
    let pid = format!("{:>7}", process.pid());
    let indent = "  ".repeat(depth);
    let branch = if depth > 0 { "\\_ " } else { "" };
    let prefix = format!(
        "{} {ppid:>7} {:>9}  {indent}{branch}",
        out.paint(Style::Pid, &pid),
        human_bytes(process.rss_bytes()),
    );
    let columns = 7 + 1 + 7 + 1 + 9 + 2 + indent.len() + branch.len();
    let style = process.is_kernel_thread().then_some(Style::Dim);
    let text = match mark {
        Some(mark) => format!("{}  {mark}", describe(process)),
        None => describe(process),
    };
    out.line(&prefix, columns, &text, style)?;
    Ok(())
}

/// What a process runs: its arguments, or `[name]` when it has none (kernel
/// threads, zombies), as `ps` shows it.
pub fn describe(process: &ProcessInfo) -> String {
    if process.cmdline().is_empty() {
        format!("[{}]", process.name().to_string_lossy())
    } else {
        process.cmdline().to_string()
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}
