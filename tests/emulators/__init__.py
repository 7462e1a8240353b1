"""HTTP emulators of the trackers' APIs that the real client libraries talk to in tests."""
