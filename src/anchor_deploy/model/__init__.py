"""Pure domain model: entities, statuses, names and the error tree. Imports nothing outside the stdlib."""
