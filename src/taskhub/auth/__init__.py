"""Authentication: login, signup, tokens, the current user, and user management."""
