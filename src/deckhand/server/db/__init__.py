"""Database layer: engine and sessions (`session`), ORM models (`models`), migrations."""
