"""Request and response schemas (marshmallow): unknown fields are refused, digests checked.

Response schemas only read what the use case returned; none of them touches the database.
"""
