//! Race-free signals (work in progress).
