"""`make run`: embedded stores, migrations and the four services under one supervisor, for development."""
