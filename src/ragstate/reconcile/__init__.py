"""The loop: observe → plan → apply → verify, and the reports it gives."""
