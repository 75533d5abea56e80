"""Helper scripts for building, locking and checking the book (not part of the netsim package)."""
