"""Small end-to-end experiments that exercise the shared substrate (not paper reproductions)."""
