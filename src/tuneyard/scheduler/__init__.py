"""Claims queued jobs, hands them to an executor, and relays what the runner reports back."""
