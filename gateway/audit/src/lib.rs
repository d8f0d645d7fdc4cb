//! creditgate audit log (in progress).
