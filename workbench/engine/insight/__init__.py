"""Teaching and insight: what a model predicts, where it errs, and what happens inside it."""
