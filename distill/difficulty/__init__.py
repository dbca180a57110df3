"""`distill difficulty`: the student's own pass rate on each training prompt."""
