"""Studies: dataset x attacks x parameter grid x seeds -> result store and Table 1 summaries."""
