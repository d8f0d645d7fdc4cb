//! creditgate policy (in progress).
