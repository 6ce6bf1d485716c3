"""People and machines that use the service: users, roles, hospitals they may see, sessions, tokens."""
