"""The sync engine and everything that knows no API: mappings, the store, linking."""
