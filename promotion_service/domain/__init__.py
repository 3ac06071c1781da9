"""Plain-Python domain logic of the promotion service: states, policy, audit chain, tokens.

Nothing here imports Flask, SQLAlchemy or GitLab code, so it can be read and tested alone.
"""
