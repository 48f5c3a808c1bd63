"""Training: the distillation loop, its schedules and the teacher-embedding cache."""
