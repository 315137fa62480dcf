"""Live updates: Server-Sent Events of the domain events, and the /live page."""
