"""Command families, one module each; importing a module registers its commands."""

FAMILIES = ("strings", "keyspace", "hashes", "pubsub", "transactions", "connection", "server",
            "introspection", "acl")


def load_all():
    import importlib
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
