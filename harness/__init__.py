"""watch_queue vmtest harness: build, boot and test the patched kernel."""
