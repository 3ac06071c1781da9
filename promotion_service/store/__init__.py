"""The service's SQL, one module per table: each function takes a Session and never commits.

Store modules import no other store module: what several tables mean together is a use
case, in services/.
"""
