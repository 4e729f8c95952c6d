//! The incremental process table (work in progress).
