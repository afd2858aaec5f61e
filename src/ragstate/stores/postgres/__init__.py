"""PostgreSQL + pgvector backend."""
