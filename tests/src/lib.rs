//! Workspace-level end-to-end tests. The tests live in `tests/`; this library is empty.
