"""The retrieval pipelines and the artifact kinds each of them reads."""
