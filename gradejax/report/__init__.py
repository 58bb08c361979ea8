"""Stage 5's output: figures (PNG panels), self-contained HTML documents, the report pages."""
