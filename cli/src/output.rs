//! Where output goes, how wide it may be, and whether it is coloured.

use std::fmt::Write as _;
use std::io::{self, BufWriter, IsTerminal, Stdout, Write};

/// Standard output, buffered, with what we know about the terminal.
pub struct Out {
    writer: BufWriter<Stdout>,
    /// Columns to cut lines to; `None` when not a terminal or with `--wide`.
    width: Option<usize>,
    colour: bool,
    /// Standard output is a terminal: JSON is indented for a reader.
    terminal: bool,
}

/// The colours we use, by meaning.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// A pid: the thing to copy.
    Pid,
    /// Secondary text: kernel threads, headers.
    Dim,
    /// Done as asked (killed).
    Good,
    /// Not done (refused, denied, survived, missing).
    Bad,
}

impl Out {
    pub fn stdout(wide: bool) -> Out {
        let stdout = io::stdout();
        let terminal = stdout.is_terminal();
        // Columns only: a terminal may report 0 rows (a fresh pty) and
        // still have a width.
        let width = match rustix::termios::tcgetwinsize(&stdout) {
            Ok(size) if terminal && !wide && size.ws_col > 0 => Some(usize::from(size.ws_col)),
            _ => None,
        };
        // https://no-color.org: any non-empty value turns colour off.
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Out {
            writer: BufWriter::new(stdout),
            width,
            colour: terminal && !no_colour,
            terminal,
        }
    }

    /// Writes one line: `prefix` (already padded columns), then `text` cut so
    /// the whole line fits the terminal. The prefix's colour codes, if any,
    /// do not count: `prefix_columns` is its visible width.
    /// The text is painted in `style`, if any, after the cut.
    pub fn line(
        &mut self,
        prefix: &str,
        prefix_columns: usize,
        text: &str,
        style: Option<Style>,
    ) -> io::Result<()> {
        let room = self.width.map(|width| width.saturating_sub(prefix_columns));
        let text = cut(text, room);
        let text = match style {
            Some(style) => self.paint(style, &text),
            None => text,
        };
        writeln!(self.writer, "{prefix}{text}")
    }

    /// Writes `text` and a newline as it is.
    pub fn plain(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.writer, "{text}")
    }

    /// `text` in `style`, when colour is on.
    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.colour {
            return text.to_owned();
        }
        let code = match style {
            Style::Pid => "1",
            Style::Dim => "2",
            Style::Good => "32",
            Style::Bad => "1;31",
        };
        let mut painted = String::with_capacity(text.len() + 9);
        let _ = write!(painted, "\x1b[{code}m{text}\x1b[0m");
        painted
    }

    /// JSON, pretty-printed, and a newline.
    /// JSON: indented on a terminal, on one line otherwise, where a program
    /// reads it (indentation grows with nesting: a chain thousands deep
    /// would take gigabytes).
    pub fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), crate::Error> {
        if self.terminal {
            serde_json::to_writer_pretty(&mut self.writer, value)?;
        } else {
            serde_json::to_writer(&mut self.writer, value)?;
        }
        writeln!(self.writer)?;
        Ok(())
    }

    /// JSON on one line (a stream of events).
    pub fn json_line<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), crate::Error> {
        serde_json::to_writer(&mut self.writer, value)?;
        writeln!(self.writer)?;
        // A stream is read as it comes.
        self.writer.flush()?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), crate::Error> {
        self.writer.flush()?;
        Ok(())
    }
}

/// `text` cut to `room` characters, with `…` where it was cut. Control
/// characters (a newline in an argument, an escape sequence) are shown
/// escaped: one process is one line, and a process cannot drive our terminal.
pub fn cut(text: &str, room: Option<usize>) -> String {
    let mut shown = String::with_capacity(text.len());
    let mut count = 0;
    let limit = room.unwrap_or(usize::MAX);
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let width = piece.chars().count();
        if count + width > limit {
            if limit > 0 {
                // Make room for the ellipsis.
                while count + 1 > limit {
                    count -= usize::from(shown.pop().is_some());
                }
                shown.push('…');
            }
            return shown;
        }
        count += width;
        shown.push_str(&piece);
    }
    shown
}

/// Why other users' processes could not be read, and the fix where there
/// is one: for the warnings that say some were left out.
pub fn not_permitted_hint() -> &'static str {
    if rustix::process::geteuid().is_root() {
        "denied even to root"
    } else {
        "other users': run as root to include them"
    }
}

/// A warning on standard error.
pub fn warn(message: &str) {
    eprintln!("proctrack: warning: {message}");
}

/// An error on standard error.
pub fn error(message: &dyn std::fmt::Display) {
    eprintln!("proctrack: error: {message}");
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cuts_to_the_room_left() {
        assert_eq!(cut("sleep 100", None), "sleep 100");
        assert_eq!(cut("sleep 100", Some(9)), "sleep 100");
        assert_eq!(cut("sleep 100", Some(6)), "sleep…");
        assert_eq!(cut("sleep", Some(0)), "");
        assert_eq!(cut("a\nb\x1b[2J", None), "a\\nb\\u{1b}[2J");
        assert_eq!(cut("héllo wörld", Some(4)), "hél…");
    }
}
