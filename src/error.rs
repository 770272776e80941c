//! The crate's one error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of thing went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration cannot work; the error names the file, line and reason.
    Config,
    /// A file or socket could not be read, written or bound.
    Io,
    /// A page template does not parse or render.
    Template,
}

/// An error that says what failed, where, and what to do about it.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    location: Option<Location>,
    message: String,
}

/// A place in a file: where a configuration error was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The line, counted from 1.
    pub line: usize,
    /// The column, counted from 1.
    pub column: usize,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            location: None,
            message: message.into(),
        }
    }

    /// A configuration error at byte `offset` of `source`, the text of `file`.
    pub(crate) fn config_at(file: &Path, source: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(source.len());
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            kind: ErrorKind::Config,
            location: Some(Location {
                file: file.to_path_buf(),
                line,
                column,
            }),
            message: message.into(),
        }
    }

    /// The same error, without its place in a file (for a configuration
    /// built in code, which has no file).
    pub(crate) fn without_location(mut self) -> Self {
        self.location = None;
        self
    }

    pub(crate) fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{what}: {err}"))
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where in the configuration the problem is, for a configuration error.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The reason, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(
                f,
                "{}:{}:{}: {}",
                at.file.display(),
                at.line,
                at.column,
                self.message
            ),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}
