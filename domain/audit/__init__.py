"""The evidence bundle of an incident, its pure parts: the events a record reads, the record
derived from them, the manifest and its signature."""
