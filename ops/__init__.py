"""Operations: the ``motcua`` command line (provisioning, backup, sneakernet, demo)."""
